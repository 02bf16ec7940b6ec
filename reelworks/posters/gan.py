"""The conditional DCGAN: generator and discriminator conditioned on genres and decade.

Conditions are one vector: a multi-hot over the dataset's genres followed by a one-hot over
`DECADES` (the last slot, "unknown", is for posters without a year). The generator follows
DCGAN (Radford et al. 2016: strided transposed convolutions, batch norm, ReLU, tanh); the
discriminator is a strided-conv DCGAN critic with a projection term (Miyato & Koyama 2018)
so the condition steers the score rather than being one more input feature.
"""
from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras
import numpy as np
from keras import layers

from reelworks.errors import ReelworksError

DECADES = tuple(range(1910, 2030, 10))  # 1910 ... 2020, then "unknown"
SIZES = (32, 64)


def decade_index(year) -> int:
    """Slot of a year's decade; years outside DECADES and missing years go to "unknown"."""
    try:
        decade = int(year) // 10 * 10
    except (TypeError, ValueError):
        return len(DECADES)
    return DECADES.index(decade) if decade in DECADES else len(DECADES)


def condition_size(num_genres: int) -> int:
    return num_genres + len(DECADES) + 1


def conditions(genre_rows: np.ndarray, years) -> np.ndarray:
    """[n, genres + decades + 1] condition vectors from multi-hot genres and years."""
    genre_rows = np.asarray(genre_rows, np.float32)
    decades = np.zeros((len(genre_rows), len(DECADES) + 1), np.float32)
    for i, year in enumerate(years):
        decades[i, decade_index(year)] = 1.0
    return np.concatenate([genre_rows, decades], axis=1)


def build_generator(size: int, num_genres: int, z_dim: int = 100, width: int = 64) -> keras.Model:
    if size not in SIZES:
        raise ReelworksError(f"GAN size must be one of {SIZES}, got {size}")
    z = keras.Input((z_dim,), name="z")
    c = keras.Input((condition_size(num_genres),), name="condition")
    x = layers.Concatenate()([z, c])
    blocks = int(np.log2(size // 4))
    x = layers.Dense(4 * 4 * width * 2 ** (blocks - 1), use_bias=False)(x)
    x = layers.Reshape((4, 4, width * 2 ** (blocks - 1)))(x)
    x = layers.ReLU()(layers.BatchNormalization()(x))
    for i in range(blocks - 1, 0, -1):
        x = layers.Conv2DTranspose(width * 2 ** (i - 1), 4, strides=2, padding="same", use_bias=False)(x)
        x = layers.ReLU()(layers.BatchNormalization()(x))
    x = layers.Conv2DTranspose(3, 4, strides=2, padding="same")(x)
    out = layers.Activation("tanh", dtype="float32", name="image")(x)
    return keras.Model([z, c], out, name="poster_generator")


def build_discriminator(size: int, num_genres: int, width: int = 64) -> keras.Model:
    image = keras.Input((size, size, 3), name="image")
    c = keras.Input((condition_size(num_genres),), name="condition")
    x = image
    filters = width
    while x.shape[1] > 4:
        x = layers.Conv2D(filters, 4, strides=2, padding="same")(x)
        if filters > width:
            x = layers.BatchNormalization()(x)
        x = layers.LeakyReLU(0.2)(x)
        filters *= 2
    h = layers.Flatten()(x)
    h = layers.Dense(256)(h)
    h = layers.LeakyReLU(0.2)(h)
    unconditional = layers.Dense(1)(h)
    projection = layers.Dot(axes=1)([h, layers.Dense(256, use_bias=False)(c)])
    out = layers.Add(dtype="float32", name="logit")([unconditional, projection])
    return keras.Model([image, c], out, name="poster_discriminator")


def to_uint8(images) -> np.ndarray:
    """Generator output in -1..1 -> uint8 pixels."""
    from reelworks.media import to_uint8 as float_to_uint8

    return float_to_uint8(images, (-1.0, 1.0))
