"""Every pipeline compiles, and the compiled YAML carries its cluster settings."""
from __future__ import annotations

import pytest
import yaml

from reelworks import kubeflow, settings

PIPELINES = sorted(kubeflow.pipelines())


def compiled(name: str, tmp_path) -> list[dict]:
    path = kubeflow.compile_pipeline(name, tmp_path / f"{name}.yaml")
    return list(yaml.safe_load_all(path.read_text()))


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
        assert int(accelerator.get("resourceCount", accelerator.get("count", 0))) >= 1
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
