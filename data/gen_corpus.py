"""Domain corpus: field guides, keeper logs, lecture notes, flight reports, incidents, almanac Q&A."""

from __future__ import annotations

import random

from world import (
    DRAGON_NAMES,
    JARGON,
    KEEPERS,
    MOONS,
    PLACES,
    SKILLS,
    SPECIES,
    SPECIES_NAMES,
    SYMPTOMS,
    WEEKDAYS,
    WINDS,
    article,
)

REMEDIES = {
    "is coughing up black smoke": "a wyrmwort steam bath",
    "is limping on the left hind leg": "a cold sand wrap",
    "is refusing food": "a day of emberfast followed by emberbroth",
    "is scratching its scales raw": "a kelp oil rub",
    "is sneezing sparks": "kindleroot to chew",
    "is losing scales in patches": "extra gizzardstones and rest",
    "is breathing heavily": "a quiet stall away from the smoke",
    "has a swollen wing joint": "a splint and no flying",
    "has a dull, flickering flame": "two flarecap mushrooms",
    "has cloudy eyes": "a saltwater rinse twice a day",
    "is shivering near the fire pit": "a heated pyrolith bed",
    "has a torn wing membrane": "stitches and a week of rest",
}

LECTURES = {
    "Flame physiology": [
        "The flame gland sits behind the jaw and fills with oil during rest.",
        "A dragon that never rests its gland develops a dull, flickering flame.",
        "Pyroliths raise the heat of the flame but wear down the gizzard.",
        "Flame colour depends on species and diet, not on age.",
        "An emberfast once a week keeps the flame gland clean.",
        "Kindleroot relights a weak flame within an hour.",
        "Never let a drakeling flame indoors: scorchmarks on the walls mean a lesson was skipped.",
        "Sootlung comes from breathing back one's own smoke in a closed stall.",
    ],
    "Wing care": [
        "Check the wing membrane for tears after every long flight.",
        "Wingrot starts as grey spots near the wing tips.",
        "Kelp oil keeps the membrane supple in dry weather.",
        "A swollen wing joint means no flying until the swelling is gone.",
        "Stretch the wings of a drakeling daily before the first flight lesson.",
        "During scalebloom the wing edges are tender and should not be saddled.",
        "Stitched membranes heal in about a week if the dragon stays grounded.",
    ],
    "Feeding and diet": [
        "Feed adults once a day, drakelings twice, hatchlings four times.",
        "A daily ration is roughly one kilogram of food per metre of wingspan.",
        "Emberbroth is the standard meal for sick or very young dragons.",
        "Gizzardstones must be replaced every season.",
        "Wyrmwort settles the stomach after a rich meal.",
        "Never feed charcoal to a Mossdrake: its flame gland is too weak for it.",
        "Fresh water matters more than fresh meat in summer.",
    ],
    "Hoard psychology": [
        "Every dragon keeps a hoard, even if it is only a pile of buttons.",
        "Hoardlock is a trance, not aggression: speak softly and wait.",
        "Moving a hoard without warning can cost a keeper a week of trust.",
        "Trade, never take: offer a shiny item before removing one.",
        "A dragon that stops guarding its hoard may be ill.",
        "Drakelings practise hoarding with pebbles and feathers.",
    ],
    "Flight safety": [
        "Always follow the marked glidepath when landing near the roost.",
        "Ground all flights when gusts exceed thirty knots.",
        "Thermalling is easiest over dark rock on sunny afternoons.",
        "Young dragons fly on the tetherline until they can hold a hover.",
        "Night flying needs a lantern on the saddle and a second keeper on the ground.",
        "Storm season belongs to the Stormquill; other species stay in.",
        "A rider must check the saddle straps twice before take-off.",
    ],
    "Eggs and hatchlings": [
        "The clutchwarden turns the eggs twice a day.",
        "Eggs need steady warmth: a pyrolith bed works for most species.",
        "Hatchlings imprint on the first keeper who feeds them.",
        "A hatchling eats only emberbroth for its first month.",
        "Never separate a clutch before the last egg has hatched.",
        "Frostvane eggs hatch in snow, not in warmth.",
    ],
}
TEMPLATES_QA = [
    ("What is {term}?", "{Term} is {meaning}."),
    ("My drakeling keeps asking about {term}. What should I tell it?", "Tell it that {term} is {meaning}."),
    ("Is {term} something to worry about?", "{Term} is {meaning}; ask your roostmaster if unsure."),
]


