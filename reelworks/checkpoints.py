"""Training checkpoints at any URI, safe against a job killed at any moment, and the data order
that lets a resumed run see the batches the uninterrupted one would have.

Each checkpoint is a folder `step-00000120/` below the checkpoint prefix. Its files are
written first and `COMPLETE.json` (sizes and SHA-256 of every file) last, so a folder
without the marker is ignored: a pre-empted job never resumes from half a checkpoint.
Loading verifies the hashes and falls back to the previous complete checkpoint when the
newest is corrupt. What goes into the folder is the trainer's choice (the plot trainer:
safetensors and `torch.save` state; the poster GAN: Keras `.weights.h5` and a TF checkpoint).
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import tempfile
from pathlib import Path
from typing import Callable, TypeVar

import numpy as np

from reelworks import storage
from reelworks.errors import ReelworksError

log = logging.getLogger(__name__)
MARKER = "COMPLETE.json"
_NAME = re.compile(r"^step-(\d{8})/" + re.escape(MARKER) + "$")
T = TypeVar("T")


def name(step: int) -> str:
    return f"step-{step:08d}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save(root: str, step: int, write: Callable[[Path], None], keep: int = 2) -> str:
    """Have `write(folder)` fill a checkpoint, publish it under `root`, then mark it complete."""
    uri = storage.join(root, name(step))
    storage.delete(storage.join(uri, MARKER))  # re-saving a step: it is incomplete until re-marked
    with storage.output_dir(uri) as folder:
        write(folder)
        files = {p.relative_to(folder).as_posix(): {"bytes": p.stat().st_size, "sha256": _sha256(p)}
                 for p in sorted(folder.rglob("*")) if p.is_file()}
    storage.write_text(storage.join(uri, MARKER), json.dumps({"step": step, "files": files}, indent=2))
    prune(root, keep)
    return uri


def complete_steps(root: str) -> list[int]:
    """Steps of the complete checkpoints under `root`, oldest first."""
    return sorted(int(m.group(1)) for m in map(_NAME.match, storage.list_keys(root)) if m)


def prune(root: str, keep: int) -> None:
    """Delete all but the newest `keep` complete checkpoints (the marker first)."""
    for step in complete_steps(root)[:-keep] if keep > 0 else []:
        uri = storage.join(root, name(step))
        storage.delete(storage.join(uri, MARKER))
        storage.delete_prefix(uri)
        storage.delete(uri)  # the emptied local folder (a no-op on S3)


def fetch(root: str, step: int, into: Path) -> Path:
    """Download one checkpoint into `into` and verify it against its marker."""
    uri = storage.join(root, name(step))
    manifest = json.loads(storage.read_text(storage.join(uri, MARKER)))
    for key, expected in manifest["files"].items():
        path = into / key
        storage.download_file(storage.join(uri, key), path)
        if path.stat().st_size != expected["bytes"] or _sha256(path) != expected["sha256"]:
            raise ReelworksError(f"{key} does not match its checksum")
    return into


def load_newest(root: str, load: Callable[[Path, int], T]) -> tuple[int, T] | None:
    """`load(folder, step)` on the newest checkpoint that verifies and loads; None if none exist.

    A corrupt or unloadable checkpoint is logged and skipped; if every complete checkpoint
    fails, that is an error (resuming from scratch would silently throw work away).
    """
    steps = complete_steps(root)
    problems = []
    for step in reversed(steps):
        with tempfile.TemporaryDirectory(prefix="reelworks-ckpt-") as tmp:
            try:
                return step, load(fetch(root, step, Path(tmp)), step)
            except Exception as exc:  # any failure to read it means: try the previous one
                reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                log.warning("checkpoint %s is unreadable (%s); falling back to the previous one", name(step), reason)
                problems.append(f"{name(step)}: {reason}")
    if steps:
        raise ReelworksError(f"no readable checkpoint in {root} ({'; '.join(problems)})")
    return None


class EpochOrder:
    """Item indices of an endless stream of epochs over `n` items, each epoch a permutation
    seeded by `seed + epoch`: the stream position alone restores a resumed run's data order."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed = n, seed
        self._epoch, self._order = -1, None

    def indices(self, position: int, size: int):
        """Indices at stream positions [position, position + size), across epoch ends."""
        rows = np.empty(size, dtype=np.int64)
        for i, p in enumerate(range(position, position + size)):
            epoch, index = divmod(p, self.n)
            if epoch != self._epoch:
                self._epoch, self._order = epoch, np.random.default_rng(self.seed + epoch).permutation(self.n)
            rows[i] = self._order[index]
        return rows
