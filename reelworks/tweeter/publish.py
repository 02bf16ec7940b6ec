"""`reelworks tweeter publish`: post the next queued plot to X, exactly once.

One run posts at most one plot (a thread counts as one). The ledger (`ledger.py`) makes it
exactly once under crashes, kills and concurrent runs:

1. Claim the plot with create-if-absent before posting; the claim holds the exact texts.
2. Post; record each tweet id (`part-N`) and finally `done` (the plot leaves the queue).
3. A claim found unconfirmed by a later run is reconciled before anything else is posted:
   when its owner released it with nothing in flight, or its lease (`claim_ttl`) ran out, the
   account's recent tweets are searched for its texts; what is found is recorded, what is
   not is posted under the next numbered claim, which only one publisher can create.
4. A publisher never starts a request after its own lease is over (minus two request
   timeouts), so a slow run and the run that takes over cannot both post. After a timeout
   or 5xx the recent tweets are searched before sending again, and X's duplicate-content
   rejection counts as posted: a double post needs both checks to miss.

Errors: a rate limit waits for its reset when that is within `max_rate_limit_wait`, else the
run releases the plot (still queued) and exits 75; authentication errors fail fast (exit 2)
and consume nothing; network errors and 5xx retry with exponential backoff `retries` times,
then exit 75 leaving the claim for the next run to reconcile. A plot whose image cannot be
uploaded posts nothing and stays queued (claim released): exit 2 when the image is missing or
refused (unless `allow_no_image`: then its text goes alone), 75 when X is failing. Only images
under the posters folder beside the queue (where `posters from-plots` writes them), real PNG or
JPEG files, are ever read for upload: anything else is refused the same way. X takes images of
at most 5 MB: a bigger poster is sent as a JPEG, its quality stepped down until it fits (one
log line says so), and refused when even the lowest does not. The image carries alt text (the
poster's title and genres) for screen readers.
"""
from __future__ import annotations

import contextlib
import logging
import os
import random
import socket
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Callable

from reelworks import storage
from reelworks.errors import NotFoundError, ReelworksError
from reelworks.metrics import JobMetrics, job_metrics
from reelworks.tweeter.compose import OVERFLOW_CHOICES, alt_text, compose
from reelworks.tweeter.ledger import SAFE_PLOT_ID, Claim, Ledger, PlotRecord, claim_is_stale
from reelworks.tweeter.outbox import OutboxAccount
from reelworks.tweeter.queue import POSTERS_FOLDER, QueueItem, read_queue
from reelworks.tweeter.x_account import (Account, AuthFailed, Duplicate, RateLimited, Rejected, Transient,
                                         XAccount, guarded_logging)

log = logging.getLogger(__name__)

ORDER_CHOICES = ("oldest", "random")
EXIT_TRY_LATER = 75  # EX_TEMPFAIL: the plot is still queued, a later run will post it
LOOKBACK_SECONDS = 600  # search X from this long before a claim (clock skew between pods)
IMAGE_FORMATS = ("PNG", "JPEG")  # what posters are; X takes these as tweet images
MAX_IMAGE_BYTES = 5 * 2**20  # X's limit for an uploaded image
# JPEG qualities tried, in turn, for a poster over MAX_IMAGE_BYTES (below 60 the blocks show).
JPEG_QUALITIES = (92, 85, 75, 60)
MAX_NOT_BEFORE_SECONDS = 24 * 3600


# Counted each time they happen (every retry), so not again when the run gives up on them.
_COUNTED_WHEN_SEEN = {"rate_limited", "network", "timeout", "server_error"}


class PublishError(ReelworksError):
    """A publish that stopped; `metric_reason` labels reelworks_tweet_failures_total."""

    def __init__(self, message: str, reason: str, exit_code: int = 2):
        super().__init__(message, exit_code=exit_code)
        self.metric_reason = reason


class ImageUnavailable(Exception):
    """The plot's image is missing or refused, here or by X (and the text alone was not allowed)."""

    reason = "image_unavailable"


class _Busy(Exception):
    """Another publisher holds a live claim: this run must not post anything."""


