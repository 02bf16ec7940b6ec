"""One media layer on PyAV (FFmpeg's libraries): probing, reading, writing video, audio, GIF.

Reading:

- `probe(path) -> MediaInfo`: what a file holds (video and audio streams, durations, frame
  and sample counts, keyframe index); nothing is decoded.
- `frames_at(path, times)`: the frame closest to each time, found by *seeking* to the
  keyframe before it and decoding forward, so sampling one frame every few seconds decodes
  a small fraction of a film. Times are presentation timestamps (variable frame rate safe).
- `iter_frames(path)`: every frame in order; `load_audio(path)`: the audio as float32.

Writing:

- `VideoWriter(path, fps, audio=..., audio_range=...)`: H.264 yuv420p MP4 with `+faststart`,
  frames pushed one at a time (memory stays flat in frame count), and an optional AAC track
  holding exactly the samples `[first, end)` of an audio file, muxed alongside the frames.
- `write_video(path, frames, fps)`: the same for an iterable; `write_gif(...)`: a looping preview.

Still images: `open_image(bytes_or_uri)` is the one way reelworks decodes an image (Pillow),
with one pixel cap (`MAX_IMAGE_PIXELS`) checked from the header before any pixel is decoded.

Sample indices (`audio_range`, `load_audio`) count decoded samples at the audio file's own
rate from its first decoded sample, so `load_audio(f, mono=False)[0][:, first:end]` is the
slice `VideoWriter(..., audio=f, audio_range=(first, end))` muxes.

Frame sizes: every frame must have the first frame's size, and H.264/H.265 in yuv420p need
even width and height; anything else is a `ReelworksError` (nothing is padded or scaled
silently). Outputs are written through `storage.output_file`: a local path or `s3://` URI
appears whole when the writer closes without error, and not at all otherwise.

Files FFmpeg cannot read (not a video/audio, empty, unknown codec) raise `ReelworksError`
with one line. A damaged film does not stop `frames_at`: frames that cannot be decoded come
back as `SampledFrame(image=None, error=...)` so callers can report the bad region.
"""
from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from reelworks import storage
from reelworks.errors import ReelworksError

log = logging.getLogger(__name__)

# Seeking lands on the keyframe at or before the requested timestamp; in MP4 the index
# holds decode timestamps, so a keyframe can present a few frames after the seek target.
# When that happens we seek again this much earlier (doubling), a handful of times.
_RESEEK_MARGIN_S = 0.5
_RESEEK_TRIES = 5
# Before a target, frames nothing else refers to (non-reference B-frames) need not be decoded:
# the decoder skips them (FFmpeg's skip_frame=nonref) until this many frame periods before the
# target. A skipped frame can only be the closest one where the film has a gap wider than
# that around the target (variable frame rate); the target is then sampled again with every
# frame decoded, so the choice stays exact. None: decode every frame.
SKIP_NONREF_FRAMES: float | None = 2.5
# Containers whose muxer understands movflags (moov atom moved first: playback starts at once).
_MOV_FORMATS = {".mp4", ".m4v", ".mov", ".m4a"}
_EVEN_CODECS = {"libx264", "libx265", "h264", "hevc", "libopenh264"}


@dataclass(frozen=True)
class VideoInfo:
    path: str
    codec: str
    width: int
    height: int
    fps: float  # the stream's nominal (average) rate; frames may still be irregular (VFR)
    duration_s: float
    frames: int  # as the container declares it; `probe` counts the packets when it declares none
    start_s: float  # presentation time of the first frame; `time_s` values are relative to it
    keyframes_s: tuple[float, ...] = field(default=(), repr=False)  # from the index, when it has one
    pix_fmt: str | None = None

    @property
    def frame_period_s(self) -> float:
        return 1.0 / self.fps if self.fps > 0 else 0.04


@dataclass(frozen=True)
class AudioInfo:
    codec: str
    sample_rate: int
    channels: int
    layout: str
    duration_s: float
    samples: int  # per channel, from the stream's duration (encoder padding excluded where the container says so)
    start_s: float


@dataclass(frozen=True)
class StreamInfo:
    index: int
    type: str  # "video", "audio", "subtitle", "data", ...
    codec: str | None
    duration_s: float | None


