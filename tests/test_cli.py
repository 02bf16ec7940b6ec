"""The `reelworks` CLI as a user runs it: help everywhere, one clear line for bad input."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import typer.main

from reelworks.cli import app
from tests.conftest import free_port


def reelworks(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reelworks", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def all_command_paths() -> list[list[str]]:
    paths = []

    def walk(command, path: list[str]) -> None:
        paths.append(path)
        if hasattr(command, "commands"):  # a group (typer vendors its own click classes)
            for name, sub in command.commands.items():
                walk(sub, path + [name])

    walk(typer.main.get_command(app), [])
    return paths


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode != 0, result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{result.stderr}"
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_help_everywhere():
    """Every command and group answers --help (in-process: one import for all of them)."""
    from typer.testing import CliRunner

    runner = CliRunner()
    paths = all_command_paths()
    assert ["pipelines", "list"] in paths and ["run"] in paths and ["compile"] in paths and ["submit"] in paths
    for path in paths:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage" in result.output


def test_pipelines_list_names_every_pipeline():
    from reelworks import kubeflow

    result = reelworks("pipelines", "list")
    assert result.returncode == 0, result.stderr
    for name in kubeflow.pipelines():
        assert name in result.stdout


def test_unknown_pipeline():
    assert_one_line_error(reelworks("run", "no-such-pipeline"), "error:", "unknown pipeline 'no-such-pipeline'")


def test_unknown_step():
    result = reelworks("plots", "no-such-step")
    assert result.returncode != 0
    assert "No such command" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("param, message", [
    ("novalue", "malformed --param 'novalue'"),
    ("=3", "malformed --param"),
    ("not_a_parameter=1", "has no parameter 'not_a_parameter'"),
])
def test_malformed_params(param, message):
    from reelworks import kubeflow

    name = next(iter(kubeflow.pipelines()))
    assert_one_line_error(reelworks("run", name, "--param", param), "error:", message)


def test_typed_param_is_checked():
    from reelworks import kubeflow

    for name, entry in kubeflow.pipelines().items():
        ints = [p for p, kind in entry.input_types().items() if kind == "NUMBER_INTEGER"]
        if ints:
            assert_one_line_error(reelworks("run", name, "--param", f"{ints[0]}=many"), "expected integer")
            return
    pytest.fail("no pipeline has an integer parameter to check")


def test_submit_to_unreachable_host_is_one_line(tmp_path):
    from reelworks import kubeflow

    name = next(iter(kubeflow.pipelines()))
    host = f"http://127.0.0.1:{free_port()}"
    result = reelworks("submit", name, "--host", host, "--pipeline-root", "s3://bucket/root")
    assert_one_line_error(result, "error:", f"could not submit '{name}' to {host}")


def test_submit_needs_a_pipeline_root(monkeypatch):
    from reelworks import kubeflow

    name = next(iter(kubeflow.pipelines()))
    env = {"REELWORKS_PIPELINE_ROOT": "", "REELWORKS_S3_BUCKET": ""}
    assert_one_line_error(reelworks("submit", name, "--host", "http://127.0.0.1:1", env=env), "no pipeline root")


def test_run_without_local_needs_host():
    from reelworks import kubeflow

    name = next(iter(kubeflow.pipelines()))
    assert_one_line_error(reelworks("run", name, "--no-local"), "--no-local needs --host")


def test_missing_input_uri_is_one_line(tmp_path):
    result = reelworks("plots", "prep", "--input", str(tmp_path / "missing.csv"), "--output", str(tmp_path / "out"))
    assert_one_line_error(result, "error:", "missing.csv")
    assert not (tmp_path / "out").exists()


def test_unreachable_s3_endpoint_is_one_line(tmp_path):
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}", "AWS_ACCESS_KEY_ID": "x",
           "AWS_SECRET_ACCESS_KEY": "y", "AWS_MAX_ATTEMPTS": "1"}
    result = reelworks("plots", "prep", "--input", "s3://bucket/movies.csv", "--output", str(tmp_path / "out"),
                       env=env)
    assert_one_line_error(result, "error:", "cannot reach the S3 endpoint")


def test_missing_s3_credentials_is_one_line(tmp_path, s3_server):
    env = {k: "" for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    env.update(AWS_SHARED_CREDENTIALS_FILE="/nonexistent", AWS_CONFIG_FILE="/nonexistent",
               AWS_EC2_METADATA_DISABLED="true")
    result = reelworks("plots", "prep", "--input", "s3://bucket/movies.csv", "--output", str(tmp_path / "out"),
                       env=env)
    assert_one_line_error(result, "error:", "no S3 credentials")
