"""The training text format shared by prep, train, generate and curate.

One example per line, genre first so that generation can be prompted by genre as well as
by title (the genre is left out of some examples, so the model also writes without one):

    <|genre|> Horror, Thriller<|title|> Split<|plot|> Three girls are kidnapped ...<|endoftext|>

Examples are packed back to back, so `<|endoftext|>` also starts the next one: it is the
prompt for unconditional sampling, as with GPT-2.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from reelworks.text import strip_invisible

TITLE = "<|title|>"
GENRE = "<|genre|>"
PLOT = "<|plot|>"
END = "<|endoftext|>"
SPECIAL_TOKENS = [END, TITLE, GENRE, PLOT]
_SPECIAL = re.compile("|".join(re.escape(t) for t in SPECIAL_TOKENS))


def normalize(text: str) -> str:
    """NFKC, no invisible characters (`reelworks.text.strip_invisible`: controls, bidi
    overrides, zero-width and tag characters) or special-token look-alikes, single spaces."""
    text = strip_invisible(unicodedata.normalize("NFKC", str(text)))
    text = _SPECIAL.sub(" ", text)
    return " ".join(text.split())


def unique_genres(genres) -> list[str]:
    """Each genre once, in first-seen order and spelling ("Fantasy, fantasy, Drama" -> Fantasy,
    Drama): data exports repeat them and a model can write one twice."""
    seen: set[str] = set()
    unique = []
    for genre in genres:
        if genre.casefold() not in seen:
            seen.add(genre.casefold())
            unique.append(genre)
    return unique


def format_example(title: str, plot: str, genres: list[str] | None = None) -> str:
    head = f"{GENRE} {', '.join(genres)}" if genres else ""
    return f"{head}{TITLE} {title}{PLOT} {plot}{END}"


def prompt(title: str | None = None, genre: str | None = None) -> str:
    """The text generation starts from: unconditional, genre- or title-prompted."""
    if title:
        return f"{END}{TITLE} {normalize(title)}{PLOT}"
    if genre:
        return f"{END}{GENRE} {normalize(genre)}{TITLE}"
    return END


@dataclass
class Parsed:
    title: str
    plot: str
    genres: list[str]
    finished: bool  # the model closed the example itself (no cut-off tail)


def parse_example(text: str) -> Parsed:
    """Split one generated example (prompt included) back into its fields."""
    text = text.strip()
    if text.startswith(END):  # the unconditional prompt
        text = text[len(END):]
    body, end, _ = text.partition(END)
    finished = bool(end)
    fields = {"title": "", "plot": "", "genre": ""}
    for match in re.finditer(r"<\|(title|genre|plot)\|>(.*?)(?=<\|(?:title|genre|plot|endoftext)\|>|$)",
                             body, flags=re.S):
        key, value = match.group(1), " ".join(match.group(2).split())
        fields[key] = fields[key] or value
    genres = unique_genres(g.strip() for g in fields["genre"].split(",") if g.strip())
    return Parsed(fields["title"], fields["plot"], genres, finished)