@dataclass(frozen=True)
class MediaInfo:
    path: str
    format: str  # the demuxer's name, e.g. "mov,mp4,m4a,3gp,3g2,mj2"
    duration_s: float  # the longest stream (the container's figure)
    video: VideoInfo | None
    audio: AudioInfo | None
    streams: tuple[StreamInfo, ...] = ()


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

    # No Python log callback at all: PyAV's (installed by any set_level(int), PANIC included)
    # still forwards FFmpeg's ERROR lines and takes the GIL to do so, from FFmpeg's own decoder
    # threads. A frame thread logging an error after a seek while this thread holds the GIL and
    # waits for it (flush, free) deadlocks; that was seen here. Errors reach us as exceptions.
    av.logging.set_level(None)
    return av


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return str(text).strip().splitlines()[0][:120]


@contextmanager
def open_media(path: str | os.PathLike, what: str = "a media file") -> Iterator[object]:
    """An input container for a local file, or one clear `ReelworksError`."""
    av = _av()
    path = Path(path)
    if not path.is_file():
        raise ReelworksError(f"not found: {path}")
    if path.stat().st_size == 0:
        raise ReelworksError(f"{path.name} is empty (0 bytes), not {what}")
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise ReelworksError(f"{path.name} is not {what} FFmpeg can read ({_reason(exc)})") from None
    try:
        yield container
    finally:
        container.close()


def _decodable(path: Path, stream, kind: str):
    if stream.codec_context is None:
        tag = getattr(stream, "codec_tag", "") or "unknown"
        raise ReelworksError(f"{path.name}: unsupported {kind} codec ({tag}): this FFmpeg has no decoder for it")
    return stream


@contextmanager
def open_video(path: str | os.PathLike) -> Iterator[tuple[object, object]]:
    """(container, video stream) of a local file, or one clear `ReelworksError`."""
    with open_media(path, "a video") as container:
        if not container.streams.video:
            raise ReelworksError(f"{Path(path).name} has no video stream")
        stream = _decodable(Path(path), container.streams.video[0], "video")
        stream.thread_type = "AUTO"  # frame + slice threads: decoding is the cost here
        yield container, stream


@contextmanager
def open_audio(path: str | os.PathLike) -> Iterator[tuple[object, object]]:
    """(container, audio stream) of a local file, or one clear `ReelworksError`."""
    with open_media(path, "audio") as container:
        if not container.streams.audio:
            raise ReelworksError(f"{Path(path).name} has no audio stream")
        yield container, _decodable(Path(path), container.streams.audio[0], "audio")


def _start_pts(stream) -> int:
    return stream.start_time if stream.start_time is not None else 0


def _stream_duration(container, stream) -> float | None:
    if stream.duration is not None and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000
    return None


def probe(path: str | os.PathLike) -> MediaInfo:
    """What a media file holds, from its headers and index (nothing is decoded).

    A file with neither a video nor an audio stream is a `ReelworksError`.
    """
    with storage.local_file(str(path)) as local, open_media(local, "a video or audio file") as container:
        video = _info(path, container, container.streams.video[0], count=True) if container.streams.video else None
        audio = _audio_info(container, container.streams.audio[0]) if container.streams.audio else None
        if video is None and audio is None:
            raise ReelworksError(f"{Path(local).name} has neither a video nor an audio stream")
        streams = tuple(StreamInfo(s.index, s.type, s.codec_context.name if s.codec_context else None,
                                   _stream_duration(container, s)) for s in container.streams)
        total = container.duration / 1_000_000 if container.duration is not None else max(
            (s.duration_s or 0.0) for s in streams)
        return MediaInfo(str(path), container.format.name, total, video, audio, streams)


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """The video stream's `VideoInfo` of a local file (a file without one is a `ReelworksError`)."""
    with open_video(path) as (container, stream):
        return _info(path, container, stream)


