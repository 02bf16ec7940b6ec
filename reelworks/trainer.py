"""Distributed PyTorch training on Kubernetes with Kubeflow Trainer v2 (`TrainJob`).

A pipeline step that needs more than one pod builds a TrainJob here and runs it:

    job = trainer.train_job("plots-train-x1y2", image=settings.image("torch"),
                            command=["torchrun", "-m", "reelworks.plots.train", "--config", uri],
                            nodes=2, gpus_per_node=4)
    trainer.run(job)   # create, stream node 0's logs, raise unless it completes

The TrainJob references a training runtime the cluster provides (default: Trainer's
`torch-distributed` ClusterTrainingRuntime; `REELWORKS_TRAINER_RUNTIME`,
`REELWORKS_TRAINER_RUNTIME_KIND` choose another, e.g. a namespaced TrainingRuntime). The
runtime's torch plugin sets torchrun's `PET_*` variables, so the command is plain
`torchrun -m module ...`; `numProcPerNode` is the GPUs per node (one process per GPU), or 1 on
CPU. Everything the runtime does not know goes into one runtime patch (manager
`reelworks.io/launcher`): the ServiceAccount the chart binds, the restricted Pod Security
Standard, /dev/shm for NCCL, the GPU node selector and toleration, the S3 secret and ConfigMap
env (the same settings as a pipeline step marked `kubeflow.with_s3`).

Clusters still on the Training Operator 1.9 use `reelworks.training_operator` (PyTorchJob,
TFJob) behind the same `--launcher` switch. Distributed TensorFlow is not part of Trainer v2:
the Keras steps train on one node with MirroredStrategy (all GPUs of the pod), or as a TFJob on
a Training Operator 1.9 cluster.
"""
from __future__ import annotations

import logging
import os
from typing import Any

from reelworks import kubeflow, settings
from reelworks.errors import ReelworksError

log = logging.getLogger(__name__)

GROUP = "trainer.kubeflow.org"
VERSION = "v1alpha1"
TRAINJOB = "TrainJob"
PLURAL = "trainjobs"
RUNTIME = os.environ.get("REELWORKS_TRAINER_RUNTIME", "torch-distributed")
RUNTIME_KIND = os.environ.get("REELWORKS_TRAINER_RUNTIME_KIND", "ClusterTrainingRuntime")
RUNTIME_KINDS = ("ClusterTrainingRuntime", "TrainingRuntime")
# The replicated job and container of Trainer's torch runtimes that run the training processes.
NODE = "node"
PATCH_MANAGER = "reelworks.io/launcher"
# Environment passed through from the launching step to every node when set there.
PASSTHROUGH_ENV = ("REELWORKS_RUN_ID", "KFP_RUN_ID", "REELWORKS_LOG_LEVEL", "REELWORKS_IMAGE_TAG", "HF_HUB_OFFLINE")


