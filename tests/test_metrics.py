"""reelworks.metrics pushing to the real Prometheus Pushgateway."""
from __future__ import annotations

import logging
import time

import pytest

from reelworks.metrics import job_metrics
from tests.conftest import free_port, metric_key


def test_successful_job_pushes_standard_and_custom_series(pushgateway, read_pushgateway):
    before = time.time()
    with job_metrics("plots_prep", run="run-1", gateway=pushgateway) as m:
        m.items.inc(42)
        m.gauge("reelworks_plots_rows_kept", "Rows kept").set(40)
        m.counter("reelworks_plots_rows_dropped_total", "Rows dropped", ["reason"]).labels(reason="short").inc(2)
    series = read_pushgateway(pushgateway)
    group = {"job": "plots_prep", "run": "run-1"}
    assert series[metric_key("reelworks_job_items_processed_total", **group)] == 42
    assert series[metric_key("reelworks_plots_rows_kept", **group)] == 40
    assert series[metric_key("reelworks_plots_rows_dropped_total", reason="short", **group)] == 2
    assert series[metric_key("reelworks_job_last_success_timestamp_seconds", **group)] >= before
    assert series[metric_key("reelworks_job_duration_seconds", **group)] >= 0


def test_failed_job_counts_the_reason_and_sets_no_success_time(pushgateway, read_pushgateway):
    with pytest.raises(ValueError):
        with job_metrics("films_extract", run="run-2", gateway=pushgateway):
            raise ValueError("corrupt film")
    series = read_pushgateway(pushgateway)
    group = {"job": "films_extract", "run": "run-2"}
    assert series[metric_key("reelworks_job_failures_total", reason="ValueError", **group)] == 1
    assert series[metric_key("reelworks_job_last_success_timestamp_seconds", **group)] == 0


def test_runs_are_separate_groups(pushgateway, read_pushgateway):
    for run, n in (("a", 1), ("b", 2)):
        with job_metrics("posters_train", run=run, gateway=pushgateway) as m:
            m.items.inc(n)
    series = read_pushgateway(pushgateway)
    assert series['reelworks_job_items_processed_total{job="posters_train",run="a"}'] == 1
    assert series['reelworks_job_items_processed_total{job="posters_train",run="b"}'] == 2


def test_gateway_down_warns_once_and_job_succeeds(caplog):
    dead = f"http://127.0.0.1:{free_port()}"
    with caplog.at_level(logging.WARNING, logger="reelworks.metrics"):
        with job_metrics("tweeter", run="x", gateway=dead) as m:
            m.items.inc()
            assert m.push() is False  # an extra push mid-job: still only one warning
    warnings = [r for r in caplog.records if r.name == "reelworks.metrics"]
    assert len(warnings) == 1 and "could not push metrics" in warnings[0].getMessage()


def test_no_gateway_configured_warns_once(caplog, monkeypatch):
    monkeypatch.delenv("REELWORKS_PUSHGATEWAY_URL", raising=False)
    with caplog.at_level(logging.WARNING, logger="reelworks.metrics"):
        with job_metrics("tweeter", run="y"):
            pass
    messages = [r.getMessage() for r in caplog.records if r.name == "reelworks.metrics"]
    assert messages == ["REELWORKS_PUSHGATEWAY_URL is not set: metrics are not pushed"]


def test_gateway_url_from_environment(pushgateway, read_pushgateway, monkeypatch):
    monkeypatch.setenv("REELWORKS_PUSHGATEWAY_URL", pushgateway)
    monkeypatch.setenv("REELWORKS_RUN_ID", "env-run")
    with job_metrics("posters_prep") as m:
        m.items.inc(3)
    assert read_pushgateway(pushgateway)['reelworks_job_items_processed_total{job="posters_prep",run="env-run"}'] == 3


def test_failed_job_without_gateway_stays_quiet(caplog, monkeypatch):
    """The job's error is the one line a user needs; metrics add nothing when unconfigured."""
    monkeypatch.delenv("REELWORKS_PUSHGATEWAY_URL", raising=False)
    with caplog.at_level(logging.WARNING, logger="reelworks.metrics"):
        with pytest.raises(KeyError):
            with job_metrics("plots_prep", run="z"):
                raise KeyError("title")
    assert not [r for r in caplog.records if r.name == "reelworks.metrics"]
