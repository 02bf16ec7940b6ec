"""Helpers shared by the film tests (imported by name: tests/films is on sys.path)."""
from __future__ import annotations

from cli_helpers import run_cli  # noqa: F401  (re-exported for the film tests)


def all_frame_times(path) -> list[float]:
    """Every frame's presentation time (from the packets: the ground truth for seeking)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        start = stream.start_time or 0
        times = sorted(float((p.pts - start) * stream.time_base) for p in container.demux(stream)
                       if p.pts is not None)
    return times
