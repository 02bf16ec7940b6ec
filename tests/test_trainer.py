"""Training jobs for the cluster: Kubeflow Trainer v2 TrainJobs (reelworks.trainer) and the
Training Operator 1.9 PyTorchJob/TFJob (reelworks.training_operator), each checked against the
upstream CRD schema (strictly: unknown fields fail), the restricted Pod Security Standard, and
the ServiceAccount the chart binds."""
from __future__ import annotations

import copy

import jsonschema
import pytest

from reelworks import kubeflow, trainer, training_operator
from reelworks.errors import ReelworksError
from tests.crds import validate

COMMAND = ["torchrun", "-m", "reelworks.plots.train", "--config", "s3://b/run/config.json"]


def restricted(pod: dict, container: dict) -> None:
    """The restricted Pod Security Standard, field by field (the controls kube-apiserver checks)."""
    pod_sc, sc = pod.get("securityContext", {}), container.get("securityContext", {})
    assert pod_sc.get("runAsNonRoot") is True or sc.get("runAsNonRoot") is True
    assert (sc.get("seccompProfile") or pod_sc.get("seccompProfile"))["type"] in ("RuntimeDefault", "Localhost")
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"] and not sc["capabilities"].get("add")
    assert sc.get("runAsUser", pod_sc.get("runAsUser")) != 0
    assert not sc.get("privileged") and not pod.get("hostNetwork") and not pod.get("hostPID")
    for volume in pod.get("volumes", []):
        assert set(volume) - {"name"} <= {"emptyDir", "configMap", "secret", "persistentVolumeClaim", "projected",
                                          "downwardAPI", "ephemeral", "csi"}, volume


def node_pod(job: dict) -> tuple[dict, dict]:
    (patch,) = job["spec"]["runtimePatches"]
    (replicated,) = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    assert replicated["name"] == trainer.NODE
    pod = replicated["template"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["name"] == trainer.NODE
    return pod, container


def test_trainjob_on_gpus(monkeypatch):
    monkeypatch.setenv("REELWORKS_RUN_ID", "run-42")
    job = trainer.train_job(training_operator.job_name("Plots_Train GPT2"), "ghcr.io/reelworks/reelworks-torch:1",
                            COMMAND, nodes=3, gpus_per_node=4, namespace="ml", memory="32Gi",
                            env={"TOKENIZERS_PARALLELISM": "false"})
    validate(job)
    assert job["apiVersion"] == "trainer.kubeflow.org/v1alpha1" and job["kind"] == "TrainJob"
    assert job["metadata"]["namespace"] == "ml" and job["metadata"]["name"].startswith("plots-train-gpt2-")
    assert job["spec"]["runtimeRef"] == {"apiGroup": "trainer.kubeflow.org", "kind": "ClusterTrainingRuntime",
                                         "name": "torch-distributed"}
    spec = job["spec"]["trainer"]
    # One torchrun process per GPU of each node: rank N takes cuda:N.
    assert spec["numNodes"] == 3 and spec["numProcPerNode"] == 4
    assert spec["resourcesPerNode"]["limits"] == {"nvidia.com/gpu": "4", "memory": "32Gi"}
    assert spec["command"] == COMMAND and spec["image"] == "ghcr.io/reelworks/reelworks-torch:1"
    env = {e["name"]: e for e in spec["env"]}
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"] == {"name": kubeflow.S3_SECRET,
                                                                       "key": "AWS_SECRET_ACCESS_KEY"}
    assert env["REELWORKS_PUSHGATEWAY_URL"]["valueFrom"]["configMapKeyRef"]["optional"] is True
    assert env["REELWORKS_RUN_ID"]["value"] == "run-42" and env["TOKENIZERS_PARALLELISM"]["value"] == "false"
    pod, container = node_pod(job)
    assert pod["serviceAccountName"] == kubeflow.SERVICE_ACCOUNT
    restricted(pod, container)
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"name": "dshm", "mountPath": "/dev/shm"} in container["volumeMounts"]


