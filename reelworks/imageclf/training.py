"""Training: strategy, precision, weighted losses, checkpoint/resume, and the model card.

`train(...)` is the one entry point both the posters and the moviegoer classifiers call.
Its output folder (any URI) holds:

    model.keras        the trained model (Keras 3 format: arrays + config, no pickled code)
    history.json       per-epoch loss and metrics (across resumes)
    training.png       the learning curves
    model_card.json    written LAST, so its presence means "finished": see `ModelCard`
    checkpoint/        BackupAndRestore state while training runs (removed on success)
"""
from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from reelworks import storage
from reelworks.errors import NotFoundError, ReelworksError
from reelworks.imageclf import data as data_lib
from reelworks.imageclf.models import build_model, split_at_features
from reelworks.imageclf.spec import ImageSpec, Task, TrainConfig
from reelworks.settings import cache_dir

log = logging.getLogger(__name__)

MODEL_FILE = "model.keras"
CARD_FILE = "model_card.json"


# --------------------------------------------------------------------------- distribution


# TF_CONFIG is read without TensorFlow in reelworks.trainer, so steps that only publish can ask too.
from reelworks.trainer import cluster_workers, is_chief  # noqa: E402,F401


def select_strategy() -> tf.distribute.Strategy:
    """MultiWorkerMirrored when TF_CONFIG names several workers (a TFJob), Mirrored with
    several local GPUs, else the default strategy. Call before building any model."""
    if cluster_workers() > 1:
        return tf.distribute.MultiWorkerMirroredStrategy()
    if len(tf.config.list_physical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def configure_precision(mode: str = "auto") -> str:
    """mixed_float16 on GPU (or when forced with "on"), float32 otherwise; returns the policy."""
    on_gpu = bool(tf.config.list_physical_devices("GPU"))
    policy = "mixed_float16" if mode == "on" or (mode == "auto" and on_gpu) else "float32"
    keras.mixed_precision.set_global_policy(policy)
    return policy


# --------------------------------------------------------------------------- losses


@keras.saving.register_keras_serializable(package="reelworks")
class WeightedBinaryCrossentropy(keras.losses.Loss):
    """Binary cross-entropy on probabilities with a per-output weight on positives.

    The right loss for multi-label outputs (each sigmoid is its own yes/no question);
    `pos_weight[k] = negatives / positives` balances rare classes.
    """

    def __init__(self, pos_weight=None, label_smoothing: float = 0.0, name="weighted_bce", **kwargs):
        super().__init__(name=name, **kwargs)
        self.pos_weight = None if pos_weight is None else [float(w) for w in pos_weight]
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, y_pred.dtype)
        if self.label_smoothing:
            y_true = y_true * (1.0 - self.label_smoothing) + 0.5 * self.label_smoothing
        eps = keras.config.epsilon()
        p = ops.clip(y_pred, eps, 1.0 - eps)
        weight = 1.0 if self.pos_weight is None else ops.convert_to_tensor(self.pos_weight, dtype=p.dtype)
        per_output = -(weight * y_true * ops.log(p) + (1.0 - y_true) * ops.log(1.0 - p))
        return ops.mean(per_output, axis=-1)

    def get_config(self):
        return {**super().get_config(), "pos_weight": self.pos_weight, "label_smoothing": self.label_smoothing}


@keras.saving.register_keras_serializable(package="reelworks")
class WeightedSparseCrossentropy(keras.losses.Loss):
    """Categorical cross-entropy on softmax probabilities with integer labels and class weights."""

    def __init__(self, class_weight=None, name="weighted_sparse_ce", **kwargs):
        super().__init__(name=name, **kwargs)
        self.class_weight = None if class_weight is None else [float(w) for w in class_weight]

    def call(self, y_true, y_pred):
        y_true = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        loss = keras.losses.sparse_categorical_crossentropy(y_true, y_pred)
        if self.class_weight is not None:
            loss = loss * ops.take(ops.convert_to_tensor(self.class_weight, dtype=loss.dtype), y_true)
        return loss

    def get_config(self):
        return {**super().get_config(), "class_weight": self.class_weight}


def make_loss(task: Task, class_weights: list[float] | None, label_smoothing: float = 0.0) -> keras.losses.Loss:
    if task.kind == "multiclass":
        return WeightedSparseCrossentropy(class_weights)
    return WeightedBinaryCrossentropy(class_weights, label_smoothing)


def make_metrics(task: Task) -> list:
    if task.kind == "multilabel":
        return [keras.metrics.AUC(curve="PR", multi_label=True, num_labels=task.num_outputs, name="pr_auc"),
                keras.metrics.BinaryAccuracy(name="label_accuracy")]
    if task.kind == "binary":
        return [keras.metrics.AUC(name="roc_auc"), keras.metrics.Recall(name="recall"),
                keras.metrics.Precision(name="precision")]
    return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]


# --------------------------------------------------------------------------- model card


