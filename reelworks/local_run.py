"""Quiet `kfp.local` runs: one line per step, each step's output in its own log file, and at
the end the things a person opens (reports, galleries, videos), by absolute path and in one
`index.html` per run.

kfp.local runs every step as a subprocess and streams its output (plus its own banners and
a dump of every step's inputs and outputs) through `print` and `logging` to stdout; it has no
option to send that anywhere else. So for the length of a run `sys.stdout` and `sys.stderr`
are a `_RoutedStream`, which writes what a step's thread prints to that step's log and the
rest (kfp's banners, warnings) to the run's log; `kfp.local`'s one function that runs a step
(`task_dispatcher.run_single_task_implementation`, called by both of its orchestrators) is
wrapped to say which step the thread is running, to time it and to keep its outputs.

A run's folder (`<pipeline root>/<pipeline>-<time>/`, named by kfp) then holds:

    logs/run.log                       kfp's own lines
    logs/<step>.log                    a step's output (for-loop-N-iteration-I/<step>.log in a loop)
    index.html                         every step with its status, time, log, reports and videos
"""
from __future__ import annotations

import builtins
import contextlib
import html
import io
import logging
import os
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, TextIO
from urllib.parse import quote

# Colour and cursor codes (kfp colours step names and statuses; progress bars move the cursor).
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
# The folders kfp.local gives each iteration of a ParallelFor.
_ITERATION = re.compile(r"for-loop-\d+-iteration-(\d+)")
# What a person opens, inside a step's output artifacts.
VIDEO_SUFFIXES = (".mp4",)
PAGE_SUFFIXES = (".html",)


def strip_ansi(text: str) -> str:
    return ANSI_ESCAPE.sub("", text)


@dataclass
class Step:
    """One finished step: its folder under the run, how it went, and what it made."""
    folder: Path  # relative to the run folder, e.g. `song-timing` or `for-loop-1-iteration-0/detect-shots`
    log: Path
    ok: bool = False
    seconds: float = 0.0
    outputs: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        """`detect-shots [1]` for a ParallelFor's second iteration (the folders between are kfp's)."""
        iterations = [m.group(1) for part in self.folder.parts[:-1] if (m := _ITERATION.fullmatch(part))]
        return self.folder.name + (f" [{'.'.join(iterations)}]" if iterations else "")


@dataclass
class Opened:
    """A file a person opens: `kind` is report or video."""
    kind: str
    step: Step
    path: Path


class _RoutedStream(io.TextIOBase):
    """What `sys.stdout`/`sys.stderr` become during a run: text written by a thread that runs a
    step goes to that step's log, the rest to the run's log; with `echo` (--verbose) all of it
    is shown as well, colour codes dropped unless `echo` is a terminal."""

    def __init__(self, run_log: TextIO, echo: TextIO | None, echo_lock: threading.Lock):
        self.run_log = run_log
        self.echo = echo
        self.echo_colours = bool(echo is not None and getattr(echo, "isatty", lambda: False)())
        self.lock = echo_lock
        self.current = threading.local()

    def write(self, text: str) -> int:
        target = getattr(self.current, "log", None) or self.run_log
        target.write(strip_ansi(text))
        if self.echo is not None:
            with self.lock:
                self.echo.write(text if self.echo_colours else strip_ansi(text))
        return len(text)

    def flush(self) -> None:
        target = getattr(self.current, "log", None) or self.run_log
        target.flush()
        if self.echo is not None:
            self.echo.flush()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False


