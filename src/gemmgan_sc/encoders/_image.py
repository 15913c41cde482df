"""Frozen image encoders behind one registry.

Every encoder is an :class:`ImageEncoder`: a callable taking a float tensor batch (B x 3 x H x W,
already resized to ``input_size`` and normalised with ``mean`` / ``std``) and returning B x D features,
with ``dim``, ``input_size``, ``mean`` and ``std`` known. :meth:`ImageEncoder.preprocess` turns uint8
tiles into that input.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Known names -> short description. ``"timm:<name>"`` and local checkpoint paths are accepted as well.
IMAGE_ENCODERS: dict[str, str] = {
    "hed-texture": "offline classical stain and texture features (scikit-image HED, GLCM, LBP); deterministic, CPU",
    "uni": "UNI ViT-L/16 (timm hf-hub:MahmoodLab/uni, gated: token or local checkpoint), 1024-d, 224 px",
    "uni2": "UNI2-h ViT-H/14 (timm hf-hub:MahmoodLab/UNI2-h, gated: token or local checkpoint), 1536-d, 224 px",
    "timm:<name>": "any timm model, pretrained weights only with pretrained=True or a checkpoint",
}

_HUB_MODELS: dict[str, dict[str, Any]] = {
    "uni": {
        "hub_id": "hf-hub:MahmoodLab/uni",
        "arch": "vit_large_patch16_224",
        "kwargs": {"img_size": 224, "patch_size": 16, "init_values": 1e-5, "num_classes": 0, "dynamic_img_size": True},
        "dim": 1024,
    },
    "uni2": {
        "hub_id": "hf-hub:MahmoodLab/UNI2-h",
        "arch": "vit_giant_patch14_224",
        "kwargs": {
            "img_size": 224, "patch_size": 14, "depth": 24, "num_heads": 24, "init_values": 1e-5,
            "embed_dim": 1536, "mlp_ratio": 2.66667 * 2, "num_classes": 0, "no_embed_class": True,
            "reg_tokens": 8, "dynamic_img_size": True,
        },
        "dim": 1536,
    },
}


class ImageEncoder:
    """A frozen image encoder with the facts needed to feed it.

    Parameters
    ----------
    fn
        Callable (or ``torch.nn.Module``) mapping a float tensor B x 3 x H x W to B x D.
    dim
        Output width D.
    name
        Name recorded in the patch store.
    input_size
        Edge in px tiles are resized to, or None to keep the tile size.
    mean, std
        Per-channel normalisation applied to [0, 1] RGB, or None for none.

    Examples
    --------
    >>> import torch
    >>> from gemmgan_sc.encoders import get_image_encoder
    >>> enc = get_image_encoder("hed-texture")
    >>> x = enc.preprocess(torch.full((2, 3, 64, 64), 200, dtype=torch.uint8))
    >>> enc(x).shape == (2, enc.dim)
    True
    """

    def __init__(
        self,
        fn: Callable,
        dim: int,
        name: str,
        input_size: int | None = None,
        mean: tuple[float, float, float] | None = None,
        std: tuple[float, float, float] | None = None,
    ) -> None:
        self.fn = fn
        self.dim = int(dim)
        self.name = str(name)
        self.input_size = None if input_size is None else int(input_size)
        self.mean = None if mean is None else tuple(float(v) for v in mean)
        self.std = None if std is None else tuple(float(v) for v in std)
        self.device = "cpu"
        self._affine_cache: dict = {}
        if _is_module(fn):
            import torch

            fn.eval()
            for p in fn.parameters():
                p.requires_grad_(False)
            # channels-last convolutions (the patch embedding of a ViT, every layer of a CNN) run faster on
            # oneDNN and on tensor cores; the layout does not change the result
            fn.to(memory_format=torch.channels_last)

    @property
    def is_torch(self) -> bool:
        return _is_module(self.fn)

    def to(self, device) -> "ImageEncoder":
        """Move a torch encoder to ``device`` (no-op for the others)."""
        self.device = str(device)
        if self.is_torch:
            self.fn.to(device)
        return self

    def preprocess(self, tiles):
        """uint8 tiles (B x 3 x H x W tensor or B x H x W x 3 array) -> normalised float32 tensor.

        The input's memory layout is kept (channels-last tiles from the tile reader stay channels-last).
        Float input is taken as RGB in [0, 1].
        """
        import torch
        import torch.nn.functional as F

        if not isinstance(tiles, torch.Tensor):
            arr = np.asarray(tiles)
            if arr.ndim != 4 or arr.shape[-1] != 3:
                raise ValueError(f"tiles must be B x H x W x 3 (array) or B x 3 x H x W (tensor), got {arr.shape}.")
            tiles = torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2)
        if tiles.ndim != 4 or tiles.shape[1] != 3:
            raise ValueError(f"tiles must be B x 3 x H x W, got shape {tuple(tiles.shape)}.")
        x = tiles.to(torch.float32, copy=True)
        top = 255.0 if tiles.dtype == torch.uint8 else 1.0  # value of full intensity in x
        if self.input_size is not None and tuple(x.shape[-2:]) != (self.input_size, self.input_size):
            # linear, so resizing before the /255 scaling gives the same values
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", antialias=True, align_corners=False)
            x = x.clamp_(0.0, top)
        scale, shift = self._affine(top, x.device)
        if shift is not None:
            x.mul_(scale.view(1, 3, 1, 1)).add_(shift.view(1, 3, 1, 1))
        elif top != 1.0:
            x.mul_(1.0 / top)
        return x

    def _affine(self, top: float, device):
        """Per-channel (scale, shift), shape (3,), with ``x * scale + shift == (x / top - mean) / std``;
        (None, None) when there is no normalisation."""
        import torch

        if self.mean is None:
            return None, None
        key = (top, str(device))
        cache = self._affine_cache
        if key not in cache:
            mean = torch.tensor(self.mean, dtype=torch.float64)
            std = torch.tensor(self.std or (1.0, 1.0, 1.0), dtype=torch.float64)
            cache[key] = tuple(v.to(torch.float32).to(device) for v in (1.0 / (top * std), -mean / std))
        return cache[key]

    def __call__(self, batch):
        import torch

        if not isinstance(batch, torch.Tensor) or batch.ndim != 4 or batch.shape[1] != 3:
            raise ValueError(
                f"{self.name}: expected a float tensor B x 3 x H x W, got "
                f"{type(batch).__name__} {tuple(getattr(batch, 'shape', ()))}."
            )
        if self.is_torch:
            batch = batch.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            out = self.fn(batch)
        if isinstance(out, (tuple, list)):
            out = out[0]
        if not isinstance(out, torch.Tensor):
            out = torch.as_tensor(np.asarray(out))
        if out.ndim != 2 or out.shape[0] != batch.shape[0] or out.shape[1] != self.dim:
            raise ValueError(
                f"Encoder {self.name!r} returned shape {tuple(out.shape)}, expected ({batch.shape[0]}, {self.dim})."
            )
        return out

    def describe(self) -> dict[str, Any]:
        """JSON-ready facts recorded in the patch store."""
        out: dict[str, Any] = {"encoder": self.name, "dim": self.dim}
        if self.input_size is not None:
            out["encoder_input_size"] = self.input_size
        if self.mean is not None:
            out["encoder_mean"] = list(self.mean)
            out["encoder_std"] = list(self.std or (1.0, 1.0, 1.0))
        return out

    def __repr__(self) -> str:
        return f"ImageEncoder({self.name!r}, dim={self.dim}, input_size={self.input_size})"


def _is_module(obj) -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover
        return False
    return isinstance(obj, torch.nn.Module)


# ----------------------------------------------------------------------------- hed-texture
class HEDTexture:
    """Classical H&E features: colour deconvolution (scikit-image ``rgb2hed``) to haematoxylin, eosin and
    DAB; per channel mean, std, 5/25/50/75/95th percentiles (to 1/256 of the channel range) and a 16-bin histogram on a fixed range; GLCM
    (32 grey levels, distances 1, 2, 4, four angles averaged: contrast, dissimilarity, homogeneity, energy,
    correlation, ASM) and uniform LBP histograms (P=8, R=1, at full and half resolution) on haematoxylin;
    RGB mean and std. Input: float RGB in [0, 1], B x 3 x H x W. Output: B x 113 float32; deterministic.
    """

    n_bins = 16
    levels = 32
    distances = (1, 2, 4)
    angles = (0.0, np.pi / 4, np.pi / 2, 3 * np.pi / 4)
    glcm_props = ("contrast", "dissimilarity", "homogeneity", "energy", "correlation", "ASM")
    lbp_scales = (1, 2)  # uniform LBP (P=8, R=1) on haematoxylin at full and half resolution

    def __init__(self) -> None:
        from skimage.color import hed_from_rgb

        # channel ranges over all 8-bit colours: stains are linear in optical density, so the extremes sit at
        # the corners of the OD cube [0, log(1/255)/log(1e-6)]^3 (then clipped at 0 as rgb2hed does)
        od_max = np.log(1 / 255) / np.log(1e-6)
        corners = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], dtype=float) * od_max
        stains = np.maximum(corners @ hed_from_rgb, 0)
        self.hi = stains.max(0)
        self.dim = 3 * (7 + self.n_bins) + len(self.distances) * len(self.glcm_props) + 10 * len(self.lbp_scales) + 6

    def __call__(self, batch):
        import torch

        x = batch.detach().to("cpu", torch.float32).clamp(0, 1).permute(0, 2, 3, 1).numpy()
        # contiguous float64 per tile: the sums then do not depend on the batch layout
        return torch.from_numpy(np.stack([self.features(np.ascontiguousarray(t, dtype=np.float64)) for t in x]).astype(np.float32))

    def features(self, rgb: np.ndarray) -> np.ndarray:
        """Feature vector of one (H, W, 3) float RGB tile in [0, 1]."""
        from skimage.color import rgb2hed
        from skimage.feature import graycomatrix, graycoprops, local_binary_pattern

        rgb = np.round(rgb * 255) / 255  # the 8-bit grid the fixed ranges are computed on
        hed = rgb2hed(rgb)
        out = []
        fine = 256  # one fine fixed-range histogram per channel gives the percentiles and the coarse histogram
        for c in range(3):
            v = hed[..., c].ravel()
            idx = np.minimum((np.clip(v / self.hi[c], 0, 1) * fine).astype(np.int64), fine - 1)
            counts = np.bincount(idx, minlength=fine)
            cdf = np.cumsum(counts) / v.size
            pct = (np.searchsorted(cdf, (0.05, 0.25, 0.5, 0.75, 0.95)) + 0.5) / fine * self.hi[c]
            out.append([v.mean(), v.std(), *pct])
            out.append(counts.reshape(self.n_bins, fine // self.n_bins).sum(1) / v.size)
        h = np.clip(hed[..., 0] / self.hi[0], 0, 1)
        q = np.minimum((h * self.levels).astype(np.uint8), self.levels - 1)
        glcm = graycomatrix(q, distances=self.distances, angles=self.angles, levels=self.levels, symmetric=True, normed=True)
        for prop in self.glcm_props:
            out.append(np.nan_to_num(graycoprops(glcm, prop).mean(axis=1), nan=0.0))
        for s in self.lbp_scales:
            hs = h
            if s > 1:
                hh, ww = (h.shape[0] // s) * s, (h.shape[1] // s) * s
                hs = h[:hh, :ww].reshape(hh // s, s, ww // s, s).mean(axis=(1, 3))
            codes = local_binary_pattern(np.round(hs * 255).astype(np.uint8), 8, 1.0, method="uniform")
            hist, _ = np.histogram(codes, bins=10, range=(0, 10))
            out.append(hist / max(codes.size, 1))
        out.append(rgb.reshape(-1, 3).mean(0))
        out.append(rgb.reshape(-1, 3).std(0))
        vec = np.concatenate([np.ravel(o) for o in out]).astype(np.float64)
        return vec


# ----------------------------------------------------------------------------- loaders
def get_image_encoder(
    name: str | os.PathLike | Callable = "hed-texture",
    *,
    checkpoint: str | os.PathLike | None = None,
    token: str | None = None,
    pretrained: bool = False,
    arch: str | None = None,
    dim: int | None = None,
    input_size: int | None = 224,
    mean: tuple[float, float, float] | None = IMAGENET_MEAN,
    std: tuple[float, float, float] | None = IMAGENET_STD,
    device: str | None = None,
) -> ImageEncoder:
    """Build a frozen image encoder by name.

    Parameters
    ----------
    name
        ``"hed-texture"`` (offline default), ``"uni"``, ``"uni2"``, ``"timm:<model name>"``, the path of a
        local checkpoint file (architecture ``arch``, default UNI), a ``torch.nn.Module`` or any callable
        (B x 3 x H x W float -> B x D), or an :class:`ImageEncoder` (returned as is).
    checkpoint
        Local weights (``.safetensors``, or a torch file read with ``weights_only=True``) for ``"uni"``,
        ``"uni2"`` or ``"timm:<name>"``; no network is used then.
    token
        Hugging Face token for the gated UNI models (otherwise ``HF_TOKEN`` / a saved login is used).
    pretrained
        For ``"timm:<name>"``: download timm's pretrained weights (network). Default: random weights.
    arch
        Architecture of a checkpoint given as ``name``: ``"uni"``, ``"uni2"`` or ``"timm:<name>"``.
    dim, input_size, mean, std
        For a module or callable: its output width (found with a dummy batch when None), the input edge
        (None = tile size) and the normalisation (None = raw [0, 1] RGB).
    device
        Where a torch encoder is put (default ``gg.settings.device``).

    Returns
    -------
    :class:`ImageEncoder`

    Examples
    --------
    >>> from gemmgan_sc.encoders import get_image_encoder
    >>> get_image_encoder("hed-texture").dim
    113
    >>> enc = get_image_encoder("timm:vit_tiny_patch16_224")  # random weights, offline  # doctest: +SKIP
    """
    from .._settings import settings

    if isinstance(name, ImageEncoder):
        enc = name
    elif isinstance(name, (str, os.PathLike)) and not _is_module(name):
        key = str(name)
        if key == "hed-texture":
            fn = HEDTexture()
            enc = ImageEncoder(fn, fn.dim, "hed-texture", input_size=None)
        elif key in _HUB_MODELS:
            enc = _load_hub_vit(key, checkpoint=checkpoint, token=token)
        elif key.startswith("timm:"):
            enc = _load_timm(key[5:], checkpoint=checkpoint, pretrained=pretrained)
        elif Path(key).expanduser().is_file():
            arch = arch or "uni"
            if arch in _HUB_MODELS:
                enc = _load_hub_vit(arch, checkpoint=key, token=None)
            elif arch.startswith("timm:"):
                enc = _load_timm(arch[5:], checkpoint=key, pretrained=False)
            else:
                raise ValueError(f"arch must be 'uni', 'uni2' or 'timm:<name>' for checkpoint {key!r}, got {arch!r}.")
        else:
            hint = " (it looks like a path, but no such file exists)" if ("/" in key or key.endswith((".pt", ".pth", ".bin", ".safetensors"))) else ""
            raise ValueError(
                f"Unknown image encoder {key!r}{hint}. Known: {sorted(k for k in IMAGE_ENCODERS)}, a local "
                "checkpoint file, a torch.nn.Module or a callable."
            )
    elif callable(name):
        fn = name
        if dim is None:
            dim = _probe_dim(fn, input_size or 224, mean, std)
        label = type(fn).__name__ if _is_module(fn) else getattr(fn, "__name__", type(fn).__name__)
        enc = ImageEncoder(fn, dim, f"custom:{label}", input_size=input_size, mean=mean, std=std)
    else:
        raise TypeError(
            f"encoder must be a name, a checkpoint path, a torch.nn.Module or a callable, got {type(name).__name__}."
        )
    if enc.is_torch:
        enc.to(settings.resolve_device(device))
    return enc


def _probe_dim(fn, size, mean, std) -> int:
    import torch

    x = torch.zeros(2, 3, size, size)
    if _is_module(fn):
        fn.eval()
        try:
            x = x.to(next(fn.parameters()).device)
        except StopIteration:
            pass
    with torch.inference_mode():
        out = fn(x)
    if isinstance(out, (tuple, list)):
        out = out[0]
    shape = tuple(np.shape(out))
    if len(shape) != 2 or shape[0] != 2:
        raise ValueError(f"The encoder maps a 2 x 3 x {size} x {size} batch to shape {shape}; it must return B x D.")
    return int(shape[1])


def load_state_dict(path: str | os.PathLike) -> dict:
    """Read weights from ``.safetensors`` or a torch file (``weights_only=True``: no pickled code runs)."""
    import torch

    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint {str(path)!r} does not exist.")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001
        raise ValueError(f"Cannot read checkpoint {str(path)!r}: {type(err).__name__}: {err}") from err
    for key in ("state_dict", "model", "model_state_dict", "teacher"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"Checkpoint {str(path)!r} does not hold a state dict of tensors.")
    for prefix in ("module.", "model.", "backbone."):
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def _load_weights(model, path, what: str) -> None:
    state = load_state_dict(path)
    state = {k: v for k, v in state.items() if not k.startswith("head.") or k in model.state_dict()}
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shape mismatches
        raise ValueError(
            f"Checkpoint {str(path)!r} does not fit {what}: {str(err).splitlines()[1:3]}. Is it the right "
            "architecture (arch=...)?"
        ) from err
    if missing or unexpected:
        raise ValueError(
            f"Checkpoint {str(path)!r} does not fit {what}: missing {list(missing)[:5]}, unexpected "
            f"{list(unexpected)[:5]}. Is it the right architecture (arch=...)?"
        )


@contextmanager
def _hf_token(token: str | None):
    old = os.environ.get("HF_TOKEN")
    if token:
        os.environ["HF_TOKEN"] = token
    try:
        yield
    finally:
        if token:
            if old is None:
                os.environ.pop("HF_TOKEN", None)
            else:
                os.environ["HF_TOKEN"] = old


def _load_hub_vit(key: str, checkpoint=None, token=None) -> ImageEncoder:
    import timm

    spec = _HUB_MODELS[key]
    kwargs = dict(spec["kwargs"])
    if key == "uni2":
        import torch

        kwargs.update(mlp_layer=timm.layers.SwiGLUPacked, act_layer=torch.nn.SiLU)
    if checkpoint is not None:
        model = timm.create_model(spec["arch"], pretrained=False, **kwargs)
        _load_weights(model, checkpoint, f"{key} ({spec['arch']})")
    else:
        hub_kwargs = {k: v for k, v in kwargs.items() if k in ("init_values", "dynamic_img_size", "num_classes")}
        if key == "uni2":
            hub_kwargs = kwargs
        try:
            with _hf_token(token):
                model = timm.create_model(spec["hub_id"], pretrained=True, **hub_kwargs)
        except Exception as err:  # noqa: BLE001 - network, gating, offline mode
            raise RuntimeError(
                f"Could not load {key!r} from the Hugging Face hub ({spec['hub_id']}): {type(err).__name__}: {err}. "
                f"The model is gated: accept its terms on huggingface.co and pass token=... (or set HF_TOKEN). "
                f"Offline, download the weights once (pytorch_model.bin or .safetensors) and pass "
                f"checkpoint='/path/to/weights' (get_image_encoder({key!r}, checkpoint=...) or "
                f"gg.pp.embed_tiles(adata, encoder={key!r}, checkpoint=...))."
            ) from err
    return ImageEncoder(model, spec["dim"], key, input_size=224, mean=IMAGENET_MEAN, std=IMAGENET_STD)


def _load_timm(model_name: str, checkpoint=None, pretrained: bool = False) -> ImageEncoder:
    import timm

    if not model_name:
        raise ValueError("Give a timm model name after 'timm:', e.g. 'timm:vit_small_patch16_224'.")
    if pretrained and checkpoint is not None:
        raise ValueError("Give pretrained=True (download) or checkpoint=... (local file), not both.")
    try:
        model = timm.create_model(model_name, pretrained=pretrained and checkpoint is None, num_classes=0)
    except RuntimeError as err:
        if "Unknown model" in str(err):
            raise ValueError(f"timm has no model {model_name!r}: see timm.list_models().") from err
        raise
    except Exception as err:  # noqa: BLE001 - download failures
        raise RuntimeError(
            f"Could not download pretrained weights of timm model {model_name!r}: {type(err).__name__}: {err}. "
            "Offline, pass checkpoint='/path/to/weights.safetensors' instead of pretrained=True."
        ) from err
    if checkpoint is not None:
        _load_weights(model, checkpoint, f"timm model {model_name!r}")
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    size = cfg.get("input_size", (3, 224, 224))[-1]
    mean, std = cfg.get("mean", IMAGENET_MEAN), cfg.get("std", IMAGENET_STD)
    return ImageEncoder(model, model.num_features, f"timm:{model_name}", input_size=size, mean=mean, std=std)
