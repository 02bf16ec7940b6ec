"""Fixtures for the tweeter: X credentials, a fake X account behind tweepy's HTTP layer, queues."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import responses

sys.path.insert(0, str(Path(__file__).parent))
from tweeter_fake_x import FakeX  # noqa: E402

from reelworks.tweeter.queue import QueueItem, append_to_queue  # noqa: E402

# Distinctive values, so a test can prove none of them ever reaches a log or an error.
CREDENTIALS = {"X_API_KEY": "ck-7Hq2SecretConsumerKey", "X_API_SECRET": "cs-Zp9SecretConsumerSecret",
               "X_ACCESS_TOKEN": "2244994945-Tk4SecretAccessToken", "X_ACCESS_TOKEN_SECRET": "ts-Wm3SecretTokenSecret"}

PLOTS = [
    ("The Last Lighthouse", "A lonely robot keeps a lighthouse burning for ships that stopped coming a century ago.",
     ["Sci-Fi", "Drama"], ["robot"]),
    ("Heist at Dawn", "Five retired thieves & one nervous accountant plan to rob the bank that ruined their town.",
     ["Crime", "Comedy"], ["heist", "small town"]),
    ("Winter Orchard", "Two estranged sisters return to their late father's orchard and find a letter he never sent.",
     ["Drama"], ["family"]),
    ("Signal Lost", "An astronaut stranded on Europa hears her own voice on the radio, calling from the future.",
     ["Sci-Fi", "Thriller"], []),
    ("The Cartographer", "A mapmaker discovers that every town she draws appears the next morning. " * 4,
     ["Fantasy"], ["maps"]),  # too long for one tweet: a two-part thread
]


def make_items(n: int | None = None) -> list[QueueItem]:
    return [QueueItem(title, plot, genres=genres, keywords=keywords)
            for title, plot, genres, keywords in PLOTS[:n]]


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
