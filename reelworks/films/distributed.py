"""Multi-node training of the shot classifier: a Kubeflow TFJob whose workers all run
`reelworks films train-shot-classifier` with the same options. The operator sets
`TF_CONFIG`; `reelworks.imageclf.training.select_strategy` then picks
MultiWorkerMirroredStrategy, and only the chief (worker 0) publishes the model.
"""
from __future__ import annotations

from dataclasses import asdict

from reelworks import settings
from reelworks.films.shot_classifier import TrainOptions

# TrainOptions field -> CLI flag, for the fields the command line exposes.
_FLAGS = {"task": "--task", "model_kind": "--model-kind", "cv_folds": "--cv-folds", "size": "--size", "arch": "--arch", "weights": "--weights", "epochs": "--epochs",
          "batch_size": "--batch-size", "learning_rate": "--learning-rate", "augment": "--augment", "split": "--split",
          "val_fraction": "--val-fraction", "test_fraction": "--test-fraction",
          "imbalance_removal": "--imbalance-removal", "max_fpr": "--max-fpr", "limit": "--limit",
          "gradcam_frame": "--gradcam-frame", "seed": "--seed"}


def worker_command(data: str, output: str, options: TrainOptions) -> list[str]:
    """The command every TFJob worker runs (single-node mode inside each pod)."""
    command = ["reelworks", "films", "train-shot-classifier", "--data", data, "--output", output]
    values = asdict(options)
    for field, flag in _FLAGS.items():
        value = values[field]
        if value not in (None, ""):
            command += [flag, str(value)]
    command.append("--gray" if options.gray else "--rgb")
    command.append("--face-features" if options.face_features else "--no-face-features")
    return command


def build_tfjob(data: str, output: str, options: TrainOptions, workers: int, image: str | None = None,
                gpus_per_worker: int = 0, namespace: str | None = None):
    from reelworks import training_operator

    name = training_operator.job_name("films-shot-classifier")
    return training_operator.tf_job(name, image or settings.image("tf"), worker_command(data, output, options),
                                    workers=workers, gpus_per_worker=gpus_per_worker, namespace=namespace)


def launch_tfjob(data: str, output: str, options: TrainOptions, workers: int, image: str | None = None,
                 gpus_per_worker: int = 0, namespace: str | None = None) -> str:
    """Submit the TFJob, follow it to the end (raising if it fails); returns its name."""
    from reelworks import training_operator

    job = build_tfjob(data, output, options, workers, image, gpus_per_worker, namespace)
    training_operator.run(job)
    return job.metadata.name
