"""The shared Training Operator module: job specs checked field by field and against the
Kubernetes schemas; submit/wait against a stand-in TrainingClient (there is no cluster)."""
import json

import kubernetes_validate
import pytest

from reelworks import training_operator as op
from reelworks.errors import ReelworksError

COMMAND = ["torchrun", "-m", "reelworks.plots.train", "--config", "s3://b/run/config.json"]


def _pods(manifest, key):
    return {kind: spec for kind, spec in manifest["spec"][key].items()}


def _validate_pod(template):
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "check", **template.get("metadata", {})},
           "spec": template["spec"]}
    kubernetes_validate.validate(pod, "1.30", strict=True)


def test_pytorchjob_master_and_workers_with_gpus(monkeypatch):
    monkeypatch.setenv("REELWORKS_RUN_ID", "run-42")
    job = op.pytorch_job(op.job_name("Plots_Train GPT2"), "ghcr.io/reelworks/reelworks-torch:1", COMMAND,
                         workers=3, gpus_per_worker=4, namespace="ml", env={"TOKENIZERS_PARALLELISM": "false"},
                         memory="32Gi")
    m = op.to_dict(job)
    assert m["apiVersion"] == "kubeflow.org/v1" and m["kind"] == "PyTorchJob"
    assert m["metadata"]["namespace"] == "ml" and m["metadata"]["name"].startswith("plots-train-gpt2-")
    assert len(m["metadata"]["name"]) <= 63
    assert m["spec"]["nprocPerNode"] == "4"
    assert m["spec"]["runPolicy"] == {"backoffLimit": 3, "cleanPodPolicy": "None"}
    replicas = _pods(m, "pytorchReplicaSpecs")
    assert {k: v["replicas"] for k, v in replicas.items()} == {"Master": 1, "Worker": 2}
    for spec in replicas.values():
        _validate_pod(spec["template"])
        pod = spec["template"]["spec"]
        (container,) = pod["containers"]
        assert container["name"] == "pytorch" and container["command"] == COMMAND
        assert container["resources"]["limits"] == {"nvidia.com/gpu": "4", "memory": "32Gi"}
        env = {e["name"]: e for e in container["env"]}
        assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "reelworks-s3",
                                                                           "key": "AWS_SECRET_ACCESS_KEY"}
        assert env["AWS_ENDPOINT_URL"]["valueFrom"]["configMapKeyRef"]["optional"] is True
        assert env["REELWORKS_RUN_ID"]["value"] == "run-42" and env["TOKENIZERS_PARALLELISM"]["value"] == "false"
        assert all("value" not in env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"))
        assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
        assert pod["restartPolicy"] == "OnFailure"
        assert {"name": "dshm", "mountPath": "/dev/shm"} in container["volumeMounts"]
    # The SDK reads the manifest back as its own model: the structure is the CRD's.
    from kubeflow.training import ApiClient, models

    class Response:
        data = json.dumps(m)

    parsed = ApiClient().deserialize(Response(), models.KubeflowOrgV1PyTorchJob)
    assert parsed.spec.pytorch_replica_specs["Worker"].replicas == 2


def test_single_cpu_pytorchjob_and_tfjob():
    m = op.to_dict(op.pytorch_job("one", "img", COMMAND, namespace="ml"))
    assert list(m["spec"]["pytorchReplicaSpecs"]) == ["Master"] and m["spec"]["nprocPerNode"] == "1"
    pod = m["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]
    assert "nodeSelector" not in pod and "limits" not in pod["containers"][0]["resources"]
    tf = op.to_dict(op.tf_job("tf", "img-tf", ["python", "-m", "x"], workers=2, gpus_per_worker=1, chief=True,
                              namespace="ml"))
    assert tf["kind"] == "TFJob"
    replicas = _pods(tf, "tfReplicaSpecs")
    assert {k: v["replicas"] for k, v in replicas.items()} == {"Chief": 1, "Worker": 2}
    for spec in replicas.values():
        assert spec["template"]["spec"]["containers"][0]["name"] == "tensorflow"
        _validate_pod(spec["template"])


def test_bad_job_settings():
    with pytest.raises(ReelworksError, match="at least 1 worker"):
        op.pytorch_job("x", "img", COMMAND, workers=0)
    with pytest.raises(ReelworksError, match="needs a command"):
        op.tf_job("x", "img", [])
    with pytest.raises(ReelworksError, match="comes from the S3 secret"):
        op.pytorch_job("x", "img", COMMAND, env={"AWS_SECRET_ACCESS_KEY": "oops"})


class StandInClient:
    """Records the calls `run` makes; `fail` makes the final wait raise like the SDK does."""

    def __init__(self, fail: bool = False):
        self.calls, self.fail = [], fail

    def create_job(self, job, namespace, job_kind):
        self.calls.append(("create", job.metadata.name, namespace, job_kind))

    def wait_for_job_conditions(self, name, namespace, job_kind, expected_conditions, **kw):
        self.calls.append(("wait", tuple(sorted(expected_conditions))))
        if self.fail and expected_conditions == {"Succeeded"}:
            raise RuntimeError(f"{job_kind} {namespace}/{name} is Failed. conditions: [...]")

    def get_job_logs(self, name, namespace, job_kind, follow):
        self.calls.append(("logs", follow))
        return {}, {}


def test_run_submits_follows_logs_and_waits():
    job = op.pytorch_job("train-1", "img", COMMAND, namespace="ml")
    client = StandInClient()
    op.run(job, client=client)
    assert client.calls == [("create", "train-1", "ml", "PyTorchJob"),
                            ("wait", ("Failed", "Running", "Succeeded")), ("logs", True), ("wait", ("Succeeded",))]
    with pytest.raises(ReelworksError, match="PyTorchJob ml/train-1 did not succeed: .*is Failed"):
        op.run(job, client=StandInClient(fail=True))
