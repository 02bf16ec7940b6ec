"""bench/gpu_check.py builds the real models from their configs: the sizes it builds are the
published ones (checked on the meta device: shapes only, no memory, no GPU)."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

# Parameter counts (millions) of the published checkpoints' components.
PUBLISHED = {
    "real_sd15": {"unet": 859.5, "vae": 83.7, "text_encoder": 123.1},
    "real_sdxl": {"unet": 2567.5, "vae": 83.7, "text_encoder": 123.1, "text_encoder_2": 694.7},
    "real_svd": {"unet": 1524.6, "vae": 97.7, "image_encoder": 632.1},
    "real_ltx": {"transformer": 1923.4, "text_encoder": 4762.3},  # LTX-Video 0.9 (~2B), T5 v1.1 XXL encoder
    "real_wan": {"transformer": 1419.0, "vae": 126.9, "text_encoder": 5680.9},  # Wan 2.1 1.3B, UMT5-XXL encoder
}


@pytest.mark.parametrize("builder", sorted(PUBLISHED))
def test_gpu_check_builds_the_published_sizes(builder):
    import gpu_check

    pipe = getattr(gpu_check, builder)("meta")
    for name, millions in PUBLISHED[builder].items():
        count = sum(p.numel() for p in getattr(pipe, name).parameters()) / 1e6
        assert count == pytest.approx(millions, rel=0.002), (builder, name, count)
