"""Reading and writing video with PyAV (FFmpeg's libraries), shared by every workflow.

Three things, kept small:

- `probe(path)`: what a file holds (size, frame rate, duration, codec, keyframe index).
- `frames_at(path, times)`: the frame closest to each time, found by *seeking* to the
  keyframe before it and decoding forward, so sampling one frame every few seconds decodes
  a small fraction of a film. Times are presentation timestamps (variable frame rate safe).
- `write_video(path, frames, fps)`: H.264 (or any FFmpeg encoder) from numpy frames.

Files FFmpeg cannot read (not a video, empty, unknown codec) raise `ReelworksError` with
one line. A damaged film does not stop `frames_at`: frames that cannot be decoded come
back as `SampledFrame(image=None, error=...)` so callers can report the bad region.
"""
from __future__ import annotations

import logging
import math
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from reelworks.errors import ReelworksError

log = logging.getLogger(__name__)

# Seeking lands on the keyframe at or before the requested timestamp; in MP4 the index
# holds decode timestamps, so a keyframe can present a few frames after the seek target.
# When that happens we seek again this much earlier (doubling), a handful of times.
_RESEEK_MARGIN_S = 0.5
_RESEEK_TRIES = 5
# Far before a target, frames nothing else refers to (B-frames) need not be decoded at all:
# the decoder skips them (FFmpeg's skip_frame=nonref) until this close to the target.
SKIP_NONREF_BEFORE_S = 0.5


@dataclass(frozen=True)
class VideoInfo:
    path: str
    codec: str
    width: int
    height: int
    fps: float  # the stream's nominal (average) rate; frames may still be irregular (VFR)
    duration_s: float
    frames: int  # as the container declares it (0 when unknown)
    start_s: float  # presentation time of the first frame; `time_s` values are relative to it
    keyframes_s: tuple[float, ...] = field(default=(), repr=False)  # from the index, when it has one

    @property
    def frame_period_s(self) -> float:
        return 1.0 / self.fps if self.fps > 0 else 0.04


@dataclass
class SampledFrame:
    """The frame chosen for one target time (or why there is none)."""

    target_s: float
    time_s: float | None = None  # presentation time of the frame, relative to the film's start
    image: np.ndarray | None = None  # HxWx3 RGB uint8, or HxW for gray
    keyframe: bool = False
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.image is not None


# --------------------------------------------------------------------------- opening


def _av():
    import av

    av.logging.set_level(av.logging.PANIC)  # decoder chatter on damaged files; we report it ourselves
    return av


@contextmanager
def open_video(path: str | os.PathLike) -> Iterator[tuple[object, object]]:
    """(container, video stream) of a local file, or one clear `ReelworksError`."""
    av = _av()
    path = Path(path)
    if not path.is_file():
        raise ReelworksError(f"not found: {path}")
    if path.stat().st_size == 0:
        raise ReelworksError(f"{path.name} is empty (0 bytes), not a video")
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.error.InvalidDataError, av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise ReelworksError(f"{path.name} is not a video FFmpeg can read ({_reason(exc)})") from None
    try:
        if not container.streams.video:
            raise ReelworksError(f"{path.name} has no video stream")
        stream = container.streams.video[0]
        if stream.codec_context is None:
            tag = getattr(stream, "codec_tag", "") or "unknown"
            raise ReelworksError(f"{path.name}: unsupported video codec ({tag}): this FFmpeg has no decoder for it")
        stream.thread_type = "AUTO"  # frame + slice threads: decoding is the cost here
        yield container, stream
    finally:
        container.close()


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return str(text).strip().splitlines()[0][:120]


def _start_pts(stream) -> int:
    return stream.start_time if stream.start_time is not None else 0


def probe(path: str | os.PathLike) -> VideoInfo:
    """What a video file holds, from its headers and index (nothing is decoded)."""
    with open_video(path) as (container, stream):
        return _info(path, container, stream)


def _info(path, container, stream) -> VideoInfo:
    tb = stream.time_base
    start = _start_pts(stream)
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else 0.0
    if stream.duration is not None and tb:
        duration = float(stream.duration * tb)
    elif container.duration is not None:
        duration = container.duration / 1_000_000
    else:
        duration = 0.0
    keyframes: tuple[float, ...] = ()
    try:
        keyframes = tuple(float((e.timestamp - start) * tb) for e in stream.index_entries if e.is_keyframe)
    except Exception:  # an index is an optimisation; some demuxers build none
        keyframes = ()
    return VideoInfo(path=str(path), codec=stream.codec_context.name, width=stream.codec_context.width,
                     height=stream.codec_context.height, fps=fps, duration_s=duration, frames=stream.frames or 0,
                     start_s=float(start * tb) if tb else 0.0, keyframes_s=keyframes)


