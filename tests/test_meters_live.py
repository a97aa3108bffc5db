"""Live-tensor peaks (torch.profiler's memory events) against predict_memory, in a bare step and in lk.train."""

import copy
import math

import datasets
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM

import labkit as lk
from labkit.meters import measure_live_peak, predict_memory, tensor_bytes
from labkit.models import set_checkpointing

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models run fastest on one thread (conftest)


def _config(cls=LlamaConfig, **over):
    base = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "vocab_size": 1000}
    return cls(**{**base, **over})


def test_the_live_peak_counts_a_freed_tensor_and_forgets_earlier_blocks():
    with measure_live_peak("cpu") as big:
        x = torch.ones(25_000_000)  # 100 MB, freed inside the block
        del x
    with measure_live_peak("cpu") as small:
        y = torch.ones(1000)
    assert big.peak_bytes == 100_000_000 and "profiler" in big.method
    assert small.peak_bytes == 4000 and y.sum() == 1000  # no allocator cache can hide it or add to it


def test_tensor_bytes_counts_each_storage_once():
    model = LlamaForCausalLM(_config(tie_word_embeddings=True))
    n = sum(p.numel() for p in model.parameters())  # parameters() lists the tied matrix once
    buffers = sum(b.untyped_storage().nbytes() for b in model.buffers())
    assert tensor_bytes(model) == 4 * n + buffers
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    ids = torch.randint(0, 1000, (1, 8))
    model(input_ids=ids, labels=ids).loss.backward()
    opt.step()
    assert tensor_bytes(opt) == 4 * n  # one momentum buffer per parameter
    assert tensor_bytes(model, opt, model) == 8 * n + buffers


@pytest.mark.parametrize("cls,cfg_cls,method,kw,ckpt", [
    (LlamaForCausalLM, LlamaConfig, "full", {}, False),
    (MistralForCausalLM, MistralConfig, "full", {}, True),
    (LlamaForCausalLM, LlamaConfig, "lora", {"rank": 4, "target_modules": ["q_proj", "v_proj"]}, False),
    (MistralForCausalLM, MistralConfig, "lora", {"rank": 8, "target_modules": "all-linear"}, True),
])
def test_a_steps_live_peak_matches_the_prediction(cls, cfg_cls, method, kw, ckpt):
    """Layers matter here (vocabulary 1,000, 4 layers): the per-layer terms, not only the logits, are checked."""
    config = _config(cfg_cls, hidden_size=128, intermediate_size=352, num_hidden_layers=4)
    torch.manual_seed(0)
    model = lk.apply_method(cls(config), method, **kw)
    if ckpt:
        set_checkpointing(model, True)
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    ids = torch.randint(0, 1000, (3, 96))

    def step():
        model(input_ids=ids, labels=ids).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()  # creates the optimizer state
    held = tensor_bytes(model, opt)
    with measure_live_peak("cpu") as live:
        step()
    est = predict_memory(config, method, batch_size=3, seq_len=96, grad_checkpointing=ckpt, **kw)
    assert held + live.peak_bytes == pytest.approx(est.total - est.overhead, rel=0.03)


def test_train_reports_the_live_peak_next_to_the_resident_one():
    """lk.train's live peak (above the start) is the prediction less the weights, within 10%, on the tiny preset."""
    model, tokenizer = lk.load_model("tiny-llama")
    model = lk.apply_method(copy.deepcopy(model), "lora", rank=4, target_modules=["q_proj", "v_proj"])
    gen = torch.Generator().manual_seed(0)
    data = datasets.Dataset.from_dict({"input_ids": torch.randint(3, 5000, (8, 32), generator=gen).tolist()})
    result = lk.train(model, tokenizer, data, num_steps=3, batch_size=2, seq_len=32, lr=1e-3, progress=False,
                      live_plot=False, live_memory=True)
    est = predict_memory(model.config, "lora", rank=4, target_modules=["q_proj", "v_proj"], batch_size=2, seq_len=32)
    above_start = (est.total - est.weights - est.overhead) / lk.units.GIB
    assert result.live_peak_mem_gib == pytest.approx(above_start, rel=0.10)
    assert result.peak_mem_gib > 0 and "resident" in repr(result) and "live" in repr(result)
    plain = lk.train(model, tokenizer, data, num_steps=1, batch_size=2, seq_len=32, progress=False, live_plot=False)
    assert math.isnan(plain.live_peak_mem_gib)  # the profiled step is opt-in: it slows that step
    assert "GiB live" not in repr(plain) and "GiB live" in repr(result)  # no "nan GiB live" when not measured


@pytest.mark.parametrize("method,kw", [("full", {}), ("lora", {"rank": 4, "target_modules": "all-linear"})])
def test_adafactor_state_is_a_row_and_a_column_per_matrix(method, kw):
    from transformers.optimization import Adafactor

    config = _config()
    model = lk.apply_method(LlamaForCausalLM(config), method, **kw)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = Adafactor(params, lr=1e-3, relative_step=False, scale_parameter=False, warmup_init=False)
    ids = torch.randint(0, 1000, (1, 8))
    model(input_ids=ids, labels=ids).loss.backward()
    opt.step()
    est = predict_memory(config, method, optimizer="adafactor", **kw)
    assert est.details["optimizer_states"] == tensor_bytes(opt) - 4 * len(params)  # less its 0-d RMS per tensor
    assert est.details["optimizer_states"] < predict_memory(config, method, **kw).details["optimizer_states"] / 4


def test_adafactor_predictions_name_what_they_cover():
    with pytest.raises(lk.LabkitError, match="Adafactor predictions cover full fine-tuning and LoRA"):
        predict_memory(_config(), "ia3", optimizer="adafactor")
