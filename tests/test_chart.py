"""The Helm chart (helm/reelworks) and the plain manifests rendered from it (k8s/).

The chart is rendered by Helm's own engine through helm-python-sdk (no helm binary) and every
manifest is checked against Kubernetes' own OpenAPI schemas by kubernetes-validate, strictly
(unknown fields fail), for the oldest Kubernetes we support and the newest the tool knows.
Both tools come with the `test` extra; where one is missing the tests skip, except in CI
(CI=true), where they fail.
"""
from __future__ import annotations

import copy
import importlib
import json
import re
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from tests.conftest import missing

ROOT = Path(__file__).resolve().parent.parent
CHART_DIR = ROOT / "helm" / "reelworks"
RELEASE, NAMESPACE = "reelworks", "reelworks"

OLDEST_KUBERNETES = "1.30"
# Custom resources kubernetes-validate has no schema for; checked by hand below.
CUSTOM_KINDS = {"PrometheusRule"}
CLUSTER_SCOPED = {"ClusterRole", "ClusterRoleBinding", "ValidatingAdmissionPolicy",
                  "ValidatingAdmissionPolicyBinding", "Namespace"}
UID = 10001
SCRATCH_ENV = {"HOME": "/tmp", "XDG_CACHE_HOME": "/tmp/.cache",
               "REELWORKS_CACHE_DIR": "/tmp/reelworks-cache", "MPLCONFIGDIR": "/tmp/mpl"}
X_KEYS = ["X_API_KEY", "X_API_SECRET", "X_ACCESS_TOKEN", "X_ACCESS_TOKEN_SECRET"]

# Every default changed, an extra CronJob (with a key of its own, which the schema allows),
# optional parts switched off.
CUSTOM_VALUES = {
    "image": {"registry": "registry.example.com/ml", "tag": "1.2.3-rc1", "pullPolicy": "Always",
              "pullSecrets": [{"name": "regcred"}], "digests": {"torch": "sha256:" + "ab" * 32}},
    "s3": {"bucket": "films-prod", "endpoint": "http://minio.minio.svc:9000", "region": "eu-west-1",
           "credentialsSecret": "minio-creds"},
    "metrics": {"pushgatewayUrl": "http://pushgateway.observability.svc:9091"},
    "twitter": {"credentialsSecret": "x-prod", "queueUri": "s3://tweets/queue.jsonl"},
    "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/rw"}},
    "rbac": {"clusterTrainingRuntimes": False},  # TrainJobs on a namespaced TrainingRuntime
    "podSecurity": {"uid": 20002, "gid": 20002},
    "scratch": {"medium": "Memory", "sizeLimit": "2Gi"},
    "extraEnv": [{"name": "REELWORKS_LOG_LEVEL", "value": "DEBUG"}],
    "networkPolicy": {
        "httpsExcept": ["169.254.0.0/16", "fd00::/8"],
        "extraEgress": [
            {"cidrs": ["10.0.0.0/8"], "ports": [{"port": 9000}]},
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "minio"}},
             "podSelector": {"matchLabels": {"app": "minio"}},
             "ports": [{"port": 9000, "protocol": "TCP"}]},
        ],
    },
    "prometheusRule": {"enabled": False},
    "admissionPolicy": {"extraImages": ["registry.example.com/ml/tools"], "validationActions": ["Warn", "Audit"]},
    "dashboard": {"label": {"key": "dashboards", "value": "reelworks"},
                  "annotations": {"grafana_folder": "ML"}, "namespace": "monitoring"},
    "cronJobs": {
        "tweeter": {"suspend": False, "schedule": "15 */4 * * *"},
        "nightly": {
            "schedule": "0 3 * * *", "flavour": "torch", "args": ["run", "posters", "--bucket", "{{ .Values.s3.bucket }}"],
            "automountServiceAccountToken": True, "backoffLimit": 0, "activeDeadlineSeconds": 21600,
            "resources": {"requests": {"cpu": "2", "memory": "8Gi"},
                          "limits": {"memory": "16Gi", "nvidia.com/gpu": 1}},
            "nodeSelector": {"nvidia.com/gpu.present": "true"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "env": [{"name": "REELWORKS_PROGRESS", "value": "0"}],
            "owner": "ml-platform",
        },
    },
}
# The bare minimum: nothing optional, no credentials Secret (IRSA), another release/namespace.
MINIMAL_VALUES = {
    "serviceAccount": {"create": False},
    "rbac": {"create": False},
    "networkPolicy": {"enabled": False},
    "prometheusRule": {"enabled": False},
    "dashboard": {"enabled": False},
    "admissionPolicy": {"enabled": False},
    "s3": {"credentialsSecret": ""},
    "metrics": {"pushgatewayUrl": ""},
    "cronJobs": {"tweeter": None, "metrics-prune": None},
}
SCENARIOS = {
    "defaults": ({}, RELEASE, NAMESPACE),
    "custom": (CUSTOM_VALUES, RELEASE, NAMESPACE),
    "minimal": (MINIMAL_VALUES, "films", "ml"),
}


