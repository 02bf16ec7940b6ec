"""The install holds: one CPU PyTorch from the constraint, no GUI OpenCV, every extra importable."""
from __future__ import annotations

import importlib
import importlib.metadata as md
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def installed() -> dict[str, str]:
    return {re.sub(r"[-_.]+", "-", d.metadata["Name"]).lower(): d.version for d in md.distributions()}


def test_one_torch_held_by_the_constraint():
    pinned = re.search(r"^torch==(\S+)", (REPO / "constraints.txt").read_text(), re.M).group(1)
    packages = installed()
    assert packages["torch"].split("+")[0] == pinned
    cuda = sorted(name for name in packages if name.startswith("nvidia-"))
    assert not cuda, f"a CUDA PyTorch stack was pulled in: {cuda}"
    assert "torchvision" not in packages  # its registry build breaks transformers on CPU


def test_headless_opencv_with_haar_cascades():
    packages = installed()
    assert "opencv-python" not in packages, "plain opencv-python (GUI) was pulled in; use the headless build"
    import cv2

    assert int(cv2.__version__.split(".")[0]) < 5
    assert Path(cv2.data.haarcascades, "haarcascade_frontalface_default.xml").is_file()


@pytest.mark.parametrize("module", ["torch", "transformers", "diffusers", "tensorflow", "keras", "kfp",
                                    "kfp.kubernetes", "kubernetes", "boto3", "cv2", "av", "scenedetect",
                                    "tweepy", "twitter_text", "prometheus_client", "pandas", "matplotlib"])
def test_every_extra_imports(module):
    importlib.import_module(module)
