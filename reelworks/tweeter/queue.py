"""The tweet queue: the contract between `plots curate` (writer) and the tweeter (reader).

A JSON Lines file at any URI, one plot per line, append-only:

    {"id": "3f2a9c0b1d4e5f60", "title": "...", "plot": "...", "genres": ["Sci-Fi"],
     "keywords": ["robot"], "image": null, "model": "...", "created_at": "2026-11-21T10:00:00+00:00"}

`id` is stable (derived from the normalised title and plot), so appending the same plot
twice is a no-op. `image` is an s3:// URI or an absolute path (written so whatever the
writer's working directory was), so the tweeter finds it from anywhere. A queue that does not
exist is an error for its readers (a mistyped `--queue`); `append_to_queue` creates it, empty
when there is nothing to add. The tweeter never rewrites the queue: what was published lives
in its ledger, so a plot "leaves" the queue exactly when its tweet is confirmed there. The one
in-place change is `set_images` (`posters from-plots` attaching a poster); it and
`append_to_queue` write through `storage.update_text`, a compare-and-swap, so neither loses the
other's lines when both run at once.
"""
from __future__ import annotations

import hashlib
import json
import logging
import unicodedata
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

from reelworks import storage
from reelworks.errors import NotFoundError

log = logging.getLogger(__name__)

# Queued images live in this folder beside the queue (`posters from-plots` writes them there);
# the tweeter uploads nothing from anywhere else.
POSTERS_FOLDER = "posters"


def plot_id(title: str, plot: str) -> str:
    """Stable 16-hex id of a title/plot pair (case, accents of form, and spacing ignored)."""
    def norm(s: str) -> str:
        return " ".join(unicodedata.normalize("NFKC", s).casefold().split())

    return hashlib.sha256(f"{norm(title)}\n{norm(plot)}".encode()).hexdigest()[:16]


@dataclass
class QueueItem:
    title: str
    plot: str
    id: str = ""
    genres: list[str] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)
    image: str | None = None
    model: str = ""
    created_at: str = ""

    def __post_init__(self):
        self.id = self.id or plot_id(self.title, self.plot)
        self.created_at = self.created_at or datetime.now(timezone.utc).isoformat(timespec="seconds")

    def to_json(self) -> str:
        data = asdict(self)
        data["image"] = storage.absolute(self.image) if self.image else self.image
        return json.dumps(data, ensure_ascii=False)


@dataclass
class QueueRead:
    items: list[QueueItem]
    bad_lines: list[tuple[int, str]]  # (line number, reason): skipped and reported, never fatal


def read_queue(uri: str, missing_ok: bool = False) -> QueueRead:
    """Every well-formed item, in file order. A queue that does not exist is an error (unless
    `missing_ok`: then it is an empty one); an empty file is an empty queue."""
    try:
        text = storage.read_text(uri)
    except NotFoundError:
        if missing_ok:
            return QueueRead([], [])
        raise NotFoundError(f"no tweet queue at {uri}: check --queue (`plots curate --queue` creates it)") from None
    return _parse(text, uri)


def _parse(text: str, uri: str) -> QueueRead:
    items, bad, seen = [], [], set()
    # JSON Lines ends a line at "\n" only: str.splitlines() would also split inside a plot that
    # holds U+2028, U+2029 or U+0085 (valid, unescaped, in JSON strings).
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            item = QueueItem(**{k: v for k, v in data.items() if k in QueueItem.__dataclass_fields__})
            if not item.title.strip() or not item.plot.strip():
                raise ValueError("empty title or plot")
        except (ValueError, TypeError, AttributeError) as exc:
            bad.append((number, f"{type(exc).__name__}: {exc}"[:200]))
            continue
        if item.id not in seen:
            seen.add(item.id)
            items.append(item)
    for number, reason in bad:
        log.warning("queue %s line %d skipped: %s", uri, number, reason)
    return QueueRead(items, bad)


def append_to_queue(uri: str, new_items: list[QueueItem]) -> int:
    """Append items whose id is not queued yet; returns how many were added.

    The whole file is rewritten atomically, so a reader sees the old queue or the new one, and
    as a compare-and-swap (`storage.update_text`), so a concurrent `set_images` loses nothing.
    """
    count = 0

    def append(existing: str) -> str | None:
        nonlocal count
        known = {item.id for item in _parse(existing, uri).items} if existing else set()
        added = []
        for item in new_items:
            if item.id not in known:
                known.add(item.id)
                added.append(item.to_json())
        count = len(added)
        if not added:
            return None if existing else ""  # nothing new: readers still find an (empty) queue
        prefix = existing if not existing or existing.endswith("\n") else existing + "\n"
        return prefix + "\n".join(added) + "\n"

    storage.update_text(uri, append)
    return count


def set_images(uri: str, images: dict[str, str]) -> int:
    """Set `image` on the queued items whose id is a key of `images`; returns how many changed.

    Every other line (items appended meanwhile by another writer, lines this version does not
    understand) is kept byte for byte: the queue is rewritten only if nobody wrote it since it
    was read (`storage.update_text`).
    """
    count = 0
    images = {item_id: storage.absolute(image) for item_id, image in images.items()}

    def update(existing: str) -> str | None:
        nonlocal count
        count = 0
        lines = []
        for line in existing.rstrip("\n").split("\n"):
            try:
                data = json.loads(line) if line.strip() else None
            except ValueError:
                data = None
            if isinstance(data, dict) and data.get("title") and data.get("plot"):
                item_id = data.get("id") or plot_id(str(data["title"]), str(data["plot"]))
                if item_id in images and data.get("image") != images[item_id]:
                    data["image"] = images[item_id]
                    line = json.dumps(data, ensure_ascii=False)
                    count += 1
            lines.append(line)
        return "\n".join(lines) + "\n" if count else None

    storage.update_text(uri, update)
    return count
