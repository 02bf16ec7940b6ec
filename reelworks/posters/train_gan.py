"""`posters train-gan`: a conditional DCGAN on prepared posters (genres + decade).

Output folder: `generator.keras`, `discriminator.keras`, `samples/step-NNNNNN.png` (a grid
every `sample_every` steps: one row per genre, fixed noise per column), `losses.json`,
`losses.png`, `report/`, `checkpoints/`, and last `gan_card.json` (the completion marker).

Every `checkpoint_every` steps both networks' weights (Keras `.weights.h5`), both Adam states
(a TF checkpoint) and the losses so far go to `checkpoints/` (`reelworks.checkpoints`); a
killed run started again resumes from the newest complete one. Batches come from the
position in a seeded epoch order and the noise of step i from (seed, i), so the resumed run
trains on exactly what the uninterrupted one would have.
"""
from __future__ import annotations

import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np

from reelworks import checkpoints, storage
from reelworks.errors import ReelworksError
from reelworks.metrics import job_metrics
from reelworks.posters.prep import load_manifest, local_split_files
from reelworks.progress import track
from reelworks.reports import Report

log = logging.getLogger(__name__)
CARD = "gan_card.json"


def _training_images(data: str, manifest: dict, size: int):
    """Pixels in -1..1 at size x size and condition vectors, from train + validation."""
    import pandas as pd
    import tensorflow as tf

    from reelworks.imageclf import data as data_lib
    from reelworks.imageclf.spec import ImageSpec, Task
    from reelworks.posters import gan

    task = Task("multilabel", tuple(manifest["classes"]))
    image = ImageSpec.from_dict(manifest["image"])
    files = [f for s in ("train", "validation") for f in local_split_files(data, manifest, s)]
    if not files:
        raise ReelworksError(f"no training posters in {data}")
    ids, pixels, labels = data_lib.read_records(files, image, task)
    table = pd.read_csv(storage.join(data, "posters.csv"), dtype={"imdbId": str}, keep_default_na=False)
    years = dict(zip(table["imdbId"], table["year"]))
    square = tf.image.resize(pixels.astype(np.float32), (size, size), antialias=True).numpy()
    return square / 127.5 - 1.0, gan.conditions(labels, [years.get(i) for i in ids]), labels, [years.get(i) for i in ids]


NOISE_RATIO = 2.0  # samples this many times rougher than real posters are called noise


def roughness(pixels: np.ndarray) -> float:
    """Mean absolute difference between neighbouring pixels (0..255 scale): about 10-20 on
    real posters at 32x32, several times more on the untrained generator's noise."""
    x = np.asarray(pixels, np.float32)
    return float((np.abs(np.diff(x, axis=1)).mean() + np.abs(np.diff(x, axis=2)).mean()) / 2)


def noise_check(samples: np.ndarray, real: np.ndarray) -> dict:
    """Whether generated posters are still noise rather than posters: static (far rougher than
    real posters), flat (far less contrast within an image: the untrained generator's grey) or
    collapsed (the same image for every noise vector and genre)."""
    samples, real = np.asarray(samples, np.float32), np.asarray(real, np.float32)
    sample_r, real_r = roughness(samples), roughness(real)
    spread, real_spread = float(samples.std(axis=0).mean()), float(real.std(axis=0).mean())
    contrast = float(samples.reshape(len(samples), -1).std(axis=1).mean())
    real_contrast = float(real.reshape(len(real), -1).std(axis=1).mean())
    check = {"sample_roughness": round(sample_r, 2), "real_roughness": round(real_r, 2),
             "roughness_ratio": round(sample_r / max(real_r, 1e-6), 3),
             "sample_contrast": round(contrast, 2), "real_contrast": round(real_contrast, 2),
             "sample_spread": round(spread, 2), "real_spread": round(real_spread, 2),
             "static": bool(sample_r > NOISE_RATIO * real_r), "flat": bool(contrast < 0.35 * real_contrast),
             "collapsed": bool(spread < 0.25 * real_spread)}
    check["noise"] = check["static"] or check["flat"] or check["collapsed"]
    return check


