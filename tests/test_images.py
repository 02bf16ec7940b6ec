"""Rules every images/*/Dockerfile keeps (no Docker needed: the files are parsed).

Pinned bases and tools, the constraints file on every install, a numeric non-root user,
`reelworks` as the entrypoint, caches under /tmp for a read-only root filesystem.
"""
from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "images"
DOCKERFILES = sorted(IMAGES.glob("*/Dockerfile"))
FLAVOURS = {"cpu": "twitter,video,k8s", "torch": "torch,video,k8s", "tf": "tf-gpu,video,k8s"}
RUNTIME_ENV = {
    "HOME": "/tmp", "XDG_CACHE_HOME": "/tmp/.cache", "REELWORKS_CACHE_DIR": "/tmp/reelworks-cache",
    "MPLCONFIGDIR": "/tmp/mpl", "TF_CPP_MIN_LOG_LEVEL": "2", "TOKENIZERS_PARALLELISM": "false",
    "PYTHONUNBUFFERED": "1",
}


def parse(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    instructions, pending = [], ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # Docker drops comment lines, inside continuations too
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        command, _, args = (pending + line).partition(" ")
        instructions.append((command.upper(), args.strip()))
        pending = ""
    assert not pending, f"{path}: dangling line continuation"
    return instructions


def stages(instructions):
    """Global ARG defaults, and the instructions of each stage (split at FROM)."""
    global_args, result = {}, []
    for command, args in instructions:
        if command == "FROM":
            result.append([(command, args)])
        elif result:
            result[-1].append((command, args))
        elif command == "ARG":
            name, _, default = args.partition("=")
            global_args[name] = default.strip('"')
    return global_args, result


def env_vars(stage) -> dict:
    env = {}
    for command, args in stage:
        if command == "ENV":
            for item in shlex.split(args):
                name, _, value = item.partition("=")
                env[name] = value
    return env


@pytest.fixture(params=DOCKERFILES, ids=lambda p: p.parent.name)
def dockerfile(request):
    path = request.param
    global_args, built = stages(parse(path))
    return path, global_args, built


def test_every_flavour_has_a_dockerfile():
    assert sorted(p.parent.name for p in DOCKERFILES) == sorted(FLAVOURS)


def test_base_images_are_pinned(dockerfile):
    path, global_args, built = dockerfile
    stage_names = set()
    for stage in built:
        words = stage[0][1].split()
        image = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: global_args[m.group(1) or m.group(2)], words[0])
        if image not in stage_names:
            name, _, tag = image.partition("@")[0].rpartition(":")
            assert name and "/" not in tag, f"{path}: FROM {image} has no tag"
            assert tag != "latest" and re.search(r"\d", tag), f"{path}: FROM {image} is not pinned to a version"
        if len(words) == 3 and words[1].upper() == "AS":
            stage_names.add(words[2])
    assert len(built) >= 2, f"{path}: expected a multi-stage build"


def test_runs_as_numeric_non_root_user(dockerfile):
    path, _, built = dockerfile
    users = [args for command, args in built[-1] if command == "USER"]
    assert users, f"{path}: the final stage sets no USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) > 0, f"{path}: USER {users[-1]} must be a numeric non-root UID"
    assert not gid or (gid.isdigit() and int(gid) > 0)
    assert int(uid) == 10001, "the chart's podSecurity.uid default is 10001"


def test_entrypoint_and_environment(dockerfile):
    path, _, built = dockerfile
    final = built[-1]
    entrypoints = [args for command, args in final if command == "ENTRYPOINT"]
    assert entrypoints and json.loads(entrypoints[-1]) == ["reelworks"], f"{path}: ENTRYPOINT"
    env = env_vars(final)
    for name, value in RUNTIME_ENV.items():
        assert env.get(name) == value, f"{path}: ENV {name}"
    assert env["PATH"].startswith("/opt/venv/bin:")
    # The device plugin sets it per pod; in the image it would expose every GPU to any pod.
    assert "NVIDIA_VISIBLE_DEVICES" not in env


def test_installs_use_the_constraints_file(dockerfile):
    path, _, built = dockerfile
    flavour = path.parent.name
    copied = " ".join(args for stage in built for command, args in stage if command == "COPY")
    assert "constraints.txt" in copied
    installs = [args for stage in built for command, args in stage
                if command == "RUN" and re.search(r"\bpip install\b", args)]
    project = [a for a in installs if re.search(r"""(^|\s)["']?\.(\[[^\]]*\])?["']?(\s|$)""", a)]
    assert project, f"{path}: reelworks is never installed"
    for args in project:
        assert "-c constraints.txt" in args, f"{path}: `{args}` ignores constraints.txt"
    assert any(f'".[{FLAVOURS[flavour]}]"' in a for a in project), f"{path}: extras [{FLAVOURS[flavour]}]"
    tools = " ".join(installs)
    for tool in ("pip", "setuptools", "wheel"):
        assert re.search(rf'"{tool}==\$\{{\w+\}}"', tools), f"{path}: {tool} is not pinned"


def test_build_args_are_pinned(dockerfile):
    path, global_args, built = dockerfile
    args = dict(global_args)
    for stage in built:
        for command, value in stage:
            if command == "ARG":
                name, _, default = value.partition("=")
                args[name] = default
    for name, value in args.items():
        if name.endswith("_VERSION"):
            assert value and value != "latest", f"{path}: ARG {name} has no pinned default"


def test_torch_image_installs_the_constrained_cuda_torch():
    torch_pin = re.search(r"^torch==(\S+)", (ROOT / "constraints.txt").read_text(), re.M).group(1)
    global_args, built = stages(parse(IMAGES / "torch" / "Dockerfile"))
    build_args = dict(a.split("=", 1) for stage in built for c, a in stage if c == "ARG" and "=" in a)
    assert build_args["TORCH_VERSION"] == torch_pin, "TORCH_VERSION must match constraints.txt"
    assert build_args["CUDA_FLAVOUR"].startswith("cu")
    runs = " ".join(a for stage in built for c, a in stage if c == "RUN")
    assert "--index-url \"https://download.pytorch.org/whl/${CUDA_FLAVOUR}\"" in runs
    assert "torch.version.cuda" in runs, "the build must check it kept the CUDA torch"


def test_gpu_images_have_ffmpeg():
    for flavour in ("torch", "tf"):
        _, built = stages(parse(IMAGES / flavour / "Dockerfile"))
        runs = " ".join(a for c, a in built[-1] if c == "RUN")
        assert re.search(r'apt-get install -y --no-install-recommends "ffmpeg=\$\{FFMPEG_VERSION\}"', runs)
        assert "rm -rf /var/lib/apt/lists/*" in runs


def test_dockerignore_lets_in_what_the_images_copy():
    lines = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines[0] == "*", ".dockerignore is an allowlist"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    for path in DOCKERFILES:
        for stage in stages(parse(path))[1]:
            for command, args in stage:
                if command == "COPY" and "--from=" not in args:
                    for source in shlex.split(args)[:-1]:
                        name = re.sub(r"\[.*\]", "d", source).rstrip("/")  # README.m[d] -> README.md
                        assert name in allowed, f"{path}: COPY {source} is excluded by .dockerignore"


def test_readme_documents_every_build():
    readme = (IMAGES / "README.md").read_text()
    assert "docker build -f images/$flavour/Dockerfile" in readme
    for variable in ("REELWORKS_IMAGE_REGISTRY", "REELWORKS_IMAGE_TAG", "ghcr.io/reelworks"):
        assert variable in readme
    for flavour in FLAVOURS:
        assert f"images/{flavour}/Dockerfile" in readme
