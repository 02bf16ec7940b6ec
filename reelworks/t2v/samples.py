"""Descriptions for demos and tests: the shared Condensed Movies descriptions when present, else
a small set generated here (the repository ships no copy of the shared data).

The generated set reads like the real one (one sentence: who does what, where) and holds a
few exact and near repeats on purpose, so the near-duplicate filter has something to find.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from reelworks import storage
from reelworks.settings import cache_dir, shared_data_dir

SHARED_DESCRIPTIONS = "captions/descriptions.csv"

_WHO = ["Rick", "The detective", "Mary", "A young pilot", "The captain", "Two old friends", "The bride",
        "A stranger", "The sheriff", "Elsa", "The boxer", "A small boy", "The astronaut", "The thief", "Grandma"]
_ACTION = ["confronts a rival", "says goodbye to her father", "escapes from the guards", "dances with a stranger",
           "finds a hidden letter", "races a train", "argues about money", "rescues a dog", "sings at a wedding",
           "hides from a storm", "fixes an old car", "wins the final match", "tells a secret", "opens the vault",
           "watches the sunrise"]
_WHERE = ["in a rainy alley", "on a crowded beach", "inside a burning house", "at the top of a lighthouse",
          "in a quiet diner", "on a snowy mountain road", "in the desert", "aboard a space station",
          "in a candle-lit church", "at a busy train station", "in a neon-lit arcade", "under a bridge at night"]


def generate_descriptions(n: int = 240, seed: int = 0) -> list[str]:
    """`n` one-sentence clip descriptions (who, action, where), with about 5 % repeats."""
    rng = np.random.default_rng(seed)
    out: list[str] = []
    while len(out) < n:
        if out and rng.random() < 0.05:
            # A repeat, sometimes with different punctuation/case: the kind the filter must catch.
            again = out[int(rng.integers(len(out)))]
            out.append(again.rstrip(".") + "!" if rng.random() < 0.5 else again)
            continue
        who, action, where = (items[int(rng.integers(len(items)))] for items in (_WHO, _ACTION, _WHERE))
        out.append(f"{who} {action} {where}.")
    return out


def sample_descriptions_csv() -> str:
    """The shared descriptions CSV when present, else a generated one in the cache."""
    shared = shared_data_dir() / SHARED_DESCRIPTIONS
    if shared.is_file():
        return str(shared)
    path = cache_dir() / "t2v" / "generated_descriptions.csv"
    if not path.is_file():
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["imdbid", "videoid", "description"])
        for i, text in enumerate(generate_descriptions()):
            writer.writerow(["", f"generated-{i:04d}", text])
        storage.write_text(str(path), buffer.getvalue())
    return str(Path(path))
