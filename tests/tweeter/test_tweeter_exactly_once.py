"""Exactly once: crash injection at every point between claim and confirm, real process kills,
and publishers racing each other, against local ledgers and the real S3 test server.

Each scenario drains a queue (a thread included) through many publisher runs, each of which
may crash at a random boundary: before or after any ledger read or write, and right after X
stored the tweet but before the response came back. Crashes are exceptions in-process, or
SIGKILL in a forked publisher (no finally blocks, no flushing). X's scripted failures (5xx,
timeouts, lost responses, rate limits) are mixed in. After every scenario: each composed
tweet is on X exactly once, every plot is confirmed in the ledger, and threads reply in order.
With X's duplicate check off, the ledger and the timeline lookup alone must hold the line.
"""
from __future__ import annotations

import multiprocessing
import os
import random
import signal
import threading
from contextlib import contextmanager

import pytest
import tweepy  # noqa: F401  imported once here, so forked publishers start warm

from reelworks import storage
from reelworks.tweeter.compose import compose
from reelworks.tweeter.ledger import Claim, Ledger
from reelworks.tweeter.publish import PublishError, PublishOptions, publish
from reelworks.tweeter.queue import append_to_queue
from tweeter_fake_x import make_items

FORK = multiprocessing.get_context("fork")
X_FAILURES = ["503", "timeout", "posted+timeout", "posted+503", "429:60", "connect"]
EXIT = {"published": 10, "nothing": 11, "busy": 12, "error": 13, "crashed": 14, "bug": 15}
OUTCOME = {code: name for name, code in EXIT.items()} | {-signal.SIGKILL: "killed"}


class InjectedCrash(Exception):
    pass


class Failpoints:
    """Counts boundary crossings and crashes at number `crash_at` (None: never)."""

    BOUNDARIES = ("create_if_absent", "write_bytes", "list_keys", "read_bytes")

    def __init__(self, fake, crash_at: int | None, phase: str, kill: bool, only: str = ""):
        self.fake, self.crash_at, self.phase, self.kill = fake, crash_at, phase, kill
        self.only = only  # count only calls on URIs containing this
        self.count = 0
        self.crashed = False

    def _point(self) -> None:
        if self.crash_at is not None and self.count == self.crash_at:
            self.crashed = True
            if self.kill:
                os.kill(os.getpid(), signal.SIGKILL)
            raise InjectedCrash(f"crash at boundary {self.count}")
        self.count += 1

    def _wrap(self, original):
        def wrapped(*args, **kwargs):
            counted = self.only in str(args[0] if args else "")
            if counted and self.phase == "before":
                self._point()
            result = original(*args, **kwargs)
            if counted and self.phase == "after":
                self._point()
            return result

        return wrapped

    @contextmanager
    def installed(self):
        saved = {name: getattr(storage, name) for name in self.BOUNDARIES}
        for name, original in saved.items():
            setattr(storage, name, self._wrap(original))
        if not self.only:
            self.fake.hooks["after_create"] = self._point  # the tweet exists, its response is lost
        try:
            yield self
        finally:
            for name, original in saved.items():
                setattr(storage, name, original)
            self.fake.hooks.pop("after_create", None)


def options() -> PublishOptions:
    return PublishOptions(backoff=0.01, retries=3, max_rate_limit_wait=120)


def run_once(queue, fake, now, failpoints: Failpoints) -> str:
    with failpoints.installed():
        try:
            return publish(queue, options(), clock=lambda: now, sleep=lambda s: None).outcome
        except InjectedCrash:
            return "crashed"
        except PublishError:
            return "error"  # gave up (e.g. retries exhausted): the plot must stay queued