@dataclass
class PublishOptions:
    ledger: str | None = None  # default: <queue dir>/ledger
    outbox: str | None = None  # dry run only; default: <queue dir>/outbox
    dry_run: bool = False
    order: str = "oldest"  # queue order, or "random" (reproducible with `seed`)
    seed: int | None = None
    not_before: float | None = None  # unix time to wait for before doing anything
    overflow: str = "thread"  # a plot over 280: "thread" or "skip"
    max_thread: int = 3
    max_hashtags: int = 3
    claim_ttl: float = 1800  # a claim older than this, unconfirmed, is reconciled by the next run
    max_rate_limit_wait: float = 900
    retries: int = 4
    backoff: float = 2.0  # seconds; doubled each retry, with jitter
    timeout: float = 30  # per HTTP request
    allow_no_image: bool = False  # post the text alone when the plot's image is missing or X refuses it


@dataclass
class PublishResult:
    outcome: str  # "published", "nothing", "busy"
    dry_run: bool = False
    plot_id: str | None = None
    title: str = ""
    texts: list[str] = field(default_factory=list)
    tweet_ids: list[str | None] = field(default_factory=list)
    reconciled: list[str] = field(default_factory=list)  # plot ids found already posted
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (plot id, reason)
    bad_lines: list[tuple[int, str]] = field(default_factory=list)
    queue_depth: int = 0  # plots left to publish after this run (a dry run counts its outbox too)
    real_queue_depth: int = 0  # the same for the real ledger alone (what the depth gauge reports)
    outbox: str | None = None
    message: str = ""


def sibling(queue_uri: str, name: str) -> str:
    """`name` in the queue's folder: s3://b/plotbot/queue.jsonl -> s3://b/plotbot/<name>."""
    loc = storage.parse(queue_uri)
    if loc.is_s3:
        parent = str(PurePosixPath(loc.key).parent)
        base = f"s3://{loc.bucket}" + ("" if parent in (".", "") else f"/{parent}")
    else:
        base = str(Path(loc.key).parent)
    return storage.join(base, name)


def read_poster(image: str, queue_uri: str) -> tuple[bytes, str]:
    """(bytes to upload, their file name) for a queued plot's image. A queue line can name any
    URI (say /proc/self/environ, whose bytes would go to X), so only a real PNG or JPEG under the
    posters folder beside the queue is read: `ImageRefused` (one line) otherwise, `NotFoundError`
    when it is not there. One over X's 5 MB comes back re-encoded as JPEG (`fit_for_x`)."""
    from reelworks.media import ImageRefused, open_image

    posters = sibling(queue_uri, POSTERS_FOLDER)
    shown = repr(image[:200])  # the queue's text, quoted: it may hold anything
    try:
        inside = storage.is_inside(image, posters)
    except ReelworksError:  # not even a URI we read
        inside = False
    if not inside:
        raise ImageRefused(shown, "outside", f"outside {posters}, where posters are kept "
                                             "(`posters from-plots` writes them there)")
    data = storage.read_bytes(image)
    picture = open_image(data, shown, formats=IMAGE_FORMATS)  # decodes it: a real image, within the pixel cap
    name = PurePosixPath(image).name or "poster.png"
    if len(data) <= MAX_IMAGE_BYTES:
        return data, name
    return fit_for_x(picture, len(data), shown), f"{PurePosixPath(name).stem}.jpg"


def fit_for_x(picture, size: int, shown: str) -> bytes:
    """`picture` (a decoded poster of `size` bytes, over X's limit) as the best JPEG within it."""
    from reelworks.media import ImageRefused, jpeg_bytes

    for quality in JPEG_QUALITIES:
        data = jpeg_bytes(picture, quality)
        if len(data) <= MAX_IMAGE_BYTES:
            log.warning("image %s is %s bytes, over X's %s byte limit: uploading it as a JPEG of quality %d "
                        "(%s bytes)", shown, f"{size:,}", f"{MAX_IMAGE_BYTES:,}", quality, f"{len(data):,}")
            return data
    raise ImageRefused(shown, "too_large", f"{size:,} bytes, over X's {MAX_IMAGE_BYTES:,} byte limit even as a "
                                           f"JPEG of quality {JPEG_QUALITIES[-1]} ({len(data):,} bytes)")


