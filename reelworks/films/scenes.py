"""`films scenes`: two-character dialogue scenes, and the per-film report.

A dialogue is filmed as shot / reverse shot: medium close-ups that cut back and forth
between two recurring compositions (A/B/A/B). So:

1. Each shot gets an MCU probability (its representative frame, from `films classify`)
   and a composition feature: where the main face sits (from `films faces`) plus a tiny
   grayscale thumbnail of the frame (layout and light of the set-up).
2. MCU shots are clustered into compositions (agglomerative, distance threshold): the
   same camera set-up, coming back, lands in the same cluster.
3. A dialogue scene is a run of consecutive shots dominated by MCUs (a single non-MCU
   cut-away is allowed) whose MCU shots alternate between exactly two compositions, at
   least `min_shots` of them. Confidence grows with the alternation's length and the MCU
   probabilities.

Output: `report.json` (shots, MCU frames, dialogue scenes, counts), `timeline.png` and
the Markdown/HTML report, written whole; `report.json` last.
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass

import numpy as np

from reelworks import storage
from reelworks.films.classify import read_probabilities
from reelworks.films.faces import read_faces
from reelworks.films.frames import read_frames
from reelworks.films.shots import read_shots
from reelworks.metrics import job_metrics
from reelworks.reports import Report

log = logging.getLogger(__name__)

REPORT = "report.json"
THUMB = (16, 9)  # (w, h) of the composition thumbnail
FACE_WEIGHT = 3.0  # face position counts more than the thumbnail when there is a face


@dataclass
class DialogueScene:
    start_s: float
    end_s: float
    shots: list[int]
    compositions: list[int]
    confidence: float


def composition_feature(thumb: np.ndarray, face: dict | None) -> np.ndarray:
    """Thumbnail (zero-mean, unit-norm) plus the main face's position, weighted."""
    t = thumb.astype(np.float32).ravel()
    t = t - t.mean()
    t = t / (np.linalg.norm(t) + 1e-6)
    pos = np.array([face.get("face_x", 0.5), face.get("face_y", 0.5)] if face and face.get("faces") else [0.5, 0.5],
                   np.float32)
    return np.concatenate([t, FACE_WEIGHT * pos])


def cluster_compositions(features: np.ndarray, distance: float = 0.9) -> np.ndarray:
    """Cluster labels (0..k-1) of composition features; one feature -> one cluster."""
    if len(features) == 0:
        return np.zeros(0, int)
    if len(features) == 1:
        return np.zeros(1, int)
    from sklearn.cluster import AgglomerativeClustering

    model = AgglomerativeClustering(n_clusters=None, distance_threshold=distance, linkage="average")
    return model.fit_predict(features)


def find_dialogues(mcu: list[bool], compositions: list[int], probs: list[float], starts: list[float],
                   ends: list[float], min_shots: int = 4) -> list[DialogueScene]:
    """Runs of MCU shots alternating between two compositions (A/B/A/B...), at least `min_shots`."""
    scenes: list[DialogueScene] = []
    n = len(mcu)
    i = 0
    while i < n:
        if not mcu[i]:
            i += 1
            continue
        # Grow a run of MCU shots, tolerating one non-MCU shot between two MCUs.
        run = [i]
        j = i + 1
        while j < n:
            if mcu[j]:
                run.append(j)
                j += 1
            elif j + 1 < n and mcu[j + 1] and (j - 1) in run:
                j += 1  # a single cut-away
            else:
                break
        scenes += _alternations(run, compositions, probs, starts, ends, min_shots)
        i = j
    return scenes


def _alternations(run: list[int], comps: list[int], probs, starts, ends, min_shots) -> list[DialogueScene]:
    """Maximal stretches of `run` where compositions go A, B, A, B (A != B)."""
    out = []
    k = 0
    while k < len(run):
        m = k + 1
        while m < len(run):
            a, b = comps[run[m - 1]], comps[run[m]]
            if a == b or (m - k >= 2 and comps[run[m]] != comps[run[m - 2]]):
                break
            m += 1
        stretch = run[k:m]
        if len(stretch) >= min_shots:
            mean_prob = float(np.mean([probs[s] for s in stretch]))
            confidence = round(mean_prob * min(1.0, 0.5 + len(stretch) / 12), 3)
            out.append(DialogueScene(starts[stretch[0]], ends[stretch[-1]], stretch,
                                     sorted({comps[s] for s in stretch}), confidence))
        k = max(m - 1, k + 1) if m - k >= 2 else m
    return out


def _thumbs(folder, rows) -> list[np.ndarray]:
    return [folder.image(r, size=THUMB, gray=True) for r in rows]