def job_env(extra: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Env of every training pod: S3 credentials from the chart's Secret, endpoint, region and
    Pushgateway from its ConfigMap (optional), the pipeline run id (metrics group by it), `extra`."""
    env: list[dict[str, Any]] = [
        {"name": key, "valueFrom": {"secretKeyRef": {"name": kubeflow.S3_SECRET, "key": key}}}
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")]
    env += [{"name": key, "valueFrom": {"configMapKeyRef": {"name": kubeflow.CONFIG_MAP, "key": key, "optional": True}}}
            for key in ("AWS_ENDPOINT_URL", "AWS_REGION", "REELWORKS_PUSHGATEWAY_URL")]
    values = {k: os.environ[k] for k in PASSTHROUGH_ENV if os.environ.get(k)}
    run = settings.pipeline_run_id()
    if run:
        values.setdefault("REELWORKS_RUN_ID", run)
    values.update(extra or {})
    clash = {e["name"] for e in env} & set(values)
    if clash:
        raise ReelworksError(f"env {', '.join(sorted(clash))} comes from the S3 secret/config map; do not set it")
    return env + [{"name": k, "value": str(v)} for k, v in sorted(values.items())]


def check_counts(nodes: int, gpus_per_node: int, what: str = "node") -> None:
    if nodes < 1:
        raise ReelworksError(f"a training job needs at least 1 {what}, got {nodes}")
    if gpus_per_node < 0:
        raise ReelworksError(f"GPUs per {what} must be 0 or more, got {gpus_per_node}")


def train_job(name: str, image: str, command: list[str], *, nodes: int = 1, gpus_per_node: int = 0,
              namespace: str | None = None, env: dict[str, str] | None = None, cpu: str | None = None,
              memory: str | None = None, runtime: str | None = None, runtime_kind: str | None = None,
              labels: dict[str, str] | None = None, shm_size: str = "2Gi",
              active_deadline_s: int | None = None) -> dict[str, Any]:
    """The TrainJob manifest: `nodes` pods x `gpus_per_node` torchrun processes (1 on CPU)."""
    from kubeflow_trainer_api import models

    if not command:
        raise ReelworksError("a training job needs a command")
    check_counts(nodes, gpus_per_node)
    kind = runtime_kind or RUNTIME_KIND
    if kind not in RUNTIME_KINDS:
        raise ReelworksError(f"unknown training runtime kind {kind!r}; expected one of {', '.join(RUNTIME_KINDS)}")
    requests, limits = resources(cpu, memory, gpus_per_node)
    pod: dict[str, Any] = {
        "serviceAccountName": kubeflow.SERVICE_ACCOUNT,
        "securityContext": kubeflow.pod_security_context(),
        # NCCL and DataLoader workers need more shared memory than the container default 64 MiB.
        "volumes": [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": shm_size}}],
        "containers": [{"name": NODE, "securityContext": kubeflow.container_security_context(),
                        "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}]}],
    }
    if gpus_per_node:
        key, _, value = kubeflow.GPU_NODE_SELECTOR.partition("=")
        pod["nodeSelector"] = {key: value}
        pod["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    trainer: dict[str, Any] = {"image": image, "command": list(command), "env": job_env(env), "numNodes": nodes,
                               "numProcPerNode": max(gpus_per_node, 1)}
    if requests or limits:
        trainer["resourcesPerNode"] = {k: v for k, v in (("requests", requests), ("limits", limits)) if v}
    manifest = {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": TRAINJOB,
        "metadata": {"name": name, "namespace": namespace or default_namespace(), "labels": dict(labels or {})},
        "spec": {
            "runtimeRef": {"apiGroup": GROUP, "kind": kind, "name": runtime or RUNTIME},
            "trainer": trainer,
            "runtimePatches": [{"manager": PATCH_MANAGER, "trainingRuntimeSpec": {"template": {"spec": {
                "replicatedJobs": [{"name": NODE, "template": {"spec": {"template": {
                    # Istio sidecars keep pods running after training ends: the job would never finish.
                    "metadata": {"annotations": {"sidecar.istio.io/inject": "false"}},
                    "spec": pod}}}}]}}}}],
        },
    }
    if active_deadline_s:
        manifest["spec"]["activeDeadlineSeconds"] = active_deadline_s
    if not manifest["metadata"]["labels"]:
        del manifest["metadata"]["labels"]
    # The SDK's own model reads it back: a field it does not know would be lost here.
    parsed = models.TrainerV1alpha1TrainJob.from_dict(manifest).to_dict()
    if parsed != manifest:
        raise AssertionError(f"the Trainer SDK's model changes the TrainJob: {parsed} != {manifest}")
    return manifest


def tf_config() -> dict:
    """TF_CONFIG (set by a TFJob or a TrainingRuntime for MultiWorkerMirroredStrategy), or {}."""
    import json

    try:
        return json.loads(os.environ.get("TF_CONFIG") or "{}")
    except json.JSONDecodeError:
        raise ReelworksError("TF_CONFIG is not valid JSON") from None


def resources(cpu: str | None, memory: str | None, gpus: int) -> tuple[dict, dict]:
    """(requests, limits) of a training container: memory requested and capped alike, GPUs as a
    limit on the cluster's accelerator resource."""
    requests, limits = {}, {}
    if cpu:
        requests["cpu"] = cpu
    if memory:
        requests["memory"] = limits["memory"] = memory
    if gpus:
        limits[kubeflow.GPU_ACCELERATOR] = str(gpus)
    return requests, limits


def cluster_workers() -> int:
    """How many training processes TF_CONFIG names (chief + workers); 1 without TF_CONFIG."""
    cluster = tf_config().get("cluster", {})
    return max(1, sum(len(cluster.get(kind, [])) for kind in ("chief", "worker")))


def is_chief() -> bool:
    """The process that writes outputs (models, reports, completion markers) in multi-worker
    training: TF_CONFIG's chief, else worker 0, else the only one."""
    config = tf_config()
    task = config.get("task", {})
    if not task:
        return True
    if task.get("type") == "chief":
        return True
    return (task.get("type") == "worker" and int(task.get("index", 0)) == 0
            and not config.get("cluster", {}).get("chief"))


def default_namespace() -> str:
    """The pod's own namespace on the cluster (where the pipeline step runs), else `default`."""
    path = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
    if os.path.isfile(path):
        with open(path) as f:
            return f.read().strip()
    return "default"


def run(job: dict[str, Any], client=None, timeout_s: int = 24 * 3600, poll_s: int = 15) -> None:
    """Create the TrainJob, stream node 0's logs, wait; raise ReelworksError unless it completes.

    `client` is a `kubeflow.trainer.TrainerClient` (made for the job's namespace when None).
    """
    name, namespace = job["metadata"]["name"], job["metadata"]["namespace"]
    try:
        if client is None:
            from kubeflow.trainer import KubernetesBackendConfig, TrainerClient

            client = TrainerClient(backend_config=KubernetesBackendConfig(namespace=namespace))
        # The SDK builds TrainJobs from its own trainer types, which have no room for the
        # runtime patch above; it creates them through this same API.
        client.backend.custom_api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, job)
        log.info("TrainJob %s/%s created; waiting for it to start", namespace, name)
        client.wait_for_job_status(name, status={"Running", "Complete", "Failed"}, timeout=timeout_s,
                                   polling_interval=poll_s)
        for line in client.get_job_logs(name, follow=True):
            log.info("%s", line.rstrip("\n"))
        client.wait_for_job_status(name, status={"Complete"}, timeout=timeout_s, polling_interval=poll_s)
    except (RuntimeError, TimeoutError) as exc:  # the SDK's "TrainJob x is Failed" / timeouts / API errors
        raise ReelworksError(f"TrainJob {namespace}/{name} did not succeed: {str(exc).splitlines()[0]}") from None
    except Exception as exc:  # no kube config, API unreachable, RBAC
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ReelworksError(f"cannot run TrainJob {namespace}/{name}: {first}") from None
    log.info("TrainJob %s/%s completed", namespace, name)
