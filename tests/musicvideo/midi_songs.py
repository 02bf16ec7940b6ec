"""Multi-instrument songs with exactly known beats, for the beat tracker's test and bench/beats.py:
General MIDI (drums, bass, chords, a lead) written with mido and rendered by fluidsynth with the
FluidR3 GM soundfont (Debian's fluid-soundfont-gm). Imported by name: tests/musicvideo is put
on sys.path by the test and the bench.

A song is 4/4 at a constant tempo. Its pattern is drawn from a seed: the kick, bass and chord
stabs are syncopated (pushed to the "and" before a beat), hi-hats play eighths or sixteenths,
an intro may have no drums, and the song starts and ends mid-bar: the first note sits on any
beat of a bar, after a lead-in of silence that is not a whole number of beats, and the last bar
is cut off. The true beats are every quarter note of the metre from the start of the audio
(continued back through the lead-in) to its end, whatever plays on them.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FPS = 12.0  # the frame rate of the hit criterion
SOUNDFONTS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/default-GM.sf2")
TICKS = 480  # per quarter note
DRUMS = 9  # the General MIDI percussion channel
KICK, SNARE, CLOSED_HAT, OPEN_HAT, CRASH, RIDE = 36, 38, 42, 46, 49, 51
# Chord roots (C major and A minor pop progressions) in semitones above C.
PROGRESSIONS = ((0, 7, 9, 5), (9, 5, 0, 7), (0, 9, 5, 7), (2, 7, 0, 0))


@dataclass(frozen=True)
class SongSpec:
    bpm: float
    seed: int
    bars: int = 14
    first_beat_in_bar: int = 0  # the song starts on this beat of its first bar (0 = the downbeat)
    lead_in_s: float = 0.0  # silence before the first beat
    last_bar_beats: int = 4  # beats of the last bar that are played (the song ends mid-bar below 4)
    intro_bars_without_drums: int = 0
    sixteenth_hats: bool = False
    end_bpm: float | None = None  # a tempo ramp: beat by beat from bpm to end_bpm (a drifting band)

    @property
    def name(self) -> str:
        ramp = f"-{self.end_bpm:g}" if self.end_bpm else ""
        return f"{self.bpm:g}{ramp}bpm-s{self.seed}"

    @property
    def beats(self) -> int:
        """Beats played, from the song's first beat to its last."""
        return (self.bars - 1) * 4 - self.first_beat_in_bar + self.last_bar_beats

    def tempi(self) -> np.ndarray:
        """The tempo of each played beat."""
        return np.linspace(self.bpm, self.end_bpm or self.bpm, self.beats)


def beat_times(spec: SongSpec, duration_s: float) -> np.ndarray:
    """Every quarter note of the song's metre, from its start (the metre continued back through
    the silent lead-in) to the end of the audio."""
    period = 60.0 / spec.bpm
    count_in = spec.lead_in_s - period * np.arange(np.floor(spec.lead_in_s / period), 0, -1)
    played = spec.lead_in_s + np.concatenate([[0.0], np.cumsum(60.0 / spec.tempi())])
    times = np.concatenate([count_in, played])
    return times[times <= duration_s + 1e-6]