def _info(path, container, stream, count: bool = False) -> VideoInfo:
    if stream.codec_context is None:
        _decodable(Path(path), stream, "video")
    tb = stream.time_base
    start = _start_pts(stream)
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else 0.0
    duration = _stream_duration(container, stream) or 0.0
    keyframes: tuple[float, ...] = ()
    try:
        keyframes = tuple(float((e.timestamp - start) * tb) for e in stream.index_entries if e.is_keyframe)
    except Exception:  # an index is an optimisation; some demuxers build none
        keyframes = ()
    frames = stream.frames or 0
    if not frames and count:
        try:  # e.g. Matroska declares no count: count the packets (reads the file, decodes nothing)
            frames = sum(1 for p in container.demux(stream) if p.size)
        except Exception:
            frames = 0
    ctx = stream.codec_context
    return VideoInfo(path=str(path), codec=ctx.name, width=ctx.width, height=ctx.height, fps=fps,
                     duration_s=duration, frames=frames, start_s=float(start * tb) if tb else 0.0,
                     keyframes_s=keyframes, pix_fmt=getattr(ctx, "pix_fmt", None))


def _audio_info(container, stream) -> AudioInfo | None:
    ctx = stream.codec_context
    if ctx is None:
        return None
    rate = ctx.sample_rate or 0
    duration = _stream_duration(container, stream) or 0.0
    tb = stream.time_base
    return AudioInfo(codec=ctx.name, sample_rate=rate, channels=ctx.channels, layout=ctx.layout.name,
                     duration_s=duration, samples=int(round(duration * rate)),
                     start_s=float(_start_pts(stream) * tb) if tb else 0.0)


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
        sampler = _Sampler(container, stream, info, size, gray)
        try:
            yield from sampler.run(sorted(times))
        finally:
            sampler.close()


class _Sampler:
    def __init__(self, container, stream, info: VideoInfo, size, gray):
        self.container, self.stream, self.info = container, stream, info
        self.tb = stream.time_base
        self.start = _start_pts(stream)
        self.half_period = info.frame_period_s / 2
        self.size, self.gray = size, gray
        self.reformatter = _av().video.reformatter.VideoReformatter()  # one swscale context, reused
        self.frames = None  # the live decode iterator, positioned after `self.last`
        self.last = None  # (time_s, av frame) most recently decoded
        self.decoded = 0  # frames decoded in total (the cost, for benchmarks)
        self.seeks = 0
        self.skip_before = None  # decode only reference frames before this time (s)
        self._skipping = False
        self.errors: list[str] = []

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
            skip = self._skipping
            if packet.pts is not None:
                skip = self.skip_before is not None and float((packet.pts - self.start) * self.tb) < self.skip_before
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
        return self.reformatter.reformat(frame, width=w, height=h, format=fmt).to_ndarray()

    def run(self, targets: list[float]) -> Iterator[SampledFrame]:
        for target in targets:
            yield self._one(target)

    def close(self) -> None:
        """Drop the decode generator and the frames held, before the container closes.

        The generator refers back to the sampler (a reference cycle): without this the
        decoder and its frames would live on until the garbage collector runs.
        """
        if self.frames is not None:
            self.frames.close()
        self.frames = self.last = None

    def _one(self, target: float) -> SampledFrame:
        av = _av()
        margin = 0.0
        window = None if SKIP_NONREF_FRAMES is None else SKIP_NONREF_FRAMES * self.info.frame_period_s
        self.skip_before = None if window is None else target - window
        for _ in range(_RESEEK_TRIES + 1):
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
            if self.skip_before is not None and abs(t - target) > target - self.skip_before:
                # A frame skipped before the window might be closer than this one: decode them all.
                self.skip_before, self.frames = None, None
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
        reformatter = _av().video.reformatter.VideoReformatter()
        for frame in container.decode(stream):
            w, h = size or (frame.width, frame.height)
            pts = frame.pts if frame.pts is not None else 0
            yield float((pts - start) * tb), reformatter.reformat(frame, width=w, height=h, format=fmt).to_ndarray()


# --------------------------------------------------------------------------- audio


def _decoded_audio(container, stream, layout: str | None = None, rate: int | None = None) -> Iterator[np.ndarray]:
    """The stream's samples as float32 (channels, n) blocks, in order, at `rate` (default: its own)."""
    av = _av()
    ctx = stream.codec_context
    resampler = av.AudioResampler(format="fltp", layout=layout or ctx.layout.name, rate=rate or ctx.sample_rate)
    try:
        for frame in container.decode(stream):
            frame.pts = None  # the resampler counts samples itself; a gap in pts would make it insert silence
            for out in resampler.resample(frame):
                yield out.to_ndarray()
        for out in resampler.resample(None):
            yield out.to_ndarray()
    except av.error.FFmpegError as exc:
        raise ReelworksError(f"cannot decode the audio: {_reason(exc)}") from None