def train_gan(data: str, output: str, *, size: int = 32, steps: int = 2000, batch_size: int = 64,
              z_dim: int = 100, width: int = 64, learning_rate: float = 2e-4, sample_every: int = 200,
              seed: int = 0, checkpoint_every: int = 200, keep_checkpoints: int = 2) -> dict:
    """Train the conditional GAN, resuming from `output`/checkpoints; returns its card."""
    if steps < 1 or batch_size < 2:
        raise ReelworksError("steps must be >= 1 and batch_size >= 2")
    if checkpoint_every < 1 or sample_every < 1:
        raise ReelworksError("checkpoint_every and sample_every must be >= 1")
    import keras
    import tensorflow as tf

    from reelworks.imageclf.evaluation import gallery_png
    from reelworks.posters import gan

    manifest = load_manifest(data)
    classes = manifest["classes"]
    keras.utils.set_random_seed(seed)
    images, conds, labels, years = _training_images(data, manifest, size)
    started = time.time()
    generator = gan.build_generator(size, len(classes), z_dim, width)
    discriminator = gan.build_discriminator(size, len(classes), width)
    g_opt = keras.optimizers.Adam(learning_rate, beta_1=0.5)
    d_opt = keras.optimizers.Adam(learning_rate, beta_1=0.5)
    bce = keras.losses.BinaryCrossentropy(from_logits=True)
    images = images.astype(np.float32)
    order = checkpoints.EpochOrder(len(images), seed)

    @tf.function
    def step(real, cond, z):
        with tf.GradientTape() as d_tape, tf.GradientTape() as g_tape:
            fake = generator([z, cond], training=True)
            real_logit = discriminator([real, cond], training=True)
            fake_logit = discriminator([fake, cond], training=True)
            # One-sided label smoothing (0.9) keeps the discriminator from overconfidence.
            d_loss = bce(tf.fill(tf.shape(real_logit), 0.9), real_logit) + bce(tf.zeros_like(fake_logit), fake_logit)
            g_loss = bce(tf.ones_like(fake_logit), fake_logit)
        d_opt.apply_gradients(zip(d_tape.gradient(d_loss, discriminator.trainable_variables),
                                  discriminator.trainable_variables))
        g_opt.apply_gradients(zip(g_tape.gradient(g_loss, generator.trainable_variables),
                                  generator.trainable_variables))
        return d_loss, g_loss

    # Fixed grid: one row per genre (single genre, the most common decade), one noise per column.
    common_decade = int(np.bincount([gan.decade_index(y) for y in years]).argmax())
    grid_cond = np.zeros((len(classes) * 6, conds.shape[1]), np.float32)
    for row in range(len(classes)):
        grid_cond[row * 6:(row + 1) * 6, row] = 1.0
    grid_cond[:, len(classes) + common_decade] = 1.0
    grid_z = np.tile(np.random.default_rng(seed).normal(size=(6, z_dim)).astype(np.float32), (len(classes), 1))

    def sample_grid(i: int) -> np.ndarray:
        samples = gan.to_uint8(generator([grid_z, grid_cond], training=False))
        captions = [classes[r // 6] if r % 6 == 0 else "" for r in range(len(samples))]
        storage.write_bytes(storage.join(output, "samples", f"step-{i:06d}.png"),
                            gallery_png(list(samples), captions, columns=6, cell_inches=1.1,
                                        title=f"step {i}: one row per genre"))
        return samples

    # Adam's moments are created up front, so that a checkpoint can be read into them.
    g_opt.build(generator.trainable_variables)
    d_opt.build(discriminator.trainable_variables)
    optimizer_state = tf.train.Checkpoint(generator=g_opt, discriminator=d_opt)
    checkpoint_root = storage.join(output, "checkpoints")

    def save(folder: Path) -> None:
        generator.save_weights(folder / "generator.weights.h5")
        discriminator.save_weights(folder / "discriminator.weights.h5")
        optimizer_state.write(str(folder / "optimizers"))
        (folder / "losses.json").write_text(json.dumps(losses))

    def load(folder: Path, at_step: int) -> dict:
        generator.load_weights(folder / "generator.weights.h5")
        discriminator.load_weights(folder / "discriminator.weights.h5")
        optimizer_state.read(str(folder / "optimizers")).assert_consumed()
        return json.loads((folder / "losses.json").read_text())

    done, losses = checkpoints.load_newest(checkpoint_root, load) or (0, {"step": [], "d_loss": [], "g_loss": []})
    if done > steps:
        raise ReelworksError(f"{checkpoint_root} holds a checkpoint at step {done}, past --steps {steps}: "
                             "train more steps or use a new output")
    if done:
        log.info("resumed from checkpoint %s (step %d of %d)", checkpoints.name(done), done, steps)
    storage.delete(storage.join(output, CARD))  # the output is incomplete until the card is written again
    with job_metrics("posters_train_gan") as metrics, tempfile.TemporaryDirectory(prefix="reelworks-gan-") as tmp:
        for i in track(range(done + 1, steps + 1), "training the GAN", total=steps - done, unit="step"):
            rows = order.indices((i - 1) * batch_size, batch_size)
            z = np.random.default_rng([seed, i]).standard_normal((batch_size, z_dim), dtype=np.float32)
            d_loss, g_loss = step(images[rows], conds[rows], z)
            losses["step"].append(i)
            losses["d_loss"].append(float(d_loss))
            losses["g_loss"].append(float(g_loss))
            if not np.isfinite(losses["d_loss"][-1] + losses["g_loss"][-1]):
                raise ReelworksError(f"GAN training diverged at step {i} (loss is not finite)")
            metrics.items.inc(batch_size)
            if i % sample_every == 0 and i < steps:
                sample_grid(i)
            if i % checkpoint_every == 0 or i == steps:
                checkpoints.save(checkpoint_root, i, save, keep=keep_checkpoints)
        samples = sample_grid(steps)
        local = Path(tmp)
        generator.save(local / "generator.keras")
        discriminator.save(local / "discriminator.keras")
        storage.upload_file(local / "generator.keras", storage.join(output, "generator.keras"))
        storage.upload_file(local / "discriminator.keras", storage.join(output, "discriminator.keras"))
        storage.write_text(storage.join(output, "losses.json"), json.dumps(losses))
        card = {"classes": classes, "decades": list(gan.DECADES), "size": size, "z_dim": z_dim, "width": width,
                "steps": steps, "batch_size": batch_size, "learning_rate": learning_rate, "seed": seed,
                "dataset": data, "images": len(images), "train_seconds": round(time.time() - started, 1),
                "genre_prevalence": (labels.mean(axis=0)).round(4).tolist(),
                "decades_seen": sorted({gan.DECADES[d] for d in (gan.decade_index(y) for y in years)
                                        if d < len(gan.DECADES)}),
                "final_d_loss": losses["d_loss"][-1], "final_g_loss": losses["g_loss"][-1]}
        rng = np.random.default_rng(seed)
        real_uint8 = ((images[rng.choice(len(images), min(len(images), 256), replace=False)] + 1) * 127.5)
        card["noise_check"] = noise_check(samples, real_uint8.round().clip(0, 255))
        # The grid is genre-major with the same 6 noise vectors per genre: how much the picture changes
        # with the genre (same noise) against how much it changes with the noise (same genre).
        grid = np.asarray(samples, np.float32).reshape(len(classes), 6, -1)
        by_genre, by_noise = float(grid.std(axis=0).mean()), float(grid.std(axis=1).mean())
        card["noise_check"]["genre_effect"] = round(by_genre / max(by_noise, 1e-6), 3)
        card["noise_check"]["genre_ignored"] = bool(by_genre < 0.1 * by_noise)
        report = _report(card, losses, samples)
        report.save(storage.join(output, "report"))
        storage.write_text(storage.join(output, CARD), json.dumps(card, indent=2))
        metrics.gauge("reelworks_posters_gan_g_loss", "Final generator loss").set(card["final_g_loss"])
        metrics.gauge("reelworks_posters_gan_d_loss", "Final discriminator loss").set(card["final_d_loss"])
    card["report"] = report
    return card


def _report(card: dict, losses: dict, samples) -> Report:
    from reelworks.imageclf.evaluation import gallery_png

    report = Report("Posters: conditional GAN training")
    report.text(f"{card['images']} posters at {card['size']}x{card['size']}, {card['steps']} steps of "
                f"{card['batch_size']}, {card['train_seconds']:.0f} s. Conditions: {len(card['classes'])} genres "
                f"and the decade (decades seen: {', '.join(map(str, card['decades_seen'])) or 'none (no years)'}).")
    check = card.get("noise_check")
    if check:
        why = ", ".join(k for k in ("static", "flat", "collapsed") if check[k])
        verdict = (f"The samples are still NOISE, not posters ({why}): " if check["noise"] else
                   "The samples are no longer noise by these measures (judge the grid below yourself): ")
        report.text(verdict + f"neighbouring pixels differ by {check['sample_roughness']:.1f} on average in the "
                    f"samples against {check['real_roughness']:.1f} in real posters at the same size (ratio "
                    f"{check['roughness_ratio']:.2f}; static above {NOISE_RATIO}); contrast within a sample "
                    f"{check['sample_contrast']:.1f} (real {check['real_contrast']:.1f}). Pixel spread across samples "
                    f"{check['sample_spread']:.1f} (real posters {check['real_spread']:.1f})"
                    + ("; the generator has COLLAPSED to near-identical posters." if check["collapsed"] else "."))
        if "genre_effect" in check:
            report.text(f"Genre condition: at the same noise, the picture changes {check['genre_effect']:.3f} times as "
                        f"much between genres as between noise vectors"
                        + (" -- the generator IGNORES the genre." if check["genre_ignored"] else "."))
        report.metric("noise_roughness_ratio", check["roughness_ratio"])
    with report.figure("losses", "Generator and discriminator losses per step", size=(8, 3.5)) as ax:
        window = max(1, len(losses["step"]) // 50)
        for key in ("d_loss", "g_loss"):
            values = np.convolve(losses[key], np.ones(window) / window, mode="valid")
            ax.plot(losses["step"][window - 1:], values, label=key)
        ax.set(xlabel="step", ylabel="loss")
        ax.legend()
    report.image("samples", gallery_png(list(samples), [""] * len(samples), columns=6, cell_inches=1.1),
                 "Final samples: one row per genre (" + ", ".join(card["classes"]) + ")")
    report.metric("final_d_loss", card["final_d_loss"])
    report.metric("final_g_loss", card["final_g_loss"])
    return report
