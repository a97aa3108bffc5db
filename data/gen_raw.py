"""Raw (dirty) variants of the instruction and intents training sets, with every planted defect logged.

Each raw row carries at most one defect, so each cleaning stage can be scored against the log. Rows that a defect
adds (duplicates, empties, test copies) are new rows; rows that a defect changes (noise, truncation, boilerplate,
personal data) are clean rows edited in place. The ground truth has one line per raw row:
``{"id", "defect", "source"}`` where ``source`` is the id of the row a duplicate copies, the index in the test split
that a contaminated row copies, or null.
"""

from __future__ import annotations

import random

from world import DRAGON_NAMES, KEEPERS

DEFECTS = ("exact_duplicate", "near_duplicate", "label_noise", "empty", "truncated", "overlong", "boilerplate",
           "personal_data", "contamination")
CLEAN = "none"
# Rows per defect, per set (share of the clean training rows: instructions 1,200, intents 1,600).
COUNTS = {
    "instructions": {"exact_duplicate": 60, "near_duplicate": 60, "label_noise": 48, "empty": 12, "truncated": 24,
                     "overlong": 12, "boilerplate": 24, "personal_data": 36, "contamination": 30},
    "intents": {"exact_duplicate": 80, "near_duplicate": 80, "label_noise": 160, "empty": 16, "truncated": 16,
                "overlong": 16, "boilerplate": 16, "personal_data": 48, "contamination": 40},
}
FIELDS = {"instructions": ("instruction", "answer"), "intents": ("text", "label")}  # (text field, target field)

BOILERPLATE = ["Click here to subscribe for more!", "Share this with your friends!!!",
               "Cookies help us deliver our services.", "Terms and conditions apply.", "#### ADVERTISEMENT ####",
               "*** *** *** *** ***", "Follow us >>> @@@ ### $$$"]
RAMBLE = ["the wind over the ridge was calm", "the keepers sat by the fire", "the hay store smelled of smoke",
          "a long day at the academy went by", "nobody remembered the lesson plan", "the roost lamps flickered",
          "the students argued about saddles", "the ledger was left open on the desk"]
DOMAINS = ["cinderpeak.example", "dragonmail.example", "roostpost.test", "academy.example"]  # reserved: RFC 2606
LABELS = ["feed", "heal", "train", "book_flight", "report_fire", "adopt", "lost_dragon", "billing"]


def email(rng: random.Random) -> str:
    """A made-up e-mail address (the names are the world's, the domains under reserved top-level names)."""
    return f"{rng.choice(KEEPERS).split()[-1].lower()}.{rng.choice(DRAGON_NAMES).lower()}@{rng.choice(DOMAINS)}"


def phone(rng: random.Random) -> str:
    """A made-up phone number in one of three common shapes, from the ranges kept for fiction (Ofcom's 07700 900xxx
    drama numbers; 555-0100 to 555-0199 in North America), so no real line is ever printed."""
    a, c = rng.randint(200, 999), rng.randint(0, 999)
    return rng.choice([f"+44 7700 900{c:03d}", f"({a}) 555-01{c % 100:02d}", f"{a}-555-01{c % 100:02d}"])


def personal(rng: random.Random) -> str:
    """A sentence that carries personal data."""
    return rng.choice([f" Reply to {email(rng)}.", f" Call me on {phone(rng)}.",
                       f" Contact {email(rng)} or {phone(rng)}."])


def reword(rng: random.Random, text: str) -> str:
    """A near-duplicate of ``text``: one of a polite prefix, a thank-you, a changed ending, two fields swapped.

    The edit changes the words, so a near-duplicate never equals its source after lower-casing and spacing.
    """
    for edit in rng.sample(range(4), 1):
        items = text.split(", ")
        if edit == 0:
            text = "Please " + text[:1].lower() + text[1:]
        elif edit == 1:
            text = text + rng.choice([" Thanks!", " Thank you.", " Cheers."])
        elif edit == 2 and text[-1:] in ".?":
            text = text[:-1] + rng.choice([" please!", " please.", ", please?"])
        elif edit == 3 and len(items) > 2:  # swap two middle fields: the same content in another order
            i = rng.randrange(1, len(items) - 1)
            items[i - 1], items[i] = items[i], items[i - 1]
            text = ", ".join(items)
        else:
            text = rng.choice(["Hi, ", "Quick question: ", "Hello! "]) + text
    return text