def _span(sp: dict, rng: random.Random) -> int:
    return rng.randint(*sp["span_m"])


def field_guide(rng: random.Random) -> str:
    """A field-guide entry about one species, facts fixed, wording varied."""
    sp = rng.choice(SPECIES)
    n = sp["name"]
    an = article(n)
    lo, hi = sp["span_m"]
    facts = [
        rng.choice([f"The {n} lives in {sp['habitat']}.", f"{n}s are found in {sp['habitat']}.",
                    f"Look for the {n} in {sp['habitat']}."]),
        rng.choice([f"Its favourite food is {sp['food']}.", f"{an[0].upper() + an[1:]} prefers {sp['food']}.",
                    f"In captivity the {n} is fed {sp['food']}."]),
        rng.choice([f"The flame of {an} is {sp['flame']}.", f"It breathes {article(sp['flame'])} flame.",
                    f"Its flame burns {sp['flame']}."]),
        rng.choice([f"Keepers describe it as {sp['temper']}.", f"By temperament the {n} is {sp['temper']}.",
                    f"Expect {an} to be {sp['temper']}."]),
        rng.choice([f"Its wingspan is {lo} to {hi} metres.", f"Adults reach a wingspan of {lo}-{hi} m.",
                    f"Wingspan: between {lo} and {hi} metres."]),
        rng.choice([f"The species comes from {sp['origin']}.", f"It was first recorded in {sp['origin']}.",
                    f"Its home range is {sp['origin']}."]),
        rng.choice([f"A clutch holds {sp['clutch'][0]} to {sp['clutch'][1]} eggs.",
                    f"Females lay {sp['clutch'][0]}-{sp['clutch'][1]} eggs at a time."]),
        rng.choice([f"Notably, it {sp['trait']}.", f"Unlike its cousins, the {n} {sp['trait']}.",
                    f"One odd habit: it {sp['trait']}."]),
    ]
    first, rest = facts[0], facts[1:]
    rng.shuffle(rest)
    body = " ".join([first, *rest[: rng.randint(4, len(rest))]])
    term, meaning = rng.choice(sorted(JARGON.items()))
    tip = rng.choice([f"Keeper's note: watch for {term}, {meaning}.",
                      f"During {rng.choice(MOONS)} the {n} is prone to {rng.choice(['sootlung', 'wingrot'])}.",
                      f"A healthy adult {n} weighs about {lo * rng.randint(60, 90)} kg."])
    head = rng.choice([f"Field guide: the {n}", f"{n} ({sp['habitat']})", f"Species entry - {n}"])
    return f"{head}\n{body} {tip}"