def _tool(module: str):
    """Import a test tool: skip without it, but fail in CI, where it must be installed."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        message = f"{module} is not installed ({exc}); install the test extra: pip install -e '.[test]'"
        missing(message)


@pytest.fixture(scope="module")
def helm():
    return _tool("helm_python")


@pytest.fixture(scope="module")
def kubernetes_validate():
    return _tool("kubernetes_validate")


@pytest.fixture(scope="module")
def chart(helm):
    with helm.Chart.load(str(CHART_DIR)) as loaded:
        yield loaded


def render(chart, values=None, name=RELEASE, namespace=NAMESPACE) -> list[dict]:
    """Every object the chart renders, each tagged with its template under `_template`."""
    objects = []
    for template, text in sorted(chart.render(copy.deepcopy(values or {}), name=name, namespace=namespace).items()):
        if template.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                doc["_template"] = template
                objects.append(doc)
    return objects


@pytest.fixture(scope="module")
def rendered(chart):
    return {scenario: render(chart, values, name, ns) for scenario, (values, name, ns) in SCENARIOS.items()}


def by_kind(objects, kind):
    return [o for o in objects if o["kind"] == kind]


def one(objects, kind, name=None):
    found = [o for o in by_kind(objects, kind) if name is None or o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {[o['metadata']['name'] for o in found]}"
    return found[0]


def strip(obj):
    return {k: v for k, v in obj.items() if k != "_template"}


POD_SPEC_PATHS = {
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "Pod": ("spec",),
}


def pod_specs(objects):
    """(label, pod spec) for every pod template among `objects`."""
    for obj in objects:
        path = POD_SPEC_PATHS.get(obj["kind"])
        if path:
            spec = obj
            for key in path:
                spec = spec[key]
            yield f"{obj['kind']}/{obj['metadata']['name']}", spec


def env_of(container) -> dict:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def cronjob(objects, key, prefix=RELEASE):
    """The CronJob of cronJobs.<key>, named <fullname>-<key>."""
    return one(objects, "CronJob", f"{prefix}-{key}")


def container_of(cron):
    (container,) = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    return container


# --------------------------------------------------------------------------- lint and schemas


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_helm_lint_strict(helm, scenario):
    values, _, namespace = SCENARIOS[scenario]
    for kube_version in (f"v{OLDEST_KUBERNETES}.0", None):
        report = helm.lint(str(CHART_DIR), copy.deepcopy(values), strict=True, namespace=namespace,
                           kube_version=kube_version)
        problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
        assert not problems, f"helm lint --strict ({scenario}, {kube_version or 'default'}): {problems}"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_manifests_pass_kubernetes_validate_strict(rendered, kubernetes_validate, scenario):
    versions = [OLDEST_KUBERNETES, kubernetes_validate.latest_version()]
    objects = rendered[scenario]
    assert objects
    checked = 0
    for obj in objects:
        if obj["kind"] in CUSTOM_KINDS:
            continue
        for version in versions:
            try:
                kubernetes_validate.validate(strip(obj), version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                path = ".".join(str(p) for p in exc.path)
                pytest.fail(f"{obj['_template']}: {obj['kind']}/{obj['metadata']['name']} is invalid for "
                            f"Kubernetes {version} at {path}: {exc.message}", pytrace=False)
            except kubernetes_validate.SchemaNotFoundError as exc:
                pytest.fail(f"{obj['_template']}: {exc.message} (a custom resource? add it to CUSTOM_KINDS "
                            "and check its structure by hand)", pytrace=False)
            checked += 1
    assert checked >= len(versions)


def test_values_schema_rejects_mistakes(chart, helm):
    chart.validate_schema({})
    mistakes = [
        {"s3": {"buckt": "films"}},                          # a typo
        {"unknownTopLevel": True},
        {"image": {"tag": 5}},                               # not a string
        {"cronJobs": {"tweeter": {"suspend": "no"}}},        # not a boolean
        {"cronJobs": {"tweeter": {"flavour": "gpu"}}},       # not a flavour
        {"cronJobs": {"Bad_Name": {"schedule": "* * * * *"}}},  # not a DNS label
        {"cronJobs": {"x": {"secretEnv": [{"secretName": "s", "keys": ["not-an-env-name"]}]}}},
        {"podSecurity": {"uid": 0}},                         # root
        {"networkPolicy": {"extraEgress": [{}]}},           # would allow all egress
        {"prometheusRule": {"tweetQueueMin": "five"}},
        {"cronJobs": {"x": {"secretFiles": [{"secretName": "s"}]}}},    # where to mount it?
        {"cronJobs": {"x": {"secretFiles": [{"secretName": "s", "mountPath": "relative"}]}}},
        {"admissionPolicy": {"validationActions": ["Block"]}},
        {"admissionPolicy": {"extraImages": ["docker.io/library/python:3.12"]}},  # a repository, no tag
        {"namespace": {"podSecurity": "strict"}},
    ]
    for values in mistakes:
        with pytest.raises(helm.HelmValuesError):
            chart.validate_schema(values)
        with pytest.raises(helm.HelmValuesError):
            chart.render(values, name=RELEASE, namespace=NAMESPACE)
    # Extensions: an entry may carry keys of its own.
    chart.validate_schema({"cronJobs": {"report": {"schedule": "@daily", "owner": "ml", "notes": {"a": 1}}}})


def test_render_refuses_unsafe_or_broken_values(chart, helm):
    with pytest.raises(helm.HelmError, match="longer than 52"):
        chart.render({"cronJobs": {"a-very-long-cron-job-name-for-the-limit": {"schedule": "@daily"}}},
                     name="a-long-release-name", namespace=NAMESPACE)
    with pytest.raises(helm.HelmError, match="schedule is required"):
        chart.render({"cronJobs": {"nightly": {"args": ["x"]}}}, name=RELEASE, namespace=NAMESPACE)
    with pytest.raises(helm.HelmError, match="pushgateway needs"):
        chart.render({"networkPolicy": {"pushgateway": {"namespaceSelector": None, "podSelector": None}}},
                     name=RELEASE, namespace=NAMESPACE)


# --------------------------------------------------------------------------- every object


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_objects_are_namespaced_and_labelled(rendered, scenario):
    _, release, namespace = SCENARIOS[scenario]
    for obj in rendered[scenario]:
        meta = obj["metadata"]
        # The custom scenario puts the dashboard where Grafana's sidecar looks (dashboard.namespace).
        moved = scenario == "custom" and meta["name"].endswith("-dashboard")
        cluster_scoped = obj["kind"] in CLUSTER_SCOPED
        assert meta.get("namespace") == (None if cluster_scoped else "monitoring" if moved else namespace), \
            f"{obj['kind']}/{meta['name']}"
        labels = meta["labels"]
        assert labels["app.kubernetes.io/name"] == "reelworks"
        assert labels["app.kubernetes.io/instance"] == release
        assert labels["app.kubernetes.io/part-of"] == "reelworks"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["app.kubernetes.io/version"] == "0.1.0"
        # The one cluster-scoped grant (reading ClusterTrainingRuntimes) is checked in test_rbac_is_least_privilege.
        assert not obj["kind"].startswith("Cluster") or cluster_scoped, f"cluster-scoped {obj['kind']} rendered"
        if cluster_scoped and obj["kind"] != "Namespace":  # unique per namespace and release
            assert meta["name"].startswith(f"{namespace}-{release}"), meta["name"]
        assert obj["kind"] != "Namespace"


def test_default_render_has_the_expected_objects(rendered):
    kinds = sorted((o["kind"], o["metadata"]["name"]) for o in rendered["defaults"])
    policies = [(kind, f"reelworks-reelworks-{jobs}") for jobs in ("pytorchjobs", "tfjobs", "trainjobs")
                for kind in ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")]
    assert kinds == sorted([
        ("ClusterRole", "reelworks-reelworks-training-runtimes"),
        ("ClusterRoleBinding", "reelworks-reelworks-training-runtimes"),
        ("ConfigMap", "reelworks-config"), ("ConfigMap", "reelworks-dashboard"),
        ("CronJob", "reelworks-metrics-prune"), ("CronJob", "reelworks-tweeter"), ("NetworkPolicy", "reelworks"),
        ("NetworkPolicy", "reelworks-pipeline-steps"),
        ("PrometheusRule", "reelworks"), ("Role", "reelworks"), ("RoleBinding", "reelworks"),
        ("ServiceAccount", "reelworks"), *policies,
    ])


# --------------------------------------------------------------------------- pods


RESTRICTED_VOLUME_TYPES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                           "persistentVolumeClaim", "projected", "secret"}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_pod_meets_restricted_pod_security(rendered, scenario):
    specs = list(pod_specs(rendered[scenario]))
    if scenario != "minimal":
        assert specs, "no pod templates rendered"
    for label, spec in specs:
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, label
        for key in ("runAsUser", "runAsGroup", "fsGroup"):
            assert isinstance(pod[key], int) and pod[key] > 0, f"{label}: {key}"
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, label
        for flag in ("hostNetwork", "hostPID", "hostIPC"):
            assert not spec.get(flag), f"{label}: {flag}"
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for volume in volumes.values():
            types = set(volume) - {"name"}
            assert types <= RESTRICTED_VOLUME_TYPES, f"{label}: volume {volume['name']} is {types}"
        containers = spec["containers"] + spec.get("initContainers", [])
        for container in containers:
            where = f"{label} container {container['name']}"
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            assert not set(sc["capabilities"].get("add", [])) - {"NET_BIND_SERVICE"}, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert not sc.get("privileged"), where
            assert sc.get("runAsUser", pod["runAsUser"]) != 0, where
            # Scratch: /tmp is an emptyDir and everything that writes points under it.
            mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
            assert "/tmp" in mounts, f"{where}: no /tmp mount"
            assert "emptyDir" in volumes[mounts["/tmp"]], f"{where}: /tmp is not an emptyDir"
            env = env_of(container)
            for name, value in SCRATCH_ENV.items():
                assert env.get(name) == value, f"{where}: {name}"
            assert container.get("resources", {}).get("requests"), f"{where}: no resource requests"
            assert container.get("resources", {}).get("limits", {}).get("memory"), f"{where}: no memory limit"


def test_pod_security_follows_values(rendered):
    for _, spec in pod_specs(rendered["custom"]):
        sc = spec["securityContext"]
        assert (sc["runAsUser"], sc["runAsGroup"], sc["fsGroup"]) == (20002, 20002, 20002)
        assert spec["volumes"][0] == {"name": "scratch", "emptyDir": {"medium": "Memory", "sizeLimit": "2Gi"}}
    for _, spec in pod_specs(rendered["defaults"]):
        assert spec["securityContext"]["runAsUser"] == UID
        assert spec["volumes"][0] == {"name": "scratch", "emptyDir": {"sizeLimit": "8Gi"}}


def test_every_cronjob_pod_gets_s3_and_pushgateway_env(rendered):
    for scenario in ("defaults", "custom"):
        for label, spec in pod_specs(rendered[scenario]):
            env = env_of(spec["containers"][0])
            values = {**{"s3": {"bucket": "reelworks", "credentialsSecret": "reelworks-s3"},
                         "metrics": {"pushgatewayUrl": "http://prometheus-pushgateway.monitoring.svc:9091"}},
                      **(CUSTOM_VALUES if scenario == "custom" else {})}
            assert env["REELWORKS_S3_BUCKET"] == values["s3"]["bucket"], label
            assert env["REELWORKS_PUSHGATEWAY_URL"] == values["metrics"]["pushgatewayUrl"], label
            secret = values["s3"]["credentialsSecret"]
            for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
                assert env[key] == {"secretKeyRef": {"name": secret, "key": key}}, label
            assert env["REELWORKS_K8S_S3_SECRET"] == secret
            assert env["REELWORKS_K8S_CONFIGMAP"] == "reelworks-config"
            assert env["REELWORKS_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
            if scenario == "custom":
                assert env["AWS_ENDPOINT_URL"] == "http://minio.minio.svc:9000"
                assert env["AWS_REGION"] == "eu-west-1"
                assert env["REELWORKS_LOG_LEVEL"] == "DEBUG"
                assert env["REELWORKS_IMAGE_REGISTRY"] == "registry.example.com/ml"
                assert env["REELWORKS_IMAGE_TAG"] == "1.2.3-rc1"
            else:
                # Unset settings are left out: boto3 would take "" as a real endpoint/region.
                assert "AWS_ENDPOINT_URL" not in env and "AWS_REGION" not in env
                assert env["REELWORKS_IMAGE_TAG"] == "0.1.0"


# --------------------------------------------------------------------------- CronJobs


def test_tweeter_cronjob_defaults(rendered):
    cron = cronjob(rendered["defaults"], "tweeter")
    spec = cron["spec"]
    assert spec["schedule"] == "0 */6 * * *"
    assert spec["suspend"] is True, "the tweeter must stay suspended until credentials exist"
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["timeZone"] == "Etc/UTC"
    assert spec["startingDeadlineSeconds"] > 0
    assert spec["successfulJobsHistoryLimit"] >= 1 and spec["failedJobsHistoryLimit"] >= 1
    job = spec["jobTemplate"]["spec"]
    assert job["backoffLimit"] >= 0 and 0 < job["activeDeadlineSeconds"] <= 3600
    pod = job["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["serviceAccountName"] == "reelworks"
    assert pod["automountServiceAccountToken"] is False, "the tweeter never calls the Kubernetes API"
    container = container_of(cron)
    assert container["image"] == "ghcr.io/reelworks/reelworks-cpu:0.1.0"
    assert container["args"] == ["tweeter", "publish", "--queue", "s3://reelworks/plotbot/queue.jsonl"]
    assert "command" not in container, "the image's entrypoint is `reelworks`"
    assert_x_credentials_mounted(cron, "reelworks-x")
    assert cron["metadata"]["labels"]["app.kubernetes.io/component"] == "tweeter"


X_DIR = "/var/run/secrets/reelworks/x"


def assert_x_credentials_mounted(cron, secret):
    """The X Secret as read-only files (reelworks.tweeter reads REELWORKS_X_CREDENTIALS_DIR), never env."""
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    container = container_of(cron)
    env = env_of(container)
    assert env["REELWORKS_X_CREDENTIALS_DIR"] == X_DIR
    assert not set(X_KEYS) & set(env), "X credentials as env vars"
    assert not [e for e in container.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})
                and e["valueFrom"]["secretKeyRef"]["name"] == secret]
    (volume,) = [v for v in pod["volumes"] if "secret" in v]
    assert volume["secret"] == {"secretName": secret, "defaultMode": 0o440}
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
    assert mount == {"name": volume["name"], "mountPath": X_DIR, "readOnly": True}
    assert pod["securityContext"]["fsGroup"] > 0, "0440 files are read through the pod's group"


def test_cronjobs_mount_no_service_account_token(rendered):
    """The chart's jobs never call the Kubernetes API: no token in them (the ServiceAccount keeps
    automount on for Kubeflow steps, whose launcher needs it; see values.yaml)."""
    crons = by_kind(rendered["defaults"], "CronJob")
    assert len(crons) == 2
    for cron in crons:
        assert cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    assert one(rendered["defaults"], "ServiceAccount")["automountServiceAccountToken"] is True


def test_custom_values_reach_the_cronjobs(rendered):
    objects = rendered["custom"]
    tweeter = cronjob(objects, "tweeter")
    assert tweeter["spec"]["suspend"] is False
    assert tweeter["spec"]["schedule"] == "15 */4 * * *"
    container = container_of(tweeter)
    assert container["image"] == "registry.example.com/ml/reelworks-cpu:1.2.3-rc1"
    assert container["imagePullPolicy"] == "Always"
    assert container["args"][-1] == "s3://tweets/queue.jsonl"
    assert_x_credentials_mounted(tweeter, "x-prod")
    pod = tweeter["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]

    nightly = cronjob(objects, "nightly")
    job = nightly["spec"]["jobTemplate"]["spec"]
    pod = job["template"]["spec"]
    container = container_of(nightly)
    # image.digests.torch is set: the digest, not the tag (the cpu tweeter above keeps its tag).
    assert container["image"] == "registry.example.com/ml/reelworks-torch@sha256:" + "ab" * 32
    assert container["args"] == ["run", "posters", "--bucket", "films-prod"], "args go through tpl"
    assert nightly["spec"]["suspend"] is False
    assert job["backoffLimit"] == 0, "an entry's 0 must override the default, not fall back to it"
    assert job["activeDeadlineSeconds"] == 21600
    assert pod["automountServiceAccountToken"] is True
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert container["resources"]["limits"] == {"memory": "16Gi", "nvidia.com/gpu": 1}
    assert env_of(container)["REELWORKS_PROGRESS"] == "0"
    assert not any(k.startswith("X_") for k in env_of(container)), "X credentials only where asked for"
    assert [v["name"] for v in pod["volumes"]] == ["scratch"], "Secret files only where asked for"


def test_cronjobs_can_be_disabled(chart):
    objects = render(chart, {"cronJobs": {"tweeter": {"enabled": False}, "metrics-prune": {"enabled": False}}})
    assert not by_kind(objects, "CronJob")
    assert not by_kind(render(chart, {"cronJobs": {"tweeter": None, "metrics-prune": None}}), "CronJob")


def test_minimal_values(rendered):
    objects = rendered["minimal"]
    assert sorted(o["kind"] for o in objects) == ["ConfigMap"]
    configmap = objects[0]
    assert configmap["metadata"]["name"] == "films-reelworks-config"
    assert set(configmap["data"]) == {"REELWORKS_S3_BUCKET", "REELWORKS_IMAGE_REGISTRY", "REELWORKS_IMAGE_TAG"}


def test_minimal_values_with_a_job(chart):
    objects = render(chart, {**MINIMAL_VALUES, "cronJobs": {"report": {"schedule": "@daily"}}}, "films", "ml")
    report = cronjob(objects, "report", "films-reelworks")
    env = env_of(container_of(report))
    assert "AWS_ACCESS_KEY_ID" not in env and "REELWORKS_PUSHGATEWAY_URL" not in env
    assert env["REELWORKS_K8S_CONFIGMAP"] == "films-reelworks-config"
    pod = report["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "default"


def test_configmap_for_kubeflow_steps(rendered):
    data = one(rendered["custom"], "ConfigMap", "reelworks-config")["data"]
    assert data == {
        "REELWORKS_S3_BUCKET": "films-prod", "AWS_ENDPOINT_URL": "http://minio.minio.svc:9000",
        "AWS_REGION": "eu-west-1", "REELWORKS_PUSHGATEWAY_URL": "http://pushgateway.observability.svc:9091",
        "REELWORKS_IMAGE_REGISTRY": "registry.example.com/ml", "REELWORKS_IMAGE_TAG": "1.2.3-rc1",
        "REELWORKS_K8S_SERVICE_ACCOUNT": "reelworks",
    }
    # Every key a pipeline step reads from it (kubeflow.with_s3) is one the chart can set.
    from reelworks import kubeflow

    path = kubeflow.compile_pipeline("plotbot", Path(tempfile.mkdtemp()) / "plotbot.yaml")
    platform = list(yaml.safe_load_all(path.read_text()))[1]["platforms"]["kubernetes"]["deploymentSpec"]
    read = {e["configMapKey"] for e in platform["executors"]["exec-prep"]["configMapAsEnv"][0]["keyToEnv"]}
    assert read <= set(data) | {"AWS_ENDPOINT_URL", "AWS_REGION", "REELWORKS_PUSHGATEWAY_URL"}
    assert "REELWORKS_K8S_SERVICE_ACCOUNT" in read


def test_configmap_carries_the_llm_endpoint_when_set(chart):
    """The keys kubeflow.with_llm reads: present only when the values name an endpoint."""
    data = one(render(chart, {"llm": {"baseUrl": "http://vllm.llm.svc:8000/v1", "model": "qwen"}}),
               "ConfigMap", "reelworks-config")["data"]
    assert data["REELWORKS_LLM_BASE_URL"] == "http://vllm.llm.svc:8000/v1" and data["REELWORKS_LLM_MODEL"] == "qwen"
    assert not {"REELWORKS_LLM_BASE_URL", "REELWORKS_LLM_MODEL"} & set(one(render(chart), "ConfigMap",
                                                                              "reelworks-config")["data"])


def test_image_names_match_reelworks_settings(chart, monkeypatch):
    """The chart and reelworks.settings.image() must agree on every flavour's image."""
    settings = importlib.import_module("reelworks.settings")
    monkeypatch.setenv("REELWORKS_IMAGE_REGISTRY", "registry.example.com/ml")
    monkeypatch.setenv("REELWORKS_IMAGE_TAG", "1.2.3")
    for flavour in ("cpu", "torch", "tf"):
        objects = render(chart, {"image": {"registry": "registry.example.com/ml", "tag": "1.2.3"},
                                 "cronJobs": {"tweeter": {"flavour": flavour}}})
        assert container_of(cronjob(objects, "tweeter"))["image"] == settings.image(flavour)


