"""The tweeter's ledger: which plots were claimed, posted and confirmed, kept next to the queue.

One folder per plot id, every object written once with `storage.create_if_absent` (S3
`If-None-Match: *`), so concurrent publishers agree on who did what without a lock server:

    <ledger>/<plot id>/claim-0001.json    a publisher took the plot (owner, time, the exact texts)
    <ledger>/<plot id>/release-0001.json  that owner stopped with nothing in flight (e.g. rate limit)
    <ledger>/<plot id>/part-0.json        tweet 0 of the plot is on X (its tweet id)
    <ledger>/<plot id>/done.json          the plot is finished: published or skipped
    <ledger>/<plot id>/skipped.json       marker next to done.json when it was skipped
    <ledger>/last.json                    the latest publish, for `status` (informational, overwritten)

A plot has left the queue exactly when `done.json` exists. A claim without `done.json` is
"unconfirmed": its owner is still at work (fresh claim), or died or gave up (stale or
released claim), and then the next publisher reconciles it before posting anything else.
Taking over a claim is creating the next numbered claim, so only one publisher can.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone

from reelworks import storage
from reelworks.errors import NotFoundError, ReelworksError

_KEY = re.compile(r"^(?P<plot>[^/]+)/(?P<kind>claim|release|part|done|skipped)(?:-(?P<n>\d+))?\.json$")
SAFE_PLOT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds")


@dataclass
class Claim:
    plot_id: str
    attempt: int
    owner: str
    claimed_at: float
    texts: list[str]
    image: str | None = None
    title: str = ""
    first_claimed_at: float = 0.0  # the plot's first claim: reconciliation searches X from here
    alt_text: str = ""  # the image's description for screen readers (compose.alt_text)

    def __post_init__(self):
        self.first_claimed_at = self.first_claimed_at or self.claimed_at

    def to_json(self) -> str:
        return json.dumps({"plot_id": self.plot_id, "attempt": self.attempt, "owner": self.owner,
                           "claimed_at": self.claimed_at, "claimed_at_iso": iso(self.claimed_at),
                           "texts": self.texts, "image": self.image, "title": self.title,
                           "first_claimed_at": self.first_claimed_at, "alt_text": self.alt_text},
                          ensure_ascii=False, indent=1)

    @classmethod
    def from_json(cls, data: dict) -> "Claim":
        return cls(plot_id=data["plot_id"], attempt=int(data["attempt"]), owner=data["owner"],
                   claimed_at=float(data["claimed_at"]), texts=list(data["texts"]), image=data.get("image"),
                   title=data.get("title", ""), first_claimed_at=float(data.get("first_claimed_at", 0)),
                   alt_text=str(data.get("alt_text", "")))


@dataclass
class PlotRecord:
    """What the ledger holds for one plot, from one listing."""

    plot_id: str
    claims: list[int] = field(default_factory=list)
    releases: set[int] = field(default_factory=set)
    parts: set[int] = field(default_factory=set)
    done: bool = False
    skipped: bool = False  # done, without posting (see done.json for the reason)

    @property
    def latest_claim(self) -> int:
        return max(self.claims, default=0)

    @property
    def unconfirmed(self) -> bool:
        return bool(self.claims) and not self.done


class Ledger:
    def __init__(self, uri: str):
        self.uri = uri.rstrip("/")

    def _key(self, plot_id: str, name: str) -> str:
        if not SAFE_PLOT_ID.match(plot_id):
            raise ReelworksError(f"refusing plot id {plot_id!r}: ids are 1-64 letters, digits, '-' or '_'")
        return storage.join(self.uri, plot_id, name)

    def _read(self, plot_id: str, name: str) -> dict:
        uri = self._key(plot_id, name)
        try:
            return json.loads(storage.read_text(uri))
        except json.JSONDecodeError as exc:
            raise ReelworksError(f"ledger object {uri} is not JSON ({exc.msg}): fix or remove it") from None

    # ------------------------------------------------------------------ reading

    def snapshot(self) -> dict[str, PlotRecord]:
        """Every plot the ledger knows, from one listing (a missing ledger is an empty one)."""
        return _records(storage.list_keys(self.uri))

    def record(self, plot_id: str) -> PlotRecord:
        """A fresh listing of one plot's folder."""
        self._key(plot_id, "done.json")  # validates the id
        keys = storage.list_keys(storage.join(self.uri, plot_id))
        return _records(f"{plot_id}/{key}" for key in keys).get(plot_id, PlotRecord(plot_id))

    def claim(self, plot_id: str, attempt: int) -> Claim:
        return Claim.from_json(self._read(plot_id, f"claim-{attempt:04d}.json"))

    def release_info(self, plot_id: str, attempt: int) -> dict:
        return self._read(plot_id, f"release-{attempt:04d}.json")

    def part(self, plot_id: str, index: int) -> dict:
        return self._read(plot_id, f"part-{index}.json")

    def done(self, plot_id: str) -> dict:
        return self._read(plot_id, "done.json")

    def last(self) -> dict | None:
        try:
            return json.loads(storage.read_text(f"{self.uri}/last.json"))
        except (NotFoundError, json.JSONDecodeError):
            return None

    # ------------------------------------------------------------------ writing (each once)

    def try_claim(self, claim: Claim) -> bool:
        """Take the plot for `claim.attempt`; False when another publisher already has."""
        return storage.create_if_absent(self._key(claim.plot_id, f"claim-{claim.attempt:04d}.json"),
                                        claim.to_json())

    def release(self, plot_id: str, attempt: int, reason: str, maybe_posted: bool, now: float) -> None:
        """The owner of `attempt` stops; nothing of it is in flight any more."""
        storage.create_if_absent(self._key(plot_id, f"release-{attempt:04d}.json"),
                                 json.dumps({"attempt": attempt, "reason": reason, "maybe_posted": maybe_posted,
                                             "at": iso(now)}))

    def record_part(self, plot_id: str, index: int, tweet_id: str | None, text: str, how: str,
                    attempt: int, now: float) -> str | None:
        """Tweet `index` of the plot is on X; returns the id the ledger holds (first writer wins)."""
        data = {"index": index, "tweet_id": tweet_id, "text": text, "how": how, "attempt": attempt,
                "at": iso(now)}
        if storage.create_if_absent(self._key(plot_id, f"part-{index}.json"), json.dumps(data, ensure_ascii=False)):
            return tweet_id
        return self.part(plot_id, index).get("tweet_id") or tweet_id

    def finish(self, plot_id: str, status: str, now: float, *, tweet_ids: list[str | None] = (),
               texts: list[str] = (), reason: str | None = None, attempt: int = 0, how: str = "",
               title: str = "") -> bool:
        """Mark the plot done (it leaves the queue). False when it already was."""
        data = {"plot_id": plot_id, "status": status, "tweet_ids": list(tweet_ids), "texts": list(texts),
                "reason": reason, "attempt": attempt, "how": how, "title": title, "at": iso(now),
                "at_unix": now}
        created = storage.create_if_absent(self._key(plot_id, "done.json"), json.dumps(data, ensure_ascii=False))
        if created and status == "skipped":
            # A marker in the key space, so `status` counts skips from the listing alone.
            storage.create_if_absent(self._key(plot_id, "skipped.json"), json.dumps({"reason": reason}))
        if created and status == "published":
            # Informational only (status's "last published"): a crash before it loses nothing.
            storage.write_text(f"{self.uri}/last.json", json.dumps(data, ensure_ascii=False))
        return created


def _records(keys) -> dict[str, PlotRecord]:
    records: dict[str, PlotRecord] = {}
    for key in keys:
        match = _KEY.match(key)
        if not match:
            continue  # last.json, temporary files, anything foreign
        record = records.setdefault(match["plot"], PlotRecord(match["plot"]))
        kind, n = match["kind"], int(match["n"] or 0)
        if kind == "claim":
            record.claims.append(n)
        elif kind == "release":
            record.releases.add(n)
        elif kind == "part":
            record.parts.add(n)
        elif kind == "skipped":
            record.skipped = True
        else:
            record.done = True
    return records


def claim_is_stale(claim: Claim, now: float, ttl: float) -> bool:
    return now >= claim.claimed_at + ttl