# --------------------------------------------------------------------------- sampling


def sample_times(duration_s: float, every_s: float) -> list[float]:
    """0, every, 2*every, ... before the end (the moviegoer's one-frame-every-N-seconds).

    The film's last frame ends at `duration_s`, so a target there has no frame of its own
    (FFmpeg's fps filter stops before it too); an unknown duration (0) still gives t=0.
    """
    if every_s <= 0:
        raise ReelworksError(f"--every must be positive, got {every_s}")
    count = max(1, int(math.ceil(max(duration_s, 0.0) / every_s - 1e-9)))
    return [round(i * every_s, 6) for i in range(count)]


def frames_at(path: str | os.PathLike, times: Sequence[float], *, size: tuple[int, int] | None = None,
              gray: bool = False) -> Iterator[SampledFrame]:
    """The frame closest to each time in `times` (seconds from the film's first frame).

    For each target, seek to the keyframe before it (unless the decoder is already between
    that keyframe and the target) and decode forward to the first frame presented at or
    after `target - half a frame period`, keeping the closer of it and the frame before.
    Only the chosen frames are converted (`size=(w, h)` and `gray` use FFmpeg's scaler).
    """
    with open_video(path) as (container, stream):
        info = _info(path, container, stream)
        yield from _Sampler(container, stream, info, size, gray).run(sorted(times))


class _Sampler:
    def __init__(self, container, stream, info: VideoInfo, size, gray):
        self.container, self.stream, self.info = container, stream, info
        self.tb = stream.time_base
        self.start = _start_pts(stream)
        self.half_period = info.frame_period_s / 2
        self.size, self.gray = size, gray
        self.frames = None  # the live decode iterator, positioned after `self.last`
        self.last = None  # (time_s, av frame) most recently decoded
        self.decoded = 0  # frames decoded in total (the cost, for benchmarks)
        self.seeks = 0
        self.skip_before = None  # decode only reference frames before this time (s)
        self._skipping = False

    def _time(self, frame) -> float | None:
        pts = frame.pts if frame.pts is not None else frame.dts
        return None if pts is None else float((pts - self.start) * self.tb)

    def _keyframe_before(self, t: float) -> float | None:
        keys = self.info.keyframes_s
        if not keys:
            return None
        import bisect

        i = bisect.bisect_right(keys, t) - 1
        return keys[i] if i >= 0 else keys[0]

    def _should_seek(self, target: float) -> bool:
        if self.frames is None or self.last is None:
            return True
        last_t = self.last[0]
        if last_t >= target - self.half_period:
            return True  # already past it (targets closer than a frame, or a re-seek)
        key = self._keyframe_before(target)
        # Decoding on from here is never slower than restarting at a keyframe we already passed.
        return key is None or key > last_t

    def _seek(self, t: float) -> None:
        pts = self.start + int(max(t, 0.0) / self.tb)
        self.container.seek(pts, stream=self.stream, backward=True, any_frame=False)
        self.seeks += 1
        self.frames = self._decode()
        self.last = None

    def _decode(self) -> Iterator:
        av = _av()
        context = self.stream.codec_context
        for packet in self.container.demux(self.stream):
            if SKIP_NONREF_BEFORE_S is not None and packet.pts is not None and self.skip_before is not None:
                skip = float((packet.pts - self.start) * self.tb) < self.skip_before
                if skip != self._skipping:
                    context.skip_frame = "NONREF" if skip else "DEFAULT"
                    self._skipping = skip
            try:
                for frame in packet.decode():
                    self.decoded += 1
                    yield frame
            except av.error.FFmpegError as exc:  # a damaged packet: skip it, keep going
                log.debug("decode error at packet pts=%s: %s", packet.pts, exc)
                self.errors.append(_reason(exc))

    def _convert(self, frame) -> np.ndarray:
        fmt = "gray" if self.gray else "rgb24"
        w, h = self.size or (frame.width, frame.height)
        return frame.reformat(width=w, height=h, format=fmt).to_ndarray()

    def run(self, targets: list[float]) -> Iterator[SampledFrame]:
        self.errors: list[str] = []
        for target in targets:
            yield self._one(target)

    def _one(self, target: float) -> SampledFrame:
        av = _av()
        margin = 0.0
        if SKIP_NONREF_BEFORE_S is not None:
            self.skip_before = target - SKIP_NONREF_BEFORE_S
        for _ in range(_RESEEK_TRIES):
            try:
                if self._should_seek(target) or margin:
                    self._seek(target - self.half_period - margin)
                chosen = self._advance(target)
            except av.error.FFmpegError as exc:
                self.frames = None
                return SampledFrame(target, error=_reason(exc))
            if chosen is None:
                self.frames = None
                reason = self.errors[-1] if self.errors else "no decodable frame (end of stream or damaged data)"
                return SampledFrame(target, error=reason)
            t, frame, was_first = chosen
            # The seek landed after the target (keyframe presented late, or a damaged index):
            # go back further, unless this is the film's very first frame.
            if was_first and t > target + self.half_period and t > self.half_period and margin < target:
                margin = max(margin * 2, _RESEEK_MARGIN_S)
                continue
            return SampledFrame(target, time_s=t, image=self._convert(frame), keyframe=bool(frame.key_frame))
        return SampledFrame(target, time_s=t, image=self._convert(frame), keyframe=bool(frame.key_frame))

    def _advance(self, target: float):
        """Decode to the first frame at or after target - half a period; the closer of it and the one before."""
        previous = self.last
        first_after_seek = previous is None
        for frame in self.frames:
            t = self._time(frame)
            if t is None:
                continue
            self.last = (t, frame)
            if t >= target - self.half_period:
                if previous is not None and abs(previous[0] - target) < abs(t - target):
                    return previous[0], previous[1], False
                return t, frame, first_after_seek
            previous = self.last
            first_after_seek = False
        # End of stream: the last frame still counts if it is within a period of the target.
        if previous is not None and abs(previous[0] - target) <= 2 * self.half_period:
            return previous[0], previous[1], False
        return None


