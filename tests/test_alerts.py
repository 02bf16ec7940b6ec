"""Alerting rules (helm/reelworks/files/alerts.yaml) through promtool.

`promtool check rules` on the file, `promtool test rules` on tests/alerts/*.yaml (each alert
both firing and staying quiet), and the PrometheusRule the chart renders with non-default
thresholds checked as well. promtool comes from Debian's `prometheus` package; without it
these tests skip, except in CI (CI=true), where they fail.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import missing

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