def parse_not_before(text: str, now: float | None = None) -> float:
    """ISO 8601 (`2026-11-21T18:00:00Z`; no zone means UTC) or a time of day today in UTC (`18:00`)."""
    now = time.time() if now is None else now
    raw = text.strip()
    try:
        if "T" in raw or "-" in raw[:5]:
            moment = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
        else:
            clock = datetime.strptime(raw, "%H:%M:%S" if raw.count(":") == 2 else "%H:%M").time()
            today = datetime.fromtimestamp(now, timezone.utc).date()
            moment = datetime.combine(today, clock)
    except ValueError:
        raise ReelworksError(f"--not-before {text!r}: expected ISO 8601 like 2026-11-21T18:00:00Z "
                             "or a UTC time of day like 18:00") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def pending_items(items: list[QueueItem], done: set[str]) -> list[QueueItem]:
    return [item for item in items if item.id not in done]


def pick(pending: list[QueueItem], order: str, seed: int | None) -> QueueItem:
    """The next plot: the oldest (queue order: the queue is append-only) or a seeded random one."""
    if order == "random":
        return random.Random(seed).choice(pending)
    return pending[0]


def usable_items(uri: str) -> tuple[list[QueueItem], list[tuple[int, str]]]:
    """Well-formed queue items, and the bad lines (malformed JSON, or an id the ledger can't use)."""
    read = read_queue(uri)
    items, bad = [], list(read.bad_lines)
    for item in read.items:
        if SAFE_PLOT_ID.match(item.id):
            items.append(item)
        else:
            bad.append((0, f"unusable id {item.id[:40]!r}: 1-64 letters, digits, '-' or '_'"))
            log.warning("queue %s: plot %r skipped: unusable id", uri, item.id[:40])
    return items, bad


class _Series:
    """The tweeter's own series (names fixed: the chart's alerts and dashboard use them)."""

    def __init__(self, metrics: JobMetrics, dry_run: bool):
        self.metrics = metrics
        self.dry_run = dry_run
        self.published = metrics.counter("reelworks_tweets_published_total", "Tweets confirmed on X")
        self.failures = metrics.counter("reelworks_tweet_failures_total", "Tweeter failures, by reason", ["reason"])
        self.depth = metrics.gauge("reelworks_tweet_queue_depth", "Queued plots not yet published")

    def failure(self, reason: str) -> None:
        self.failures.labels(reason=reason).inc()

    def success(self, when: float) -> None:
        self.metrics.gauge("reelworks_tweeter_last_success_timestamp_seconds",
                           "Unix time the tweeter last confirmed a tweet").set(when)


