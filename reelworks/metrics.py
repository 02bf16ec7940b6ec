"""Prometheus metrics for batch jobs, pushed to a Pushgateway.

Every job wraps its work in `job_metrics`:

    with job_metrics("plots_prep") as metrics:
        for row in rows:
            ...
            metrics.items.inc()          # an item done
            metrics.drop("short_plot")   # an item skipped on purpose (not a failure)
        metrics.gauge("reelworks_plots_rows_kept", "Rows kept after cleaning").set(kept)

Standard series: `reelworks_job_duration_seconds`, `reelworks_job_items_processed_total`,
`reelworks_job_items_dropped_total{reason}`, and the outcome: on success
`reelworks_job_last_success_timestamp_seconds`; on failure
`reelworks_job_failures_total{reason}` and `reelworks_job_last_failure_timestamp_seconds{reason}`
(a failed run never pushes a success time, not even 0). Plus any job-specific series made
through `counter`/`gauge`.

Grouping (what the Pushgateway keeps): one group per `job`, plus `run` when the step runs in
a Kubeflow pipeline run (`settings.pipeline_run_id()`: REELWORKS_RUN_ID or KFP_RUN_ID, which
`kubeflow.with_s3` sets from the pod's `pipeline/runid` label). Never the pod name: a CronJob's
group is updated by its next run instead of piling up. Pushes add to the group (POST): each
series pushed replaces its namesake, the others stay, so the last success stays visible next
to a later failure (alerts compare the two times) and a tweeter run with nothing to publish
keeps the last publish time. Pipeline-run groups are deleted after a
retention by `reelworks metrics prune` (a CronJob in the chart). Metrics never fail a job:
with no gateway configured (`REELWORKS_PUSHGATEWAY_URL`) or the gateway down, the job goes on
and one warning is logged (no gateway: once per process, and not by the steps of a local
pipeline run, which `kubeflow.run_local` starts with `QUIET_UNCONFIGURED_ENV` set).
"""
from __future__ import annotations

import json
import logging
import os
import time
import urllib.request
from contextlib import contextmanager
from typing import Iterator

from prometheus_client import (CollectorRegistry, Counter, Gauge, Histogram, delete_from_gateway,
                               push_to_gateway, pushadd_to_gateway)

from reelworks import settings

log = logging.getLogger(__name__)

# Set (to anything) for processes that must not say "not set" themselves: a local pipeline
# run's steps, which used to say it once each.
QUIET_UNCONFIGURED_ENV = "REELWORKS_METRICS_QUIET_UNCONFIGURED"
_said_unconfigured = False  # this process said it already (a step may run several jobs)