def test_trainjob_on_cpu_and_a_namespaced_runtime():
    job = trainer.train_job("one", "img", COMMAND, namespace="ml", runtime="reelworks-torch",
                            runtime_kind="TrainingRuntime", labels={"team": "ml"}, active_deadline_s=3600)
    validate(job)
    assert job["spec"]["trainer"]["numProcPerNode"] == 1 and "resourcesPerNode" not in job["spec"]["trainer"]
    assert job["spec"]["runtimeRef"]["kind"] == "TrainingRuntime" and job["spec"]["activeDeadlineSeconds"] == 3600
    pod, container = node_pod(job)
    assert "nodeSelector" not in pod and "tolerations" not in pod
    restricted(pod, container)


def test_outside_a_pipeline_run_the_pods_get_no_pod_name_as_run_id(monkeypatch):
    for name in ("REELWORKS_RUN_ID", "KFP_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOSTNAME", "launcher-pod-abcde")
    env = {e["name"] for e in trainer.train_job("x", "img", COMMAND, namespace="ml")["spec"]["trainer"]["env"]}
    assert "REELWORKS_RUN_ID" not in env


def test_bad_trainjob_settings():
    with pytest.raises(ReelworksError, match="at least 1 node"):
        trainer.train_job("x", "img", COMMAND, nodes=0, namespace="ml")
    with pytest.raises(ReelworksError, match="needs a command"):
        trainer.train_job("x", "img", [], namespace="ml")
    with pytest.raises(ReelworksError, match="runtime kind"):
        trainer.train_job("x", "img", COMMAND, namespace="ml", runtime_kind="JobSet")
    with pytest.raises(ReelworksError, match="comes from the S3 secret"):
        trainer.train_job("x", "img", COMMAND, namespace="ml", env={"AWS_ACCESS_KEY_ID": "oops"})


def test_strict_schema_rejects_unknown_and_misplaced_fields():
    job = trainer.train_job("x", "img", COMMAND, namespace="ml", gpus_per_node=1)
    for mutate in (lambda j: j["spec"]["trainer"].update(numProcsPerNode=1),          # a typo
                   lambda j: node_pod(j)[0].update(restartPolicy="OnFailure"),       # not patchable
                   lambda j: j["spec"]["trainer"].update(numNodes="2")):             # wrong type
        broken = copy.deepcopy(job)
        mutate(broken)
        with pytest.raises(jsonschema.ValidationError):
            validate(broken)


@pytest.mark.parametrize("gpus", [0, 4])
def test_pytorchjob_and_tfjob_match_their_crds(gpus):
    pytorch = training_operator.to_dict(training_operator.pytorch_job(
        "p", "img", COMMAND, workers=2, gpus_per_worker=gpus, namespace="ml", memory="8Gi"))
    tf = training_operator.to_dict(training_operator.tf_job(
        "t", "img-tf", ["python", "-m", "x"], workers=2, gpus_per_worker=gpus, chief=True, namespace="ml"))
    for job, key in ((pytorch, "pytorchReplicaSpecs"), (tf, "tfReplicaSpecs")):
        validate(job)
        for replica in job["spec"][key].values():
            pod = replica["template"]["spec"]
            assert pod["serviceAccountName"] == kubeflow.SERVICE_ACCOUNT
            restricted(pod, pod["containers"][0])
    assert pytorch["spec"]["nprocPerNode"] == str(max(gpus, 1))


def test_plots_train_launchers(tmp_path):
    """`--launcher trainjob|pytorchjob|local`: the cluster launchers need S3 checkpoints."""
    from reelworks.plots.train import LAUNCHERS, train

    assert LAUNCHERS == ("local", "trainjob", "pytorchjob")
    with pytest.raises(ReelworksError, match="unknown launcher 'kubernetes'"):
        train(str(tmp_path), str(tmp_path / "out"), launcher="kubernetes")


# --------------------------------------------------------------------------- run, against an API server

