"""The learned upscaler (reelworks.upscale): Swin2SR at random init, saved and loaded the way
the real weights are (a save_pretrained folder of safetensors), tiled without seams."""
from __future__ import annotations

import numpy as np
import pytest

from cli_helpers import run_cli
from pictures import assert_same_picture


@pytest.fixture(scope="module")
def swin2sr_x2(tmp_path_factory) -> str:
    """A small random-init Swin2SR x2 (one stage, window 8), saved as the Hub's models are."""
    import torch
    from transformers import Swin2SRConfig, Swin2SRForImageSuperResolution

    torch.manual_seed(0)
    config = Swin2SRConfig(embed_dim=8, depths=[2], num_heads=[1], window_size=8, upscale=2, mlp_ratio=1.0,
                           upsampler="pixelshuffledirect", image_size=64)
    folder = tmp_path_factory.mktemp("swin2sr") / "x2"
    Swin2SRForImageSuperResolution(config).save_pretrained(folder)
    return str(folder)


def test_tiles_make_the_whole_frame_picture_and_sizes_double(swin2sr_x2):
    from reelworks.upscale import load_upscaler

    upscaler = load_upscaler(swin2sr_x2, 2, device="cpu", tile=1024)
    assert upscaler.dtype.is_floating_point and not upscaler.model.training
    image = (np.random.default_rng(0).random((64, 112, 3)) * 255).astype(np.uint8)  # not a window multiple wide
    whole = upscaler(image)
    assert whole.shape == (128, 224, 3) and whole.dtype == np.uint8
    # 32-pixel tiles with 16 pixels of context: each tile sees part of the frame, not all of it.
    upscaler.tile, upscaler.margin = 32, 16
    assert_same_picture(upscaler(image), whole, "tiled against whole")


def test_the_wrong_factor_or_a_missing_model_is_one_line(swin2sr_x2, tmp_path):
    from reelworks.errors import ReelworksError
    from reelworks.upscale import DEFAULT_MODELS, check_factor, load_upscaler

    with pytest.raises(ReelworksError, match="upscales 2x, not 4x"):
        load_upscaler(swin2sr_x2, 4, device="cpu")
    with pytest.raises(ReelworksError, match="no saved model"):
        load_upscaler(str(tmp_path / "nowhere"), 2, device="cpu")
    with pytest.raises(ReelworksError, match="must be one of 1, 2, 4"):
        check_factor(3)
    assert set(DEFAULT_MODELS) == {2, 4}
    code, out = run_cli("musicvideo", "render", "--frames", str(tmp_path), "--timeline", str(tmp_path),
                        "--audio", str(tmp_path), "--output", str(tmp_path / "v"), "--upscale", "3")
    assert code == 2 and "error: --upscale must be one of 1, 2, 4" in out and "Traceback" not in out, out
