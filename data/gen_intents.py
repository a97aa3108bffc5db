"""Help-desk intents: train phrasings, extra held-out phrasings in validation/test, another register for domain_shift."""

from __future__ import annotations

import random

from world import (
    DRAGON_NAMES,
    FOODS,
    KEEPERS,
    MOONS,
    PLACES,
    SHIFT_NAMES,
    SHIFT_PLACES,
    SHIFT_SPECIES,
    SKILLS,
    SPECIES_NAMES,
    SYMPTOMS,
    WEEKDAYS,
    article,
)

LABELS = ["feed", "heal", "train", "book_flight", "report_fire", "adopt", "lost_dragon", "billing"]
SPLIT_SIZES = {"train": 200, "validation": 25, "test": 50}  # examples per label
SHIFT_SIZE = 40  # domain_shift examples per label

THINGS = ["hay store", "feed shed", "library door", "saddle room", "thatch roof", "fence", "kitchen", "straw bales",
          "tack room", "storage barn"]
AGES = [a for a in range(2, 40) if a not in (8, 11, 18)]  # no "a 8-year-old"
TIMES = ["06:00", "08:30", "10:15", "noon", "14:45", "17:00", "dusk"]

TEMPLATES = {
    "feed": [
        "How much {food} should I give my {species} each day?",
        "What is the right feeding schedule for a {age}-year-old {species}?",
        "{name} won't stop begging for food after dinner, should I feed him more?",
        "Can I feed {food} to {a_species} hatchling?",
        "Is it ok to give {name} {food} twice a day?",
        "We ran out of {food} at {place}. What can {name} eat instead?",
        "Please order {n} kg of {food} for the {species} pens.",
        "When is the next feeding round at {place}?",
        "How many gizzardstones does {a_species} need with its meals?",
        "My {species} only eats {food}, is that a balanced diet?",
        "Should {name} have an emberfast day this week or skip it?",
        "{name} has been eating {n} kg of {food} a day, is that too much?",
        "After the flight lesson {name} is always starving; can I give extra {food}?",
        "Who is on feeding duty at {place} on {day} morning?",
    ],
    "heal": [
        "{name} {symptom}. What should I do?",
        "My {species} {symptom} since {day}, is it serious?",
        "Can a healer come to {place}? {name} {symptom}.",
        "I think {name} has sootlung, she {symptom}.",
        "Is wingrot contagious? Our {species} {symptom}.",
        "Our drakeling {symptom} after the flight lesson, should we call the infirmary?",
        "Need a vet appointment for {name} the {species} as soon as possible.",
        "What medicine helps {a_species} that {symptom}?",
        "{name} got hurt during practice for {skill} and now {symptom}.",
        "Since eating {food}, {name} {symptom}. Is it the food?",
        "Please book {name} in at the Infirmary Wing, she {symptom}.",
        "Is it normal that {a_species} {symptom} during scalebloom?",
    ],
    "train": [
        "How do I teach {name} {skill}?",
        "Are there classes for {skill} at {place}?",
        "My {species} keeps ignoring the whistle. Any training tips?",
        "I'd like to sign {name} up for the course on {skill}.",
        "{name} left scorchmarks again, how do I train better flame control?",
        "At what age should {a_species} start {skill}?",
        "How many lessons does it take to master {skill}?",
        "Can you recommend a trainer for a stubborn {species}?",
        "{name} goes into hoardlock during lessons; how do I keep her focused?",
        "Is the tetherline safe for a {age}-year-old {species}?",
        "Could I get extra practice time in the Training Ring on {day} for {name}?",
        "{name} bites the saddle every time, how do I get him used to it?",
        "What rewards work best when training {a_species}? {name} ignores {food}.",
    ],
    "book_flight": [
        "I'd like to book a flight from {place} to {place2} on {day}.",
        "Can I reserve a ride on {a_species} for {n} passengers?",
        "Are there seats left on the {time} flight to {place2}?",
        "Please book me a dragon ride to {place2} this {day}.",
        "How much notice do you need to schedule a flight to {place2}?",
        "I need to move my flight on {day} to the {time} departure.",
        "Can I bring {n} bags on the {species} flight to {place2}?",
        "Is the {time} flight to {place2} still running if the report is AMBER?",
        "Book two seats on {name} for {day} afternoon, please.",
        "What time does the first morning flight leave {place}?",
        "Can I charter {a_species} for a day trip to {place2}?",
        "We want a scenic flight over {place2} for a birthday on {day}.",
        "Reserve a landing slot on the glidepath at {place2} for {time}.",
    ],
    "report_fire": [
        "Fire at {place}! The {thing} is burning.",
        "{name} just set the {thing} on fire, send help now!",
        "There's smoke coming out of the {thing} at {place}.",
        "Emergency: the stables at {place} are on fire.",
        "{A_species} sneezed and the {thing} caught fire.",
        "Flames spreading near {place}, we need the sand crew.",
        "The {thing} is burning after {name}'s flame-control lesson!",
        "Is anyone coming? The fire at {place} is getting bigger.",
        "Small blaze in the {thing} at {place}; we put some out but it flared up.",
        "{name} breathed fire into the {thing} and it is still burning.",
        "Smoke alarm at {place}, the {thing} is alight.",
        "Wildfire on the hill above {place}, looks like {a_species} started it.",
    ],
    "adopt": [
        "How do I adopt {a_species} hatchling?",
        "I'd like to adopt {name}, is she still available?",
        "What are the requirements to adopt a dragon from {place}?",
        "Can a family with {n} kids adopt {a_species}?",
        "Are there any {species} eggs up for adoption this {moon}?",
        "We want to give a home to a retired {species}.",
        "Is there an adoption fee for {a_species} drakeling?",
        "How big a yard do I need to adopt {a_species}?",
        "Can I visit the Hatchery to meet hatchlings before adopting one?",
        "My application to adopt {name} was sent on {day}; any news?",
        "Do you rehome older dragons like {name}?",
        "I've always wanted {a_species} of my own. Where do I start?",
        "Can I adopt two hatchlings from the same {species} clutch?",
    ],
    "lost_dragon": [
        "{name} escaped from {place} last night and hasn't come back.",
        "Has anyone seen {a_species} named {name}? Missing since {day}.",
        "Our drakeling flew off during practice for {skill} and we can't find it.",
        "I can't find {name} anywhere in {place}.",
        "Missing dragon: {species}, answers to {name}, last seen near {place2}.",
        "{name} broke the tetherline and vanished over the ridge.",
        "My {species} didn't return from the {time} flight.",
        "Lost: a small {species} wearing a red collar, near {place}.",
        "{name} has been gone for {n} days, who do I report this to?",
        "A neighbour saw {name} heading toward {place2}. Can someone go look?",
        "Help, the {species} pen at {place} is empty and the gate is open.",
        "{name} wandered off after her emberfast and nobody knows where she is.",
    ],
    "billing": [
        "I was charged twice for {name}'s boarding this month.",
        "Can I get a refund for the cancelled flight on {day}?",
        "How much does boarding {a_species} cost per week?",
        "My invoice says {n} gold crowns but I expected less.",
        "Where do I pay the stabling fee for {place}?",
        "Can I pay the infirmary bill for {name} in instalments?",
        "Please send a receipt for the {food} order.",
        "Why did my monthly fee go up to {n} crowns?",
        "Do you accept payment in silver for training lessons?",
        "I need an itemised bill for {name}'s stay at {place}.",
        "My card was declined when paying for {name}'s saddle.",
        "Is there a discount for keepers with {n} dragons?",
        "I'd like to cancel my boarding plan and close my account.",
    ],
}
# Phrasings kept out of the train split (they appear only in validation/test), with words from other intents.
HELD_OUT = {
    "feed": [
        'The healer said {name} needs more weight; how much {food} per meal?',
        'What should {a_species} eat the night before a long flight?',
        'Is it fine to feed {name} right after a training session or should I wait?',
    ],
    "heal": [
        '{name} swallowed a coin from the billing office and now {symptom}.',
        'After the fire at {place}, our {species} {symptom}.',
        'Is kindleroot safe for a drakeling that {symptom}?',
    ],
    "train": [
        '{name} panics on every flight; can we practise calm take-offs with a trainer?',
        'Before we adopt a second dragon, how do I teach {name} to share her hoard?',
        'How do I stop {name} from setting the hay on fire during lessons?',
    ],
    "book_flight": [
        'My {species} recovered from wingrot; can we book a passenger flight to {place2} again?',
        'Put me on the waiting list for any dragon flight to {place2} on {day}.',
        'Does the ride to {place2} on {day} leave from {place}? I want to reserve a seat.',
    ],
    "report_fire": [
        "The smoke from the {thing} at {place} is making the dragons cough, it's still burning!",
        'Our newly adopted drakeling lit the {thing} at {place}, flames everywhere.',
        'Fire in the billing office at {place}, the papers are burning!',
    ],
    "adopt": [
        'The Hatchery says {a_species} egg is ready for a new family; can we take it?',
        'We lost our old dragon last year and are ready to adopt another {species}.',
        'Can I adopt {name} once her flight training is finished?',
    ],
    "lost_dragon": [
        '{name} flew off during the fire drill at {place} and never came back.',
        'We paid for boarding but {name} is not in her stall and no one knows where she went.',
        'Our newly adopted {species} slipped its tether and is missing.',
    ],
    "billing": [
        "The healer's bill for {name}'s wing treatment seems too high, can you check it?",
        'I was charged for a flight to {place2} that I never took.',
        'Why does the feeding plan for {name} cost {n} crowns more this month?',
    ],
}
PREFIXES = ["", "", "", "Hi, ", "Hello, ", "Good morning. ", "Dear help desk, ", "Quick question: ",
            "Keeper {keeper} here. ", "Hi team, "]
