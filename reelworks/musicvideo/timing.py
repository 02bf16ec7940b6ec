"""Step 2: the song -> one global frame grid that every later step follows.

The song is decoded with PyAV (`media.load_audio`); tempo, beats and onsets come from
librosa. Each scene's time is its LRC line time (else the lines are spread evenly over the
song), snapped to the nearest beat (or onset). Then, with `fps`:

- the video is the whole song: frame 0 is the song's start and the grid ends at the song's
  last whole frame. The intro (before the first line), instrumental breaks (a gap between lines
  over twice the usual one and at least BREAK_MIN_S of music without a line) and the outro
  (after the last line) get scenes of their own (`kind` intro/break/outro: the prompt of the
  neighbouring line, a seed of their own);
- keyframe i sits at frame k_i = round(t_i * fps); the last scene walks back to the first so
  the preview loops;
- segment i owns frames [k_i, k_{i+1}): position 0 is exactly keyframe i, the positions rise
  strictly and stay below 1 (keyframe i+1 is the next segment's first frame, never repeated);
  with `energy` > 0 they are reshaped by the song's onset strength (monotone: they move
  faster where the music hits);
- the audio under the video is exactly samples [0, round(k_end * sr / fps)), so sound and
  picture cannot drift apart over a long song, and each lasts the song within one frame.

Writes `timeline.json` and a report with the timeline picture (waveform, beats, keyframes,
sections).
"""
from __future__ import annotations

import hashlib
import json
import logging

import numpy as np

from reelworks import storage
from reelworks.errors import ReelworksError
from reelworks.musicvideo.plan import Plan, load_plan

log = logging.getLogger(__name__)

TIMELINE_VERSION = 2  # 2: the grid covers the whole song; intro, break and outro scenes
SNAP_MODES = ("beats", "onsets", "none")
# Music before the first line (after the last) this long gets a scene; a shorter intro is
# folded into the first line's scene (its keyframe moves to frame 0, before anything is sung).
INSTRUMENTAL_MIN_S = 0.5
# A gap between two lines is a break when it is over BREAK_GAP_RATIO times the median gap and
# leaves at least BREAK_MIN_S after the line's usual length.
BREAK_GAP_RATIO = 2.0
BREAK_MIN_S = 4.0
INSTRUMENTAL_KINDS = ("intro", "break", "outro")


def audio_fingerprint(uri: str) -> str:
    """The song's identity: sha256 of the file's bytes (a timeline records it; later steps check it)."""
    return hashlib.sha256(storage.read_bytes(uri)).hexdigest()


# librosa's beat tracker leans towards 120 BPM: it can lock onto every other beat of a fast song
# (a 180 BPM click track comes out at 90) or onto the eighth notes of a slow, busy one (a
# syncopated 80 BPM song at 160). Two checks pick the octave (bench/beats.py measures them on
# rendered General MIDI songs of 80-190 BPM):
# - doubling: when the onsets halfway between the tracked beats are at least HALF_BEAT_STRENGTH
#   of those on them, something plays between them and twice the tempo is tried, up to
#   FASTEST_BPM (songs of 166-190 BPM read at half tempo: 0.6-0.76; click tracks read at their
#   own tempo: 0.0);
# - the backbeat: in most popular music the snare plays every other beat (2 and 4). In the band
#   of the kick and snare bodies (BACKBEAT_BAND_HZ, the percussive part of the spectrum), the
#   strength on beats numbered 0-3 in fours follows a period of 2 beats at the right tempo, and
#   a period of 4 at twice it (a snare on one eighth note of four): when the period-4 contrast
#   is BACKBEAT_RATIO times the period-2 one, the tempo is halved. Measured on the bench's 15
#   songs: 0.4-1.3 on the right tempo, 4.6-9.7 on twice it (two other sets of 15, other seeds:
#   every tempo right). Music without drums (a click track) has no backbeat band to judge and
#   keeps the tracker's reading: a drumless song with busy eighth notes may be read at twice
#   its tempo.
HALF_BEAT_STRENGTH = 0.3
FASTEST_BPM = 210
BACKBEAT_BAND_HZ = (150.0, 400.0)
BACKBEAT_RATIO = 2.5
BACKBEAT_MELS = 96
# The band's share of the percussive power: 29-41% on the bench's songs, 0.4% on click tracks.
BACKBEAT_MIN_SHARE = 0.05
HOP = 512  # samples between onset-envelope frames for beat tracking (23 ms at 22.05 kHz)
FINE_HOP = 128  # where beats are then placed (5.8 ms); tracking at this hop would cost ~16x
# Beats either side whose line a beat is checked against (see _on_the_grid): enough to outvote a
# 2-bar drumless intro tracked off the beat (16 did not on one bench song), few enough that a
# drifting tempo stays close to a line over the window (32 moved good beats of a song ramping
# 100 -> 106 BPM in 30 s: 89% of its keyframes on the beat; 24: 93-100% on every bench song).
GRID_WINDOW = 24
OUT_OF_STEP = 1 / 8  # of a period: a beat further off its neighbours' line is moved onto it


