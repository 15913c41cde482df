"""User-facing model classes on one shared base class."""

from ._base import BaseGenerativeModel
from ._baselines import CVAE, BetaVAE, CondWGANGP, WGANGP
from ._gaussian import GaussianBaseline
from ._gemmgan import GeMMGAN
from ._diffusion import ExpressionDiffusion
from ._tilegan import GeneratedTiles, TileGAN

MODEL_CLASSES = {cls.__name__: cls for cls in (GeMMGAN, WGANGP, CondWGANGP, CVAE, BetaVAE, GaussianBaseline, ExpressionDiffusion)}

__all__ = ["BaseGenerativeModel", "GeMMGAN", "WGANGP", "CondWGANGP", "CVAE", "BetaVAE", "GaussianBaseline", "ExpressionDiffusion",
           "TileGAN", "GeneratedTiles",
           "MODEL_CLASSES"]
