"""X credentials as files: the chart mounts the Secret read-only and points
REELWORKS_X_CREDENTIALS_DIR at it; the env vars stay the way to run locally."""
import logging
from pathlib import Path

import pytest

from reelworks.cli import main
from reelworks.errors import ReelworksError
from reelworks.tweeter.x_account import CREDENTIAL_ENV, Credentials
from tweeter_fake_x import CREDENTIALS


def mounted_secret(directory, values) -> str:
    """A directory as the kubelet lays out a Secret volume: one file per key (here with the
    trailing newline `kubectl create secret --from-file` keeps)."""
    directory.mkdir()
    for name, value in values.items():
        (directory / name).write_text(value + "\n")
    return str(directory)


@pytest.fixture
def credentials_dir(tmp_path, monkeypatch, fake_x):
    """The fake account's credentials in files only: none of them in the environment."""
    for name in CREDENTIAL_ENV:
        monkeypatch.delenv(name)
    path = mounted_secret(tmp_path / "x-secret", CREDENTIALS)
    monkeypatch.setenv("REELWORKS_X_CREDENTIALS_DIR", path)
    return path


def test_publish_signs_with_the_mounted_credentials(credentials_dir, fake_x, queue_uri, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    main(["tweeter", "publish", "--queue", queue_uri])
    # The fake checks each request's OAuth 1.0a header against the account's consumer key.
    assert len(fake_x.tweets) == 1 and f"as tweet {fake_x.tweets[0]['id']}" in capsys.readouterr().out
    logged = caplog.text + capsys.readouterr().err
    for value in CREDENTIALS.values():
        assert value not in logged


def test_a_set_directory_is_the_only_source(tmp_path, monkeypatch):
    """A broken mount fails with one line naming what is missing, even with env vars set."""
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    partial = mounted_secret(tmp_path / "partial", {k: v for k, v in CREDENTIALS.items() if k != "X_ACCESS_TOKEN"})
    (tmp_path / "partial" / "X_API_SECRET").write_text("  \n")  # an empty key is a missing one
    monkeypatch.setenv("REELWORKS_X_CREDENTIALS_DIR", partial)
    with pytest.raises(ReelworksError, match=r"X credentials missing: no X_API_SECRET, X_ACCESS_TOKEN in .*partial"):
        Credentials.load()
    monkeypatch.setenv("REELWORKS_X_CREDENTIALS_DIR", str(tmp_path / "not-mounted"))
    with pytest.raises(ReelworksError, match="X credentials directory .*not-mounted .*does not exist"):
        Credentials.load()
    monkeypatch.delenv("REELWORKS_X_CREDENTIALS_DIR")
    assert Credentials.load().values() == tuple(CREDENTIALS[name] for name in CREDENTIAL_ENV)


def test_cli_error_for_a_missing_credential_file(credentials_dir, fake_x, queue_uri, capsys):
    (Path(credentials_dir) / "X_API_KEY").unlink()
    with pytest.raises(SystemExit) as exit_info:
        main(["tweeter", "publish", "--queue", queue_uri])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "error: X credentials missing: no X_API_KEY in" in err
    assert "Traceback" not in err and fake_x.tweets == []
