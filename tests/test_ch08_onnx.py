"""Lab 08's ONNX path: a real torch.onnx export run by ONNX Runtime gives PyTorch's logits, and bad input is refused."""

import pytest

from labkit.core import LabkitError

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


@pytest.fixture(scope="module")
def tiny():
    import labkit as lk

    return lk.load_model("tiny-llama")


def test_onnx_runtime_gives_pytorchs_logits(tiny, tmp_path):
    from labkit.chapters.ch08_deployment import onnx

    model, tokenizer = tiny
    path = onnx.export_onnx(model, tokenizer, tmp_path / "tiny")
    assert path.is_file() and path.name == "model.onnx"
    # prompts of other lengths and batch size than the export's sample: the shapes stayed dynamic
    result = onnx.compare_onnx(model, tokenizer, path, ["one", "two words", "and three words here"], repeats=1)
    # fp32 on both sides; the graph optimizer reorders sums, so logits differ by rounding only (|logits| ~ 1 here)
    assert result["max_abs_logit_diff"] < 1e-3
    assert result["next_token_agreement"] == 1.0
    assert result["torch_prefill_s"] > 0 and result["onnxruntime_prefill_s"] > 0 and result["onnx_mib"] > 1


def test_onnx_refuses_bad_input(tiny, tmp_path):
    from labkit.chapters.ch08_deployment import onnx

    model, tokenizer = tiny
    with pytest.raises(LabkitError, match="merged model"):
        onnx.export_onnx(type("Adapted", (), {"peft_config": {}})(), tokenizer, tmp_path)
    with pytest.raises(LabkitError, match="tokenizer"):
        onnx.export_onnx(model, None, tmp_path)
    with pytest.raises(LabkitError, match="export one first"):
        onnx.compare_onnx(model, tokenizer, tmp_path / "none.onnx", ["x"])
    with pytest.raises(LabkitError, match="non-empty list"):
        onnx.compare_onnx(model, tokenizer, tmp_path / "none.onnx", [])
    with pytest.raises(LabkitError, match="repeats"):
        onnx.compare_onnx(model, tokenizer, tmp_path / "none.onnx", ["x"], repeats=0)
