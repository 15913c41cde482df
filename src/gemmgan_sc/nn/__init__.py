"""Torch modules only (no AnnData): FiLM, the fusion network, generator, critic, gradient penalty, VAE parts."""

from ._film import FiLM
from ._fusion import CONDITIONING_MODES, FUSION_VARIANTS, ConditionFusion, resolve_conditioning
from ._labels import LabelEmbedding
from ._vae import VAE, vae_loss
from ._mlp import Critic, Generator, gradient_penalty, mlp

__all__ = [
    "FiLM",
    "ConditionFusion",
    "CONDITIONING_MODES",
    "FUSION_VARIANTS",
    "resolve_conditioning",
    "Generator",
    "Critic",
    "gradient_penalty",
    "mlp",
    "LabelEmbedding",
    "VAE",
    "vae_loss",
]
