"""Kubeflow components of the moviegoer workflow: each calls one `reelworks.films` function.

Frame folders, faces and probabilities travel between steps as KFP `Dataset` artifacts
(their `.path` is handed to the library as the output URI); films, labelled data and
models outside the pipeline are plain string URIs.
"""
from kfp.dsl import HTML, Dataset, Input, Markdown, Metrics, Model, Output

from reelworks.kubeflow import component


@component("cpu")
def extract_frames(film: str, frames: Output[Dataset], every: float = 8.0, size: str = "", gray: bool = False,
                   allow_partial: bool = False):
    """One frame every `every` seconds of `film`, by seeking."""
    from reelworks.films.extract import extract_frames as run

    run(film, frames.path, every=every, size=size or None, gray=gray, allow_partial=allow_partial)


@component("cpu")
def detect_shots(film: str, shots: Output[Dataset], detector: str = "content", threshold: float = -1.0):
    """PySceneDetect shots with a representative frame each (threshold < 0: the detector's default)."""
    from reelworks.films.shots import detect_shots as run

    run(film, shots.path, detector=detector, threshold=None if threshold < 0 else threshold)


@component("cpu")
def detect_faces(frames: Input[Dataset], faces: Output[Dataset], face_detector: str = "blazeface"):
    """Faces (BlazeFace, or Haar) and the face-size MCU heuristic for every frame."""
    from reelworks.films.faces import detect_faces as run

    run(frames.path, faces.path, detector=face_detector)


@component("tf")
def classify_frames(frames: Input[Dataset], faces: Input[Dataset], probabilities: Output[Dataset],
                    model: str = ""):
    """Per-frame MCU probabilities (a trained model, or the face heuristic when `model` is empty)."""
    from reelworks.films.classify import classify_frames as run

    run(frames.path, probabilities.path, model_uri=model, faces_uri=faces.path)


@component("cpu")
def dialogue_scenes(shots: Input[Dataset], shot_faces: Input[Dataset], shot_probabilities: Input[Dataset],
                    frames: Input[Dataset], frame_probabilities: Input[Dataset], report: Output[Dataset],
                    markdown: Output[Markdown], html: Output[HTML], metrics: Output[Metrics],
                    output: str = "") -> str:
    """Dialogue scenes and the film's report; also copied to `output/<film>/` when given."""
    from reelworks import storage
    from reelworks.films.scenes import build_report

    result = build_report(shots.path, shot_faces.path, shot_probabilities.path, report.path,
                          frames_uri=frames.path, frame_probs_uri=frame_probabilities.path)
    result["report"].to_kfp(markdown=markdown, html_output=html, metrics=metrics)
    if output:
        storage.sync_up(report.path, storage.join(output, result["film"]))
    import json

    return json.dumps({"film": result["film"], **result["counts"]})


@component("tf")
def train_shot_classifier(data: str, model: Output[Model], markdown: Output[Markdown], html: Output[HTML],
                          metrics: Output[Metrics], output: str = "", epochs: int = 10, size: int = 128,
                          split: str = "mixed", imbalance_removal: float = 0.0, face_features: bool = True,
                          task: str = "mcu", arch: str = "moviegoer_cnn", weights: str = "", limit: int = 0,
                          model_kind: str = "features", cv_folds: int = 5, face_detector: str = "blazeface"):
    """The MCU classifier (boosted shot-scale features, or the moviegoer CNN: `model_kind`), with its
    report; the model also goes to `output` when given."""
    from reelworks import storage
    from reelworks.films.shot_classifier import TrainOptions, train_shot_classifier as run

    options = TrainOptions(task=task, model_kind=model_kind, cv_folds=cv_folds, size=size, arch=arch, epochs=epochs,
                           split=split,
                           imbalance_removal=imbalance_removal, face_features=face_features,
                           weights=weights or None, limit=limit, face_detector=face_detector)
    summary = run(data, model.path, options)
    summary["report"].to_kfp(markdown=markdown, html_output=html, metrics=metrics)
    if output:
        storage.sync_up(model.path, output)


@component("cpu")
def summarize_films(results: list, markdown: Output[Markdown], metrics: Output[Metrics]):
    """One table over every film of the run (each branch returns its counts as JSON)."""
    import json

    from reelworks.reports import Report

    counts = sorted((json.loads(r) for r in results), key=lambda c: c["film"])
    columns = ["shots", "mcu_shots", "frames", "mcu_frames", "dialogue_scenes"]
    report = Report("Moviegoer run")
    report.table(["film", *columns], [[c["film"], *(int(c.get(k, 0)) for k in columns)] for c in counts])
    report.metric("films", len(counts))
    report.metric("dialogue_scenes", sum(int(c.get("dialogue_scenes", 0)) for c in counts))
    report.to_kfp(markdown=markdown, metrics=metrics)