@dataclass
class ModelCard:
    """What a saved model is, so runs compare side by side (`model_card.json`).

    `version` is `TrainConfig.version(...)`: equal versions mean equal architecture,
    hyper-parameters, task and input. `thresholds` are per output, tuned on validation.
    `validation` holds scalar metrics on the validation set at those thresholds.
    """

    name: str
    version: str
    arch: str
    task: dict
    image: dict
    config: dict
    thresholds: list[float]
    threshold_mode: str = "per_class"
    class_weights: list[float] | None = None
    validation: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    epochs_run: int = 0
    parameters: int = 0
    strategy: str = ""
    replicas: int = 1
    precision: str = "float32"
    train_seconds: float = 0.0
    created_at: str = ""
    versions: dict = field(default_factory=dict)

    @property
    def task_spec(self) -> Task:
        return Task.from_dict(self.task)

    @property
    def image_spec(self) -> ImageSpec:
        return ImageSpec.from_dict(self.image)

    @property
    def train_config(self) -> TrainConfig:
        return TrainConfig.from_dict(self.config)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelCard":
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass
class TrainResult:
    model: keras.Model
    card: ModelCard
    history: dict[str, list[float]]
    val_scores: np.ndarray
    val_labels: np.ndarray


def load(uri: str) -> tuple[keras.Model, ModelCard]:
    """A finished model folder (local or S3) -> (model, card). Refuses unfinished folders."""
    card_uri = storage.join(uri, CARD_FILE)
    if not storage.exists(card_uri):
        raise NotFoundError(f"no finished model at {uri} (no {CARD_FILE})")
    try:
        card = ModelCard.from_dict(json.loads(storage.read_text(card_uri)))
    except (json.JSONDecodeError, TypeError) as exc:
        raise ReelworksError(f"{card_uri} is not a valid model card: {exc}") from None
    with storage.local_file(storage.join(uri, MODEL_FILE)) as path:
        # A .keras file holds arrays and config; safe_mode refuses embedded Python lambdas.
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    return model, card


# --------------------------------------------------------------------------- training


class _SyncCheckpoint(keras.callbacks.Callback):
    """After BackupAndRestore has written its epoch state, mirror the work dir to the URI."""

    def __init__(self, local_dir: Path, remote: str):
        super().__init__()
        self.local_dir, self.remote = local_dir, remote

    def on_epoch_end(self, epoch, logs=None):
        if is_chief():
            storage.sync_up(self.local_dir, self.remote)


def _work_dir(output_uri: str) -> Path:
    digest = hashlib.sha256(str(storage.parse(output_uri)).encode()).hexdigest()[:16]
    return cache_dir() / "imageclf" / digest