class LocalRun:
    """Runs one pipeline function under `kfp.local` quietly (see the module docstring).

    `out` gets a line per finished step (then `summary()` says what the run made); `verbose`
    also shows everything kfp and the steps print, as before.
    """

    def __init__(self, pipeline: str, out: TextIO, verbose: bool = False):
        self.pipeline = pipeline
        self.out = out
        self.verbose = verbose
        self.run_folder: Path | None = None
        self.steps: list[Step] = []
        self.started = time.monotonic()
        self.seconds = 0.0
        self._run_log = io.StringIO()  # kfp names the run folder only when the first step starts
        self._lock = threading.Lock()
        self._stream = _RoutedStream(self._run_log, out if verbose else None, self._lock)

    # ------------------------------------------------------------------ running

    @contextlib.contextmanager
    def capturing(self) -> Iterator[None]:
        """Route all output of the run (this process's and its steps') as the docstring says;
        the steps do not each say that metrics are not pushed (`metrics.QUIET_UNCONFIGURED_ENV`)."""
        from kfp.local import task_dispatcher

        from reelworks.metrics import QUIET_UNCONFIGURED_ENV

        run_step = task_dispatcher.run_single_task_implementation
        quiet_metrics = os.environ.get(QUIET_UNCONFIGURED_ENV)
        os.environ[QUIET_UNCONFIGURED_ENV] = "1"
        root = logging.getLogger()
        handlers, stdout, stderr = root.handlers[:], sys.stdout, sys.stderr
        # kfp.local indents step logs by swapping `builtins.print`; ParallelFor iterations run in
        # threads whose swaps interleave, which can leave print swapped after the run.
        plain_print = builtins.print
        quiet_handler = logging.StreamHandler(self._stream)
        quiet_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
        task_dispatcher.run_single_task_implementation = self._wrap(run_step)
        sys.stdout = sys.stderr = self._stream
        root.handlers = [quiet_handler]
        try:
            yield
        finally:
            task_dispatcher.run_single_task_implementation = run_step
            if quiet_metrics is None:
                os.environ.pop(QUIET_UNCONFIGURED_ENV, None)
            sys.stdout, sys.stderr = stdout, stderr
            root.handlers = handlers
            builtins.print = plain_print
            self.seconds = time.monotonic() - self.started
            self._write_run_log()

    def _wrap(self, run_step):
        from kfp.local.status import Status

        def run_step_logged(**kwargs):
            pipeline_resource_name = kwargs["pipeline_resource_name"]
            # kfp's own naming: <pipeline root>/<run>[/<for-loop iteration>...]/<component minus "comp-">
            task = kwargs["component_name"].removeprefix("comp-")
            relative = Path(pipeline_resource_name, task)
            with self._lock:
                if self.run_folder is None:
                    self.run_folder = Path(kwargs["pipeline_root"]) / relative.parts[0]
            folder = Path(*relative.parts[1:])
            step = Step(folder, (self.run_folder / "logs" / folder).with_name(f"{folder.name}.log"))
            step.log.parent.mkdir(parents=True, exist_ok=True)
            started = time.monotonic()
            with open(step.log, "a", encoding="utf-8", buffering=1) as log:
                self._stream.current.log = log
                try:
                    outputs, status = run_step(**kwargs)
                finally:
                    self._stream.current.log = None
            step.ok = status == Status.SUCCESS
            step.seconds = time.monotonic() - started
            step.outputs = outputs or {}
            with self._lock:
                self.steps.append(step)
                self.out.write(f"  {step.name:<36} {'ok' if step.ok else 'FAILED':<7}{step.seconds:7.1f} s\n")
                self.out.flush()
            return outputs, status

        return run_step_logged

    def _write_run_log(self) -> None:
        if self.run_folder is not None:
            log = self.run_folder / "logs" / "run.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text(self._run_log.getvalue(), encoding="utf-8")

    # ------------------------------------------------------------------ results

    @property
    def failed(self) -> list[Step]:
        return [s for s in self.steps if not s.ok]

    def failure(self, kfp_message: str) -> str:
        """The first failed step and its cause, for one `error:` line (`kfp_message`, kfp's
        "Inner task failed", only when no step failed)."""
        if not self.failed:
            first = strip_ansi(kfp_message).strip().splitlines()
            return f"pipeline {self.pipeline!r} failed" + (f": {first[0]}" if first else "")
        step = self.failed[0]
        cause = step_error(step.log.read_text(encoding="utf-8", errors="replace"))
        return f"pipeline {self.pipeline!r} failed at step {step.name}: {cause} (log: {step.log})"

    def summary(self, shown: Callable[[Path], str] = str) -> list[str]:
        """What a finished run made, a line each, then its logs and its index (written by
        `write_index`); `shown` turns a local path into what to print (an s3:// URI)."""
        opened = self.opened()
        lines = [f"pipeline {self.pipeline} finished in {self.seconds:.0f} s ({len(self.steps)} steps)"
                 + (", made:" if opened else "")]
        lines += [f"  {item.kind:<7}{item.step.name:<30} {shown(item.path)}" for item in opened]
        if self.run_folder is not None:
            lines += [f"logs:  {shown(self.run_folder / 'logs')}/", f"index: {shown(self.run_folder / 'index.html')}"]
        return lines

    def opened(self) -> list[Opened]:
        """The reports and videos of every step, in the order the steps finished."""
        found = []
        for step in self.steps:
            found += [Opened(kind, step, path) for kind, path in _step_files(step)]
        return found

    def write_index(self) -> Path | None:
        """index.html in the run folder: every step, its log, its reports and its videos."""
        if self.run_folder is None:
            return None
        folder = self.run_folder

        def link(path: Path, text: str) -> str:
            return f'<a href="{quote(path.relative_to(folder).as_posix())}">{html.escape(text)}</a>'

        rows = []
        for step in self.steps:
            cells = []
            for kind, path in _step_files(step):
                relative = path.relative_to(folder / step.folder).as_posix()
                if kind == "video":
                    src = quote(path.relative_to(folder).as_posix())
                    cells.append(f'<figure><video src="{src}" controls muted loop preload="metadata"></video>'
                                 f"<figcaption>{link(path, relative)}</figcaption></figure>")
                else:
                    cells.append(f"<div>{kind}: {link(path, relative)}</div>")
            status = "ok" if step.ok else "FAILED"
            rows.append(f'<tr class="{status.lower()}"><td>{html.escape(step.name)}</td><td>{status}</td>'
                        f"<td>{step.seconds:.1f} s</td><td>{link(step.log, 'log')}</td><td>{''.join(cells)}</td></tr>")
        title = folder.name  # <pipeline>-<time>, as kfp names the run
        outcome = "finished" if not self.failed else f"failed at {html.escape(self.failed[0].name)}"
        style = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}"
                 "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;"
                 "vertical-align:top}tr.failed td{background:#fde8e8}video{width:240px;max-width:100%;display:block}"
                 "figure{margin:0 0 .5em}figcaption{color:#666;font-size:.9em}")
        page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
                f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>"
                f"<p>Pipeline <b>{html.escape(self.pipeline)}</b> {outcome} in {self.seconds:.0f} s, "
                f"{len(self.steps)} steps. {link(folder / 'logs' / 'run.log', 'kfp log')}</p>"
                "<table><thead><tr><th>step</th><th>status</th><th>time</th><th>log</th><th>opens</th></tr></thead>"
                f"<tbody>{''.join(rows)}</tbody></table></body></html>")
        index = folder / "index.html"
        index.write_text(page, encoding="utf-8")
        return index


