"""Instructions with exactly checkable answers, in six task families with fixed, simple formats."""

from __future__ import annotations

import datetime
import json
import random

from world import DRAGON_NAMES, MONTHS, PLACES, SPECIES_NAMES, article

FAMILIES = ["extract_json", "convert_units", "reformat_date", "sort_list", "arithmetic", "string"]
SPLIT_SIZES = {"train": 200, "validation": 20, "test": 50}  # examples per family

# (from unit, to unit, factor): "Convert 3 km to m." -> "3000"; the reverse direction divides exactly.
UNITS = [("km", "m", 1000), ("m", "cm", 100), ("kg", "g", 1000), ("hours", "minutes", 60),
         ("minutes", "seconds", 60), ("L", "mL", 1000), ("days", "hours", 24), ("tonnes", "kg", 1000)]
WORDS = ["ember", "scale", "wing", "claw", "flame", "roost", "hoard", "tail", "smoke", "saddle", "egg", "moss",
         "frost", "storm", "ash", "quill", "horn", "cave", "glide", "spark", "tooth", "ridge", "cinder", "thorn"]
EXTRACT = [
    "{name} is {a_age}-year-old {species}.",
    "{name}, {a_species}, is {age} years old.",
    "Meet {name}: {a_species} aged {age}, living at {place}.",
    "At {place} we keep {name}, {a_species} of {age} years.",
    "The {species} called {name} turned {age} this spring.",
    "{name} ({species}, age {age}) arrived at {place} yesterday.",
]


def _a_age(age: int) -> str:
    return ("an " if str(age)[0] == "8" or age in (11, 18) else "a ") + str(age)


def extract_json(rng: random.Random) -> tuple[str, str]:
    name, species, age, place = rng.choice(DRAGON_NAMES), rng.choice(SPECIES_NAMES), rng.randint(1, 90), \
        rng.choice(PLACES)
    text = rng.choice(EXTRACT).format(name=name, species=species, age=age, place=place, a_age=_a_age(age),
                                      a_species=article(species))
    answer = json.dumps({"name": name, "species": species, "age": age}, sort_keys=True, separators=(",", ":"))
    return f"Extract name, species and age as JSON: {text}", answer


def convert_units(rng: random.Random) -> tuple[str, str]:
    big, small, factor = rng.choice(UNITS)
    n = rng.randint(1, 60)
    if rng.random() < 0.5:
        return f"Convert {n} {big} to {small}.", str(n * factor)
    return f"Convert {n * factor} {small} to {big}.", str(n)


def reformat_date(rng: random.Random) -> tuple[str, str]:
    day = datetime.date(2000, 1, 1) + datetime.timedelta(days=rng.randint(0, 365 * 40))
    iso = day.isoformat()
    fmt = rng.choice(["DD/MM/YYYY", "MM/DD/YYYY", "D Month YYYY"])
    answer = {"DD/MM/YYYY": f"{day.day:02d}/{day.month:02d}/{day.year}",
              "MM/DD/YYYY": f"{day.month:02d}/{day.day:02d}/{day.year}",
              "D Month YYYY": f"{day.day} {MONTHS[day.month - 1]} {day.year}"}[fmt]
    return f"Reformat {iso} as {fmt}.", answer


def sort_list(rng: random.Random) -> tuple[str, str]:
    k = rng.randint(3, 6)
    kind = rng.randrange(3)
    if kind == 0:
        items = rng.sample(range(1, 100), k)
        return f"Sort ascending: {', '.join(map(str, items))}.", ", ".join(map(str, sorted(items)))
    if kind == 1:
        items = rng.sample(range(1, 100), k)
        return (f"Sort descending: {', '.join(map(str, items))}.",
                ", ".join(map(str, sorted(items, reverse=True))))
    words = rng.sample(WORDS, k)
    return f"Sort alphabetically: {', '.join(words)}.", ", ".join(sorted(words))


def arithmetic(rng: random.Random) -> tuple[str, str]:
    op = rng.choice("+-*")
    if op == "*":
        a, b = rng.randint(2, 12), rng.randint(2, 12)
        return f"What is {a} * {b}?", str(a * b)
    a, b = rng.randint(10, 99), rng.randint(10, 99)
    if op == "-":
        a, b = max(a, b), min(a, b)
        return f"What is {a} - {b}?", str(a - b)
    return f"What is {a} + {b}?", str(a + b)


def string(rng: random.Random) -> tuple[str, str]:
    kind = rng.randrange(3)
    if kind == 0:
        word = rng.choice(WORDS + SPECIES_NAMES)
        return f"Write {word} in uppercase.", word.upper()
    if kind == 1:
        items = rng.sample(WORDS, rng.randint(2, 7))
        return f"How many items are in this list: {', '.join(items)}?", str(len(items))
    a, b = rng.sample(WORDS, 2)
    return f"Join {a} and {b} with a hyphen.", f"{a}-{b}"


GENERATORS = {"extract_json": extract_json, "convert_units": convert_units, "reformat_date": reformat_date,
              "sort_list": sort_list, "arithmetic": arithmetic, "string": string}


def build(rng: random.Random) -> dict[str, list[dict]]:
    """Return ``{split: [{"instruction", "answer", "family"}, ...]}``; no instruction in two splits."""
    splits: dict[str, list[dict]] = {name: [] for name in SPLIT_SIZES}
    seen: dict[str, None] = {}
    for family in FAMILIES:
        rows: list[dict] = []
        while len(rows) < sum(SPLIT_SIZES.values()):
            instruction, answer = GENERATORS[family](rng)
            if instruction not in seen:
                seen[instruction] = None
                rows.append({"instruction": instruction, "answer": answer, "family": family})
        start = 0
        for split, size in SPLIT_SIZES.items():
            splits[split] += rows[start:start + size]
            start += size
    for rows in splits.values():
        rng.shuffle(rows)
    return splits
