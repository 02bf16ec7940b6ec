"""reelworks.media: probing, seeking, the streaming H.264 + AAC writer, GIF previews, audio decoding."""
from __future__ import annotations

import struct
import threading
import wave

import numpy as np
import pytest

from reelworks import media
from reelworks.errors import ReelworksError

RATE = 44100


def gradient_frames(n: int, w: int = 96, h: int = 64):
    for i in range(n):
        frame = np.zeros((h, w, 3), np.uint8)
        frame[..., 0] = (np.arange(w) * 2 + i * 5) % 256
        frame[..., 1] = i * 7 % 256
        yield frame


def write_wav(path, channels: list[np.ndarray], rate: int = RATE):
    """A 16-bit PCM WAV with the standard library (independent of the code under test)."""
    pcm = np.clip(np.stack(channels, axis=1) * 32767, -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(len(channels))
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())
    return path


def music_like(seconds: float, seed: int, rate: int = RATE) -> np.ndarray:
    """Band-limited noise (what AAC keeps well): no two windows alike, so a wrong offset shows."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / rate)
    spectrum[(freqs < 60) | (freqs > 4000)] = 0
    signal = np.fft.irfft(spectrum, n)
    return (0.4 * signal / np.abs(signal).max()).astype(np.float32)


def top_level_boxes(path) -> list[str]:
    data = path.read_bytes()
    boxes, offset = [], 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset:offset + 8])
        if size == 1:
            size = struct.unpack(">Q", data[offset + 8:offset + 16])[0]
        boxes.append(kind.decode("latin-1"))
        if size < 8:
            break
        offset += size
    return boxes


def best_lag(signal: np.ndarray, window: np.ndarray) -> tuple[int, float]:
    """Offset of `signal` inside `window` by FFT cross-correlation, and the normalised peak."""
    n = len(window) + len(signal)
    corr = np.fft.irfft(np.fft.rfft(window, n) * np.conj(np.fft.rfft(signal, n)), n)[: len(window) - len(signal) + 1]
    lag = int(np.argmax(corr))
    segment = window[lag:lag + len(signal)]
    return lag, float(corr[lag] / (np.linalg.norm(signal) * np.linalg.norm(segment)))


# --------------------------------------------------------------------------- reading (from video.py)


def test_write_probe_and_iterate(tmp_path):
    path = media.write_video(tmp_path / "clip.mp4", gradient_frames(60), fps=12, keyframe_interval_s=1.0,
                             scene_cut_keyframes=False)
    info = media.probe(path)
    assert info.audio is None and [s.type for s in info.streams] == ["video"]
    video = info.video
    assert (video.codec, video.width, video.height, video.fps, video.frames) == ("h264", 96, 64, 12.0, 60)
    assert video.duration_s == pytest.approx(5.0) and info.duration_s == pytest.approx(5.0)
    assert media.probe_video(path) == video
    assert np.diff(video.keyframes_s).max() <= 1.0 + 1e-6 and len(video.keyframes_s) == 5
    frames = list(media.iter_frames(path, size=(48, 32), gray=True))
    assert len(frames) == 60 and frames[0][1].shape == (32, 48)
    assert [t for t, _ in frames[:3]] == pytest.approx([0, 1 / 12, 2 / 12])


def test_frames_at_returns_the_right_picture(tmp_path):
    path = media.write_video(tmp_path / "clip.mp4", gradient_frames(48), fps=12, crf=1)
    samples = list(media.frames_at(path, [0.0, 1.0, 2.5, 3.9]))
    assert [s.time_s for s in samples] == pytest.approx([0.0, 1.0, 2.5, 3.9167], abs=1e-3)
    for s in samples:  # the green channel encodes the frame number (i * 7)
        index = round(s.time_s * 12)
        assert abs(int(s.image[..., 1].mean()) - index * 7 % 256) <= 3


def test_write_errors_leave_nothing(tmp_path):
    with pytest.raises(ReelworksError, match="even"):
        media.write_video(tmp_path / "odd.mp4", [np.zeros((63, 95, 3), np.uint8)], fps=10)
    with pytest.raises(ReelworksError, match="no frames"):
        media.write_video(tmp_path / "none.mp4", [], fps=10)
    with pytest.raises(ReelworksError, match="same size"):
        media.write_video(tmp_path / "sizes.mp4", [np.zeros((64, 96, 3), np.uint8), np.zeros((64, 64, 3), np.uint8)],
                          10)
    with pytest.raises(ReelworksError, match="uint8"):
        media.write_video(tmp_path / "float.mp4", [np.zeros((64, 96, 3), np.float32)], fps=10)
    with pytest.raises(ZeroDivisionError):  # the caller's own error passes through; the file is abandoned
        with media.VideoWriter(tmp_path / "crash.mp4", 10) as writer:
            writer.write(np.zeros((64, 96, 3), np.uint8))
            1 / 0
    assert list(tmp_path.iterdir()) == []  # no file and no temporary left behind


# --------------------------------------------------------------------------- H.264 + AAC


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    """15 s of stereo 'music' (distinct left and right) as a WAV."""
    path = tmp_path_factory.mktemp("audio") / "song.wav"
    left, right = music_like(15, seed=1), music_like(15, seed=2)
    write_wav(path, [left, right])
    return path, np.stack([left, right])


def test_ten_seconds_of_h264_and_aac_agree(tmp_path, song):
    source, _ = song
    fps, frames = 24, 240
    first = 3 * RATE + 123  # an exact slice that starts mid-second
    end = first + frames * RATE // fps
    with media.VideoWriter(tmp_path / "clip.mp4", fps, audio=str(source), audio_range=(first, end)) as writer:
        for frame in gradient_frames(frames):
            writer.write(frame)
    assert writer.frames_written == frames and writer.audio_samples_written == end - first

    info = media.probe(tmp_path / "clip.mp4")
    assert (info.video.codec, info.video.pix_fmt, info.audio.codec) == ("h264", "yuv420p", "aac")
    assert (info.audio.sample_rate, info.audio.channels) == (RATE, 2)
    assert info.video.duration_s == pytest.approx(10.0)
    assert abs(info.audio.duration_s - info.video.duration_s) <= 1 / fps
    decoded = list(media.iter_frames(tmp_path / "clip.mp4"))
    assert len(decoded) == frames == info.video.frames
    # Every frame in its place: the green channel encodes the frame number (i * 7).
    assert max(abs(int(image[..., 1].mean()) - i * 7 % 256) for i, (_, image) in enumerate(decoded)) <= 3
    audio, rate = media.load_audio(tmp_path / "clip.mp4", mono=False)
    assert rate == RATE and audio.shape[0] == 2
    assert abs(audio.shape[1] / RATE - len(decoded) / fps) <= 1 / fps  # AAC pads the last 1024-sample block at most


def test_the_audio_track_is_the_requested_slice(tmp_path, song):
    source, original = song
    first, length = 5 * RATE + 777, 2 * RATE
    path = media.write_video(tmp_path / "slice.mp4", gradient_frames(48), fps=24, audio=str(source),
                             audio_range=(first, first + length))
    track, _ = media.load_audio(path, mono=False)
    search = 4000  # samples either side of the requested start
    for channel in (0, 1):
        signal = track[channel, 1024:length - 1024]  # away from the encoder's first and last block
        window = original[channel, first + 1024 - search:first + length - 1024 + search]
        lag, peak = best_lag(signal, window)
        assert lag - search == 0, f"channel {channel} is off by {lag - search} samples"
        assert peak > 0.95
    # Left stays left: the right channel of the source does not match the left of the file.
    other = original[1, first + 1024 - search:first + length - 1024 + search]
    assert best_lag(track[0, 1024:length - 1024], other)[1] < 0.3


def test_moov_comes_before_mdat(tmp_path, song):
    path = media.write_video(tmp_path / "fast.mp4", gradient_frames(24), fps=24, audio=str(song[0]),
                             audio_range=(0, RATE))
    boxes = top_level_boxes(path)
    assert "moov" in boxes and "mdat" in boxes and boxes.index("moov") < boxes.index("mdat"), boxes


def test_bad_audio_range_and_not_audio(tmp_path, song):
    source, _ = song
    with pytest.raises(ReelworksError, match="only 661500 samples"):  # 15 s: the range runs past the end
        media.write_video(tmp_path / "long.mp4", gradient_frames(24), fps=24, audio=str(source),
                          audio_range=(14 * RATE, 16 * RATE))
    with pytest.raises(ReelworksError, match="0 <= first < end"):
        media.VideoWriter(tmp_path / "bad.mp4", 24, audio=str(source), audio_range=(100, 100))
    text = tmp_path / "notes.wav"
    text.write_text("not audio at all\n" * 100)
    with pytest.raises(ReelworksError, match="notes.wav is not audio FFmpeg can read"):
        media.VideoWriter(tmp_path / "x.mp4", 24, audio=str(text))
    with pytest.raises(ReelworksError, match="notes.wav is not audio"):
        media.load_audio(text)
    with pytest.raises(ReelworksError, match="is not a video or audio file"):
        media.probe(text)
    silent = media.write_video(tmp_path / "silent.mp4", gradient_frames(12), fps=12)
    with pytest.raises(ReelworksError, match="silent.mp4 has no audio stream"):
        media.load_audio(silent)
    with pytest.raises(ReelworksError, match="song.wav has no video stream"):
        list(media.frames_at(source, [0.0]))
    assert not (tmp_path / "long.mp4").exists() and not (tmp_path / "x.mp4").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.wav", "silent.mp4"]


def test_s3_in_and_out(s3_bucket, song):
    from reelworks import storage

    storage.upload_file(song[0], f"{s3_bucket}/in/song.wav")
    uri = media.write_video(f"{s3_bucket}/out/clip.mp4", gradient_frames(24), fps=24,
                            audio=f"{s3_bucket}/in/song.wav", audio_range=(0, RATE))
    assert uri == f"{s3_bucket}/out/clip.mp4"
    info = media.probe(uri)
    assert (info.video.frames, info.audio.codec) == (24, "aac")
    assert media.load_audio(uri)[0].shape[0] >= RATE
    gif = media.write_gif(f"{s3_bucket}/out/clip.gif", gradient_frames(3), fps=8)
    assert storage.read_bytes(gif)[:6] == b"GIF89a"


# --------------------------------------------------------------------------- audio decoding


def test_load_audio_tone(tmp_path):
    t = np.arange(3 * 22050) / 22050
    path = write_wav(tmp_path / "tone.wav", [0.5 * np.sin(2 * np.pi * 440 * t), 0.5 * np.sin(2 * np.pi * 1000 * t)],
                     rate=22050)

    def peak_hz(x: np.ndarray, rate: int) -> float:
        spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
        return float(np.fft.rfftfreq(len(x), 1 / rate)[np.argmax(spectrum)])

    stereo, rate = media.load_audio(path, mono=False)
    assert stereo.dtype == np.float32 and stereo.shape == (2, 3 * 22050) and rate == 22050
    assert peak_hz(stereo[0], rate) == pytest.approx(440, abs=1)
    assert peak_hz(stereo[1], rate) == pytest.approx(1000, abs=1)
    assert np.abs(stereo).max() == pytest.approx(0.5, abs=0.01)
    mono, rate = media.load_audio(path, sr=16000)
    assert np.abs(mono).max() == pytest.approx(0.5, abs=0.03)  # the mean of the channels (as librosa), no gain
    assert mono.ndim == 1 and rate == 16000 and abs(len(mono) - 3 * 16000) <= 32
    spectrum = np.abs(np.fft.rfft(mono * np.hanning(len(mono))))
    freqs = np.fft.rfftfreq(len(mono), 1 / 16000)
    both = sorted(freqs[np.argsort(spectrum)[-2:]])  # the mix holds both tones, resampled without shifting them
    assert both == pytest.approx([440, 1000], abs=1)


# --------------------------------------------------------------------------- GIF


def test_gif_loops_with_every_frame(tmp_path):
    from PIL import Image

    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255)]
    frames = []
    for colour in colours:
        frame = np.zeros((60, 80, 3), np.uint8)
        frame[:, :40] = colour
        frame[:, 40:] = np.linspace(0, 255, 40, dtype=np.uint8)[None, :, None]  # a gradient: needs its own palette
        frames.append(frame)
    path = media.write_gif(tmp_path / "preview.gif", iter(frames), fps=10, width=40)
    with Image.open(path) as gif:
        assert gif.n_frames == len(colours) and gif.info["loop"] == 0 and gif.size == (40, 30)
        for i, colour in enumerate(colours):
            gif.seek(i)
            rgb = np.asarray(gif.convert("RGB"), dtype=int)
            assert np.abs(rgb[15, 5] - colour).max() <= 8
            assert gif.info["duration"] == 100


# --------------------------------------------------------------------------- memory


def peak_rss_growth(write) -> float:
    """MB the process's resident memory rose above its starting level while `write()` ran."""
    import psutil

    process = psutil.Process()
    start = process.memory_info().rss
    peak, done = [start], threading.Event()

    def watch():
        while not done.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            done.wait(0.005)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        write()
    finally:
        done.set()
        watcher.join()
    return (max(peak[0], process.memory_info().rss) - start) / 2**20


def test_memory_stays_flat_in_frame_count(tmp_path):
    import gc

    # 90 s of stereo audio: decoded whole it would be 32 MB of float32; 2,000 raw frames would be 111 MB.
    t = np.arange(90 * RATE) / RATE
    source = write_wav(tmp_path / "long.wav", [0.3 * np.sin(2 * np.pi * 220 * t), 0.3 * np.sin(2 * np.pi * 330 * t)])
    del t
    frame = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)

    def write(count: int):
        def run():
            with media.VideoWriter(tmp_path / f"{count}.mp4", 24, audio=str(source),
                                   audio_range=(0, count * RATE // 24), crf=30, preset="ultrafast") as w:
                for i in range(count):
                    w.write(np.roll(frame, i, axis=1))
        return run

    write(50)()  # libraries loaded and encoder buffers sized before measuring
    gc.collect()
    small = peak_rss_growth(write(200))
    gc.collect()
    large = peak_rss_growth(write(2000))
    assert media.probe(tmp_path / "2000.mp4").video.frames == 2000
    # Ten times the frames (and audio): if frames or samples piled up, the growth would be > 100 MB.
    assert large < small + 20, (small, large)
