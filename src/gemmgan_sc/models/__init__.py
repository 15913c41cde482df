"""User-facing model classes on one shared base class."""

from ._base import BaseGenerativeModel
from ._gemmgan import GeMMGAN

MODEL_CLASSES = {"GeMMGAN": GeMMGAN}

__all__ = ["BaseGenerativeModel", "GeMMGAN", "MODEL_CLASSES"]