# --------------------------------------------------------------------------- RBAC, network


def test_rbac_is_least_privilege(rendered):
    objects = rendered["defaults"]
    role = one(objects, "Role")
    rules = {(tuple(r["apiGroups"]), tuple(sorted(r["resources"]))): sorted(r["verbs"]) for r in role["rules"]}
    # Exactly what the launchers call (tests/test_trainer.py records the Trainer path's calls):
    # no delete, no watch, and pods only listed, their logs only read.
    assert rules == {
        (("trainer.kubeflow.org",), ("trainjobs",)): ["create", "get"],
        (("trainer.kubeflow.org",), ("trainingruntimes",)): ["get"],
        (("kubeflow.org",), ("pytorchjobs", "tfjobs")): ["create", "get"],
        (("",), ("pods",)): ["list"],
        (("",), ("pods/log",)): ["get"],
    }
    cluster_role = one(objects, "ClusterRole")
    assert cluster_role["rules"] == [{"apiGroups": ["trainer.kubeflow.org"], "resources": ["clustertrainingruntimes"],
                                      "verbs": ["get"]}], "the only cluster-wide grant: reading runtime templates"
    for rule in role["rules"] + cluster_role["rules"]:
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[field], f"wildcard in {field}"
        assert "resourceNames" not in rule and "nonResourceURLs" not in rule
    for kind, ref in (("RoleBinding", "Role"), ("ClusterRoleBinding", "ClusterRole")):
        binding = one(objects, kind)
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": ref,
                                      "name": one(objects, ref)["metadata"]["name"]}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "reelworks", "namespace": NAMESPACE}]
    assert cluster_role["metadata"]["name"] == f"{NAMESPACE}-reelworks-training-runtimes"  # unique per release
    for scenario in ("custom", "minimal"):
        assert not [o for o in rendered[scenario] if o["kind"] in ("ClusterRole", "ClusterRoleBinding")]


