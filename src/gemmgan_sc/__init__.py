"""gemmgan-sc: GeMM-GAN for scverse.

Generates gene-expression profiles conditioned on whole-slide images and clinical text, with
everything in AnnData. Namespaces: ``pp`` (preprocessing), ``tl`` (tools), ``pl`` (plots),
``metrics``, ``datasets``, ``data`` (the AnnData contract, patch store), ``settings``.

Examples
--------
>>> import gemmgan_sc as gg
>>> gg.settings.seed = 0
"""

from __future__ import annotations

import importlib
from typing import Any

from ._settings import settings

__version__ = "0.1.0"

_SUBMODULES = {"pp", "tl", "pl", "metrics", "datasets", "data", "nn", "encoders", "models", "train"}
_MODELS = {"GeMMGAN", "WGANGP", "CondWGANGP", "CVAE", "BetaVAE", "GaussianBaseline", "ExpressionDiffusion", "TileGAN"}

__all__ = ["settings", "__version__", *sorted(_SUBMODULES), *sorted(_MODELS)]


def __getattr__(name: str) -> Any:
    # Lazy imports keep `import gemmgan_sc` light (no torch/transformers until needed).
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _MODELS:
        return getattr(importlib.import_module(".models", __name__), name)
    raise AttributeError(f"module 'gemmgan_sc' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
