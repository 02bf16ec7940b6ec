"""`reelworks films ...`: one command per step, each a thin shell over the library."""
from typing import Optional

import typer

import reelworks.films

app = typer.Typer(help=reelworks.films.__doc__, no_args_is_help=True)


@app.command()
def extract(input: str = typer.Option(..., "--input", "-i", help="Film: local path or s3:// URI (anything FFmpeg reads)."),
            output: str = typer.Option(..., "--output", "-o", help="Frame folder to write (JPEGs + manifest.jsonl)."),
            every: float = typer.Option(8.0, help="Seconds between frames."),
            size: Optional[str] = typer.Option(None, help="Resize frames to WIDTHxHEIGHT, e.g. 128x128."),
            gray: bool = typer.Option(False, "--gray", help="Grayscale frames."),
            allow_partial: bool = typer.Option(False, "--allow-partial",
                                               help="Exit 0 on a damaged film (what decodes is written either way)."),
            film: Optional[str] = typer.Option(None, help="Film name in the manifest (default: the file name).")) -> None:
    """One frame every N seconds, by seeking (exit 3: damaged film, partial frames written)."""
    from reelworks.films.extract import extract_frames

    result = extract_frames(input, output, every=every, size=size, gray=gray, allow_partial=allow_partial, film=film)
    state = "already there" if result.skipped else "written"
    typer.echo(f"{result.film}: {result.frames} of {result.targets} frames {state} in {output}")


@app.command()
def shots(input: str = typer.Option(..., "--input", "-i", help="Film: local path or s3:// URI."),
          output: str = typer.Option(..., "--output", "-o", help="Folder for shots.json (+ representative frames)."),
          detector: str = typer.Option("content", help="PySceneDetect detector: content, adaptive, threshold, histogram, hash."),
          threshold: Optional[float] = typer.Option(None, help="The detector's threshold (default: PySceneDetect's)."),
          frames: bool = typer.Option(True, "--frames/--no-frames", help="Save the middle frame of every shot."),
          size: Optional[str] = typer.Option(None, help="Resize shot frames to WIDTHxHEIGHT.")) -> None:
    """Shot boundaries with PySceneDetect (start/end times, one frame per shot)."""
    from reelworks.films.shots import detect_shots

    result = detect_shots(input, output, detector=detector, threshold=threshold, frames=frames, size=size)
    typer.echo(f"{result['film']}: {len(result['shots'])} shots -> {output}")


@app.command()
def faces(frames: str = typer.Option(..., "--frames", "-f", help="Frame folder (from extract or shots)."),
          output: str = typer.Option(..., "--output", "-o", help="Folder for faces.jsonl."),
          band: str = typer.Option("", help="Face height / frame height counted as MCU: LOW,HIGH "
                                   "(default: the detector's, measured on labelled stills)."),
          face_detector: str = typer.Option("blazeface", help="blazeface (MediaPipe) or haar (OpenCV).")) -> None:
    """Face detection and the face-size MCU heuristic."""
    from reelworks.errors import ReelworksError
    from reelworks.films.faces import detect_faces

    try:
        limits = tuple(float(v) for v in band.split(",")) if band else None
        if limits is not None and len(limits) != 2:
            raise ValueError
    except ValueError:
        raise ReelworksError(f"--band {band!r}: expected LOW,HIGH, e.g. 0.17,0.44") from None
    rows = detect_faces(frames, output, band=limits, detector=face_detector)
    typer.echo(f"faces in {sum(1 for r in rows if r['faces'])} of {len(rows)} frames, "
               f"{sum(r['mcu'] for r in rows)} heuristic MCUs -> {output}")


