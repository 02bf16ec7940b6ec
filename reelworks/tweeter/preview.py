"""`reelworks tweeter preview`: the next tweets exactly as they would go out, as a report.

Read-only (no claim, no outbox, no credentials): the plot bot pipeline shows it after
`curate`, and people check the queue before un-suspending the CronJob. The chart shows every
pending plot's weighted length against X's 280 limit, so long plots (threads, skips) stand out.
"""
from __future__ import annotations

import random

from reelworks.reports import Report, code, escape
from reelworks.tweeter.compose import compose
from reelworks.tweeter.ledger import Ledger
from reelworks.tweeter.publish import pending_items, sibling, usable_items
from reelworks.tweeter.text import MAX_WEIGHTED_LENGTH, weighted_length


def preview(queue_uri: str, output_uri: str | None = None, n: int = 5, ledger_uri: str | None = None,
            order: str = "oldest", seed: int | None = None, overflow: str = "thread", max_thread: int = 3,
            max_hashtags: int = 3) -> Report:
    items, bad = usable_items(queue_uri)
    records = Ledger(ledger_uri or sibling(queue_uri, "ledger")).snapshot()
    pending = pending_items(items, {pid for pid, rec in records.items() if rec.done or rec.claims})
    if order == "random":
        # The same sequence of picks publish makes with this seed, as long as nothing else changes.
        upcoming, rest = [], list(pending)
        while rest and len(upcoming) < n:
            upcoming.append(choice := random.Random(seed).choice(rest))
            rest.remove(choice)
    else:
        upcoming = pending[:n]
    compositions = {item.id: compose(item, overflow=overflow, max_thread=max_thread, max_hashtags=max_hashtags)
                    for item in pending}

    report = Report("Tweet queue")
    skips = sum(1 for c in compositions.values() if c.skipped)
    threads = sum(1 for c in compositions.values() if c.is_thread)
    report.text(f"{len(pending)} plot(s) waiting in {code(queue_uri)} ({len(items) - len(pending)} published or "
                f"in progress, {len(bad)} malformed line(s)); {threads} would go out as threads, "
                f"{skips} would be skipped.")
    report.metric("queue_depth", len(pending))
    report.metric("would_skip", skips)
    report.metric("threads", threads)
    if pending:
        lengths = [max(weighted_length(t) for t in c.texts) if c.texts else 0 for c in compositions.values()]
        cap = MAX_WEIGHTED_LENGTH * (max_thread + 1)  # one outlier must not squash the chart
        singles = [min(weighted_length(f"{i.title}\n\n{i.plot}"), cap) for i in pending]
        with report.figure("lengths", "Weighted length (X's count) of each pending plot's title and plot "
                                      "(longer ones in the last bin); over 280 it becomes a thread or "
                                      "is skipped") as ax:
            ax.hist(singles, bins=28, range=(0, cap), color="#4c72b0")
            ax.axvline(MAX_WEIGHTED_LENGTH, color="#c44e52", linestyle="--", label="280")
            ax.set_xlabel("weighted characters")
            ax.set_ylabel("plots")
            ax.legend()
        report.metric("longest_tweet", max(lengths))
    report.heading(f"Next {len(upcoming)}")
    # Titles, plots and image paths come from the queue (generated text): escaped, so they show
    # as written and cannot add links, headings or HTML to the report.
    for rank, item in enumerate(upcoming, 1):
        composition = compositions[item.id]
        heading = f"**{rank}. {escape(item.title)}** ({code(item.id)})"
        if composition.skipped:
            report.text(f"{heading}: skipped: {escape(composition.skipped)}")
            continue
        report.text(heading + (f", image {code(item.image)}" if item.image else ""))
        for text in composition.texts:
            report.text(escape(text))  # its paragraphs (title, plot, hashtags) render as paragraphs
            report.text(f"_{weighted_length(text)} / {MAX_WEIGHTED_LENGTH} weighted characters_")
    if output_uri:
        report.save(output_uri)
    return report
