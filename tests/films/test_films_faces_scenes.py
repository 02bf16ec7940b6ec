"""`films faces`, `films classify` (face heuristic) and `films scenes` on real stills."""
from __future__ import annotations

import json

import numpy as np
import pytest
from films_helpers import run_cli

from reelworks.films.faces import DETECTORS, detect_faces, face_record, find_faces
from reelworks.films.frames import load_image, read_frames
from reelworks.films.samples import dialogue_film
from reelworks.films.scenes import find_dialogues


def hoha_stills(shared_data, shot_type: str, count: int) -> list[np.ndarray]:
    """Stills of one shot type on which the face heuristic (default detector) agrees with the label, in file order."""
    import pandas as pd

    root = shared_data / "shots" / "hoha"
    table = pd.read_csv(root / "labels.csv")
    out = []
    for file in table[table.shot_type == shot_type].file:
        image = load_image(str(root / file))
        record = face_record(image)
        if (shot_type == "MCU") == record["mcu"] and (shot_type == "MCU") == bool(record["faces"]):
            out.append(image)
        if len(out) == count:
            return out
    raise AssertionError(f"not enough {shot_type} stills")


def test_faces_on_a_labelled_mcu(shared_data):
    import xml.etree.ElementTree as ET

    root = shared_data / "shots" / "hoha" / "4-MCU"
    still = sorted(root.glob("*.png"))[0]
    image = load_image(str(still))
    box = ET.parse(still.with_suffix(".xml")).find("object[name='face']/bndbox")
    x0, y0, x1, y1 = (int(box.find(k).text) for k in ("xmin", "ymin", "xmax", "ymax"))
    for detector in DETECTORS:
        faces = find_faces(image, detector=detector)
        assert faces, f"{detector} finds the face of this MCU"
        f = faces[0]
        cx, cy = f.x + f.w / 2, f.y + f.h / 2
        assert x0 <= cx <= x1 and y0 <= cy <= y1, detector  # the detection sits inside the labelled face box
        record = face_record(image, detector=detector)
        assert record["detector"] == detector and record["face_height"] == pytest.approx(faces[0].h / image.shape[0],
                                                                                         abs=1e-4)


def test_dialogue_logic():
    # wide, A, B, A, B, A, wide, C, C  -> one dialogue of 5 shots (1..5)
    mcu = [False, True, True, True, True, True, False, True, True]
    comps = [-1, 0, 1, 0, 1, 0, -2, 2, 2]
    probs = [0.1, 0.9, 0.8, 0.9, 0.8, 0.9, 0.1, 0.9, 0.9]
    starts = list(range(9))
    scenes = find_dialogues(mcu, comps, probs, starts, [s + 1 for s in starts])
    assert len(scenes) == 1
    assert scenes[0].shots == [1, 2, 3, 4, 5] and scenes[0].compositions == [0, 1]
    assert (scenes[0].start_s, scenes[0].end_s) == (1, 6)
    assert 0 < scenes[0].confidence <= 1
    # A, B, A (too short), a third composition breaks the alternation, no MCUs at all
    assert find_dialogues([True] * 3, [0, 1, 0], [1] * 3, [0, 1, 2], [1, 2, 3]) == []
    assert find_dialogues([True] * 5, [0, 1, 2, 0, 1], [1] * 5, list(range(5)), list(range(1, 6))) == []
    assert find_dialogues([False] * 4, [-1, -2, -3, -4], [0] * 4, list(range(4)), list(range(1, 5))) == []
    # a single cut-away inside the dialogue is tolerated
    scenes = find_dialogues([True, True, False, True, True], [0, 1, -1, 0, 1], [1] * 5, list(range(5)),
                            list(range(1, 6)))
    assert len(scenes) == 1 and scenes[0].shots == [0, 1, 3, 4]


