"""The architectures: the originals' small CNNs, keras.applications backbones, and the pretrained
EfficientNet-Lite (`reelworks.image_features`).

Every model takes float pixels in 0..255 shaped `ImageSpec.shape` and ends in a float32
activation layer named `scores` (so mixed precision never reaches the probabilities).
"""
from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras
from keras import layers

from reelworks import storage
from reelworks.errors import ReelworksError
from reelworks.imageclf.spec import ImageSpec, Task, TrainConfig

FEATURES = "features"  # the pooled backbone output: what the head (dropout, logits, scores) reads


def _augmentation(kind: str, seed: int) -> list[layers.Layer]:
    # Random layers are identity at inference, so they can live in the saved model.
    if kind == "flip":
        return [layers.RandomFlip("horizontal", seed=seed)]
    if kind == "light":
        return [layers.RandomFlip("horizontal", seed=seed), layers.RandomTranslation(0.05, 0.05, seed=seed),
                layers.RandomZoom(0.1, seed=seed), layers.RandomContrast(0.1, seed=seed)]
    return []


def _posters_cnn(x, config: TrainConfig):
    """The posters original: 2x Conv32, pool, 2x Conv64, pool, Dense 512 (with dropout)."""
    x = layers.Rescaling(1.0 / 255)(x)
    for filters in (32, 64):
        x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = layers.Conv2D(filters, 3, activation="relu")(x)
        x = layers.MaxPooling2D(2)(x)
        x = layers.Dropout(config.dropout)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(config.dense_units, activation="relu")(x)
    return layers.Dropout(min(0.5, 2 * config.dropout))(x)


def _moviegoer_cnn(x, config: TrainConfig):
    """The moviegoer MCU CNN on 128x128 gray: three conv/pool blocks and a small dense head."""
    x = layers.Rescaling(1.0 / 255)(x)
    for filters in (32, 64, 128):
        x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = layers.MaxPooling2D(2)(x)
    x = layers.Dropout(config.dropout)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(min(config.dense_units, 128), activation="relu")(x)
    return layers.Dropout(config.dropout)(x)


def _small_cnn(x, config: TrainConfig):
    """A small all-convolutional net for a few thousand tiny images: four conv / batch-norm /
    pool blocks and global average pooling (about 0.1M parameters, against the posters
    original's millions in one dense layer, which memorise a few thousand posters)."""
    x = layers.Rescaling(1.0 / 255)(x)
    for filters in (32, 48, 64, 96):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.MaxPooling2D(2, padding="same")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return layers.Dropout(config.dropout)(x)


def _backbone(x, image: ImageSpec, config: TrainConfig):
    """A keras.applications backbone: from scratch, or with weights from a local/S3 file."""
    if image.channels == 1:  # the backbones expect RGB: repeat the gray channel
        x = layers.Concatenate(name="gray_to_rgb")([x, x, x])
    shape = (image.height, image.width, 3)
    if min(image.height, image.width) < 32:
        raise ReelworksError(f"{config.arch} needs images of at least 32x32, got {image.width}x{image.height}")
    if config.arch == "mobilenet_v3_small":
        backbone = keras.applications.MobileNetV3Small(input_shape=shape, include_top=False, weights=None,
                                                       include_preprocessing=True, pooling=None)
    else:
        backbone = keras.applications.EfficientNetB0(input_shape=shape, include_top=False, weights=None)
    if config.weights:
        load_backbone_weights(backbone, config.weights)
    backbone.trainable = not config.freeze_backbone
    x = backbone(x, training=False if config.freeze_backbone else None)
    x = layers.GlobalAveragePooling2D(name=FEATURES)(x)
    return layers.Dropout(config.dropout)(x)


def _efficientnet_lite(x, image: ImageSpec, config: TrainConfig):
    """EfficientNet-Lite with ImageNet weights (`reelworks.image_features`; `config.weights` or the
    packaged Lite0), global average pooling, dropout."""
    from reelworks import image_features

    if image.channels == 1:
        x = layers.Concatenate(name="gray_to_rgb")([x, x, x])
    ref = config.weights or image_features.DEFAULT
    x = image_features.backbone_layers(x, image_features.load_state_dict(ref), trainable=not config.freeze_backbone,
                                       ref=ref)
    x = layers.GlobalAveragePooling2D(name=FEATURES)(x)
    return layers.Dropout(config.dropout)(x)


def load_backbone_weights(backbone: keras.Model, uri: str) -> None:
    """Weights for a backbone from a `.keras` model (same layers) or a Keras `.h5` weights file.

    Both are array containers (no pickled code); nothing is downloaded.
    """
    with storage.local_file(uri) as path:
        name = path.name
        try:
            if name.endswith(".keras"):
                source = keras.saving.load_model(path, compile=False, safe_mode=True)
                backbone.set_weights(source.get_weights())
            elif name.endswith(".h5"):
                backbone.load_weights(str(path), skip_mismatch=False)
            else:
                raise ReelworksError(f"backbone weights must be a .keras or .h5 file, got {uri}")
        except ReelworksError:
            raise
        except Exception as exc:  # shape mismatch, wrong file: say which file and why
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ReelworksError(f"cannot load backbone weights from {uri}: {first[:200]}") from None


def build_model(image: ImageSpec, task: Task, config: TrainConfig) -> keras.Model:
    """The classifier for `config.arch`, ending in `task.num_outputs` float32 scores."""
    inputs = keras.Input(shape=image.shape, name="pixels")
    x = inputs
    for layer in _augmentation(config.augment, config.seed):
        x = layer(x)
    if config.arch == "posters_cnn":
        x = _posters_cnn(x, config)
    elif config.arch == "moviegoer_cnn":
        x = _moviegoer_cnn(x, config)
    elif config.arch == "small_cnn":
        x = _small_cnn(x, config)
    elif config.arch == "efficientnet_lite":
        x = _efficientnet_lite(x, image, config)
    else:
        x = _backbone(x, image, config)
    x = layers.Dense(task.num_outputs, name="logits")(x)
    outputs = layers.Activation(task.activation, dtype="float32", name="scores")(x)
    return keras.Model(inputs, outputs, name=config.arch)


def split_at_features(model: keras.Model) -> tuple[keras.Model, keras.Model] | None:
    """(pixels -> pooled features, features -> scores) sharing `model`'s layers, or None for
    models without a pooled backbone output. Training the second trains `model`'s head."""
    names = [layer.name for layer in model.layers]
    if FEATURES not in names:
        return None
    features = model.get_layer(FEATURES).output
    head_input = keras.Input(shape=features.shape[1:], name=FEATURES)
    x = head_input
    for layer in model.layers[names.index(FEATURES) + 1:]:  # dropout, logits, scores: a plain chain
        x = layer(x)
    return keras.Model(model.inputs, features, name=f"{model.name}_features"), keras.Model(head_input, x, name="head")
