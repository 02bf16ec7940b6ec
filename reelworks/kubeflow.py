"""Kubeflow Pipelines glue: the component decorator, cluster settings, and the runner.

Components (`components/*.py`) are lightweight KFP components that import reelworks and
call one library function. `component("torch")` gives them the right image from one
setting; `on_gpu`, `with_s3` and `with_secret_env` add the Kubernetes settings that the
compiled pipeline carries (kfp-kubernetes). Pipelines (`pipelines/*.py`) are found by
module name: each defines `pipeline` (a `@dsl.pipeline`) and may define
`LOCAL_ARGUMENTS`, the arguments for the embedded run on sample data, and `INPUT_CHECKS`,
the checks (`reelworks.checks`) its inputs pass before the first step of a run starts.
"""
from __future__ import annotations

import functools
import importlib
import os
import pkgutil
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, TextIO

from reelworks import settings
from reelworks.errors import NotFoundError, ReelworksError

# Kubernetes objects the Helm chart creates and pipeline steps read (names are settings so a
# second release in one namespace can point its pipelines at its own).
S3_SECRET = os.environ.get("REELWORKS_K8S_S3_SECRET", "reelworks-s3")
CONFIG_MAP = os.environ.get("REELWORKS_K8S_CONFIGMAP", "reelworks-config")
LLM_SECRET = os.environ.get("REELWORKS_K8S_LLM_SECRET", "reelworks-llm")
GPU_ACCELERATOR = os.environ.get("REELWORKS_GPU_ACCELERATOR", "nvidia.com/gpu")
# Label that NVIDIA's GPU feature discovery puts on GPU nodes.
GPU_NODE_SELECTOR = os.environ.get("REELWORKS_GPU_NODE_SELECTOR", "nvidia.com/gpu.present=true")


def component(flavour: str = "cpu", **kwargs) -> Callable:
    """`@dsl.component` running in the reelworks image of `flavour` (cpu, torch, tf).

    The image already holds reelworks and kfp, so nothing is pip-installed at run time
    (which is also what lets `kfp.local` run offline).
    """
    from kfp import dsl

    decorate = dsl.component(base_image=settings.image(flavour), install_kfp_package=False, **kwargs)

    def wrap(func):
        made = decorate(func)
        made.__class__ = _restricted_component_class(type(made))
        return made

    return wrap


@functools.lru_cache(maxsize=None)
def _restricted_component_class(base: type) -> type:
    """`base` whose tasks run as the images' non-root user, so every step of every pipeline
    meets the restricted Pod Security Standard without each pipeline remembering to ask."""

    class RestrictedComponent(base):
        def __call__(self, *args, **kwargs):
            task = super().__call__(*args, **kwargs)
            from kfp.dsl import PipelineTask

            if isinstance(task, PipelineTask):
                restricted(task)
            return task

    RestrictedComponent.__name__ = RestrictedComponent.__qualname__ = base.__name__
    return RestrictedComponent


def restricted(task):
    """The restricted Pod Security Standard for a step: kfp's executor config carries the user;
    the KFP backend adds no privilege escalation, no capabilities, RuntimeDefault seccomp."""
    from kfp import kubernetes

    return kubernetes.set_security_context(task, run_as_user=POD_UID, run_as_group=POD_UID, run_as_non_root=True)


RELEASE = os.environ.get("REELWORKS_RELEASE", "reelworks")
# The ServiceAccount the chart creates and binds to its Role; pipeline runs and training-job
# pods run as it (kfp sets it per run: `submit` passes it).
SERVICE_ACCOUNT = os.environ.get("REELWORKS_K8S_SERVICE_ACCOUNT", "reelworks")
# Every step gets this account's token, also the steps that never call the Kubernetes API: KFP
# sets one service account per run, kfp-kubernetes 2.17 has no per-task automountServiceAccountToken
# (its KubernetesExecutorConfig has no such field), and KFP's launcher in each step pod reads its
# ConfigMap and the artifact store's Secret through the API in any case. What the token can do is
# held by the chart instead: its Role (run training jobs, nothing else) and its admission policies
# (what a training job may contain). The chart's CronJobs, which call no API, mount no token.
# The user the images create (images/, the chart's podSecurity.uid).
POD_UID = int(os.environ.get("REELWORKS_POD_UID", "10001"))


def pod_security_context() -> dict:
    """The restricted Pod Security Standard, pod level, for pods the chart does not template."""
    return {"runAsNonRoot": True, "runAsUser": POD_UID, "runAsGroup": POD_UID, "fsGroup": POD_UID,
            "seccompProfile": {"type": "RuntimeDefault"}}


