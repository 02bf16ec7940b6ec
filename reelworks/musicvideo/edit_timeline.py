"""The rendered music video as an editor's timeline: `edit.otio` (OpenTimelineIO) and, at a
timecode rate, `edit.edl` (CMX 3600).

One video track over `video.mp4`: each scene of the timeline (a lyric line, or an intro, break
or outro) is a clip named by its lyric (`(intro)` and the like for the instrumental ones),
cut at its keyframe's frame and ending where the next scene starts, its source range the
same frames of the video (so an editor can re-cut, trim or re-time the scenes on the song's
beats); the beats are markers on the track. Times are whole frames of the video: at its own
rate (`video_fps`, when render filled the keyframe grid up to an output rate) a grid frame k
is video frame round((k - first) * video_fps / fps), where render's checks put the cuts too.
CMX 3600 counts SMPTE timecode (24, 25, 30 fps and their NTSC rates): at another rate (the
4 fps test grid) only the .otio file is written, and the log says so.
"""
from __future__ import annotations

import logging
from pathlib import Path

from reelworks import storage

log = logging.getLogger(__name__)

OTIO_NAME = "edit.otio"
EDL_NAME = "edit.edl"


def _media_url(video_uri: str) -> str:
    """What an editor opens: s3:// as it is, a local path as an absolute file:// URL."""
    uri = storage.absolute(video_uri)
    return uri if "://" in uri else Path(uri).as_uri()


def edit_timeline(timeline: dict, video_uri: str, video_fps: float | None = None, name: str = "music video"):
    """An `otio.schema.Timeline` of `timeline`'s scenes over the rendered video at `video_uri`
    (its rate `video_fps`; default: the timeline's)."""
    import opentimelineio as otio
    from opentimelineio.opentime import RationalTime, TimeRange

    fps = float(video_fps or timeline["fps"])
    scale = fps / float(timeline["fps"])
    first = timeline["first_frame"]  # video frame 0 is grid frame `first`
    cuts = [int(round((k - first) * scale)) for k in timeline["grid"]]

    def frames(start: int, count: int) -> TimeRange:
        return TimeRange(RationalTime(start, fps), RationalTime(count, fps))

    video = frames(0, cuts[-1])
    edit = otio.schema.Timeline(name=name, global_start_time=RationalTime(0, fps))
    track = otio.schema.Track(name="video", kind=otio.schema.TrackKind.Video)
    edit.tracks.append(track)
    for keyframe, start, end in zip(timeline["keyframes"], cuts, cuts[1:]):
        # One line of text: an EDL comment ends at the line's end.
        label = " ".join(str(keyframe["lyric"]).split())
        reference = otio.schema.ExternalReference(target_url=_media_url(video_uri), available_range=video)
        track.append(otio.schema.Clip(
            name=label, media_reference=reference, source_range=frames(start, end - start),
            metadata={"reelworks": {"scene": keyframe["index"], "kind": keyframe["kind"], "line": keyframe["line"],
                                    "prompt": keyframe["prompt"], "seed": keyframe["seed"],
                                    "time_s": keyframe["time_s"]}}))
    for n, beat_s in enumerate(timeline.get("beats_s", [])):
        frame = round(beat_s * fps - first * scale)  # the song's time as a video frame
        if 0 <= frame < video.duration.value:
            track.markers.append(otio.schema.Marker(name=f"beat {n + 1}", marked_range=frames(frame, 0),
                                                    color=otio.schema.MarkerColor.GREEN))
    return edit


def write_edit(timeline: dict, video_uri: str, folder: str | Path,
               video_fps: float | None = None) -> dict[str, str | None]:
    """Write `edit.otio` (and `edit.edl` at a timecode rate) into `folder`; their file names."""
    import opentimelineio as otio

    edit = edit_timeline(timeline, video_uri, video_fps)
    folder = Path(folder)
    otio.adapters.write_to_file(edit, str(folder / OTIO_NAME), adapter_name="otio_json")
    fps = float(video_fps or timeline["fps"])
    if "cmx_3600" not in otio.adapters.available_adapter_names():
        log.info("no CMX 3600 EDL: the otio-cmx3600-adapter package is not installed (the .otio file is written)")
        return {"otio": OTIO_NAME, "edl": None}
    if not otio.opentime.RationalTime.is_valid_timecode_rate(fps):
        log.info("no CMX 3600 EDL at %g fps: EDL timecode needs 24, 25 or 30 fps (or 23.976, 29.97); "
                 "the .otio file is written", fps)
        return {"otio": OTIO_NAME, "edl": None}
    (folder / EDL_NAME).write_text(otio.adapters.write_to_string(edit, "cmx_3600"))
    return {"otio": OTIO_NAME, "edl": EDL_NAME}
