"""The tracker: lk.train's TensorBoard runs read back (scalars, settings, final metrics), found by config, and the UI
started on localhost and stopped."""

import urllib.request

import pytest

from labkit import tracker
from labkit.core import LabkitError


@pytest.fixture
def logs(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_TRACKER_DIR", str(tmp_path / "tb"))
    return tmp_path / "tb"


def _write(name, settings, losses):
    writer = tracker.RunWriter(name, settings)
    for step, loss in enumerate(losses, 1):
        writer.log(step, {"train/loss": loss})
    writer.close({"tokens_per_s": 100.0})
    return writer


def test_a_run_is_read_back_with_its_settings_and_final_metrics(logs):
    writer = _write("lora-r8", {"method": "lora", "lr": 1e-3, "rank": 8, "targets": ["q_proj", "v_proj"]},
                    [2.0, 1.5, 1.25])
    assert writer.path == logs / "lora-r8"
    curve = tracker.scalars("lora-r8")
    loss = curve[curve["tag"] == "train/loss"]
    assert list(loss["step"]) == [1, 2, 3] and list(loss["value"]) == [2.0, 1.5, 1.25]
    row = tracker.runs().iloc[0]
    assert row["run"] == "lora-r8" and row["method"] == "lora" and row["rank"] == 8
    assert row["targets"] == '["q_proj", "v_proj"]'  # a list is kept as JSON text (hparams take scalars only)
    assert row["train/loss"] == 1.25 and row["tokens_per_s"] == 100.0


def test_runs_are_found_by_config_and_names_never_clash(logs):
    _write("sweep", {"method": "lora", "lr": 1e-3}, [1.0])
    second = _write("sweep", {"method": "lora", "lr": 3e-3}, [0.5])
    _write("probe", {"method": "linear_probe", "lr": 1e-3}, [0.9])
    assert second.name == "sweep-2"  # the first run keeps its folder
    assert list(tracker.find_runs(method="lora")["run"]) == ["sweep", "sweep-2"]
    assert list(tracker.find_runs(lr=1e-3)["run"]) == ["sweep", "probe"]
    assert list(tracker.find_runs(method="lora", lr=3e-3)["run"]) == ["sweep-2"]
    assert tracker.find_runs(method="ia3").empty
    with pytest.raises(LabkitError, match="No tracked run has a setting 'colour'"):
        tracker.find_runs(colour="red")
    with pytest.raises(LabkitError, match="at least one setting"):
        tracker.find_runs()


def test_a_run_without_settings_is_listed_too(logs):
    # a run stopped before it wrote its settings, or event files from another program, must not hide the others
    from torch.utils.tensorboard import SummaryWriter

    bare = SummaryWriter(str(logs / "bare"))
    bare.add_scalar("train/loss", 3.0, 1)
    bare.close()
    _write("lora-r8", {"method": "lora"}, [2.0])
    table = tracker.runs()
    assert list(table["run"]) == ["bare", "lora-r8"] and table.loc[1, "method"] == "lora"
    assert list(tracker.find_runs(method="lora")["run"]) == ["lora-r8"]


def test_bad_names_and_missing_runs_get_clear_errors(logs):
    with pytest.raises(LabkitError, match="becomes a folder"):
        tracker.RunWriter("../escape", {})
    with pytest.raises(LabkitError, match="dict"):
        tracker.RunWriter("ok", ["lr"])
    blocker = logs.parent / "a-file"
    blocker.write_text("not a folder")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LABKIT_TRACKER_DIR", str(blocker / "tb"))
        with pytest.raises(LabkitError, match="cannot write to .*LABKIT_TRACKER_DIR"):
            tracker.RunWriter("ok", {})
    with pytest.raises(LabkitError, match="No tracked run 'nope'"):
        tracker.scalars("nope")
    assert tracker.runs().empty
    with pytest.raises(LabkitError, match="port"), tracker.ui(port=80):
        pass


def test_lk_train_reports_to_the_tracker(logs):
    import labkit as lk

    model, tokenizer = lk.load_model("tiny-llama")
    model = lk.apply_method(model, "lora", rank=4)
    data = [{"text": "the cat sat on the mat " * 4}] * 8
    result = lk.train(model, tokenizer, data, num_steps=4, batch_size=2, seq_len=32, lr=1e-3, label="tiny lora",
                      report_to="tensorboard", progress=False, live_plot=False)
    curve = tracker.scalars("tiny-lora")
    loss = curve[curve["tag"] == "train/loss"]
    assert list(loss["step"]) == [1, 2, 3, 4]
    assert loss["value"].tolist() == pytest.approx(result.history["loss"].tolist(), rel=1e-6)
    run = tracker.find_runs(method="lora", rank=4).iloc[0]
    assert run["run"] == "tiny-lora" and run["label"] == "tiny lora" and run["num_steps"] == 4
    assert run["lr"] == pytest.approx(1e-3) and run["tokens_per_s"] == pytest.approx(result.tokens_per_s, rel=1e-6)
    with pytest.raises(LabkitError, match="report_to must be one of"):
        lk.train(model, tokenizer, data, num_steps=1, report_to="wandb")


def test_the_ui_serves_and_stops(logs):
    _write("shown", {"lr": 1e-3}, [1.0])
    with tracker.ui() as url, urllib.request.urlopen(url, timeout=10) as page:
        assert page.status == 200 and b"TensorBoard" in page.read()
    with pytest.raises(OSError):  # stopped: nothing answers there any more
        urllib.request.urlopen(url, timeout=2)