def run_forked(queue, fake, now, failpoints: Failpoints | None, barrier=None, kill_after: float | None = None) -> str:
    """One publisher in a forked process; its exit code says what happened (SIGKILL: killed)."""
    def child():
        code = EXIT["bug"]
        try:
            storage.reset_clients()  # never share the parent's S3 connections
            if barrier is not None:
                original = storage.create_if_absent

                def racing(uri, data):  # both publishers hold the same snapshot here
                    if "/claim-" in uri:
                        barrier.wait(timeout=30)
                    return original(uri, data)

                storage.create_if_absent = racing
            guard = failpoints.installed() if failpoints else contextmanager(lambda: (yield))()
            with guard:
                try:
                    code = EXIT[publish(queue, options(), clock=lambda: now, sleep=lambda s: None).outcome]
                except InjectedCrash:
                    code = EXIT["crashed"]
                except PublishError:
                    code = EXIT["error"]
        finally:
            os._exit(code)

    process = FORK.Process(target=child)
    process.start()
    if kill_after is not None:
        process.join(kill_after)
        if process.is_alive():
            os.kill(process.pid, signal.SIGKILL)
    process.join(60)
    assert process.exitcode is not None, "publisher hung"
    return OUTCOME[process.exitcode]


def assert_exactly_once(fake, queue, items):
    expected = {item.id: compose(item).texts for item in items}
    tweets = fake.tweets
    by_text = {}
    for tweet in tweets:
        by_text.setdefault(tweet["text"], []).append(tweet)
    for plot_id, texts in expected.items():
        for k, text in enumerate(texts):
            assert len(by_text.get(text, [])) == 1, f"plot {plot_id} tweet {k} posted {len(by_text.get(text, []))} times"
            if k:  # a thread replies to its previous tweet
                assert by_text[text][0]["reply_to"] == by_text[texts[k - 1]][0]["id"]
    assert len(tweets) == sum(len(t) for t in expected.values()), "tweets nobody queued"
    ledger = Ledger(queue.rsplit("/", 1)[0] + "/ledger")
    records = ledger.snapshot()
    for plot_id, texts in expected.items():
        assert records[plot_id].done, f"plot {plot_id} lost"
        done = ledger.done(plot_id)
        assert done["status"] == "published"
        assert done["tweet_ids"] == [by_text[t][0]["id"] for t in texts]


def drain(rng, queue, fake, items, kill: bool, crash_rate: float = 0.7) -> list[str]:
    """Publish runs with random crashes and X failures until the queue reports nothing left."""
    now = fake.read()["now"]
    outcomes = []
    for _ in range(80):
        # Most runs come after the lease (earlier claims are stale); a quarter come a minute after
        # the run before, so a crashed run's claim is still live and must be left to its owner.
        now += 60 if rng.random() < 0.25 else 7200
        fake.set_time(now)
        if rng.random() < 0.3:
            fake.script("create", rng.choice(X_FAILURES))
        crash_at = rng.randrange(0, 12) if rng.random() < crash_rate else None
        failpoints = Failpoints(fake, crash_at, rng.choice(("before", "after")), kill)
        posted_before = len(fake.tweets)
        outcome = run_forked(queue, fake, now, failpoints) if kill else run_once(queue, fake, now, failpoints)
        outcomes.append(outcome)
        assert outcome in ("published", "nothing", "crashed", "killed", "error", "busy"), outcomes
        if outcome == "busy":
            assert len(fake.tweets) == posted_before, "a run contested a live claim and posted"
        if outcome == "nothing":
            break
    else:
        pytest.fail(f"queue not drained after 80 runs: {outcomes}")
    assert_exactly_once(fake, queue, items)
    return outcomes


def new_queue(base: str, name: str, items) -> str:
    queue = f"{base}/{name}/queue.jsonl"
    append_to_queue(queue, items)
    return queue


def reset_fake(fake, duplicate_check: bool):
    with fake.state() as state:
        state.update(tweets=[], script={}, calls={}, duplicate_check=duplicate_check)


ITEMS = [make_items()[i] for i in (0, 4, 1)]  # a single tweet, a thread, a single tweet
compose(ITEMS[0])  # loads twitter-text's regexes before any fork


