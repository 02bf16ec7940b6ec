"""`reelworks tweeter publish|status` from the command line, and the metrics a run pushes."""
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from reelworks import storage
from reelworks.cli import main
from reelworks.tweeter.queue import append_to_queue
from tweeter_fake_x import CREDENTIALS, make_items


def cli(*args):
    main(["tweeter", *args])


def test_dry_run_prints_and_writes_the_exact_tweet(capsys, queue_uri, monkeypatch):
    for name in CREDENTIALS:
        monkeypatch.delenv(name, raising=False)
    cli("publish", "--queue", queue_uri, "--dry-run")
    out = capsys.readouterr().out
    assert "The Last Lighthouse\n\nA lonely robot" in out and "#SciFi #Drama #Robot" in out
    base = queue_uri.rsplit("/", 1)[0]
    tweet = json.loads(storage.read_text(next(
        f"{base}/outbox/tweets/{k}" for k in storage.list_keys(f"{base}/outbox/tweets"))))
    assert tweet["text"] in out and "queue depth: 3 (dry run; the real queue still holds 4)" in out


def test_status_shows_depth_last_and_next(capsys, fake_x, queue_uri):
    cli("status", "--queue", queue_uri)
    out = capsys.readouterr().out
    assert "depth        4 plot(s) waiting" in out and "nothing published yet" in out
    assert "next         " in out and "'The Last Lighthouse'" in out
    cli("publish", "--queue", queue_uri)
    tweet_id = fake_x.tweets[0]["id"]
    assert f"as tweet {tweet_id}" in capsys.readouterr().out
    cli("status", "--queue", queue_uri, "--json")
    status = json.loads(capsys.readouterr().out)
    assert status["depth"] == 3 and status["published"] == 1
    assert status["last"]["tweet_ids"] == [tweet_id] and status["last"]["title"] == "The Last Lighthouse"
    assert status["next"]["title"] == "Heist at Dawn"


def test_status_reports_unconfirmed_claims(capsys, fake_x, queue_uri):
    fake_x.script("create", "timeout")
    with pytest.raises(SystemExit) as exit_info:
        cli("publish", "--queue", queue_uri, "--retries", "0")
    assert exit_info.value.code == 75
    cli("status", "--queue", queue_uri)
    out = capsys.readouterr().out
    assert "in progress" in out and "(fresh)" in out  # a timed-out post may still land: not released
    assert "next         " in out and "'Heist at Dawn'" in out
    cli("publish", "--queue", queue_uri)  # a second run leaves the claim to its owner
    assert "is not confirmed yet" in capsys.readouterr().out and fake_x.tweets == []


def test_errors_are_one_line_with_exit_codes(capsys, fake_x, queue_uri, monkeypatch):
    fake_x.script("create", "429:7200")
    with pytest.raises(SystemExit) as exit_info:
        cli("publish", "--queue", queue_uri)
    err = capsys.readouterr().err
    assert exit_info.value.code == 75 and "error: X rate limit reached" in err and "stays queued" in err
    monkeypatch.delenv("X_API_KEY")
    with pytest.raises(SystemExit) as exit_info:
        cli("publish", "--queue", queue_uri)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "error: X credentials missing: set X_API_KEY" in err
    assert "Traceback" not in err
    with pytest.raises(SystemExit) as exit_info:
        cli("publish", "--queue", queue_uri, "--not-before", "soon")
    assert exit_info.value.code == 2 and "ISO 8601" in capsys.readouterr().err


def test_metrics_pushed_every_run(fake_x, tmp_path, pushgateway, read_pushgateway, monkeypatch, capsys):
    monkeypatch.setenv("REELWORKS_PUSHGATEWAY_URL", pushgateway)
    # Unique run ids: Debian's pushgateway persists to a shared file by default.
    runs = {name: f"{name}-{uuid.uuid4().hex[:8]}" for name in ("empty", "one", "auth", "dry")}
    queue = str(tmp_path / "q.jsonl")
    storage.write_text(queue, "")
    monkeypatch.setenv("REELWORKS_RUN_ID", runs["empty"])
    cli("publish", "--queue", queue)  # empty queue: exit 0, and the depth is still pushed
    assert "nothing to publish" in capsys.readouterr().out
    metrics = read_pushgateway(pushgateway)
    assert metrics[f'reelworks_tweet_queue_depth{{job="tweeter",run="{runs["empty"]}"}}'] == 0
    assert not any(k.startswith("reelworks_tweeter_last_success") and runs["empty"] in k for k in metrics)

    append_to_queue(queue, make_items(2))
    storage.write_text(queue, storage.read_text(queue) + "{broken\n")
    fake_x.script("create", "503")
    monkeypatch.setenv("REELWORKS_RUN_ID", runs["one"])
    cli("publish", "--queue", queue)
    metrics = read_pushgateway(pushgateway)
    run = f'job="tweeter",run="{runs["one"]}"'
    assert metrics[f"reelworks_tweets_published_total{{{run}}}"] == 1
    assert metrics[f"reelworks_tweet_queue_depth{{{run}}}"] == 1
    assert metrics[f'reelworks_tweet_failures_total{{job="tweeter",reason="server_error",run="{runs["one"]}"}}'] == 1
    assert metrics[f'reelworks_tweet_failures_total{{job="tweeter",reason="bad_queue_line",run="{runs["one"]}"}}'] == 1
    assert metrics[f"reelworks_tweeter_last_success_timestamp_seconds{{{run}}}"] > 1.7e9

    monkeypatch.setenv("REELWORKS_RUN_ID", runs["auth"])
    fake_x.script("me", "401")
    with pytest.raises(SystemExit):
        cli("publish", "--queue", queue)
    metrics = read_pushgateway(pushgateway)
    assert metrics[f'reelworks_tweet_failures_total{{job="tweeter",reason="auth",run="{runs["auth"]}"}}'] == 1

    # Dry runs push under their own job: they never count as a publish for the alerts.
    monkeypatch.setenv("REELWORKS_RUN_ID", runs["dry"])
    cli("publish", "--queue", queue, "--dry-run")
    metrics = read_pushgateway(pushgateway)
    assert f'reelworks_tweets_published_total{{job="tweeter_dry_run",run="{runs["dry"]}"}}' in metrics
    assert not any(runs["dry"] in k and 'job="tweeter"' in k for k in metrics)


