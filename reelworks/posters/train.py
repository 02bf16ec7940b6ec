"""`posters train`: the multi-label genre classifier on a prepared dataset.

Sigmoid outputs with binary cross-entropy (the original used categorical cross-entropy,
which is wrong for multi-label), `pos_weight` per genre from the training counts, and
everything else from the shared `reelworks.imageclf` (strategy, mixed precision, resume,
thresholds tuned on validation, the model card).
"""
from __future__ import annotations

import logging

from reelworks.errors import ReelworksError
from reelworks.metrics import job_metrics
from reelworks.posters.prep import load_manifest, local_split_files
from reelworks.reports import Report

log = logging.getLogger(__name__)

DEFAULT_ARCH = "efficientnet_lite"


def train(data: str, output: str, *, arch: str = DEFAULT_ARCH, epochs: int = 10, batch_size: int = 32,
          learning_rate: float = 1e-3, dense_units: int = 512, dropout: float = 0.25, augment: str = "flip",
          weights: str | None = None, balance: bool = True, patience: int = 0, seed: int = 0,
          steps_per_epoch: int | None = None, resume: bool = True, thresholds: str = "calibrated",
          fine_tune: bool = False):
    """Train on `data` (a `posters prep` output) and save the model to `output`; returns (model card, report).

    `arch`: `efficientnet_lite` (the default: ImageNet EfficientNet-Lite features, `weights` any
    `reelworks.image_features` reference, default the packaged Lite0; frozen, so its features are
    computed once and only the head trains, unless `fine_tune`), or a model trained from
    scratch: `posters_cnn` (the original), `small_cnn`, `mobilenet_v3_small`, `efficientnet_b0`.

    `thresholds`: `calibrated` (the default: each genre's scores Platt-scaled on validation, then
    one threshold for the best validation micro-F1, stored as the equivalent threshold per genre;
    on the 4,000 posters it lifts test micro-F1 well above `global`), `global` (one raw threshold
    for all genres, best validation micro-F1) or `per_class` (best F1 per genre).
    """
    from reelworks.imageclf import data as data_lib
    from reelworks.imageclf import spec, training

    manifest = load_manifest(data)
    splits = manifest["splits"]
    if splits["train"]["count"] == 0:
        raise ReelworksError(f"the training split of {data} is empty: nothing to train on")
    task = spec.Task("multilabel", tuple(manifest["classes"]))
    image = spec.ImageSpec.from_dict(manifest["image"])
    config = spec.TrainConfig(arch=arch, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                              dense_units=dense_units, dropout=dropout, augment=augment, weights=weights,
                              freeze_backbone=arch in spec.PRETRAINED and not fine_tune,
                              patience=patience, seed=seed, steps_per_epoch=steps_per_epoch,
                              extra={"balance": balance})
    train_source = data_lib.RecordsSource(local_split_files(data, manifest, "train"), splits["train"]["count"])
    val_split = "validation" if splits["validation"]["count"] else "train"
    if val_split == "train":
        log.warning("the validation split is empty: thresholds are tuned on the training split")
    val_source = data_lib.RecordsSource(local_split_files(data, manifest, val_split), splits[val_split]["count"])
    weights_per_genre = None
    if balance:
        n = splits["train"]["count"]
        weights_per_genre = [min(20.0, max(1.0, (n - p) / p)) if p else 1.0 for p in splits["train"]["positives"]]
    with job_metrics("posters_train") as metrics:
        result = training.train(train_source, val_source, task=task, image=image, config=config, output_uri=output,
                                class_weights=weights_per_genre, name="posters-genres", resume=resume,
                                threshold_mode=thresholds,
                                data_info={"dataset": data, "train": splits["train"]["count"],
                                           "validation": splits[val_split]["count"], "validation_split": val_split,
                                           "ratio": manifest["ratio"], "genres": manifest["genres"]})
        metrics.items.inc(splits["train"]["count"] * result.card.epochs_run)
        for key in ("mAP", "micro_f1", "macro_f1"):
            metrics.gauge(f"reelworks_posters_val_{key.lower()}", f"Validation {key}").set(result.card.validation.get(key, 0))
        report = _report(result)
        if training.is_chief():  # multi-worker: the other workers' reports would race the chief's
            report.save(f"{output.rstrip('/')}/report")
    return result.card, report


def _report(result) -> Report:
    from reelworks.imageclf.evaluation import history_png

    card = result.card
    report = Report(f"Posters: training {card.version}")
    report.text(f"{card.arch}, {card.parameters:,} parameters, {card.epochs_run} epochs, "
                f"{card.strategy} x{card.replicas}, {card.precision}, {card.train_seconds:.0f} s.")
    report.table(["hyper-parameter", "value"], [[k, v] for k, v in card.config.items() if k != "extra"])
    report.heading("Validation (thresholds tuned on it)")
    report.table(["genre", "threshold", "pos_weight"],
                 [[c, round(t, 3), round(w, 2) if card.class_weights else 1.0] for c, t, w in
                  zip(card.task["classes"], card.thresholds, card.class_weights or [1.0] * len(card.thresholds))])
    if result.history:
        report.image("training", history_png(result.history), "Loss and PR-AUC per epoch")
    for key, value in card.validation.items():
        report.metric(f"val_{key}", value)
    return report


def launch_tfjob(data: str, output: str, *, workers: int, gpus_per_worker: int = 0, **train_args) -> None:
    """Run `posters train` as a Kubeflow TFJob of `workers` pods (MultiWorkerMirroredStrategy).

    `data` and `output` must be S3 URIs every pod can reach. The operator sets TF_CONFIG;
    `imageclf.training` picks the strategy from it, and only the chief writes the model.
    """
    from reelworks import training_operator

    training_operator.run(tfjob(data, output, workers=workers, gpus_per_worker=gpus_per_worker, **train_args))


def tfjob(data: str, output: str, *, workers: int, gpus_per_worker: int = 0, **train_args):
    """The TFJob `launch_tfjob` submits (each pod runs `reelworks posters train` itself)."""
    from reelworks import settings, storage, training_operator

    if workers < 2:
        raise ReelworksError("a TFJob needs at least 2 workers; train in-process otherwise")
    for uri in (data, output):
        if not storage.is_s3(uri):
            raise ReelworksError(f"{uri} is not an s3:// URI: the TFJob's pods cannot reach it")
    command = ["python", "-m", "reelworks", "posters", "train", "--data", data, "--output", output]
    for key, value in train_args.items():
        if value is None:
            continue
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            command.append(flag if value else "--no-" + key.replace("_", "-"))
        else:
            command += [flag, str(value)]
    return training_operator.tf_job(training_operator.job_name("posters-train"), settings.image("tf"), command,
                                    workers=workers, gpus_per_worker=gpus_per_worker)