def container_security_context() -> dict:
    """The restricted Pod Security Standard, container level."""
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": True,
            "runAsUser": POD_UID, "runAsGroup": POD_UID, "seccompProfile": {"type": "RuntimeDefault"}}


# The pod label value (app.kubernetes.io/component) the chart's pipeline-step NetworkPolicy selects.
PIPELINE_STEP = "pipeline-step"
# The label Kubeflow Pipelines' API server puts on the pods of a run (its run id).
KFP_RUN_LABEL = "pipeline/runid"


def with_s3(task):
    """Run the step as a reelworks pod: S3 credentials from the chart's Secret, endpoint and
    Pushgateway from its ConfigMap, and the labels the chart's NetworkPolicy selects."""
    from kfp import kubernetes

    kubernetes.add_pod_label(task, "app.kubernetes.io/name", "reelworks")
    kubernetes.add_pod_label(task, "app.kubernetes.io/instance", RELEASE)
    # The chart's pipeline-step NetworkPolicy adds the egress KFP's driver and launcher need.
    kubernetes.add_pod_label(task, "app.kubernetes.io/component", PIPELINE_STEP)

    kubernetes.use_secret_as_env(task, S3_SECRET, {"AWS_ACCESS_KEY_ID": "AWS_ACCESS_KEY_ID",
                                                   "AWS_SECRET_ACCESS_KEY": "AWS_SECRET_ACCESS_KEY"})
    settings_from_config_map = ("AWS_ENDPOINT_URL", "AWS_REGION", "REELWORKS_PUSHGATEWAY_URL",
                                "REELWORKS_K8S_SERVICE_ACCOUNT")
    kubernetes.use_config_map_as_env(task, CONFIG_MAP, {k: k for k in settings_from_config_map}, optional=True)
    # The KFP backend labels every step pod with its run: metrics group by it (never by pod name).
    kubernetes.use_field_path_as_env(task, "KFP_RUN_ID", f"metadata.labels['{KFP_RUN_LABEL}']")
    return task


def with_llm(task):
    """Give a step that can plan with an LLM the chart's endpoint and model (ConfigMap) and its
    API key (Secret); all optional, so without them the step falls back to its template."""
    from kfp import kubernetes

    kubernetes.use_config_map_as_env(task, CONFIG_MAP, {k: k for k in ("REELWORKS_LLM_BASE_URL", "REELWORKS_LLM_MODEL")},
                                     optional=True)
    kubernetes.use_secret_as_env(task, LLM_SECRET, {"REELWORKS_LLM_API_KEY": "REELWORKS_LLM_API_KEY"}, optional=True)
    return task


def with_secret_env(task, secret: str, keys_to_env: dict[str, str]):
    from kfp import kubernetes

    kubernetes.use_secret_as_env(task, secret, keys_to_env)
    return task


# Inputs by which a component says how many processes it starts per pod (torchrun's
# --nproc-per-node); a GPU step without one starts one process. tests/test_pipelines.py checks
# every compiled GPU step against them: each process takes the GPU of its local rank.
PROCESS_INPUTS = ("nproc",)


