"""Settings read from the environment, in one place.

Every name here is documented in the README and set by the Helm chart on the cluster.
"""
from __future__ import annotations

import os
from pathlib import Path

from reelworks import __version__

IMAGE_FLAVOURS = ("cpu", "torch", "tf")


def image(flavour: str) -> str:
    """The container image a component runs in: `{registry}/reelworks-{flavour}:{tag}`.

    Components name their image only through this function, so one setting
    (REELWORKS_IMAGE_REGISTRY / REELWORKS_IMAGE_TAG at compile time) moves them all.
    """
    if flavour not in IMAGE_FLAVOURS:
        raise ValueError(f"unknown image flavour {flavour!r}; expected one of {IMAGE_FLAVOURS}")
    registry = os.environ.get("REELWORKS_IMAGE_REGISTRY", "ghcr.io/reelworks").rstrip("/")
    tag = os.environ.get("REELWORKS_IMAGE_TAG", __version__)
    return f"{registry}/reelworks-{flavour}:{tag}"


X_CREDENTIALS_DIR_ENV = "REELWORKS_X_CREDENTIALS_DIR"


def x_credentials_dir(environ=None) -> str | None:
    """Where the tweeter's X credentials are, one file per key (the chart mounts its Secret there);
    unset: they come from env vars X_API_KEY, ... (local use)."""
    environ = os.environ if environ is None else environ
    return environ.get(X_CREDENTIALS_DIR_ENV, "").strip() or None


def pushgateway_url() -> str | None:
    return os.environ.get("REELWORKS_PUSHGATEWAY_URL") or None


def cache_dir() -> Path:
    """Local cache for synced S3 prefixes (models, datasets)."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "reelworks"
    path = Path(os.environ.get("REELWORKS_CACHE_DIR", default))
    path.mkdir(parents=True, exist_ok=True)
    return path


def shared_data_dir() -> Path:
    """Real public data for tests, benchmarks and demos (never copied into the repo)."""
    default = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
    return Path(os.environ.get("REELWORKS_SHARED_DATA", default))


def job_deadline_s() -> float | None:
    """Seconds this pod may run (its Job's activeDeadlineSeconds, REELWORKS_JOB_DEADLINE_S), if known."""
    value = os.environ.get("REELWORKS_JOB_DEADLINE_S")
    try:
        return float(value) if value else None
    except ValueError:
        return None


def pipeline_run_id() -> str | None:
    """The Kubeflow pipeline run this step belongs to, if any (REELWORKS_RUN_ID, KFP_RUN_ID).

    Unlike `run_id` it never falls back to the pod name: metrics group by it, and a per-pod
    group would never be replaced."""
    for name in ("REELWORKS_RUN_ID", "KFP_RUN_ID"):
        if os.environ.get(name):
            return os.environ[name]
    return None


def run_id() -> str:
    """The id that groups one run's metrics and outputs: the KFP run id when there is one."""
    for name in ("REELWORKS_RUN_ID", "KFP_RUN_ID", "HOSTNAME"):
        if os.environ.get(name):
            return os.environ[name]
    return f"local-{os.getpid()}"


def llm_base_url() -> str | None:
    """An OpenAI-compatible endpoint (`.../v1`); unset: steps that can fall back to a template do."""
    return os.environ.get("REELWORKS_LLM_BASE_URL", "").strip() or None


def llm_model() -> str | None:
    """The model name sent to the endpoint; unset: the first model the endpoint lists."""
    return os.environ.get("REELWORKS_LLM_MODEL", "").strip() or None


def llm_api_key() -> str | None:
    """The endpoint's API key (from a Secret on the cluster; never logged)."""
    return os.environ.get("REELWORKS_LLM_API_KEY", "").strip() or None