SUFFIXES = ["", "", "", " Thanks!", " Thank you.", " Please help.", " Cheers.", " Any advice welcome."]

# Held-out register (slang, archaic, officialese) and held-out names for the domain_shift split.
SHIFT_TEMPLATES = {
    "feed": ["yo wat do i feed {name} lol, the {species} keeps eyeing my sandwich",
             "Pray tell, good keepers, what victuals befit {a_species} of tender years?",
             "{name} is HANGRY. grub ideas?? she is {a_species}",
             "nosh plan for {a_species} pls, how many kilos a day",
             "Kindly advise on the appropriate daily ration for our {species}, {name}."],
    "heal": ["{name} is proper poorly, all droopy and off-colour, help",
             "I humbly beseech a physician for my ailing {species}, {name}.",
             "sumthin wrong w/ {name}, wheezy n sad since {day}",
             "Request a medical examination for {species} {name} at {place}.",
             "our {species} looks sick as heck, {name} is not herself at all"],
    "train": ["how do i get {name} to actually listen?? {species} is a menace",
              "Would the academy kindly instruct my {species} in the art of obedience?",
              "tips for teaching {name} tricks? shes smart but lazy",
              "Seeking a tutor to school {name} the {species} in manners and commands.",
              "need coaching for my {species}, {name} wont do anything i say"],
    "book_flight": ["can i grab a lift on {a_species} to {place} tmrw?",
                    "I should like to secure passage by wing to {place} upon the morrow.",
                    "need 2 spots on the next dragon ride out to {place} pls",
                    "Requesting an airborne transfer to {place} for one traveller on {day}.",
                    "wanna ride {name} to {place} this weekend, how do i get a seat"],
    "report_fire": ["EVERYTHING IS ON FIRE at {place} send ppl",
                    "Alas! A great conflagration consumes the barns of {place}!",
                    "omg {name} torched the shed, its blazing rn",
                    "Urgent: an inferno has broken out near {place}, smoke visible for miles.",
                    "the roof is burning!! {a_species} sneezed on it"],
    "adopt": ["can i take {name} home forever? pls say yes",
              "I wish to become the guardian of a young {species}. How might I proceed?",
              "how do i get my own baby {species}, asking for me",
              "We would be honoured to give {name} the {species} a permanent home.",
              "wanna rehome {a_species}, whats the process"],
    "lost_dragon": ["{name} did a runner, no clue where he went",
                    "Our {species} hath flown and not returned these {n} days.",
                    "cant find my {species} anywhere, last seen at {place}",
                    "Alert: {species} {name} unaccounted for since {day} near {place}.",
                    "{name} went awol again, anyone spotted {a_species}?"],
    "billing": ["why'd u charge me {n} crowns?? thats a rip off",
                "I write to dispute a charge of {n} crowns upon my account.",
                "need my money back, paid twice for {name}",
                "Kindly furnish a statement of charges for {name}'s lodging at {place}.",
                "how much do i owe for {name}'s stay, cant find the bill"],
}
SHIFT_PREFIXES = ["", "", "oi ", "Greetings. ", "URGENT ", "To whom it may concern: ", "hey hey "]
SHIFT_SUFFIXES = ["", "", " ty", " thx", " Yours faithfully.", " !!!", " asap"]


