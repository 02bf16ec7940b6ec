"""Reports people look at: Markdown, self-contained HTML with charts, and scalar metrics.

A step builds one `Report` and saves it next to its outputs; its Kubeflow component also
hands the same report to the KFP UI (`Output[Markdown]`, `Output[HTML]`, `Output[Metrics]`).

    report = Report("Plot data")
    report.text("10,000 movies read, 9,412 kept.")
    report.table(["genre", "movies"], rows)
    with report.figure("movies_per_year", "Movies per year") as ax:
        ax.bar(years, counts)
    report.metric("rows_kept", 9412)
    report.save("s3://bucket/run/prep/report")
"""
from __future__ import annotations

import base64
import html
import io
import json
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, Sequence

from reelworks import storage


def _matplotlib():
    import matplotlib

    matplotlib.use("Agg")  # batch jobs have no display
    import matplotlib.pyplot as plt

    return plt


@dataclass
class Report:
    title: str
    blocks: list[tuple[str, object]] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    images: dict[str, bytes] = field(default_factory=dict)

    def text(self, markdown: str) -> None:
        self.blocks.append(("text", markdown))

    def heading(self, title: str) -> None:
        self.blocks.append(("heading", title))

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        self.blocks.append(("table", (list(headers), [list(r) for r in rows])))

    def metric(self, name: str, value: float) -> None:
        self.metrics[name] = float(value)

    def image(self, name: str, png: bytes, caption: str = "") -> None:
        self.images[f"{name}.png"] = png
        self.blocks.append(("image", (f"{name}.png", caption)))

    @contextmanager
    def figure(self, name: str, caption: str = "", size: tuple[float, float] = (8, 4), **subplots) -> Iterator[object]:
        """Draw on the axes this yields; the chart is added as a PNG."""
        plt = _matplotlib()
        fig, ax = plt.subplots(figsize=size, **subplots)
        try:
            yield ax
            fig.tight_layout()
            buffer = io.BytesIO()
            fig.savefig(buffer, format="png", dpi=110)
            self.image(name, buffer.getvalue(), caption)
        finally:
            plt.close(fig)

    # ---------------------------------------------------------------- rendering

    def to_markdown(self, embed_images: bool = False) -> str:
        lines = [f"# {self.title}", ""]
        for kind, value in self.blocks:
            if kind == "text":
                lines += [str(value), ""]
            elif kind == "heading":
                lines += [f"## {value}", ""]
            elif kind == "table":
                headers, rows = value
                lines.append("| " + " | ".join(map(str, headers)) + " |")
                lines.append("|" + "---|" * len(headers))
                lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
                lines.append("")
            elif kind == "image":
                name, caption = value
                src = _data_uri(self.images[name]) if embed_images else name
                lines += [f"![{caption or name}]({src})", ""]
        if self.metrics:
            lines += ["## Metrics", "", "| metric | value |", "|---|---|"]
            lines += [f"| {k} | {_md_cell(v)} |" for k, v in self.metrics.items()]
        return "\n".join(lines).rstrip() + "\n"

    def to_html(self) -> str:
        """One self-contained page (images inlined) for the Kubeflow UI's HTML viewer."""
        parts = [f"<h1>{html.escape(self.title)}</h1>"]
        for kind, value in self.blocks:
            if kind == "text":
                parts.append("".join(f"<p>{html.escape(p)}</p>" for p in str(value).split("\n\n")))
            elif kind == "heading":
                parts.append(f"<h2>{html.escape(str(value))}</h2>")
            elif kind == "table":
                headers, rows = value
                head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
                body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(c))}</td>" for c in row) + "</tr>"
                               for row in rows)
                parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
            elif kind == "image":
                name, caption = value
                parts.append(f'<figure><img src="{_data_uri(self.images[name])}" alt="{html.escape(name)}">'
                             f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        if self.metrics:
            rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{_cell(v)}</td></tr>" for k, v in self.metrics.items())
            parts.append(f"<h2>Metrics</h2><table>{rows}</table>")
        style = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}"
                 "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
                 "text-align:left}img{max-width:100%}figcaption{color:#666;font-size:.9em}")
        return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>"
                f"<style>{style}</style></head><body>{''.join(parts)}</body></html>")

    def save(self, prefix: str) -> None:
        """Write report.md, report.html, metrics.json and every chart below `prefix`."""
        for name, png in self.images.items():
            storage.write_bytes(storage.join(prefix, name), png)
        storage.write_text(storage.join(prefix, "metrics.json"), json.dumps(self.metrics, indent=2, sort_keys=True))
        storage.write_text(storage.join(prefix, "report.html"), self.to_html())
        storage.write_text(storage.join(prefix, "report.md"), self.to_markdown())

    def to_kfp(self, markdown=None, html_output=None, metrics=None) -> None:
        """Fill Kubeflow output artifacts (any may be None): the UI renders them inline."""
        if markdown is not None:
            with open(markdown.path, "w") as f:
                f.write(self.to_markdown(embed_images=True))
        if html_output is not None:
            with open(html_output.path, "w") as f:
                f.write(self.to_html())
        if metrics is not None:
            for name, value in self.metrics.items():
                metrics.log_metric(name, value)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e6 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _md_cell(value: object) -> str:
    return _cell(value).replace("|", "\\|").replace("\n", " ")


def _data_uri(image: bytes) -> str:
    # Galleries embed GIF previews and JPEG frames beside PNG charts: name the real type.
    kind = "gif" if image[:4] == b"GIF8" else "jpeg" if image[:3] == b"\xff\xd8\xff" else "png"
    return f"data:image/{kind};base64," + base64.b64encode(image).decode()
