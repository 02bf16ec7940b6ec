"""Alerting rules (helm/reelworks/files/alerts.yaml) through promtool.

`promtool check rules` on the file, `promtool test rules` on tests/alerts/*.yaml (each alert
both firing and staying quiet), and the PrometheusRule the chart renders with non-default
thresholds checked as well. promtool comes from Debian's `prometheus` package; without it
these tests skip, except in CI (CI=true), where they fail.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from tests.conftest import free_port, missing, wait_http

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "helm" / "reelworks" / "files" / "alerts.yaml"
UNIT_TESTS = sorted((ROOT / "tests" / "alerts").glob("*.yaml"))


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        missing("promtool is not installed (apt-get install prometheus)")
    return path


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=ROOT)


def alert_names() -> set[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule}


def test_rules_file_is_valid(promtool):
    result = run(promtool, "check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_names())} rules found" in result.stdout


def test_promtool_unit_tests(promtool):
    assert UNIT_TESTS, "no promtool tests under tests/alerts/"
    result = run(promtool, "test", "rules", *map(str, UNIT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_tested_firing_and_quiet():
    firing, quiet = set(), set()
    for path in UNIT_TESTS:
        spec = yaml.safe_load(path.read_text())
        assert any((path.parent / f).resolve() == RULES.resolve() for f in spec["rule_files"])
        for case in spec["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert alert_names() - firing == set(), "alerts never tested firing"
    assert alert_names() - quiet == set(), "alerts never tested staying quiet"


def test_rendered_rule_with_custom_thresholds_is_valid(promtool, tmp_path):
    """The chart rewrites thresholds in the expressions: the result must still be valid PromQL."""
    try:
        import helm_python
    except ImportError as exc:
        missing(f"helm-python-sdk is not installed: {exc}")
    values = {"prometheusRule": {"jobStaleSeconds": 180000, "tweeterIntervalSeconds": 3600,
                                 "tweetQueueMin": 20, "alertLabels": {"team": "ml"}}}
    with helm_python.Chart.load(str(RULES.parent.parent)) as chart:
        text = chart.render(values, name="reelworks", namespace="reelworks")[
            "reelworks/templates/prometheusrule.yaml"]
    rule = yaml.safe_load(text)
    rules_file = tmp_path / "rendered.yaml"
    rules_file.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    result = run(promtool, "check", "rules", str(rules_file))
    assert result.returncode == 0, result.stdout + result.stderr
    exprs = " ".join(r["expr"] for g in rule["spec"]["groups"] for r in g["rules"])
    for threshold in ("> 180000", "> 2 * 3600", "< 20"):
        assert threshold in exprs


# --------------------------------------------------------------------------- a real Prometheus

TWEETER_INTERVAL_S = 2  # prometheusRule.tweeterIntervalSeconds for the test: alerts after 4 s


def rendered_rules(tmp_path, values: dict) -> Path:
    """The chart's own PrometheusRule, rendered with `values`, as a plain rules file."""
    try:
        import helm_python
    except ImportError as exc:
        missing(f"helm-python-sdk is not installed: {exc}")
    with helm_python.Chart.load(str(RULES.parent.parent)) as chart:
        text = chart.render(values, name="reelworks", namespace="reelworks")[
            "reelworks/templates/prometheusrule.yaml"]
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": yaml.safe_load(text)["spec"]["groups"]}))
    return path


@pytest.fixture
def prometheus(require_tool, pushgateway, tmp_path):
    """Debian's Prometheus scraping the real Pushgateway every second (honor_labels, as the
    README asks of a cluster's Prometheus) with the chart's rules, evaluated every second."""
    binary = require_tool("prometheus", "/usr/bin/prometheus")
    # Short windows through values; 2 tweets left after the test's publish is not "low".
    rules = rendered_rules(tmp_path, {"prometheusRule": {"tweeterIntervalSeconds": TWEETER_INTERVAL_S,
                                                         "tweetQueueMin": 2}})
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "scrape_configs": [{"job_name": "pushgateway", "honor_labels": True,
                            "static_configs": [{"targets": [pushgateway.removeprefix("http://")]}]}]}))
    port = free_port()
    log = open(tmp_path / "prometheus.log", "w")
    proc = subprocess.Popen([binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/-/ready", timeout=60)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def query(prometheus: str, promql: str) -> list[dict]:
    url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    body = json.load(urllib.request.urlopen(url, timeout=10))
    assert body["status"] == "success", body
    return body["data"]["result"]


def active_alerts(prometheus: str) -> list[dict]:
    return json.load(urllib.request.urlopen(f"{prometheus}/api/v1/alerts", timeout=10))["data"]["alerts"]


def wait_for(condition, what: str, timeout: float = 90):
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)
    return found


def reelworks(*args: str, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).parent / "reelworks"), *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=600)