TORCH_RUNTIME = {  # Trainer v2.3's torch-distributed ClusterTrainingRuntime (manifests/base/runtimes)
    "apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "ClusterTrainingRuntime",
    "metadata": {"name": "torch-distributed", "labels": {"trainer.kubeflow.org/framework": "torch"}},
    "spec": {"mlPolicy": {"numNodes": 1, "torch": {}},  # v2.3: numProcPerNode lives on the TrainJob
             "template": {"spec": {"replicatedJobs": [{
                 "name": "node",
                 "template": {"metadata": {"labels": {"trainer.kubeflow.org/trainjob-ancestor-step": "trainer"}},
                              "spec": {"template": {"spec": {"containers": [{
                                  "name": "node", "image": "pytorch/pytorch:2.7.1-cuda12.6-cudnn9-runtime",
                                  "command": ["/bin/bash", "-c", "echo 'Torch Distributed Runtime'"]}]}}}}}]}}},
}


class KubernetesAPI:
    """The Kubernetes API paths the Trainer SDK calls for one TrainJob, over HTTP on 127.0.0.1,
    answering with the API's documented shapes; records (verb, group, resource, namespaced)."""

    def __init__(self, outcome: str = "Complete"):
        self.outcome, self.calls, self.jobs, self.logs_read = outcome, [], {}, False

    def handle(self, method: str, path: str, query: dict, body: dict | None):
        import re

        core = re.fullmatch(r"/api/v1/namespaces/([^/]+)/(configmaps|pods)(?:/([^/]+))?(/log)?", path)
        group = re.fullmatch(r"/apis/trainer\.kubeflow\.org/v1alpha1(?:/namespaces/([^/]+))?/(\w+)(?:/([^/]+))?",
                             path)
        if core:
            namespace, resource, name, log = core.groups()
            resource += log or ""
            self.calls.append(("get" if name else "list", "", resource, namespace))
            if resource == "configmaps":  # the SDK's version probe in kubeflow-system: not ours to read
                return 403, {"kind": "Status", "status": "Failure", "reason": "Forbidden", "code": 403}
            if resource == "pods/log":
                self.logs_read = True
                return 200, "step 1/2 loss 5.1\nstep 2/2 loss 4.7\n"
            job = query["labelSelector"][0].split(",")[0].split("=")[1]
            return 200, {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": [{
                "metadata": {"name": f"{job}-node-0-0-x7k2p", "namespace": namespace,
                             "creationTimestamp": "2026-12-02T03:00:00Z",
                             "labels": {"jobset.sigs.k8s.io/jobset-name": job,
                                        "jobset.sigs.k8s.io/replicatedjob-name": "node",
                                        "batch.kubernetes.io/job-completion-index": "0"}},
                "spec": {"containers": [{"name": "node", "image": "img"}]},
                "status": {"phase": "Succeeded" if self.logs_read else "Running"}}]}
        namespace, resource, name = group.groups()
        verb = "create" if method == "POST" else "get"
        self.calls.append((verb, "trainer.kubeflow.org", resource, namespace))
        if resource == "trainingruntimes":
            return 404, {"kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404}
        if resource == "clustertrainingruntimes":
            return 200, TORCH_RUNTIME
        if method == "POST":
            body["metadata"].update(creationTimestamp="2026-12-02T03:00:00Z", uid="5d0c")
            self.jobs[body["metadata"]["name"]] = body
            return 201, body
        job = dict(self.jobs[name])
        if self.logs_read:
            job["status"] = {"conditions": [{"type": self.outcome, "status": "True", "reason": self.outcome,
                                             "message": f"TrainJob {self.outcome}",
                                             "lastTransitionTime": "2026-12-02T03:05:00Z"}]}
        return 200, job


@pytest.fixture
def kubernetes_api():
    from http_helpers import json_api

    api = KubernetesAPI()
    with json_api(api.handle) as url:
        api.url = url
        yield api


def trainer_client(url: str, namespace: str):
    from kubeflow.trainer import KubernetesBackendConfig, TrainerClient
    from kubernetes import client

    configuration = client.Configuration()
    configuration.host = url
    return TrainerClient(backend_config=KubernetesBackendConfig(namespace=namespace,
                                                                client_configuration=configuration))


def test_run_creates_follows_and_waits_with_only_the_roles_permissions(kubernetes_api, caplog):
    import logging

    validate(TORCH_RUNTIME)
    job = trainer.train_job("plots-train-1", "img", COMMAND, namespace="ml", gpus_per_node=2)
    with caplog.at_level(logging.INFO, logger="reelworks.trainer"):
        trainer.run(job, client=trainer_client(kubernetes_api.url, "ml"), poll_s=1, timeout_s=60)
    assert kubernetes_api.jobs["plots-train-1"]["spec"] == job["spec"]  # what was built is what was sent
    assert "step 2/2 loss 4.7" in caplog.text

    # Every call the launcher made is one the chart's Role (or its one ClusterRole) grants.
    import helm_python
    import yaml

    from tests.conftest import REPO

    with helm_python.Chart.load(str(REPO / "helm" / "reelworks")) as chart:
        rbac = [yaml.safe_load(d) for d in chart.render({}, name="reelworks", namespace="ml")[
            "reelworks/templates/rbac.yaml"].split("\n---") if yaml.safe_load(d)]
    granted = {(verb, group, resource, obj["kind"] == "Role")
               for obj in rbac if obj["kind"] in ("Role", "ClusterRole")
               for rule in obj["rules"] for group in rule["apiGroups"]
               for resource in rule["resources"] for verb in rule["verbs"]}
    calls = {(verb, group, resource, namespace is not None) for verb, group, resource, namespace in kubernetes_api.calls
             if resource != "configmaps"}  # the SDK's optional version probe in kubeflow-system
    assert calls - granted == set()
    # ... and each Trainer permission is used (pods/log, pods are shared with the PyTorchJob path).
    assert {g for g in granted if g[1] == "trainer.kubeflow.org"} <= calls


def test_a_failed_trainjob_is_one_clear_error(kubernetes_api):
    kubernetes_api.outcome = "Failed"
    job = trainer.train_job("plots-train-2", "img", COMMAND, namespace="ml")
    with pytest.raises(ReelworksError, match="TrainJob ml/plots-train-2 did not succeed: TrainJob plots-train-2 is Failed"):
        trainer.run(job, client=trainer_client(kubernetes_api.url, "ml"), poll_s=1, timeout_s=60)


def test_no_cluster_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(ReelworksError, match="cannot run TrainJob ml/x"):
        trainer.run(trainer.train_job("x", "img", COMMAND, namespace="ml"))


# --------------------------------------------------------------------------- multi-worker outputs

TWO_WORKERS = {"cluster": {"worker": ["w0:2222", "w1:2222"]}}


@pytest.mark.parametrize("task, chief", [({}, True), ({"type": "worker", "index": 0}, True),
                                         ({"type": "worker", "index": 1}, False)])
def test_only_the_chief_publishes_the_shot_classifier(tmp_path, monkeypatch, task, chief):
    """A worker's completion marker could land before the chief's model: only the chief writes."""
    import json

    from reelworks.films import shot_classifier
    from reelworks.metrics import JobMetrics
    from reelworks.reports import Report

    if task:
        monkeypatch.setenv("TF_CONFIG", json.dumps({**TWO_WORKERS, "task": task}))
    else:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    report = Report("MCU classifier")
    report.metric("recall", 0.8)
    out = tmp_path / "model"
    shot_classifier._publish(report, {"task": "mcu"}, 3, JobMetrics("films_train_shot_classifier", gateway=""), str(out))
    written = sorted(p.name for p in out.rglob("*")) if out.exists() else []
    assert (shot_classifier.MARKER in written) is chief
    assert bool(written) is chief


def test_chief_of_a_tfjob_with_a_chief_replica(monkeypatch):
    import json

    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"chief": ["c:1"], "worker": ["w0:1"]},
                                                "task": {"type": "worker", "index": 0}}))
    assert not trainer.is_chief() and trainer.cluster_workers() == 2
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ReelworksError, match="TF_CONFIG is not valid JSON"):
        trainer.is_chief()
