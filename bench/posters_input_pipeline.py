"""Input pipeline throughput for the posters classifier, measured side by side in one run.

Three ways to feed the same posters to a model, in posters per second:
  1. the original project's loader: PIL open + a Python loop over pixels (getpixel);
  2. `imageclf.data.FilesSource`: tf.data decoding the JPEG files in parallel;
  3. `imageclf.data.RecordsSource`: tf.data streaming the prepared TFRecord shards
     (already resized: decode only), and the same with the in-memory cache filled.

    python bench/posters_input_pipeline.py [--posters 600] [--ratio 30]

Uses ../shared/data/posters when present, else the synthetic poster set.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("REELWORKS_PROGRESS", "0")


def original_loader(paths, size):
    """The original's to_rgb_pixels: a pixel at a time, in Python."""
    from PIL import Image

    out = []
    for path in paths:
        image = Image.open(path).convert("RGB").resize(size)
        out.append([[[c / 255 for c in image.getpixel((x, y))] for y in range(image.size[1])]
                    for x in range(image.size[0])])
    return out


def rate(count, seconds):
    return count / max(seconds, 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posters", type=int, default=600)
    parser.add_argument("--ratio", type=float, default=30)
    args = parser.parse_args()

    import numpy as np

    from reelworks.imageclf import data as data_lib
    from reelworks.imageclf.spec import ImageSpec, Task
    from reelworks.posters.images import size_for_ratio
    from reelworks.posters.prep import load_manifest, local_split_files, prep, read_labels
    from reelworks.settings import shared_data_dir

    with tempfile.TemporaryDirectory() as tmp:
        labels = shared_data_dir() / "posters" / "posters_2000.csv"
        if not labels.is_file():
            from reelworks.posters.synthetic import make_posters

            labels = Path(make_posters(f"{tmp}/synthetic", n=args.posters))
        prep(str(labels), f"{tmp}/data", ratio=args.ratio, limit=args.posters, shards=4)
        manifest = load_manifest(f"{tmp}/data")
        task = Task("multilabel", tuple(manifest["classes"]))
        image = ImageSpec.from_dict(manifest["image"])
        table = read_labels(str(labels))
        paths = [str(labels.parent / "images" / p) for p in table["Poster"][: args.posters]]
        size = size_for_ratio(args.ratio)

        subset = paths[: min(100, len(paths))]
        start = time.perf_counter()
        original_loader(subset, size)
        original = rate(len(subset), time.perf_counter() - start)

        def timed(ds) -> float:
            """Posters/s of the second pass (the first one warms up tracing and thread pools)."""
            sum(int(x.shape[0]) for x, _ in ds)
            start = time.perf_counter()
            return rate(sum(int(x.shape[0]) for x, _ in ds), time.perf_counter() - start)

        labels_np = np.zeros((len(paths), len(task.classes)), np.float32)
        files = timed(data_lib.make_dataset(data_lib.FilesSource(paths, labels_np), image, task, batch_size=64,
                                            cache=""))
        record_files = [f for s in ("train", "validation", "test") for f in local_split_files(f"{tmp}/data", manifest, s)]
        source = data_lib.RecordsSource(record_files, manifest["kept"])
        records = timed(data_lib.make_dataset(source, image, task, batch_size=64, cache=""))
        records_cached = timed(data_lib.make_dataset(source, image, task, batch_size=64, cache="memory"))

    print(f"posters at {image.width}x{image.height}, {os.cpu_count()} CPU cores")
    print(f"{'loader':<34}{'posters/s':>12}{'x original':>12}")
    for name, value in [("original (PIL + getpixel loop)", original), ("tf.data from JPEG files", files),
                        ("tf.data from TFRecords", records),
                        ("tf.data from TFRecords (cached)", records_cached)]:
        print(f"{name:<34}{value:>12,.0f}{value / original:>12.1f}")


if __name__ == "__main__":
    main()
