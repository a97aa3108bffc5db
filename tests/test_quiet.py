"""No expected library message reaches a learner's notebook: importing labkit hides exactly those, nothing else."""

import subprocess
import sys

import pytest

KERNELS_MESSAGE = "Failed to load CPU gemm_4bit_forward from kernels-community"


def _stderr(code: str) -> str:
    """What a fresh Python prints on stderr running ``code`` (no handler configured, as in a new notebook kernel)."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    return done.stderr


# The libraries' own calls, copied from their source: bitsandbytes 0.50.2 backends/cpu/ops.py, autograd/_functions.py.
REPLAYS = [
    ("bitsandbytes.backends.cpu.ops",
     ("'Failed to load CPU gemm_4bit_forward from kernels-community: %s. Please make sure you already `pip install "
      "kernels` and the kernels >= 0.11.1', ModuleNotFoundError(\"No module named 'kernels'\")"), KERNELS_MESSAGE),
    ("bitsandbytes.autograd._functions",
     "'MatMul8bitLt: inputs will be cast from %s to float16 during quantization', 'torch.float32'",
     "MatMul8bitLt: inputs will be cast"),
    ("transformers.integrations.bitsandbytes",  # transformers 5.23, integrations/bitsandbytes.py
     "'The modules are dequantized in torch.float32 and casted to torch.float32.'",
     "The modules are dequantized in"),
    ("torchao",  # torchao 0.18.0, __init__.py
     "f'Failed to load {\"/venv/torchao/_C_mxfp8.so\"}: Could not load this library'", "Failed to load "),
    ("torch.utils._pytree",  # torch 2.13, utils/_pytree.py register_constant
     ("'%s is an Enum subclass and is now natively supported by torch.compile as an opaque value type.', "
      "\"<enum 'KernelPreference'>\""), "is an Enum subclass"),
    ("DeepSpeed",  # deepspeed 0.19.8, accelerator/real_accelerator.py
     "'Setting accelerator to CPU. If you have GPU or other accelerator, we were unable to detect it.'",
     "Setting accelerator to CPU"),
]


@pytest.mark.parametrize("logger, call, message", REPLAYS)
def test_expected_library_messages_are_hidden(logger, call, message):
    """Replays each call on any machine: shown without labkit, hidden with it; other messages still get through."""
    replay = (f"import logging; log = logging.getLogger({logger!r}); log.warning({call}); "
              "log.warning('something else went wrong')")
    assert message in _stderr(replay)  # the test can fail: without labkit the message shows
    quiet = _stderr("import sys, labkit; assert 'torch' not in sys.modules; " + replay)
    assert message not in quiet
    assert "something else went wrong" in quiet  # only the expected message is dropped


def test_importing_bitsandbytes_after_labkit_prints_nothing():
    """The real import, as a lab's set-up cell does it; on a CPU where bitsandbytes logs the message at all."""
    pytest.importorskip("bitsandbytes")
    if KERNELS_MESSAGE not in _stderr("import bitsandbytes"):  # the control: bitsandbytes alone on this CPU
        pytest.skip("bitsandbytes logs no kernel message on this CPU (no AVX512-BF16, or `kernels` is installed)")
    assert KERNELS_MESSAGE not in _stderr("import labkit, bitsandbytes")


WARNING_REPLAYS = [  # (category, message) as transformers 5.23 and peft 0.21 word them
    ("FutureWarning", ("`is_gradient_checkpointing` is deprecated and will be removed in v6. Use "
                       "`is_activation_checkpointing` instead.")),
    ("UserWarning", ("Unsupported layer type '<class 'transformers.models.llama.modeling_llama.LlamaRMSNorm'>' "
                     "encountered, proceed at your own risk.")),
    ("UserWarning", "Merge lora module to 4-bit linear may get different generations due to rounding errors."),
]


@pytest.mark.parametrize("category, message", WARNING_REPLAYS)
def test_expected_library_warnings_are_hidden(category, message):
    replay = (f"import warnings; warnings.warn({message!r}, {category}); "
              f"warnings.warn('another {category.lower()}', {category})")
    assert message in _stderr(replay)  # the test can fail: without labkit the warning shows
    quiet = _stderr("import labkit; " + replay)
    assert message not in quiet and f"another {category.lower()}" in quiet  # only the expected one is dropped


def test_wrapping_a_model_with_peft_warns_only_without_labkit():
    """The real calls: LN tuning through peft itself shows both warnings; the kit's apply_method shows neither."""
    plain = _stderr("from peft import LNTuningConfig, get_peft_model\n"
                    "from transformers import LlamaConfig, LlamaForCausalLM\n"
                    "model = LlamaForCausalLM(LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,"
                    " num_attention_heads=2, vocab_size=100))\n"
                    "get_peft_model(model, LNTuningConfig(task_type='CAUSAL_LM'))")
    starts = ["`is_gradient_checkpointing` is deprecated", "Unsupported layer type"]
    assert all(start in plain for start in starts)
    kit = _stderr("import labkit as lk\nlk.apply_method(lk.load_model('tiny-llama')[0], 'norm')")
    assert not any(start in kit for start in starts), kit


def test_importing_torchao_after_labkit_prints_nothing():
    """transformers imports torchao whenever it is installed; on a CPU build of torch its CUDA kernels cannot load."""
    pytest.importorskip("torchao")
    if "Failed to load" not in _stderr("import torchao"):  # the control: torchao alone, on this build
        pytest.skip("torchao logs nothing at import here (its CUDA kernels load, or it changed)")
    assert _stderr("import labkit, torchao").strip() == ""
