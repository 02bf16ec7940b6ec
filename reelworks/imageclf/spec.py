"""What a classifier sees, what it predicts, and how it is trained: plain dataclasses,
no TensorFlow, so CLIs and components can build them cheaply."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

from reelworks.errors import ReelworksError

TASK_KINDS = ("multilabel", "binary", "multiclass")
ARCHITECTURES = ("posters_cnn", "moviegoer_cnn", "small_cnn", "mobilenet_v3_small", "efficientnet_b0",
                 "efficientnet_lite")
# Architectures that start from pretrained weights (`TrainConfig.weights`, or their packaged default).
PRETRAINED = ("efficientnet_lite",)
AUGMENTATIONS = ("none", "flip", "light")


@dataclass(frozen=True)
class ImageSpec:
    """Input size of the model: height x width, 1 channel (grayscale) or 3 (RGB)."""

    height: int
    width: int
    channels: int = 3

    def __post_init__(self):
        if self.height < 8 or self.width < 8:
            raise ReelworksError(f"image size {self.width}x{self.height} is too small (at least 8x8)")
        if self.channels not in (1, 3):
            raise ReelworksError(f"channels must be 1 (grayscale) or 3 (RGB), not {self.channels}")

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, self.channels)

    @classmethod
    def from_dict(cls, data: dict) -> "ImageSpec":
        return cls(int(data["height"]), int(data["width"]), int(data.get("channels", 3)))


@dataclass(frozen=True)
class Task:
    """multilabel: k sigmoids; binary: one sigmoid for `classes[1]`; multiclass: softmax."""

    kind: str
    classes: tuple[str, ...]

    def __post_init__(self):
        object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))
        if self.kind not in TASK_KINDS:
            raise ReelworksError(f"unknown task {self.kind!r}; expected one of {', '.join(TASK_KINDS)}")
        if self.kind == "binary" and len(self.classes) != 2:
            raise ReelworksError(f"a binary task names 2 classes (negative, positive), got {list(self.classes)}")
        if self.kind != "binary" and len(self.classes) < 2:
            raise ReelworksError(f"a {self.kind} task needs at least 2 classes, got {list(self.classes)}")
        if len(set(self.classes)) != len(self.classes):
            raise ReelworksError(f"duplicate class names in {list(self.classes)}")

    @property
    def num_outputs(self) -> int:
        return 1 if self.kind == "binary" else len(self.classes)

    @property
    def output_names(self) -> tuple[str, ...]:
        """The name of each model output column (binary: just the positive class)."""
        return (self.classes[1],) if self.kind == "binary" else self.classes

    @property
    def activation(self) -> str:
        return "softmax" if self.kind == "multiclass" else "sigmoid"

    @classmethod
    def from_dict(cls, data: dict) -> "Task":
        return cls(data["kind"], tuple(data["classes"]))


@dataclass
class TrainConfig:
    """Architecture and hyper-parameters. `batch_size` is per replica (GPU)."""

    arch: str = "posters_cnn"
    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 1e-3
    dropout: float = 0.25
    dense_units: int = 512
    augment: str = "none"
    # Backbone weights. keras.applications backbones: a local/S3 `.keras` or Keras `.h5` file, None =
    # from scratch. efficientnet_lite: any `reelworks.image_features` reference, None = the packaged
    # ImageNet EfficientNet-Lite0.
    weights: str | None = None
    freeze_backbone: bool = False       # frozen: features computed once, only the head trains
    label_smoothing: float = 0.0
    patience: int = 0                   # early stopping on val_loss (0 = off); best weights restored
    seed: int = 0
    mixed_precision: str = "auto"       # auto (GPU only) | on | off
    cache: str = "memory"               # memory | "" (none) | a local file prefix
    shuffle_buffer: int = 2048
    steps_per_epoch: int | None = None  # cap for quick runs; None = whole training set
    extra: dict = field(default_factory=dict)  # task-specific settings recorded in the model card

    def __post_init__(self):
        if self.arch not in ARCHITECTURES:
            raise ReelworksError(f"unknown architecture {self.arch!r}; expected one of {', '.join(ARCHITECTURES)}")
        if self.augment not in AUGMENTATIONS:
            raise ReelworksError(f"unknown augmentation {self.augment!r}; expected one of {', '.join(AUGMENTATIONS)}")
        if self.mixed_precision not in ("auto", "on", "off"):
            raise ReelworksError("mixed_precision must be auto, on or off")
        if self.epochs < 1 or self.batch_size < 1 or self.learning_rate <= 0:
            raise ReelworksError("epochs and batch_size must be >= 1 and learning_rate > 0")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def version(self, task: Task, image: ImageSpec) -> str:
        """`arch-<8 hex>`: the same architecture, hyper-parameters, task and input give the same id."""
        tuned = {k: v for k, v in self.to_dict().items() if k not in ("cache", "mixed_precision")}
        payload = json.dumps({"config": tuned, "task": asdict(task), "image": asdict(image)}, sort_keys=True)
        return f"{self.arch}-{hashlib.sha256(payload.encode()).hexdigest()[:8]}"