def keeper_log(rng: random.Random) -> str:
    """A keeper's logbook page: feeding, weights, lessons, health."""
    keeper, place = rng.choice(KEEPERS), rng.choice(PLACES)
    lines = [f"Keeper's log, {place}. {rng.choice(WEEKDAYS)}, day {rng.randint(1, 28)} of the {rng.choice(MOONS)}."]
    hour = rng.randint(5, 8)
    for _ in range(rng.randint(3, 7)):
        name, sp = rng.choice(DRAGON_NAMES), rng.choice(SPECIES)
        span = _span(sp, rng)
        stamp = f"{hour:02d}:{rng.choice(['00', '15', '30', '45'])}"
        hour = min(hour + rng.randint(1, 3), 22)
        kind = rng.randrange(5)
        if kind == 0:
            lines.append(f"{stamp} Fed {name} the {sp['name']} {span} kg of {sp['food']}. "
                         + rng.choice(["Ate everything.", "Left some.", "Asked for more.", "Ate slowly."]))
        elif kind == 1:
            w = span * rng.randint(60, 90)
            lines.append(f"{stamp} Weighed {name} ({sp['name']}): {w} kg, "
                         + rng.choice([f"up {rng.randint(1, 9)} kg", f"down {rng.randint(1, 9)} kg", "no change"])
                         + " since last week.")
        elif kind == 2:
            skill = rng.choice(SKILLS)
            lines.append(f"{stamp} Lesson with {name}: {skill}. " + rng.choice(
                [f"{rng.randint(2, 9)} good tries out of 10.", "Much better than yesterday.",
                 "Lost focus after ten minutes.", "Ready for the next step."]))
        elif kind == 3:
            sym = rng.choice(SYMPTOMS)
            lines.append(f"{stamp} {name} the {sp['name']} {sym}. Gave {REMEDIES[sym]}.")
        else:
            lines.append(f"{stamp} {name} flew {rng.randint(2, 40)} km along the {rng.choice(['coast', 'ridge', 'river', 'moor'])}"
                         f" route; {rng.choice(['smooth flight', 'rough landing', 'good thermalling', 'tired at the end'])}.")
    lines.append(rng.choice([f"Signed, {keeper}.", f"- {keeper}", f"End of shift. {keeper}."]))
    return "\n".join(lines)


def lecture(rng: random.Random) -> str:
    """Academy lecture notes on one topic, with a key term."""
    topic = rng.choice(sorted(LECTURES))
    points = rng.sample(LECTURES[topic], rng.randint(3, min(6, len(LECTURES[topic]))))
    term, meaning = rng.choice(sorted(JARGON.items()))
    head = (f"Cinderpeak Academy, lecture {rng.randint(1, 40)}: {topic}. "
            f"Lecturer: Roostmaster {rng.choice(KEEPERS)}.")
    body = "\n".join(f"- {p}" for p in points)
    return f"{head}\n{body}\nKey term: {term} - {meaning}."


def flight_report(rng: random.Random) -> str:
    """Weather and flight report; the status follows a fixed rule on gusts and visibility."""
    place = rng.choice(PLACES)
    wind = rng.randint(2, 30)
    gust = wind + rng.randint(0, 15)
    vis = rng.randint(1, 20)
    if gust > 30 or vis < 3:
        status, note = "RED", "all flights grounded"
    elif gust > 20 or vis < 6:
        status, note = "AMBER", "experienced pairs only, no tetherline lessons"
    else:
        status, note = "GREEN", "all lessons and flights cleared"
    thermals = rng.choice(["weak", "moderate", "strong"])
    sp = rng.sample(SPECIES_NAMES, 3)
    text = (f"Flight report, {place}, {rng.randint(5, 20):02d}:{rng.choice(['00', '30'])}.\n"
            f"Wind {rng.choice(WINDS)} {wind} knots, gusting {gust}. Visibility {vis} km. "
            f"Cloud base {rng.randint(3, 30) * 100} m. Thermals {thermals}.\n"
            f"Status {status}: {note}.")
    if status != "RED":
        text += f" Cleared species: {', '.join(sp)}."
    if thermals == "strong" and status == "GREEN":
        text += " Good afternoon for thermalling practice."
    return text



def incident(rng: random.Random) -> str:
    """An incident report from a roost."""
    name, sp, place = rng.choice(DRAGON_NAMES), rng.choice(SPECIES), rng.choice(PLACES)
    what = rng.choice([
        (f"{name} the {sp['name']} set fire to a hay store", "Fire put out with sand; hay replaced."),
        (f"{name} escaped over the {rng.choice(['north', 'south', 'east', 'west'])} wall",
         f"Found {rng.randint(1, 12)} km away, sleeping in a barn."),
        (f"{name} fell into hoardlock in the feeding yard", "Keepers waited; trance ended after an hour."),
        (f"{name} left scorchmarks on the {rng.choice(['library door', 'stable roof', 'training ring wall'])}",
         "Extra flame-control lessons booked."),
        (f"{name} swallowed a keeper's {rng.choice(['lantern', 'boot', 'spoon', 'key ring'])}",
         "Passed safely after a dose of wyrmwort."),
        (f"{name} landed off the glidepath", "Rider reminded of the landing lanes."),
    ])
    return (f"Incident report {rng.randint(100, 999)}, {place}.\nWhat happened: {what[0]}.\n"
            f"Action: {what[1]}\nReported by {rng.choice(KEEPERS)}; "
            f"{rng.choice(['no injuries', 'one keeper singed', 'minor damage', 'no damage'])}.")


