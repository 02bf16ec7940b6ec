"""Frame folders: JPEG files plus `manifest.jsonl`, the contract between the film steps.

    frames/
      frame_000000.jpg ...
      extract.json      what was asked for and what happened (bad regions, counts)
      manifest.jsonl    one line per frame, written LAST: its presence means complete

A manifest line holds at least `film`, `index`, `time_s` and `path` (relative to the
folder); steps add their own fields (`target_s`, `shot`, ...). Later steps write their
results (faces.jsonl, probabilities.jsonl) keyed by `index`.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import PurePosixPath

import numpy as np

from reelworks import storage
from reelworks.errors import NotFoundError, ReelworksError

MANIFEST = "manifest.jsonl"
SUMMARY = "extract.json"


def film_name(uri: str) -> str:
    """The film's name: its file name without the extension."""
    name = PurePosixPath(storage.parse(uri).key).stem
    return name or "film"


def frame_name(index: int) -> str:
    return f"frame_{index:06d}.jpg"


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def load_image(uri: str, size: tuple[int, int] | None = None, gray: bool = False) -> np.ndarray:
    from PIL import Image

    from reelworks.media import open_image

    image = open_image(uri).convert("L" if gray else "RGB")
    if size:
        image = image.resize(size, Image.BILINEAR)
    return np.asarray(image)


@dataclass
class FrameFolder:
    """A finished frame folder, read back: its manifest rows and where the files are."""

    uri: str
    rows: list[dict]

    @property
    def film(self) -> str:
        return (self.rows[0].get("film") if self.rows else None) or film_name(self.uri.rstrip("/"))

    def path(self, row: dict) -> str:
        return storage.inside(self.uri, row["path"], f"frame in {MANIFEST}")

    def image(self, row: dict, size=None, gray=False) -> np.ndarray:
        return load_image(self.path(row), size=size, gray=gray)

    def summary(self) -> dict:
        uri = storage.join(self.uri, SUMMARY)
        return json.loads(storage.read_text(uri)) if storage.exists(uri) else {}


def read_frames(uri: str) -> FrameFolder:
    """A frame folder with its manifest; a folder without one is incomplete (or not one)."""
    manifest = storage.join(uri, MANIFEST)
    if not storage.exists(manifest):
        raise NotFoundError(f"no {MANIFEST} in {uri}: not a finished frame folder (run `films extract` first)")
    rows = []
    for number, line in enumerate(storage.read_text(manifest).splitlines(), 1):
        if line.strip():
            try:
                row = json.loads(line)
                _ = row["index"], row["time_s"], row["path"]
            except (ValueError, KeyError, TypeError):
                raise ReelworksError(f"{manifest} line {number} is not a frame record") from None
            rows.append(row)
    return FrameFolder(uri, rows)


def read_jsonl(uri: str) -> list[dict]:
    return [json.loads(line) for line in storage.read_text(uri).splitlines() if line.strip()]


def write_jsonl(uri: str, rows: list[dict]) -> None:
    storage.write_text(uri, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
