"""`films shots`: PySceneDetect's own golden cut lists, and the shots output contract."""
from __future__ import annotations

import json

import pytest

from reelworks.errors import ReelworksError
from reelworks.films.frames import read_frames
from reelworks.films.shots import detect_cuts, detect_shots, read_shots

DETECTORS = {"ContentDetector": "content", "AdaptiveDetector": "adaptive", "ThresholdDetector": "threshold",
             "HistogramDetector": "histogram", "HashDetector": "hash"}
# The goldens name a threshold in the file name (t30, t5) or PySceneDetect's defaults of the
# revision that wrote them. HistogramDetector's defaults changed since (0.05/256 bins -> 0.2/128).
GOLDEN_PARAMS = {("content", "t30"): (30.0, None), ("adaptive", "t5"): (5.0, None),
                 ("histogram", "default"): (0.05, {"bins": 256})}
VIDEOS = ("counter.mp4", "fades.mp4", "goldeneye-vfr-drop3.mp4",
          pytest.param("testvideo.mp4", marks=pytest.mark.slow))  # 24 s of 720p, seven detectors


@pytest.mark.parametrize("video", VIDEOS)
def test_cuts_match_pyscenedetect_goldens(shared_data, video):
    folder = shared_data / "video" / "pyscenedetect"
    goldens = sorted((folder / "goldens").glob(f"{video}.*.json"))
    assert len(goldens) == 7
    for golden in goldens:
        detector_name, suffix = golden.name[len(video) + 1:].split(".")[:2]
        detector = DETECTORS[detector_name]
        threshold, options = GOLDEN_PARAMS.get((detector, suffix), (None, None))
        expected = json.loads(golden.read_text())["cuts"]
        assert detect_cuts(folder / video, detector, threshold, options) == expected, golden.name


def test_shots_with_times_and_frames(synthetic_films, tmp_path):
    film = synthetic_films[1]  # 4 shots of 2 s at 12 fps
    result = detect_shots(str(film), str(tmp_path / "shots"))
    shots = read_shots(str(tmp_path / "shots"))
    assert shots == result
    assert result["cuts"] == [24, 48, 72]
    assert [(s["start_s"], s["end_s"]) for s in result["shots"]] == [(0, 2), (2, 4), (4, 6), (6, 8)]
    frames = read_frames(str(tmp_path / "shots"))
    assert [r["shot"] for r in frames.rows] == [0, 1, 2, 3]
    assert [r["time_s"] for r in frames.rows] == pytest.approx([1, 3, 5, 7], abs=1 / 12)


def test_a_film_without_cuts_is_one_shot(tmp_path):
    import numpy as np

    from reelworks import media

    path = media.write_video(tmp_path / "still.mp4", (np.full((64, 96, 3), 90, np.uint8) for _ in range(30)), 10)
    result = detect_shots(str(path), str(tmp_path / "shots"), frames=False)
    assert result["cuts"] == [] and len(result["shots"]) == 1
    assert result["shots"][0]["end_s"] == pytest.approx(3.0)


def test_bad_input(media, tmp_path):
    with pytest.raises(ReelworksError, match="not a video"):
        detect_shots(str(media["text"]), str(tmp_path / "s"))
    with pytest.raises(ReelworksError, match="unknown detector"):
        detect_shots(str(media["gop10"]), str(tmp_path / "s"), detector="magic")
    assert not (tmp_path / "s" / "shots.json").exists()