def load_audio(path: str | os.PathLike, sr: int | None = None, mono: bool = True) -> tuple[np.ndarray, int]:
    """(samples, rate): float32 in [-1, 1], shape (n,) when `mono`, else (channels, n) as librosa.

    `sr=None` keeps the file's rate; otherwise FFmpeg's resampler (swresample) converts. Mono is
    the mean of the channels, as librosa's `to_mono`.
    Any container/codec FFmpeg reads works (WAV, MP3, AAC/M4A, FLAC, Opus, a film's audio track).
    """
    with storage.local_file(str(path)) as local, open_audio(local) as (container, stream):
        rate = int(sr) if sr else stream.codec_context.sample_rate
        if rate <= 0:
            raise ReelworksError(f"sample rate must be positive, got {sr}")
        # Mono is the mean of the channels (as librosa.to_mono), not FFmpeg's -3 dB downmix.
        blocks = [b.mean(axis=0, dtype=np.float32) if mono else b for b in _decoded_audio(container, stream, rate=rate)]
    if not blocks:
        raise ReelworksError(f"{Path(str(path)).name}: the audio stream holds no samples")
    return np.concatenate(blocks, axis=-1), rate


# --------------------------------------------------------------------------- writing


class VideoWriter:
    """Stream frames into a video file one at a time (memory flat in frame count).

        with VideoWriter("out.mp4", 24, audio="song.mp3", audio_range=(0, 44100 * 10)) as writer:
            for frame in frames:          # HxWx3 uint8 RGB (or HxW gray)
                writer.write(frame)

    H.264 yuv420p (x264 `crf`/`preset`), `movflags=+faststart` for MP4/MOV. With `audio`, an
    AAC track holds exactly the samples `audio_range=(first, end)` of that file (at its own
    rate, see `load_audio`; default: the whole file), interleaved with the frames as they come.
    `keyframe_interval_s` caps the GOP; x264 still adds keyframes at scene cuts unless
    `scene_cut_keyframes=False`. The file appears at `path` (local or `s3://`) on a clean close.
    """

    def __init__(self, path: str | os.PathLike, fps: float | Fraction, *, audio: str | None = None,
                 audio_range: tuple[int, int] | None = None, crf: int = 18, preset: str = "veryfast",
                 codec: str = "libx264", keyframe_interval_s: float | None = None,
                 scene_cut_keyframes: bool = True, pix_fmt: str = "yuv420p", audio_bitrate: int = 192_000,
                 threads: int | None = None):
        if not fps or float(fps) <= 0:
            raise ReelworksError(f"fps must be positive, got {fps}")
        if audio_range is not None:
            first, end = (int(v) for v in audio_range)
            if first < 0 or end <= first:
                raise ReelworksError(f"audio_range must be (first, end) with 0 <= first < end, got {audio_range}")
        if audio_range is not None and audio is None:
            raise ReelworksError("audio_range given without an audio file")
        self.path = path
        self.rate = Fraction(fps).limit_denominator(1001)
        self.codec, self.crf, self.preset, self.pix_fmt = codec, crf, preset, pix_fmt
        self.keyframe_interval_s, self.scene_cut_keyframes = keyframe_interval_s, scene_cut_keyframes
        self.threads = threads
        self.audio_bitrate = audio_bitrate
        self.frames_written = 0
        self.audio_samples_written = 0
        self._size: tuple[int, int] | None = None
        self._stream = None
        self._audio_stream = None
        self._closed = False
        self._stack = contextlib.ExitStack()
        try:
            suffix = Path(str(path)).suffix or ".mp4"
            self._local = self._stack.enter_context(storage.output_file(str(path), suffix=suffix))
            self._audio_source = self._open_audio(audio, audio_range) if audio is not None else None
            av = _av()
            options = {"movflags": "+faststart"} if suffix.lower() in _MOV_FORMATS else {}
            try:
                self._container = av.open(str(self._local), mode="w", format=_format_for(suffix), options=options)
            except (av.error.FFmpegError, ValueError) as exc:
                raise ReelworksError(f"cannot write {Path(str(path)).name}: {_reason(exc)}") from None
            self._stack.callback(self._container.close)
        except BaseException:
            self._stack.__exit__(*sys.exc_info())
            raise

    # ----------------------------------------------------------------- audio source

    def _open_audio(self, audio: str, audio_range):
        local = self._stack.enter_context(storage.local_file(str(audio)))
        container, stream = self._stack.enter_context(open_audio(local))
        rate = stream.codec_context.sample_rate
        if audio_range is None:
            first, end = 0, None
        else:
            first, end = (int(v) for v in audio_range)
            declared = _audio_info(container, stream)
            # The container's figure is an estimate for some formats (MP3): check loosely here, exactly at close.
            if declared and declared.samples and first >= declared.samples + rate:
                raise ReelworksError(f"audio_range starts at sample {first}, after the end of {Path(local).name} "
                                     f"({declared.samples} samples at {rate} Hz)")
        channels = stream.codec_context.layout.nb_channels
        if channels > 2:
            log.info("%s has %d channels: mixed down to stereo", Path(local).name, channels)
        layout = "stereo" if channels >= 2 else "mono"  # AAC-LC in MP4 players: mono or stereo
        return _AudioSource(Path(local).name, _decoded_audio(container, stream, layout), rate, layout, first, end)

    def _add_audio_stream(self) -> None:
        av = _av()
        src = self._audio_source
        aac_rates = av.codec.Codec("aac", "w").audio_rates or ()
        rate = src.rate if not aac_rates or src.rate in aac_rates else 48000  # PyAV's encoder resamples for us
        stream = self._container.add_stream("aac", rate=rate)
        stream.layout = src.layout
        stream.bit_rate = self.audio_bitrate
        self._audio_stream = stream

    def _push_audio(self, upto: int | None) -> None:
        """Encode source samples up to `first + upto` (None: to the end of the range)."""
        av = _av()
        src = self._audio_source
        for block in src.take(upto):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(block, dtype=np.float32), format="fltp",
                                               layout=src.layout)
            frame.sample_rate = src.rate
            frame.pts = self.audio_samples_written
            frame.time_base = Fraction(1, src.rate)
            self.audio_samples_written += block.shape[1]
            for packet in self._audio_stream.encode(frame):
                self._container.mux(packet)

    # ----------------------------------------------------------------- video

    def _add_video_stream(self, width: int, height: int) -> None:
        av = _av()
        if self.codec in _EVEN_CODECS and self.pix_fmt in ("yuv420p", "nv12", "yuvj420p") and (width % 2 or height % 2):
            raise ReelworksError(f"{self.codec} needs even frame sizes, got {width}x{height} "
                                 f"(crop or pad the frames to even width and height)")
        try:
            stream = self._container.add_stream(self.codec, rate=self.rate)
        except (av.error.FFmpegError, ValueError) as exc:
            raise ReelworksError(f"unknown video encoder {self.codec!r}: {_reason(exc)}") from None
        stream.width, stream.height, stream.pix_fmt = width, height, self.pix_fmt
        stream.codec_context.time_base = 1 / self.rate
        options: dict[str, str] = {}
        if self.codec in ("libx264", "libx265"):
            options = {"crf": str(self.crf), "preset": self.preset}
            params = []
            if self.keyframe_interval_s:
                params.append(f"keyint={max(1, round(float(self.rate) * self.keyframe_interval_s))}")
            if not self.scene_cut_keyframes:
                params.append("scenecut=0")
            if params:
                options[f"{self.codec[3:]}-params"] = ":".join(params)
        elif self.keyframe_interval_s:
            stream.codec_context.gop_size = max(1, round(float(self.rate) * self.keyframe_interval_s))
        if self.threads:
            options["threads"] = str(self.threads)
        stream.options = options
        self._stream = stream
        if self._audio_source is not None:
            self._add_audio_stream()

    def write(self, frame: np.ndarray) -> None:
        """Encode one HxWx3 uint8 RGB (or HxW gray) frame."""
        if self._closed:
            raise ReelworksError("write() after close()")
        av = _av()
        image = np.asarray(frame)
        if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
            raise ReelworksError(f"frames must be HxWx3 (RGB) or HxW (gray) uint8, got {image.dtype} {image.shape}")
        height, width = image.shape[:2]
        if self._stream is None:
            self._add_video_stream(width, height)
            self._size = (width, height)
        elif (width, height) != self._size:
            raise ReelworksError(f"frame {self.frames_written} is {width}x{height}, the video is "
                                 f"{self._size[0]}x{self._size[1]}: every frame must have the same size")
        # Wraps the array without a copy; the encoder's colour conversion makes its own frame.
        video_frame = av.VideoFrame.from_numpy_buffer(np.ascontiguousarray(image),
                                                      format="gray" if image.ndim == 2 else "rgb24")
        video_frame.pts = self.frames_written
        for packet in self._stream.encode(video_frame):
            self._container.mux(packet)
        self.frames_written += 1
        if self._audio_source is not None:
            # The audio that plays under the frames written so far goes in beside them (interleaved).
            self._push_audio(round(self.frames_written * self._audio_source.rate / self.rate))

    def close(self) -> None:
        """Flush the encoders and finish the file (it appears at `path` now)."""
        if self._closed:
            return
        self._closed = True
        with self._stack:
            if self._stream is None:
                raise ReelworksError(f"no frames to write to {Path(str(self.path)).name}")
            for packet in self._stream.encode():
                self._container.mux(packet)
            if self._audio_source is not None:
                self._push_audio(None)
                self._audio_source.check_complete()
                for packet in self._audio_stream.encode(None):
                    self._container.mux(packet)

    def abort(self) -> None:
        """Stop without writing anything at `path`."""
        if not self._closed:
            self._closed = True
            try:
                self._stack.__exit__(RuntimeError, RuntimeError("aborted"), None)
            except Exception as exc:  # the temporary file is gone either way; the caller's error matters
                log.debug("abandoning %s: %s", self.path, exc)

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class _AudioSource:
    """Decoded blocks of an audio file, cut to samples [first, end) and handed out in order."""

    def __init__(self, name: str, blocks: Iterator[np.ndarray], rate: int, layout: str, first: int, end: int | None):
        self.name, self.blocks, self.rate, self.layout = name, blocks, rate, layout
        self.first, self.end = first, end
        self.position = 0  # samples of the file consumed so far
        self.pending: np.ndarray | None = None
        self.exhausted = False

    def _next(self) -> np.ndarray | None:
        if self.pending is not None:
            block, self.pending = self.pending, None
            return block
        for block in self.blocks:
            start = self.position
            self.position += block.shape[1]
            if self.position <= self.first:
                continue  # before the range: decoded and dropped
            return block[:, max(0, self.first - start):]
        self.exhausted = True
        return None

    def take(self, upto: int | None) -> Iterator[np.ndarray]:
        """Blocks up to range offset `upto` (relative to `first`; None: to `end` or the file's end)."""
        limit = self.end if upto is None else self.first + upto
        if self.end is not None and limit is not None:
            limit = min(limit, self.end)
        while True:
            consumed = self.position - (self.pending.shape[1] if self.pending is not None else 0)
            if limit is not None and consumed >= limit:
                return
            block = self._next()
            if block is None:
                return
            block_start = self.position - block.shape[1]
            if limit is not None and self.position > limit:
                cut = limit - block_start
                block, self.pending = block[:, :cut], block[:, cut:]
            if block.shape[1]:
                yield block

    def check_complete(self) -> None:
        if self.end is not None and self.exhausted and self.position < self.end:
            raise ReelworksError(f"audio_range ends at sample {self.end}, but {self.name} has only "
                                 f"{self.position} samples at {self.rate} Hz")


