"""Fixtures for the tweeter: X credentials, a fake X account behind tweepy's HTTP layer, queues."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import responses

sys.path.insert(0, str(Path(__file__).parent))
from tweeter_fake_x import CREDENTIALS, FakeX, make_items  # noqa: E402,F401

from reelworks.tweeter.queue import append_to_queue  # noqa: E402

@pytest.fixture
def x_credentials(monkeypatch) -> dict[str, str]:
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("REELWORKS_PUSHGATEWAY_URL", raising=False)
    return dict(CREDENTIALS)


@pytest.fixture
def fake_x(tmp_path, x_credentials):
    """The X account; every request from tweepy goes through its real HTTP stack to this fake."""
    fake = FakeX(tmp_path / "x-account.json", x_credentials)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake.register(rsps)
        yield fake


@pytest.fixture
def queue_uri(tmp_path) -> str:
    uri = str(tmp_path / "plotbot" / "queue.jsonl")
    append_to_queue(uri, make_items(4))
    return uri
