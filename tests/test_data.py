"""The committed data sets: byte-identical rebuild, sizes, schema, answers, and the loaders in labkit.data."""

from __future__ import annotations

import datetime
import importlib.util
import json
import re
import shutil
from pathlib import Path

import pytest

from labkit import data
from labkit.core import LabkitError
from labkit.units import MIB

DATA = Path(__file__).resolve().parents[1] / "data"
SETS = ("corpus", "intents", "instructions", "probe")


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _data_files(root: Path) -> dict[str, bytes]:
    """Every generated file under ``root``, keyed by its relative path."""
    return {str(p.relative_to(root)): p.read_bytes() for name in SETS for p in sorted((root / name).glob("*"))}


def _differences(a: dict[str, bytes], b: dict[str, bytes]) -> list[str]:
    return sorted(name for name in a.keys() | b.keys() if a.get(name) != b.get(name))


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory) -> Path:
    """A fresh build of every set into a temporary folder, through the script's own ``main``."""
    spec = importlib.util.spec_from_file_location("build_data", DATA / "build_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path_factory.mktemp("data")
    assert module.main(["--out", str(out)]) == 0
    return out


def test_rebuild_is_byte_identical(rebuilt):
    committed = _data_files(DATA)
    assert len(committed) == 11  # 2 corpus + 4 intents + labels.json + 3 instructions + 1 probe
    assert _differences(committed, _data_files(rebuilt)) == []


def test_byte_comparison_catches_a_changed_file(rebuilt, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(rebuilt, copy)
    path = copy / "probe" / "test.jsonl"
    path.write_bytes(path.read_bytes().replace(b"Paris", b"Lyon", 1))
    (copy / "intents" / "extra.jsonl").write_text("{}\n")
    assert _differences(_data_files(rebuilt), _data_files(copy)) == ["intents/extra.jsonl", "probe/test.jsonl"]


def test_files_are_modest_and_use_unix_line_endings():
    files = _data_files(DATA)
    assert all(len(content) < 5 * MIB and b"\r" not in content for content in files.values())
    assert sum(len(content) for content in files.values()) < 3 * MIB


def test_corpus_is_large_varied_and_uses_coined_terms():
    train, val = _read(DATA / "corpus/train.jsonl"), _read(DATA / "corpus/validation.jsonl")
    assert (len(train), len(val)) == (3400, 200)
    assert sum(len(row["text"].encode()) for row in train + val) > MIB
    texts = [row["text"] for row in train + val]
    assert len(set(texts)) == len(texts)
    assert all(list(row) == ["text"] for row in train)
    joined = "\n".join(texts)
    for term in ("Quillothrax", "Vyrrathi", "scalebloom", "hoardlock", "Field guide", "Keeper's log", "Flight report"):
        assert term in joined


def test_intents_splits_labels_and_no_leakage():
    labels = json.loads((DATA / "intents/labels.json").read_text())
    assert labels == list(data.INTENT_LABELS) and len(labels) == 8
    assert data.label2id["feed"] == 0 and data.id2label[7] == "billing"
    sizes = {"train": 1600, "validation": 200, "test": 400, "domain_shift": 320}
    seen: set[str] = set()
    for split, size in sizes.items():
        rows = _read(DATA / f"intents/{split}.jsonl")
        assert len(rows) == size and all(list(row) == ["text", "label"] for row in rows)
        assert {row["label"] for row in rows} == set(labels)
        assert all(sum(row["label"] == label for row in rows) == size // 8 for label in labels)
        texts = {row["text"] for row in rows}
        assert len(texts) == size and not texts & seen
        seen |= texts


def test_domain_shift_uses_held_out_names():
    shift = " ".join(row["text"] for row in _read(DATA / "intents/domain_shift.jsonl"))
    train = " ".join(row["text"] for row in _read(DATA / "intents/train.jsonl"))
    for name in ("Skarnwyrm", "Zhelkovar", "Grizzletoe"):
        assert name in shift and name not in train


def _recompute(row: dict) -> str | None:
    """Independently derive the answer of the families that can be recomputed from the instruction."""
    text = row["instruction"]
    if m := re.fullmatch(r"What is (\d+) ([-+*]) (\d+)\?", text):
        a, op, b = int(m[1]), m[2], int(m[3])
        return str({"+": a + b, "-": a - b, "*": a * b}[op])
    if m := re.fullmatch(r"Reformat (\d{4}-\d{2}-\d{2}) as (.+)\.", text):
        day = datetime.date.fromisoformat(m[1])
        fmt = {"DD/MM/YYYY": "%d/%m/%Y", "MM/DD/YYYY": "%m/%d/%Y", "D Month YYYY": f"{day.day} %B %Y"}[m[2]]
        return day.strftime(fmt)
    if m := re.fullmatch(r"Sort (ascending|descending|alphabetically): (.+)\.", text):
        items = m[2].split(", ")
        if m[1] == "alphabetically":
            return ", ".join(sorted(items))
        return ", ".join(map(str, sorted(map(int, items), reverse=m[1] == "descending")))
    if m := re.fullmatch(r"Convert (\d+) (\w+) to (\w+)\.", text):
        to_base = {"km": 1000, "m": 1, "cm": 0.01, "kg": 1000, "g": 1, "tonnes": 1e6, "days": 1440, "hours": 60,
                   "minutes": 1, "seconds": 1 / 60, "L": 1000, "mL": 1}
        return f"{int(m[1]) * to_base[m[2]] / to_base[m[3]]:g}"
    return None


def test_instructions_answers_are_correct_and_canonical():
    sizes = {"train": 1200, "validation": 120, "test": 300}
    seen: set[str] = set()
    checked = 0
    for split, size in sizes.items():
        rows = _read(DATA / f"instructions/{split}.jsonl")
        assert len(rows) == size and all(list(row) == ["instruction", "answer", "family"] for row in rows)
        assert {row["family"] for row in rows} == set(data.INSTRUCTION_FAMILIES)
        instructions = {row["instruction"] for row in rows}
        assert len(instructions) == size and not instructions & seen
        seen |= instructions
        for row in rows:
            assert row["answer"] == row["answer"].strip() and len(row["answer"]) < 80
            if row["family"] == "extract_json":
                fields = json.loads(row["answer"])
                assert row["answer"] == json.dumps(fields, sort_keys=True, separators=(",", ":"))
                assert fields["name"] in row["instruction"] and fields["species"] in row["instruction"]
            expected = _recompute(row)
            if expected is not None:
                assert row["answer"] == expected, row
                checked += 1
    assert checked > 800


def test_recompute_rejects_a_wrong_answer():
    assert _recompute({"instruction": "What is 17 + 25?"}) == "42"
    assert _recompute({"instruction": "Convert 3 km to m."}) == "3000"
    assert _recompute({"instruction": "Reformat 2024-03-07 as DD/MM/YYYY."}) != "03/07/2024"


def test_probe_schema():
    rows = _read(DATA / "probe/test.jsonl")
    assert len(rows) >= 100
    assert all(list(row) == ["question", "answer", "aliases", "category"] for row in rows)
    assert all(row["question"].endswith("?") and row["answer"] and isinstance(row["aliases"], list) for row in rows)
    assert len({row["question"] for row in rows}) == len(rows)
    assert rows[0] == {"question": "What is the capital of France?", "answer": "Paris", "aliases": [],
                       "category": "capital"}


@pytest.mark.parametrize(("loader", "splits", "columns"), [
    (data.load_corpus, ["train", "validation"], ["text"]),
    (data.load_intents, ["train", "validation", "test", "domain_shift"], ["text", "label"]),
    (data.load_instructions, ["train", "validation", "test"], ["instruction", "answer", "family"]),
    (data.load_probe, ["test"], ["question", "answer", "aliases", "category"]),
])
def test_loaders_return_the_splits(loader, splits, columns):
    ds = loader()
    assert list(ds) == splits
    assert all(ds[split].column_names == columns for split in splits)


def test_loader_reads_labkit_data_override(rebuilt, monkeypatch):
    monkeypatch.setenv("LABKIT_DATA", str(rebuilt))
    assert data.data_dir() == rebuilt
    assert data.load_probe()["test"].num_rows == len(_read(DATA / "probe/test.jsonl"))


def test_missing_data_folder_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(LabkitError, match="clone"):
        data.load_intents()
    monkeypatch.setenv("LABKIT_DATA", str(tmp_path))
    (tmp_path / "intents").mkdir()
    with pytest.raises(LabkitError, match="build_data.py"):
        data.load_intents()


@pytest.mark.parametrize("loader", [data.load_corpus, data.load_intents, data.load_instructions, data.load_probe])
def test_hub_id_offline_names_the_local_default(loader, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    name = loader.__name__.removeprefix("load_")
    with pytest.raises(LabkitError, match=f"data/{name}/"):
        loader(hub_id="someone/dragons")


# ---- raw variants (lab 04): planted defects with a ground-truth log --------------------------------------------------

RAW_FILES = ("instructions.jsonl", "instructions_truth.jsonl", "intents.jsonl", "intents_truth.jsonl")


def _gen_raw():
    spec = importlib.util.spec_from_file_location("gen_raw", DATA / "gen_raw.py")
    module = importlib.util.module_from_spec(spec)
    import sys

    sys.path.insert(0, str(DATA))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(DATA))
    return module


def test_raw_rebuild_is_byte_identical(rebuilt):
    for name in RAW_FILES:
        assert (rebuilt / "raw" / name).read_bytes() == (DATA / "raw" / name).read_bytes(), name
    assert sorted(p.name for p in (DATA / "raw").iterdir()) == sorted(RAW_FILES)


def test_all_committed_data_stays_under_5_mib():
    total = sum(p.stat().st_size for p in DATA.rglob("*") if p.is_file())
    assert total < 5 * MIB


@pytest.mark.parametrize("name", data.RAW_SETS)
def test_raw_truth_logs_every_row_and_the_planted_rates(name):
    raw, truth = _read(DATA / f"raw/{name}.jsonl"), _read(DATA / f"raw/{name}_truth.jsonl")
    assert [r["id"] for r in raw] == list(range(len(raw))) == [t["id"] for t in truth]
    counts = _gen_raw().COUNTS[name]
    assert set(counts) == set(data.DEFECTS)
    for defect, n in counts.items():
        assert sum(t["defect"] == defect for t in truth) == n, defect
    clean_rows = sum(t["defect"] == "none" for t in truth)
    edited = sum(counts[d] for d in ("label_noise", "truncated", "overlong", "boilerplate", "personal_data"))
    assert clean_rows + edited == {"instructions": 1200, "intents": 1600}[name]


@pytest.mark.parametrize("name", data.RAW_SETS)
def test_raw_defects_are_what_the_log_says(name):
    text, target = {"instructions": ("instruction", "answer"), "intents": ("text", "label")}[name]
    raw, truth = _read(DATA / f"raw/{name}.jsonl"), _read(DATA / f"raw/{name}_truth.jsonl")
    test = _read(DATA / f"{name}/test.jsonl")
    clean = {(r[text], r[target]) for r in _read(DATA / f"{name}/train.jsonl")}
    for row, t in zip(raw, truth):
        pair, defect, source = (row[text], row[target]), t["defect"], t["source"]
        if defect == "none":
            assert pair in clean
        elif defect == "exact_duplicate":
            assert pair == (raw[source][text], raw[source][target]) and truth[source]["defect"] == "none"
        elif defect == "near_duplicate":
            original = raw[source]
            assert row[target] == original[target] and truth[source]["defect"] == "none"
            assert " ".join(row[text].lower().split()) != " ".join(original[text].lower().split())
        elif defect == "contamination":
            assert row[target] == test[source][target] and row[text].endswith(test[source][text])
        elif defect == "empty":
            assert not row[text].strip()
        elif defect == "personal_data":
            assert "@" in row[text] or re.search(r"\d{3}[- ]\d{3,4}", row[text])
        elif defect == "overlong":
            assert len(row[text].split()) > 200
        elif defect == "label_noise":
            assert pair not in clean
            if name == "instructions" and _recompute(row) is not None:
                assert _recompute(row) != row["answer"]


def test_raw_loaders_and_their_errors(tmp_path, monkeypatch):
    raw = data.load_raw_instructions()
    assert raw.column_names == ["id", "instruction", "answer", "family"] and raw.num_rows == 1362
    assert data.load_raw_intents().column_names == ["id", "text", "label"]
    truth = data.load_raw_truth("intents")
    assert truth.column_names == ["id", "defect", "source"] and truth.num_rows == data.load_raw_intents().num_rows
    with pytest.raises(LabkitError, match="no raw variant"):
        data.load_raw_truth("corpus")
    monkeypatch.setenv("LABKIT_DATA", str(tmp_path))
    with pytest.raises(LabkitError, match="build_data.py"):
        data.load_raw_instructions()
