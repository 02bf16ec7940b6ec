"""Step 2: the song -> one global frame grid that every later step follows.

The song is decoded with PyAV (`media.load_audio`); tempo, beats and onsets come from
librosa. Each scene's time is its LRC line time (else the lines are spread evenly over the
song), snapped to the nearest beat (or onset). Then, with `fps`:

- keyframe i sits at frame k_i = round(t_i * fps); the grid ends at k_last (the end keyframe,
  the end of the last line, which walks back to the first scene so the preview loops);
- segment i owns frames [k_i, k_{i+1}): position 0 is exactly keyframe i, the positions rise
  strictly and stay below 1 (keyframe i+1 is the next segment's first frame, never repeated);
  with `energy` > 0 they are reshaped by the song's onset strength (monotone: they move
  faster where the music hits);
- the audio under the video is exactly samples [round(k_0 * sr / fps), round(k_last * sr / fps)),
  so sound and picture cannot drift apart over a long song.

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

TIMELINE_VERSION = 1
SNAP_MODES = ("beats", "onsets", "none")


def audio_fingerprint(uri: str) -> str:
    """The song's identity: sha256 of the file's bytes (a timeline records it; later steps check it)."""
    return hashlib.sha256(storage.read_bytes(uri)).hexdigest()


def analyse(samples: np.ndarray, sr: int) -> dict:
    """Tempo, beat and onset times, and the onset-strength envelope (librosa)."""
    import librosa

    hop = 512
    envelope = librosa.onset.onset_strength(y=samples, sr=sr, hop_length=hop)
    tempo, beats = librosa.beat.beat_track(onset_envelope=envelope, sr=sr, hop_length=hop, units="time")
    onsets = librosa.onset.onset_detect(onset_envelope=envelope, sr=sr, hop_length=hop, units="time")
    env_times = librosa.times_like(envelope, sr=sr, hop_length=hop)
    return {"tempo_bpm": float(np.atleast_1d(tempo)[0]), "beats_s": [float(b) for b in beats],
            "onsets_s": [float(o) for o in onsets], "envelope": envelope.astype(np.float64), "envelope_t": env_times}


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
    starts, end_s, source = line_times(plan, duration_s)
    targets = facts["beats_s"] if snap == "beats" else facts["onsets_s"] if snap == "onsets" else []
    # Snap by at most half a beat: a line far from any beat keeps its own time.
    max_shift = 30.0 / facts["tempo_bpm"] if facts["tempo_bpm"] > 0 else 0.25
    snapped = [_snap(t, targets, max_shift) for t in starts]
    end_snapped = _snap(end_s, [b for b in targets if b <= duration_s], max_shift)
    frames: list[int] = []
    for t_raw, t in zip(starts, snapped):
        k = int(round(t * fps))
        if frames and k <= frames[-1]:
            k = max(int(round(t_raw * fps)), frames[-1] + 1)  # two lines on one beat: keep them apart
        frames.append(k)
    k_end = int(round(end_snapped * fps))
    max_frame = int(np.floor(len(samples) * fps / sr))  # the audio slice must exist
    k_end = min(max(k_end, frames[-1] + 1), max_frame)
    if k_end <= frames[-1]:
        raise ReelworksError(f"the song is too short for its lyrics at {fps} fps: the last line starts at "
                             f"frame {frames[-1]}, the audio ends at frame {max_frame}")
    grid = frames + [k_end]
    n_scenes = len(plan.scenes)
    keyframes = []
    for i, scene in enumerate(plan.scenes):
        keyframes.append({"index": i, "line": scene.line, "lyric": scene.lyric, "section": scene.section,
                          "prompt": scene.prompt, "negative_prompt": scene.negative_prompt, "seed": scene.seed,
                          "line_time_s": starts[i], "time_s": snapped[i], "frame": grid[i]})
    segments = []
    for i in range(n_scenes):
        first, end = grid[i], grid[i + 1]
        segments.append({"index": i, "a": i, "b": (i + 1) % n_scenes, "first_frame": first, "frames": end - first,
                         "positions": positions(first, end, fps, energy, facts["envelope_t"], facts["envelope"])})
    sections = []
    for s, section in enumerate(plan.sections):
        members = [i for i, scene in enumerate(plan.scenes) if scene.section == s]
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
        "keyframes": keyframes, "end": {"time_s": end_snapped, "frame": grid[-1], "walks_to": 0},
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
                 [[kf["line"], kf["lyric"], round(kf["line_time_s"], 3), round(kf["time_s"], 3), kf["frame"],
                   seg["frames"]] for kf, seg in zip(timeline["keyframes"], timeline["segments"])])
    report.metric("frames", timeline["frames"])
    report.metric("tempo_bpm", timeline["tempo_bpm"])
    report.metric("keyframes", len(timeline["keyframes"]))
    return report