def publish_with_fake_x(queue: str, tmp_path, monkeypatch, *script: str) -> int:
    """`reelworks tweeter publish` in this process, against the fake X account of the tweeter tests."""
    import responses

    sys.path.insert(0, str(ROOT / "tests" / "tweeter"))
    from tweeter_fake_x import CREDENTIALS, FakeX

    from reelworks.cli import main

    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    fake = FakeX(tmp_path / "x-account.json", dict(CREDENTIALS))
    if script:
        fake.script("create", *script)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake.register(rsps)
        try:
            main(["tweeter", "publish", "--queue", queue])
        except SystemExit as exc:
            return int(exc.code)
    return 0


@pytest.mark.slow
def test_alerts_and_dashboard_on_a_real_prometheus(prometheus, pushgateway, tmp_path, monkeypatch):
    """The project's own commands push to the real Pushgateway; Prometheus scrapes it and
    evaluates the chart's rules: a healthy run with item drops fires nothing, a failed job
    fires, a tweeter that stops publishing fires once its window has passed, and every
    Grafana panel's query returns data."""
    from reelworks.plots.sample import sample_movies_csv
    from reelworks.tweeter.queue import append_to_queue

    sys.path.insert(0, str(ROOT / "tests" / "tweeter"))
    from tweeter_fake_x import make_items

    monkeypatch.setenv("REELWORKS_PUSHGATEWAY_URL", pushgateway)
    for name in ("REELWORKS_RUN_ID", "KFP_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    env = {**os.environ, "REELWORKS_CACHE_DIR": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}

    # A healthy prep whose input has rows it drops on purpose (short plots, duplicates).
    csv = Path(sample_movies_csv(str(tmp_path / "movies.csv"), n=200))
    lines = csv.read_text().splitlines()
    csv.write_text("\n".join(lines + lines[1:6] + ["9001,Short,Drama,en,Too short.,1990-01-01"]) + "\n")
    prep = reelworks("plots", "prep", "--input", str(csv), "--output", "prep", env=env, cwd=tmp_path)
    assert prep.returncode == 0, prep.stderr
    # A short training run, as a step of a pipeline run (its own group): the training panels' series.
    train = reelworks("plots", "train", "--data", "prep", "--output", "gpt2", "--max-steps", "2",
                      "--checkpoint-every", "2", "--block-size", "32", "--batch-size", "4",
                      env={**env, "KFP_RUN_ID": "run-7f3a"}, cwd=tmp_path)
    assert train.returncode == 0, train.stderr
    # A failed job: a film that is not there.
    extract = reelworks("films", "extract", "--input", "missing.mp4", "--output", "frames", env=env, cwd=tmp_path)
    assert extract.returncode == 2 and "not found" in extract.stderr
    # The tweeter: refused once by X (a failed run), then one tweet published; then it stops.
    queue = str(tmp_path / "plotbot" / "queue.jsonl")
    append_to_queue(queue, make_items(3))
    assert publish_with_fake_x(queue, tmp_path, monkeypatch, "401") != 0
    assert publish_with_fake_x(queue, tmp_path, monkeypatch) == 0

    def firing():
        alerts = [a for a in active_alerts(prometheus) if a["state"] == "firing"]
        names = {a["labels"]["alertname"] for a in alerts}
        return alerts if {"ReelworksJobFailed", "ReelworksTweeterNotPublishing"} <= names else None

    alerts = wait_for(firing, "the failed job's and the silent tweeter's alerts")
    # Everything pushed has arrived: drops counted apart, no success time of 0 anywhere.
    assert float(query(prometheus, 'sum(reelworks_job_items_dropped_total{job="plots_prep"})')[0]["value"][1]) >= 6
    assert query(prometheus, "reelworks_job_last_success_timestamp_seconds == 0") == []
    assert {s["metric"]["job"] for s in query(prometheus, "reelworks_job_last_success_timestamp_seconds")} \
        >= {"plots_prep", "plots_train", "tweeter"}

    active = [a for a in active_alerts(prometheus)]
    assert sorted((a["labels"]["alertname"], a["labels"].get("job", "")) for a in active) == [
        ("ReelworksJobFailed", "films_extract"), ("ReelworksTweeterNotPublishing", "")], active
    failed = next(a for a in alerts if a["labels"]["alertname"] == "ReelworksJobFailed")
    assert failed["labels"]["reason"] == "NotFoundError"
    # The tweeter's alert became active only after two intervals without a publish.
    published_at = float(query(prometheus, "max(reelworks_tweeter_last_success_timestamp_seconds)")[0]["value"][1])
    silent = next(a for a in alerts if a["labels"]["alertname"] == "ReelworksTweeterNotPublishing")
    active_at = datetime.fromisoformat(silent["activeAt"].replace("Z", "+00:00")).timestamp()
    assert active_at - published_at >= 2 * TWEETER_INTERVAL_S

    # Every Grafana panel and variable query returns data from this Prometheus.
    dashboard = json.loads((RULES.parent / "dashboard.json").read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"].replace("$job", ".*").replace("$run", ".*")
            assert query(prometheus, expr), f"panel {panel['title']!r}: no data for {expr}"
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            metric, label = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"]["query"]).groups()
            series = query(prometheus, metric.replace("$job", ".*"))
            assert [s["metric"][label] for s in series if label in s["metric"]], variable["name"]
