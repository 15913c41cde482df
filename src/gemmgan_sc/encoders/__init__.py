"""Frozen image and text encoders behind one registry of names, hub ids and local paths.

Image encoders live in ``_image.py`` (``get_image_encoder``, ``IMAGE_ENCODERS``), text encoders in
``_text.py`` (``get_text_encoder``, ``TEXT_ENCODERS``).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "get_image_encoder": "._image",
    "IMAGE_ENCODERS": "._image",
    "get_text_encoder": "._text",
    "TEXT_ENCODERS": "._text",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module 'gemmgan_sc.encoders' has no attribute {name!r}")
