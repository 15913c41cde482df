"""Image encoder registry: hed-texture, timm models, UNI from a local checkpoint, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gemmgan_sc.encoders import IMAGE_ENCODERS, get_image_encoder
from gemmgan_sc.encoders import _image


def _tiles(rng, n=3, size=64, color=(170, 80, 150)):
    base = np.empty((n, size, size, 3), np.uint8)
    base[:] = color
    noise = rng.integers(-30, 30, size=base.shape)
    return torch.from_numpy(np.clip(base + noise, 0, 255).astype(np.uint8)).permute(0, 3, 1, 2)


def test_registry_lists_names_and_unknown_fails():
    assert {"hed-texture", "uni", "uni2"} <= set(IMAGE_ENCODERS)
    with pytest.raises(ValueError, match=r"Unknown image encoder 'resnet'.*hed-texture.*uni"):
        get_image_encoder("resnet")
    with pytest.raises(ValueError, match="no such file"):
        get_image_encoder("/nope/weights.safetensors")
    with pytest.raises(TypeError):
        get_image_encoder(42)


def test_hed_texture_deterministic_fixed_length_and_stain_sensitive(rng):
    enc = get_image_encoder("hed-texture")
    assert enc.dim == 113 and enc.input_size is None and enc.mean is None
    purple = _tiles(rng, 3, 64, (120, 60, 160))  # haematoxylin-rich
    pink = _tiles(rng, 3, 64, (235, 150, 200))  # eosin-rich
    fp = enc(enc.preprocess(purple))
    assert fp.shape == (3, 113) and fp.dtype == torch.float32 and torch.isfinite(fp).all()
    assert torch.equal(fp, enc(enc.preprocess(purple)))  # deterministic
    # batch composition does not change a tile's features
    assert torch.equal(enc(enc.preprocess(purple[1:2]))[0], fp[1])
    fk = enc(enc.preprocess(pink))
    assert (fp[:, 0] > fk[:, 0]).all()  # mean haematoxylin is higher on the purple tiles
    # other tile sizes give the same length; histograms are distributions
    f2 = enc(enc.preprocess(_tiles(rng, 2, 100)))
    assert f2.shape == (2, 113)
    assert torch.allclose(f2[:, 7:23].sum(1), torch.ones(2), atol=1e-5)
    # a blank (white) tile is handled
    white = torch.full((1, 3, 32, 32), 255, dtype=torch.uint8)
    assert torch.isfinite(enc(enc.preprocess(white))).all()
    with pytest.raises(ValueError, match="B x 3 x H x W"):
        enc(torch.zeros(3, 8, 8))


def test_timm_random_weights_preprocess_and_checkpoint_roundtrip(tmp_path, rng):
    import timm
    from safetensors.torch import save_file

    enc = get_image_encoder("timm:vit_tiny_patch16_224", device="cpu")
    assert enc.dim == 192 and enc.input_size == 224 and enc.name == "timm:vit_tiny_patch16_224"
    x = enc.preprocess(_tiles(rng, 2, 256))
    assert x.shape == (2, 3, 224, 224)
    # normalisation: [0, 1] -> (v - mean) / std
    white = enc.preprocess(torch.full((1, 3, 224, 224), 255, dtype=torch.uint8))
    assert torch.allclose(white[0, :, 0, 0], (1 - torch.tensor(enc.mean)) / torch.tensor(enc.std))

    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0).eval()
    with torch.inference_mode():
        want = model(x)
    st = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(st))
    got = get_image_encoder("timm:vit_tiny_patch16_224", checkpoint=st, device="cpu")(x)
    assert torch.allclose(got, want, atol=1e-5)
    pt = tmp_path / "w.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, pt)
    got = get_image_encoder(str(pt), arch="timm:vit_tiny_patch16_224", device="cpu")(x)
    assert torch.allclose(got, want, atol=1e-5)
    # a checkpoint of another architecture fails clearly
    partial = tmp_path / "partial.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items() if not k.startswith("blocks.3.")}, str(partial))
    with pytest.raises(ValueError, match="does not fit.*missing"):
        get_image_encoder("timm:vit_tiny_patch16_224", checkpoint=partial)
    # a pickled object (not plain tensors) is refused by weights_only loading
    bad = tmp_path / "bad.pt"
    torch.save({"x": object()}, bad)
    with pytest.raises(ValueError, match="Cannot read checkpoint"):
        get_image_encoder("timm:vit_tiny_patch16_224", checkpoint=bad)
    with pytest.raises(ValueError, match="timm has no model"):
        get_image_encoder("timm:not_a_model_xyz")


def test_uni_local_checkpoint_path(tmp_path, monkeypatch, rng):
    """The "uni" loader with a local file; a small ViT stands in for ViT-L so the test stays fast."""
    import timm
    from safetensors.torch import save_file

    spec = dict(_image._HUB_MODELS["uni"])
    spec.update(arch="vit_tiny_patch16_224", dim=192,
                kwargs={"img_size": 224, "patch_size": 16, "init_values": 1e-5, "num_classes": 0, "dynamic_img_size": True})
    monkeypatch.setitem(_image._HUB_MODELS, "uni", spec)
    torch.manual_seed(1)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, **spec["kwargs"]).eval()
    path = tmp_path / "uni.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    enc = get_image_encoder("uni", checkpoint=path, device="cpu")
    assert enc.name == "uni" and enc.dim == 192 and enc.mean == _image.IMAGENET_MEAN
    x = enc.preprocess(_tiles(rng, 2, 256))
    with torch.inference_mode():
        assert torch.allclose(enc(x), model(x), atol=1e-5)
    # a bare checkpoint path defaults to the UNI architecture
    assert get_image_encoder(str(path), device="cpu").name == "uni"


def test_hub_unreachable_says_how_to_use_a_local_file(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True, raising=False)
    with pytest.raises(RuntimeError, match=r"checkpoint="):
        get_image_encoder("uni", token="hf_dummy")
    assert "HF_TOKEN" not in __import__("os").environ or __import__("os").environ["HF_TOKEN"] != "hf_dummy"


def test_module_and_callable_encoders(rng):
    class Mean(torch.nn.Module):
        def forward(self, x):
            return torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], 1)

    enc = get_image_encoder(Mean(), device="cpu")
    assert enc.dim == 6 and enc.name == "custom:Mean" and enc.input_size == 224
    out = enc(enc.preprocess(_tiles(rng, 2, 32)))
    assert out.shape == (2, 6)

    def stats(x):
        return x.flatten(1)[:, :5].numpy()

    enc = get_image_encoder(stats, input_size=None, mean=None, std=None)
    assert enc.dim == 5 and enc.name == "custom:stats"
    assert enc(enc.preprocess(_tiles(rng, 2, 16))).shape == (2, 5)


@pytest.mark.slow
def test_uni_real_architecture_from_local_checkpoint(tmp_path, rng):
    """The real UNI ViT-L/16 (random weights, float16 on disk) loads through the local-checkpoint path."""
    import timm
    from safetensors.torch import save_file

    spec = _image._HUB_MODELS["uni"]
    torch.manual_seed(0)
    model = timm.create_model(spec["arch"], pretrained=False, **spec["kwargs"]).eval()
    path = tmp_path / "uni.safetensors"
    save_file({k: v.half().contiguous() for k, v in model.state_dict().items()}, str(path))
    del model
    enc = get_image_encoder("uni", checkpoint=path, device="cpu")
    assert enc.dim == 1024
    out = enc(enc.preprocess(_tiles(rng, 1, 224)))
    assert out.shape == (1, 1024) and torch.isfinite(out).all()


@pytest.mark.parametrize("layout", ["channels_last", "nchw", "strided"])
@pytest.mark.parametrize("normalise", [True, False])
def test_preprocess_matches_formula_and_keeps_layout(rng, layout, normalise):
    mean, std = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)) if normalise else (None, None)
    enc = _image.ImageEncoder(lambda x: x.mean(dim=(2, 3)), dim=3, name="m", mean=mean, std=std)
    nhwc = torch.from_numpy(rng.integers(0, 256, (3, 20, 24, 3), dtype=np.uint8))
    tiles = {
        "channels_last": nhwc.permute(0, 3, 1, 2),
        "nchw": nhwc.permute(0, 3, 1, 2).contiguous(),
        "strided": nhwc.permute(0, 3, 1, 2)[:, :, ::2, 1::2],
    }[layout]
    want = tiles.double() / 255.0
    if normalise:
        want = (want - torch.tensor(mean, dtype=torch.float64).view(1, 3, 1, 1)) / torch.tensor(
            std, dtype=torch.float64).view(1, 3, 1, 1)
    got = enc.preprocess(tiles)
    assert got.dtype == torch.float32
    if layout != "strided":
        assert got.stride() == tiles.stride()  # layout kept (channels-last stays channels-last)
    torch.testing.assert_close(got.double(), want, rtol=0, atol=2e-6)
    # float input in [0, 1] is not divided by 255 again
    torch.testing.assert_close(enc.preprocess(tiles.float() / 255.0).double(), want, rtol=0, atol=2e-6)