def on_gpu(task, count=1, accelerator: str | None = None):
    """Ask for `count` GPUs and land on a GPU node (tolerating the usual GPU taint).

    `count` is the number of processes the step starts (one GPU each): an int, or the same
    pipeline parameter the step gets as `nproc`, e.g. `on_gpu(train, nproc)`.
    """
    from kfp import kubernetes

    task.set_accelerator_type(accelerator or GPU_ACCELERATOR)
    task.set_accelerator_limit(count)
    key, _, value = GPU_NODE_SELECTOR.partition("=")
    kubernetes.add_node_selector(task, label_key=key, label_value=value)
    kubernetes.add_toleration(task, key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")
    return task


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class PipelineEntry:
    name: str
    module: ModuleType

    @property
    def pipeline(self):
        return self.module.pipeline

    @property
    def description(self) -> str:
        doc = (self.module.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""

    @property
    def local_arguments(self) -> dict[str, Any]:
        local = getattr(self.module, "LOCAL_ARGUMENTS", {})
        return dict(local() if callable(local) else local)

    @property
    def input_checks(self) -> dict[str, Callable[[Any], None]]:
        checks = getattr(self.module, "INPUT_CHECKS", {})
        return dict(checks() if callable(checks) else checks)

    def input_types(self) -> dict[str, str]:
        """Pipeline parameter name -> KFP type name (STRING, NUMBER_INTEGER, ...)."""
        spec = self.pipeline.pipeline_spec.root.input_definitions.parameters
        from kfp.pipeline_spec import pipeline_spec_pb2

        names = pipeline_spec_pb2.ParameterType.ParameterTypeEnum
        return {name: names.Name(p.parameter_type) for name, p in spec.items()}


def pipelines() -> dict[str, PipelineEntry]:
    """Every pipeline module under `reelworks.pipelines`, by name."""
    import reelworks.pipelines as package

    found = {}
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        if hasattr(module, "pipeline"):
            found[info.name] = PipelineEntry(info.name, module)
    return dict(sorted(found.items()))


def get_pipeline(name: str) -> PipelineEntry:
    found = pipelines()
    if name not in found:
        raise NotFoundError(f"unknown pipeline {name!r}; known: {', '.join(found) or 'none'}")
    return found[name]


def parse_params(entry: PipelineEntry, params: list[str]) -> dict[str, Any]:
    """`["epochs=3", "input=s3://b/k"]` -> typed arguments, checked against the pipeline."""
    types = entry.input_types()
    out: dict[str, Any] = {}
    for item in params:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ReelworksError(f"malformed --param {item!r}: expected key=value")
        if key not in types:
            raise ReelworksError(f"pipeline {entry.name!r} has no parameter {key!r}; "
                                 f"parameters: {', '.join(sorted(types))}")
        out[key] = _convert(key, raw, types[key])
    return out


def check_inputs(entry: PipelineEntry, arguments: dict[str, Any], complete: bool = True) -> None:
    """The run's arguments against the pipeline's `INPUT_CHECKS`, before any step starts: the
    first parameter that fails is one `ReelworksError` naming it and the problem. An empty
    string is KFP's "not given" (the step's default) and is not checked. `complete`: these
    are all the arguments, so every required parameter must be among them."""
    for name, parameter in entry.pipeline.pipeline_spec.root.input_definitions.parameters.items():
        if complete and name not in arguments and not parameter.is_optional:
            raise ReelworksError(f"pipeline {entry.name!r} needs --param {name}=...")
    for name, check in entry.input_checks.items():
        value = arguments.get(name, "")
        if value == "":
            continue
        try:
            check(value)
        except ReelworksError as exc:
            # a list's check names the item at fault
            shown = name if isinstance(value, (list, dict)) else f"{name}={value!r}"
            raise ReelworksError(f"parameter {shown}: {exc}") from None


def _convert(key: str, raw: str, kind: str) -> Any:
    try:
        if kind == "NUMBER_INTEGER":
            return int(raw)
        if kind == "NUMBER_DOUBLE":
            return float(raw)
        if kind == "BOOLEAN":
            lowered = raw.lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(raw)
            return lowered in ("true", "1", "yes")
        if kind in ("LIST", "STRUCT"):
            import json

            return json.loads(raw)
    except ValueError:
        raise ReelworksError(f"--param {key}={raw!r}: expected {kind.lower().replace('number_', '')}") from None
    return raw


# --------------------------------------------------------------------------- running


def run_local(name: str, arguments: dict[str, Any], pipeline_root: str | None = None, *, verbose: bool = False,
              out: TextIO | None = None) -> Path:
    """Run a whole pipeline in this process tree with `kfp.local` (no cluster, no Docker).

    The inputs are checked first (`check_inputs`). Each step is a subprocess of this Python
    whose output goes to its own log file (`reelworks.local_run`); `out` (default stdout) gets
    one line per step and then what the run made, with the run's `index.html`; `verbose` shows
    everything the steps print as well. A failed step is a `ReelworksError` carrying the step's
    own error and its log's path. `pipeline_root` keeps every artifact: a local folder, or an
    s3:// prefix that receives the run's artifacts once it succeeds (kfp.local itself only
    writes locally; a failed run's files stay in the local cache). Returns the local root.
    """
    import shutil
    import tempfile

    import kfp.local

    from reelworks import storage
    from reelworks.local_run import LocalRun

    out = out or sys.stdout
    entry = get_pipeline(name)
    check_inputs(entry, arguments, complete=False)  # the user's own first: before any sample data is made
    args = {**entry.local_arguments, **arguments}
    check_inputs(entry, args)
    remote_root = pipeline_root if pipeline_root and storage.is_s3(pipeline_root) else None
    if remote_root:
        local_root = Path(tempfile.mkdtemp(prefix="run-", dir=settings.cache_dir()))
    else:
        local_root = Path(pipeline_root or settings.cache_dir() / "local_runs").resolve()
    local_root.mkdir(parents=True, exist_ok=True)
    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(local_root),
                   raise_on_error=True)
    run = LocalRun(name, out, verbose=verbose)
    out.write(f"pipeline {name}: running locally under {remote_root or local_root}\n")
    failed: RuntimeError | None = None
    try:
        with warnings.catch_warnings(), run.capturing():
            # The reelworks image is a Python image; kfp only guesses from the name.
            warnings.filterwarnings("ignore", message=".*non-Python base image.*")
            try:
                entry.pipeline(**args)
            except RuntimeError as exc:  # kfp's "Inner task failed": the cause is in the step's log
                failed = exc
        run.write_index()
        if failed:
            raise ReelworksError(run.failure(str(failed)), exit_code=1)
        if remote_root:
            storage.sync_up(local_root, remote_root)

        def shown(path: Path) -> str:
            return storage.join(remote_root, path.relative_to(local_root).as_posix()) if remote_root else str(path)

        out.write("".join(f"{line}\n" for line in run.summary(shown)))
    finally:
        if remote_root and not failed:
            shutil.rmtree(local_root, ignore_errors=True)
    return local_root


def compile_pipeline(name: str, output: str | Path) -> Path:
    from kfp import compiler

    entry = get_pipeline(name)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(entry.pipeline, str(output))
    return output


def default_pipeline_root() -> str | None:
    root = os.environ.get("REELWORKS_PIPELINE_ROOT")
    if root:
        return root
    bucket = os.environ.get("REELWORKS_S3_BUCKET")
    return f"s3://{bucket}/pipeline-root" if bucket else None


WAIT_TIMEOUT_S = int(os.environ.get("REELWORKS_WAIT_TIMEOUT_S", 24 * 3600))
# The v2beta1 run states a run does not leave. kfp.Client.wait_for_run_completion does not count
# CANCELED among them (it would wait for a cancelled run forever), hence our own loop.
FINISHED_STATES = ("SUCCEEDED", "FAILED", "SKIPPED", "CANCELED")


def wait_for_run(client, run_id: str, timeout_s: float, poll_s: float | None = None):
    """Poll the run until it reaches a finished state; returns the V2beta1Run."""
    import time

    poll_s = poll_s if poll_s is not None else float(os.environ.get("REELWORKS_KFP_POLL_S", 10))
    deadline = time.monotonic() + timeout_s
    while True:
        run = client.get_run(run_id)
        if (run.state or "").upper() in FINISHED_STATES:
            return run
        if time.monotonic() > deadline:
            raise TimeoutError(f"run {run_id} did not finish within {timeout_s} s")
        time.sleep(poll_s)


def submit(name: str, host: str, arguments: dict[str, Any], experiment: str | None = None,
           pipeline_root: str | None = None, wait: bool = False, namespace: str | None = None) -> str:
    """Submit to a Kubeflow Pipelines endpoint; returns the run id."""
    import kfp

    entry = get_pipeline(name)
    root = pipeline_root or default_pipeline_root()
    if root is None:
        raise ReelworksError("no pipeline root: pass --pipeline-root s3://bucket/prefix or set REELWORKS_S3_BUCKET")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # kfp's note about server versions
            client = kfp.Client(host=host, namespace=namespace)
            run = client.create_run_from_pipeline_func(entry.pipeline, arguments=arguments,
                                                       experiment_name=experiment or name, pipeline_root=root,
                                                       service_account=SERVICE_ACCOUNT or None)
        if wait:
            finished = wait_for_run(client, run.run_id, WAIT_TIMEOUT_S)
            state = getattr(finished, "state", None) or "UNKNOWN"
            if state != "SUCCEEDED":
                error = getattr(finished, "error", None)
                detail = (getattr(error, "message", "") or "").strip().splitlines()
                raise ReelworksError(f"run {run.run_id} of {name!r} ended {state}"
                                     + (f": {detail[0]}" if detail else ""), exit_code=1)
    except ReelworksError:
        raise
    except TimeoutError:
        raise ReelworksError(f"run {run.run_id} of {name!r} did not finish within {WAIT_TIMEOUT_S} s", exit_code=1) \
            from None
    except Exception as exc:
        from urllib3.exceptions import MaxRetryError

        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if isinstance(exc, MaxRetryError) or "Max retries exceeded" in first:
            first = "the endpoint is unreachable"
        raise ReelworksError(f"could not submit {name!r} to {host}: {first}") from None
    return run.run_id