class Publisher:
    """One run of `publish`; see the module docstring for the protocol."""

    def __init__(self, queue_uri: str, options: PublishOptions, series: _Series, account: Account | None = None,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep):
        self.queue_uri = queue_uri
        self.options = options
        self.series = series
        self.clock = clock
        self.sleep = sleep
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.real_ledger = Ledger(options.ledger or sibling(queue_uri, "ledger"))
        self.outbox = (options.outbox or sibling(queue_uri, "outbox")) if options.dry_run else None
        self.ledger = Ledger(OutboxAccount(self.outbox).ledger_uri) if options.dry_run else self.real_ledger
        self._account = account
        self._verified = False
        self.result = PublishResult(outcome="nothing", dry_run=options.dry_run, outbox=self.outbox)

    # ------------------------------------------------------------------ setup

    def account(self) -> Account:
        if self._account is None:
            if self.options.dry_run:
                self._account = OutboxAccount(self.outbox, clock=self.clock)
            else:
                try:
                    self._account = XAccount.from_env(timeout=self.options.timeout)
                except ReelworksError as exc:
                    raise PublishError(str(exc), reason="credentials") from None
        return self._account

    def _verify(self) -> None:
        """Check the credentials before the first claim: a bad Secret consumes nothing."""
        if self._verified:
            return
        try:
            who = self._retrying(self.account().verify)
        except AuthFailed as exc:
            raise PublishError(f"{exc}; nothing was claimed or posted", reason="auth") from None
        except RateLimited as exc:
            raise PublishError(f"{exc}; nothing was claimed or posted", reason="rate_limited",
                               exit_code=EXIT_TRY_LATER) from None
        except (Transient, Rejected) as exc:
            raise PublishError(f"{exc}; nothing was claimed or posted", reason=exc.reason,
                               exit_code=EXIT_TRY_LATER) from None
        log.info("posting as %s", who)
        self._verified = True

    def _done_ids(self) -> tuple[dict[str, PlotRecord], set[str]]:
        """This ledger's records, and the plot ids that are no longer pending."""
        records = self.ledger.snapshot()
        done = {pid for pid, rec in records.items() if rec.done}
        if self.options.dry_run:
            # Preview the real queue: what the real publisher finished (or is finishing) is not next.
            done |= {pid for pid, rec in self.real_ledger.snapshot().items() if rec.claims or rec.done}
        return records, done

    def _depths(self, items: list[QueueItem]) -> tuple[int, int]:
        """(plots left to publish as this run sees them, plots left in the real ledger): the same
        in a real run; a dry run also takes away what it published to its outbox."""
        def finished(ledger: Ledger) -> set[str]:
            return {pid for pid, rec in ledger.snapshot().items() if rec.done}

        real_done = finished(self.real_ledger)
        seen_done = (real_done | finished(self.ledger)) if self.options.dry_run else real_done
        return (sum(item.id not in seen_done for item in items), sum(item.id not in real_done for item in items))

    def _wait_until(self, when: float) -> None:
        delay = when - self.clock()
        if delay <= 0:
            return
        if delay > MAX_NOT_BEFORE_SECONDS:
            raise PublishError(f"--not-before is {delay / 3600:.1f} h away; at most 24 h is allowed",
                               reason="not_before")
        log.info("waiting %.0f s until %s (--not-before)", delay,
                 datetime.fromtimestamp(when, timezone.utc).isoformat(timespec="seconds"))
        while (delay := when - self.clock()) > 0:
            self.sleep(delay)

    # ------------------------------------------------------------------ retries

    def _lease_deadline(self, claim: Claim) -> float:
        # Stop starting requests two timeouts before the lease ends, so that nothing this run
        # sent can still be in flight when another run takes the plot over.
        return claim.claimed_at + self.options.claim_ttl - 2 * self.options.timeout - 10

    def _retrying(self, call: Callable[[], object], claim: Claim | None = None,
                  after_transient: Callable[[], object] | None = None):
        """`call()` with bounded backoff on Transient and bounded waits on RateLimited.

        `after_transient` runs after each transient failure; a non-None result ends the
        retries with that value (used to look for a tweet that did go out).
        """
        failures = 0
        while True:
            if claim is not None and self.clock() >= self._lease_deadline(claim):
                raise PublishError(f"the claim on plot {claim.plot_id} ran out of time (claim_ttl "
                                   f"{self.options.claim_ttl:.0f} s); the next run reconciles it",
                                   reason="lease_expired", exit_code=EXIT_TRY_LATER)
            try:
                return call()
            except RateLimited as exc:
                self.series.failure("rate_limited")
                if not self._wait_for_reset(exc, claim):
                    raise
            except Transient as exc:
                failures += 1
                self.series.failure(exc.reason)
                if failures > self.options.retries:
                    raise
                log.warning("%s; retry %d of %d", exc, failures, self.options.retries)
                if after_transient is not None:
                    found = after_transient()
                    if found is not None:
                        return found
                delay = self.options.backoff * 2 ** (failures - 1)
                self.sleep(delay * random.uniform(0.5, 1.5))

    def _wait_for_reset(self, exc: RateLimited, claim: Claim | None) -> bool:
        now = self.clock()
        if exc.reset_at is None:
            return False
        wait = max(exc.reset_at - now, 0) + 1
        if wait > self.options.max_rate_limit_wait:
            return False
        if claim is not None and now + wait >= self._lease_deadline(claim):
            return False
        log.warning("X rate limit: waiting %.0f s for the reset", wait)
        self.sleep(wait)
        return True

    def _lookup(self, texts: list[str], since: float) -> dict[str, str]:
        """Which texts the account already posted; {} (with a warning) when X won't say."""
        try:
            return self.account().find_posted(texts, since - LOOKBACK_SECONDS)
        except (RateLimited, Transient, Rejected, AuthFailed) as exc:
            log.warning("cannot read the account's recent posts (%s); relying on X's duplicate check", exc)
            return {}

    # ------------------------------------------------------------------ the protocol

    def run(self) -> PublishResult:
        items, bad = usable_items(self.queue_uri)
        self.result.bad_lines = bad
        for _ in bad:
            self.series.failure("bad_queue_line")
        self.series.depth.set(self._depths(items)[1])
        account = self.account()  # missing credentials fail here, before any claim
        guard = guarded_logging(account.credentials) if isinstance(account, XAccount) else contextlib.nullcontext()
        with guard:
            if self.options.not_before is not None:
                self._wait_until(self.options.not_before)
            try:
                self._publish(items)
            except _Busy as exc:
                self.series.failure("claim_held")
                self.result.outcome = "busy"
                self.result.message = str(exc)
                log.info("%s", exc)
        self.result.queue_depth, self.result.real_queue_depth = self._depths(items)
        self.series.depth.set(self.result.real_queue_depth)
        return self.result

    def _publish(self, items: list[QueueItem]) -> None:
        records, done = self._done_ids()
        # 1. Claims an earlier run left unconfirmed come first (queued or not any more).
        for record in sorted((r for r in records.values() if r.unconfirmed), key=lambda r: r.plot_id):
            if self._resume(record):
                return
        # 2. Then the next pending plot; plots that cannot be posted are skipped on the way.
        records, done = self._done_ids()
        pending = pending_items(items, done)
        if not pending:
            self.result.message = f"nothing to publish: {len(items)} plot(s) in the queue, none pending"
            log.info("%s", self.result.message)
            return
        while pending:
            item = pick(pending, self.options.order, self.options.seed)
            pending.remove(item)
            composition = compose(item, max_hashtags=self.options.max_hashtags, overflow=self.options.overflow,
                                  max_thread=self.options.max_thread)
            if composition.skipped:
                self._skip(item.id, item.title, composition.skipped)
                continue
            if item.id in records and records[item.id].claims:
                continue  # unconfirmed claim we could not resume (e.g. rejected); never re-claim
            self._verify()
            claim = Claim(item.id, 1, self.owner, self.clock(), composition.texts, item.image, item.title,
                          alt_text=alt_text(item.title, item.genres) if item.image else "")
            if not self.ledger.try_claim(claim):
                raise _Busy(f"plot {item.id} was just claimed by another publisher; nothing to do")
            if self._post(claim):
                return
        if self.result.outcome == "nothing":
            self.result.message = "nothing to publish: every pending plot was skipped"

    def _skip(self, plot_id: str, title: str, reason: str) -> None:
        if self.ledger.finish(plot_id, "skipped", self.clock(), reason=reason, title=title):
            log.warning("plot %s skipped: %s", plot_id, reason)
            self.series.failure("skipped")
            self.result.skipped.append((plot_id, reason))

    def _resume(self, record: PlotRecord) -> bool:
        """Settle a claim a previous run left unconfirmed; True when this run posted."""
        attempt = record.latest_claim
        claim = self.ledger.claim(record.plot_id, attempt)
        released = attempt in record.releases
        now = self.clock()
        if not released and not claim_is_stale(claim, now, self.options.claim_ttl):
            raise _Busy(f"plot {record.plot_id} was claimed {now - claim.claimed_at:.0f} s ago by {claim.owner} "
                        f"and is not confirmed yet; leaving it to that run (stale after "
                        f"{self.options.claim_ttl:.0f} s)")
        self._verify()
        maybe_posted = self.ledger.release_info(record.plot_id, attempt).get("maybe_posted", True) \
            if released else True
        parts = {k: self.ledger.part(record.plot_id, k).get("tweet_id") for k in record.parts}
        missing = [k for k in range(len(claim.texts)) if k not in parts]
        if missing and maybe_posted:
            found = self._lookup([claim.texts[k] for k in missing], claim.first_claimed_at)
            for k in missing:
                if claim.texts[k] in found:
                    parts[k] = self.ledger.record_part(record.plot_id, k, found[claim.texts[k]], claim.texts[k],
                                                       "reconciled", attempt, self.clock())
                    self.series.published.inc()
        if len(parts) == len(claim.texts):
            self._finish(claim, parts, how="reconciled")
            self.result.reconciled.append(record.plot_id)
            log.info("plot %s was already on X (tweet %s): confirmed", record.plot_id, parts.get(0))
            return False
        takeover = Claim(record.plot_id, attempt + 1, self.owner, self.clock(), claim.texts, claim.image,
                         claim.title, first_claimed_at=claim.first_claimed_at, alt_text=claim.alt_text)
        if not self.ledger.try_claim(takeover):
            raise _Busy(f"another publisher took over plot {record.plot_id}; nothing to do")
        log.info("taking over plot %s (claim %d; %d of %d tweets already on X)", record.plot_id,
                 takeover.attempt, len(parts), len(claim.texts))
        return self._post(takeover)

    def _post(self, claim: Claim) -> bool:
        """Post the claim's tweets not on X yet, then confirm. False when X refused the plot."""
        record = self.ledger.record(claim.plot_id)
        parts = {k: self.ledger.part(claim.plot_id, k).get("tweet_id") for k in record.parts}
        reply_to = None
        for k, text in enumerate(claim.texts):
            if k in parts:
                reply_to = parts[k] or reply_to
                continue
            media_ids = self._media(claim) if k == 0 and claim.image else None
            tweet_id, how = self._send(claim, k, text, reply_to, media_ids)
            if how == "rejected":
                self._skip(claim.plot_id, claim.title, tweet_id)
                return False
            parts[k] = self.ledger.record_part(claim.plot_id, k, tweet_id, text, how, claim.attempt, self.clock())
            self.series.published.inc()
            self.series.metrics.items.inc()
            reply_to = parts[k] or reply_to
        self._finish(claim, parts, how="posted")
        return True

    def _finish(self, claim: Claim, parts: dict[int, str | None], how: str) -> None:
        now = self.clock()
        ids = [parts[k] for k in range(len(claim.texts))]
        self.ledger.finish(claim.plot_id, "published", now, tweet_ids=ids, texts=claim.texts,
                           attempt=claim.attempt, how=how, title=claim.title)
        if not self.options.dry_run:
            self.series.success(now)
        if how == "posted":
            self.result.outcome = "published"
            self.result.plot_id, self.result.title = claim.plot_id, claim.title
            self.result.texts, self.result.tweet_ids = list(claim.texts), ids
            where = f"the outbox {self.outbox}" if self.options.dry_run else "X"
            self.result.message = (f"published plot {claim.plot_id} ({claim.title!r}) to {where} as "
                                   f"tweet {', '.join(str(i) for i in ids)}")
            log.info("%s", self.result.message)

    def _media(self, claim: Claim) -> list[str] | None:
        """The plot's image uploaded to X. When it cannot be (missing, refused here or by X, X
        failing), nothing is posted and the plot stays queued, its claim released; with
        `allow_no_image` a missing or refused image posts the text alone."""
        from reelworks.media import ImageRefused

        try:
            data, name = read_poster(claim.image, self.queue_uri)
        except ImageRefused as exc:
            return self._without_image(claim, "image_refused", f"image refused ({exc})",
                                       ImageUnavailable(f"plot {claim.plot_id}: image {exc}"))
        except NotFoundError:
            return self._without_image(claim, "image_missing", f"image {claim.image} not found",
                                       ImageUnavailable(f"plot {claim.plot_id}: image {claim.image} not found"))
        try:
            alt = claim.alt_text or alt_text(claim.title, [])  # a claim from before alt text: the title alone
            return [self._retrying(lambda: self.account().upload_image(data, claim.image, name=name, alt_text=alt),
                                   claim)]
        except (RateLimited, AuthFailed, Transient) as exc:
            # No tweet of this claim is in flight during an upload, so it can be released.
            self._stop(claim, exc, maybe_posted=True, in_flight=False)
        except Rejected as exc:
            return self._without_image(claim, "image_rejected", f"X refused the image ({exc})",
                                       ImageUnavailable(f"X refused the image of plot {claim.plot_id}: {exc}"))

    def _without_image(self, claim: Claim, reason: str, problem: str, error: Exception) -> None:
        """A plot whose image can't go with it: with `allow_no_image` its text goes alone (None:
        no media), otherwise nothing is posted and its claim is released (`error` is raised)."""
        self.series.failure(reason)
        if self.options.allow_no_image:
            log.warning("plot %s: %s; posting the text alone (--allow-no-image)", claim.plot_id, problem)
            return None
        self._stop(claim, error, maybe_posted=True, in_flight=False)

    def _send(self, claim: Claim, k: int, text: str, reply_to: str | None,
              media_ids: list[str] | None) -> tuple[str | None, str]:
        """Post tweet `k` of the claim: (tweet id, how); ("reason", "rejected") when X refuses it."""
        since = claim.first_claimed_at
        state = {"maybe_posted": False}

        def look():
            state["maybe_posted"] = True  # a timeout or 5xx: the tweet may exist
            found = self._lookup([text], since)
            return (found[text], "reconciled") if text in found else None

        try:
            result = self._retrying(lambda: (self.account().post(text, reply_to=reply_to, media_ids=media_ids,
                                                                 plot_id=claim.plot_id, part=k), "posted"),
                                    claim, after_transient=look)
            return result
        except Duplicate:
            # X has this exact text already: an earlier attempt went out. Find its id if we can.
            found = self._lookup([text], since)
            log.info("plot %s tweet %d: X reports it already posted (duplicate content)", claim.plot_id, k)
            return found.get(text), "duplicate"
        except Rejected as exc:
            return f"X rejected tweet {k}: {exc}", "rejected"
        except (RateLimited, AuthFailed, Transient) as exc:
            # After a timeout or 5xx the request may still reach X: then nothing is released.
            self._stop(claim, exc, maybe_posted=state["maybe_posted"], in_flight=isinstance(exc, Transient))

    def _stop(self, claim: Claim, exc: Exception, maybe_posted: bool, in_flight: bool):
        """Give up on this run; the plot stays queued. The claim is released (the next run may
        take it at once) unless a request may still be in flight: then it must go stale first."""
        if not in_flight:
            self.ledger.release(claim.plot_id, claim.attempt, exc.reason, maybe_posted, self.clock())
        if isinstance(exc, Transient):
            raise PublishError(f"{exc}; gave up after {self.options.retries} retries. Plot {claim.plot_id} "
                               "stays queued; the next run checks whether it was posted",
                               reason=exc.reason, exit_code=EXIT_TRY_LATER) from None
        if isinstance(exc, RateLimited):
            when = (datetime.fromtimestamp(exc.reset_at, timezone.utc).isoformat(timespec="seconds")
                    if exc.reset_at else "unknown")
            raise PublishError(f"X rate limit reached (resets at {when}, over the "
                               f"{self.options.max_rate_limit_wait:.0f} s wait bound); plot {claim.plot_id} "
                               "stays queued", reason="rate_limited", exit_code=EXIT_TRY_LATER) from None
        if isinstance(exc, ImageUnavailable):
            raise PublishError(f"{exc}; nothing was posted and the plot stays queued (fix the image, or pass "
                               "--allow-no-image to post the text alone)", reason=exc.reason) from None
        raise PublishError(f"{exc}; plot {claim.plot_id} stays queued", reason="auth") from None


