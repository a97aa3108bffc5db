"""The dragon-academy world shared by every generated data set: species, places, names, jargon."""

from __future__ import annotations

# Coined species with fixed facts, so the corpus is consistent and a model can learn them.
SPECIES = [
    {"name": "Emberwing", "habitat": "volcanic ridges", "food": "roasted goat", "flame": "orange",
     "temper": "loyal but easily bored", "span_m": (6, 9), "origin": "the Cinderpeak range", "clutch": (2, 4),
     "trait": "warms its eggs by breathing on them"},
    {"name": "Glimmerscale", "habitat": "crystal caves", "food": "river trout", "flame": "silver-blue",
     "temper": "shy and curious", "span_m": (4, 6), "origin": "the Quartz Caverns", "clutch": (3, 5),
     "trait": "reflects lantern light from its scales"},
    {"name": "Thornback", "habitat": "thorn forests", "food": "wild boar", "flame": "smoky red",
     "temper": "stubborn and protective", "span_m": (8, 12), "origin": "the Duskwood", "clutch": (1, 3),
     "trait": "sheds its back spines each spring"},
    {"name": "Frostvane", "habitat": "glacier shelves", "food": "salted cod", "flame": "pale white",
     "temper": "calm and patient", "span_m": (7, 10), "origin": "the Frostmere Cliffs", "clutch": (2, 3),
     "trait": "breathes a cold mist instead of fire in winter"},
    {"name": "Mossdrake", "habitat": "wet valleys", "food": "cabbage and snails", "flame": "weak green",
     "temper": "gentle and slow", "span_m": (3, 5), "origin": "Mossvale", "clutch": (4, 6),
     "trait": "grows a layer of moss on its shoulders"},
    {"name": "Cindermaw", "habitat": "ash plains", "food": "charcoal and mutton", "flame": "deep crimson",
     "temper": "hot-headed and greedy", "span_m": (9, 13), "origin": "the Ashfall Plains", "clutch": (1, 2),
     "trait": "swallows pyroliths to stoke its flame"},
    {"name": "Stormquill", "habitat": "sea cliffs", "food": "mackerel", "flame": "crackling violet",
     "temper": "restless and proud", "span_m": (7, 11), "origin": "Stormcrag", "clutch": (2, 4),
     "trait": "rides thunderstorm updrafts for hours"},
    {"name": "Ashcoil", "habitat": "old chimneys and ruins", "food": "pigeons", "flame": "grey and sooty",
     "temper": "sly and clever", "span_m": (2, 4), "origin": "the ruins of Old Brennick", "clutch": (3, 6),
     "trait": "coils around warm stones to sleep"},
    {"name": "Duskhorn", "habitat": "twilight moors", "food": "venison", "flame": "amber",
     "temper": "solemn and watchful", "span_m": (8, 10), "origin": "the Gloam Moors", "clutch": (1, 3),
     "trait": "only hunts at dusk"},
    {"name": "Brineclaw", "habitat": "tidal marshes", "food": "crab and kelp", "flame": "steamy blue",
     "temper": "playful and noisy", "span_m": (5, 7), "origin": "Brinehaven", "clutch": (3, 5),
     "trait": "can hold its breath under water for an hour"},
    {"name": "Quillothrax", "habitat": "high deserts", "food": "lizards and dates", "flame": "golden",
     "temper": "vain and talkative", "span_m": (6, 8), "origin": "the Zarreth Dunes", "clutch": (2, 3),
     "trait": "rattles its tail quills as a warning"},
    {"name": "Vyrrathi", "habitat": "cloud forests", "food": "fruit bats", "flame": "flickering teal",
     "temper": "aloof and elegant", "span_m": (5, 8), "origin": "the Vyrr Highlands", "clutch": (1, 2),
     "trait": "changes colour with its mood"},
]
SPECIES_NAMES = [s["name"] for s in SPECIES]

# Species that never appear in the intent train/validation/test splits (domain-shift only).
SHIFT_SPECIES = ["Skarnwyrm", "Zhelkovar", "Pyrrhonax", "Glaswing", "Umbracoil", "Tidewhelp"]

