"""User-facing model classes on one shared base class."""

from ._base import BaseGenerativeModel
from ._baselines import CVAE, BetaVAE, CondWGANGP, WGANGP
from ._gemmgan import GeMMGAN

MODEL_CLASSES = {cls.__name__: cls for cls in (GeMMGAN, WGANGP, CondWGANGP, CVAE, BetaVAE)}

__all__ = ["BaseGenerativeModel", "GeMMGAN", "WGANGP", "CondWGANGP", "CVAE", "BetaVAE", "MODEL_CLASSES"]
