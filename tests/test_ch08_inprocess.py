"""Lab 08's in-process measurements on a tiny Llama: the anatomy, many adapters on one base, and int8."""

import pytest
import torch

import labkit as lk
from labkit.chapters.ch08_deployment import adapters, latency, quant
from labkit.core import LabkitError


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    model, tokenizer = lk.load_model("tiny-llama")
    model = lk.apply_method(model, "lora", rank=4)
    work = tmp_path_factory.mktemp("lab08")
    adapter = lk.methods.save_trainable(model, work / "adapter")
    merged = lk.methods.merge_lora(model).eval()
    merged.save_pretrained(work / "merged")
    return merged, tokenizer, adapter, work / "merged"


def test_anatomy_cache_on_and_off(lab):
    merged, tokenizer, _, _ = lab
    table = latency.anatomy_table(merged, tokenizer, "Hi", max_new_tokens=4)
    assert list(table.index) == [True, False] and (table["decode_tokens_per_s"] > 0).all()
    with pytest.raises(LabkitError, match="max_new_tokens"):
        latency.anatomy(merged, tokenizer, "Hi", max_new_tokens=1)


def test_many_adapters_on_one_base(lab):
    merged, tokenizer, adapter, folder = lab
    multi = adapters.many_adapters(lk.load_model("tiny-llama")[0], adapter, n_tasks=3)
    assert sorted(multi.peft_config) == ["task0", "task1", "task2"]
    table = adapters.compare_serving(multi, folder, tokenizer, prompts=["a", "b", "c"], max_new_tokens=2, repeats=1)
    assert table["weights_mib"].iloc[0] > table["weights_mib"].iloc[3] > table["weights_mib"].iloc[1]
    with pytest.raises(LabkitError, match="n_tasks"):
        adapters.many_adapters(merged, adapter, n_tasks=0)
    with pytest.raises(LabkitError, match="No adapter"):
        adapters.adapter_bytes(multi, "nope")


def test_int8_shrinks_and_refuses_adapters(lab):
    merged, _, _, _ = lab
    small = quant.int8_copy(merged, backend="torch.ao")  # the tiny model is mostly its (unquantized) embedding
    assert any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in small.modules())
    assert not any(isinstance(m, torch.nn.Linear) for m in small.modules())
    assert any(isinstance(m, torch.nn.Linear) for m in merged.modules())  # the original is left alone
    assert quant.stored_bytes(small) > 0
    with pytest.raises(LabkitError, match="backend"):
        quant.int8_copy(merged, backend="int3")
    with pytest.raises(LabkitError, match="merged model"):
        quant.int8_copy(lk.apply_method(lk.load_model("tiny-llama")[0], "lora"))
