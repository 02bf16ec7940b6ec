"""`films faces`: a face detector as a pre-labeller and an MCU baseline.

For every frame of a frame folder: the faces (frontal and profile boxes in pixels of the
frame), and a heuristic medium close-up call from the tallest face's height relative to
the frame height: a medium close-up frames a person from the chest up, so the face fills
a band of the frame's height; wider shots have smaller faces, close-ups larger ones. The
band's defaults were measured on the labelled HOHA stills, per detector (their boxes differ).

Detectors (`DETECTORS`): `blazeface` (MediaPipe's BlazeFace, full range; `films.blazeface`),
the default, and `haar` (OpenCV's Haar cascades, frontal + both profiles; here).

Output: `faces.jsonl` (one line per frame: index, time_s, faces, face_height, mcu),
written whole. A film with no faces gives lines with `faces: []`, never an error.
"""
from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Sequence, TypeVar

import numpy as np

from reelworks import storage
from reelworks.errors import ReelworksError
from reelworks.films.frames import read_frames, write_jsonl
from reelworks.metrics import job_metrics
from reelworks.progress import track

log = logging.getLogger(__name__)
T = TypeVar("T")

FACES = "faces.jsonl"
DETECTORS = ("blazeface", "haar")
DEFAULT_DETECTOR = "blazeface"
# Tallest face height / frame height that reads as an MCU, per detector (`tune_band` on the 555
# labelled HOHA stills): Haar frontal + profile faces, recall 0.78 at a false-positive rate of
# 0.30; BlazeFace's tighter boxes, recall 0.86 at 0.28.
MCU_BANDS = {"haar": (0.23, 0.54), "blazeface": (0.17, 0.44)}
MCU_BAND = MCU_BANDS["haar"]
# Detection runs on frames scaled to this height: Haar cascades are scale-searched anyway,
# and it keeps a 1080p frame as cheap as a 360p one.
DETECT_HEIGHT = 360
CASCADES = {"frontal": "haarcascade_frontalface_default.xml", "profile": "haarcascade_profileface.xml"}


@dataclass(frozen=True)
class Face:
    x: int
    y: int
    w: int
    h: int
    kind: str = "frontal"  # frontal | profile


_per_thread = threading.local()


def cascade(filename: str):
    """OpenCV's Haar cascade `filename` (in `cv2.data.haarcascades`), one per thread: a
    CascadeClassifier is not thread-safe, and `map_stills` runs detection on every core."""
    import cv2

    loaded = _per_thread.__dict__.setdefault("cascades", {})
    if filename not in loaded:
        path = cv2.data.haarcascades + filename
        loaded[filename] = cv2.CascadeClassifier(path)
        if loaded[filename].empty():
            raise RuntimeError(f"OpenCV could not load its Haar cascade {path}")
    return loaded[filename]


def map_stills(func: Callable[[str], T], paths: Sequence[str], what: str) -> list[T]:
    """`func(path)` for every still, in order, with a progress bar, on every core: OpenCV's
    detectors release the GIL, so threads (each with its own cascades) run them side by side."""
    workers = min(len(paths), os.cpu_count() or 1) or 1
    with ThreadPoolExecutor(workers) as pool:
        return list(track(pool.map(func, paths), what, total=len(paths), unit="still"))


def _overlaps(a: Face, b: Face) -> bool:
    """True when the centre of `a` lies inside `b` (the same face found twice)."""
    cx, cy = a.x + a.w / 2, a.y + a.h / 2
    return b.x <= cx <= b.x + b.w and b.y <= cy <= b.y + b.h


def check_detector(detector: str) -> str:
    if detector not in DETECTORS:
        raise ReelworksError(f"unknown face detector {detector!r}: use {' or '.join(DETECTORS)}")
    return detector


def find_faces(image: np.ndarray, min_face: float = 0.06, profiles: bool = True,
               detector: str = DEFAULT_DETECTOR) -> list[Face]:
    """Faces in an RGB or gray image, largest first (boxes in the image's pixels); faces
    shorter than `min_face` of the image's height are left out."""
    if check_detector(detector) == "blazeface":
        from reelworks.films import blazeface

        faces = [Face(x, y, w, h, kind) for x, y, w, h, kind in blazeface.detect(image)]
        return sorted((f for f in faces if f.h >= min_face * image.shape[0]), key=lambda f: f.w * f.h, reverse=True)
    return haar_faces(image, min_face, profiles)


