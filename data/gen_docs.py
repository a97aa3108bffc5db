"""The document store for retrieval-augmented fine-tuning (lab 09): the world's facts as short documents, and
questions whose answer sits in exactly one of them.

Build it alone:  python data/gen_docs.py            (writes data/docs/)
From the data builder: ``gen_docs.write(out_dir, write_jsonl)``.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from world import DRAGON_NAMES, JARGON, KEEPERS, PLACES, SPECIES, article

SEED = 505  # its own stream: the other sets do not move when this one changes
TEST_SHARE = 0.3  # share of the questions held out for testing, drawn per question

SPECIES_QUESTIONS = [("What does the {name} eat?", "food"), ("Where does the {name} live?", "habitat"),
                     ("What colour is the flame of the {name}?", "flame")]
RECORD_QUESTIONS = [("Who is the keeper of {name}?", "keeper"), ("Where does {name} roost?", "roost"),
                    ("What species is {name}?", "species")]


def species_doc(s: dict) -> str:
    """A field-guide entry with every fact of one species."""
    return (f"Field guide: the {s['name']}. The {s['name']} lives in {s['habitat']} and comes from {s['origin']}. "
            f"It eats {s['food']}. Its flame is {s['flame']}. Keepers describe it as {s['temper']}. "
            f"Its wingspan is {s['span_m'][0]} to {s['span_m'][1]} m, and it {s['trait']}.")


def record_doc(r: dict) -> str:
    """An academy record card for one dragon (facts that exist nowhere else, so no model knows them)."""
    return (f"Academy record: {r['name']}. {r['name']} is {article(r['species'])} aged {r['age']}. "
            f"Keeper: {r['keeper']}. {r['name']} roosts at {r['roost']} and is fed {r['meal']} at dawn.")


def jargon_doc(term: str, meaning: str) -> str:
    """A glossary entry: no question points at these; they are distractors for retrieval."""
    return f"Glossary: {term}. In the academy, {term} means {meaning}."


def build(rng: random.Random | None = None) -> dict[str, list[dict]]:
    """{"documents": [...], "train": [...], "test": [...]} built deterministically from the world's word lists."""
    rng = rng or random.Random(SEED)
    documents, questions = [], []
    for s in SPECIES:
        doc_id = f"species-{s['name'].lower()}"
        documents.append({"doc_id": doc_id, "title": s["name"], "text": species_doc(s)})
        for template, key in SPECIES_QUESTIONS:
            questions.append({"question": template.format(name=s["name"]), "answer": s[key], "doc_id": doc_id})
    for name in DRAGON_NAMES:
        record = {"name": name, "species": rng.choice(SPECIES)["name"], "age": rng.randint(1, 60),
                  "keeper": rng.choice(KEEPERS), "roost": rng.choice(PLACES), "meal": rng.choice(SPECIES)["food"]}
        doc_id = f"record-{name.lower()}"
        documents.append({"doc_id": doc_id, "title": name, "text": record_doc(record)})
        for template, key in RECORD_QUESTIONS:
            questions.append({"question": template.format(name=name), "answer": record[key], "doc_id": doc_id})
    for term, meaning in JARGON.items():
        documents.append({"doc_id": f"glossary-{term}", "title": term, "text": jargon_doc(term, meaning)})
    train, test = [], []
    for q in questions:
        (test if rng.random() < TEST_SHARE else train).append(q)
    return {"documents": documents, "train": train, "test": test}


def write(out_dir: Path, write_jsonl) -> dict[str, int]:
    """Write docs/<part>.jsonl under ``out_dir`` with the builder's ``write_jsonl``; return the row counts."""
    parts = build(random.Random(SEED))
    for part, rows in parts.items():
        write_jsonl(Path(out_dir) / "docs" / f"{part}.jsonl", rows)
    return {part: len(rows) for part, rows in parts.items()}


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    """The same writer as build_data.write_jsonl (rows' own key order, ``\\n`` endings)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


if __name__ == "__main__":
    print(write(HERE, _write_jsonl))
