"""What the models conditioned on the GeMM-GAN fusion share: setup_anndata, size checks, the fusion network."""

from __future__ import annotations

from collections.abc import Sequence

from ..nn import CONDITIONING_MODES, FUSION_VARIANTS, ConditionFusion
from ..nn._fusion import _check_sizes


class FusionConditioned:
    """Mixin of :class:`GeMMGAN` and :class:`ExpressionDiffusion`: the AnnData setup of slide patches and text
    tokens, the checks of the fusion's sizes, which modality a fusion mode reads, and the fusion network itself.

    The class using it sets ``self.conditioning`` to a fusion mode (one of ``CONDITIONING_MODES``) and keeps the
    fusion's sizes (``d_model``, ``n_patches``, ``n_heads``, ``n_layers``, ``d_ff``, ``dropout``,
    ``fusion_variant``) in ``self.hparams``.
    """

    #: True: the default ``text_key`` missing from ``obsm`` means "no text" even without a patch store (models
    #: that can also run on labels or on nothing); False: it is an error unless a patch store is given
    _text_optional: bool = False

    @classmethod
    def setup_anndata(
        cls,
        adata,
        layer: str | None = None,
        text_key: str | None = "X_text_tokens",
        text_mask_key: str | None = "text_mask",
        patch_store: str | None = None,
        slide_key: str = "slide_id",
        labels_keys: Sequence[str] | None = None,
        expression_scale: str = "log",
    ) -> None:
        """Register and validate the AnnData fields the model reads.

        Parameters
        ----------
        adata
            Samples x genes.
        layer
            Expression layer (default ``X``), e.g. log2(TPM+1).
        text_key, text_mask_key
            ``obsm`` keys of the token embeddings (n x M x D, CLS first) and their mask (True = token), as
            written by :func:`gemmgan_sc.pp.embed_text`. With a patch store and no ``obsm[text_key]``, the model is
            image-only; ``text_key=None`` forces that. (:class:`ExpressionDiffusion`: the default key missing
            means no text, also without a patch store; a key named otherwise must exist.)
        patch_store
            Path of the patch store (:class:`gemmgan_sc.data.PatchStore`, written by ``gg.pp.tile_slides`` /
            ``gg.pp.embed_tiles``); None means no image.
        slide_key
            ``obs`` column of slide ids in the store.
        labels_keys
            Categorical ``obs`` columns kept with the model (for metrics, and the condition of
            ``ExpressionDiffusion(conditioning="labels")``).
        expression_scale
            ``"log"`` (non-negative values expected) or ``"any"`` (e.g. already z-scored).

        Examples
        --------
        >>> gg.GeMMGAN.setup_anndata(adata, layer="log1p", patch_store=adata.uns["gemmgan"]["patch_store"])  # doctest: +SKIP
        """
        default_key_missing = text_key == "X_text_tokens" and text_key not in adata.obsm
        use_text = False if cls._text_optional and default_key_missing else None
        cls._setup(
            adata, layer=layer, text_key=text_key, text_mask_key=text_mask_key if text_key else None,
            patch_store=patch_store, slide_key=slide_key, labels_keys=labels_keys, expression_scale=expression_scale,
            use_text=use_text,
        )

    def _check_fusion_hparams(self) -> None:
        """Clear errors for the fusion's sizes (before any network is built)."""
        hp = self.hparams
        _check_sizes(None, None, hp["d_model"], hp["n_heads"], hp["n_layers"], hp["d_ff"], hp["dropout"])
        if isinstance(hp["n_patches"], bool) or not isinstance(hp["n_patches"], int) or hp["n_patches"] < 1:
            raise ValueError(f"n_patches must be a positive int, got {hp['n_patches']!r}.")
        if hp["fusion_variant"] not in FUSION_VARIANTS:
            raise ValueError(f"Unknown fusion_variant {hp['fusion_variant']!r}; choose one of {FUSION_VARIANTS}.")

    def _fusion_uses(self, modality: str) -> bool:
        """Whether the fusion mode ``self.conditioning`` reads ``modality`` (``"text"`` or ``"image"``)."""
        if self.conditioning not in CONDITIONING_MODES:
            return False
        if modality == "text":
            return self.conditioning not in ("mean_image", "patch_transformer")
        if modality == "image":
            return self.conditioning != "text_cls"
        return False

    def _fusion(self) -> ConditionFusion:
        """A new fusion network of the model's sizes and mode (one per generator / critic / denoiser)."""
        hp, reg = self.hparams, self.registry
        return ConditionFusion(
            patch_dim=reg.patch_dim if reg.has_image else None,
            text_dim=reg.text_dim if reg.has_text else None,
            d_model=hp["d_model"], n_heads=hp["n_heads"], n_layers=hp["n_layers"], d_ff=hp["d_ff"],
            dropout=hp["dropout"], conditioning=self.conditioning, variant=hp["fusion_variant"],
        )
