"""Videos the film tests need, made once per session with FFmpeg and PyAV.

Each is small (a few seconds at low resolution) but has the property under test: a 10 s
keyframe interval, variable frame rate, a truncated copy, a zero-length file, a text file
named .mp4, and a stream whose codec this FFmpeg cannot decode.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import missing


def ffmpeg(require, *args: str) -> None:
    subprocess.run([require("ffmpeg"), "-v", "error", "-y", *args], check=True)


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> dict[str, Path]:
    import shutil

    binary = shutil.which("ffmpeg")
    if not binary:
        missing("ffmpeg is not installed (make test installs it)")
    require = lambda name: binary  # noqa: E731
    root = tmp_path_factory.mktemp("media")
    out = {}
    # 25 fps, 24 s, one keyframe every 10 s (no scene-cut keyframes): decoding from a keyframe is costly.
    out["gop10"] = root / "gop10.mp4"
    ffmpeg(require, "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=24", "-c:v", "libx264",
           "-preset", "veryfast", "-g", "250", "-keyint_min", "250", "-sc_threshold", "0", "-bf", "2",
           "-movflags", "+faststart", str(out["gop10"]))
    # Variable frame rate: 30 fps for 6 s, then 8 fps for 6 s, timestamps kept as they are.
    out["vfr"] = root / "vfr.mkv"
    ffmpeg(require, "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30:duration=6",
           "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=8:duration=6",
           "-filter_complex", "[0:v]settb=1/1000[a];[1:v]settb=1/1000[b];[a][b]concat=n=2:v=1[v]", "-map", "[v]",
           "-fps_mode", "vfr", "-c:v", "libx264", "-preset", "veryfast", "-g", "48", str(out["vfr"]))
    # The first 40 % of the 10 s-GOP file: the moov atom is at the front, the media data stops.
    data = out["gop10"].read_bytes()
    out["truncated"] = root / "truncated.mp4"
    out["truncated"].write_bytes(data[: int(len(data) * 0.4)])
    out["empty"] = root / "empty.mp4"
    out["empty"].write_bytes(b"")
    out["text"] = root / "notes.mp4"
    out["text"].write_text("these are not the frames you are looking for\n" * 50)
    # An AVI whose video FourCC names a codec nobody has: the container opens, no decoder exists.
    avi = root / "xvid.avi"
    ffmpeg(require, "-f", "lavfi", "-i", "testsrc=size=160x120:rate=10:duration=2", "-c:v", "mpeg4",
           "-vtag", "XVID", str(avi))
    out["unsupported"] = root / "unsupported.avi"
    out["unsupported"].write_bytes(avi.read_bytes().replace(b"XVID", b"QQQQ"))
    return out


@pytest.fixture(scope="session")
def synthetic_films(tmp_path_factory) -> list[Path]:
    from reelworks.films.samples import synthetic_film

    root = tmp_path_factory.mktemp("films")
    return [synthetic_film(root / f"film_{i}.mp4", shots=3 + i, shot_s=2.0, fps=12, size=(160, 96), seed=i)
            for i in range(2)]
