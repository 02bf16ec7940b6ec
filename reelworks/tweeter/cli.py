"""`reelworks tweeter ...`: one command per step, each a thin shell over the library."""
import json
from typing import Optional

import typer

import reelworks.tweeter

app = typer.Typer(help=reelworks.tweeter.__doc__, no_args_is_help=True)

QueueOption = typer.Option(..., "--queue", help="The tweet queue (JSON Lines) that `plots curate` fills: path or s3:// URI.")
LedgerOption = typer.Option(None, help="Ledger prefix (default: `ledger/` next to the queue).")
OrderOption = typer.Option("oldest", help="Which plot goes next: oldest (queue order) or random.")
SeedOption = typer.Option(None, help="Seed for --order random (same queue and seed: same pick).")


@app.command()
def publish(queue: str = QueueOption,
            dry_run: bool = typer.Option(False, "--dry-run", help="Write the exact tweet to the outbox instead of "
                                                                   "posting; needs no credentials, leaves the real ledger alone."),
            outbox: Optional[str] = typer.Option(None, help="Dry-run outbox prefix (default: `outbox/` next to the queue)."),
            not_before: Optional[str] = typer.Option(None, help="Wait until this time before publishing: ISO 8601 "
                                                                "(2026-11-21T18:00:00Z) or a UTC time of day (18:00)."),
            ledger: Optional[str] = LedgerOption,
            order: str = OrderOption,
            seed: Optional[int] = SeedOption,
            overflow: str = typer.Option("thread", help="A plot over 280 weighted characters: thread or skip."),
            max_thread: int = typer.Option(3, help="Longest thread --overflow thread may post."),
            max_hashtags: int = typer.Option(3, help="Hashtags from the plot's genres and keywords, as many as fit."),
            claim_ttl: float = typer.Option(1800, help="Seconds after which an unconfirmed claim is reconciled by the next run."),
            max_rate_limit_wait: float = typer.Option(900, help="Longest wait for an X rate-limit reset, in seconds."),
            retries: int = typer.Option(4, help="Retries on network errors and X 5xx, with exponential backoff."),
            timeout: float = typer.Option(30, help="Seconds per HTTP request to X."),
            allow_no_image: bool = typer.Option(False, "--allow-no-image",
                                                help="Post the text alone when the plot's image is missing or "
                                                     "X refuses it (default: post nothing, keep the plot queued).")) -> None:
    """Publish the next queued plot to X, exactly once (env X_API_KEY, X_API_SECRET, X_ACCESS_TOKEN,
    X_ACCESS_TOKEN_SECRET). Exit 0: published or nothing to do; 2: fix something; 75: try again later."""
    from reelworks.tweeter.publish import PublishOptions, parse_not_before
    from reelworks.tweeter.publish import publish as run_publish

    options = PublishOptions(ledger=ledger, outbox=outbox, dry_run=dry_run, order=order, seed=seed,
                             not_before=parse_not_before(not_before) if not_before else None,
                             overflow=overflow, max_thread=max_thread, max_hashtags=max_hashtags,
                             claim_ttl=claim_ttl, max_rate_limit_wait=max_rate_limit_wait, retries=retries,
                             timeout=timeout, allow_no_image=allow_no_image)
    result = run_publish(queue, options)
    # Malformed queue lines and skipped plots are logged (stderr) where they are found.
    for plot_id in result.reconciled:
        typer.echo(f"confirmed plot {plot_id}: an earlier run had posted it")
    if result.outcome == "published" and result.dry_run:
        for text in result.texts:
            typer.echo(f"--- dry run: would post ---\n{text}")
    typer.echo(result.message or f"{result.outcome}")
    untouched = f" (dry run; the real queue still holds {result.real_queue_depth})" if result.dry_run else ""
    typer.echo(f"queue depth: {result.queue_depth}{untouched}")


@app.command()
def status(queue: str = QueueOption, ledger: Optional[str] = LedgerOption,
           dry_run: bool = typer.Option(False, "--dry-run", help="Show the dry-run ledger (in the outbox) instead."),
           outbox: Optional[str] = typer.Option(None, help="With --dry-run: the outbox (default: `outbox/` next to the queue)."),
           order: str = OrderOption, seed: Optional[int] = SeedOption,
           as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text.")) -> None:
    """Queue depth, the last published plot and tweet id, and the next plot up."""
    from reelworks.tweeter.publish import sibling
    from reelworks.tweeter.status import queue_status

    if dry_run:
        ledger = ledger or f"{(outbox or sibling(queue, 'outbox')).rstrip('/')}/ledger"
    result = queue_status(queue, ledger_uri=ledger, order=order, seed=seed)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=1, ensure_ascii=False))
    else:
        typer.echo("\n".join(result.lines()))


@app.command()
def preview(queue: str = QueueOption,
            output: Optional[str] = typer.Option(None, "--output", "-o", help="Where to save the report (report.md, "
                                                                            "report.html, lengths.png)."),
            n: int = typer.Option(5, "--n", help="How many upcoming tweets to show."),
            ledger: Optional[str] = LedgerOption, order: str = OrderOption, seed: Optional[int] = SeedOption,
            overflow: str = typer.Option("thread", help="As for publish: thread or skip."),
            max_thread: int = typer.Option(3, help="As for publish.")) -> None:
    """Show the next tweets exactly as publish would post them (read-only, no credentials)."""
    from reelworks.tweeter.preview import preview as run_preview

    report = run_preview(queue, output, n=n, ledger_uri=ledger, order=order, seed=seed, overflow=overflow,
                         max_thread=max_thread)
    typer.echo(report.to_markdown())