@pytest.mark.slow
def test_dialogue_film_end_to_end(shared_data, tmp_path):
    """Two wide shots, then MCU A / MCU B alternating: the report finds one dialogue scene."""
    wide = hoha_stills(shared_data, "ELS", 2)
    a, b = hoha_stills(shared_data, "MCU", 2)
    film = dialogue_film(tmp_path / "dialogue.mp4", [wide[0], wide[1], a, b], "0123232301", shot_s=2.0, fps=8)
    f = lambda *p: str(tmp_path.joinpath(*p))  # noqa: E731
    steps = [["films", "extract", "-i", str(film), "-o", f("frames"), "--every", "2"],
             ["films", "shots", "-i", str(film), "-o", f("shots")],
             ["films", "faces", "-f", f("frames"), "-o", f("frame_faces")],
             ["films", "faces", "-f", f("shots"), "-o", f("shot_faces")],
             ["films", "classify", "-f", f("frames"), "--faces", f("frame_faces"), "-o", f("frame_probs")],
             ["films", "classify", "-f", f("shots"), "--faces", f("shot_faces"), "-o", f("shot_probs")],
             ["films", "scenes", "--shots", f("shots"), "--shot-faces", f("shot_faces"), "--shot-probabilities",
              f("shot_probs"), "--frames", f("frames"), "--frame-probabilities", f("frame_probs"), "-o", f("report")]]
    for args in steps:
        code, text = run_cli(*args)
        assert code == 0, text
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["counts"]["shots"] == 10
    assert report["counts"]["mcu_shots"] == 6
    assert len(report["dialogue_scenes"]) == 1
    scene = report["dialogue_scenes"][0]
    assert scene["shots"] == [2, 3, 4, 5, 6, 7]
    assert (scene["start_s"], scene["end_s"]) == pytest.approx((4.0, 16.0))
    assert len(scene["compositions"]) == 2
    assert report["counts"]["mcu_frames"] >= 4
    assert (tmp_path / "report" / "timeline.png").read_bytes()[:4] == b"\x89PNG"
    assert "dialogue" in (tmp_path / "report" / "report.md").read_text()


def test_a_film_with_no_faces_gives_an_empty_valid_report(synthetic_films, tmp_path):
    from reelworks.films.classify import classify_frames
    from reelworks.films.scenes import build_report
    from reelworks.films.shots import detect_shots

    film = str(synthetic_films[0])
    detect_shots(film, str(tmp_path / "shots"))
    rows = detect_faces(str(tmp_path / "shots"), str(tmp_path / "faces"))
    assert rows and all(r["faces"] == [] and not r["mcu"] for r in rows)
    classify_frames(str(tmp_path / "shots"), str(tmp_path / "probs"), faces_uri=str(tmp_path / "faces"))
    result = build_report(str(tmp_path / "shots"), str(tmp_path / "faces"), str(tmp_path / "probs"),
                          str(tmp_path / "report"))
    assert result["counts"]["dialogue_scenes"] == 0 and result["counts"]["mcu_shots"] == 0
    assert json.loads((tmp_path / "report" / "report.json").read_text())["dialogue_scenes"] == []


def test_bad_frame_folders(tmp_path):
    code, text = run_cli("films", "faces", "-f", str(tmp_path / "nothing"), "-o", str(tmp_path / "out"))
    assert code == 2 and "manifest.jsonl" in text
    code, text = run_cli("films", "faces", "-f", str(tmp_path / "nothing"), "-o", str(tmp_path / "out"),
                         "--face-detector", "dlib")
    assert code == 2 and "unknown face detector 'dlib'" in text and "Traceback" not in text
    (tmp_path / "frames").mkdir()
    (tmp_path / "frames" / "manifest.jsonl").write_text("")
    assert detect_faces(str(tmp_path / "frames"), str(tmp_path / "faces")) == []
    assert read_frames(str(tmp_path / "frames")).rows == []
    code, text = run_cli("films", "classify", "-f", str(tmp_path / "frames"), "-o", str(tmp_path / "p"))
    assert code == 2 and "--model or --faces" in text