def analyse(samples: np.ndarray, sr: int) -> dict:
    """Tempo, beat and onset times, and the onset-strength envelope (librosa), beats from the
    song's start to its end."""
    import librosa

    # librosa's onset_strength(y=...), from a power spectrogram the backbeat shares.
    power = np.abs(librosa.stft(samples, hop_length=HOP)) ** 2
    mel = librosa.feature.melspectrogram(S=power, sr=sr)
    envelope = librosa.onset.onset_strength(S=librosa.power_to_db(mel), sr=sr, hop_length=HOP)
    tempo, beats = librosa.beat.beat_track(onset_envelope=envelope, sr=sr, hop_length=HOP)
    tempo = float(np.atleast_1d(tempo)[0])
    if 2 * tempo <= FASTEST_BPM and _strength_between(envelope, beats) >= HALF_BEAT_STRENGTH:
        tempo, beats = _track(envelope, sr, 2 * tempo)
    if _backbeat_every_fourth(_backbeat_envelope(power, sr), beats) >= BACKBEAT_RATIO:
        tempo, beats = _track(envelope, sr, tempo / 2)
    fine = librosa.onset.onset_strength(y=samples, sr=sr, hop_length=FINE_HOP)
    beat_times = librosa.frames_to_time(_on_fine_grid(beats, fine, HOP // FINE_HOP), sr=sr, hop_length=FINE_HOP)
    onsets = librosa.onset.onset_detect(onset_envelope=envelope, sr=sr, hop_length=HOP, units="time")
    env_times = librosa.times_like(envelope, sr=sr, hop_length=HOP)
    # The tempo from the tracked beats alone: the continued ones would weigh their edge's period.
    return {"tempo_bpm": beat_tempo(beat_times, fallback=tempo),
            "beats_s": [float(b) for b in _on_the_grid(beat_times, len(samples) / sr)],
            "onsets_s": [float(o) for o in onsets],
            "envelope": envelope.astype(np.float64), "envelope_t": env_times}


def _track(envelope: np.ndarray, sr: int, bpm: float) -> tuple[float, np.ndarray]:
    import librosa

    tempo, beats = librosa.beat.beat_track(onset_envelope=envelope, sr=sr, hop_length=HOP, bpm=bpm)
    return float(np.atleast_1d(tempo)[0]), beats


def _strength_between(envelope: np.ndarray, beats: np.ndarray) -> float:
    """Median onset strength halfway between consecutive beats over that on the beats (the
    strongest frame within one of each: an onset lands a frame either side)."""
    if len(beats) < 4:
        return 0.0
    peak = np.maximum.reduce([np.roll(envelope, shift) for shift in (-1, 0, 1)])
    halfway = np.round((beats[:-1] + beats[1:]) / 2).astype(int)
    on_beats = float(np.median(peak[beats]))
    return float(np.median(peak[halfway])) / on_beats if on_beats > 0 else 0.0


def _backbeat_envelope(power: np.ndarray, sr: int) -> np.ndarray | None:
    """Onset strength of the percussive part of a 96-band mel spectrogram (median-filter HPSS:
    cheap on mel bands) in BACKBEAT_BAND_HZ, on the HOP grid; None when the band holds under
    BACKBEAT_MIN_SHARE of the percussive power (no kick or snare: a click track, whose band
    would be all noise). `power`: the song's power spectrogram at HOP."""
    import librosa

    mel = librosa.feature.melspectrogram(S=power, sr=sr, n_mels=BACKBEAT_MELS)
    _, percussive = librosa.decompose.hpss(mel, kernel_size=(31, 17))
    freqs = librosa.mel_frequencies(n_mels=BACKBEAT_MELS, fmax=sr / 2)
    band = (freqs >= BACKBEAT_BAND_HZ[0]) & (freqs <= BACKBEAT_BAND_HZ[1])
    if percussive[band].sum() < BACKBEAT_MIN_SHARE * max(float(percussive.sum()), 1e-12):
        return None
    return librosa.onset.onset_strength(S=librosa.power_to_db(percussive[band]), sr=sr, hop_length=HOP)


def _beat_numbers(beat_times: np.ndarray) -> np.ndarray:
    """Each beat's number counted from the first, a missed beat counting as its own number."""
    intervals = np.diff(beat_times)
    steps = np.maximum(1.0, np.round(intervals / np.median(intervals)))
    return np.concatenate([[0.0], np.cumsum(steps)]).astype(int)


def _backbeat_every_fourth(envelope: np.ndarray | None, beats: np.ndarray) -> float:
    """How much more the strength on beats numbered 0-3 (in fours) follows a period of 4 than
    a period of 2 (see BACKBEAT_RATIO); 0 without a backbeat band or with too few beats to tell."""
    if envelope is None or len(beats) < 16:
        return 0.0
    numbers = _beat_numbers(beats.astype(float))
    peak = np.maximum.reduce([np.roll(envelope, shift) for shift in (-1, 0, 1)])
    by_place = np.array([np.mean(peak[beats[numbers % 4 == place]]) for place in range(4)])
    every_second = abs(by_place[0] + by_place[2] - by_place[1] - by_place[3])
    every_fourth = max(abs(by_place[0] - by_place[2]), abs(by_place[1] - by_place[3]))
    return every_fourth / every_second if every_second > 0 else 0.0


def _on_the_grid(beat_times: np.ndarray, duration_s: float) -> np.ndarray:
    """The beats put back in step and continued to both ends of the music.

    The tracker goes out of step where the beat is weak (in a drumless intro it follows the
    syncopated chords half a beat off) and leaves out weak beats at both ends (so early and late
    lines would find none to snap to). Each beat is
    compared with the line through its neighbours (GRID_WINDOW beats either side: the Theil-Sen
    period and the median offset, which a minority of beats out of step does not move); one more
    than OUT_OF_STEP of a period off the line is moved onto it. The first (last) window's line
    then continues the beats back to the song's start (a count-in under a silent lead-in) and on
    to its end."""
    if len(beat_times) < 4:
        return beat_times
    numbers = _beat_numbers(beat_times)
    lines = []
    for i in range(len(beat_times)):
        window = slice(max(0, i - GRID_WINDOW), i + GRID_WINDOW + 1)
        t, n = beat_times[window], numbers[window]
        period = _theil_sen_slope(t, n)
        lines.append((period, float(np.median(t - period * n))))
    in_step = beat_times.copy()
    for i, (period, offset) in enumerate(lines):
        on_line = offset + period * numbers[i]
        if abs(beat_times[i] - on_line) > OUT_OF_STEP * period:
            in_step[i] = on_line
    (head_period, head_offset), (tail_period, tail_offset) = lines[0], lines[-1]
    before = head_offset + head_period * np.arange(-int(in_step[0] / head_period) - 1, 0)
    after = tail_offset + tail_period * (numbers[-1] + np.arange(1, int((duration_s - in_step[-1]) / tail_period) + 2))
    return np.concatenate([before[before >= 0], in_step, after[after <= duration_s]])


def _theil_sen_slope(y: np.ndarray, x: np.ndarray) -> float:
    """The median of the slopes between all pairs of points (Theil-Sen; x strictly rising):
    scipy.stats.theilslopes without its per-call overhead, which a call per beat would pay."""
    first, second = np.triu_indices(len(x), k=1)
    return float(np.median((y[second] - y[first]) / (x[second] - x[first])))


def _on_fine_grid(beats: np.ndarray, fine: np.ndarray, per_hop: int) -> np.ndarray:
    """Each beat (a frame of the coarse envelope) moved to the strongest frame of the fine
    envelope within one coarse hop of it."""
    frames = []
    for beat in beats:
        first = max(0, (int(beat) - 1) * per_hop)
        frames.append(first + int(np.argmax(fine[first:(int(beat) + 1) * per_hop + 1])))
    return np.asarray(frames, dtype=int)


def beat_tempo(beat_times: np.ndarray, fallback: float) -> float:
    """BPM from the tracked beats: the slope of beat time against beat number (a missed beat
    counts as its own number), fitted by Theil-Sen (the median of pairwise slopes), which the
    odd beat placed off its onset (the tracker's last ones at the end of a song) does not pull.
    librosa's own estimate is one of a grid of whole-hop periods (at 22050 Hz and hop 512,
    117.5 or 123.0 but never 120). `fallback` with under 3 beats."""
    if len(beat_times) < 3:
        return fallback
    period = _theil_sen_slope(beat_times, _beat_numbers(beat_times))
    return 60.0 / period if period > 0 else fallback


def _snap(t: float, targets: list[float], max_shift_s: float) -> float:
    if not targets:
        return t
    nearest = min(targets, key=lambda b: abs(b - t))
    return nearest if abs(nearest - t) <= max_shift_s else t


def line_times(plan: Plan, duration_s: float) -> tuple[list[float], float, str]:
    """Scene start times and the end time: from the LRC when every line has one, else spread."""
    times = [s.time_s for s in plan.scenes]
    if all(t is not None for t in times):
        if any(b <= a for a, b in zip(times, times[1:])):
            raise ReelworksError("the plan's line times are not increasing")
        if times[-1] >= duration_s:
            raise ReelworksError(f"the last lyric line starts at {times[-1]:.2f} s, after the song ends "
                                 f"({duration_s:.2f} s): is this the right song?")
        gaps = np.diff(times) if len(times) > 1 else np.array([min(4.0, duration_s - times[0])])
        end = min(duration_s, times[-1] + float(np.median(gaps)))
        return [float(t) for t in times], float(end), "lrc"
    step = duration_s / len(times)
    return [i * step for i in range(len(times))], duration_s, "spread"


def song_scenes(plan: Plan, duration_s: float) -> tuple[list[dict], str]:
    """Every scene of the whole song in time order, as {"kind", "scene", "time_s"}: `kind` is
    "line" or one of INSTRUMENTAL_KINDS, `scene` the plan scene it takes its prompt and section
    from (for an instrumental one: the line next to it). The first starts at 0 s."""
    starts, end_s, source = line_times(plan, duration_s)
    lines = [{"kind": "line", "scene": i, "time_s": t, "line_time_s": t} for i, t in enumerate(starts)]
    if source != "lrc":  # spread lines already cover the song from 0 to its end
        return lines, source
    line_s = end_s - starts[-1]  # a line's usual length: the median gap between lines
    scenes = []
    if starts[0] >= INSTRUMENTAL_MIN_S:
        scenes.append({"kind": "intro", "scene": 0, "time_s": 0.0})
    else:
        lines[0]["time_s"] = 0.0
    for i, line in enumerate(lines):
        scenes.append(line)
        if i + 1 < len(starts):
            gap = starts[i + 1] - starts[i]
            if gap > BREAK_GAP_RATIO * line_s and gap - line_s >= BREAK_MIN_S:
                scenes.append({"kind": "break", "scene": i, "time_s": starts[i] + line_s})
    if duration_s - end_s >= INSTRUMENTAL_MIN_S:
        scenes.append({"kind": "outro", "scene": len(starts) - 1, "time_s": end_s})
    return scenes, source


def scene_label(keyframe: dict) -> str:
    """A keyframe's line number, or intro/break/outro for a scene without one (for tables)."""
    return keyframe.get("kind", "line") if keyframe.get("line") is None else str(keyframe["line"])


def instrumental_seed(seed: int, kind: str) -> int:
    """An intro, break or outro scene's seed: its neighbouring line's, moved by a fixed step per
    kind, so the scene is another picture in the same style (and the same every run)."""
    step = {"intro": 1, "break": 2, "outro": 3}[kind] * 7919
    return (int(seed) + step) % 2**32


def positions(first: int, end: int, fps: float, energy: float, env_t: np.ndarray, env: np.ndarray) -> list[float]:
    """Interpolation positions of frames [first, end): 0 first, strictly rising, below 1."""
    n = end - first
    linear = np.arange(n) / n
    if energy <= 0 or n == 1:
        return linear.tolist()
    # Onset strength over each frame's span, floored so a silent stretch still moves a little.
    frame_t = (np.arange(first, end) + 0.5) / fps
    strength = np.interp(frame_t, env_t, env)
    strength = strength + 0.05 * max(float(strength.max()), 1e-6)
    cumulative = np.concatenate([[0.0], np.cumsum(strength)[:-1]]) / strength.sum()
    shaped = (1 - energy) * linear + energy * cumulative
    shaped[0] = 0.0
    return shaped.tolist()


def build_timeline(plan: Plan, samples: np.ndarray, sr: int, fps: float, *, snap: str = "beats",
                   energy: float = 0.5, audio_uri: str = "", audio_sha256: str = "") -> dict:
    if snap not in SNAP_MODES:
        raise ReelworksError(f"--snap must be one of {', '.join(SNAP_MODES)}, not {snap!r}")
    if not 0 <= energy <= 1:
        raise ReelworksError(f"--energy must be between 0 and 1, got {energy}")
    if fps <= 0:
        raise ReelworksError(f"--fps must be positive, got {fps}")
    duration_s = len(samples) / sr
    facts = analyse(samples, sr)
    scenes, source = song_scenes(plan, duration_s)
    targets = facts["beats_s"] if snap == "beats" else facts["onsets_s"] if snap == "onsets" else []
    # Snap by at most half a beat: a line far from any beat keeps its own time.
    max_shift = 30.0 / facts["tempo_bpm"] if facts["tempo_bpm"] > 0 else 0.25
    starts = [scene["time_s"] for scene in scenes]
    snapped = [0.0 if t == 0 else _snap(t, targets, max_shift) for t in starts]
    max_frame = int(np.floor(len(samples) * fps / sr))  # the last whole frame the audio covers
    frames: list[int] = []
    for t_raw, t in zip(starts, snapped):
        k = int(round(t * fps))
        if frames and k <= frames[-1]:
            k = max(int(round(t_raw * fps)), frames[-1] + 1)  # two lines on one beat: keep them apart
        frames.append(k)
    if frames[-1] >= max_frame:
        raise ReelworksError(f"the song is too short for its lyrics at {fps} fps: the last scene starts at "
                             f"frame {frames[-1]}, the audio ends at frame {max_frame}")
    grid = frames + [max_frame]
    n_scenes = len(scenes)
    keyframes = []
    for i, entry in enumerate(scenes):
        scene = plan.scenes[entry["scene"]]
        line = entry["kind"] == "line"
        keyframes.append({"index": i, "kind": entry["kind"], "scene": entry["scene"],
                          "line": scene.line if line else None, "lyric": scene.lyric if line else f"({entry['kind']})",
                          "section": scene.section, "prompt": scene.prompt, "negative_prompt": scene.negative_prompt,
                          "seed": scene.seed if line else instrumental_seed(scene.seed, entry["kind"]),
                          "line_time_s": entry.get("line_time_s", starts[i]), "time_s": snapped[i],
                          "frame": grid[i]})
    segments = []
    for i in range(n_scenes):
        first, end = grid[i], grid[i + 1]
        segments.append({"index": i, "a": i, "b": (i + 1) % n_scenes, "first_frame": first, "frames": end - first,
                         "positions": positions(first, end, fps, energy, facts["envelope_t"], facts["envelope"])})
    sections = []
    for s, section in enumerate(plan.sections):
        members = [i for i, kf in enumerate(keyframes) if kf["section"] == s]
        if members:
            sections.append({"index": s, "name": section["name"], "first_frame": grid[members[0]],
                             "end_frame": grid[members[-1] + 1]})
    s0, s1 = round(grid[0] * sr / fps), round(grid[-1] * sr / fps)
    return {
        "version": TIMELINE_VERSION, "fps": fps, "snap": snap, "energy": energy, "times_from": source,
        "audio": {"uri": audio_uri, "sha256": audio_sha256, "sample_rate": sr, "samples": int(len(samples)),
                  "duration_s": duration_s},
        "plan_lyrics_sha256": plan.lyrics_sha256,
        "tempo_bpm": facts["tempo_bpm"], "beats_s": facts["beats_s"], "onsets_s": facts["onsets_s"],
        "keyframes": keyframes, "end": {"time_s": grid[-1] / fps, "frame": grid[-1], "walks_to": 0},
        "grid": grid, "first_frame": grid[0], "end_frame": grid[-1], "frames": grid[-1] - grid[0],
        "audio_range": [int(s0), int(s1)], "segments": segments, "sections": sections,
    }


def load_timeline(uri: str) -> dict:
    if not uri.endswith(".json"):
        uri = storage.join(uri, "timeline.json")
    timeline = storage.read_json(uri)
    if not isinstance(timeline, dict) or "segments" not in timeline or "grid" not in timeline:
        raise ReelworksError(f"{uri} is not a music video timeline")
    return timeline


def check_song(timeline: dict, audio: str) -> None:
    """One clear line when `audio` is not the song the timeline was made from."""
    if audio_fingerprint(audio) != timeline["audio"]["sha256"]:
        raise ReelworksError(f"{audio} is not the song this timeline was made from "
                             f"({timeline['audio']['uri'] or 'another file'}): run `musicvideo timing` on it")


def frame_table(timeline: dict) -> list[tuple[int, int, float]]:
    """(global frame, segment, position) for every frame of the video, in grid order."""
    rows = []
    for segment in timeline["segments"]:
        for j, position in enumerate(segment["positions"]):
            rows.append((segment["first_frame"] + j, segment["index"], position))
    return rows


def timing(audio: str, plan: str, output: str, fps: float, *, snap: str = "beats", energy: float = 0.5) -> dict:
    """Write `timeline.json` and `report/` (with the timeline picture) below `output`."""
    from reelworks import media
    from reelworks.metrics import job_metrics

    plan_obj = load_plan(plan)
    with job_metrics("musicvideo_timing") as m:
        samples, sr = media.load_audio(audio)
        timeline = build_timeline(plan_obj, samples, sr, fps, snap=snap, energy=energy, audio_uri=audio,
                                  audio_sha256=audio_fingerprint(audio))
        m.items.inc(len(timeline["keyframes"]))
        m.gauge("reelworks_musicvideo_frames", "Frames on the video's grid").set(timeline["frames"])
        report = timeline_report(timeline, plan_obj, samples, sr)
        with storage.output_dir(output) as tmp:
            report.save(storage.join(str(tmp), "report"))
            storage.write_text(storage.join(str(tmp), "timeline.json"), json.dumps(timeline, indent=1))
    return {"timeline": timeline, "report": report}


def timeline_report(timeline: dict, plan: Plan, samples: np.ndarray, sr: int):
    from reelworks.reports import Report

    fps = timeline["fps"]
    report = Report("Music video timeline")
    report.text(f"{len(timeline['keyframes'])} keyframes on a grid of {timeline['frames']} frames at {fps:g} fps "
                f"(frames {timeline['first_frame']}-{timeline['end_frame'] - 1}); tempo {timeline['tempo_bpm']:.1f} "
                f"BPM, {len(timeline['beats_s'])} beats; line times from {timeline['times_from']}, snapped to "
                f"{timeline['snap']}; audio samples [{timeline['audio_range'][0]}, {timeline['audio_range'][1]}) "
                f"at {sr} Hz.")
    with report.figure("timeline", "Waveform, beats (grey), keyframes (red) and sections", size=(11, 3.2)) as ax:
        step = max(1, len(samples) // 2000)
        blocks = samples[: len(samples) // step * step].reshape(-1, step)  # min/max per block: no aliasing
        t = (np.arange(len(blocks)) + 0.5) * step / sr
        ax.fill_between(t, blocks.min(axis=1), blocks.max(axis=1), color="#4a6fa5", linewidth=0)
        for beat in timeline["beats_s"]:
            ax.axvline(beat, color="#999999", linewidth=0.5, alpha=0.6)
        colours = ["#f2d7d5", "#d4e6f1", "#d5f5e3", "#fcf3cf", "#e8daef", "#fae5d3"]
        for section in timeline["sections"]:
            ax.axvspan(section["first_frame"] / fps, section["end_frame"] / fps,
                       color=colours[section["index"] % len(colours)], alpha=0.6, zorder=0)
            ax.text(section["first_frame"] / fps, 0.97, section["name"], transform=ax.get_xaxis_transform(),
                    fontsize=7, va="top")
        for kf in timeline["keyframes"]:
            ax.axvline(kf["frame"] / fps, color="#c0392b", linewidth=1.2)
            ax.text(kf["frame"] / fps, 0.03, str(kf["line"]), transform=ax.get_xaxis_transform(), fontsize=7,
                    color="#c0392b")
        ax.axvline(timeline["end_frame"] / fps, color="#c0392b", linewidth=1.2, linestyle="--")
        ax.set_xlabel("seconds")
        ax.set_yticks([])
    report.table(["line", "lyric", "LRC/spread time (s)", "keyframe time (s)", "frame", "frames in segment"],
                 [[scene_label(kf), kf["lyric"], round(kf["line_time_s"], 3), round(kf["time_s"], 3), kf["frame"],
                   seg["frames"]] for kf, seg in zip(timeline["keyframes"], timeline["segments"])])
    report.metric("frames", timeline["frames"])
    report.metric("tempo_bpm", timeline["tempo_bpm"])
    report.metric("keyframes", len(timeline["keyframes"]))
    return report
