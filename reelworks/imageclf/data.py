"""Input pipelines: image files + labels, or TFRecord shards, as batched `tf.data` datasets.

Pixels come out as float32 in 0..255, shaped `ImageSpec.shape`; models rescale themselves,
so the same dataset feeds the small CNNs and the keras.applications backbones.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np
import tensorflow as tf

from reelworks.errors import ReelworksError
from reelworks.imageclf.spec import ImageSpec, Task

AUTOTUNE = tf.data.AUTOTUNE


# --------------------------------------------------------------------------- labels


def encode_labels(table, task: Task, *, label_columns: Sequence[str] | None = None,
                  label_column: str | None = None, separator: str = "|") -> np.ndarray:
    """Labels from a table, shaped for `task`.

    multilabel: one 0/1 column per class (`label_columns`, default `task.classes`) or one
    column of `separator`-joined names (`label_column`). binary / multiclass: one column of
    class names or indices (`label_column`).
    """
    if task.kind == "multilabel":
        if label_column is not None:
            index = {c: i for i, c in enumerate(task.classes)}
            out = np.zeros((len(table), len(task.classes)), np.float32)
            for row, value in enumerate(table[label_column].fillna("").astype(str)):
                for name in filter(None, (v.strip() for v in value.split(separator))):
                    if name in index:
                        out[row, index[name]] = 1.0
            return out
        columns = list(label_columns or task.classes)
        missing = [c for c in columns if c not in table.columns]
        if missing:
            raise ReelworksError(f"label columns missing from the table: {', '.join(missing)}")
        return table[columns].to_numpy(np.float32).clip(0, 1)
    if label_column is None or label_column not in table.columns:
        raise ReelworksError(f"a {task.kind} task needs a label column; {label_column!r} is not in the table")
    values = table[label_column].tolist()
    index = {c: i for i, c in enumerate(task.classes)}
    ids = []
    for value in values:
        if isinstance(value, (int, np.integer)) and 0 <= int(value) < len(task.classes):
            ids.append(int(value))
        elif str(value) in index:
            ids.append(index[str(value)])
        else:
            raise ReelworksError(f"unknown label {value!r}; classes are {', '.join(task.classes)}")
    ids = np.asarray(ids, np.int32)
    return ids.astype(np.float32)[:, None] if task.kind == "binary" else ids


def pos_weight(labels: np.ndarray, cap: float = 20.0) -> list[float]:
    """Per-output weight of positives (negatives / positives) for sigmoid outputs, capped."""
    labels = np.asarray(labels, np.float32).reshape(len(labels), -1)
    positives = labels.sum(axis=0)
    negatives = len(labels) - positives
    return [float(min(cap, max(1.0, n / p))) if p > 0 else 1.0 for p, n in zip(positives, negatives)]


def class_weight(labels: np.ndarray, num_classes: int, cap: float = 20.0) -> list[float]:
    """Balanced per-class weights for softmax outputs (n / (k * count)), capped."""
    counts = np.bincount(np.asarray(labels, np.int64), minlength=num_classes).astype(float)
    total = counts.sum()
    return [float(min(cap, total / (num_classes * c))) if c > 0 else 1.0 for c in counts]


# --------------------------------------------------------------------------- sources


@dataclass
class FilesSource:
    """Image files (local paths) and their labels (as `encode_labels` returns them)."""

    paths: Sequence[str]
    labels: np.ndarray

    def __post_init__(self):
        self.paths = [str(p) for p in self.paths]
        if len(self.paths) != len(self.labels):
            raise ReelworksError(f"{len(self.paths)} images but {len(self.labels)} labels")
        if not self.paths:
            raise ReelworksError("no images in this split")

    def __len__(self) -> int:
        return len(self.paths)


@dataclass
class RecordsSource:
    """TFRecord shards written by `write_tfrecords`; `count` (records) sizes the epochs."""

    files: Sequence[str]
    count: int

    def __post_init__(self):
        self.files = sorted(str(f) for f in self.files)
        if not self.files or self.count < 1:
            raise ReelworksError("no TFRecord shards (or no records) in this split")

    def __len__(self) -> int:
        return self.count


def decode_image(data: tf.Tensor, image: ImageSpec) -> tf.Tensor:
    """Encoded bytes -> float32 (H, W, C) in 0..255 at the model's size."""
    pixels = tf.io.decode_image(data, channels=image.channels, expand_animations=False)
    pixels = tf.image.resize(pixels, (image.height, image.width), antialias=True)
    return tf.ensure_shape(tf.clip_by_value(pixels, 0.0, 255.0), image.shape)


def _label_signature(task: Task) -> tf.TensorSpec:
    if task.kind == "multiclass":
        return tf.TensorSpec([], tf.int32)
    return tf.TensorSpec([task.num_outputs], tf.float32)


def _finish(ds: tf.data.Dataset, *, batch_size: int, training: bool, cache: str, shuffle_buffer: int,
            seed: int, shard_policy) -> tf.data.Dataset:
    # Cache decoded pixels (cheap for small images), then shuffle a fresh order every epoch.
    if cache == "memory":
        ds = ds.cache()
    elif cache:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        ds = ds.cache(cache)
    if training:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size).prefetch(AUTOTUNE)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = shard_policy
    options.deterministic = not training
    return ds.with_options(options)


