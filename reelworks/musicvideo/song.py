"""A song the project makes itself, so the demo and the tests need no download: a click
track at a known tempo (every beat a short 1.5 kHz click, the downbeat louder) under one
sustained tone per lyric line, with its LRC. The LRC's line times sit a little after the
beats (as hand-timed LRC files do), so snapping keyframes to the beats has work to do.
"""
from __future__ import annotations

import io
import json
import wave

import numpy as np

from reelworks import storage
from reelworks.musicvideo.lyrics import LyricLine, to_lrc

DEMO_LINES = (
    "A neon city wakes beneath the rain",
    "Her paper boat sails down the drain",
    "The lighthouse blinks a silent code",
    "Two strangers share the midnight road",
    "The morning folds the stars away",
    "And the river carries us to day",
)
# A C-major arpeggio: one pitch per line, so every line sounds different.
LINE_PITCHES_HZ = (261.63, 329.63, 392.00, 523.25, 392.00, 329.63)


def synthesize(bpm: float = 120.0, beats_per_line: int = 4, lines: tuple[str, ...] = DEMO_LINES,
               sample_rate: int = 22050, first_beat_s: float = 0.25, lead_in_beats: int = 1, tail_beats: int = 2,
               lrc_late_s: float = 0.06) -> tuple[np.ndarray, list[LyricLine], dict]:
    """(mono float32 samples, timed lyric lines, facts: tempo, true beat times, ...)."""
    beat_s = 60.0 / bpm
    n_beats = lead_in_beats + beats_per_line * len(lines) + tail_beats
    total = int(round((n_beats + 0.5) * beat_s * sample_rate))
    audio = np.zeros(total, dtype=np.float64)
    t_click = np.arange(int(0.03 * sample_rate)) / sample_rate
    click = np.sin(2 * np.pi * 1500 * t_click) * np.exp(-t_click / 0.006)
    beats = [first_beat_s + b * beat_s for b in range(n_beats)]
    for number, t in enumerate(beats):
        start = int(round(t * sample_rate))
        gain = 0.9 if number % beats_per_line == (lead_in_beats % beats_per_line) else 0.6
        audio[start:start + len(click)] += gain * click[: max(0, total - start)]
    timed = []
    for i, text in enumerate(lines):
        first_beat = lead_in_beats + i * beats_per_line
        start_s = beats[first_beat]
        length = int(round(beats_per_line * beat_s * sample_rate))
        s0 = int(round(start_s * sample_rate))
        t_tone = np.arange(min(length, total - s0)) / sample_rate
        envelope = np.minimum(1.0, t_tone / 0.02) * np.minimum(1.0, (t_tone[-1] - t_tone + 1e-9) / 0.05)
        pitch = LINE_PITCHES_HZ[i % len(LINE_PITCHES_HZ)]
        audio[s0:s0 + len(t_tone)] += 0.15 * envelope * np.sin(2 * np.pi * pitch * t_tone)
        timed.append(LyricLine(i, text, round(start_s + lrc_late_s, 2)))
    audio = (audio / max(1.0, np.abs(audio).max() / 0.95)).astype(np.float32)
    facts = {"bpm": bpm, "sample_rate": sample_rate, "beat_times_s": [round(b, 6) for b in beats],
             "line_beat_times_s": [beats[lead_in_beats + i * beats_per_line] for i in range(len(lines))],
             "duration_s": total / sample_rate}
    return audio, timed, facts


def wav_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    """16-bit PCM WAV (the stdlib writer: any decoder reads it)."""
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.tobytes())
    return buffer.getvalue()


def write_demo_song(output: str, **kwargs) -> dict:
    """`song.wav`, `song.lrc` and `song.json` (tempo, true beats) below `output`."""
    audio, lines, facts = synthesize(**kwargs)
    storage.write_bytes(storage.join(output, "song.wav"), wav_bytes(audio, facts["sample_rate"]))
    storage.write_text(storage.join(output, "song.lrc"), "[ti:reelworks demo song]\n" + to_lrc(lines))
    storage.write_text(storage.join(output, "song.json"), json.dumps(facts, indent=2))
    return {"audio": storage.join(output, "song.wav"), "lyrics": storage.join(output, "song.lrc"), **facts}
