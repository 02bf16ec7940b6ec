"""The `reelworks` CLI as a user runs it: help everywhere, one clear line for bad input."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main

from reelworks.cli import app
from tests.conftest import REPO, free_port


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


# --------------------------------------------------------------------------- reelworks run --local

# `  detect-shots [0]     ok     1.2 s`: a step (its ParallelFor iteration in brackets), status, seconds.
STEP_LINE = re.compile(r"^  (?P<name>\S+(?: \[\d+\])?) +(?P<status>ok|FAILED) +\d+\.\d s$")


def links_of(page: Path) -> set[Path]:
    """The files an HTML page's href and src attributes point to."""
    from html.parser import HTMLParser
    from urllib.parse import unquote

    found = []

    class Links(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.extend(value for name, value in attrs if name in ("href", "src") and value)

    Links().feed(page.read_text())
    return {(page.parent / unquote(link)).resolve() for link in found}


def test_a_local_run_prints_a_line_per_step_then_what_it_made_and_its_index(tmp_path):
    """The cheapest pipeline end to end: moviegoer on one 3-second film (8 steps, ~15 s)."""
    from reelworks.films.samples import synthetic_film

    film = synthetic_film(tmp_path / "film.mp4", shots=3, shot_s=1.0, size=(160, 96))
    root = tmp_path / "root"
    result = reelworks("run", "moviegoer", "--pipeline-root", str(root), "--param", f'films=["{film}"]',
                       "--param", f"output={tmp_path / 'reports'}", "--param", "every=1.0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "\x1b[" not in result.stdout + result.stderr, "colour codes in output that is not a terminal"
    assert "KFP Executor" not in result.stdout + result.stderr and "Executing task" not in result.stdout
    (run,) = [p.resolve() for p in root.iterdir()]
    steps = sorted(p.parent.relative_to(run) for p in run.rglob("executor_output.json"))
    lines = result.stdout.splitlines()
    step_lines = [m for line in lines if (m := STEP_LINE.match(line))]
    assert len(step_lines) == len(steps) == 8  # seven steps for the film, one summary
    assert {m["name"] for m in step_lines} == {
        f"{s.name} [0]" if s.parent.name == "for-loop-1-iteration-0" else s.name for s in steps}
    assert {m["status"] for m in step_lines} == {"ok"}
    for step in steps:  # each step's own output, in its log
        assert "KFP Executor" in (run / "logs" / f"{step}.log").read_text()

    # What it made: absolute paths of existing files, the film's report among them; the index last.
    finished = next(i for i, line in enumerate(lines) if line.startswith("pipeline moviegoer finished"))
    assert lines[-2] == f"logs:  {run / 'logs'}/" and lines[-1] == f"index: {run / 'index.html'}"
    made = [Path(line.split()[-1]) for line in lines[finished + 1:-2]]
    assert made and all(path.is_absolute() and path.is_file() for path in made)
    assert run / "for-loop-1-iteration-0" / "dialogue-scenes" / "report" / "report.html" in made
    linked = links_of(run / "index.html")
    assert all(path.is_file() for path in linked)
    assert set(made) | {run / "logs" / f"{step}.log" for step in steps} <= linked


def test_a_local_run_into_s3_lists_what_it_made_by_s3_uri(tmp_path, s3_bucket, capsys):
    """With an s3:// pipeline root the run's files (index and logs too) land there once it
    succeeds, and the summary names them there."""
    from reelworks import kubeflow, storage
    from reelworks.films.samples import synthetic_film

    film = synthetic_film(tmp_path / "film.mp4", shots=2, shot_s=1.0, size=(160, 96))
    root = f"{s3_bucket}/pipeline-root"
    kubeflow.run_local("moviegoer", {"films": [str(film)], "output": str(tmp_path / "reports"), "every": 1.0}, root)
    lines = capsys.readouterr().out.splitlines()
    index = lines[-1].removeprefix("index: ")
    assert index.startswith(f"{root}/moviegoer-") and index.endswith("/index.html") and storage.exists(index)
    made = [line.split()[-1] for line in lines[lines.index(next(l for l in lines if " finished in " in l)) + 1:-2]]
    assert made and all(uri.startswith(root) and storage.exists(uri) for uri in made)
    assert storage.exists(index.replace("index.html", "logs/summarize-films.log"))


@pytest.mark.parametrize("pipeline, param, fragments", [
    ("musicvideo", "audio={missing}", ("parameter audio=", "not found:", "missing.wav")),
    ("musicvideo", "audio={text}", ("parameter audio=", "notes.txt is not audio")),
    ("musicvideo", "fps=-3", ("parameter fps=-3.0:", "must be at least 0")),
    ("moviegoer", 'films=["{missing}"]', ("parameter films:", "not found:", "missing.wav")),
])
def test_bad_inputs_are_one_line_naming_the_parameter_before_any_step(tmp_path, pipeline, param, fragments):
    (tmp_path / "notes.txt").write_text("not a song\n")
    root = tmp_path / "root"
    value = param.format(missing=tmp_path / "missing.wav", text=tmp_path / "notes.txt")
    result = reelworks("run", pipeline, "--pipeline-root", str(root), "--param", value)
    assert result.returncode == 2
    assert_one_line_error(result, "error:", *fragments)
    assert result.stdout == "" and not root.exists()  # no step started, nothing written


def test_a_failed_step_ends_the_run_with_its_own_error_and_log(tmp_path):
    """A plan file that exists (the input check passes) but is not a plan: the plan step fails.
    --verbose also shows what the steps print, still without colour codes in a pipe."""
    plan = tmp_path / "prompts.csv"
    plan.write_text("scene\nA storm over the harbour.\n")
    result = reelworks("run", "musicvideo", "--verbose", "--pipeline-root", str(tmp_path / "root"),
                       "--param", f"plan_from={plan}")
    assert result.returncode == 1
    assert_one_line_error(result, "error: pipeline 'musicvideo' failed at step plan-scenes:",
                          "needs 'lyric' and 'prompt' columns")
    log = Path(re.search(r"\(log: (\S+)\)$", result.stderr.strip())[1])
    assert log.name == "plan-scenes.log" and "Traceback" in log.read_text()
    assert "Inner task failed" not in result.stdout + result.stderr
    assert "KFP Executor" in result.stdout and "needs 'lyric' and 'prompt' columns" in result.stdout
    assert re.search(r"^  plan-scenes +FAILED", result.stdout, re.MULTILINE)
    assert "\x1b[" not in result.stdout + result.stderr


# --------------------------------------------------------------------------- a KFP API server


@pytest.fixture
def kfp_api(monkeypatch):
    """The Kubeflow Pipelines v2beta1 REST API on 127.0.0.1, answering with the documented
    shapes (experiments, runs); `finish_as` is the state a run ends in, `requests` what came in."""
    from http_helpers import json_api

    state = {"finish_as": "SUCCEEDED", "requests": [], "runs": {}, "polls": 0}
    experiment = {"experiment_id": "7c2e0f6a-exp", "display_name": "plots", "namespace": "",
                  "created_at": "2026-12-02T03:00:00Z", "storage_state": "AVAILABLE"}

    def handle(method, path, query, body):
        state["requests"].append((method, path, body))
        status, answer = 404, {"error": f"no {path}", "code": 5, "message": f"no {path}"}
        if path == "/apis/v2beta1/healthz":
            status, answer = 200, {"multi_user": False}
        elif path == "/apis/v2beta1/experiments" and method == "GET":
            status, answer = 200, {"experiments": [experiment], "total_size": 1}
        elif path == "/apis/v2beta1/experiments" and method == "POST":
            status, answer = 200, experiment
        elif path == "/apis/v2beta1/runs" and method == "POST":
            run = {**body, "run_id": "5f3c9a1e-run", "state": "PENDING", "storage_state": "AVAILABLE",
                   "created_at": "2026-12-02T03:00:01Z", "scheduled_at": "2026-12-02T03:00:01Z"}
            state["runs"][run["run_id"]] = run
            status, answer = 200, run
        elif path.startswith("/apis/v2beta1/runs/"):
            run = dict(state["runs"][path.rsplit("/", 1)[1]])
            state["polls"] += 1
            run["state"] = "RUNNING" if state["polls"] == 1 and state["finish_as"] == "SUCCEEDED" \
                else state["finish_as"]
            if run["state"] == "FAILED":
                run["error"] = {"code": 9, "message": "step train failed: OOMKilled\nmore detail"}
            if run["state"] in ("FAILED", "CANCELED", "SUCCEEDED"):
                run["finished_at"] = "2026-12-02T03:10:00Z"
            status, answer = 200, run
        return status, answer

    with json_api(handle) as url:
        state["url"] = url
        monkeypatch.setenv("REELWORKS_KFP_POLL_S", "0.1")
        yield state


def in_process(*args: str) -> int:
    from reelworks.cli import main

    try:
        main(list(args))
    except SystemExit as exc:
        return int(exc.code)
    return 0


@pytest.mark.timeout(120)  # kfp's own wait never returns for a CANCELED run
@pytest.mark.parametrize("finish_as, code, message", [
    ("FAILED", 1, "ended FAILED: step train failed: OOMKilled"),
    ("CANCELED", 1, "ended CANCELED"),
])
def test_submit_wait_exits_non_zero_with_the_runs_state(kfp_api, capsys, finish_as, code, message):
    kfp_api["finish_as"] = finish_as
    for command in (["submit", "plotbot", "--wait"], ["run", "plotbot", "--no-local"]):
        assert in_process(*command, "--host", kfp_api["url"], "--pipeline-root", "s3://b/root",
                          "--param", "input=s3://b/movies.csv") == code
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: run 5f3c9a1e-run of 'plotbot' ") and message in err[0], err


def test_submit_wait_succeeds_and_runs_as_the_charts_service_account(kfp_api, capsys):
    from reelworks import kubeflow

    assert in_process("submit", "plotbot", "--wait", "--host", kfp_api["url"], "--pipeline-root", "s3://b/root",
                      "--param", "input=s3://b/movies.csv") == 0
    assert "submitted run 5f3c9a1e-run" in capsys.readouterr().out
    (created,) = [body for method, path, body in kfp_api["requests"] if (method, path) == ("POST", "/apis/v2beta1/runs")]
    assert created["service_account"] == kubeflow.SERVICE_ACCOUNT
    assert created["runtime_config"]["pipeline_root"] == "s3://b/root"
    spec = created["pipeline_spec"]
    assert spec["pipeline_spec"]["pipelineInfo"]["name"] == "plotbot" and "kubernetes" in spec["platform_spec"]["platforms"]


def test_rerun_of_a_damaged_film_exits_3_as_the_first_run_did(tmp_path, require_tool, capsys):
    """The second run finds the finished (partial) folder and skips the work, not the verdict."""
    import subprocess as sp

    from reelworks.films.extract import PARTIAL_EXIT_CODE

    film = tmp_path / "film.mp4"
    sp.run([require_tool("ffmpeg"), "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=160x90:rate=25:duration=12",
            "-c:v", "libx264", "-preset", "ultrafast", "-g", "250", "-movflags", "+faststart", str(film)], check=True)
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(film.read_bytes()[: int(film.stat().st_size * 0.4)])  # the media data stops early
    args = ("films", "extract", "--input", str(damaged), "--output", str(tmp_path / "frames"), "--every", "2")
    first = in_process(*args)
    first_err = capsys.readouterr().err
    assert first == PARTIAL_EXIT_CODE and "bad region" in first_err
    assert in_process(*args) == PARTIAL_EXIT_CODE
    again = capsys.readouterr().err
    assert "bad region" in again and "--allow-partial" in again
    assert in_process(*args, "--allow-partial") == 0


def test_tweeter_refuses_a_not_before_past_the_jobs_deadline(tmp_path, monkeypatch, capsys):
    from datetime import datetime, timedelta, timezone

    from reelworks.tweeter.queue import QueueItem, append_to_queue

    queue = str(tmp_path / "queue.jsonl")
    append_to_queue(queue, [QueueItem("The Last Lighthouse", "A lonely robot keeps a lighthouse lit for ships "
                                      "that never come, until one does.", genres=["Sci-Fi"])])
    later = (datetime.now(timezone.utc) + timedelta(hours=2)).isoformat(timespec="seconds")
    monkeypatch.setenv("REELWORKS_JOB_DEADLINE_S", "1500")  # what the chart sets on the CronJob's pod
    assert in_process("tweeter", "publish", "--queue", queue, "--dry-run", "--not-before", later) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "past this job's deadline (1500 s" in err[0], err


def test_a_content_policy_403_skips_that_plot_and_the_queue_moves_on(tmp_path, monkeypatch):
    """X refusing one plot's content must not block every later run, as an account 403 would."""
    import json
    import sys

    import responses

    sys.path.insert(0, str(REPO / "tests" / "tweeter"))
    from tweeter_fake_x import API, CREDENTIALS, FakeX, make_items

    from reelworks import storage
    from reelworks.tweeter.ledger import Ledger
    from reelworks.tweeter.queue import append_to_queue

    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("REELWORKS_PUSHGATEWAY_URL", raising=False)
    queue = str(tmp_path / "plotbot" / "queue.jsonl")
    items = make_items(2)
    append_to_queue(queue, items)
    fake = FakeX(tmp_path / "x.json", dict(CREDENTIALS))
    policy = {"title": "Forbidden", "type": "about:blank", "status": 403,
              "detail": "You are not permitted to create a Tweet with this content."}
    calls = []

    def create(request):
        calls.append(json.loads(request.body)["text"])
        if len(calls) == 1:
            return 403, {"content-type": "application/problem+json"}, json.dumps(policy)
        return fake._create(request)

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake.register(rsps)
        rsps.replace(responses.CallbackResponse(responses.POST, f"{API}/2/tweets", callback=create))
        assert in_process("tweeter", "publish", "--queue", queue) == 0
    assert len(calls) == 2 and len(fake.tweets) == 1
    ledger = Ledger(storage.join(str(tmp_path / "plotbot"), "ledger")).snapshot()
    assert ledger[items[0].id].skipped and ledger[items[1].id].done and not ledger[items[1].id].skipped