def build_report(shots_uri: str, shot_faces_uri: str, shot_probs_uri: str, output_uri: str,
                 frames_uri: str = "", frame_probs_uri: str = "", min_shots: int = 4,
                 distance: float = 0.9) -> dict:
    """Dialogue scenes of one film and its report (JSON, timeline PNG, Markdown/HTML)."""
    with job_metrics("films_scenes") as metrics:
        shots = read_shots(shots_uri)
        film = shots["film"]
        shot_frames = read_frames(shots_uri) if shots["shots"] else None
        by_shot = {r["shot"]: r for r in shot_frames.rows} if shot_frames else {}
        faces = read_faces(shot_faces_uri) if shot_frames else {}
        probs = read_probabilities(shot_probs_uri) if shot_frames else {}

        table = []
        for shot in shots["shots"]:
            row = by_shot.get(shot["index"])
            p = probs.get(row["index"], {}) if row else {}
            f = faces.get(row["index"], {}) if row else {}
            table.append({**shot, "frame": row["path"] if row else None, "mcu_prob": p.get("mcu_prob", 0.0),
                          "mcu": bool(p.get("mcu", False)), "faces": len(f.get("faces", [])),
                          "face_x": f.get("face_x"), "composition": None})
        mcu_idx = [i for i, s in enumerate(table) if s["mcu"] and by_shot.get(s["index"])]
        if mcu_idx:
            rows = [by_shot[table[i]["index"]] for i in mcu_idx]
            feats = np.stack([composition_feature(t, faces.get(r["index"])) for t, r in zip(_thumbs(shot_frames, rows), rows)])
            for i, label in zip(mcu_idx, cluster_compositions(feats, distance)):
                table[i]["composition"] = int(label)
        scenes = find_dialogues([s["mcu"] for s in table], [s["composition"] if s["composition"] is not None else -1 - i
                                                             for i, s in enumerate(table)],
                                [s["mcu_prob"] for s in table], [s["start_s"] for s in table],
                                [s["end_s"] for s in table], min_shots=min_shots)

        mcu_frames = []
        sampled = 0
        if frames_uri:
            frame_folder = read_frames(frames_uri)
            sampled = len(frame_folder.rows)
            fprobs = read_probabilities(frame_probs_uri) if frame_probs_uri else {}
            mcu_frames = [{"index": r["index"], "time_s": r["time_s"], "path": r["path"],
                           "mcu_prob": fprobs[r["index"]]["mcu_prob"]}
                          for r in frame_folder.rows if fprobs.get(r["index"], {}).get("mcu")]
        counts = {"shots": len(table), "mcu_shots": sum(s["mcu"] for s in table), "frames": sampled,
                  "mcu_frames": len(mcu_frames), "dialogue_scenes": len(scenes),
                  "dialogue_seconds": round(sum(s.end_s - s.start_s for s in scenes), 3)}
        result = {"film": film, "duration_s": shots.get("duration_s", 0.0), "counts": counts, "shots": table,
                  "mcu_frames": mcu_frames, "dialogue_scenes": [asdict(s) for s in scenes]}

        report = Report(f"Moviegoer: {film}")
        report.text(f"{counts['shots']} shots, {counts['mcu_shots']} of them medium close-ups; "
                    f"{counts['mcu_frames']} of {counts['frames']} sampled frames are MCUs; "
                    f"{counts['dialogue_scenes']} two-character dialogue scene(s).")
        with report.figure("timeline", f"{film}: shots, MCUs and dialogue scenes over time", size=(11, 3)) as ax:
            _timeline(ax, result)
        if scenes:
            report.table(["start (s)", "end (s)", "shots", "compositions", "confidence"],
                         [[round(s.start_s, 2), round(s.end_s, 2), len(s.shots), "/".join(map(str, s.compositions)),
                           s.confidence] for s in scenes])
        for key, value in counts.items():
            report.metric(key, value)
        storage.delete(storage.join(output_uri, REPORT))
        report.save(output_uri)
        storage.write_text(storage.join(output_uri, REPORT), json.dumps(result, indent=2))
        metrics.items.inc(len(table))
        metrics.gauge("reelworks_films_dialogue_scenes", "Dialogue scenes found").set(len(scenes))
    log.info("%s: %d shots, %d dialogue scenes", film, len(table), len(scenes))
    result["report"] = report
    return result


def _timeline(ax, result: dict) -> None:
    duration = max([result.get("duration_s") or 0.0] + [s["end_s"] for s in result["shots"]] + [1.0])
    for s in result["shots"]:
        colour = "tab:orange" if s["mcu"] else ("#bbb" if s["index"] % 2 else "#888")
        ax.broken_barh([(s["start_s"], s["end_s"] - s["start_s"])], (2, 0.8), facecolors=colour)
    times = [f["time_s"] for f in result["mcu_frames"]]
    ax.scatter(times, [1.4] * len(times), marker="|", s=200, color="tab:orange")
    for scene in result["dialogue_scenes"]:
        ax.broken_barh([(scene["start_s"], scene["end_s"] - scene["start_s"])], (0.2, 0.8), facecolors="tab:blue",
                       alpha=0.3 + 0.7 * scene["confidence"])
    ax.set_xlim(0, duration)
    ax.set_ylim(0, 3)
    ax.set_yticks([0.6, 1.4, 2.4], ["dialogue", "MCU frames", "shots (orange: MCU)"])
    ax.set_xlabel("time (s)")


def read_report(uri: str) -> dict:
    return json.loads(storage.read_text(storage.join(uri, REPORT)))
