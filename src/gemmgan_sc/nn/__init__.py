"""Torch modules only (no AnnData): FiLM, the fusion network and its Transformer, generator, critic, gradient penalty,
VAE parts, fast CPU dropout and attention."""

from ._attention import cross_attention, self_attention
from ._dropout import dropout_mask, dropout_multiplier, fast_dropout
from ._film import FiLM
from ._fusion import CONDITIONING_MODES, FUSION_VARIANTS, ConditionFusion, resolve_conditioning
from ._labels import LabelEmbedding
from ._vae import VAE, vae_loss
from ._mlp import Critic, Generator, gradient_penalty, mlp
from ._transformer import TransformerEncoder, TransformerEncoderLayer

__all__ = [
    "FiLM",
    "TransformerEncoder",
    "TransformerEncoderLayer",
    "self_attention",
    "cross_attention",
    "fast_dropout",
    "dropout_mask",
    "dropout_multiplier",
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
