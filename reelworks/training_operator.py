"""Distributed training on clusters still on the Kubeflow Training Operator 1.9 (PyTorchJob, TFJob).

Kubeflow Trainer v2 (`TrainJob`, `reelworks.trainer`) replaces it for PyTorch; `--launcher
pytorchjob` keeps this path for clusters that have not moved yet, and the TFJob remains the way
to run Keras MultiWorkerMirroredStrategy there (Trainer v2 has no TensorFlow runtime).

A pipeline step that needs more than one pod builds a job here and runs it:

    job = training_operator.pytorch_job("plots-train-x1y2", image=settings.image("torch"),
                                        command=["torchrun", "-m", "reelworks.plots.train", "--config", uri],
                                        workers=2, gpus_per_worker=4)
    training_operator.run(job)   # submit, stream the master's logs, raise if it fails

Every replica gets the same settings as a pipeline step marked `kubeflow.with_s3`: S3
credentials from the chart's Secret, the endpoint, region and Pushgateway from its
ConfigMap (optional), plus the run id so metrics group with the pipeline run. GPU workers
ask for `nvidia.com/gpu`, land on GPU nodes and tolerate the GPU taint, like `kubeflow.on_gpu`.
Pods run as the chart's ServiceAccount and meet the restricted Pod Security Standard.

PyTorchJob: one Master and `workers - 1` Workers; `nprocPerNode` is the GPUs per pod (or 1
on CPU) and the operator sets torchrun's `PET_*` variables, so the command is plain
`torchrun -m module ...`. TFJob: `workers` Workers (plus an optional Chief); the operator
sets `TF_CONFIG` for `tf.distribute.MultiWorkerMirroredStrategy`.
"""
from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from reelworks import kubeflow
from reelworks.errors import ReelworksError
from reelworks.trainer import PASSTHROUGH_ENV, job_env, resources  # noqa: F401 (PASSTHROUGH_ENV: kept importable here)

log = logging.getLogger(__name__)
PYTORCHJOB = "PyTorchJob"
TFJOB = "TFJob"
# The container name the operator looks for in each replica (it injects its settings there).
CONTAINER = {PYTORCHJOB: "pytorch", TFJOB: "tensorflow"}


def job_name(prefix: str) -> str:
    """A unique, valid Kubernetes name: `prefix-<8 hex>` (lowercase, at most 63 characters)."""
    base = re.sub(r"[^a-z0-9-]+", "-", prefix.lower()).strip("-")[:50] or "job"
    return f"{base}-{uuid.uuid4().hex[:8]}"


