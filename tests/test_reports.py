"""Reports: Markdown for the KFP UI, self-contained HTML with charts, saved to any URI."""
from __future__ import annotations

import json
from types import SimpleNamespace

from reelworks import storage
from reelworks.reports import Report


def sample_report() -> Report:
    report = Report("Plot data")
    report.text("10 movies read, 8 kept.")
    report.table(["genre", "movies"], [["Drama", 5], ["Sci|Fi", 3]])
    with report.figure("movies_per_year", "Movies per year") as ax:
        ax.bar([2000, 2001], [3, 5])
    report.metric("rows_kept", 8)
    return report


def test_markdown_and_html_render_everything():
    report = sample_report()
    md = report.to_markdown()
    assert md.startswith("# Plot data")
    assert "| Drama | 5 |" in md and "Sci\\|Fi" in md  # pipes in cells are escaped
    assert "![Movies per year](movies_per_year.png)" in md
    assert "data:image/png;base64," in report.to_markdown(embed_images=True)
    page = report.to_html()
    assert page.count("<img") == 1 and "data:image/png;base64,iVBOR" in page
    assert "<td>Sci|Fi</td>" in page


def test_save_to_s3(s3_bucket):
    sample_report().save(f"{s3_bucket}/run/report")
    keys = storage.list_keys(f"{s3_bucket}/run/report")
    assert keys == ["metrics.json", "movies_per_year.png", "report.html", "report.md"]
    assert storage.read_bytes(f"{s3_bucket}/run/report/movies_per_year.png")[:4] == b"\x89PNG"
    assert json.loads(storage.read_text(f"{s3_bucket}/run/report/metrics.json")) == {"rows_kept": 8.0}


def test_to_kfp_fills_artifacts(tmp_path):
    logged = {}
    markdown = SimpleNamespace(path=str(tmp_path / "md"))
    html_output = SimpleNamespace(path=str(tmp_path / "html"))
    metrics = SimpleNamespace(log_metric=lambda k, v: logged.__setitem__(k, v))
    sample_report().to_kfp(markdown=markdown, html_output=html_output, metrics=metrics)
    assert "data:image/png" in (tmp_path / "md").read_text()
    assert (tmp_path / "html").read_text().startswith("<!doctype html>")
    assert logged == {"rows_kept": 8.0}