def write_midi(spec: SongSpec, path: str | Path) -> None:
    import mido

    rng = np.random.default_rng(spec.seed)
    progression = PROGRESSIONS[spec.seed % len(PROGRESSIONS)]
    key = int(rng.integers(-3, 4))
    events: list[tuple[int, mido.Message]] = []  # (absolute tick, message)

    def note(channel: int, pitch: int, start_beats: float, length_beats: float, velocity: int) -> None:
        if start_beats < 0:  # a pickup before the song's first beat
            return
        start = int(round(start_beats * TICKS))
        end = start + max(1, int(round(length_beats * TICKS)))
        velocity = int(np.clip(velocity + rng.integers(-8, 9), 1, 127))
        events.append((start, mido.Message("note_on", channel=channel, note=pitch, velocity=velocity)))
        events.append((end, mido.Message("note_off", channel=channel, note=pitch, velocity=0)))

    # Beat numbers count from the song's first beat; bar lines fall where (beat + first) % 4 == 0.
    total_beats = spec.beats
    if spec.end_bpm:
        for beat, bpm in enumerate(spec.tempi()):
            events.append((beat * TICKS, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm))))
    kick_push = rng.random() < 0.6  # a kick on the "and" of 3 instead of on 3
    bass_push = rng.random() < 0.7  # the bass anticipates the next bar by an eighth
    for beat in range(total_beats):
        in_bar = (beat + spec.first_beat_in_bar) % 4
        bar = (beat + spec.first_beat_in_bar) // 4
        root = 36 + key + progression[bar % len(progression)]  # bass register
        last = beat == total_beats - 1
        if bar >= spec.intro_bars_without_drums:
            if in_bar == 0:
                note(DRUMS, KICK, beat, 0.25, 110)
                if bar % 4 == 0:
                    note(DRUMS, CRASH, beat, 1.0, 90)
            if in_bar == 2:
                note(DRUMS, KICK, beat + (0.5 if kick_push else 0.0), 0.25, 100)
            if in_bar in (1, 3):
                note(DRUMS, SNARE, beat, 0.25, 105)
                if rng.random() < 0.2:  # a ghost note before the backbeat
                    note(DRUMS, SNARE, beat - 0.25, 0.125, 45)
            hats = 4 if spec.sixteenth_hats else 2
            for step in range(hats):
                pitch = OPEN_HAT if (step == hats - 1 and in_bar == 3 and rng.random() < 0.3) else CLOSED_HAT
                note(DRUMS, pitch, beat + step / hats, 0.1, 80 if step == 0 else 55)
        # Bass: root on the downbeat, syncopated eighths after it, the next root pushed early.
        if in_bar == 0:
            note(0, root, beat, 0.9, 100)
        elif in_bar == 1:
            note(0, root + 7, beat + 0.5, 0.4, 85)
        elif in_bar == 2:
            note(0, root + 12, beat, 0.4, 90)
        elif in_bar == 3 and not last:
            next_root = 36 + key + progression[(bar + 1) % len(progression)]
            note(0, next_root if bass_push else root, beat + 0.5, 0.5, 95)
        # Chords: stabs on 1 and on the "and" of 2 (syncopated), triads in the middle register.
        if in_bar in (0, 1):
            third = 3 if progression[bar % len(progression)] in (9, 2) else 4
            chord = [root + 24, root + 24 + third, root + 31]
            start = beat if in_bar == 0 else beat + 0.5
            for pitch in chord:
                note(1, pitch, start, 0.8 if in_bar == 0 else 1.3, 70)
        # A lead: a few notes a bar at random eighth positions, off the beat as often as on it.
        if bar >= 2 and rng.random() < 0.5:
            offset = float(rng.choice([0.0, 0.5]))
            note(2, root + 48 + int(rng.choice([0, 2, 4, 7, 9])), beat + offset, 0.45, 75)

    lead_in_ticks = int(round(spec.lead_in_s * spec.bpm / 60.0 * TICKS))
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(spec.bpm), time=0))
    programs = ((0, int(rng.choice([33, 34, 38]))), (1, int(rng.choice([0, 4, 5, 48, 89]))),
                (2, int(rng.choice([80, 81, 56, 65, 73]))))
    for channel, program in programs:
        track.append(mido.Message("program_change", channel=channel, program=program, time=0))
    now = 0
    # note_offs (and tempo changes) before note_ons at the same tick, so a repeated note is not
    # cut by its own end.
    for tick, message in sorted(events, key=lambda e: (e[0], e[1].type == "note_on")):
        track.append(message.copy(time=tick + lead_in_ticks - now))
        now = tick + lead_in_ticks
    midi = mido.MidiFile(ticks_per_beat=TICKS)
    midi.tracks.append(track)
    midi.save(str(path))


def soundfont() -> str | None:
    return next((sf for sf in SOUNDFONTS if Path(sf).exists()), None)


def render(spec: SongSpec, sample_rate: int = 22050) -> tuple[np.ndarray, np.ndarray]:
    """(mono float32 samples, true beat times): the song rendered by fluidsynth.

    Only the played length is kept (the soundfont's release tail is cut), so the song ends mid-bar."""
    import soundfile

    fluidsynth, font = shutil.which("fluidsynth"), soundfont()
    if not fluidsynth or not font:
        raise FileNotFoundError("fluidsynth and a GM soundfont (fluid-soundfont-gm) are needed")
    with tempfile.TemporaryDirectory() as tmp:
        midi, wav = Path(tmp) / "song.mid", Path(tmp) / "song.wav"
        write_midi(spec, midi)
        subprocess.run([fluidsynth, "-ni", "-q", "-g", "0.6", "-r", str(sample_rate), "-F", str(wav), font,
                        str(midi)], check=True, capture_output=True)
        stereo, rate = soundfile.read(str(wav), dtype="float32", always_2d=True)
    samples = stereo.mean(axis=1)
    played = spec.lead_in_s + float(np.sum(60.0 / spec.tempi()))
    samples = samples[: int(round(played * rate))]
    return samples.astype(np.float32), beat_times(spec, len(samples) / rate)


def keyframe_hits(beats: np.ndarray, tempo: float, true_beats: np.ndarray, duration_s: float, seed: int,
                  lines: int = 200) -> float:
    """The fraction of keyframes within one frame (1/FPS) of a true beat, for `lines` lyric lines
    at random times (uniform over the song, so off the beat) snapped to the nearest of `beats`
    within half a beat (as `timing.build_timeline` snaps) and rounded to a frame."""
    from reelworks.musicvideo.timing import _snap

    rng = np.random.default_rng(seed)
    line_times = rng.uniform(0, duration_s, lines)
    max_shift = 30.0 / tempo if tempo > 0 else 0.25
    targets = [float(b) for b in beats]
    keyframes = np.array([round(_snap(float(t), targets, max_shift) * FPS) / FPS for t in line_times])
    misses = np.abs(keyframes[:, None] - np.asarray(true_beats)[None, :]).min(axis=1)
    return float(np.mean(misses <= 1 / FPS + 1e-9))
