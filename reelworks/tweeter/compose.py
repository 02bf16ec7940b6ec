"""Compose a queued plot into the exact tweet (or short thread) that gets posted.

    Title

    The plot, as generated.

    #SciFi #Robot

Length is X's weighted count (`text.weighted_length`), never `len()`. Hashtags are
decoration: as many as fit, at most `max_hashtags`. A title and plot that cannot fit in one
tweet become a numbered thread of at most `max_thread` tweets when `overflow="thread"`, or
are skipped with the reason when `overflow="skip"` (or when even the thread is too long).
Characters a reader cannot see (`reelworks.text.strip_invisible`) are dropped first.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from reelworks.errors import ReelworksError
from reelworks.text import strip_invisible
from reelworks.tweeter.queue import QueueItem
from reelworks.tweeter.text import MAX_WEIGHTED_LENGTH, is_valid, weighted_length

OVERFLOW_CHOICES = ("thread", "skip")
# Sentence ends, then whitespace: where a thread may break without splitting a sentence.
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")
# X hashtags are letters, digits and underscores with at least one letter; anything else
# ("Sci-Fi", "film noir") is squeezed out and the words camel-cased: #SciFi, #FilmNoir.
_WORD = re.compile(r"[^\W_]+")
MAX_HASHTAG_CHARS = 30


@dataclass
class Composition:
    """The tweets for one plot, in posting order; empty with a reason when it is skipped."""

    texts: list[str] = field(default_factory=list)
    skipped: str | None = None

    @property
    def is_thread(self) -> bool:
        return len(self.texts) > 1


def hashtag(term: str) -> str | None:
    """`#CamelCase` for a genre or keyword, or None when nothing usable is left."""
    words = _WORD.findall(term)
    tag = "".join(w[:1].upper() + w[1:] for w in words)
    if not tag or tag.isdigit() or len(tag) > MAX_HASHTAG_CHARS:
        return None
    return f"#{tag}"


def hashtags(item: QueueItem, limit: int) -> list[str]:
    """Up to `limit` distinct hashtags, genres first, then keywords."""
    tags: list[str] = []
    seen: set[str] = set()
    for term in [*item.genres, *item.keywords]:
        tag = hashtag(strip_invisible(str(term)))
        if tag and tag.casefold() not in seen:
            seen.add(tag.casefold())
            tags.append(tag)
        if len(tags) == limit:
            break
    return tags


def _with_tags(text: str, tags: list[str], limit: int) -> str:
    """`text` plus as many of `tags` as still fit, on their own paragraph."""
    kept: list[str] = []
    for tag in tags:
        candidate = f"{text}\n\n{' '.join([*kept, tag])}"
        if weighted_length(candidate) <= limit:
            kept.append(tag)
    return f"{text}\n\n{' '.join(kept)}" if kept else text


def _pieces(plot: str, budget: int) -> list[str]:
    """Sentences, with any sentence longer than `budget` broken between words."""
    out: list[str] = []
    for sentence in _SENTENCE_END.split(plot):
        if weighted_length(sentence) <= budget:
            out.append(sentence)
            continue
        line = ""
        for word in sentence.split():
            candidate = f"{line} {word}".strip()
            if line and weighted_length(candidate) > budget:
                out.append(line)
                line = word
            else:
                line = candidate
        if line:
            out.append(line)
    return out


def _thread(title: str, plot: str, limit: int, max_thread: int) -> list[str] | None:
    """Numbered parts `… (1/2)`, title in the first; None when it needs more than `max_thread`."""
    for total in range(2, max_thread + 1):
        suffix_room = weighted_length(f" ({total}/{total})")
        parts: list[str] = []
        current = f"{title}\n\n"
        pieces = _pieces(plot, limit - suffix_room)
        for piece in pieces:
            joiner = "" if current.endswith("\n\n") or not current else " "
            candidate = f"{current}{joiner}{piece}"
            if weighted_length(candidate) + suffix_room <= limit:
                current = candidate
            else:
                parts.append(current.rstrip())
                current = piece
        parts.append(current.rstrip())
        # A first part that is only the title means the plot's first sentence did not fit
        # next to it; that reads badly but is still a valid thread.
        if len(parts) <= total:
            n = len(parts)
            return [f"{part} ({i}/{n})" for i, part in enumerate(parts, 1)]
    return None


def compose(item: QueueItem, *, limit: int = MAX_WEIGHTED_LENGTH, max_hashtags: int = 3,
            overflow: str = "thread", max_thread: int = 3) -> Composition:
    """The exact tweet text(s) for `item`, or a skip with its reason."""
    if overflow not in OVERFLOW_CHOICES:
        raise ReelworksError(f"overflow must be one of {', '.join(OVERFLOW_CHOICES)}, not {overflow!r}")
    if max_thread < 2 and overflow == "thread":
        raise ReelworksError(f"max_thread must be at least 2 for threads, not {max_thread}")
    # Invisible characters (bidi overrides, zero-width, tags, controls) never reach X, whatever
    # wrote the queue line: the tweets are built from these two and the hashtags only.
    title = " ".join(strip_invisible(item.title).split())
    plot = " ".join(strip_invisible(item.plot).split())
    tags = hashtags(item, max_hashtags)
    single = f"{title}\n\n{plot}"
    if weighted_length(single) <= limit:
        texts = [_with_tags(single, tags, limit)]
    else:
        length = weighted_length(single)
        if overflow == "skip":
            return Composition(skipped=f"title and plot are {length} characters by X's count, over {limit}")
        # Cheap bound first: measuring a very long plot piece by piece is slow.
        parts = _thread(title, plot, limit, max_thread) if length <= limit * max_thread else None
        if parts is None:
            return Composition(skipped=f"title and plot are {length} characters by X's count: "
                                       f"more than a {max_thread}-tweet thread")
        parts[-1] = _with_tags(parts[-1], tags, limit)
        texts = parts
    for text in texts:
        if not is_valid(text):
            return Composition(skipped="X would reject the text (invalid characters)")
    return Composition(texts=texts)


MAX_ALT_TEXT = 1000  # X's limit for an image's alt text (POST /2/media/metadata)


def alt_text(title: str, genres: list[str]) -> str:
    """What a screen reader says for the plot's poster: its title and genres (nothing escaped,
    invisible characters dropped), within X's 1000 characters."""
    title = " ".join(strip_invisible(title).split()) or "an untitled film"
    kinds = [" ".join(strip_invisible(str(g)).split()) for g in genres]
    kinds = [k for k in kinds if k]
    text = f"Movie poster for {title}" + (f", a {', '.join(kinds)} film" if kinds else "") + "."
    return text if len(text) <= MAX_ALT_TEXT else text[:MAX_ALT_TEXT - 1].rstrip() + "…"
