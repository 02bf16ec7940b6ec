"""Secrets stay out of everything the process prints: log records on any handler (added late
too), formatted tracebacks, warnings, uncaught exceptions, and credentials inside URLs."""
from __future__ import annotations

import io
import logging
import subprocess
import sys
import textwrap
import warnings

import pytest

from reelworks import redaction
from reelworks.progress import setup_logging

SECRET = "sk-live-4Fq9RedactionTestSecret"
URL_PASSWORD = "Pw-7Zt2UrlPasswordSecret"
URL_TOKEN = "tok-3Mx8QueryTokenSecret"


@pytest.mark.parametrize("text, expected", [
    ("http://reel:hunter2-pass@llm:8080/v1", "http://<redacted>@llm:8080/v1"),
    ("https://ghp_abcdef123456@github.com/x.git", "https://<redacted>@github.com/x.git"),
    ("GET https://api.example.com/v1?api-key=abc123&page=2",
     "GET https://api.example.com/v1?api-key=<redacted>&page=2"),
    ("https://h/p?page=2&API_KEY=abc&apikey=d;key=e",
     "https://h/p?page=2&API_KEY=<redacted>&apikey=<redacted>;key=<redacted>"),
    ("https://h/cb#access_token=abc.def&token=x", "https://h/cb#access_token=<redacted>&token=<redacted>"),
    ("https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIA%2F1&X-Amz-Signature=9f8e&X-Amz-Expires=60",
     "https://b.s3.amazonaws.com/k?X-Amz-Credential=<redacted>&X-Amz-Signature=<redacted>&X-Amz-Expires=60"),
    ('{"endpoint": "http://u:p4ss@h/v1?signature=s1g"}', '{"endpoint": "http://<redacted>@h/v1?signature=<redacted>"}'),
    # Left alone: no credentials, and look-alikes of the parameter names.
    ("https://h/p?monkey=1&keys=2&page=3", "https://h/p?monkey=1&keys=2&page=3"),
    ("mail me at someone@example.org, see https://h/a@b", "mail me at someone@example.org, see https://h/a@b"),
])
def test_url_credentials_are_redacted(text, expected):
    assert redaction.redact_urls(text) == expected


def test_registered_and_env_secrets(monkeypatch):
    monkeypatch.setenv("REELWORKS_TEST_API_KEY", SECRET)
    monkeypatch.setenv("REELWORKS_TEST_SHORT_TOKEN", "abc")  # too short to be a real secret: left alone
    monkeypatch.setenv("REELWORKS_TEST_KEY_PREFIX_NAME", "posters/2024")  # not a secret-looking name
    monkeypatch.setenv("REELWORKS_K8S_S3_SECRET", "reelworks-s3")  # a Secret's name, not a secret
    found = redaction.secrets_from_env()
    assert SECRET in found and "abc" not in found and "posters/2024" not in found and "reelworks-s3" not in found
    redaction.add_secrets([SECRET])
    assert redaction.redact(f"key={SECRET}; prefix posters/2024") == "key=<redacted>; prefix posters/2024"
    # A secret containing another is replaced whole.
    assert redaction.redact("x-longer-secret-value", ["longer-secret", "x-longer-secret-value"]) == "<redacted>"


def _raise_with(secret: str):
    url = f"https://reel:{URL_PASSWORD}@llm.internal/v1?api-key={URL_TOKEN}"
    raise ConnectionError(f"handshake failed for key {secret} at {url}")


