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


def test_failed_job_counts_the_reason_and_pushes_no_success_time(pushgateway, read_pushgateway):
    before = time.time()
    with pytest.raises(ValueError):
        with job_metrics("films_extract", run="run-2", gateway=pushgateway):
            raise ValueError("corrupt film")
    series = read_pushgateway(pushgateway)
    group = {"job": "films_extract", "run": "run-2"}
    assert series[metric_key("reelworks_job_failures_total", reason="ValueError", **group)] == 1
    assert series[metric_key("reelworks_job_last_failure_timestamp_seconds", reason="ValueError", **group)] >= before
    # Not even 0: a success time of 0 reads as "failed since 1970" on every dashboard.
    assert not [k for k in series if k.startswith("reelworks_job_last_success_timestamp_seconds")]


def test_drops_are_not_failures(pushgateway, read_pushgateway):
    with job_metrics("plots_curate", run="run-3", gateway=pushgateway) as m:
        m.items.inc(10)
        m.drop("too_long", 3)
        m.drop("copied")
    series = read_pushgateway(pushgateway)
    group = {"job": "plots_curate", "run": "run-3"}
    assert series[metric_key("reelworks_job_items_dropped_total", reason="too_long", **group)] == 3
    assert series[metric_key("reelworks_job_items_dropped_total", reason="copied", **group)] == 1
    assert not [k for k in series if k.startswith("reelworks_job_failures_total")]
    assert not [k for k in series if k.startswith("reelworks_job_last_failure")]


def test_outside_a_pipeline_run_the_group_is_the_job_not_the_pod(pushgateway, read_pushgateway, monkeypatch):
    """A CronJob's pods have new names every run: grouping by them piled up groups forever."""
    for name in ("REELWORKS_RUN_ID", "KFP_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    for pod in ("reelworks-tweeter-29400000-abcde", "reelworks-tweeter-29400360-fghij"):
        monkeypatch.setenv("HOSTNAME", pod)
        with job_metrics("tweeter", gateway=pushgateway) as m:
            m.items.inc()
    series = read_pushgateway(pushgateway)
    assert [k for k in series if k.startswith("reelworks_job_items_processed_total")] == [
        'reelworks_job_items_processed_total{job="tweeter"}']
    monkeypatch.setenv("KFP_RUN_ID", "3f1c-run")
    with job_metrics("plots_prep", gateway=pushgateway):
        pass
    assert metric_key("reelworks_job_duration_seconds", job="plots_prep", run="3f1c-run") in read_pushgateway(pushgateway)


def test_a_failure_keeps_the_last_success_beside_it(pushgateway, read_pushgateway):
    with job_metrics("tweeter", run="", gateway=pushgateway) as m:
        m.items.inc(1)
    first = read_pushgateway(pushgateway)[metric_key("reelworks_job_last_success_timestamp_seconds", job="tweeter")]
    with pytest.raises(RuntimeError):
        with job_metrics("tweeter", run="", gateway=pushgateway):
            raise RuntimeError("X is down")
    series = read_pushgateway(pushgateway)
    assert series[metric_key("reelworks_job_last_success_timestamp_seconds", job="tweeter")] == first
    assert series[metric_key("reelworks_job_last_failure_timestamp_seconds", job="tweeter", reason="RuntimeError")] \
        >= first


def test_prune_deletes_old_pipeline_run_groups_only(pushgateway, read_pushgateway):
    from reelworks import metrics

    for run in ("old-run", ""):
        with job_metrics("plots_prep", run=run, gateway=pushgateway):
            pass
    assert metrics.prune(pushgateway, older_than_s=3600) == []
    deleted = metrics.prune(pushgateway, older_than_s=3600, now=time.time() + 7200)
    assert deleted == [{"job": "plots_prep", "run": "old-run"}]
    durations = [k for k in read_pushgateway(pushgateway) if k.startswith("reelworks_job_duration_seconds")]
    assert durations == ['reelworks_job_duration_seconds{job="plots_prep"}']


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


def test_no_gateway_configured_warns_once_per_process(caplog, monkeypatch):
    from reelworks import metrics

    monkeypatch.delenv("REELWORKS_PUSHGATEWAY_URL", raising=False)
    monkeypatch.delenv(metrics.QUIET_UNCONFIGURED_ENV, raising=False)
    monkeypatch.setattr(metrics, "_said_unconfigured", False)  # as in a fresh process
    with caplog.at_level(logging.WARNING, logger="reelworks.metrics"):
        with job_metrics("tweeter", run="y"):
            pass
        with job_metrics("tweeter_dry_run", run="y"):  # a second job of the same process
            pass
    messages = [r.getMessage() for r in caplog.records if r.name == "reelworks.metrics"]
    assert messages == ["REELWORKS_PUSHGATEWAY_URL is not set: metrics are not pushed"]


def test_the_steps_of_a_local_run_do_not_say_the_gateway_is_not_set(caplog, monkeypatch):
    from reelworks import metrics

    monkeypatch.delenv("REELWORKS_PUSHGATEWAY_URL", raising=False)
    monkeypatch.setenv(metrics.QUIET_UNCONFIGURED_ENV, "1")  # what kubeflow.run_local gives its steps
    monkeypatch.setattr(metrics, "_said_unconfigured", False)
    with caplog.at_level(logging.WARNING, logger="reelworks.metrics"):
        with job_metrics("plots_prep", run="z") as m:
            assert m.push() is False
    assert not [r for r in caplog.records if r.name == "reelworks.metrics"]


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


def test_metrics_prune_command(pushgateway, read_pushgateway, capsys):
    from reelworks.cli import main

    with job_metrics("plots_train", run="run-old", gateway=pushgateway):
        pass
    time.sleep(1.1)
    main(["metrics", "prune", "--gateway", pushgateway, "--older-than", "1s"])
    assert "deleted 1 metric group(s)" in capsys.readouterr().out
    assert not [k for k in read_pushgateway(pushgateway) if "run-old" in k]
    with pytest.raises(SystemExit) as exit_:
        main(["metrics", "prune", "--gateway", pushgateway, "--older-than", "a week"])
    assert exit_.value.code == 2 and "expected a number and s, m, h or d" in capsys.readouterr().err