@pytest.mark.parametrize("duplicate_check", [True, False], ids=["x-dup-check", "ledger-only"])
def test_exceptions_at_every_point_local(fake_x, tmp_path, duplicate_check):
    rng = random.Random(1234 + duplicate_check)
    outcomes = []
    for scenario in range(30):
        reset_fake(fake_x, duplicate_check)
        queue = new_queue(str(tmp_path), f"s{scenario}", ITEMS)
        outcomes += drain(rng, queue, fake_x, ITEMS, kill=False)
    assert outcomes.count("crashed") > 50  # the crashes did happen
    assert outcomes.count("busy") > 3  # and later runs met live claims of crashed runs (seeded: 7 and more)


def test_exceptions_at_every_point_s3(fake_x, s3_bucket):
    rng = random.Random(99)
    for scenario in range(6):
        reset_fake(fake_x, duplicate_check=scenario % 2 == 0)
        queue = new_queue(s3_bucket, f"s{scenario}", ITEMS)
        drain(rng, queue, fake_x, ITEMS, kill=False)


def test_every_single_crash_point_is_recovered(fake_x, tmp_path):
    """Deterministic sweep: crash once at boundary n (each phase), then run clean to the end."""
    points = 0
    for phase in ("before", "after"):
        for crash_at in range(40):
            reset_fake(fake_x, duplicate_check=False)
            queue = new_queue(str(tmp_path), f"{phase}{crash_at}", ITEMS[1:2])
            now = fake_x.read()["now"]
            failpoints = Failpoints(fake_x, crash_at, phase, kill=False)
            first = run_once(queue, fake_x, now, failpoints)
            if not failpoints.crashed:
                break  # past the last boundary of a whole publish
            points += 1
            for later in range(1, 4):
                fake_x.set_time(now + later * 7200)
                run_once(queue, fake_x, now + later * 7200, Failpoints(fake_x, None, phase, False))
            assert_exactly_once(fake_x, queue, ITEMS[1:2])
            assert first == "crashed"
    assert points > 15


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_process_kills_at_every_point(fake_x, tmp_path, request, backend):
    base = str(tmp_path) if backend == "local" else request.getfixturevalue("s3_bucket")
    rng = random.Random(7 if backend == "local" else 8)
    kills = 0
    for scenario in range(8 if backend == "local" else 3):
        reset_fake(fake_x, duplicate_check=scenario % 2 == 0)
        queue = new_queue(base, f"k{scenario}", ITEMS)
        kills += drain(rng, queue, fake_x, ITEMS, kill=True).count("killed")
    assert kills > 5


def test_process_kills_at_random_times(fake_x, tmp_path):
    """SIGKILL from outside at a random moment, while X takes 50 ms to answer each request."""
    rng = random.Random(5)
    with fake_x.state() as state:
        state["latency"] = 0.05
    kills = 0
    for scenario in range(4):
        reset_fake(fake_x, duplicate_check=scenario % 2 == 0)
        queue = new_queue(str(tmp_path), f"t{scenario}", ITEMS)
        now = fake_x.read()["now"]
        outcomes = []
        for _ in range(40):
            now += 7200
            fake_x.set_time(now)
            kill_after = rng.uniform(0.0, 0.2) if rng.random() < 0.6 else None
            outcomes.append(run_forked(queue, fake_x, now, None, kill_after=kill_after))
            if outcomes[-1] == "nothing":
                break
        assert outcomes[-1] == "nothing", outcomes
        kills += outcomes.count("killed")
        assert_exactly_once(fake_x, queue, ITEMS)
    assert kills >= 3