def pod_template(kind: str, image: str, command: list[str], *, gpus: int = 0, cpu: str | None = None,
                 memory: str | None = None, env: dict[str, str] | None = None, shm_size: str = "2Gi",
                 service_account: str | None = None):
    """The pod every replica runs: one container with the image, command, env and resources."""
    from kubernetes import client

    if not command:
        raise ReelworksError("a training job needs a command")
    requests, limits = resources(cpu, memory, gpus)
    container = client.V1Container(
        name=CONTAINER[kind], image=image, command=list(command), env=job_env(env),
        security_context=kubeflow.container_security_context(),
        resources=client.V1ResourceRequirements(requests=requests or None, limits=limits or None),
        # NCCL and DataLoader workers need more shared memory than the container default 64 MiB.
        volume_mounts=[client.V1VolumeMount(name="dshm", mount_path="/dev/shm")])
    spec = client.V1PodSpec(
        containers=[container], restart_policy="OnFailure",
        service_account_name=service_account or kubeflow.SERVICE_ACCOUNT,
        security_context=kubeflow.pod_security_context(),
        volumes=[client.V1Volume(name="dshm", empty_dir=client.V1EmptyDirVolumeSource(medium="Memory",
                                                                                     size_limit=shm_size))])
    if gpus:
        key, _, value = kubeflow.GPU_NODE_SELECTOR.partition("=")
        spec.node_selector = {key: value}
        spec.tolerations = [client.V1Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")]
    # Istio sidecars keep pods running after training ends, so the job would never finish.
    metadata = client.V1ObjectMeta(annotations={"sidecar.istio.io/inject": "false"})
    return client.V1PodTemplateSpec(metadata=metadata, spec=spec)


def _check_counts(workers: int, gpus_per_worker: int) -> None:
    from reelworks.trainer import check_counts

    check_counts(workers, gpus_per_worker, "worker")


def pytorch_job(name: str, image: str, command: list[str], *, workers: int = 1, gpus_per_worker: int = 0,
                namespace: str | None = None, env: dict[str, str] | None = None, cpu: str | None = None,
                memory: str | None = None, backoff_limit: int = 3, labels: dict[str, str] | None = None):
    """A PyTorchJob of `workers` pods (1 Master + workers-1 Workers) x `gpus_per_worker` processes."""
    from kubeflow.training import models
    from kubeflow.training.utils import utils

    _check_counts(workers, gpus_per_worker)
    template = pod_template(PYTORCHJOB, image, command, gpus=gpus_per_worker, cpu=cpu, memory=memory, env=env)
    job = utils.get_pytorchjob_template(name=name, namespace=namespace or default_namespace(), num_workers=workers,
                                        worker_pod_template_spec=template, labels=labels,
                                        num_procs_per_worker=max(gpus_per_worker, 1))
    job.spec.run_policy = models.KubeflowOrgV1RunPolicy(backoff_limit=backoff_limit, clean_pod_policy="None")
    return job


def tf_job(name: str, image: str, command: list[str], *, workers: int = 1, gpus_per_worker: int = 0,
           chief: bool = False, namespace: str | None = None, env: dict[str, str] | None = None,
           cpu: str | None = None, memory: str | None = None, backoff_limit: int = 3,
           labels: dict[str, str] | None = None):
    """A TFJob of `workers` Workers (and one Chief when `chief`), each with `gpus_per_worker` GPUs."""
    from kubeflow.training import models
    from kubeflow.training.utils import utils

    _check_counts(workers, gpus_per_worker)
    template = pod_template(TFJOB, image, command, gpus=gpus_per_worker, cpu=cpu, memory=memory, env=env)
    job = utils.get_tfjob_template(name=name, namespace=namespace or default_namespace(), pod_template_spec=template,
                                   num_workers=workers, labels=labels, num_chief_replicas=1 if chief else None)
    job.spec.run_policy = models.KubeflowOrgV1RunPolicy(backoff_limit=backoff_limit, clean_pod_policy="None")
    return job


def default_namespace() -> str:
    """The pod's own namespace on the cluster (where the pipeline step runs), else `default`."""
    from kubeflow.training.utils import utils

    return utils.get_default_target_namespace()


def to_dict(job) -> dict[str, Any]:
    """The job as the plain manifest the Kubernetes API receives (for tests and `kubectl apply`)."""
    from kubeflow.training import ApiClient

    return ApiClient().sanitize_for_serialization(job)


def run(job, client=None, timeout_s: int = 24 * 3600, poll_s: int = 15) -> None:
    """Submit `job`, stream its master's logs, wait; raise ReelworksError unless it succeeds."""
    from kubeflow.training import TrainingClient

    kind, name, namespace = job.kind, job.metadata.name, job.metadata.namespace
    try:
        client = client or TrainingClient(namespace=namespace, job_kind=kind)
        client.create_job(job=job, namespace=namespace, job_kind=kind)
        log.info("%s %s/%s created; waiting for it to start", kind, namespace, name)
        client.wait_for_job_conditions(name, namespace=namespace, job_kind=kind, wait_timeout=timeout_s,
                                       polling_interval=poll_s,
                                       expected_conditions={"Running", "Succeeded", "Failed"})
        # Follows the master (PyTorchJob) / chief-or-worker-0 pod until it exits, printing each line.
        client.get_job_logs(name, namespace=namespace, job_kind=kind, follow=True)
        deadline = time.monotonic() + timeout_s
        client.wait_for_job_conditions(name, namespace=namespace, job_kind=kind, polling_interval=poll_s,
                                       wait_timeout=max(int(deadline - time.monotonic()), poll_s),
                                       expected_conditions={"Succeeded"})
    except (RuntimeError, TimeoutError) as exc:  # the SDK's "job Failed" / "timeout" / API errors
        raise ReelworksError(f"{kind} {namespace}/{name} did not succeed: {str(exc).splitlines()[0]}") from None
    except Exception as exc:  # no kube config, API unreachable, RBAC
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ReelworksError(f"cannot run {kind} {namespace}/{name}: {first}") from None
    log.info("%s %s/%s succeeded", kind, namespace, name)