def make_dataset(source: FilesSource | RecordsSource, image: ImageSpec, task: Task, *, batch_size: int,
                 training: bool = False, cache: str = "memory", shuffle_buffer: int = 2048,
                 seed: int = 0) -> tf.data.Dataset:
    """A batched dataset of (pixels, labels) from either kind of source."""
    policy = tf.data.experimental.AutoShardPolicy
    if isinstance(source, FilesSource):
        labels = np.asarray(source.labels)
        labels = labels.astype(np.int32) if task.kind == "multiclass" else labels.astype(np.float32)
        ds = tf.data.Dataset.from_tensor_slices((list(source.paths), labels))
        if training:  # shuffle the file order before caching too, so caches differ per worker
            ds = ds.shuffle(len(source.paths), seed=seed, reshuffle_each_iteration=False)
        ds = ds.map(lambda p, y: (decode_image(tf.io.read_file(p), image), y), num_parallel_calls=AUTOTUNE)
        shard = policy.DATA
    elif isinstance(source, RecordsSource):
        parse = _record_parser(image, task)
        ds = tf.data.TFRecordDataset(list(source.files), num_parallel_reads=AUTOTUNE)
        ds = ds.map(parse, num_parallel_calls=AUTOTUNE)
        shard = policy.AUTO  # FILE when there are enough shards for the workers, else DATA
    else:
        raise TypeError(f"expected FilesSource or RecordsSource, got {type(source).__name__}")
    return _finish(ds, batch_size=batch_size, training=training, cache=cache,
                   shuffle_buffer=shuffle_buffer, seed=seed, shard_policy=shard)


def images_dataset(paths: Sequence[str], image: ImageSpec, batch_size: int = 64) -> tf.data.Dataset:
    """Unlabelled images for prediction (decode errors surface as tf errors: check files first)."""
    ds = tf.data.Dataset.from_tensor_slices(list(map(str, paths)))
    ds = ds.map(lambda p: decode_image(tf.io.read_file(p), image), num_parallel_calls=AUTOTUNE)
    return ds.batch(batch_size).prefetch(AUTOTUNE)


# --------------------------------------------------------------------------- TFRecords


def _record_parser(image: ImageSpec, task: Task):
    label = (tf.io.FixedLenFeature([], tf.int64) if task.kind == "multiclass"
             else tf.io.FixedLenFeature([task.num_outputs], tf.float32))
    features = {"image": tf.io.FixedLenFeature([], tf.string), "label": label,
                "id": tf.io.FixedLenFeature([], tf.string, default_value="")}

    def parse(record):
        example = tf.io.parse_single_example(record, features)
        y = example["label"]
        y = tf.cast(y, tf.int32) if task.kind == "multiclass" else y
        return decode_image(example["image"], image), y

    return parse


def read_records(files: Sequence[str], image: ImageSpec, task: Task) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Every record of some shards as (ids, pixels uint8 [n,H,W,C], labels): for galleries and tests."""
    label = (tf.io.FixedLenFeature([], tf.int64) if task.kind == "multiclass"
             else tf.io.FixedLenFeature([task.num_outputs], tf.float32))
    features = {"image": tf.io.FixedLenFeature([], tf.string), "label": label,
                "id": tf.io.FixedLenFeature([], tf.string, default_value="")}
    ids, pixels, labels = [], [], []
    for record in tf.data.TFRecordDataset(sorted(map(str, files))):
        example = tf.io.parse_single_example(record, features)
        ids.append(example["id"].numpy().decode())
        pixels.append(decode_image(example["image"], image).numpy().round().astype(np.uint8))
        labels.append(example["label"].numpy())
    shape = (0, *image.shape)
    return ids, (np.stack(pixels) if pixels else np.zeros(shape, np.uint8)), np.asarray(labels)


def encode_png(pixels: np.ndarray) -> bytes:
    """uint8 (H, W, C) -> PNG bytes (lossless, so shards hold exactly what was prepared)."""
    return tf.io.encode_png(tf.convert_to_tensor(pixels, tf.uint8)).numpy()


def write_tfrecords(images: Sequence[bytes], labels: np.ndarray, ids: Sequence[str], output_dir: str | Path,
                    prefix: str, *, shards: int = 4) -> list[str]:
    """Write encoded images (PNG/JPEG bytes at the model's size) into `shards` files.

    Files are `{prefix}-00000-of-0000N.tfrecord` below the local `output_dir`; returns their
    names. Records go round-robin so every shard holds a similar share of each class.
    """
    if not (len(images) == len(labels) == len(ids)):
        raise ReelworksError("images, labels and ids differ in length")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    shards = max(1, min(shards, len(images))) if len(images) else 1
    names = [f"{prefix}-{i:05d}-of-{shards:05d}.tfrecord" for i in range(shards)]
    writers = [tf.io.TFRecordWriter(str(output_dir / n)) for n in names]
    try:
        for i, (data, label, ident) in enumerate(zip(images, labels, ids)):
            label = np.asarray(label)
            if label.ndim == 0:
                label_feature = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)]))
            else:
                label_feature = tf.train.Feature(float_list=tf.train.FloatList(value=label.astype(float).tolist()))
            example = tf.train.Example(features=tf.train.Features(feature={
                "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[data])),
                "label": label_feature,
                "id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[str(ident).encode()])),
            }))
            writers[i % shards].write(example.SerializeToString())
    finally:
        for writer in writers:
            writer.close()
    return names