@app.command("train-shot-classifier")
def train_shot_classifier(
        data: str = typer.Option(..., "--data", "-d", help="Labelled stills: labels.csv or one folder per shot type."),
        output: str = typer.Option(..., "--output", "-o", help="Model folder (local or s3://)."),
        task: str = typer.Option("mcu", help="mcu (MCU vs other) or shot_type (7-way)."),
        model_kind: str = typer.Option("features", help="features: gradient boosting on shot-scale features "
                                       "(faces, upper body, depth of field, HOG); cnn: the Keras CNN (+ face fusion)."),
        cv_folds: int = typer.Option(5, help="features: also report k-fold cross-validated figures (0: test split only)."),
        size: int = typer.Option(128, help="Square input size."),
        gray: bool = typer.Option(True, "--gray/--rgb", help="Grayscale input (the moviegoer's) or RGB."),
        arch: str = typer.Option("moviegoer_cnn", help="moviegoer_cnn, posters_cnn, mobilenet_v3_small, efficientnet_b0."),
        weights: Optional[str] = typer.Option(None, help="Pretrained backbone weights (.keras/.h5, local or s3://)."),
        epochs: int = typer.Option(10),
        batch_size: int = typer.Option(32, help="Per replica."),
        learning_rate: float = typer.Option(1e-3),
        augment: str = typer.Option("flip", help="Augmentation in training: none, flip, light."),
        split: str = typer.Option("mixed", help="mixed (random frames) or unwatched (whole films held out)."),
        val_fraction: float = typer.Option(0.2),
        test_fraction: float = typer.Option(0.2),
        imbalance_removal: float = typer.Option(0.0, help="Percent of the majority class dropped from training."),
        face_features: bool = typer.Option(True, "--face-features/--no-face-features",
                                           help="Fuse face features with the CNN score."),
        face_detector: str = typer.Option("blazeface", help="Faces for the features and the heuristic: "
                                          "blazeface (MediaPipe) or haar (OpenCV)."),
        max_fpr: float = typer.Option(0.30, help="Threshold: best recall at this false-positive rate (validation)."),
        limit: int = typer.Option(0, help="Use at most this many frames (quick runs)."),
        gradcam_frame: str = typer.Option("", help="A test frame (file relative to --data) to explain with Grad-CAM."),
        seed: int = typer.Option(0),
        workers: int = typer.Option(1, help="More than 1: launch a Kubeflow TFJob (MultiWorkerMirroredStrategy)."),
        image: Optional[str] = typer.Option(None, help="With --workers: the training image (default: reelworks-tf).")) -> None:
    """Train the MCU classifier (boosted shot-scale features, or the Keras CNN) and report recall/FPR beside the face heuristic."""
    from reelworks.films.shot_classifier import TrainOptions
    from reelworks.films.shot_classifier import train_shot_classifier as train

    options = TrainOptions(task=task, model_kind=model_kind, cv_folds=cv_folds, size=size, gray=gray, arch=arch, weights=weights, epochs=epochs,
                           batch_size=batch_size, learning_rate=learning_rate, augment=augment, split=split, val_fraction=val_fraction,
                           test_fraction=test_fraction, imbalance_removal=imbalance_removal,
                           face_features=face_features, face_detector=face_detector, max_fpr=max_fpr, limit=limit, gradcam_frame=gradcam_frame,
                           seed=seed)
    if workers > 1:
        from reelworks.errors import ReelworksError
        from reelworks.films.distributed import launch_tfjob

        if model_kind != "cnn":
            raise ReelworksError("--workers is for the Keras CNN (--model-kind cnn); the features model trains in seconds")

        name = launch_tfjob(data, output, options, workers=workers, image=image)
        typer.echo(f"launched TFJob {name} with {workers} workers")
        return
    summary = train(data, output, options)
    m, h = summary["test"]["model"], summary["test"]["face_heuristic"]
    if summary.get("cv"):
        c = summary["cv"]["model"]
        grouped = " (grouped by viewing)" if summary["cv"].get("grouped") else ""
        typer.echo(f"{summary['cv']['folds']}-fold cross-validated recall {c['recall']:.3f} at FPR {c['fpr']:.3f}{grouped}")
    typer.echo(f"test recall {m['recall']:.3f} at FPR {m['fpr']:.3f} (face heuristic: recall {h['recall']:.3f}, "
               f"FPR {h['fpr']:.3f}); goal recall >= {summary['goal']['recall']} at FPR <= {summary['goal']['max_fpr']}: "
               f"{'met' if summary['goal']['met'] else 'NOT met'} -> {output}")


@app.command()
def classify(frames: str = typer.Option(..., "--frames", "-f", help="Frame folder."),
             output: str = typer.Option(..., "--output", "-o", help="Folder for probabilities.jsonl."),
             model: str = typer.Option("", help="Trained shot classifier folder; empty: the face heuristic."),
             faces_uri: str = typer.Option("", "--faces", help="faces output of the same frames (heuristic / fusion)."),
             batch_size: int = typer.Option(64),
             threshold: Optional[float] = typer.Option(None, help="Override the model's tuned threshold.")) -> None:
    """Per-frame MCU probabilities, in batches."""
    from reelworks.films.classify import classify_frames

    rows = classify_frames(frames, output, model_uri=model, faces_uri=faces_uri, batch_size=batch_size,
                           threshold=threshold)
    typer.echo(f"{sum(r['mcu'] for r in rows)} of {len(rows)} frames are MCUs -> {output}")


@app.command()
def scenes(shots_uri: str = typer.Option(..., "--shots", help="Output of `films shots` (with frames)."),
           shot_faces: str = typer.Option(..., help="`films faces` output for the shot frames."),
           shot_probabilities: str = typer.Option(..., help="`films classify` output for the shot frames."),
           output: str = typer.Option(..., "--output", "-o", help="Report folder (report.json, timeline.png, ...)."),
           frames: str = typer.Option("", help="Sampled frames (from extract), for the MCU-frame counts."),
           frame_probabilities: str = typer.Option("", help="`films classify` output for those frames."),
           min_shots: int = typer.Option(4, help="Shots in the shortest A/B/A/B dialogue.")) -> None:
    """Two-character dialogue scenes, the per-film JSON report and timeline PNG."""
    from reelworks.films.scenes import build_report

    result = build_report(shots_uri, shot_faces, shot_probabilities, output, frames_uri=frames,
                          frame_probs_uri=frame_probabilities, min_shots=min_shots)
    c = result["counts"]
    typer.echo(f"{result['film']}: {c['shots']} shots, {c['mcu_shots']} MCU shots, {c['dialogue_scenes']} dialogue "
               f"scene(s) -> {output}")


@app.command()
def samples(output: str = typer.Option(..., "--output", "-o", help="Folder for the synthetic films."),
            count: int = typer.Option(2)) -> None:
    """Render small synthetic films (hard cuts), for demos without real films."""
    from pathlib import Path

    from reelworks.films.samples import synthetic_film

    for i in range(count):
        path = synthetic_film(Path(output) / f"sample_film_{i + 1}.mp4", shots=5 + i, seed=i)
        typer.echo(f"wrote {path}")
