"""A small synthetic poster set the project makes itself, so a fresh clone's demo and the
tests run without any downloaded data: each genre draws its own shape in its own colour,
a poster of several genres draws several, over a background and noise.

The files take the MovieGenre.csv shape (`imdbId, Title, Genre, Poster`), titles carry a
year so the year filter and the GAN's decade condition have something to work with.
"""
from __future__ import annotations

import csv
import io

import numpy as np

from reelworks import storage

# genre -> (shape, RGB colour)
GENRE_STYLES = {
    "Action": ("triangle", (220, 40, 30)),
    "Comedy": ("circle", (250, 210, 40)),
    "Drama": ("bar", (40, 80, 200)),
    "Horror": ("cross", (120, 0, 120)),
    "Romance": ("heart", (240, 120, 170)),
    "Sci-Fi": ("ring", (30, 200, 200)),
}


def _draw(draw, shape: str, colour, box) -> None:
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    if shape == "triangle":
        draw.polygon([(cx, y0), (x1, y1), (x0, y1)], fill=colour)
    elif shape == "circle":
        draw.ellipse(box, fill=colour)
    elif shape == "bar":
        draw.rectangle((x0, cy - (y1 - y0) / 6, x1, cy + (y1 - y0) / 6), fill=colour)
    elif shape == "cross":
        w = (x1 - x0) / 6
        draw.rectangle((cx - w, y0, cx + w, y1), fill=colour)
        draw.rectangle((x0, cy - w, x1, cy + w), fill=colour)
    elif shape == "heart":
        r = (x1 - x0) / 4
        draw.ellipse((x0, y0, cx, y0 + 2 * r), fill=colour)
        draw.ellipse((cx, y0, x1, y0 + 2 * r), fill=colour)
        draw.polygon([(x0, y0 + r), (x1, y0 + r), (cx, y1)], fill=colour)
    else:  # ring
        draw.ellipse(box, outline=colour, width=max(2, int((x1 - x0) / 7)))


def poster(genres: list[str], rng: np.random.Generator, size=(182, 268)) -> bytes:
    """One JPEG poster showing each genre's shape."""
    from PIL import Image, ImageDraw

    width, height = size
    background = tuple(int(v) for v in rng.integers(0, 90, 3))
    image = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(image)
    slots = len(genres)
    for i, genre in enumerate(genres):
        shape, colour = GENRE_STYLES[genre]
        band = height / slots
        side = min(width * 0.7, band * 0.8) * rng.uniform(0.75, 1.0)
        cx = width / 2 + rng.uniform(-0.1, 0.1) * width
        cy = band * (i + 0.5)
        _draw(draw, shape, colour, (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2))
    pixels = np.asarray(image, np.int16) + rng.integers(-12, 13, (height, width, 3))
    buffer = io.BytesIO()
    Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def make_posters(output: str, n: int = 300, genres: list[str] | None = None, seed: int = 0) -> str:
    """Write `n` posters to `{output}/images/` and `{output}/posters.csv`; returns the CSV's URI."""
    genres = list(genres or GENRE_STYLES)
    unknown = [g for g in genres if g not in GENRE_STYLES]
    if unknown:
        from reelworks.errors import ReelworksError

        raise ReelworksError(f"no synthetic style for {', '.join(unknown)}; known: {', '.join(GENRE_STYLES)}")
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        imdb_id = 100000 + i
        count = int(rng.choice([1, 1, 2, 2, 3]))
        chosen = sorted(rng.choice(genres, size=min(count, len(genres)), replace=False).tolist(), key=genres.index)
        year = int(rng.integers(1950, 2020))
        name = f"poster{imdb_id}.jpg"
        storage.write_bytes(storage.join(output, "images", name), poster(chosen, rng))
        rows.append({"imdbId": imdb_id, "Title": f"Synthetic {i} ({year})", "Genre": "|".join(chosen), "Poster": name})
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["imdbId", "Title", "Genre", "Poster"])
    writer.writeheader()
    writer.writerows(rows)
    uri = storage.join(output, "posters.csv")
    storage.write_text(uri, buffer.getvalue())
    return uri
