from pathlib import Path

import pytest
import torch

from labkit import LabkitError
from labkit.core import resolve_device, resolve_dtype
from labkit.models import MODEL_PRESETS, bitsandbytes_works, chat, load_model, model_folder


def test_smollm2_answers_offline_and_reloads_from_the_cache(monkeypatch):
    from labkit import models

    load_model("smollm2-135m")  # converts once if a previous test did not
    monkeypatch.setattr(models, "_gguf_path", lambda: pytest.fail("the reload converted the GGUF again"))
    model, tokenizer = load_model("smollm2-135m")
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    assert type(model).__name__ == "LlamaForCausalLM"
    assert "Paris" in chat(model, tokenizer, "What is the capital of France?")


@pytest.mark.parametrize("name, cls", [("tiny-llama", "LlamaForCausalLM"), ("tiny-mistral", "MistralForCausalLM")])
def test_tiny_presets_are_seeded_and_share_the_tokenizer(name, cls):
    torch.manual_seed(99)
    a, tokenizer = load_model(name)
    torch.manual_seed(7)
    b, _ = load_model(name)
    assert type(a).__name__ == cls
    assert a.config.vocab_size == len(tokenizer) == 49152
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert sum(p.numel() for p in a.parameters()) == 3_219_776


def test_nf4_loads_smollm2_in_a_third_of_the_memory():
    from labkit.models import bitsandbytes_works

    if not bitsandbytes_works():
        pytest.skip("bitsandbytes cannot quantize on this machine")
    model, _ = load_model("smollm2-135m", quantization="nf4")
    assert getattr(model, "is_loaded_in_4bit", False)
    assert model.get_memory_footprint() < 200e6  # 538 MB in fp32


def test_unknown_preset_names_the_presets():
    with pytest.raises(LabkitError, match="smollm2-135m"):
        load_model("smollm-135")


def test_hub_id_offline_names_the_offline_presets(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(LabkitError, match="offline.*tiny-llama"):
        load_model("meta-llama/Llama-3.2-1B")


def test_nf4_without_bitsandbytes_says_what_to_do(monkeypatch):
    monkeypatch.setenv("LABKIT_DISABLE_BNB", "1")
    with pytest.raises(LabkitError, match="pip install bitsandbytes"):
        load_model("tiny-llama", quantization="nf4")


def test_unknown_quantization_and_device_and_dtype():
    with pytest.raises(LabkitError, match="nf4"):
        load_model("tiny-llama", quantization="int4")
    with pytest.raises(LabkitError, match="cpu"):
        load_model("tiny-llama", device="tpu")
    with pytest.raises(LabkitError, match="fp32"):
        resolve_dtype("fp8")


def test_auto_device_and_dtype_on_this_machine():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto") in (expected, "mps")
    assert resolve_dtype("auto", "cpu") == torch.float32
    assert resolve_dtype("bf16", "cpu") == torch.bfloat16


def test_presets_describe_themselves():
    assert set(MODEL_PRESETS) == {"smollm2-135m", "tiny-llama", "tiny-mistral"}
    assert all(p.about for p in MODEL_PRESETS.values())


@pytest.mark.skipif(not bitsandbytes_works(), reason="needs bitsandbytes")
def test_int8_inference_does_not_flood_the_notebook(caplog):
    """bitsandbytes logs a dtype note for every int8 layer on every call; the kit keeps it out of the output."""
    import torch

    model, _ = load_model("tiny-llama", quantization="int8")
    with caplog.at_level("WARNING"), torch.no_grad():
        model(torch.tensor([[1, 2, 3]]))
    assert not [r for r in caplog.records if "MatMul8bitLt" in r.getMessage()]


class _Saver:
    def __init__(self, text):
        self.text = text

    def save_pretrained(self, folder):
        name = "model.safetensors" if self.text != "tokenizer" else "tokenizer_config.json"
        (Path(folder) / name).write_text(self.text)


@pytest.fixture
def tiny_cache(tmp_path, monkeypatch):
    """The kit's cache in tmp_path, SmolLM2's converted folder (the tiny presets' tokenizer) where it was."""
    from labkit import models

    smollm2 = models._smollm2_dir()
    monkeypatch.setattr(models, "_smollm2_dir", lambda: smollm2)
    monkeypatch.setenv("LABKIT_CACHE", str(tmp_path))
    return tmp_path / "models"


def test_a_tiny_preset_is_published_whole_once(tiny_cache, monkeypatch):
    from labkit import models

    monkeypatch.setattr(models, "_build_tiny", lambda preset: (_Saver("first"), _Saver("tokenizer")))
    folder = model_folder("tiny-llama")
    assert folder == tiny_cache / "tiny-llama"
    monkeypatch.setattr(models, "_build_tiny", lambda preset: (_Saver("second"), _Saver("tokenizer")))
    model_folder("tiny-llama")  # already there: kept, not rewritten under a reader
    assert (folder / "model.safetensors").read_text() == "first"
    broken = tiny_cache / "tiny-mistral"
    broken.mkdir()
    (broken / "model.safetensors").write_text("old")  # a save without its tokenizer (an older kit) is redone
    model_folder("tiny-mistral")
    assert sorted(p.name for p in broken.iterdir()) == ["model.safetensors", "tokenizer_config.json"]
    assert (broken / "model.safetensors").read_text() == "second"
    assert [p.name for p in tiny_cache.iterdir() if p.name.startswith(".")] == []  # no temporary folder left


def test_model_folder_holds_what_load_model_builds(tiny_cache):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = model_folder("tiny-llama")
    loaded = AutoModelForCausalLM.from_pretrained(folder, use_safetensors=True)
    built, tokenizer = load_model("tiny-llama")
    for (name, a), b in zip(built.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name
    assert AutoTokenizer.from_pretrained(folder)("Feed Pip").input_ids == tokenizer("Feed Pip").input_ids
    assert model_folder("smollm2-135m").name == "smollm2-135m"
    with pytest.raises(LabkitError, match="Unknown model"):
        model_folder("smollm3")
