"""Fusion of patch embeddings and text token embeddings into one condition vector.

Tensors only; masks are boolean with ``True`` for a real token/tile and ``False`` for padding.
"""

from __future__ import annotations

from numbers import Integral

import torch
from torch import nn

from ._film import FiLM

CONDITIONING_MODES = ("full", "mean_image", "text_cls", "patch_transformer", "film", "cross_attention")
FUSION_VARIANTS = ("paper", "authors_code")
_NEEDS = {
    "full": {"image", "text"},
    "mean_image": {"image"},
    "text_cls": {"text"},
    "patch_transformer": {"image"},
    "film": {"image", "text"},
    "cross_attention": {"image", "text"},
}


def resolve_conditioning(conditioning: str, has_image: bool, has_text: bool) -> str:
    """The conditioning mode that runs on the available modalities.

    ``"full"`` on one modality becomes that modality's strongest mode (text only: ``"text_cls"``; image only:
    ``"patch_transformer"``); an explicit mode that needs a missing modality raises.

    Examples
    --------
    >>> resolve_conditioning("full", has_image=False, has_text=True)
    'text_cls'
    >>> resolve_conditioning("film", has_image=True, has_text=True)
    'film'
    """
    if conditioning not in CONDITIONING_MODES:
        raise ValueError(f"Unknown conditioning {conditioning!r}; choose one of {CONDITIONING_MODES}.")
    available = {m for m, ok in (("image", has_image), ("text", has_text)) if ok}
    if not available:
        raise ValueError("No condition available: give text embeddings, a patch store, or both.")
    if conditioning == "full" and available != {"image", "text"}:
        return "text_cls" if available == {"text"} else "patch_transformer"
    missing = _NEEDS[conditioning] - available
    if missing:
        raise ValueError(
            f"conditioning={conditioning!r} needs {sorted(_NEEDS[conditioning])} but the data has only "
            f"{sorted(available)}: set up the model with the missing modality or pick another mode."
        )
    return conditioning


def _positive_int(value) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool) and value >= 1


def _check_sizes(patch_dim, text_dim, d_model, n_heads, n_layers, d_ff, dropout) -> None:
    for name, value in (("patch_dim", patch_dim), ("text_dim", text_dim)):
        if value is not None and not _positive_int(value):
            raise ValueError(f"{name} must be a positive int or None, got {value!r}.")
    for name, value in (("d_model", d_model), ("n_heads", n_heads), ("n_layers", n_layers), ("d_ff", d_ff)):
        if not _positive_int(value):
            raise ValueError(f"{name} must be a positive int, got {value!r}.")
    if d_model % n_heads:
        raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads}: pick another n_heads.")
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}.")


