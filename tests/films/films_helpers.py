"""Helpers shared by the film tests (imported by name: tests/films is on sys.path)."""
from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout



def run_cli(*args: str) -> tuple[int, str]:
    """Run `reelworks ARGS` in-process; (exit code, stdout + stderr)."""
    from reelworks.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with redirect_stdout(out), redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return code, out.getvalue() + err.getvalue()


def all_frame_times(path) -> list[float]:
    """Every frame's presentation time (from the packets: the ground truth for seeking)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        start = stream.start_time or 0
        times = sorted(float((p.pts - start) * stream.time_base) for p in container.demux(stream)
                       if p.pts is not None)
    return times