def _restore_checkpoint(work: Path, remote: str, resume: bool) -> bool:
    """Start the local work dir from the URI's checkpoint when there is one; True if resumed."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    if resume and storage.list_keys(remote):
        storage.sync_down(remote, work)
        return True
    return False


def _read_history(path: Path) -> dict[str, list[float]]:
    if not path.is_file():
        return {}
    history: dict[str, list[float]] = {}
    with open(path) as f:
        for row in csv.DictReader(f):
            for key, value in row.items():
                if key != "epoch":
                    history.setdefault(key, []).append(float(value))
    return history


def _dataset(source, image, task, config, batch_size, training):
    if isinstance(source, tf.data.Dataset):
        return source
    # A cache file prefix gets one file per split; "memory" and "" apply to both as they are.
    cache = config.cache if training or config.cache in ("", "memory") else f"{config.cache}.validation"
    return data_lib.make_dataset(source, image, task, batch_size=batch_size, training=training, cache=cache,
                                 shuffle_buffer=config.shuffle_buffer, seed=config.seed)


def train(train_source, val_source, *, task: Task, image: ImageSpec, config: TrainConfig, output_uri: str,
          class_weights: list[float] | None = None, name: str = "", data_info: dict | None = None,
          resume: bool = True, callbacks: list | None = None, max_fpr: float | None = None,
          threshold_mode: str = "per_class") -> TrainResult:
    """Train `config.arch` on `train_source`, tune thresholds on `val_source`, save to `output_uri`.

    Sources are `data.FilesSource`, `data.RecordsSource` or already-batched datasets.
    `class_weights`: pos_weight per sigmoid output (multilabel/binary) or a weight per
    class (multiclass); see `data.pos_weight` / `data.class_weight`. `max_fpr` (binary
    only) tunes the threshold for the best recall at that false-positive rate instead of F1;
    `threshold_mode` is `evaluation.tune_thresholds`'s `mode` (per_class or global).
    A run interrupted at epoch N resumes from N when called again with the same output.
    """
    from reelworks.imageclf import evaluation

    started = time.time()
    keras.utils.set_random_seed(config.seed)
    strategy = select_strategy()
    precision = configure_precision(config.mixed_precision)
    replicas = strategy.num_replicas_in_sync
    global_batch = config.batch_size * replicas
    if class_weights is not None and len(class_weights) != (len(task.classes) if task.kind == "multiclass"
                                                             else task.num_outputs):
        raise ReelworksError(f"{len(class_weights)} class weights for {task.num_outputs} outputs")

    train_ds = _dataset(train_source, image, task, config, global_batch, training=True)
    val_ds = _dataset(val_source, image, task, config, global_batch, training=False)

    with strategy.scope():
        model = build_model(image, task, config)
        split = split_at_features(model) if config.freeze_backbone else None
        trained = split[1] if split else model  # a frozen backbone: only the head trains
        trained.compile(optimizer=keras.optimizers.Adam(config.learning_rate),
                        loss=make_loss(task, class_weights, config.label_smoothing), metrics=make_metrics(task))
    if split:
        # Frozen, the backbone gives every image the same features in every epoch: compute them
        # once (one pass over the images instead of one per epoch) and train the head on them.
        # Augmentation layers are skipped (they act on pixels).
        started_features = time.time()
        train_x, train_y = evaluation.predict(split[0], _dataset(train_source, image, task, config, global_batch,
                                                                 training=False))
        val_x, val_y = evaluation.predict(split[0], val_ds)
        log.info("features of %d + %d images in %.0f s", len(train_x), len(val_x), time.time() - started_features)
        train_ds = tf.data.Dataset.from_tensor_slices((train_x, train_y)).shuffle(
            len(train_x), seed=config.seed, reshuffle_each_iteration=True).batch(global_batch)
        val_ds = tf.data.Dataset.from_tensor_slices((val_x, val_y)).batch(global_batch)

    if config.steps_per_epoch:
        train_ds = train_ds.repeat()

    work = _work_dir(output_uri)
    remote_checkpoint = storage.join(output_uri, "checkpoint")
    resumed = _restore_checkpoint(work, remote_checkpoint, resume)
    if resumed:
        log.info("resuming from the checkpoint at %s", remote_checkpoint)
    history_csv = work / "history.csv"
    fit_callbacks = [keras.callbacks.BackupAndRestore(str(work / "backup")),
                     keras.callbacks.CSVLogger(str(history_csv), append=True),
                     _SyncCheckpoint(work, remote_checkpoint)]
    if config.patience:
        fit_callbacks.insert(0, keras.callbacks.EarlyStopping(patience=config.patience, restore_best_weights=True))
    fit_callbacks += list(callbacks or [])
    log.info("training %s (%s, %d replica(s), %s) for %d epochs", config.arch, type(strategy).__name__,
             replicas, precision, config.epochs)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*shuffle=True.*")  # our datasets shuffle themselves
        warnings.filterwarnings("ignore", message=".*ran out of data.*")  # unknown-length datasets end epochs so
        trained.fit(train_ds, validation_data=val_ds, epochs=config.epochs, steps_per_epoch=config.steps_per_epoch,
                  callbacks=fit_callbacks, verbose=2 if os.environ.get("REELWORKS_PROGRESS") != "0" else 0)
    history = _read_history(history_csv)

    val_scores, val_labels = evaluation.predict(trained, val_ds)
    thresholds = evaluation.tune_thresholds(val_scores, val_labels, task, max_fpr=max_fpr, mode=threshold_mode)
    val_metrics = evaluation.summary_metrics(evaluation.classification_metrics(val_scores, val_labels, task, thresholds))
    card = ModelCard(
        name=name or config.arch, version=config.version(task, image), arch=config.arch, task=asdict(task),
        image=asdict(image), config=config.to_dict(), thresholds=[float(t) for t in thresholds],
        class_weights=class_weights, validation=val_metrics, data=dict(data_info or {}),
        epochs_run=len(next(iter(history.values()), [])), parameters=int(model.count_params()),
        strategy=type(strategy).__name__, replicas=replicas, precision=precision,
        train_seconds=round(time.time() - started, 1), threshold_mode=threshold_mode,
        created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        versions={"keras": keras.__version__, "tensorflow": tf.__version__})
    save(model, card, history, output_uri)
    if is_chief():  # finished: the checkpoint has served its purpose
        storage.delete_prefix(remote_checkpoint) if storage.is_s3(remote_checkpoint) else storage.delete(remote_checkpoint)
    shutil.rmtree(work, ignore_errors=True)
    return TrainResult(model, card, history, val_scores, val_labels)


def save(model: keras.Model, card: ModelCard, history: dict, output_uri: str) -> None:
    """Write model, history and curves, then the card (the completion marker).

    Non-chief workers of a multi-worker run save to a scratch folder: every worker must
    call `model.save`, but only the chief's copy is published.
    """
    from reelworks.imageclf.evaluation import history_png

    with tempfile.TemporaryDirectory(prefix="reelworks-model-") as tmp:
        local = Path(tmp) / MODEL_FILE
        model.save(local)
        if not is_chief():
            return
        storage.delete(storage.join(output_uri, CARD_FILE))  # an old card must not vouch for a new model
        storage.upload_file(local, storage.join(output_uri, MODEL_FILE))
    storage.write_text(storage.join(output_uri, "history.json"), json.dumps(history, indent=2))
    if history:
        storage.write_bytes(storage.join(output_uri, "training.png"), history_png(history))
    storage.write_text(storage.join(output_uri, CARD_FILE), card.to_json())
