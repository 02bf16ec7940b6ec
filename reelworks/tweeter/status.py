"""`reelworks tweeter status`: queue depth, the last published plot and tweet, the next plot up."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

from reelworks.errors import ReelworksError
from reelworks.tweeter.ledger import Ledger, claim_is_stale, iso
from reelworks.tweeter.publish import ORDER_CHOICES, PublishOptions, pending_items, pick, sibling, usable_items


@dataclass
class QueueStatus:
    queue: str
    ledger: str
    queued: int  # well-formed plots in the queue
    depth: int  # of those, not published or skipped yet (what reelworks_tweet_queue_depth reports)
    published: int
    skipped: int
    bad_lines: int
    last: dict | None  # the ledger's last publish: plot_id, title, tweet_ids, at
    next: dict | None  # plot_id, title of the plot the next run takes
    in_progress: list[dict] = field(default_factory=list)  # unconfirmed claims

    def to_dict(self) -> dict:
        return asdict(self)

    def lines(self) -> list[str]:
        out = [f"queue        {self.queue}",
               f"ledger       {self.ledger}",
               f"depth        {self.depth} plot(s) waiting ({self.queued} queued, {self.published} published, "
               f"{self.skipped} skipped, {self.bad_lines} malformed line(s))"]
        if self.last:
            ids = ", ".join(str(i) for i in self.last.get("tweet_ids") or []) or "unknown"
            out.append(f"last         {self.last['plot_id']} {self.last.get('title', '')!r}: tweet {ids} "
                       f"at {self.last.get('at', '?')}")
        else:
            out.append("last         nothing published yet")
        if self.next:
            out.append(f"next         {self.next['plot_id']} {self.next['title']!r}")
        else:
            out.append("next         nothing to publish")
        for claim in self.in_progress:
            out.append(f"in progress  {claim['plot_id']} claim {claim['attempt']} by {claim['owner']} at "
                       f"{claim['claimed_at_iso']} ({claim['state']})")
        return out


def queue_status(queue_uri: str, ledger_uri: str | None = None, order: str = "oldest", seed: int | None = None,
                 claim_ttl: float = PublishOptions.claim_ttl, now: float | None = None) -> QueueStatus:
    if order not in ORDER_CHOICES:
        raise ReelworksError(f"order must be one of {', '.join(ORDER_CHOICES)}, not {order!r}")
    now = time.time() if now is None else now
    ledger = Ledger(ledger_uri or sibling(queue_uri, "ledger"))
    items, bad = usable_items(queue_uri)
    records = ledger.snapshot()
    queued_ids = {item.id for item in items}
    done = {pid for pid, rec in records.items() if rec.done}
    skipped = sum(1 for pid in done & queued_ids if records[pid].skipped)
    published = len(done & queued_ids) - skipped
    in_progress = []
    for record in records.values():
        if record.unconfirmed:
            claim = ledger.claim(record.plot_id, record.latest_claim)
            state = ("released" if record.latest_claim in record.releases
                     else "stale: the next run reconciles it" if claim_is_stale(claim, now, claim_ttl) else "fresh")
            in_progress.append({"plot_id": claim.plot_id, "attempt": claim.attempt, "owner": claim.owner,
                                "claimed_at_iso": iso(claim.claimed_at), "state": state})
    pending = pending_items(items, done)
    waiting = [item for item in pending if item.id not in records or not records[item.id].claims]
    nxt = pick(waiting, order, seed) if waiting else None
    last = ledger.last()
    return QueueStatus(queue=queue_uri, ledger=ledger.uri, queued=len(items), depth=len(pending),
                       published=published, skipped=skipped, bad_lines=len(bad),
                       last={k: last.get(k) for k in ("plot_id", "title", "tweet_ids", "at")} if last else None,
                       next={"plot_id": nxt.id, "title": nxt.title} if nxt else None, in_progress=in_progress)

