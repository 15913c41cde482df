"""Fusion of patch embeddings and text token embeddings into one condition vector.

Tensors only; masks are boolean with ``True`` for a real token/tile and ``False`` for padding.
"""

from __future__ import annotations

import torch
from torch import nn

from ._attention import cross_attention
from ._film import FiLM
from ._transformer import TransformerEncoder, TransformerEncoderLayer

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


class ConditionFusion(nn.Module):
    """GeMM-GAN's fusion network: patch embeddings + text tokens -> condition (B x d_model).

    Paper version (``variant="paper"``): linear projections of patches and text tokens to ``d_model``; FiLM of the
    projected patches by the projected text CLS; a learnable patch CLS token prepended; a Transformer encoder over
    the patches (``n_layers`` layers, ``n_heads`` heads, FFN ``d_ff``, dropout); bidirectional cross attention: the
    text CLS attends over the patch tokens (``e_img``) and the updated patch CLS attends over the text tokens
    (``e_text``); the condition is ``e_img + e_text``.

    Authors' public code (``variant="authors_code"``): FiLM on the raw patch features before projection with
    ``gamma = tanh(.)`` and ``beta`` clamped to [-5, 5]; sequential cross attention: the text CLS attends over
    [patch CLS, patches] giving ``e_img``, which then attends over the text tokens giving ``e_text``; condition
    ``e_img + e_text``.

    The Transformer is :class:`gemmgan_sc.nn.TransformerEncoder` (same maths and parameter names as
    ``torch.nn.TransformerEncoder``, with a fast CPU dropout) and the cross attention runs through
    :func:`gemmgan_sc.nn.cross_attention`; ``torch_layers=True`` runs torch's own layers and attention modules
    instead (the reference the benchmarks compare against). Both initialise identically under the same seed.

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
        torch_layers: bool = False,
    ) -> None:
        super().__init__()
        if variant not in FUSION_VARIANTS:
            raise ValueError(f"Unknown fusion_variant {variant!r}; choose one of {FUSION_VARIANTS}.")
        self.conditioning = resolve_conditioning(conditioning, patch_dim is not None, text_dim is not None)
        self.variant = variant
        self.d_model = d_model
        self.torch_layers = bool(torch_layers)
        mode = self.conditioning
        self.uses_image = mode != "text_cls"
        self.uses_text = mode not in ("mean_image", "patch_transformer")
        self.uses_film = mode in ("full", "film")
        self.uses_cross = mode in ("full", "cross_attention")
        self.uses_transformer = mode in ("full", "patch_transformer", "film", "cross_attention")

        if mode == "mean_image":
            self.image_head = nn.Linear(patch_dim, d_model)
        if mode == "text_cls":
            self.text_head = nn.Linear(text_dim, d_model)
        if self.uses_transformer:
            self.patch_proj = nn.Linear(patch_dim, d_model)
            self.patch_cls = nn.Parameter(torch.empty(1, 1, d_model))
            nn.init.trunc_normal_(self.patch_cls, std=0.02)
            if torch_layers:
                layer = nn.TransformerEncoderLayer(
                    d_model, n_heads, dim_feedforward=d_ff, dropout=dropout, activation="relu", batch_first=True
                )
                self.transformer = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
            else:
                self.transformer = TransformerEncoder(TransformerEncoderLayer(d_model, n_heads, d_ff, dropout), n_layers)
        if self.uses_text and mode != "text_cls":
            self.text_proj = nn.Linear(text_dim, d_model)
        if self.uses_film:
            if variant == "authors_code":
                self.film = FiLM(text_dim, patch_dim, bounded=True)
            else:
                self.film = FiLM(d_model, d_model, bounded=False)
        if self.uses_cross:
            self.text_to_patch = nn.MultiheadAttention(d_model, n_heads, dropout=0.0, batch_first=True)
            self.patch_to_text = nn.MultiheadAttention(d_model, n_heads, dropout=0.0, batch_first=True)

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
            tile is real: the attention then runs without masks (faster, same result).
        text
            B x M x text_dim token embeddings, CLS first.
        text_mask
            B x M, True for real tokens; ``None`` means no padding.
        """
        mode = self.conditioning
        dtype = next(self.parameters()).dtype
        if self.uses_image:
            if patches is None:
                raise ValueError(f"conditioning={mode!r} needs patch embeddings.")
            patches = patches.to(dtype)
        if self.uses_text:
            if text is None:
                raise ValueError(f"conditioning={mode!r} needs text token embeddings.")
            text = text.to(dtype)
        text_pad = None if text_mask is None else ~text_mask

        if mode == "text_cls":
            return self.text_head(text[:, 0])
        if mode == "mean_image":
            if patch_mask is None:
                return self.image_head(patches.mean(1))
            w = patch_mask.to(dtype).unsqueeze(-1)
            return self.image_head((patches * w).sum(1) / w.sum(1).clamp_min(1.0))

        text_tok = self.text_proj(text) if self.uses_text else None
        if self.uses_film and self.variant == "authors_code":
            patches = self.film(patches, text[:, 0])
        x = self.patch_proj(patches)
        if self.uses_film and self.variant == "paper":
            x = self.film(x, text_tok[:, 0])
        b = x.shape[0]
        x = torch.cat([self.patch_cls.expand(b, -1, -1).to(dtype), x], dim=1)
        keep = None if patch_mask is None else torch.cat([patch_mask.new_ones(b, 1), patch_mask], dim=1)
        x = self.transformer(x, src_key_padding_mask=None if keep is None else ~keep)
        patch_cls_out = x[:, 0]

        if mode == "patch_transformer":
            return patch_cls_out
        if mode == "film":
            return patch_cls_out + text_tok[:, 0]
        text_query = text_tok[:, :1]
        if self.variant == "paper":
            if patch_mask is None:
                e_img = self._cross(self.text_to_patch, text_query, x[:, 1:])
            else:
                # a slide without tiles (no tissue) has nothing to attend to: give it e_img = 0 instead of NaN
                empty = ~patch_mask.any(dim=1)
                attend = patch_mask.clone()
                attend[:, 0] |= empty
                e_img = self._cross(self.text_to_patch, text_query, x[:, 1:], ~attend)
                e_img = e_img.masked_fill(empty[:, None, None], 0.0)
            e_text = self._cross(self.patch_to_text, x[:, :1], text_tok, text_pad)
        else:
            e_img = self._cross(self.text_to_patch, text_query, x, None if keep is None else ~keep)
            e_text = self._cross(self.patch_to_text, e_img, text_tok, text_pad)
        return (e_img + e_text).squeeze(1)

    def _cross(self, mha: nn.MultiheadAttention, query, kv, key_padding_mask=None) -> torch.Tensor:
        if self.torch_layers:
            return mha(query, kv, kv, key_padding_mask=key_padding_mask, need_weights=False)[0]
        return cross_attention(mha, query, kv, key_padding_mask)

    def from_conditions(self, cond: dict[str, torch.Tensor]) -> torch.Tensor:
        """Fuse the inputs of a :class:`gemmgan_sc.train.ConditionBank` batch."""
        return self(cond.get("patches"), cond.get("patch_mask"), cond.get("text"), cond.get("text_mask"))