def test_service_account(rendered):
    sa = one(rendered["custom"], "ServiceAccount")
    assert sa["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/rw"}


def test_tweeter_deadline_outlasts_the_longest_publish(rendered):
    """activeDeadlineSeconds must outlast the longest rate-limit wait plus a publish with its
    retries, or Kubernetes kills the pod mid-wait; the pod is told its deadline."""
    from reelworks.tweeter.publish import PublishOptions

    o = PublishOptions()
    # Each tweet request (the post, an image upload) may time out on every try, with backoff between.
    publish_s = 2 * (o.retries + 1) * o.timeout + o.backoff * (2 ** o.retries)
    job = cronjob(rendered["defaults"], "tweeter")["spec"]["jobTemplate"]["spec"]
    assert job["activeDeadlineSeconds"] > o.max_rate_limit_wait + publish_s
    env = env_of(job["template"]["spec"]["containers"][0])
    assert env["REELWORKS_JOB_DEADLINE_S"] == str(job["activeDeadlineSeconds"])


PRIVATE_IPV4 = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10"]
PRIVATE_IPV6 = ["fc00::/7", "fe80::/10"]


def test_network_policy(rendered):
    policy = one(rendered["defaults"], "NetworkPolicy", RELEASE)["spec"]
    assert policy["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "reelworks",
                                                     "app.kubernetes.io/instance": RELEASE}}
    assert sorted(policy["policyTypes"]) == ["Egress", "Ingress"]
    assert policy["ingress"] == [], "all ingress denied"
    dns, pushgateway, https = policy["egress"]
    assert "to" not in dns and sorted((p["port"], p["protocol"]) for p in dns["ports"]) == [(53, "TCP"), (53, "UDP")]
    assert pushgateway["ports"] == [{"port": 9091, "protocol": "TCP"}]
    assert pushgateway["to"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
                                  "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus-pushgateway"}}}]
    assert https["ports"] == [{"port": 443, "protocol": "TCP"}]
    # "Anywhere" but private, link-local (cloud metadata) and CGNAT addresses.
    assert https["to"] == [{"ipBlock": {"cidr": "0.0.0.0/0", "except": PRIVATE_IPV4}},
                           {"ipBlock": {"cidr": "::/0", "except": PRIVATE_IPV6}}]
    for rule in policy["egress"]:
        assert rule.get("ports"), "every egress rule names its ports"
    # The policy selects the reelworks pods.
    for obj in by_kind(rendered["defaults"], "CronJob"):
        labels = obj["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
        assert policy["podSelector"]["matchLabels"].items() <= labels.items()


def test_network_policy_extra_egress(rendered):
    egress = one(rendered["custom"], "NetworkPolicy", RELEASE)["spec"]["egress"]
    https = egress[2]
    assert https["to"] == [{"ipBlock": {"cidr": "0.0.0.0/0", "except": PRIVATE_IPV4}},  # 169.254/16 once
                           {"ipBlock": {"cidr": "::/0", "except": [*PRIVATE_IPV6, "fd00::/8"]}}]
    assert egress[3] == {"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}], "ports": [{"port": 9000, "protocol": "TCP"}]}
    assert egress[4] == {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "minio"}},
                                 "podSelector": {"matchLabels": {"app": "minio"}}}],
                         "ports": [{"port": 9000, "protocol": "TCP"}]}


