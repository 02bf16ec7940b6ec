"""`films classify`: a per-frame MCU probability for every frame of a frame folder.

With a trained model (`films train-shot-classifier`'s output folder), frames go through
it in batches at the model's input size; with no model, the face heuristic stands in
(probability 1 for a heuristic MCU, 0 otherwise), so the rest of the pipeline runs
either way. A model trained with face features (`card.data["face_features"]`) gets them
from the faces output of the same frames.

Output: `probabilities.jsonl`, one line per frame: index, time_s, mcu_prob, mcu, source.
"""
from __future__ import annotations

import logging

import numpy as np

from reelworks import storage
from reelworks.errors import ReelworksError
from reelworks.films.frames import read_frames, read_jsonl, write_jsonl
from reelworks.metrics import job_metrics
from reelworks.progress import track

log = logging.getLogger(__name__)

PROBABILITIES = "probabilities.jsonl"
MCU = "MCU"


def classify_frames(frames_uri: str, output_uri: str, model_uri: str = "", faces_uri: str = "",
                    batch_size: int = 64, threshold: float | None = None) -> list[dict]:
    """MCU probabilities for `frames_uri` into `output_uri/probabilities.jsonl`."""
    folder = read_frames(frames_uri)
    with job_metrics("films_classify") as metrics:
        faces = _faces(faces_uri) if faces_uri else {}
        if model_uri:
            probs, cut, source = _model_scores(folder, model_uri, faces, batch_size)
        else:
            if not faces_uri:
                raise ReelworksError("films classify needs --model or --faces (the face heuristic)")
            probs = np.array([1.0 if faces.get(r["index"], {}).get("mcu") else 0.0 for r in folder.rows])
            cut, source = 0.5, "faces"
        cut = cut if threshold is None else threshold
        rows = [{"index": r["index"], "time_s": r["time_s"], "mcu_prob": round(float(p), 5), "mcu": bool(p >= cut),
                 "source": source, **({"shot": r["shot"]} if "shot" in r else {})}
                for r, p in zip(folder.rows, probs)]
        metrics.items.inc(len(rows))
        metrics.gauge("reelworks_films_mcu_frames", "Frames classified as MCU").set(sum(r["mcu"] for r in rows))
        write_jsonl(storage.join(output_uri, PROBABILITIES), rows)
    return rows


def _faces(uri: str) -> dict[int, dict]:
    from reelworks.films.faces import read_faces

    return read_faces(uri)


def _model_scores(folder, model_uri: str, faces: dict, batch_size: int) -> tuple[np.ndarray, float, str]:
    from reelworks.films import shot_classifier

    model = shot_classifier.load(model_uri)
    if not folder.rows:
        return np.zeros(0), model.threshold, "model"
    scores = []
    for start in track(range(0, len(folder.rows), batch_size), f"classify {folder.film}",
                       total=-(-len(folder.rows) // batch_size), unit="batch"):
        batch = folder.rows[start:start + batch_size]
        images = [folder.image(r, size=model.size, gray=model.gray) for r in batch]
        images = np.stack(images) if model.size else images  # the features model reads full-size frames
        batch_faces = [faces.get(r["index"]) for r in batch]
        scores.append(model.score(images, batch_faces))
    return np.concatenate(scores), model.threshold, "model"


def read_probabilities(uri: str) -> dict[int, dict]:
    path = storage.join(uri, PROBABILITIES)
    return {r["index"]: r for r in read_jsonl(path)} if storage.exists(path) else {}
