"""`posters predict`: genres with probabilities for any poster (local, S3 or http), batched."""
from __future__ import annotations

import json
import logging
from collections import Counter

import numpy as np

from reelworks import storage
from reelworks.errors import NotFoundError, ReelworksError
from reelworks.metrics import job_metrics
from reelworks.posters import fetch as fetch_lib
from reelworks.posters.images import PosterRejected, decode_poster

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp")


def expand_images(images: list[str]) -> list[str]:
    """Image URIs, with folders (local or S3 prefixes) expanded to the images inside."""
    out = []
    for uri in images:
        if fetch_lib.is_url(uri):
            out.append(uri)
            continue
        keys = storage.list_keys(uri)
        if keys == [""]:
            out.append(uri)
        elif keys:
            out += [storage.join(uri, k) for k in keys if k.lower().endswith(IMAGE_SUFFIXES)]
        else:
            out.append(uri)  # missing: reported as such below
    return out


def _read(uri: str, timeout: float) -> bytes:
    if fetch_lib.is_url(uri):
        return fetch_lib.download(uri, timeout=timeout)
    return storage.read_bytes(uri)


def predict(model: str, images: list[str], *, output: str | None = None, batch_size: int = 64,
            top: int = 3, timeout: float = 10.0) -> list[dict]:
    """One result per readable image: `{"image", "genres": {genre: p}, "predicted": [...], "top": [...]}`.

    Unreadable images are counted and listed (`{"image", "error"}`); the step fails only
    when none can be read. With `output`, results go there as JSON Lines.
    """
    from reelworks.imageclf import evaluation as ev
    from reelworks.imageclf import training

    clf, card = training.load(model)
    task, image = card.task_spec, card.image_spec
    uris = expand_images(images)
    if not uris:
        raise ReelworksError("no images given")
    results: list[dict] = []
    failures: Counter = Counter()
    with job_metrics("posters_predict") as metrics:
        for start in range(0, len(uris), batch_size):
            chunk = uris[start:start + batch_size]
            rows: list[dict] = [{"image": uri} for uri in chunk]  # results keep the input order
            batch, slots = [], []
            for slot, uri in enumerate(chunk):
                try:
                    batch.append(decode_poster(_read(uri, timeout), (image.width, image.height), image.channels))
                    slots.append(slot)
                except (PosterRejected, fetch_lib.FetchError) as exc:
                    rows[slot]["error"] = exc.reason
                except NotFoundError:
                    rows[slot]["error"] = "missing"
            if batch:
                scores = ev.predict_arrays(clf, np.stack(batch), batch_size=batch_size)
                decisions = ev.apply_thresholds(scores, card.thresholds, task)
                for slot, row, chosen in zip(slots, scores, decisions):
                    order = np.argsort(-row)[:top]
                    rows[slot].update(genres={c: round(float(p), 4) for c, p in zip(task.output_names, row)},
                                      predicted=[c for c, d in zip(task.output_names, chosen) if d],
                                      top=[f"{task.output_names[k]}: {row[k]:.0%}" for k in order])
                    metrics.items.inc()
            failures.update(r["error"] for r in rows if "error" in r)
            results += rows
        for reason, count in failures.items():
            metrics.drop(reason)
            log.warning("%d image(s) skipped: %s", count, reason)
        if not any("genres" in r for r in results):
            raise ReelworksError(f"none of the {len(uris)} image(s) could be read ({dict(failures)})")
        if output:
            storage.write_text(output, "".join(json.dumps(r) + "\n" for r in results))
    return results