def _format_for(suffix: str) -> str | None:
    # output_file's temporary name keeps the suffix, so FFmpeg can guess; ".m4v" etc. map explicitly.
    return {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}.get(suffix.lower())


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float | Fraction = 24, *,
                codec: str = "libx264", crf: int = 23, keyframe_interval_s: float | None = None,
                scene_cut_keyframes: bool = True, preset: str = "veryfast", pix_fmt: str = "yuv420p",
                audio: str | None = None, audio_range: tuple[int, int] | None = None, **kw) -> Path | str:
    """Encode RGB (HxWx3) or gray (HxW) uint8 frames to a video file (see `VideoWriter`).

    Returns the `Path` for a local file, the URI for `s3://`.
    """
    with VideoWriter(path, fps, codec=codec, crf=crf, keyframe_interval_s=keyframe_interval_s,
                     scene_cut_keyframes=scene_cut_keyframes, preset=preset, pix_fmt=pix_fmt, audio=audio,
                     audio_range=audio_range, **kw) as writer:
        for frame in frames:
            writer.write(frame)
    return _result(path)


def _result(path) -> Path | str:
    return str(path) if storage.is_s3(str(path)) else storage.parse(str(path)).path


def write_gif(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float, *, loop: int = 0,
              width: int | None = None) -> Path | str:
    """A GIF preview (PIL): `loop=0` loops forever; `width` scales down keeping the aspect ratio.

    Each frame gets its own 256-colour palette (median cut, Floyd-Steinberg dithering), so
    colourful frames stay decent. GIF stores delays in 1/100 s: `fps` is rounded to that.
    Frames are quantized as they come (one byte per pixel is kept per frame, not the RGB frame).
    """
    from PIL import Image

    if fps <= 0:
        raise ReelworksError(f"fps must be positive, got {fps}")
    images = []
    first = size = None
    for i, frame in enumerate(frames):
        array = np.asarray(frame)
        if array.dtype != np.uint8 or array.ndim not in (2, 3):
            raise ReelworksError(f"frames must be HxWx3 (RGB) or HxW (gray) uint8, got {array.dtype} {array.shape}")
        image = Image.fromarray(array).convert("RGB")
        if first is None:
            first = image.size
            size = (int(width), max(1, round(image.height * width / image.width))) if width else image.size
        if image.size != first:
            raise ReelworksError(f"frame {i} is {image.width}x{image.height}, the first is {first[0]}x{first[1]}")
        if image.size != size:
            image = image.resize(size, Image.LANCZOS)
        images.append(image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.FLOYDSTEINBERG))
    if not images:
        raise ReelworksError(f"no frames to write to {Path(str(path)).name}")
    duration_ms = max(20, round(100 / fps) * 10)  # most viewers treat delays under 2/100 s as 1/10 s
    with storage.output_file(str(path), suffix=".gif") as local:
        images[0].save(local, format="GIF", save_all=True, append_images=images[1:], duration=duration_ms,
                       loop=loop, optimize=False, disposal=1)
    return _result(path)