def test_every_handler_traceback_and_warning_is_redacted(monkeypatch, caplog, capfd):
    monkeypatch.setenv("REELWORKS_LLM_API_KEY", SECRET)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        setup_logging("DEBUG")
        caplog.set_level(logging.DEBUG)
        # A handler added after start-up, on a logger that does not propagate to the root.
        late = io.StringIO()
        handler = logging.StreamHandler(late)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        library = logging.getLogger("some.library")
        library.addHandler(handler)
        library.propagate = False
        library.setLevel(logging.DEBUG)
        app = logging.getLogger("reelworks.test")
        try:
            for logger in (library, app):
                logger.debug("request headers: {'authorization': 'Bearer %s'}", SECRET)
                logger.info("endpoint %s", f"http://reel:{URL_PASSWORD}@llm:8080/v1?api-key={URL_TOKEN}")
                try:
                    _raise_with(SECRET)
                except ConnectionError:
                    logger.exception("request failed")
                logger.warning("where: %s", "here", stack_info=True, extra={})
            warnings.warn(f"the key {SECRET} is deprecated, see https://docs.example.org/keys?token={URL_TOKEN}")
        finally:
            library.removeHandler(handler)
            library.propagate = True
    captured = capfd.readouterr()
    everything = late.getvalue() + caplog.text + captured.out + captured.err
    assert "handshake failed for key <redacted>" in late.getvalue()  # the traceback is there, scrubbed
    assert "Traceback (most recent call last)" in late.getvalue() and "Traceback" in caplog.text
    assert "http://<redacted>@llm:8080/v1?api-key=<redacted>" in late.getvalue()
    assert "is deprecated" in caplog.text  # the warning went through logging
    for secret in (SECRET, URL_PASSWORD, URL_TOKEN):
        assert secret not in everything, secret


def test_uncaught_exceptions_warnings_and_late_handlers_in_a_real_process(tmp_path):
    """A process that sets logging up, then adds a file handler, warns, lets a thread die and
    finally dies itself, all with the secret in hand: the secret is nowhere in its stderr or log."""
    log_file = tmp_path / "late.log"
    script = textwrap.dedent(f"""
        import logging, os, threading, warnings
        from reelworks.progress import setup_logging

        setup_logging("INFO")
        secret = os.environ["X_ACCESS_TOKEN_SECRET"]
        logging.getLogger().addHandler(logging.FileHandler({str(log_file)!r}))
        logging.getLogger("late").error("posting with %s failed", secret)
        warnings.warn("token " + secret + " expires soon")

        def work():
            raise RuntimeError("worker saw " + secret)

        thread = threading.Thread(target=work, name="worker")
        thread.start()
        thread.join()
        raise RuntimeError("could not reach https://reel:" + secret + "@api.x.com/2/tweets?token=" + secret)
    """)
    env = {"X_ACCESS_TOKEN_SECRET": SECRET, "PATH": "/usr/bin:/bin", "REELWORKS_PROGRESS": "0"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 1
    stderr, logged = done.stderr, log_file.read_text()
    assert "Traceback (most recent call last)" in stderr
    assert "RuntimeError: could not reach https://<redacted>@api.x.com/2/tweets?token=<redacted>" in stderr
    assert "Exception in thread worker" in stderr and "worker saw <redacted>" in stderr
    assert "token <redacted> expires soon" in stderr
    assert "posting with <redacted> failed" in logged and "expires soon" in logged
    assert SECRET not in stderr + done.stdout + logged


def test_a_pipeline_step_that_only_imports_reelworks_is_redacted(tmp_path):
    """A Kubeflow step runs its component's body, which imports a reelworks module and never sets
    logging up: its log lines and its dying traceback carry no secret either."""
    script = textwrap.dedent("""
        import logging, os
        from reelworks.films.extract import extract_frames  # what a component body does

        secret = os.environ["REELWORKS_LLM_API_KEY"]
        logging.basicConfig(level=logging.INFO)
        logging.getLogger("step").info("calling the planner with key %s", secret)
        raise RuntimeError("request to https://llm/v1?api-key=" + secret + " failed")
    """)
    env = {"REELWORKS_LLM_API_KEY": SECRET, "PATH": "/usr/bin:/bin", "REELWORKS_PROGRESS": "0"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 1
    assert "calling the planner with key <redacted>" in done.stderr
    assert "RuntimeError: request to https://llm/v1?api-key=<redacted> failed" in done.stderr
    assert SECRET not in done.stderr + done.stdout
