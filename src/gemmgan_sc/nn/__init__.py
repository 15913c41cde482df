"""Torch modules only (no AnnData): FiLM, the fusion network (on torch's Transformer and attention layers),
generator, critic, gradient penalty, label embeddings, VAE parts, and the mapping of older saved state dicts."""

from ._conv import TILE_SIZES, ConvCritic, ConvGenerator
from ._diffusion import CosineSchedule, Denoiser, diffusion_sample, noise_generator, timestep_embedding
from ._film import FiLM
from ._fusion import CONDITIONING_MODES, FUSION_VARIANTS, ConditionFusion, resolve_conditioning
from ._labels import LabelEmbedding
from ._legacy import upgrade_state_dict
from ._mlp import Critic, Generator, gradient_penalty, mlp
from ._vae import VAE, vae_loss

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
    "upgrade_state_dict",
    "CosineSchedule",
    "Denoiser",
    "diffusion_sample",
    "noise_generator",
    "timestep_embedding",
    "ConvGenerator",
    "ConvCritic",
    "TILE_SIZES",
]