def test_console_script_dry_run_in_a_read_only_home(tmp_path):
    """The installed `reelworks` entry point, as the CronJob runs it (HOME=/tmp-like, no creds)."""
    queue = str(tmp_path / "plotbot" / "queue.jsonl")
    append_to_queue(queue, make_items(1))
    home = tmp_path / "home"
    home.mkdir(mode=0o500)
    env = {k: v for k, v in os.environ.items() if not k.startswith("X_")}
    env.update(HOME=str(home), REELWORKS_PUSHGATEWAY_URL="")
    reelworks = os.path.join(os.path.dirname(sys.executable), "reelworks")
    proc = subprocess.run([reelworks, "tweeter", "publish", "--queue", queue, "--dry-run"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "would post" in proc.stdout and "The Last Lighthouse" in proc.stdout


def test_missing_image_keeps_the_plot_unless_allow_no_image(capsys, fake_x, tmp_path):
    queue = str(tmp_path / "plotbot" / "queue.jsonl")
    item = make_items(1)[0]
    item.image = str(tmp_path / "plotbot" / "posters" / "missing.png")
    append_to_queue(queue, [item])
    with pytest.raises(SystemExit) as info:
        cli("publish", "--queue", queue)
    err = capsys.readouterr().err
    assert info.value.code == 2 and "--allow-no-image" in err and "Traceback" not in err
    assert fake_x.tweets == []
    cli("publish", "--queue", queue, "--allow-no-image")
    assert len(fake_x.tweets) == 1 and fake_x.tweets[0]["media_ids"] == []


def test_publish_from_another_directory_finds_the_poster(capsys, fake_x, tmp_path, monkeypatch):
    """`posters from-plots` run in one directory with a relative --queue, the CronJob in another:
    the queue holds the poster's absolute path, so the tweet goes out with its image."""
    from PIL import Image

    from reelworks.tweeter.queue import set_images

    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    item = make_items(1)[0]
    append_to_queue("plotbot/queue.jsonl", [item])
    Path("plotbot/posters").mkdir()
    Image.new("RGB", (8, 12), "red").save(f"plotbot/posters/{item.id}.png")
    assert set_images("plotbot/queue.jsonl", {item.id: f"plotbot/posters/{item.id}.png"}) == 1
    queued = json.loads(Path("plotbot/queue.jsonl").read_text())
    assert queued["image"] == str(tmp_path / "work" / "plotbot" / "posters" / f"{item.id}.png")

    monkeypatch.chdir(tmp_path)
    cli("publish", "--queue", "work/plotbot/queue.jsonl")
    assert "queue depth: 0" in capsys.readouterr().out
    assert len(fake_x.tweets) == 1 and len(fake_x.tweets[0]["media_ids"]) == 1


def test_missing_queue_is_an_error_an_empty_one_is_not(capsys, fake_x, tmp_path):
    missing = str(tmp_path / "plotbot" / "queu.jsonl")  # a typo
    for command in (["publish"], ["publish", "--dry-run"], ["status"], ["preview"]):
        with pytest.raises(SystemExit) as info:
            cli(*command, "--queue", missing)
        err = capsys.readouterr().err
        assert info.value.code == 2, command
        assert err.strip() == f"error: no tweet queue at {missing}: check --queue (`plots curate --queue` creates it)"
    empty = str(tmp_path / "plotbot" / "queue.jsonl")
    assert append_to_queue(empty, []) == 0  # curation that kept nothing still leaves a queue
    cli("publish", "--queue", empty)
    out = capsys.readouterr().out
    assert "nothing to publish: 0 plot(s) in the queue" in out and "queue depth: 0" in out
    assert fake_x.tweets == []


def test_queue_depth_counts_what_is_left_to_publish(capsys, fake_x, tmp_path):
    queue = str(tmp_path / "plotbot" / "queue.jsonl")
    append_to_queue(queue, make_items(3))
    cli("publish", "--queue", queue)
    assert "queue depth: 2\n" in capsys.readouterr().out
    cli("publish", "--queue", queue, "--dry-run")
    assert "queue depth: 1 (dry run; the real queue still holds 2)" in capsys.readouterr().out
