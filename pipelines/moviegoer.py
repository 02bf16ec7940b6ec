"""Moviegoer: films -> sampled frames, shots, MCUs and two-character dialogue scenes, one report per film.

One ParallelFor branch per film (at most `PARALLELISM` at a time): extract frames by
seeking, detect shots (PySceneDetect), find faces (BlazeFace) on the sampled and the shot
frames, score MCUs (a trained classifier, or the face heuristic when `model` is empty),
then find dialogue scenes and write the film's report (also to `output/<film>/`).
"""
from kfp import dsl

from reelworks.components.films import (classify_frames, detect_faces, detect_shots, dialogue_scenes,
                                        extract_frames, summarize_films)
from reelworks.kubeflow import with_s3

PARALLELISM = 4  # films processed at once (each branch is a handful of CPU pods)


def LOCAL_ARGUMENTS() -> dict:
    """Two films: the shared clips when present, else synthetic ones rendered on the spot."""
    from reelworks.films.samples import sample_films
    from reelworks.settings import cache_dir

    return {"films": sample_films(2), "output": str(cache_dir() / "moviegoer" / "reports")}


def INPUT_CHECKS() -> dict:
    """Checked before the first step."""
    from reelworks import checks
    from reelworks.films.shots import DETECTORS

    return {"films": checks.each(checks.video_file), "every": checks.positive, "detector": checks.one_of(DETECTORS)}


@dsl.pipeline(name="moviegoer", description=__doc__.splitlines()[0])
def pipeline(films: list = [], output: str = "", every: float = 8.0, model: str = "", detector: str = "content",
             allow_partial: bool = True):
    with dsl.ParallelFor(films, parallelism=PARALLELISM) as film:
        frames = with_s3(extract_frames(film=film, every=every, allow_partial=allow_partial))
        shots = with_s3(detect_shots(film=film, detector=detector))
        frame_faces = detect_faces(frames=frames.outputs["frames"])
        shot_faces = detect_faces(frames=shots.outputs["shots"])
        frame_probs = with_s3(classify_frames(frames=frames.outputs["frames"], faces=frame_faces.outputs["faces"],
                                              model=model))
        shot_probs = with_s3(classify_frames(frames=shots.outputs["shots"], faces=shot_faces.outputs["faces"],
                                             model=model))
        report = with_s3(dialogue_scenes(shots=shots.outputs["shots"], shot_faces=shot_faces.outputs["faces"],
                                         shot_probabilities=shot_probs.outputs["probabilities"],
                                         frames=frames.outputs["frames"],
                                         frame_probabilities=frame_probs.outputs["probabilities"], output=output))
    summarize_films(results=dsl.Collected(report.outputs["Output"]))