def haar_faces(image: np.ndarray, min_face: float = 0.06, profiles: bool = True) -> list[Face]:
    """Haar faces: frontal, plus profiles facing either way (OpenCV's profile cascade only
    knows one side, so the mirrored image finds the other): half the MCUs of a dialogue are
    shot over the shoulder, three-quarter or in profile."""
    import cv2

    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    height, width = gray.shape
    scale = min(1.0, DETECT_HEIGHT / height)
    small = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else gray
    small = cv2.equalizeHist(small)
    side = max(20, int(min_face * small.shape[0]))

    def detect(kind: str, img: np.ndarray, mirrored: bool = False) -> list[Face]:
        boxes = cascade(CASCADES[kind]).detectMultiScale(img, scaleFactor=1.1, minNeighbors=5, minSize=(side, side))
        out = []
        for x, y, w, h in (boxes if len(boxes) else []):
            if mirrored:
                x = img.shape[1] - x - w
            out.append(Face(*(int(round(v / scale)) for v in (x, y, w, h)), kind=kind))
        return out

    faces = detect("frontal", small)
    if profiles:
        for face in detect("profile", small) + detect("profile", np.ascontiguousarray(small[:, ::-1]), True):
            if not any(_overlaps(face, f) or _overlaps(f, face) for f in faces):
                faces.append(face)
    return sorted(faces, key=lambda f: f.w * f.h, reverse=True)


def face_height(faces: list[Face], frame_height: int, kind: str | None = None) -> float:
    """The tallest face's height (of `kind`, or any) as a fraction of the frame height (0 with none)."""
    heights = [f.h for f in faces if kind is None or f.kind == kind]
    return max(heights, default=0) / frame_height if frame_height else 0.0


def is_mcu(height_ratio: float, band: tuple[float, float] = MCU_BAND) -> bool:
    return band[0] <= height_ratio <= band[1]


def face_record(image: np.ndarray, band: tuple[float, float] | None = None, detector: str = DEFAULT_DETECTOR) -> dict:
    """Faces of one image with the fields later steps read (positions as frame fractions);
    `band`: the MCU heuristic's, default the detector's own (`MCU_BANDS`)."""
    faces = find_faces(image, detector=detector)
    band = band or MCU_BANDS[detector]
    h, w = image.shape[:2]
    ratio = face_height(faces, h)
    record = {"detector": detector, "faces": [[f.x, f.y, f.w, f.h] for f in faces], "kinds": [f.kind for f in faces],
              "width": w, "height": h, "face_height": round(ratio, 4),
              "frontal_height": round(face_height(faces, h, "frontal"), 4),
              "profile_height": round(face_height(faces, h, "profile"), 4), "mcu": is_mcu(ratio, band)}
    if faces:  # where the main face sits: what tells the two sides of a dialogue apart
        top = faces[0]
        record["face_x"] = round((top.x + top.w / 2) / w, 4)
        record["face_y"] = round((top.y + top.h / 2) / h, 4)
    return record


def detect_faces(frames_uri: str, output_uri: str, band: tuple[float, float] | None = None,
                 detector: str = DEFAULT_DETECTOR) -> list[dict]:
    """Faces in every frame of a frame folder into `output_uri/faces.jsonl`."""
    check_detector(detector)
    folder = read_frames(frames_uri)
    rows = []
    with job_metrics("films_faces") as metrics:
        for row in track(folder.rows, f"faces {folder.film}", total=len(folder.rows), unit="frame"):
            record = face_record(folder.image(row), band, detector)
            rows.append({"index": row["index"], "time_s": row["time_s"], **record,
                         **({"shot": row["shot"]} if "shot" in row else {})})
            metrics.items.inc()
        with_faces = sum(1 for r in rows if r["faces"])
        metrics.gauge("reelworks_films_frames_with_faces", "Frames with at least one face").set(with_faces)
        write_jsonl(storage.join(output_uri, FACES), rows)
    log.info("%s: faces in %d of %d frames, %d heuristic MCUs", folder.film, with_faces, len(rows),
             sum(r["mcu"] for r in rows))
    return rows


def read_faces(uri: str) -> dict[int, dict]:
    """faces.jsonl of a faces output, by frame index."""
    from reelworks.films.frames import read_jsonl

    return {r["index"]: r for r in read_jsonl(storage.join(uri, FACES))}
