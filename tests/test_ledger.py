"""The run ledger: rows written and read back, two writers at once, a corrupt or locked file, the off switch."""

import sqlite3
import subprocess
import sys

import pytest

from labkit import ledger
from labkit.core import LabkitError


def test_rows_are_read_back_with_their_json_decoded(tmp_path):
    path = tmp_path / "runs.sqlite"
    assert ledger.record({"label": "a", "config": {"train": {"lr": 0.001}}, "tokens": 512}, path) == 1
    assert ledger.record({"label": "b", "measured_peak_gib": 1.5}, path) == 2
    runs = ledger.read_runs(path)
    assert list(runs["label"]) == ["a", "b"]
    assert runs["config"][0] == {"train": {"lr": 0.001}} and runs["config"][1] == {}
    assert runs["tokens"][0] == 512 and runs["measured_peak_gib"][1] == 1.5
    assert runs["created_utc"][0].endswith("Z") and runs["kit_version"][0]


def test_a_missing_ledger_reads_as_no_runs(tmp_path):
    assert len(ledger.read_runs(tmp_path / "none.sqlite")) == 0


def test_an_unknown_column_is_refused(tmp_path):
    with pytest.raises(LabkitError, match="no column 'colour'"):
        ledger.record({"colour": "red"}, tmp_path / "runs.sqlite")
    assert not (tmp_path / "runs.sqlite").exists()


def test_the_off_switch_and_another_file(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_LEDGER", "off")
    assert ledger.ledger_path() is None and ledger.record({"label": "x"}) is None
    with pytest.raises(LabkitError, match="unset LABKIT_LEDGER"):
        ledger.read_runs()
    monkeypatch.setenv("LABKIT_LEDGER", str(tmp_path / "mine.sqlite"))
    assert ledger.record({"label": "x"}) == 1 and (tmp_path / "mine.sqlite").exists()
    monkeypatch.delenv("LABKIT_LEDGER")
    monkeypatch.setenv("LABKIT_CACHE", str(tmp_path / "cache"))
    assert ledger.ledger_path() == tmp_path / "cache" / "runs.sqlite"


WRITER = """
import sys
from labkit import ledger
for i in range(40):
    ledger.record({"label": sys.argv[2], "num_steps": i}, __import__("pathlib").Path(sys.argv[1]))
"""


def test_two_processes_writing_at_once_lose_no_row(tmp_path):
    path = tmp_path / "runs.sqlite"
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), name]) for name in ("p", "q")]
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    runs = ledger.read_runs(path)
    assert len(runs) == 80 and runs["id"].is_unique
    for name in ("p", "q"):
        assert sorted(runs.loc[runs["label"] == name, "num_steps"]) == list(range(40))


def test_a_corrupt_ledger_is_kept_aside_and_a_fresh_one_started(tmp_path, capsys):
    path = tmp_path / "runs.sqlite"
    path.write_bytes(b"not a database " * 100)
    with pytest.raises(LabkitError, match="cannot be read"):
        ledger.read_runs(path)
    assert ledger.record({"label": "after"}, path) == 1
    assert "kept as runs.sqlite.corrupt-" in capsys.readouterr().out
    (aside,) = tmp_path.glob("runs.sqlite.corrupt-*")
    assert aside.read_bytes() == b"not a database " * 100
    assert list(ledger.read_runs(path)["label"]) == ["after"]


def test_a_locked_ledger_skips_the_row_and_the_next_run_says_so(tmp_path, monkeypatch, capsys):
    path = tmp_path / "runs.sqlite"
    ledger.record({"label": "first"}, path)
    monkeypatch.setattr(ledger, "TIMEOUT_S", 0.1)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        assert ledger.record({"label": "blocked"}, path) is None
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert "was not recorded" in capsys.readouterr().out
    assert ledger.record({"label": "next"}, path) == 2
    assert "the previous run was not recorded" in capsys.readouterr().out
    assert list(ledger.read_runs(path)["label"]) == ["first", "next"]
    assert not path.with_name("runs.sqlite.notice").exists()


def test_every_lk_train_run_is_recorded_with_prediction_and_measurement(tmp_path, monkeypatch, one_thread):
    import labkit as lk

    monkeypatch.setenv("LABKIT_LEDGER", str(tmp_path / "runs.sqlite"))
    model, tokenizer = lk.load_model("tiny-llama")
    model = lk.apply_method(model, "lora", rank=4)
    result = lk.train(model, tokenizer, lk.load_instructions()["train"].select(range(8)), num_steps=2, batch_size=2,
                      seq_len=64, progress=False, live_plot=False, label="ledger-test")
    (run,) = ledger.read_runs().to_dict("records")
    assert run["label"] == "ledger-test" and run["method"] == "lora" and run["num_steps"] == 2
    assert run["config"]["train"]["batch_size"] == 2 and run["config"]["method"]["rank"] == 4
    assert run["measured_peak_gib"] == pytest.approx(result.peak_mem_gib) and run["time_s"] == result.time_s
    assert run["predicted_peak_gib"] > 0 and run["tokens"] > 0
    assert run["flops"] > 4 * sum(p.numel() for p in model.parameters()) * run["tokens"]  # frozen 4·N·D plus the rest
    assert run["hardware"]["cores"] and run["device"] == "cpu"
    # what running it again needs: versions, the checkout's commit, the rows' hash and the seed
    assert run["versions"]["torch"] and run["versions"]["peft"] and run["seed"] == 0
    assert run["data_hash"] == ledger.data_hash(lk.load_instructions()["train"].select(range(8)))
    assert run["git_commit"] == ledger.git_commit()


def test_an_older_ledger_gains_the_new_columns_and_keeps_its_rows(tmp_path):
    path = tmp_path / "runs.sqlite"
    with sqlite3.connect(path) as conn:  # the table as the first kit wrote it, with one run
        conn.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, created_utc TEXT, label TEXT, "
                     "config TEXT, hardware TEXT)")
        conn.execute("INSERT INTO runs (label, config, hardware) VALUES ('old', '{}', '{}')")
    conn.close()
    old = ledger.read_runs(path)  # read as it is: the new columns empty
    assert list(old["label"]) == ["old"] and old["versions"][0] == {} and old["git_commit"].isna().all()
    assert ledger.record({"label": "new", "git_commit": "abc", "versions": {"torch": "2"}, "seed": 3}, path) == 2
    runs = ledger.read_runs(path)
    assert list(runs["label"]) == ["old", "new"] and runs["versions"][1] == {"torch": "2"}
    assert runs["seed"][1] == 3 and runs["git_commit"][1] == "abc" and runs["versions"][0] == {}