# --------------------------------------------------------------------------- still images

# One pixel cap for every image reelworks decodes (posters, stills, keyframes, rendered frames):
# a 20 KiB PNG can declare 13000x13000 pixels and cost 646 MiB once decoded. The header gives
# the size before any pixel is decoded, so anything past this is refused first. A 4K frame is
# 8.3 M pixels, an SDXL render ~1 M, a poster well under 1 M. (Pillow's own bomb check starts at
# 89 M pixels, above this cap, so every image it would warn about is refused here anyway.)
MAX_IMAGE_PIXELS = 40_000_000


class ImageRefused(ReelworksError):
    """An image that cannot be used; `reason` is the short label it is counted under:
    "empty", "not_image" (or not one of the formats asked for), "too_large" or "corrupt"
    (callers checking more than the bytes add their own, e.g. the tweeter's "outside")."""

    def __init__(self, name: str, reason: str, detail: str):
        super().__init__(f"{name} is {detail}")
        self.reason = reason
        self.detail = detail


def open_image(source: bytes | str | os.PathLike, name: str | None = None, *,
               formats: Sequence[str] | None = None, load: bool = True):
    """A PIL image from bytes or a URI, its size checked against `MAX_IMAGE_PIXELS` from the
    header before any pixel is decoded; decoded (`load`) unless asked not to, so a damaged
    file fails here. `formats` (Pillow's names, e.g. ("PNG", "JPEG")): the only ones accepted.
    Raises `ImageRefused` (one line naming `name`, by default the URI) for anything else."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(source, (bytes, bytearray, memoryview)):
        data, name = bytes(source), name or "image"
    else:
        data, name = storage.read_bytes(os.fspath(source)), name or os.fspath(source)
    if not data:
        raise ImageRefused(name, "empty", "empty (0 bytes), not an image")
    _quiet_pillow_bomb_warning()
    try:
        image = Image.open(io.BytesIO(data), formats=list(formats) if formats else None)
        if image.width * image.height > MAX_IMAGE_PIXELS:
            raise ImageRefused(name, "too_large", f"{image.width}x{image.height} pixels, over the "
                                                  f"{MAX_IMAGE_PIXELS:,} pixel limit for images")
        if load:
            image.load()
    except Image.DecompressionBombError:
        raise ImageRefused(name, "too_large", f"over the {MAX_IMAGE_PIXELS:,} pixel limit for images") from None
    except UnidentifiedImageError:
        wanted = f"a {' or '.join(formats)} image" if formats else "an image (no format Pillow reads)"
        raise ImageRefused(name, "not_image", f"not {wanted}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # truncated or damaged files
        raise ImageRefused(name, "corrupt", f"a damaged image ({_reason(exc)})") from None
    return image


def _quiet_pillow_bomb_warning() -> None:
    """Pillow warns about sizes `open_image` refuses anyway; the refusal is the one line to show.
    (Checked on every call: `warnings.catch_warnings` blocks, as in tests, restore the filters.)"""
    import warnings

    from PIL import Image

    if not any(action == "ignore" and category is Image.DecompressionBombWarning
               for action, _, category, _, _ in warnings.filters):
        warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


# --------------------------------------------------------------------------- still images: encoding
# One float-to-uint8, one PNG encoder and one contact sheet for every workflow (music video,
# t2v, posters): the same pixels round the same way everywhere.


def to_uint8(images, value_range: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """Float pixels in `value_range` -> uint8, clipped and rounded to nearest: (0, 1) for
    diffusers' `output_type="np"`, (-1, 1) for a tanh generator."""
    lo, hi = value_range
    scaled = (np.asarray(images, dtype=np.float32) - lo) / (hi - lo)
    return (np.clip(scaled, 0.0, 1.0) * 255.0).round().astype(np.uint8)