class JobMetrics:
    """The metrics of one run of one job, in their own registry."""

    def __init__(self, job: str, run: str | None = None, gateway: str | None = None):
        self.job = job
        self.run = run or settings.pipeline_run_id()
        self.gateway = gateway if gateway is not None else settings.pushgateway_url()
        self.registry = CollectorRegistry()
        self._series: dict[str, object] = {}
        self._warned = False
        self.started = time.time()
        self.duration = self.gauge("reelworks_job_duration_seconds", "Wall time of the job's last run")
        self.items = self.counter("reelworks_job_items_processed_total", "Items the job processed")
        self.failures = self.counter("reelworks_job_failures_total", "Failures, by reason", ["reason"])
        self.dropped = self.counter("reelworks_job_items_dropped_total",
                                    "Items skipped on purpose (bad rows, rejected samples), by reason", ["reason"])

    @property
    def grouping_key(self) -> dict[str, str]:
        return {"run": self.run} if self.run else {}

    @property
    def last_success(self) -> Gauge:
        """Set only on success: the gauge joins the registry when first used, so a failed or
        unfinished run never pushes a success time of 0."""
        return self.gauge("reelworks_job_last_success_timestamp_seconds",
                          "Unix time the job last finished successfully")

    def _get(self, kind, name: str, documentation: str, labelnames=()):
        series = self._series.get(name)
        if series is None:
            series = kind(name.removesuffix("_total") if kind is Counter else name, documentation,
                          list(labelnames), registry=self.registry)
            self._series[name] = series
        return series

    def counter(self, name: str, documentation: str, labelnames=()) -> Counter:
        return self._get(Counter, name, documentation, labelnames)

    def gauge(self, name: str, documentation: str, labelnames=()) -> Gauge:
        return self._get(Gauge, name, documentation, labelnames)

    def histogram(self, name: str, documentation: str, labelnames=(), buckets=Histogram.DEFAULT_BUCKETS) -> Histogram:
        series = self._series.get(name)
        if series is None:
            series = Histogram(name, documentation, list(labelnames), buckets=buckets, registry=self.registry)
            self._series[name] = series
        return series

    def fail(self, reason: str) -> None:
        """The job itself failed (`job_metrics` calls this when the job raises); for items
        skipped on purpose use `drop`."""
        self.failures.labels(reason=reason).inc()
        self.gauge("reelworks_job_last_failure_timestamp_seconds", "Unix time the job last failed, by reason",
                   ["reason"]).labels(reason=reason).set(time.time())
        if "reelworks_job_last_success_timestamp_seconds" in self._series:  # failed after all
            self.registry.unregister(self._series.pop("reelworks_job_last_success_timestamp_seconds"))

    def succeeded(self) -> None:
        self.last_success.set(time.time())

    def drop(self, reason: str, n: int = 1) -> None:
        """Items skipped on purpose: counted apart from failures, so alerts on failures
        fire for failed jobs only."""
        self.dropped.labels(reason=reason).inc(n)

    def push(self, warn_unconfigured: bool = True, replace: bool = False) -> bool:
        """Push everything now; returns False (after one warning per run) if it could not.

        By default the series are added to the group (series of other names stay, e.g. the
        last success while a run is under way); `replace=True` replaces the whole group.
        """
        self.duration.set(time.time() - self.started)
        if not self.gateway:
            if warn_unconfigured:
                _say_unconfigured()
            return False
        try:
            send = push_to_gateway if replace else pushadd_to_gateway
            send(self.gateway, job=self.job, registry=self.registry, grouping_key=self.grouping_key, timeout=5)
            return True
        except Exception as exc:  # a metrics outage must never fail the job
            self._warn_once(f"could not push metrics to {self.gateway}: {type(exc).__name__}: {exc}")
            return False

    def _warn_once(self, message: str) -> None:
        if not self._warned:
            log.warning(message)
            self._warned = True


def _say_unconfigured() -> None:
    global _said_unconfigured
    if not _said_unconfigured and not os.environ.get(QUIET_UNCONFIGURED_ENV):
        log.warning("REELWORKS_PUSHGATEWAY_URL is not set: metrics are not pushed")
    _said_unconfigured = True


@contextmanager
def job_metrics(job: str, run: str | None = None, gateway: str | None = None) -> Iterator[JobMetrics]:
    """Time a job, count its failure reason if it raises, and push on the way out."""
    metrics = JobMetrics(job, run=run, gateway=gateway)
    try:
        yield metrics
    except BaseException as exc:
        metrics.fail(getattr(exc, "metric_reason", None) or type(exc).__name__)
        # A failed job's own error is the line that matters: no extra "not configured" noise.
        metrics.push(warn_unconfigured=False)
        raise
    metrics.succeeded()
    metrics.push()


# --------------------------------------------------------------------------- retention


def groups(gateway: str) -> list[dict]:
    """The Pushgateway's groups: [{"labels": {...grouping key...}, "push_time": unix seconds}]."""
    with urllib.request.urlopen(f"{gateway.rstrip('/')}/api/v1/metrics", timeout=10) as response:
        data = json.load(response)["data"]
    out = []
    for group in data:
        times = group.get("push_time_seconds", {}).get("metrics", [{}])
        out.append({"labels": dict(group["labels"]), "push_time": float(times[0].get("value", 0))})
    return out


def prune(gateway: str, older_than_s: float, now: float | None = None) -> list[dict]:
    """Delete the pipeline-run groups (those with a `run` label) last pushed more than
    `older_than_s` ago; returns their grouping keys. Per-job groups are kept: there is one
    per job and its next run replaces it."""
    from reelworks.errors import ReelworksError

    now = time.time() if now is None else now
    try:
        found = groups(gateway)
    except Exception as exc:
        raise ReelworksError(f"cannot read the Pushgateway at {gateway}: {type(exc).__name__}: {exc}") from None
    deleted = []
    for group in found:
        labels = dict(group["labels"])
        job = labels.pop("job", None)
        if job is None or "run" not in labels or now - group["push_time"] <= older_than_s:
            continue
        delete_from_gateway(gateway, job=job, grouping_key=labels, timeout=10)
        deleted.append({"job": job, **labels})
    return deleted
