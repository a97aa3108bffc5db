"""General-knowledge probe for forgetting: short facts we wrote ourselves, with accepted aliases."""

from __future__ import annotations

# (category, question, answer, aliases)
CAPITALS = [("France", "Paris"), ("Germany", "Berlin"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Japan", "Tokyo"),
            ("the United Kingdom", "London"), ("Russia", "Moscow"), ("China", "Beijing"), ("Egypt", "Cairo"),
            ("Canada", "Ottawa"), ("Australia", "Canberra"), ("Greece", "Athens"), ("Portugal", "Lisbon"),
            ("Ireland", "Dublin"), ("Norway", "Oslo"), ("Sweden", "Stockholm"), ("Austria", "Vienna"),
            ("Poland", "Warsaw"), ("India", "New Delhi"), ("Mexico", "Mexico City"), ("Argentina", "Buenos Aires"),
            ("South Korea", "Seoul"), ("Thailand", "Bangkok"), ("Kenya", "Nairobi"), ("Turkey", "Ankara"),
            ("the Netherlands", "Amsterdam"), ("Belgium", "Brussels"), ("Denmark", "Copenhagen"),
            ("Finland", "Helsinki"), ("Peru", "Lima")]
CAPITAL_ALIASES = {"New Delhi": ["Delhi"], "Mexico City": ["Ciudad de Mexico"]}

SCIENCE = [
    ("What is the chemical symbol for water?", "H2O", []),
    ("What is the chemical symbol for gold?", "Au", []),
    ("What is the chemical symbol for oxygen?", "O", []),
    ("What planet do we live on?", "Earth", ["the Earth"]),
    ("What is the largest planet in the solar system?", "Jupiter", []),
    ("Which planet is known as the Red Planet?", "Mars", []),
    ("What is the closest star to Earth?", "the Sun", ["Sun"]),
    ("What gas do plants take in from the air?", "carbon dioxide", ["CO2"]),
    ("What gas do humans need to breathe to live?", "oxygen", ["O2"]),
    ("At what temperature in Celsius does water freeze?", "0", ["zero", "0 degrees", "0 degrees Celsius"]),
    ("At what temperature in Celsius does water boil at sea level?", "100", ["100 degrees",
                                                                              "100 degrees Celsius"]),
    ("What organ pumps blood around the body?", "heart", ["the heart"]),
    ("What organ do humans think with?", "brain", ["the brain"]),
    ("How many legs does a spider have?", "8", ["eight"]),
    ("How many legs does an insect have?", "6", ["six"]),
    ("What is the hardest natural substance?", "diamond", []),
    ("What force pulls objects toward the Earth?", "gravity", []),
    ("What is frozen water called?", "ice", []),
    ("What is the largest ocean on Earth?", "Pacific", ["the Pacific", "Pacific Ocean", "the Pacific Ocean"]),
    ("What is the largest mammal?", "blue whale", ["the blue whale"]),
    ("What do bees make?", "honey", []),
    ("What do caterpillars turn into?", "butterflies", ["butterfly", "a butterfly", "moths", "moth"]),
    ("How many bones are in the adult human body?", "206", []),
    ("What is the boiling point of water in Fahrenheit?", "212", ["212 degrees", "212 degrees Fahrenheit"]),
    ("Which planet is closest to the Sun?", "Mercury", []),
]
ARITHMETIC = [("What is 2 + 2?", "4", ["four"]), ("What is 7 + 5?", "12", ["twelve"]),
              ("What is 10 - 3?", "7", ["seven"]), ("What is 3 * 4?", "12", ["twelve"]),
              ("What is 9 * 9?", "81", []), ("What is 100 / 4?", "25", []), ("What is 15 + 15?", "30", []),
              ("What is 6 * 7?", "42", []), ("What is 50 - 25?", "25", []), ("What is 12 / 3?", "4", ["four"]),
              ("How many minutes are in an hour?", "60", ["sixty"]),
              ("How many hours are in a day?", "24", ["twenty-four"]),
              ("How many days are in a week?", "7", ["seven"]), ("How many months are in a year?", "12", ["twelve"]),
              ("How many sides does a triangle have?", "3", ["three"]),
              ("How many sides does a square have?", "4", ["four"]),
              ("How many days are in a leap year?", "366", []),
              ("What is the square root of 16?", "4", ["four"]), ("What is 5 squared?", "25", []),
              ("How many centimetres are in a metre?", "100", ["one hundred"])]
OPPOSITES = [("hot", "cold"), ("up", "down"), ("big", "small"), ("day", "night"), ("fast", "slow"),
             ("happy", "sad"), ("open", "closed"), ("light", "dark"), ("old", "new"), ("wet", "dry"),
             ("left", "right"), ("black", "white"), ("in", "out"), ("full", "empty"), ("early", "late")]
OPPOSITE_ALIASES = {"big": ["little", "tiny"], "open": ["shut"], "old": ["young"], "light": ["heavy", "darkness"]}
GENERAL = [
    ("What colour is the sky on a clear day?", "blue", []),
    ("What colour is grass?", "green", []),
    ("What colour do you get by mixing red and white?", "pink", []),
    ("What colour do you get by mixing blue and yellow?", "green", []),
    ("What is the plural of mouse?", "mice", []),
    ("What is the plural of child?", "children", []),
    ("What is the past tense of go?", "went", []),
    ("What animal says moo?", "cow", ["a cow", "cows"]),
    ("What animal is known as the king of the jungle?", "lion", ["the lion", "a lion"]),
    ("What is a baby dog called?", "puppy", ["a puppy", "pup"]),
    ("What is a baby cat called?", "kitten", ["a kitten"]),
    ("What is the first letter of the English alphabet?", "A", []),
    ("How many letters are in the English alphabet?", "26", ["twenty-six"]),
    ("What is the longest river in Africa?", "Nile", ["the Nile", "Nile River", "the Nile River"]),
    ("What is the tallest mountain in the world?", "Mount Everest", ["Everest"]),
    ("On which continent is Brazil?", "South America", []),
    ("On which continent is Kenya?", "Africa", []),
    ("What language is mainly spoken in Brazil?", "Portuguese", []),
    ("What language is mainly spoken in Mexico?", "Spanish", []),
    ("Who wrote Romeo and Juliet?", "William Shakespeare", ["Shakespeare"]),
    ("What is the first month of the year?", "January", []),
    ("What is the last month of the year?", "December", []),
    ("What day comes after Monday?", "Tuesday", []),
    ("What season comes after winter?", "spring", []),
    ("What currency is used in Japan?", "yen", ["the yen", "Japanese yen"]),
    ("What is the main ingredient of bread?", "flour", ["wheat", "wheat flour"]),
    ("What do you call a shape with eight sides?", "octagon", ["an octagon"]),
    ("Which fruit is yellow and curved?", "banana", ["a banana", "bananas"]),
]


def build() -> list[dict]:
    """Return the probe questions ``{"question", "answer", "aliases", "category"}`` in a fixed order."""
    rows = [("capital", f"What is the capital of {c}?", a, CAPITAL_ALIASES.get(a, [])) for c, a in CAPITALS]
    rows += [("science", q, a, al) for q, a, al in SCIENCE]
    rows += [("arithmetic", q, a, al) for q, a, al in ARITHMETIC]
    rows += [("opposite", f"What is the opposite of {w}?", a, OPPOSITE_ALIASES.get(w, [])) for w, a in OPPOSITES]
    rows += [("general", q, a, al) for q, a, al in GENERAL]
    return [{"question": q, "answer": a, "aliases": list(al), "category": cat} for cat, q, a, al in rows]