def _slots(rng: random.Random, shift: bool) -> dict:
    places = SHIFT_PLACES if shift else PLACES
    place, place2 = rng.sample(places, 2)
    species = rng.choice(SHIFT_SPECIES if shift else SPECIES_NAMES)
    return {"name": rng.choice(SHIFT_NAMES if shift else DRAGON_NAMES), "species": species,
            "a_species": article(species), "A_species": "A" + article(species)[1:],
            "place": place, "place2": place2, "food": rng.choice(FOODS), "symptom": rng.choice(SYMPTOMS),
            "skill": rng.choice(SKILLS), "day": rng.choice(WEEKDAYS), "time": rng.choice(TIMES),
            "n": rng.randint(2, 12), "age": rng.choice(AGES), "moon": rng.choice(MOONS),
            "thing": rng.choice(THINGS), "keeper": rng.choice(KEEPERS)}


def _message(rng: random.Random, label: str, kind: str) -> str:
    """One message; ``kind`` is "seen" (train phrasings), "all" (+ held-out phrasings) or "shift"."""
    slots = _slots(rng, kind == "shift")
    prefixes, suffixes = (SHIFT_PREFIXES, SHIFT_SUFFIXES) if kind == "shift" else (PREFIXES, SUFFIXES)
    templates = {"seen": TEMPLATES[label], "all": TEMPLATES[label] + HELD_OUT[label],
                 "shift": SHIFT_TEMPLATES[label]}[kind]
    core = rng.choice(templates).format(**slots)
    return (rng.choice(prefixes).format(**slots) + core + rng.choice(suffixes)).strip()


def _unique(rng: random.Random, label: str, count: int, kind: str, seen: dict) -> list[str]:
    out: list[str] = []
    for _ in range(100 * count):
        if len(out) == count:
            return out
        text = _message(rng, label, kind)
        if text not in seen:
            seen[text] = None
            out.append(text)
    raise RuntimeError(f"templates for {label!r} cannot make {count} unique messages: add templates")


def build(rng: random.Random) -> dict[str, list[dict]]:
    """Return ``{split: [{"text", "label"}, ...]}`` with balanced labels and no text in two splits."""
    splits: dict[str, list[dict]] = {name: [] for name in [*SPLIT_SIZES, "domain_shift"]}
    seen: dict[str, None] = {}
    for label in LABELS:
        for split, size in SPLIT_SIZES.items():
            kind = "seen" if split == "train" else "all"
            splits[split] += [{"text": t, "label": label} for t in _unique(rng, label, size, kind, seen)]
        splits["domain_shift"] += [{"text": t, "label": label} for t in _unique(rng, label, SHIFT_SIZE, "shift", seen)]
    for rows in splits.values():
        rng.shuffle(rows)
    return splits
