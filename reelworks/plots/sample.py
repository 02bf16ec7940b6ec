"""A small synthetic movies CSV, so the demo and tests run on a machine without real data.

The plots are made from sentence parts and word lists (seeded, so the same file every time):
enough structure for a tiny model to learn, in the TMDB shape that `plots prep` reads.
"""
from __future__ import annotations

import csv
import io
import random
import re

from reelworks import storage

GENRES = {
    "Science Fiction": (["astronaut", "android", "engineer", "pilot", "scientist", "cadet", "smuggler", "medic"],
                        ["a derelict station", "a Mars colony", "a starship", "a moon base", "an ice planet",
                         "a generation ship", "an orbital prison"],
                        ["an alien signal", "a rogue AI", "a time loop", "a meteor", "a clone army", "a dying sun",
                         "a mutiny", "a wormhole"]),
    "Horror": (["nurse", "babysitter", "priest", "widow", "watchman", "medium", "gravedigger", "tenant"],
               ["an asylum", "a cabin", "a lighthouse", "a farmhouse", "a boarding school", "a motel",
                "a mine shaft"],
               ["a ghost", "a demon", "a cursed doll", "a witch", "a hungry fog", "a wendigo", "a cult",
                "a faceless thing"]),
    "Fantasy": (["thief", "wizard", "princess", "blacksmith", "bard", "knight", "healer", "shepherd"],
                ["a cursed kingdom", "an elven forest", "a dragon city", "the high passes", "a floating isle",
                 "a goblin market", "a frozen keep"],
                ["a sorcerer", "a prophecy", "a stolen crown", "a dragon", "a troll king", "a shadow queen",
                 "a broken oath", "a giant"]),
    "Comedy": (["planner", "teacher", "magician", "critic", "mascot", "dentist", "intern", "barber"],
               ["a small town", "a cruise ship", "a reunion", "a bakery", "a ski resort", "a talent show",
                "a wedding"],
               ["a mix-up", "a lottery ticket", "a runaway goat", "a billionaire", "a fake fiancé", "a bet",
                "a parrot", "a prank war"]),
    "Crime": (["detective", "driver", "con artist", "safecracker", "lawyer", "informant", "forger", "bouncer"],
              ["Chicago", "Las Vegas", "Marseille", "a border town", "Naples", "the docks", "Macau"],
              ["a heist", "a crooked captain", "a witness", "a cartel", "a blackmailer", "a hitman",
               "a fixed fight", "a ledger"]),
    "Romance": (["florist", "violinist", "bookseller", "reporter", "chef", "sailor", "painter", "nurse"],
                ["Paris", "Tuscany", "a seaside village", "New York", "Lisbon", "Kyoto", "a vineyard"],
                ["an old letter", "a rival", "a secret engagement", "a last summer", "a lost ring", "a duet",
                 "a missed train", "a promise"]),
}
FIRST = ["Anna", "Marcus", "Lena", "Theo", "Ruth", "Jonah", "Mira", "Victor", "Ada", "Felix", "Nora", "Sam",
         "Iris", "Oscar", "Greta", "Hugo", "Celia", "Abel", "Tess", "Rafael", "Yara", "Leo", "Ines", "Boris",
         "Dara", "Emil", "Kiko", "Pia", "Omar", "June", "Nils", "Vera"]
ADJECTIVES = ["lonely", "stubborn", "young", "retired", "ambitious", "clumsy", "grieving", "fearless", "bitter",
              "naive", "disgraced", "restless", "shy", "reckless", "weary", "gifted", "broke", "proud"]
EVENTS = ["reaches", "is stranded in", "inherits", "returns to", "works in", "wakes up in", "flees to",
          "hides in", "is sent to", "moves to"]
ACTIONS = ["must face", "finds", "hunts", "is hunted by", "bargains with", "falls for", "exposes", "outwits",
           "fights", "befriends", "escapes", "follows", "protects", "steals from"]
ENDINGS = ["", "", "", " before dawn", " at any cost", " alone", " in secret", " for good", " too late"]
TITLE_WORDS = ["Night", "Shadow", "Last", "Silver", "Broken", "Hidden", "Winter", "Red", "Lost", "Iron", "Golden",
               "Silent", "Wild", "Dark", "Second", "Midnight", "Paper", "Glass", "Quiet", "Burning", "Northern",
               "Velvet", "Hollow", "Distant", "Crimson", "Sleeping", "Bitter", "Electric", "Hungry", "Little",
               "Savage", "Frozen", "Secret", "Final", "Blue", "Crooked"]
TITLE_NOUNS = ["Harbor", "Signal", "Crown", "Promise", "Garden", "Station", "Letter", "Heist", "Kingdom", "Code",
               "Summer", "Door", "River", "Orbit", "Lie", "Witness", "Bridge", "Mirror", "Engine", "Island",
               "Lantern", "Valley", "Echo", "Debt", "Tide", "Oath", "Circus", "Hotel", "Storm", "Key", "Road",
               "Song", "Moon", "Game", "Fire", "Map"]


# "an" goes before a vowel sound: a vowel letter, except where it sounds like "y" or "w" (a
# unique, a one-off, a European), and a silent h (an honest, an hour).
_VOWEL_SOUND = re.compile(r"(?!uni|use|usu|eu|ewe|one\b|once)[aeiou]|hour|honest|honou?r|heir", re.I)


def with_article(word: str) -> str:
    """`word` after its indefinite article: "a young", "an ambitious", "an hour", "a unique"."""
    return f"{'an' if _VOWEL_SOUND.match(word) else 'a'} {word}"


def _sentence(rng: random.Random, genre: str) -> str:
    # Short plots from many small interchangeable parts: a tiny model learns the grammar, and
    # what it writes is mostly new combinations (not copies), short enough for one tweet.
    roles, places, threats = GENRES[genre]
    return (f"{rng.choice(FIRST)}, {with_article(rng.choice(ADJECTIVES))} {rng.choice(roles)}, {rng.choice(EVENTS)} "
            f"{rng.choice(places)} and {rng.choice(ACTIONS)} {rng.choice(threats)}{rng.choice(ENDINGS)}.")


def sample_movies_csv(uri: str, n: int = 600, seed: int = 0) -> str:
    """Write `n` synthetic movies (TMDB columns) to `uri`; returns `uri`."""
    rng = random.Random(seed)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "title", "genre", "original_language", "overview", "release_date"])
    for i in range(n):
        genre = rng.choice(list(GENRES))
        second = rng.choice([g for g in GENRES if g != genre])
        sentences = [_sentence(rng, genre)]
        # A large title space, so a model can invent titles that are not real ones.
        word, noun, name = rng.choice(TITLE_WORDS), rng.choice(TITLE_NOUNS), rng.choice(FIRST)
        title = rng.choice([f"{word} {noun}", f"The {word} {noun}", f"{noun} of {name}", f"{name}'s {noun}"])
        year = rng.randint(1950, 2024)
        writer.writerow([1000 + i, title, f"{genre},{second}", "en", " ".join(sentences),
                         f"{year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"])
    storage.write_text(uri, out.getvalue())
    return uri