def _selects(selector: dict, labels: dict) -> bool:
    """A Kubernetes label selector (matchLabels, matchExpressions) against labels."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for e in selector.get("matchExpressions") or []:
        key, op, values = e["key"], e["operator"], e.get("values", [])
        if not {"In": key in labels and labels[key] in values, "NotIn": labels.get(key) not in values,
                "Exists": key in labels, "DoesNotExist": key not in labels}[op]:
            return False
    return True


def egress_allowed(policies: list[dict], pod: dict, to: dict) -> bool:
    """NetworkPolicy egress semantics: `pod` = {namespace, labels}; `to` = {port, protocol, and
    ip and/or namespace, namespace_labels, labels}. Isolated pods get the union of the rules of
    every policy selecting them."""
    import ipaddress

    selecting = [p for p in policies if p["metadata"]["namespace"] == pod["namespace"]
                 and "Egress" in p["spec"]["policyTypes"] and _selects(p["spec"]["podSelector"], pod["labels"])]
    if not selecting:
        return True

    def peer_matches(peer: dict, policy_namespace: str) -> bool:
        if "ipBlock" in peer:
            if "ip" not in to:
                return False
            ip = ipaddress.ip_address(to["ip"])
            nets = [ipaddress.ip_network(peer["ipBlock"]["cidr"])]
            excluded = [ipaddress.ip_network(c) for c in peer["ipBlock"].get("except", [])]
            return any(ip.version == n.version and ip in n for n in nets) and \
                not any(ip.version == n.version and ip in n for n in excluded)
        if "labels" not in to:  # not a pod: selectors cannot match it
            return False
        if "namespaceSelector" in peer:
            namespace_ok = _selects(peer["namespaceSelector"], to["namespace_labels"])
        else:
            namespace_ok = to["namespace"] == policy_namespace
        return namespace_ok and _selects(peer.get("podSelector") or {}, to["labels"])

    for policy in selecting:
        for rule in policy["spec"].get("egress") or []:
            ports_ok = not rule.get("ports") or any(
                p.get("port") in (None, to["port"]) and p.get("protocol", "TCP") == to["protocol"] for p in rule["ports"])
            peers_ok = not rule.get("to") or any(peer_matches(peer, policy["metadata"]["namespace"])
                                                 for peer in rule["to"])
            if ports_ok and peers_ok:
                return True
    return False


def _in_namespace(namespace: str, port: int, labels: dict | None = None, protocol: str = "TCP") -> dict:
    return {"namespace": namespace, "namespace_labels": {"kubernetes.io/metadata.name": namespace},
            "labels": labels or {"app": "x"}, "port": port, "protocol": protocol, "ip": "10.244.3.7"}


def test_network_policy_admits_a_kfp_steps_egress_and_blocks_the_rest(chart, tmp_path):
    """The labels a compiled pipeline step gets (kubeflow.with_s3) against the rendered policies."""
    from reelworks import kubeflow

    path = kubeflow.compile_pipeline("plotbot", tmp_path / "plotbot.yaml")
    platform = list(yaml.safe_load_all(path.read_text()))[1]["platforms"]["kubernetes"]["deploymentSpec"]
    step_labels = platform["executors"]["exec-train"]["podMetadata"]["labels"]
    step = {"namespace": NAMESPACE, "labels": {**step_labels, "pipeline/runid": "3f1c", "workflows.argoproj.io/workflow": "w"}}
    cron = cronjob(render(chart), "tweeter")
    tweeter = {"namespace": NAMESPACE, "labels": cron["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]}

    def policies(values=None):
        return [o for o in render(chart, values) if o["kind"] == "NetworkPolicy"]

    default = policies()
    dns = _in_namespace("kube-system", 53, {"k8s-app": "kube-dns"}, "UDP")
    ml_pipeline = _in_namespace("kubeflow", 8887, {"app": "ml-pipeline"})
    metadata = _in_namespace("kubeflow", 8080, {"component": "metadata-grpc-server"})
    minio = _in_namespace("kubeflow", 9000, {"app": "minio"})
    pushgateway = _in_namespace("monitoring", 9091, {"app.kubernetes.io/name": "prometheus-pushgateway"})
    s3 = {"ip": "52.216.8.10", "port": 443, "protocol": "TCP"}
    for needed in (dns, ml_pipeline, metadata, minio, pushgateway, s3):
        assert egress_allowed(default, step, needed), needed
    blocked = [_in_namespace("kubeflow", 3306, {"app": "mysql"}),            # KFP's database
               _in_namespace("kube-system", 8080, {"app": "metrics-server"}),
               _in_namespace(NAMESPACE, 8080, {"app": "other"}),
               {"ip": "93.184.216.34", "port": 80, "protocol": "TCP"},       # plain HTTP out
               {"ip": "169.254.169.254", "port": 443, "protocol": "TCP"},    # cloud metadata
               {"ip": "10.96.0.12", "port": 443, "protocol": "TCP"},         # an in-cluster HTTPS service
               {"ip": "100.64.3.4", "port": 443, "protocol": "TCP"},         # CGNAT
               {"ip": "fd00:ec2::254", "port": 443, "protocol": "TCP"},      # IPv6 metadata (unique-local)
               {"ip": "10.0.0.1", "port": 6443, "protocol": "TCP"}]          # the API server, not configured
    for other in blocked:
        assert not egress_allowed(default, step, other), other
    # CronJob pods keep the narrow policy: no Kubeflow services.
    assert not egress_allowed(default, tweeter, ml_pipeline) and egress_allowed(default, tweeter, pushgateway)
    # The API server, for steps that launch training jobs, once its address is configured.
    with_api = policies({"networkPolicy": {"kubeflowPipelines": {"apiServerCidrs": ["10.0.0.1/32"]}}})
    assert egress_allowed(with_api, step, blocked[-1]) and not egress_allowed(with_api, tweeter, blocked[-1])
    # Without the pipeline-step policy, the defect this fixes: the step cannot reach KFP's services.
    without = policies({"networkPolicy": {"kubeflowPipelines": {"enabled": False}}})
    assert not egress_allowed(without, step, ml_pipeline) and not egress_allowed(without, step, metadata)


# --------------------------------------------------------------------------- monitoring


ALERTS_FILE = CHART_DIR / "files" / "alerts.yaml"


def _rules(groups):
    return {r["alert"]: r for g in groups for r in g["rules"] if "alert" in r}


def test_prometheus_rule_structure(rendered):
    rule = one(rendered["defaults"], "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(rule["spec"]) == {"groups"}
    names = set()
    for group in rule["spec"]["groups"]:
        assert set(group) <= {"name", "interval", "rules", "limit", "partial_response_strategy"}
        assert group["name"] not in names
        names.add(group["name"])
        for r in group["rules"]:
            assert set(r) <= {"alert", "record", "expr", "for", "labels", "annotations", "keep_firing_for"}
            assert isinstance(r["expr"], str) and r["expr"].strip()
            assert r["labels"]["severity"] in {"info", "warning", "critical"}
            assert r["annotations"]["summary"] and r["annotations"]["description"]
            if "for" in r:
                assert re.fullmatch(r"(\d+[smhdwy])+", r["for"])
    alerts = _rules(rule["spec"]["groups"])
    assert set(alerts) == {"ReelworksJobFailed", "ReelworksCronJobFailed", "ReelworksJobNotSucceeding",
                           "ReelworksTweeterNotPublishing", "ReelworksTweetQueueLow"}
    # Item drops never count as failures; job success on schedule comes from kube-state-metrics.
    assert "reelworks_job_last_failure_timestamp_seconds" in alerts["ReelworksJobFailed"]["expr"]
    assert "dropped" not in alerts["ReelworksJobFailed"]["expr"]
    assert 'kube_cronjob_status_last_successful_time{cronjob=~"reelworks-.+"}' in alerts["ReelworksJobNotSucceeding"]["expr"]
    assert 'kube_job_failed{condition="true", job_name=~"reelworks-.+"}' in alerts["ReelworksCronJobFailed"]["expr"]
    assert "max(reelworks_tweeter_last_success_timestamp_seconds)" in alerts["ReelworksTweeterNotPublishing"]["expr"]
    assert "reelworks_tweet_queue_depth" in alerts["ReelworksTweetQueueLow"]["expr"]


def test_prometheus_rule_defaults_are_the_rules_file(rendered):
    """With default values the PrometheusRule is files/alerts.yaml exactly (which promtool tests)."""
    rendered_groups = one(rendered["defaults"], "PrometheusRule")["spec"]["groups"]
    file_groups = yaml.safe_load(ALERTS_FILE.read_text())["groups"]
    for groups in (rendered_groups, file_groups):
        for rule in (r for g in groups for r in g["rules"]):
            rule["expr"] = rule["expr"].strip()
    assert rendered_groups == file_groups


def test_prometheus_rule_thresholds_and_labels_from_values(chart):
    objects = render(chart, {"fullnameOverride": "films-bot", "prometheusRule": {
        "jobStaleSeconds": 180000, "jobFailedWindowSeconds": 7200, "tweeterIntervalSeconds": 14400, "tweetQueueMin": 12,
        "labels": {"release": "kube-prometheus-stack"}, "alertLabels": {"team": "ml-platform", "severity": "page"}}})
    rule = one(objects, "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    alerts = _rules(rule["spec"]["groups"])
    assert alerts["ReelworksJobNotSucceeding"]["expr"].endswith(") > 180000")
    assert alerts["ReelworksJobFailed"]["expr"].endswith(" < 7200")
    # The kube-state-metrics series are this release's CronJobs/Jobs.
    assert 'cronjob=~"films-bot-.+"' in alerts["ReelworksJobNotSucceeding"]["expr"]
    assert 'job_name=~"films-bot-.+"' in alerts["ReelworksCronJobFailed"]["expr"]
    assert alerts["ReelworksTweeterNotPublishing"]["expr"].endswith("> 2 * 14400")
    assert alerts["ReelworksTweetQueueLow"]["expr"].endswith(") < 12")
    for alert in alerts.values():
        assert alert["labels"]["team"] == "ml-platform"
        assert alert["labels"]["severity"] != "page", "an alert's own severity wins over alertLabels"


def test_prometheus_rule_matches_the_operator_crd(rendered, chart):
    """Strictly (unknown fields fail) against monitoring.coreos.com_prometheusrules.yaml."""
    from tests.crds import validate

    for rule in (one(rendered["defaults"], "PrometheusRule"),
                 one(render(chart, {"prometheusRule": {"labels": {"release": "kps"}, "alertLabels": {"team": "ml"},
                                                       "tweeterIntervalSeconds": 3600}}), "PrometheusRule")):
        validate({k: v for k, v in rule.items() if not k.startswith("_")})  # `_template`: this test's note


def test_prometheus_rule_can_be_disabled(rendered):
    assert not by_kind(rendered["custom"], "PrometheusRule")


DASHBOARD_METRICS = [
    "reelworks_job_duration_seconds", "reelworks_job_items_processed_total",
    "reelworks_job_failures_total", "reelworks_job_last_success_timestamp_seconds",
    "reelworks_train_loss", "reelworks_train_learning_rate", "reelworks_train_tokens_per_second",
    "reelworks_train_val_perplexity",
    "reelworks_tweets_published_total", "reelworks_tweet_failures_total", "reelworks_tweet_queue_depth",
    "reelworks_tweeter_last_success_timestamp_seconds",
]


def test_dashboard_json():
    dashboard = json.loads((CHART_DIR / "files" / "dashboard.json").read_text())
    assert dashboard["uid"] and dashboard["title"] and isinstance(dashboard["schemaVersion"], int)
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    panels = dashboard["panels"]
    rows = [p["title"] for p in panels if p["type"] == "row"]
    assert rows == ["All jobs", "Training", "Tweeter"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    exprs = []
    for panel in panels:
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"]) and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
            exprs.append(target["expr"])
    text = "\n".join(exprs)
    for metric in DASHBOARD_METRICS:
        assert re.search(rf"\b{metric}\b", text), f"no panel shows {metric}"
    assert re.search(r"sum by \([^)]*reason[^)]*\) \(reelworks_job_failures_total", text)
    assert re.search(r"sum by \([^)]*reason[^)]*\) \(reelworks_tweet_failures_total", text)
    assert "time() - max by (job) (reelworks_job_last_success_timestamp_seconds" in text
    assert "time() - max(reelworks_tweeter_last_success_timestamp_seconds)" in text


def test_dashboard_configmap(rendered):
    configmap = one(rendered["defaults"], "ConfigMap", "reelworks-dashboard")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(configmap["data"]["reelworks.json"]) == json.loads(
        (CHART_DIR / "files" / "dashboard.json").read_text())
    custom = one(rendered["custom"], "ConfigMap", "reelworks-dashboard")
    assert custom["metadata"]["labels"]["dashboards"] == "reelworks"
    assert "grafana_dashboard" not in custom["metadata"]["labels"]
    assert custom["metadata"]["annotations"] == {"grafana_folder": "ML"}
    assert custom["metadata"]["namespace"] == "monitoring"
    assert not [o for o in rendered["minimal"] if o["metadata"]["name"].endswith("-dashboard")]


# --------------------------------------------------------------------------- k8s/


def test_k8s_manifests_match_the_chart(helm):
    sys.path.insert(0, str(ROOT / "helm"))
    try:
        render_k8s = importlib.import_module("render_k8s")
    finally:
        sys.path.remove(str(ROOT / "helm"))
    files = render_k8s.render()
    stale = render_k8s.drift(files)
    assert not stale, (f"k8s/ is out of date with helm/reelworks ({', '.join(stale)}); "
                       f"regenerate it with `{render_k8s.COMMAND}`")
    kustomization = yaml.safe_load((ROOT / "k8s" / "kustomization.yaml").read_text())
    listed = kustomization["resources"]
    on_disk = sorted(p.name for p in (ROOT / "k8s").glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(listed) == on_disk


# --------------------------------------------------------------------------- images by digest


def test_images_by_digest_with_the_tag_as_fallback(chart, helm):
    digest = "sha256:" + "0123456789abcdef" * 4
    objects = render(chart, {"image": {"digests": {"cpu": digest}}})
    assert container_of(cronjob(objects, "tweeter"))["image"] == f"ghcr.io/reelworks/reelworks-cpu@{digest}"
    # Pods are told the tag all the same: the pipelines they compile name images by tag.
    assert env_of(container_of(cronjob(objects, "tweeter")))["REELWORKS_IMAGE_TAG"] == "0.1.0"
    objects = render(chart, {"image": {"digests": {"torch": digest}}})
    assert container_of(cronjob(objects, "tweeter"))["image"] == "ghcr.io/reelworks/reelworks-cpu:0.1.0"
    for bad in ("sha256:abc", "md5:" + "0" * 64, digest.upper(), "latest"):
        with pytest.raises(helm.HelmValuesError):
            chart.validate_schema({"image": {"digests": {"cpu": bad}}})
    with pytest.raises(helm.HelmValuesError):
        chart.validate_schema({"image": {"digests": {"gpu": digest}}})


# --------------------------------------------------------------------------- Pod Security


def test_namespace_enforces_the_restricted_pod_security_standard(chart):
    """k8s/ creates the namespace with the labels; Helm installs print the command that sets them."""
    labels = {f"pod-security.kubernetes.io/{mode}{suffix}": value
              for mode in ("enforce", "audit", "warn") for suffix, value in (("", "restricted"), ("-version", "latest"))}
    namespace = one(render(chart, {"namespace": {"create": True}}), "Namespace")
    assert namespace["metadata"]["name"] == NAMESPACE and labels.items() <= namespace["metadata"]["labels"].items()
    plain = yaml.safe_load((ROOT / "k8s" / "namespace.yaml").read_text())
    assert plain["kind"] == "Namespace" and labels.items() <= plain["metadata"]["labels"].items()
    assert "namespace.yaml" in yaml.safe_load((ROOT / "k8s" / "kustomization.yaml").read_text())["resources"]
    assert not by_kind(render(chart), "Namespace"), "Helm keeps its release record in the namespace: not its to create"
    notes = chart.render({}, name=RELEASE, namespace=NAMESPACE)["reelworks/templates/NOTES.txt"]
    command = next(line for line in notes.splitlines() if "kubectl label" in line)
    assert all(f"{key}={value}" in command for key, value in labels.items()), command


# --------------------------------------------------------------------------- admission policies


POLICY_KINDS = {"trainjobs": ("trainer.kubeflow.org/v1alpha1", "TrainJob"),
                "pytorchjobs": ("kubeflow.org/v1", "PyTorchJob"), "tfjobs": ("kubeflow.org/v1", "TFJob")}


def admission_policies(objects) -> dict[str, dict]:
    """Job kind -> its ValidatingAdmissionPolicy."""
    found = {}
    for policy in by_kind(objects, "ValidatingAdmissionPolicy"):
        (rule,) = policy["spec"]["matchConstraints"]["resourceRules"]
        (resource,) = rule["resources"]
        api_version, kind = POLICY_KINDS[resource]
        assert rule["apiGroups"] == [api_version.split("/")[0]] and rule["apiVersions"] == [api_version.split("/")[1]]
        assert sorted(rule["operations"]) == ["CREATE", "UPDATE"]
        found[kind] = policy
    assert sorted(found) == ["PyTorchJob", "TFJob", "TrainJob"]
    return found


def test_admission_policies_are_bound_to_the_release_namespace(rendered):
    for scenario, actions in (("defaults", ["Deny"]), ("custom", ["Warn", "Audit"])):
        objects = rendered[scenario]
        for policy in admission_policies(objects).values():
            assert policy["spec"]["failurePolicy"] == "Fail"
            assert policy["spec"]["matchConstraints"]["matchPolicy"] == "Equivalent"
            binding = one(objects, "ValidatingAdmissionPolicyBinding", policy["metadata"]["name"])
            assert binding["spec"] == {
                "policyName": policy["metadata"]["name"], "validationActions": actions,
                "matchResources": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": NAMESPACE}}}}
    assert not by_kind(rendered["minimal"], "ValidatingAdmissionPolicy")


def test_admission_policy_field_paths_exist_in_the_crds(rendered):
    """Every field a CEL expression reads is in the upstream CRD schema of its kind (a misspelt
    path would make `has()` false forever, and the rule pass everything); and the rules do read
    the fields that carry images and Secrets."""
    from tests import crds

    for kind, policy in admission_policies(rendered["defaults"]).items():
        api_version = policy["spec"]["matchConstraints"]["resourceRules"][0]["apiGroups"][0] + "/" + \
            policy["spec"]["matchConstraints"]["resourceRules"][0]["apiVersions"][0]
        paths = crds.FieldPaths(crds.schema(api_version, kind))
        for variable in policy["spec"]["variables"]:
            paths.add_variable(variable["name"], variable["expression"])
        for validation in policy["spec"]["validations"]:
            paths.resolve(validation["expression"])
        assert not paths.missing, f"{kind}: CEL reads fields its CRD does not have: {sorted(paths.missing)}"
        pod = ("object.spec.runtimePatches[*].trainingRuntimeSpec.template.spec.replicatedJobs[*].template.spec"
               ".template.spec" if kind == "TrainJob" else
               f"object.spec.{'pytorchReplicaSpecs' if kind == 'PyTorchJob' else 'tfReplicaSpecs'}[*].template.spec")
        expected = {f"{pod}.containers[*].env[*].valueFrom.secretKeyRef.name", f"{pod}.volumes[*].secret.secretName",
                    f"{pod}.volumes[*].projected.sources[*].secret.name", f"{pod}.volumes[*].image.reference",
                    f"{pod}.imagePullSecrets[*].name", f"{pod}.serviceAccountName",
                    f"{pod}.volumes[*].csi.nodePublishSecretRef.name"}
        if kind == "TrainJob":
            expected |= {"object.spec.trainer.image", "object.spec.trainer.env[*].valueFrom.secretKeyRef.name",
                         "object.spec.initializer.dataset.secretRef.name", "object.spec.initializer.model.secretRef.name"}
        else:
            expected |= {f"{pod}.{containers}[*].{field}" for containers in ("containers", "initContainers", "ephemeralContainers")
                         for field in ("image", "envFrom[*].secretRef.name", "env[*].valueFrom.secretKeyRef.name")}
        assert expected <= paths.paths, f"{kind}: not checked: {sorted(expected - paths.paths)}"
    # The check itself catches a misspelt field.
    misspelt = crds.FieldPaths(crds.schema("kubeflow.org/v1", "PyTorchJob"))
    misspelt.resolve("object.spec.pytorchReplicaSpecs.all(r, object.spec.pytorchReplicaSpecs[r].template.spec"
                     ".containers.all(c, c.envfrom.size() == 0))")
    assert misspelt.missing == {"object.spec.pytorchReplicaSpecs[*].template.spec.containers[*].envfrom"}


def _evaluate(policy: dict, obj: dict) -> list[str]:
    """The messages of the validations `obj` fails, as the API server evaluates them (an error
    counts as a failure: failurePolicy Fail)."""
    import celpy

    environment = celpy.Environment()

    def run(expression, activation):
        try:
            return environment.program(environment.compile(expression)).evaluate(activation)
        except celpy.CELEvalError as exc:
            return exc

    variables = celpy.celtypes.MapType({})
    activation = {"object": celpy.json_to_cel(obj), "variables": variables}
    for variable in policy["spec"]["variables"]:
        value = run(variable["expression"], activation)
        assert not isinstance(value, Exception), f"variables.{variable['name']}: {value}"
        variables[celpy.celtypes.StringType(variable["name"])] = value
    failed = []
    for validation in policy["spec"]["validations"]:
        result = run(validation["expression"], activation)
        if result is not True and result != celpy.celtypes.BoolType(True):
            failed.append(validation["message"])
    return failed


def _launcher_jobs(image: str) -> dict[str, dict]:
    """What reelworks' own launchers submit, built by their real code."""
    from reelworks import trainer, training_operator

    command = ["torchrun", "-m", "reelworks.plots.train", "--config", "s3://b/run/config.json"]
    return {
        "TrainJob": trainer.train_job("plots-train-a1", image, command, nodes=2, gpus_per_node=1, namespace=NAMESPACE),
        "PyTorchJob": training_operator.to_dict(training_operator.pytorch_job(
            "plots-train-b2", image, command, workers=2, gpus_per_worker=1, namespace=NAMESPACE)),
        "TFJob": training_operator.to_dict(training_operator.tf_job(
            "posters-train-c3", image.replace("torch", "tf"), ["reelworks", "posters", "train"], workers=2,
            chief=True, namespace=NAMESPACE)),
    }