def iter_frames(path: str | os.PathLike, *, size: tuple[int, int] | None = None,
                gray: bool = False) -> Iterator[tuple[float, np.ndarray]]:
    """Every frame in order as (time_s, image): for whole-film passes that need them all."""
    with open_video(path) as (container, stream):
        start, tb = _start_pts(stream), stream.time_base
        fmt = "gray" if gray else "rgb24"
        for frame in container.decode(stream):
            w, h = size or (frame.width, frame.height)
            pts = frame.pts if frame.pts is not None else 0
            yield float((pts - start) * tb), frame.reformat(width=w, height=h, format=fmt).to_ndarray()


# --------------------------------------------------------------------------- writing


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float | Fraction = 24, *,
                codec: str = "libx264", crf: int = 23, keyframe_interval_s: float | None = None,
                scene_cut_keyframes: bool = True, preset: str = "veryfast",
                pix_fmt: str = "yuv420p") -> Path:
    """Encode RGB (HxWx3) or gray (HxW) uint8 frames to a video file; returns the path.

    `keyframe_interval_s` caps the GOP (streaming encodes use ~2 s); x264 still adds
    keyframes at scene cuts unless `scene_cut_keyframes=False`. Width and height must be even
    for yuv420p. The file is written in place; wrap in `storage.output_file` for atomicity.
    """
    av = _av()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), mode="w") as container:
        stream = None
        for image in frames:
            image = np.ascontiguousarray(image)
            if stream is None:
                height, width = image.shape[:2]
                if codec in ("libx264", "libx265", "h264", "hevc") and (width % 2 or height % 2):
                    raise ReelworksError(f"{codec} needs even frame sizes, got {width}x{height}")
                stream = container.add_stream(codec, rate=rate)
                stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
                options = {}
                if codec in ("libx264", "libx265"):
                    options = {"crf": str(crf), "preset": preset}
                    params = []
                    if keyframe_interval_s:
                        gop = max(1, round(float(rate) * keyframe_interval_s))
                        params.append(f"keyint={gop}")
                    if not scene_cut_keyframes:
                        params.append("scenecut=0")
                    if params:
                        options[f"{codec[3:]}-params"] = ":".join(params)
                elif keyframe_interval_s:
                    stream.codec_context.gop_size = max(1, round(float(rate) * keyframe_interval_s))
                stream.options = options
            fmt = "gray" if image.ndim == 2 else "rgb24"
            frame = av.VideoFrame.from_ndarray(image, format=fmt)
            for packet in stream.encode(frame):
                container.mux(packet)
        if stream is None:
            raise ReelworksError(f"no frames to write to {path.name}")
        for packet in stream.encode():
            container.mux(packet)
    return path
