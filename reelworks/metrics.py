"""Prometheus metrics for batch jobs, pushed to a Pushgateway.

Every job wraps its work in `job_metrics`:

    with job_metrics("plots_prep") as metrics:
        for row in rows:
            ...
            metrics.items.inc()
        metrics.gauge("reelworks_plots_rows_kept", "Rows kept after cleaning").set(kept)

On exit it pushes the standard series, grouped by `job` and `run`:
`reelworks_job_duration_seconds`, `reelworks_job_items_processed_total`,
`reelworks_job_failures_total{reason}`, `reelworks_job_last_success_timestamp_seconds`
(only set when the job succeeded), plus any job-specific series made through
`counter`/`gauge`. Metrics never fail a job: with no gateway configured
(`REELWORKS_PUSHGATEWAY_URL`) or the gateway down, the job goes on and one warning is logged.
"""
from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from typing import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, push_to_gateway

from reelworks import settings

log = logging.getLogger(__name__)


class JobMetrics:
    """The metrics of one run of one job, in their own registry."""

    def __init__(self, job: str, run: str | None = None, gateway: str | None = None):
        self.job = job
        self.run = run or settings.run_id()
        self.gateway = gateway if gateway is not None else settings.pushgateway_url()
        self.registry = CollectorRegistry()
        self._series: dict[str, object] = {}
        self._warned = False
        self.started = time.time()
        self.duration = self.gauge("reelworks_job_duration_seconds", "Wall time of the job's last run")
        self.items = self.counter("reelworks_job_items_processed_total", "Items the job processed")
        self.failures = self.counter("reelworks_job_failures_total", "Failures, by reason", ["reason"])
        self.last_success = self.gauge("reelworks_job_last_success_timestamp_seconds",
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
        self.failures.labels(reason=reason).inc()

    def push(self, warn_unconfigured: bool = True) -> bool:
        """Push everything now; returns False (after one warning per run) if it could not."""
        self.duration.set(time.time() - self.started)
        if not self.gateway:
            if warn_unconfigured:
                self._warn_once("REELWORKS_PUSHGATEWAY_URL is not set: metrics are not pushed")
            return False
        try:
            push_to_gateway(self.gateway, job=self.job, registry=self.registry,
                            grouping_key={"run": self.run}, timeout=5)
            return True
        except Exception as exc:  # a metrics outage must never fail the job
            self._warn_once(f"could not push metrics to {self.gateway}: {type(exc).__name__}: {exc}")
            return False

    def _warn_once(self, message: str) -> None:
        if not self._warned:
            log.warning(message)
            self._warned = True


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
    metrics.last_success.set(time.time())
    metrics.push()
