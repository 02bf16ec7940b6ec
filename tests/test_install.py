"""The install holds: one CPU PyTorch from the constraint, no GUI OpenCV, every extra importable,
every third-party import declared in the extra its part of the package runs with. `make test-floors`
runs this file with every direct dependency at its floor."""
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


# --------------------------------------------------------------------------- declared dependencies

# The extras a part of the package runs with (what its image installs besides the core);
# everything not named here is the core: storage, metrics, the CLI, components and pipelines.
EXTRAS_OF = {
    "diffusion": ("torch",), "plots": ("torch",),
    "films": ("video",), "media": ("video",), "frame_interpolation": ("video",), "upscale": ("torch",),
    "imageclf": ("tf",), "posters": ("tf",), "image_features": ("tf",),
    "llm": ("llm",), "musicvideo": ("torch", "video", "llm"),
    "t2v": ("t2v",),  # alone: `pip install reelworks[t2v]` must be enough for text to video
    "trainer": ("k8s",), "training_operator": ("k8s",),
    "tweeter": ("twitter",),
}
# Import names whose distribution is not installed here: the TF GPU image's tensorflow[and-cuda].
OTHER_PROVIDERS = {"tensorflow": {"tensorflow"}}
# Imported, never declared: installed with --no-deps by the Makefile and images/Dockerfile, because
# their declared requirements (mediapipe: numpy<2, protobuf<5) pin what the rest of the stack outgrew.
NO_DEPS_INSTALLS = {"mediapipe"}


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(extras: tuple[str, ...]) -> set[str]:
    """Distributions `pip install reelworks[extras]` asks for by name (self-references followed)."""
    import tomllib

    from packaging.requirements import Requirement

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names, todo, seen = set(), list(project["dependencies"]), set()
    todo += [r for extra in extras for r in project["optional-dependencies"][extra]]
    while todo:
        requirement = Requirement(todo.pop())
        if _normalize(requirement.name) == "reelworks":
            for extra in requirement.extras - seen:
                seen.add(extra)
                todo += project["optional-dependencies"][extra]
        else:
            names.add(_normalize(requirement.name))
    return names


def third_party_imports(paths) -> dict[str, set[str]]:
    """Top-level module -> files importing it (absolute imports anywhere, function bodies too)."""
    import ast
    import sys

    found: dict[str, set[str]] = {}
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top not in sys.stdlib_module_names and top not in ("reelworks", "__future__"):
                    found.setdefault(top, set()).add(str(path.relative_to(REPO)))
    return found


def _parts() -> dict[tuple[str, ...], list[Path]]:
    """Extras -> the package's Python files that run with them."""
    parts: dict[tuple[str, ...], list[Path]] = {}
    files = [*(REPO / "reelworks").rglob("*.py"), *(REPO / "components").rglob("*.py"),
             *(REPO / "pipelines").rglob("*.py")]
    for path in files:
        relative = path.relative_to(REPO / "reelworks").parts if path.is_relative_to(REPO / "reelworks") else ()
        part = (relative[0] if len(relative) > 1 else Path(relative[0]).stem) if relative else ""
        parts.setdefault(EXTRAS_OF.get(part, ()), []).append(path)
    return parts


@pytest.mark.parametrize("extras", sorted(_parts()), ids=lambda extras: "+".join(extras) or "core")
def test_every_import_is_declared_in_its_extra(extras):
    """A module imported directly is a declared requirement of the extra that part runs with, not
    something a dependency happens to bring along (requests through tweepy, av through nothing)."""
    providers = md.packages_distributions()
    wanted = declared(extras)
    undeclared = {}
    for module, files in third_party_imports(_parts()[extras]).items():
        if module in NO_DEPS_INSTALLS:
            assert f'--no-deps "{module}==' in (REPO / "Makefile").read_text(), f"{module}: not in make install"
            continue
        candidates = {_normalize(d) for d in providers.get(module, [])} | OTHER_PROVIDERS.get(module, set())
        assert candidates, f"no installed distribution provides {module!r} (imported by {sorted(files)})"
        if not candidates & wanted:
            undeclared[module] = (sorted(candidates), sorted(files))
    assert not undeclared, f"imported but not declared for reelworks[{','.join(extras)}]: {undeclared}"


def test_tf_gpu_extra_is_tf_with_the_cuda_tensorflow():
    from packaging.requirements import Requirement
    import tomllib

    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    cpu = {Requirement(r).name: str(Requirement(r).specifier) for r in extras["tf"]}
    gpu = {Requirement(r).name: str(Requirement(r).specifier) for r in extras["tf-gpu"]}
    assert cpu.pop("tensorflow-cpu") == gpu.pop("tensorflow") and cpu == gpu


def test_diffusers_takes_dtype():
    """reelworks.diffusion passes `dtype=` to from_pretrained: a diffusers that ignores it (before
    0.40) would load fp32 everywhere. `make test-floors` runs this at the lowest diffusers allowed."""
    import torch

    from reelworks import diffusion

    pipe = diffusion.load("tiny", "sd", device="cpu", dtype=torch.bfloat16)
    assert pipe.unet.dtype == torch.bfloat16 and pipe.vae.dtype == torch.bfloat16
    assert pipe.text_encoder.dtype == torch.bfloat16
