"""`t2v evaluate`: temporal consistency with OpenCV/scikit-image, CLIP agreement, the gallery;
the CLI chain; `reelworks run t2v --local`."""
from __future__ import annotations

import json

import numpy as np
import pytest

from reelworks.t2v import evaluate


def texture(height=64, width=80, seed=0) -> np.ndarray:
    """A smooth random texture (optical flow needs structure to track)."""
    import cv2

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (height // 8, width // 8, 3), dtype=np.uint8)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)


def test_a_still_clip_is_consistent_and_a_panning_one_moves_as_far_as_it_pans():
    still = [texture()] * 4
    assert evaluate.ssim_pairs(still) == pytest.approx([1.0] * 3)
    assert max(evaluate.flow_magnitudes(still)) < 0.01
    base = texture(64, 120)
    pan = [base[:, 3 * i:3 * i + 80] for i in range(5)]  # 3 px per frame
    flow = evaluate.flow_magnitudes(pan)
    assert all(2.0 < f < 4.0 for f in flow), flow
    noise = [np.random.default_rng(i).integers(0, 255, (64, 80, 3), dtype=np.uint8) for i in range(4)]
    assert max(evaluate.ssim_pairs(noise)) < 0.2 < min(evaluate.ssim_pairs(pan))


def test_a_frozen_clip_scores_zero_and_a_moving_one_its_consistency():
    """SSIM alone rewards stillness (identical frames score 1): the temporal score does not."""
    still = [texture()] * 4
    base = texture(64, 120)
    pan = [base[:, 3 * i:3 * i + 80] for i in range(5)]
    verdicts = {}
    for name, frames in (("still", still), ("pan", pan)):
        ssim, flow = np.mean(evaluate.ssim_pairs(frames)), np.mean(evaluate.flow_magnitudes(frames))
        verdicts[name] = evaluate.motion(flow, frames[0].shape), evaluate.temporal_score(ssim, evaluate.motion(
            flow, frames[0].shape))
    assert verdicts["still"] == ("frozen", 0.0)
    assert verdicts["pan"][0] == "moving" and verdicts["pan"][1] > 0.2
    assert evaluate.motion(7.0, (64, 80, 3)) == "jumpy"  # over 10% of the 64-px side every frame


def write_clips(folder, clips: dict[str, list[np.ndarray]], fps: float) -> str:
    """An `animate` output holding `clips` (id -> frames), as the step writes it."""
    from reelworks.media import png_bytes

    entries = []
    for clip_id, frames in clips.items():
        (folder / "clips" / clip_id).mkdir(parents=True)
        names = [f"clips/{clip_id}/frame_{i:04d}.png" for i in range(len(frames))]
        for name, frame in zip(names, frames):
            (folder / name).write_bytes(png_bytes(frame))
        height, width = frames[0].shape[:2]
        entries.append({"id": clip_id, "prompt": f"a {clip_id} shot", "seed": 0, "kind": "wan", "model": "tiny",
                        "frames": len(frames), "fps": fps, "width": width, "height": height,
                        "frame_files": names})
    (folder / "animate.json").write_text(json.dumps({"kind": "wan", "model": "tiny", "frames": 6, "fps": fps,
                                                     "width": 80, "height": 64, "clips": entries}))
    return str(folder)


def test_a_still_clip_keeps_its_frames_in_the_gif_and_is_flagged_frozen(tmp_path, caplog):
    """Pillow merges identical consecutive GIF frames into one longer one: a still clip's gif holds
    one image but plays 6 frames; counted by duration it is not broken, and it is flagged frozen."""
    from PIL import Image

    from reelworks.t2v.export import export

    base = texture(64, 120)
    clips = write_clips(tmp_path / "clips", {"still": [texture()] * 6,
                                              "pan": [base[:, 3 * i:3 * i + 80] for i in range(6)]}, fps=7)
    export(clips, str(tmp_path / "videos"))
    with Image.open(tmp_path / "videos" / "still.gif") as gif:
        assert gif.n_frames < 6  # merged by the encoder
    result = evaluate.evaluate(clips, str(tmp_path / "videos"), str(tmp_path / "evaluation"), clip_model="none",
                               embed_model="")
    rows = {r["id"]: r for r in result["clips"]}
    assert rows["still"]["gif_frames"] == rows["pan"]["gif_frames"] == 6
    assert rows["still"]["files_ok"] and rows["pan"]["files_ok"]
    assert (rows["still"]["motion"], rows["still"]["temporal_score"]) == ("frozen", 0.0)
    assert rows["still"]["ssim_mean"] == pytest.approx(1.0)  # what used to make it the best clip
    assert rows["pan"]["motion"] == "moving" and rows["pan"]["temporal_score"] > 0.2
    assert result["summary"]["frozen"] == 1 and "clip_first" not in result["summary"]
    assert any("clip still is frozen" in r.getMessage() for r in caplog.records)


def test_clip_scoring_without_weights_warns_and_goes_on(monkeypatch, caplog):
    """auto with real models wants CLIP ViT-B/32; offline and not cached, one warning, no scores."""
    monkeypatch.setattr(evaluate, "DEFAULT_CLIP", "reelworks-tests/no-such-clip")
    assert evaluate.clip_scorer("auto", "Lightricks/LTX-Video") == (None, None)
    assert any("no text-frame agreement: cannot load model 'reelworks-tests/no-such-clip'" in r.getMessage()
               for r in caplog.records)
    assert evaluate.clip_scorer("none", "tiny") == (None, None)


def test_clip_agreement_is_per_frame_and_equal_for_equal_frames(tiny_clip):
    scorer = evaluate.Clip(tiny_clip)
    frames = [texture(seed=1)] * 3 + [texture(seed=2)]
    scores = scorer.agreement("A man chases a thief across the rooftops at night.", frames)
    assert len(scores) == 4 and all(-1.0 <= s <= 1.0 for s in scores)
    assert scores[0] == pytest.approx(scores[1]) == pytest.approx(scores[2])
    assert scores[3] != pytest.approx(scores[0])
    assert scorer.agreement("A man chases a thief across the rooftops at night.", frames) == scores


def test_the_cli_chain_writes_clips_videos_and_a_scored_gallery(tmp_path, capsys):
    """CLIP scoring is on by default: clips of the tiny preset get the tiny CLIP (offline)."""
    from reelworks.cli import main

    clips, videos, out = (str(tmp_path / d) for d in ("clips", "videos", "evaluation"))
    csv = tmp_path / "prompts.csv"
    csv.write_text('prompt\n"A storm over the harbour."\n"Two friends dance in a neon arcade."\n')
    main(["t2v", "animate", "--prompts", str(csv), "--model", "tiny", "--kind", "wan", "--frames", "6", "--fps",
          "5", "--width", "32", "--height", "32", "--output", clips])
    main(["t2v", "export", "--clips", clips, "--output", videos])
    main(["t2v", "evaluate", "--clips", clips, "--videos", videos, "--output", out])
    lines = capsys.readouterr().out.strip().splitlines()
    assert "2 clip(s) of 6 frames at 32x32 (wan, generated 9, rule 4k+1, 5 fps)" in lines[0]
    assert lines[-2].startswith("2/2 clips with the frames and fps asked for") and "CLIP first" in lines[-2]
    assert lines[-1] == f"gallery: {out}/report/report.html"
    result = json.loads((tmp_path / "evaluation" / "evaluation.json").read_text())
    assert result["summary"]["files_ok"] == 2 and result["summary"]["prompt_diversity"] > 0.3
    for clip in result["clips"]:
        assert (clip["mp4_frames"], clip["mp4_fps"], clip["gif_frames"], clip["gif_loops"]) == (6, 5.0, 6, True)
        assert len(clip["clip_per_frame"]) == 6
        assert clip["clip_drop"] == pytest.approx(clip["clip_first"] - clip["clip_last"])
    html = (tmp_path / "evaluation" / "report" / "report.html").read_text()
    assert html.count("<img") == 2 * 4  # first frame, gif, strip, CLIP chart per clip
    assert "A storm over the harbour." in html
    assert (tmp_path / "evaluation" / "report" / "p000.gif").read_bytes()[:6] == b"GIF89a"


def test_the_gallery_shows_the_image_an_image_to_video_clip_animates(tmp_path):
    """ltx-i2v animates an image: the gallery shows that image beside the clip, before its first frame."""
    import base64

    from PIL import Image

    from reelworks.t2v.animate import animate
    from reelworks.t2v.export import export

    Image.fromarray(texture(32, 32, seed=3)).save(tmp_path / "still.png")
    clips, videos = str(tmp_path / "clips"), str(tmp_path / "videos")
    manifest = animate(clips, images=str(tmp_path / "still.png"), model="tiny", kind="ltx-i2v", frames=3, fps=4,
                       width=32, height=32, prompt="a quiet street")
    (clip,) = manifest["clips"]
    with Image.open(tmp_path / "clips" / clip["source_image"]) as source:
        assert np.array_equal(np.asarray(source), texture(32, 32, seed=3))
    export(clips, videos)
    evaluate.evaluate(clips, videos, str(tmp_path / "evaluation"), embed_model="", clip_model="none")
    html = (tmp_path / "evaluation" / "report" / "report.html").read_text()
    source_uri = base64.b64encode((tmp_path / "clips" / clip["source_image"]).read_bytes()).decode()
    first_uri = base64.b64encode((tmp_path / "videos" / "c000_first.png").read_bytes()).decode()
    assert source_uri in html and "source image" in html
    assert html.index(source_uri) < html.index(first_uri)


@pytest.mark.slow
def test_reelworks_run_t2v_local_writes_the_gallery(tmp_path, capsys):
    from reelworks.cli import main

    gallery = tmp_path / "gallery"
    main(["run", "t2v", "--local", "--pipeline-root", str(tmp_path / "root"), "--param", f"output={gallery}",
          "--param", "n=2", "--param", "frames=10"])
    assert "pipeline t2v finished" in capsys.readouterr().out
    result = json.loads((gallery / "evaluation.json").read_text())
    assert result["summary"]["clips"] == result["summary"]["files_ok"] == 2
    assert all(c["mp4_frames"] == c["gif_frames"] == 10 for c in result["clips"])
    assert all(c["mp4_fps"] == 24 for c in result["clips"])  # LTX's own rate, with no fps given
    assert "clip_first" in result["summary"]  # CLIP on by default: the tiny one for the tiny preset
    html = (gallery / "report" / "report.html").read_text()
    assert "Nearest real descriptions" in html and html.count("<img") >= 2 * 4  # source image, frame, gif, strip
    assert "source image" in html