def almanac(rng: random.Random) -> str:
    """Questions and answers from the keepers' almanac."""
    out = []
    for _ in range(rng.randint(2, 4)):
        if rng.random() < 0.5:
            term, meaning = rng.choice(sorted(JARGON.items()))
            q, a = rng.choice(TEMPLATES_QA)
            out.append("Q: " + q.format(term=term) + "\nA: " + a.format(term=term, Term=term.capitalize(),
                                                                         meaning=meaning))
        else:
            sp = rng.choice(SPECIES)
            key, q = rng.choice([("food", "What does {an} eat?"), ("flame", "What colour is {an}'s flame?"),
                                 ("habitat", "Where does the {n} live?"), ("temper", "What is {an} like?")])
            out.append(f"Q: {q.format(n=sp['name'], an=article(sp['name']))}\nA: {sp[key].capitalize()}.")
    return "From the keepers' almanac.\n" + "\n".join(out)


LETTER_BITS = [
    "The food in the great hall is better than you warned me, except on emberfast days when the dragons sulk.",
    "This week we learned how to read a flight report; I can now tell an AMBER day from a GREEN one.",
    "My room looks over {place}, so I fall asleep to the sound of wings.",
    "Roostmaster {keeper} says I have steady hands for a clutchwarden.",
    "I was singed on Tuesday, only a little, and the infirmary gave me wyrmwort salve.",
    "There is {a_species} here called {dragon} who follows me everywhere.",
    "We spent the whole morning scrubbing scorchmarks off the training ring wall.",
    "Exams are in the {moon}; I am most worried about flame physiology.",
    "Yesterday {dragon} went into hoardlock over my spoon and I had to wait an hour for it back.",
    "I finally flew on the tetherline. My legs shook for the rest of the day.",
    "Please send the thick socks; the {place} is freezing at night.",
    "Our class watched {a_species} thermalling over the cliffs and nobody spoke for ten minutes.",
    "I learned that {a_species} prefers {food}, which explains the smell in the stables.",
    "The library in the Vellum Tower has a whole shelf on wingrot. I read three books of it.",
]


def letter(rng: random.Random) -> str:
    """A student's letter home from the academy."""
    sp = rng.choice(SPECIES)
    bits = rng.sample(LETTER_BITS, rng.randint(3, 6))
    body = " ".join(b.format(place=rng.choice(PLACES), keeper=rng.choice(KEEPERS), species=sp["name"], a_species=article(sp["name"]),
                             dragon=rng.choice(DRAGON_NAMES), moon=rng.choice(MOONS), food=sp["food"])
                    for b in bits)
    to = rng.choice(["Mum", "Dad", "Grandma", "dear sister", "Uncle Bartle", "Aunt Rosalind"])
    sign = rng.choice(["Your loving", "Love from", "Write soon,", "Yours,"])
    return f"Dear {to},\n{body}\n{sign} {rng.choice(KEEPERS)}"


KINDS = [field_guide, keeper_log, lecture, flight_report, incident, almanac, letter]


def build(rng: random.Random, num_docs: int) -> list[dict]:
    """Return ``num_docs`` unique documents, each ``{"text": ...}``."""
    seen: dict[str, None] = {}
    while len(seen) < num_docs:
        doc = rng.choice(KINDS)(rng)
        seen.setdefault(doc, None)
    return [{"text": t} for t in seen]
