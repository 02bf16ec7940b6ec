"""Kubeflow component of the tweeter. Publishing itself runs as the chart's CronJob, not in a
pipeline; this read-only preview lets a pipeline (e.g. plotbot after `curate`) show the next
tweets exactly as they will go out (KFP ships only the function source: imports go inside)."""
from kfp.dsl import HTML, Markdown, Metrics, Output

from reelworks.kubeflow import component


@component("cpu")
def preview(queue_uri: str, report_md: Output[Markdown], report_html: Output[HTML], metrics: Output[Metrics],
            n: int = 5, overflow: str = "thread", max_thread: int = 3):
    """The next `n` tweets of the queue, their weighted lengths, and the queue depth."""
    from reelworks.tweeter.preview import preview as run

    report = run(queue_uri, n=n, overflow=overflow, max_thread=max_thread)
    report.to_kfp(markdown=report_md, html_output=report_html, metrics=metrics)