def publish(queue_uri: str, options: PublishOptions | None = None, *, account: Account | None = None,
            clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep) -> PublishResult:
    """Publish the next plot of the queue at `queue_uri` (see the module docstring)."""
    options = options or PublishOptions()
    if options.order not in ORDER_CHOICES:
        raise ReelworksError(f"order must be one of {', '.join(ORDER_CHOICES)}, not {options.order!r}")
    if options.overflow not in OVERFLOW_CHOICES:
        raise ReelworksError(f"overflow must be one of {', '.join(OVERFLOW_CHOICES)}, not {options.overflow!r}")
    if options.claim_ttl <= 2 * options.timeout + 10:
        raise ReelworksError(f"claim_ttl ({options.claim_ttl:.0f} s) must exceed two request timeouts + 10 s")
    from reelworks.settings import job_deadline_s

    deadline_s = job_deadline_s()  # the CronJob's activeDeadlineSeconds: the pod is killed then
    if options.not_before is not None and deadline_s and options.not_before > clock() + deadline_s:
        raise ReelworksError(f"--not-before is {(options.not_before - clock()) / 60:.0f} min away, past this job's "
                             f"deadline ({deadline_s:.0f} s, activeDeadlineSeconds): the pod would be killed "
                             "while waiting; schedule the CronJob later or raise its deadline")
    # Dry runs push under their own job name, so they never look like real publishes to the alerts.
    with job_metrics("tweeter_dry_run" if options.dry_run else "tweeter") as metrics:
        series = _Series(metrics, options.dry_run)
        publisher = Publisher(queue_uri, options, series, account=account, clock=clock, sleep=sleep)
        try:
            return publisher.run()
        except PublishError as exc:
            if exc.metric_reason not in _COUNTED_WHEN_SEEN:
                series.failure(exc.metric_reason)
            raise
        except ReelworksError:
            series.failure("error")
            raise