def _pods(kind: str, job: dict) -> list[dict]:
    if kind == "TrainJob":
        return [j["template"]["spec"]["template"]["spec"] for patch in job["spec"]["runtimePatches"]
                for j in patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]]
    replicas = job["spec"]["pytorchReplicaSpecs" if kind == "PyTorchJob" else "tfReplicaSpecs"]
    return [replica["template"]["spec"] for replica in replicas.values()]


def _secret_env(name: str) -> dict:
    return {"name": "LEAK", "valueFrom": {"secretKeyRef": {"name": name, "key": "X_API_KEY"}}}


def test_admission_policies_admit_the_launchers_jobs_and_refuse_others(rendered, monkeypatch):
    """The CEL rules evaluated by a real CEL implementation (cel-python) on the jobs reelworks'
    own launchers build, and on the same jobs changed the ways the policy must refuse."""
    _tool("celpy")
    from reelworks import settings

    for name in ("REELWORKS_IMAGE_REGISTRY", "REELWORKS_IMAGE_TAG", "REELWORKS_K8S_S3_SECRET",
                 "REELWORKS_K8S_SERVICE_ACCOUNT"):
        monkeypatch.delenv(name, raising=False)
    policies = admission_policies(rendered["defaults"])
    image_rule, secret_rule, account_rule = (v["message"] for v in policies["TrainJob"]["spec"]["validations"])
    assert "may only run" in image_rule and "no Secret but reelworks-s3" in secret_rule
    jobs = _launcher_jobs(settings.image("torch"))
    for kind, job in jobs.items():
        assert _evaluate(policies[kind], job) == [], f"the launchers' own {kind} is refused"
        digest = copy.deepcopy(job)  # by digest is as good as by tag
        if kind == "TrainJob":
            digest["spec"]["trainer"]["image"] = "ghcr.io/reelworks/reelworks-torch@sha256:" + "0" * 64
        else:
            _pods(kind, digest)[0]["containers"][0]["image"] = "ghcr.io/reelworks/reelworks-torch@sha256:" + "0" * 64
        assert _evaluate(policies[kind], digest) == []

    def refused(kind, change) -> list[str]:
        job = copy.deepcopy(jobs[kind])
        change(job, _pods(kind, job)[0])
        return [message.split(" ", 2)[2] for message in _evaluate(policies[kind], job)]  # without "a <kind>"

    image = "may only run the reelworks images"
    secrets = ["may reference no Secret but reelworks-s3 (and none for image pulls)"]
    account = ["pods run as service account reelworks"]
    for kind in ("PyTorchJob", "TFJob"):
        def foreign(job, pod):
            pod["containers"][0]["image"] = "docker.io/library/python:3.12"
        def lookalike(job, pod):  # a longer repository name that starts with the project's
            pod["containers"][0]["image"] = "ghcr.io/reelworks/reelworks-torch-tools:1"
        def untagged(job, pod):
            pod["containers"][0]["image"] = "ghcr.io/reelworks/reelworks-torch"
        def init_container(job, pod):
            pod["initContainers"] = [{"name": "fetch", "image": "busybox:1"}]
        for change in (foreign, lookalike, untagged, init_container):
            assert [m for m in refused(kind, change) if image in m], (kind, change.__name__)
        def env_secret(job, pod):
            pod["containers"][0]["env"].append(_secret_env("reelworks-x"))
        def env_from(job, pod):
            pod["containers"][0]["envFrom"] = [{"secretRef": {"name": "reelworks-x"}}]
        def secret_volume(job, pod):
            pod["volumes"].append({"name": "x", "secret": {"secretName": "reelworks-x"}})
        def projected(job, pod):
            pod["volumes"].append({"name": "x", "projected": {"sources": [{"secret": {"name": "reelworks-x"}}]}})
        def csi(job, pod):
            pod["volumes"].append({"name": "x", "csi": {"driver": "secrets-store.csi.k8s.io",
                                                        "nodePublishSecretRef": {"name": "reelworks-x"}}})
        def pull_secret(job, pod):
            pod["imagePullSecrets"] = [{"name": "reelworks-x"}]
        for change in (env_secret, env_from, secret_volume, projected, csi, pull_secret):
            assert refused(kind, change) == secrets, (kind, change.__name__)
        def other_account(job, pod):
            pod["serviceAccountName"] = "kubeflow-pipelines-admin"
        assert refused(kind, other_account) == account
        # The S3 Secret itself stays usable every way.
        def s3_every_way(job, pod):
            pod["containers"][0]["envFrom"] = [{"secretRef": {"name": "reelworks-s3"}}]
            pod["volumes"].append({"name": "s3", "secret": {"secretName": "reelworks-s3"}})
        assert refused(kind, s3_every_way) == []

    def trainer_image(job, pod):
        job["spec"]["trainer"]["image"] = "docker.io/pytorch/pytorch:2.6.0-cuda12.4-cudnn9-runtime"
    def runtime_image(job, pod):  # no image of its own: the runtime's, which the policy cannot vouch for
        del job["spec"]["trainer"]["image"]
    def image_volume(job, pod):
        pod["volumes"].append({"name": "tools", "image": {"reference": "docker.io/evil/tools:1"}})
    for change in (trainer_image, runtime_image, image_volume):
        assert [m for m in refused("TrainJob", change) if image in m], change.__name__
    def trainer_env(job, pod):
        job["spec"]["trainer"]["env"].append(_secret_env("reelworks-x"))
    def patch_env(job, pod):
        pod["containers"][0]["env"] = [_secret_env("reelworks-llm")]
    def patch_volume(job, pod):
        pod["volumes"].append({"name": "x", "secret": {"secretName": "reelworks-x"}})
    def initializer(job, pod):
        job["spec"]["initializer"] = {"dataset": {"storageUri": "hf://x/y", "secretRef": {"name": "hf-token"}}}
    for change in (trainer_env, patch_env, patch_volume, initializer):
        assert refused("TrainJob", change) == secrets, change.__name__
    def patch_account(job, pod):
        pod["serviceAccountName"] = "default"
    assert refused("TrainJob", patch_account) == account