def png_bytes(image, compress_level: int = 6) -> bytes:
    """A PIL image or a uint8 array (HxW, HxWx1, HxWx3, HxWx4) as PNG bytes (lossless: frames
    passed between steps come back exact). `compress_level` 1 is ~3x faster for frames that
    are read once."""
    from PIL import Image

    if isinstance(image, np.ndarray):
        image = Image.fromarray(image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()


def jpeg_bytes(image, quality: int = 90) -> bytes:
    """A PIL image or a uint8 array as JPEG bytes (lossy: for images that leave reelworks, e.g.
    a poster over a site's upload limit). JPEG has no alpha: it is dropped."""
    from PIL import Image

    if isinstance(image, np.ndarray):
        image = Image.fromarray(image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image)
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality, optimize=True)
    return buffer.getvalue()


def contact_sheet(images: Sequence, captions: Sequence[str] | None = None, *, columns: int = 4,
                  cell: int | None = None, gap: int = 2, font_size: int = 11) -> np.ndarray:
    """Images (uint8 arrays or PIL images) in a grid of `columns`, white gaps between them, each
    scaled to `cell` px wide (None: the first image's size) and captioned beneath (a caption's
    lines are its "\\n"-separated parts, each cut to the tile's width with an ellipsis)."""
    from PIL import Image, ImageDraw, ImageFont

    tiles = [im if isinstance(im, Image.Image) else Image.fromarray(np.asarray(im)) for im in images]
    if not tiles:
        raise ReelworksError("a contact sheet needs at least one image")
    w0, h0 = tiles[0].size
    width = cell or w0
    height = max(1, round(width * h0 / w0))
    font = ImageFont.load_default(size=font_size)
    lines_per = max((len(c.splitlines()) for c in captions or [] if c), default=0)
    caption_h = lines_per * (font_size + 3) + (3 if lines_per else 0)
    rows, cols = -(-len(tiles) // columns), min(columns, len(tiles))
    sheet = Image.new("RGB", (cols * (width + gap) - gap, rows * (height + caption_h + gap) - gap), "white")
    draw = ImageDraw.Draw(sheet)
    for i, tile in enumerate(tiles):
        x, y = (i % columns) * (width + gap), (i // columns) * (height + caption_h + gap)
        tile = tile.convert("RGB")
        sheet.paste(tile if tile.size == (width, height) else tile.resize((width, height), Image.LANCZOS), (x, y))
        for k, line in enumerate((captions[i] if captions and i < len(captions) else "").splitlines()):
            while len(line) > 1 and draw.textlength(line, font=font) > width:
                line = line[:-2] + "…"
            draw.text((x + 2, y + height + 2 + k * (font_size + 3)), line, font=font, fill=(40, 40, 40))
    return np.asarray(sheet)