def _masked_mean(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return x.mean(1)
    w = mask.to(x.dtype).unsqueeze(-1)
    return (x * w).sum(1) / w.sum(1).clamp_min(1.0)


def _attend(mha: nn.MultiheadAttention, query, kv, keep: torch.Tensor | None = None) -> torch.Tensor:
    """``query`` attends over ``kv``; ``keep``: B x L, True for keys that may be attended (None: all)."""
    return mha(query, kv, kv, key_padding_mask=None if keep is None else ~keep, need_weights=False)[0]


class ConditionFusion(nn.Module):
    """GeMM-GAN's fusion network: patch embeddings + text tokens -> condition (B x d_model).

    Paper version (``variant="paper"``): linear projections of patches and text tokens to ``d_model``; FiLM of the
    projected patches by the projected text CLS; a learnable patch CLS token prepended; a Transformer encoder over
    the patches (``n_layers`` post-norm ``torch.nn.TransformerEncoderLayer``, ``n_heads`` heads, ReLU FFN of
    width ``d_ff``, ``dropout``); bidirectional cross attention (``torch.nn.MultiheadAttention``, no dropout):
    the text CLS attends over the patch tokens (``e_img``) and the updated patch CLS attends over the text tokens
    (``e_text``); the condition is ``e_img + e_text``.

    Authors' public code (``variant="authors_code"``): FiLM on the raw patch features before projection with
    ``gamma = tanh(.)`` and ``beta`` clamped to [-5, 5]; sequential cross attention: the text CLS attends over
    [patch CLS, patches] giving ``e_img``, which then attends over the text tokens giving ``e_text``; condition
    ``e_img + e_text``.

    Ablations (``conditioning``, the paper's Table 2):

    ``"mean_image"``
        linear map of the masked mean of the raw patch embeddings (image only).
    ``"text_cls"``
        linear map of the text CLS embedding (text only).
    ``"patch_transformer"``
        projection, patch CLS and Transformer; the output patch CLS (image only).
    ``"film"``
        as ``"full"`` without cross attention: output patch CLS + projected text CLS.
    ``"cross_attention"``
        as ``"full"`` without FiLM.
    ``"full"``
        everything.

    Parameters
    ----------
    patch_dim, text_dim
        Widths of the tile embeddings and of the text token embeddings; ``None`` for a missing modality
        (``conditioning="full"`` then runs the other modality's mode, see :func:`resolve_conditioning`).
    d_model, n_heads, n_layers, d_ff, dropout
        Width of the condition, attention heads, Transformer layers, FFN width, dropout of the Transformer.
    conditioning
        One of :data:`CONDITIONING_MODES`.
    variant
        One of :data:`FUSION_VARIANTS`.

    Examples
    --------
    >>> import torch
    >>> fusion = ConditionFusion(patch_dim=32, text_dim=16, d_model=8, n_heads=2, d_ff=16)
    >>> patches, text = torch.randn(2, 5, 32), torch.randn(2, 7, 16)
    >>> fusion(patches, torch.ones(2, 5, dtype=torch.bool), text, torch.ones(2, 7, dtype=torch.bool)).shape
    torch.Size([2, 8])
    """

    def __init__(
        self,
        patch_dim: int | None,
        text_dim: int | None,
        d_model: int = 256,
        n_heads: int = 4,
        n_layers: int = 2,
        d_ff: int = 512,
        dropout: float = 0.1,
        conditioning: str = "full",
        variant: str = "paper",
    ) -> None:
        super().__init__()
        if variant not in FUSION_VARIANTS:
            raise ValueError(f"Unknown fusion_variant {variant!r}; choose one of {FUSION_VARIANTS}.")
        _check_sizes(patch_dim, text_dim, d_model, n_heads, n_layers, d_ff, dropout)
        self.conditioning = mode = resolve_conditioning(conditioning, patch_dim is not None, text_dim is not None)
        self.variant = variant
        self.d_model = d_model
        self.uses_image = mode != "text_cls"
        self.uses_text = mode not in ("mean_image", "patch_transformer")
        self.uses_film = mode in ("full", "film")
        self.uses_cross = mode in ("full", "cross_attention")
        self.uses_transformer = mode in ("full", "patch_transformer", "film", "cross_attention")
        if self.uses_image:
            # fixed standardisation of the tile features (identity until set_patch_statistics)
            self.register_buffer("patch_center", torch.zeros(patch_dim))
            self.register_buffer("patch_scale", torch.ones(patch_dim))
        if mode == "mean_image":
            self.image_head = nn.Linear(patch_dim, d_model)
        if mode == "text_cls":
            self.text_head = nn.Linear(text_dim, d_model)
        if self.uses_transformer:
            self._build_transformer(patch_dim, d_model, n_heads, n_layers, d_ff, dropout)
        if self.uses_text and mode != "text_cls":
            self.text_proj = nn.Linear(text_dim, d_model)
        if self.uses_film:
            bounded = variant == "authors_code"
            self.film = FiLM(text_dim, patch_dim, bounded=True) if bounded else FiLM(d_model, d_model, bounded=False)
        if self.uses_cross:
            self.text_to_patch = nn.MultiheadAttention(d_model, n_heads, dropout=0.0, batch_first=True)
            self.patch_to_text = nn.MultiheadAttention(d_model, n_heads, dropout=0.0, batch_first=True)

    def set_patch_statistics(self, mean, sd, min_sd: float = 1e-6) -> None:
        """Standardise tile features as ``(patches - mean) / sd`` before any layer sees them.

        Tile features of classical encoders (e.g. ``"hed-texture"``) mix scales over orders of magnitude (GLCM
        contrast in the tens, histogram bins in the thousandths), and with few slides the first linear layers
        then follow the largest features only. The models set the statistics of their training slides; they
        are buffers, saved with the weights. Dimensions with ``sd < min_sd`` (constant) are only centred.

        Examples
        --------
        >>> import torch
        >>> fusion = ConditionFusion(patch_dim=3, text_dim=None, d_model=4, n_heads=2, conditioning="mean_image")
        >>> fusion.set_patch_statistics([1.0, 2.0, 3.0], [2.0, 0.0, 1.0])
        >>> fusion.patch_scale.tolist()
        [2.0, 1.0, 1.0]
        """
        if not self.uses_image:
            raise ValueError(f"conditioning={self.conditioning!r} reads no tile features to standardise.")
        mean = torch.as_tensor(mean, dtype=self.patch_center.dtype).reshape(-1)
        sd = torch.as_tensor(sd, dtype=self.patch_scale.dtype).reshape(-1)
        dim = self.patch_center.numel()
        if mean.numel() != dim or sd.numel() != dim:
            raise ValueError(f"patch statistics must have {dim} entries (patch_dim), got {mean.numel()} and {sd.numel()}.")
        if not (torch.isfinite(mean).all() and torch.isfinite(sd).all()) or (sd < 0).any():
            raise ValueError("patch statistics must be finite, with non-negative standard deviations.")
        self.patch_center.copy_(mean)
        self.patch_scale.copy_(torch.where(sd < min_sd, torch.ones_like(sd), sd))

    def _build_transformer(self, patch_dim, d_model, n_heads, n_layers, d_ff, dropout) -> None:
        self.patch_proj = nn.Linear(patch_dim, d_model)
        self.patch_cls = nn.Parameter(torch.empty(1, 1, d_model))
        nn.init.trunc_normal_(self.patch_cls, std=0.02)
        layer = nn.TransformerEncoderLayer(
            d_model, n_heads, dim_feedforward=d_ff, dropout=dropout, activation="relu", batch_first=True,
            norm_first=False,
        )
        self.transformer = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)

    def forward(
        self,
        patches: torch.Tensor | None = None,
        patch_mask: torch.Tensor | None = None,
        text: torch.Tensor | None = None,
        text_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Fuse a batch.

        Parameters
        ----------
        patches
            B x N x patch_dim tile embeddings (any float dtype; computed in the module's dtype).
        patch_mask
            B x N, True for real tiles (padding of slides with fewer than N tiles is False). ``None`` means every
            tile is real: the attention then runs without masks (same result).
        text
            B x M x text_dim token embeddings, CLS first.
        text_mask
            B x M, True for real tokens; ``None`` means no padding.
        """
        patches, text = self._cast_inputs(patches, text)
        mode = self.conditioning
        if mode == "text_cls":
            return self.text_head(text[:, 0])
        if mode == "mean_image":
            return self.image_head(_masked_mean(patches, patch_mask))
        text_tok = self.text_proj(text) if self.uses_text else None
        x, keep = self._encode_patches(patches, patch_mask, text, text_tok)
        if mode == "patch_transformer":
            return x[:, 0]
        if mode == "film":
            return x[:, 0] + text_tok[:, 0]
        if self.variant == "paper":
            return self._cross_paper(x, patch_mask, text_tok, text_mask)
        e_img = _attend(self.text_to_patch, text_tok[:, :1], x, keep)
        e_text = _attend(self.patch_to_text, e_img, text_tok, text_mask)
        return (e_img + e_text).squeeze(1)

    def _cast_inputs(self, patches, text):
        dtype = next(self.parameters()).dtype
        if self.uses_image:
            if patches is None:
                raise ValueError(f"conditioning={self.conditioning!r} needs patch embeddings (patches=...).")
            patches = (patches.to(dtype) - self.patch_center.to(dtype)) / self.patch_scale.to(dtype)
        if self.uses_text:
            if text is None:
                raise ValueError(f"conditioning={self.conditioning!r} needs text token embeddings (text=...).")
            text = text.to(dtype)
        return patches, text

    def _encode_patches(self, patches, patch_mask, text, text_tok):
        """FiLM (where the variant puts it), projection, patch CLS, Transformer: B x (1 + N) x d and its keep mask."""
        if self.uses_film and self.variant == "authors_code":
            patches = self.film(patches, text[:, 0])
        x = self.patch_proj(patches)
        if self.uses_film and self.variant == "paper":
            x = self.film(x, text_tok[:, 0])
        b = x.shape[0]
        x = torch.cat([self.patch_cls.expand(b, -1, -1).to(x.dtype), x], dim=1)
        keep = None if patch_mask is None else torch.cat([patch_mask.new_ones(b, 1), patch_mask], dim=1)
        x = self.transformer(x, src_key_padding_mask=None if keep is None else ~keep)
        return x, keep

    def _cross_paper(self, x, patch_mask, text_tok, text_mask) -> torch.Tensor:
        text_query = text_tok[:, :1]
        if patch_mask is None:
            e_img = _attend(self.text_to_patch, text_query, x[:, 1:])
        else:
            # a slide without tiles (no tissue) has nothing to attend to: give it e_img = 0 instead of NaN
            empty = ~patch_mask.any(dim=1)
            attend = patch_mask.clone()
            attend[:, 0] |= empty
            e_img = _attend(self.text_to_patch, text_query, x[:, 1:], attend)
            e_img = e_img.masked_fill(empty[:, None, None], 0.0)
        e_text = _attend(self.patch_to_text, x[:, :1], text_tok, text_mask)
        return (e_img + e_text).squeeze(1)

    def from_conditions(self, cond: dict[str, torch.Tensor]) -> torch.Tensor:
        """Fuse the inputs of a :class:`gemmgan_sc.train.ConditionBank` batch.

        Examples
        --------
        >>> import torch
        >>> fusion = ConditionFusion(patch_dim=None, text_dim=16, d_model=8, n_heads=2)
        >>> fusion.from_conditions({"text": torch.randn(3, 4, 16), "text_mask": None}).shape
        torch.Size([3, 8])
        """
        if not isinstance(cond, dict):
            raise TypeError(f"from_conditions needs a dict of condition tensors, got {type(cond).__name__}.")
        return self(cond.get("patches"), cond.get("patch_mask"), cond.get("text"), cond.get("text_mask"))