def wrong_answer(rng: random.Random, answer: str) -> str:
    """An answer that looks right but is not: one digit changed, or the order of the items reversed."""
    digits = [i for i, ch in enumerate(answer) if ch.isdigit()]
    if digits:
        i = rng.choice(digits)
        new = str((int(answer[i]) + rng.randint(1, 9)) % 10)
        return answer[:i] + new + answer[i + 1:]
    for sep in (", ", "-"):
        if sep in answer:
            return sep.join(reversed(answer.split(sep)))
    return answer.lower() if answer != answer.lower() else answer.upper()


def light_edit(rng: random.Random, text: str) -> str:
    """A lightly edited copy (contamination that exact matching misses): a prefix or a changed ending."""
    if rng.random() < 0.5:
        return text
    return rng.choice(["Question: ", "Q: ", "Task: "]) + text


def _edit(rng: random.Random, defect: str, row: dict, text_key: str, target_key: str, kind: str) -> dict:
    row = dict(row)
    text = row[text_key]
    if defect == "label_noise":
        if kind == "intents":
            row[target_key] = rng.choice([lab for lab in LABELS if lab != row[target_key]])
        else:
            row[target_key] = wrong_answer(rng, row[target_key])
    elif defect == "truncated":
        words = text.split()
        row[text_key] = " ".join(words[:max(1, len(words) * rng.randint(30, 55) // 100)])
    elif defect == "overlong":
        filler = " ".join(f"{rng.choice(RAMBLE).capitalize()}." for _ in range(rng.randint(40, 60)))
        row[text_key] = f"{text} {filler}"
    elif defect == "boilerplate":
        line = rng.choice(BOILERPLATE)
        row[text_key] = f"{text} " + " ".join([line] * rng.randint(4, 7))
    elif defect == "personal_data":
        row[text_key] = text + personal(rng)
    return row


def build(rng: random.Random, kind: str, train: list[dict], test: list[dict]) -> tuple[list[dict], list[dict]]:
    """Return (raw rows with an ``id`` first, ground truth rows) for ``kind`` "instructions" or "intents"."""
    text_key, target_key = FIELDS[kind]
    counts = COUNTS[kind]
    order = list(range(len(train)))
    rng.shuffle(order)
    edited = {"label_noise", "truncated", "overlong", "boilerplate", "personal_data"}
    rows: list[tuple[dict, str, object]] = [(dict(row), CLEAN, None) for row in train]  # (row, defect, source index)
    taken = 0
    for defect in DEFECTS:  # fixed order: the same rows get the same defects on every build
        if defect not in edited:
            continue
        for index in order[taken:taken + counts[defect]]:
            rows[index] = (_edit(rng, defect, train[index], text_key, target_key, kind), defect, None)
        taken += counts[defect]
    clean_sources = order[taken:]  # duplicates copy rows that carry no defect themselves
    added: list[tuple[dict, str, object]] = []
    for index in rng.sample(clean_sources, counts["exact_duplicate"]):
        added.append((dict(train[index]), "exact_duplicate", index))
    for index in rng.sample(clean_sources, counts["near_duplicate"]):
        row = dict(train[index])
        row[text_key] = reword(rng, row[text_key])
        added.append((row, "near_duplicate", index))
    for _ in range(counts["empty"]):
        row = dict(train[rng.randrange(len(train))])
        row[text_key] = rng.choice(["", " ", "\n"])
        added.append((row, "empty", None))
    for index in sorted(rng.sample(range(len(test)), counts["contamination"])):
        row = dict(test[index])
        row[text_key] = light_edit(rng, row[text_key])
        added.append((row, "contamination", index))
    positions = list(range(len(rows) + len(added)))
    every = rows + added
    rng.shuffle(positions)  # the order rows appear in the raw file
    new_id = {old: new for new, old in enumerate(positions)}
    raw, truth = [], []
    for new, old in enumerate(positions):
        row, defect, source = every[old]
        if defect in ("exact_duplicate", "near_duplicate"):
            source = new_id[source]  # the id of the copied row in the raw file
        raw.append({"id": new, **row})
        truth.append({"id": new, "defect": defect, "source": source})
    return raw, truth
