"""Every pipeline compiles, and the compiled YAML carries its cluster settings.

The checks run over whatever `kubeflow.pipelines()` returns, so a new pipeline is covered
the moment it is registered.
"""
from __future__ import annotations

import copy
import functools
import re
import tempfile
from pathlib import Path

import pytest
import yaml

from reelworks import kubeflow, settings

PIPELINES = sorted(kubeflow.pipelines())
_BUILD = Path(tempfile.mkdtemp(prefix="reelworks-compiled-"))


@functools.lru_cache(maxsize=None)
def _compiled_text(name: str) -> str:
    return kubeflow.compile_pipeline(name, _BUILD / f"{name}.yaml").read_text()


def compiled(name: str, tmp_path=None) -> list[dict]:
    """The compiled pipeline's YAML documents (compiled once per test session)."""
    return list(yaml.safe_load_all(_compiled_text(name)))


def executors(docs: list[dict]) -> dict[str, dict]:
    return docs[0]["deploymentSpec"]["executors"]


def platform_executors(docs: list[dict]) -> dict[str, dict]:
    for doc in docs[1:]:
        if doc and "platforms" in doc:
            return doc["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    return {}


def test_there_are_pipelines():
    assert PIPELINES, "no pipeline registered under reelworks.pipelines"


@pytest.mark.parametrize("name", PIPELINES)
def test_pipeline_compiles_with_reelworks_images(name, tmp_path):
    docs = compiled(name, tmp_path)
    images = {e["container"]["image"] for e in executors(docs).values()}
    assert images <= {settings.image(f) for f in settings.IMAGE_FLAVOURS}, images
    for executor in executors(docs).values():
        command = " ".join(executor["container"].get("command", []))
        assert "pip install" not in command, "steps must not pip-install at run time"


@pytest.mark.parametrize("name", PIPELINES)
def test_gpu_steps_land_on_gpu_nodes(name, tmp_path):
    docs = compiled(name, tmp_path)
    platform = platform_executors(docs)
    for exec_name, executor in executors(docs).items():
        accelerator = executor["container"].get("resources", {}).get("accelerator")
        if not accelerator:
            continue
        assert accelerator.get("resourceType") == kubeflow.GPU_ACCELERATOR
        assert accelerator.get("resourceCount", accelerator.get("count")), f"{exec_name}: no GPU count"
        settings_ = platform.get(exec_name, {})
        assert settings_.get("nodeSelector"), f"{exec_name} asks for a GPU but has no node selector"
        assert any(t.get("key") == "nvidia.com/gpu" for t in settings_.get("tolerations", []))


@pytest.mark.parametrize("name", PIPELINES)
def test_s3_steps_get_credentials_from_the_secret(name, tmp_path):
    docs = compiled(name, tmp_path)
    platform = platform_executors(docs)
    with_secret = [n for n, s in platform.items()
                   if any(ref.get("secretName") == kubeflow.S3_SECRET or
                          ref.get("secretNameParameter", {}).get("runtimeValue", {}).get("constant") == kubeflow.S3_SECRET
                          for ref in s.get("secretAsEnv", []))]
    assert with_secret, f"no step of {name} reads S3 credentials from {kubeflow.S3_SECRET}"


@pytest.mark.parametrize("name", PIPELINES)
def test_s3_steps_group_their_metrics_by_the_kfp_run(name):
    """Metrics group by the run id from the pod's KFP label, never by the pod name."""
    for exec_name, config in platform_executors(compiled(name)).items():
        if config.get("secretAsEnv"):
            assert {"name": "KFP_RUN_ID", "fieldPath": f"metadata.labels['{kubeflow.KFP_RUN_LABEL}']"} \
                in config.get("fieldPathAsEnv", []), exec_name


@pytest.mark.parametrize("name", PIPELINES)
def test_every_step_runs_as_the_images_non_root_user(name):
    """Restricted Pod Security Standard on KFP step pods (which the chart does not template)."""
    docs = compiled(name)
    platform = platform_executors(docs)
    for exec_name in executors(docs):
        assert platform.get(exec_name, {}).get("securityContext") == {
            "runAsUser": str(kubeflow.POD_UID), "runAsGroup": str(kubeflow.POD_UID), "runAsNonRoot": True}, exec_name


def test_some_pipeline_has_a_gpu_step(tmp_path):
    gpu = [name for name in PIPELINES
           if any(e["container"].get("resources", {}).get("accelerator") for e in executors(compiled(name, tmp_path)).values())]
    assert gpu, "no pipeline asks for a GPU"


def test_image_setting_moves_every_component(tmp_path, monkeypatch):
    monkeypatch.setenv("REELWORKS_IMAGE_REGISTRY", "registry.example.com/ml")
    monkeypatch.setenv("REELWORKS_IMAGE_TAG", "v9")
    assert settings.image("torch") == "registry.example.com/ml/reelworks-torch:v9"
    with pytest.raises(ValueError):
        settings.image("jax")


# --------------------------------------------------------------------------- GPUs vs processes


def tasks(docs: list[dict]):
    """(task name, task, component, executor) for every task in every DAG (ParallelFor bodies too)."""
    spec = docs[0]
    dags = [spec["root"]["dag"]] + [c["dag"] for c in spec["components"].values() if "dag" in c]
    for dag in dags:
        for name, task in dag.get("tasks", {}).items():
            component = spec["components"][task["componentRef"]["name"]]
            if "executorLabel" in component:
                yield name, task, component, executors(docs)[component["executorLabel"]]


def resolved(task: dict, component: dict, value):
    """A task input as what decides it: ("param", name) for a pipeline/DAG parameter, ("const", value)."""
    placeholder = re.fullmatch(r"\{\{\$\.inputs\.parameters\['([^']+)'\]\}\}", str(value))
    if placeholder:  # an executor field templated from one of the task's inputs
        return resolved_input(task, component, placeholder.group(1))
    return ("const", str(int(float(value))))


def resolved_input(task: dict, component: dict, name: str):
    spec = task.get("inputs", {}).get("parameters", {}).get(name)
    if spec is None:
        default = component.get("inputDefinitions", {}).get("parameters", {}).get(name, {}).get("defaultValue")
        return None if default is None else ("const", str(int(default)))
    if "componentInputParameter" in spec:
        return ("param", spec["componentInputParameter"])
    constant = spec.get("runtimeValue", {}).get("constant")
    return resolved(task, component, constant)


def processes(task: dict, component: dict):
    """The processes a step starts per pod: its `nproc` input (kubeflow.PROCESS_INPUTS), else 1."""
    for name in kubeflow.PROCESS_INPUTS:
        found = resolved_input(task, component, name)
        if found is not None:
            return found
    return ("const", "1")


@pytest.mark.parametrize("name", PIPELINES)
def test_gpu_steps_ask_for_one_gpu_per_process(name):
    """Rank N takes cuda:N: a step that starts more processes than it has GPUs fails on the cluster."""
    docs = compiled(name)
    for task_name, task, component, executor in tasks(docs):
        accelerator = executor["container"].get("resources", {}).get("accelerator")
        if not accelerator:
            continue
        limit = resolved(task, component, accelerator.get("resourceCount", accelerator.get("count")))
        assert limit == processes(task, component), (
            f"{name}/{task_name} asks for {limit} GPUs but starts {processes(task, component)} processes")


def test_the_gpu_check_catches_a_step_with_fewer_gpus_than_processes(monkeypatch):
    """plotbot's train step before the fix: 1 GPU, `nproc` (default 2) torchrun processes."""
    from kfp import compiler, dsl

    from reelworks.components import plots

    def mismatch(data_uri, nproc=2):
        prep = plots.prep(input_uri=data_uri)
        kubeflow.on_gpu(plots.train(data=prep.outputs["data"], nproc=nproc))

    mismatch.__annotations__ = {"data_uri": str, "nproc": int}  # this module's annotations are strings
    path = _BUILD / "mismatch.yaml"
    compiler.Compiler().compile(dsl.pipeline(name="mismatch")(mismatch), str(path))
    docs = list(yaml.safe_load_all(path.read_text()))
    checked = [(resolved(t, c, e["container"]["resources"]["accelerator"]["resourceCount"]), processes(t, c))
               for _, t, c, e in tasks(docs) if e["container"].get("resources", {}).get("accelerator")]
    assert checked == [(("const", "1"), ("param", "nproc"))]


def test_plotbot_train_asks_for_nproc_gpus():
    docs = compiled("plotbot")
    train = next(t for n, t, c, e in tasks(docs) if n == "train")
    component = docs[0]["components"][train["componentRef"]["name"]]
    executor = executors(docs)[component["executorLabel"]]
    assert resolved(train, component, executor["container"]["resources"]["accelerator"]["resourceCount"]) \
        == ("param", "nproc")


def test_torchrun_refuses_more_processes_than_visible_gpus(monkeypatch):
    import torch

    from reelworks.errors import ReelworksError
    from reelworks.plots import train

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    train._check_gpus(1)
    with pytest.raises(ReelworksError, match="--nproc 2 needs 2 GPUs, this machine has 1"):
        train._check_gpus(2)


# --------------------------------------------------------------------------- strict parsing


def strict_messages(docs: list[dict]) -> list:
    """The compiled documents parsed into kfp's own protobuf messages; unknown fields raise."""
    from google.protobuf import json_format
    from kfp.kubernetes import kubernetes_executor_config_pb2
    from kfp.pipeline_spec import pipeline_spec_pb2

    messages = [json_format.ParseDict(docs[0], pipeline_spec_pb2.PipelineSpec()),
                # PipelineSpec keeps deploymentSpec as a free Struct: parse it as what the backend reads.
                json_format.ParseDict(docs[0]["deploymentSpec"], pipeline_spec_pb2.PipelineDeploymentConfig())]
    for doc in docs[1:]:
        messages.append(json_format.ParseDict(doc, pipeline_spec_pb2.PlatformSpec()))
        for executor in doc["platforms"]["kubernetes"]["deploymentSpec"]["executors"].values():
            messages.append(json_format.ParseDict(executor, kubernetes_executor_config_pb2.KubernetesExecutorConfig()))
    return messages


@pytest.mark.parametrize("name", PIPELINES)
def test_compiled_pipeline_parses_strictly_into_kfp_messages(name):
    docs = compiled(name)
    assert len(docs) == 2, "expected the PipelineSpec and a kubernetes PlatformSpec"
    messages = strict_messages(docs)
    assert messages[0].pipeline_info.name == kubeflow.get_pipeline(name).pipeline.name
    assert len(messages) == 3 + len(platform_executors(docs))


def test_strict_parsing_rejects_an_unknown_field():
    from google.protobuf import json_format

    docs = compiled(PIPELINES[0])
    for where in ("spec", "executor"):
        broken = copy.deepcopy(docs)
        if where == "spec":
            broken[0]["deploymentSpec"]["executors"][next(iter(executors(broken)))]["container"]["gpus"] = 1
        else:
            next(iter(platform_executors(broken).values()))["securityContex"] = {"runAsNonRoot": True}
        with pytest.raises(json_format.ParseError):
            strict_messages(broken)


@pytest.mark.parametrize("name", PIPELINES)
def test_compiled_pipeline_loads_and_recompiles_to_the_same_pipeline(name):
    from kfp import compiler, components

    first = _BUILD / f"{name}.yaml"
    _compiled_text(name)
    again = _BUILD / f"{name}.again.yaml"
    compiler.Compiler().compile(components.load_component_from_file(str(first)), str(again))
    assert list(yaml.safe_load_all(again.read_text())) == compiled(name)


def _secret_names(config: dict) -> set[str]:
    return {ref.get("secretName") or ref.get("secretNameParameter", {}).get("runtimeValue", {}).get("constant")
            for ref in config.get("secretAsEnv", [])}


@pytest.mark.parametrize("name, step", [("musicvideo", "exec-plan-scenes"), ("plotbot", "exec-posters-from-plots")])
def test_llm_steps_read_the_endpoint_and_an_optional_key(name, step):
    """Steps that plan with an LLM get the chart's endpoint (ConfigMap) and key (Secret), both
    optional, so a cluster without an LLM runs them on their templates."""
    config = platform_executors(compiled(name))[step]
    assert kubeflow.LLM_SECRET in _secret_names(config)
    llm_secret = [ref for ref in config["secretAsEnv"] if kubeflow.LLM_SECRET in _secret_names({"secretAsEnv": [ref]})]
    assert all(ref.get("optional") for ref in llm_secret)
    mapped = {entry["envVar"] for ref in config.get("configMapAsEnv", []) for entry in ref["keyToEnv"]}
    assert {"REELWORKS_LLM_BASE_URL", "REELWORKS_LLM_MODEL"} <= mapped
    others = [n for n, c in platform_executors(compiled(name)).items() if n != step]
    assert not any(kubeflow.LLM_SECRET in _secret_names(platform_executors(compiled(name))[n]) for n in others)


# --------------------------------------------------------------------------- input checks, local runs


@pytest.mark.parametrize("name", PIPELINES)
def test_every_pipeline_checks_its_inputs_by_parameter_name(name):
    """INPUT_CHECKS (kubeflow.check_inputs) name parameters the pipeline has: a misspelt name
    would silently check nothing."""
    entry = kubeflow.get_pipeline(name)
    checks = entry.input_checks
    assert checks and set(checks) <= set(entry.input_types())


def test_input_checks_name_the_parameter_and_the_problem(tmp_path):
    from reelworks.errors import ReelworksError
    from reelworks.musicvideo.song import write_demo_song

    write_demo_song(str(tmp_path / "song"))
    good = {"audio": str(tmp_path / "song" / "song.wav"), "lyrics": str(tmp_path / "song" / "song.lrc")}
    entry = kubeflow.get_pipeline("musicvideo")
    kubeflow.check_inputs(entry, good)
    kubeflow.check_inputs(entry, {**good, "fps": 0.0, "plan_from": ""})  # 0 and "": the defaults
    (tmp_path / "notes.txt").write_text("not a song\n")
    for bad, message in [({"audio": str(tmp_path / "notes.txt")}, "parameter audio=.*: notes.txt is not audio"),
                         ({"lyrics": str(tmp_path)}, "parameter lyrics='.*': .* is a directory, expected a file"),
                         ({"fps": -3.0}, r"parameter fps=-3.0: must be at least 0, got -3"),
                         ({"snap": "bars"}, "parameter snap='bars': expected one of beats, onsets, none"),
                         ({"batch_size": "many"}, "parameter batch_size='many': batch size must be a positive"),
                         ({"energy": 2.0}, "parameter energy=2.0: must be between 0 and 1")]:
        with pytest.raises(ReelworksError, match=message):
            kubeflow.check_inputs(entry, {**good, **bad})
    with pytest.raises(ReelworksError, match="pipeline 'musicvideo' needs --param audio="):
        kubeflow.check_inputs(entry, {"lyrics": good["lyrics"]})
    kubeflow.check_inputs(entry, {"fps": 2.0}, complete=False)  # the user's own values, before the defaults
    with pytest.raises(ReelworksError, match="parameter fps=-1.0: must be at least 0"):  # t2v: 0 is the model's own
        kubeflow.check_inputs(kubeflow.get_pipeline("t2v"), {"fps": -1.0}, complete=False)
    with pytest.raises(ReelworksError, match=r"parameter ratio=3.0: ratio must be between 5 and 100"):
        kubeflow.check_inputs(kubeflow.get_pipeline("posters"), {"ratio": 3.0}, complete=False)


def test_a_failed_steps_cause_is_its_own_last_error():
    """What `reelworks run` reports for a failed step, read from the step's log as kfp.local writes it."""
    from reelworks.local_run import step_error

    traceback = ("08:19:20.100 - INFO - Executing task 'song-timing'\n"
                 "    [KFP Executor 2026-12-07 08:19:20,200 INFO]: Got executor_input:\n"
                 "    Traceback (most recent call last):\n"
                 "      File \"ephemeral_component.py\", line 14, in song_timing\n"
                 "        raise ValueError('first')\n"
                 "    ValueError: first\n"
                 "    \n"
                 "    During handling of the above exception, another exception occurred:\n"
                 "    \n"
                 "    Traceback (most recent call last):\n"
                 "      File \"timing.py\", line 101, in build_timeline\n"
                 "        raise ReelworksError(f\"--fps must be positive, got {fps}\")\n"
                 "    reelworks.errors.ReelworksError: --fps must be positive, got -3.0\n"
                 "\n08:19:20.473 - ERROR - Task \x1b[96m'song-timing'\x1b[0m finished with status "
                 "\x1b[91mFAILURE\x1b[0m\n")
    assert step_error(traceback) == "--fps must be positive, got -3.0"
    assert step_error(traceback.replace("reelworks.errors.ReelworksError", "KeyError")) == \
        "KeyError: --fps must be positive, got -3.0"
    # a reelworks command the step ran printed its own error line: that is the cause
    assert step_error("    worker 1: error: no GPU for rank 1\n    error: no GPU for rank 1\n" + traceback) == \
        "no GPU for rank 1"
    assert step_error("08:19:20.100 - INFO - Executing task 'x'\n    Killed\n"
                      "08:19:21.100 - ERROR - Task 'x' finished with status FAILURE\n" + "-" * 80) == "Killed"
