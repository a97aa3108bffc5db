"""Build every data set in data/ from templates, deterministically (stdlib only, no network).

Rebuild in place:  python data/build_data.py
Into another folder: python data/build_data.py --out /tmp/data_copy
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # the generators sit next to this script
    sys.path.insert(0, str(HERE))

import gen_corpus
import gen_docs
import gen_instructions
import gen_intents
import gen_probe
import gen_raw
import gen_safety

SEEDS = {"corpus": 101, "intents": 202, "instructions": 303, "raw": 404, "safety": 505}  # one stream per set: editing one leaves the rest
CORPUS_DOCS = {"train": 3400, "validation": 200}


def write_jsonl(path: Path, rows: list[dict]) -> None:
    """Write rows as JSON Lines with the rows' own key order and ``\\n`` endings."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def build_all(out_dir: Path) -> dict[str, dict[str, int]]:
    """Write all sets under ``out_dir``; return ``{set: {split: rows}}``."""
    sizes: dict[str, dict[str, int]] = {}
    docs = gen_corpus.build(random.Random(SEEDS["corpus"]), sum(CORPUS_DOCS.values()))
    corpus = {"train": docs[:CORPUS_DOCS["train"]], "validation": docs[CORPUS_DOCS["train"]:]}
    intents = gen_intents.build(random.Random(SEEDS["intents"]))
    instructions = gen_instructions.build(random.Random(SEEDS["instructions"]))
    probe = {"test": gen_probe.build()}
    for name, splits in [("corpus", corpus), ("intents", intents), ("instructions", instructions), ("probe", probe)]:
        for split, rows in splits.items():
            write_jsonl(out_dir / name / f"{split}.jsonl", rows)
        sizes[name] = {split: len(rows) for split, rows in splits.items()}
    (out_dir / "intents" / "labels.json").write_text(json.dumps(gen_intents.LABELS) + "\n", encoding="utf-8")
    raw_rng = random.Random(SEEDS["raw"])  # after the clean sets, from their rows: the clean files stay as they were
    for name, splits in [("instructions", instructions), ("intents", intents)]:
        raw, truth = gen_raw.build(raw_rng, name, splits["train"], splits["test"])
        write_jsonl(out_dir / "raw" / f"{name}.jsonl", raw)
        write_jsonl(out_dir / "raw" / f"{name}_truth.jsonl", truth)
        sizes[f"raw/{name}"] = {"train": len(raw)}
    for stem, rows in gen_safety.build(random.Random(SEEDS["safety"])).items():  # lab 01f, its own stream
        write_jsonl(out_dir / "safety" / f"{stem}.jsonl", rows)
        sizes.setdefault("safety", {})[stem] = len(rows)
    sizes["docs"] = gen_docs.write(out_dir, write_jsonl)  # lab 09's document store (its own seed, gen_docs.SEED)
    return sizes


def main(argv: list[str] | None = None) -> int:
    """Command line: build into ``--out`` (default: this folder) and print the split sizes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="folder to write the data sets into")
    args = parser.parse_args(argv)
    for name, splits in build_all(args.out).items():
        print(name, ", ".join(f"{split}={n}" for split, n in splits.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
