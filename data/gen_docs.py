"""The document store for retrieval-augmented fine-tuning (lab 09): the world's facts as short documents, and
questions whose answer sits in exactly one of them.

Retrieval is meant to be imperfect, as it is on real documents. The questions paraphrase their document instead of
repeating its words, and every subject is named in several documents: a species in its field guide, its care
sheet and the record cards of its dragons; a dragon in its record card, the roost log of where it sleeps and the
training reports it appears in. Most of those documents say other things about the same subject (hard distractors),
and some share the question's words about a different subject.

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

from world import DRAGON_NAMES, JARGON, KEEPERS, PLACES, SKILLS, SPECIES, SYMPTOMS, WEEKDAYS, article

SEED = 505  # its own stream: the other sets do not move when this one changes
TEST_SHARE = 0.3  # share of the questions held out for testing, drawn per question
NUM_DRAGONS = 36  # the first 36 of world.DRAGON_NAMES get a record card
NUM_REPORTS = 14  # training reports, each naming two or three dragons
GLOSSARY = 8  # the first 8 terms of world.JARGON get a glossary entry

# Paraphrases, one drawn per question. Most avoid the words their answering document uses for the fact; a few share
# one (home, sleep, night), and some share words with other documents (day to day, care, fire), as real questions do.
SPECIES_QUESTIONS = {
    "food": ["What would you feed a hungry {name}?", "What does a wild {name} like to eat?",
             "What should go in the {name}'s food bowl?"],
    "habitat": ["Where would you go looking for a wild {name}?", "What kind of place is home to the {name}?",
                "In what sort of country is the {name} found?"],
    "flame": ["What colour is the fire a {name} breathes?", "What shade of fire comes out of a {name}?",
              "How does the fire of a {name} look?"],
}
RECORD_QUESTIONS = {
    "keeper": ["Who looks after {name}?", "Who takes care of {name} day to day?", "Which person is in charge of {name}?"],
    "species": ["What kind of dragon is {name}?", "{name} belongs to which breed?", "What sort of creature is {name}?"],
    "roost": ["Where does {name} sleep?", "Where does {name} spend the night?", "At night, where is {name} kept?"],
}


def species_doc(s: dict) -> str:
    """A field-guide entry: where the species lives, what it eats, its flame (the answers), and its size."""
    return (f"Field guide: the {s['name']}. Native to {s['origin']}, the {s['name']} makes its home in "
            f"{s['habitat']}. Its diet is {s['food']}. It breathes {article(s['flame'])} flame. Its wingspan is "
            f"{s['span_m'][0]} to {s['span_m'][1]} m.")


def care_doc(s: dict) -> str:
    """A care sheet: the same species, other facts (a hard distractor for every question about the species)."""
    return (f"Care sheet: the {s['name']}. Keepers find the {s['name']} {s['temper']}. A clutch holds "
            f"{s['clutch'][0]} to {s['clutch'][1]} eggs, and hatchlings are fed by hand for a year. One raised at the "
            f"academy seldom goes back to the wild; it {s['trait']}. Young ones breathe their first fire at about "
            f"three months.")


def record_doc(r: dict) -> str:
    """An academy record card: one dragon's species, age and keeper (facts that exist nowhere else)."""
    return (f"Academy record: {r['name']}. {r['name']} is {article(r['species'])}, {r['age']} years old, "
            f"assigned to {r['keeper']}. Hatched on a {r['hatched']}; weighed at every full moon; health checks "
            f"up to date.")


def roost_doc(place: str, names: list[str]) -> str:
    """A roost log: the dragons that roost at one place (several dragons, so each is a small part of it)."""
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return (f"Roost log: {place}. Dragons that sleep here at night this season: {listed}. Lamps go out at nine; the "
            f"straw is changed every week.")


def report_doc(rng: random.Random, names: list[str]) -> str:
    """A training report naming two or three dragons: their subject, but nothing a question asks about."""
    first, second = names[0], names[1]
    text = (f"Training report, {rng.choice(WEEKDAYS)}: {first} and {second} work on {rng.choice(SKILLS)}. Since the "
            f"lesson {first} {rng.choice(SYMPTOMS)} and is taken care of in the infirmary; {second} is kept out of the "
            f"fire drills for the night.")
    if len(names) > 2:
        text += f" {names[2]} watches from the wall; the dragon wants to join the group."
    return text


def jargon_doc(term: str, meaning: str) -> str:
    """A glossary entry: no question points at these; they are distractors for retrieval."""
    return f"Glossary: {term}. In the academy, {term} means {meaning}."


def build(rng: random.Random | None = None) -> dict[str, list[dict]]:
    """{"documents": [...], "train": [...], "test": [...]} built deterministically from the world's word lists."""
    rng = rng or random.Random(SEED)
    documents, questions = [], []

    def ask(templates: dict, key: str, subject: str, answer: str, doc_id: str) -> None:
        question = rng.choice(templates[key]).format(name=subject)
        questions.append({"question": question, "answer": answer, "doc_id": doc_id, "subject": subject})

    for s in SPECIES:
        slug = s["name"].lower()
        documents.append({"doc_id": f"species-{slug}", "title": s["name"], "text": species_doc(s)})
        documents.append({"doc_id": f"care-{slug}", "title": s["name"], "text": care_doc(s)})
        for key in SPECIES_QUESTIONS:
            ask(SPECIES_QUESTIONS, key, s["name"], s[key], f"species-{slug}")
    records = [{"name": name, "species": rng.choice(SPECIES)["name"], "age": rng.randint(2, 60),
                "keeper": rng.choice(KEEPERS), "roost": rng.choice(PLACES), "hatched": rng.choice(WEEKDAYS)}
               for name in DRAGON_NAMES[:NUM_DRAGONS]]
    roosts = [p for p in PLACES if any(r["roost"] == p for r in records)]
    roost_id = {p: "roost-" + p.lower().removeprefix("the ").replace(" ", "-") for p in roosts}
    for r in records:
        doc_id = f"record-{r['name'].lower()}"
        documents.append({"doc_id": doc_id, "title": r["name"], "text": record_doc(r)})
        ask(RECORD_QUESTIONS, "keeper", r["name"], r["keeper"], doc_id)
        ask(RECORD_QUESTIONS, "species", r["name"], r["species"], doc_id)
        ask(RECORD_QUESTIONS, "roost", r["name"], r["roost"], roost_id[r["roost"]])
    for p in roosts:
        names = [r["name"] for r in records if r["roost"] == p]
        documents.append({"doc_id": roost_id[p], "title": p, "text": roost_doc(p, names)})
    for i in range(NUM_REPORTS):
        names = rng.sample([r["name"] for r in records], rng.choice([2, 3]))
        documents.append({"doc_id": f"report-{i + 1:02d}", "title": f"Training report {i + 1}",
                          "text": report_doc(rng, names)})
    for term, meaning in list(JARGON.items())[:GLOSSARY]:
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