def two_publishers_at_once(queue: str, fake_x, now: float) -> list[str]:
    """Two forked publishers released together at the claim; their outcomes."""
    barrier = FORK.Barrier(2)
    results = []
    threads = [threading.Thread(target=lambda: results.append(run_forked(queue, fake_x, now, None, barrier)))
               for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_two_publishers_at_once_exactly_one_posts(fake_x, s3_bucket):
    queue = new_queue(s3_bucket, "race", make_items(3))
    now = fake_x.read()["now"]
    for round_ in range(3):
        now += 7200
        fake_x.set_time(now)
        results = two_publishers_at_once(queue, fake_x, now)
        assert sorted(results) == ["busy", "published"], results
        assert len(fake_x.tweets) == round_ + 1
    assert_exactly_once(fake_x, queue, make_items(3))


def test_two_reconcilers_at_once_exactly_one_posts(fake_x, s3_bucket):
    """A stale claim (its publisher crashed right after claiming) met by two runs at once."""
    item = make_items(1)[0]
    queue = new_queue(s3_bucket, "reconcile", [item])
    now = fake_x.read()["now"]
    ledger = Ledger(f"{s3_bucket}/reconcile/ledger")
    assert ledger.try_claim(Claim(item.id, 1, "crashed-pod:1:dead", now, compose(item).texts))
    now += 7200
    fake_x.set_time(now)
    results = two_publishers_at_once(queue, fake_x, now)
    assert sorted(results) == ["busy", "published"], results
    assert_exactly_once(fake_x, queue, make_items(1))
    assert sorted(ledger.snapshot()[item.id].claims) == [1, 2]


def test_fresh_claim_blocks_a_second_run(fake_x, tmp_path):
    """Within the lease an unconfirmed claim belongs to its (maybe still running) owner."""
    queue = new_queue(str(tmp_path), "fresh", make_items(2))
    now = fake_x.read()["now"]
    assert run_once(queue, fake_x, now, Failpoints(fake_x, 0, "after", kill=False, only="claim-")) == "crashed"
    assert run_once(queue, fake_x, now + 60, Failpoints(fake_x, None, "after", False)) == "busy"
    assert fake_x.tweets == []
    assert run_once(queue, fake_x, now + 3600, Failpoints(fake_x, None, "after", False)) == "published"
    assert len(fake_x.tweets) == 1


def test_live_claim_of_a_running_publisher_is_left_alone(fake_x, tmp_path):
    """A publisher has claimed a plot and is still posting it (X has not answered yet). A second
    run a minute later must back off: `busy`, no request to post, no claim of its own."""
    items = make_items(1)
    queue = new_queue(str(tmp_path), "live", items)
    now = fake_x.read()["now"]
    in_create, release = FORK.Event(), FORK.Event()
    parent = os.getpid()

    def hold_the_owner(endpoint):  # the forked owner waits inside X's create call
        if endpoint == "create" and os.getpid() != parent:
            in_create.set()
            release.wait(30)

    fake_x.hooks["on_call"] = hold_the_owner
    owner_result = []
    owner = threading.Thread(target=lambda: owner_result.append(run_forked(queue, fake_x, now, None)))
    owner.start()
    try:
        assert in_create.wait(30), "the owner never reached X"
        ledger = Ledger(queue.rsplit("/", 1)[0] + "/ledger")
        assert list(ledger.snapshot()[items[0].id].claims) == [1]  # the owner's live claim
        creates = []
        fake_x.hooks["on_call"] = lambda endpoint: creates.append(endpoint) if endpoint == "create" else None
        assert run_once(queue, fake_x, now + 60, Failpoints(fake_x, None, "after", False)) == "busy"
        assert creates == [] and fake_x.tweets == []
        assert list(ledger.snapshot()[items[0].id].claims) == [1]  # no second claim on a live lease
    finally:
        release.set()
        owner.join(60)
    assert owner_result == ["published"]
    assert_exactly_once(fake_x, queue, items)


def test_publisher_never_posts_after_its_lease(fake_x, tmp_path):
    """A run stuck in retries stops before another run may take its plot over."""
    queue = new_queue(str(tmp_path), "lease", make_items(1))
    clock = {"now": fake_x.read()["now"]}
    fake_x.script("create", *["503"] * 10)
    opts = PublishOptions(claim_ttl=300, timeout=30, retries=10, backoff=60)

    def sleep(seconds):
        clock["now"] += seconds

    start = clock["now"]
    sent_at = []
    fake_x.hooks["on_call"] = lambda endpoint: sent_at.append(clock["now"]) if endpoint == "create" else None
    with pytest.raises(PublishError, match="ran out of time"):
        publish(queue, opts, clock=lambda: clock["now"], sleep=sleep)
    assert len(sent_at) >= 2 and fake_x.tweets == []
    # No request starts in the last two timeouts (+10 s) of the lease.
    assert max(sent_at) < start + 300 - 2 * 30 - 10