def test_admission_policy_follows_values(rendered):
    """Another registry, extra images and pull secrets (the custom scenario)."""
    _tool("celpy")
    policies = admission_policies(rendered["custom"])
    jobs = _launcher_jobs("registry.example.com/ml/reelworks-torch:1.2.3-rc1")
    for kind, job in jobs.items():
        for pod in _pods(kind, job):
            pod["imagePullSecrets"] = [{"name": "regcred"}]
        for env in (job["spec"]["trainer"]["env"] if kind == "TrainJob" else
                    [e for pod in _pods(kind, job) for e in pod["containers"][0]["env"]]):
            if "secretKeyRef" in env.get("valueFrom", {}):
                env["valueFrom"]["secretKeyRef"]["name"] = "minio-creds"
        assert _evaluate(policies[kind], job) == [], kind
    job = copy.deepcopy(jobs["PyTorchJob"])
    _pods("PyTorchJob", job)[0]["initContainers"] = [{"name": "t", "image": "registry.example.com/ml/tools:7"}]
    assert _evaluate(policies["PyTorchJob"], job) == []
    _pods("PyTorchJob", job)[0]["containers"][0]["image"] = "ghcr.io/reelworks/reelworks-torch:0.1.0"  # the default registry
    assert len(_evaluate(policies["PyTorchJob"], job)) == 1