def _step_files(step: Step) -> list[tuple[str, Path]]:
    """(kind, path) of a step's reports and videos: `.html` pages and `.mp4` videos inside its
    output artifacts, and its KFP HTML report unless one of those pages has the same bytes
    (most steps save their report beside their data and hand the same one to the KFP UI);
    a step without any page shows its KFP Markdown report."""
    pages, videos, kfp_html, kfp_markdown = [], [], [], []
    for artifact in step.outputs.values():
        uri = getattr(artifact, "uri", None)
        if not uri:
            continue  # a parameter output
        path = Path(uri)
        kind = getattr(artifact, "schema_title", "")
        if path.is_file():
            if kind == "system.HTML":
                kfp_html.append(path)
            elif kind == "system.Markdown":
                kfp_markdown.append(path)
            elif path.suffix in PAGE_SUFFIXES:
                pages.append(path)
            elif path.suffix in VIDEO_SUFFIXES:
                videos.append(path)
        elif path.is_dir():
            for file in sorted(path.rglob("*")):
                if file.suffix in PAGE_SUFFIXES:
                    pages.append(file)
                elif file.suffix in VIDEO_SUFFIXES:
                    videos.append(file)
    page_bytes = {p.read_bytes() for p in pages}
    pages += [p for p in kfp_html if p.read_bytes() not in page_bytes]
    if not pages:
        pages = kfp_markdown
    return [("report", p) for p in pages] + [("video", v) for v in videos]


# The line a traceback ends with: `package.module.SomeError: message`.
_EXCEPTION_LINE = re.compile(r"^(?P<type>[A-Za-z_][\w.]*): (?P<message>.*)$")
# kfp.local's own log lines around a step's output: `08:19:20.473 - INFO - Executing task ...`.
_KFP_LINE = re.compile(r"^\d\d:\d\d:\d\d\.\d+ - [A-Z]+ - ")


def step_error(log: str) -> str:
    """The cause of a failed step, from its log: the last `error: ...` line a reelworks command
    printed, else the exception its last traceback ended with (a `ReelworksError`'s message
    alone), else the log's last line."""
    lines = [strip_ansi(line).strip() for line in log.splitlines()]
    errors = [line for line in lines if line.startswith("error: ")]
    if errors:
        return errors[-1].removeprefix("error: ")
    tracebacks = [i for i, line in enumerate(lines) if line == "Traceback (most recent call last):"]
    if tracebacks:
        raw = log.splitlines()
        indent = len(raw[tracebacks[-1]]) - len(raw[tracebacks[-1]].lstrip())
        for line in raw[tracebacks[-1] + 1:]:
            if line.strip() and len(line) - len(line.lstrip()) == indent:
                match = _EXCEPTION_LINE.match(strip_ansi(line).strip())
                if match and match["type"].startswith("reelworks.errors."):
                    return match["message"]
                return strip_ansi(line).strip()
    # No message of its own (killed, out of memory): its last line that is not kfp's.
    own = [line for line in lines if line and not _KFP_LINE.match(line) and not line.startswith("---")]
    return own[-1] if own else "it exited with an error and printed nothing"