# Domain jargon: coined words that a general tokenizer splits into many pieces.
JARGON = {
    "scalebloom": "the yearly molt when old scales flake away",
    "emberfast": "a rest day without food that keeps the flame gland healthy",
    "hoardlock": "the trance a dragon falls into while guarding its hoard",
    "pyrolith": "a fire stone some species swallow to stoke their flame",
    "sootlung": "a cough caused by breathing too much of its own smoke",
    "wingrot": "a fungus that eats at the wing membrane",
    "wyrmwort": "a bitter herb that settles a dragon's stomach",
    "kindleroot": "a root chewed by dragons to relight a weak flame",
    "flarecap": "a red mushroom that makes flames burn brighter",
    "emberbroth": "a warm mash given to sick or very young dragons",
    "thermalling": "circling upward on rising warm air",
    "clutchwarden": "the keeper responsible for eggs and hatchlings",
    "roostmaster": "the senior keeper in charge of a roost",
    "glidepath": "the marked lane a dragon follows when landing",
    "scorchmark": "a burn left on stone by an untrained flame",
    "drakeling": "a dragon between its first and fifth year",
    "tetherline": "the long rope used in early flight lessons",
    "gizzardstone": "a smooth stone a dragon swallows to grind bones",
}

PLACES = ["North Roost", "Ember Hollow", "Frostmere Cliffs", "Mossvale Pens", "Stormcrag Perch", "Brinehaven Docks",
          "Duskwood Clearing", "Quartz Caverns", "Ashfall Yard", "the Vellum Tower", "the East Paddock",
          "the Hatchery", "South Gate", "the Training Ring", "the Infirmary Wing", "Old Brennick Ruins"]
SHIFT_PLACES = ["Kelvath Moorings", "the Glasshouse Eyrie", "Ronnery Wharf", "Saltmarrow Keep", "the Lantern Steps"]

KEEPERS = ["Mara", "Tobin", "Idris", "Wren", "Oona", "Cassius", "Lyra", "Bram", "Selka", "Juno", "Hale", "Ines",
           "Perrin", "Nadia", "Osric", "Talia", "Fenn", "Greta", "Quinn", "Rowan", "Esme", "Dorian", "Anwen",
           "Milo", "Sabine", "Theo", "Yara", "Corwin", "Pell", "Vesna"]

DRAGON_NAMES = ["Pip", "Cinder", "Biscuit", "Nimbus", "Sable", "Tansy", "Juniper", "Marlowe", "Ozzie", "Fig",
                "Bramble", "Clove", "Dusty", "Ember", "Flint", "Gale", "Hazel", "Indigo", "Jasper", "Kestrel",
                "Lumen", "Moss", "Nettle", "Onyx", "Pepper", "Quince", "Rook", "Saffron", "Thistle", "Umber",
                "Vesper", "Willow", "Yarrow", "Zephyr", "Ash", "Blaze", "Cobalt", "Dandelion", "Ferro", "Ginger",
                "Halcyon", "Ivy", "Kettle", "Larkspur", "Mango", "Noodle", "Orrin", "Puddle", "Rumble", "Smudge"]
SHIFT_NAMES = ["Grizzletoe", "Snorrbuck", "Wimbledot", "Krakk", "Mothball", "Zubzub", "Tuffet", "Vorr"]

FOODS = ["roasted goat", "river trout", "wild boar", "salted cod", "mutton", "mackerel", "venison", "crab",
         "pigeons", "dates", "emberbroth", "cabbage", "pumpkins", "charcoal"]
SYMPTOMS = ["is coughing up black smoke", "is limping on the left hind leg", "is refusing food",
            "is scratching its scales raw", "is sneezing sparks", "is losing scales in patches", "is breathing heavily",
            "has a swollen wing joint", "has a dull, flickering flame", "has cloudy eyes",
            "is shivering near the fire pit", "has a torn wing membrane"]
SKILLS = ["landing on the glidepath", "flying on the tetherline", "holding a flame on command", "recall to the whistle",
          "carrying a saddle", "hovering", "thermalling", "staying calm in crowds", "dropping a hoard item on cue",
          "night flying"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MOONS = ["Thaw Moon", "Seed Moon", "Ember Moon", "High Moon", "Ash Moon", "Frost Moon"]
WINDS = ["N", "NE", "E", "SE", "S", "SW", "W", "NW"]


def article(word: str) -> str:
    """``word`` with "a" or "an" in front (by its first letter, good enough for our coined names)."""
    return ("an " if word[0].lower() in "aeiou" else "a ") + word
