"""GeMM-GAN: WGAN-GP conditioned on whole-slide patch embeddings and clinical text token embeddings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..nn import CONDITIONING_MODES, FUSION_VARIANTS, ConditionFusion, Critic, Generator, resolve_conditioning
from ._wgan_base import WGANGPModel


class GeMMGAN(WGANGPModel):
    """GeMM-GAN (Panaccione, Sgaravatti, Pinoli, ICIAP 2025) on AnnData.

    A WGAN-GP whose generator and critic each fuse the patch embeddings of a whole-slide image and the token
    embeddings of a clinical description (FiLM, patch Transformer, cross attention; see
    :class:`gemmgan_sc.nn.ConditionFusion`) into a condition vector.

    Parameters
    ----------
    adata
        AnnData set up with :meth:`setup_anndata`.
    d_model
        Width of the fused condition (d).
    n_latent
        Width of the generator's noise vector z.
    n_patches
        Tiles drawn per slide and step (N); slides with fewer are padded and masked.
    hidden
        Hidden widths of the generator and critic MLPs.
    conditioning
        ``"full"`` (default), or an ablation of the paper's Table 2: ``"mean_image"``, ``"text_cls"``,
        ``"patch_transformer"``, ``"film"``, ``"cross_attention"``. ``"full"`` on a text-only (image-only) setup
        runs ``"text_cls"`` (``"patch_transformer"``); ``model.conditioning`` says which ran.
    fusion_variant
        ``"paper"`` (default) or ``"authors_code"`` (FiLM on the raw features with tanh/clamp, sequential cross
        attention, as the authors' public code).
    n_heads, n_layers, d_ff, dropout
        Transformer and attention sizes (paper: 4, 2, 512, 0.1).

    Examples
    --------
    >>> import gemmgan_sc as gg
    >>> gg.GeMMGAN.setup_anndata(adata, text_key="X_text_tokens", patch_store="patches.zarr")  # doctest: +SKIP
    >>> model = gg.GeMMGAN(adata)  # doctest: +SKIP
    >>> model.train(max_epochs=500)  # doctest: +SKIP
    >>> synth = model.sample()  # doctest: +SKIP
    """

    _default_hparams: dict[str, Any] = {
        "d_model": 256,
        "n_latent": 256,
        "n_patches": 256,
        "hidden": (256, 256),
        "conditioning": "full",
        "fusion_variant": "paper",
        "n_heads": 4,
        "n_layers": 2,
        "d_ff": 512,
        "dropout": 0.1,
    }
    setup_inputs = frozenset({"text", "image", "labels"})

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
        """Register and validate the AnnData fields GeMM-GAN reads.

        Parameters
        ----------
        adata
            Samples x genes.
        layer
            Expression layer (default ``X``), e.g. log2(TPM+1).
        text_key, text_mask_key
            ``obsm`` keys of the token embeddings (n x M x D, CLS first) and their mask (True = token), as
            written by :func:`gemmgan_sc.pp.embed_text`. With a patch store and no ``obsm[text_key]``, the model is
            image-only; ``text_key=None`` forces that.
        patch_store
            Path of the patch store (:class:`gemmgan_sc.data.PatchStore`, written by ``gg.pp.tile_slides`` /
            ``gg.pp.embed_tiles``); None means a text-only model.
        slide_key
            ``obs`` column of slide ids in the store.
        labels_keys
            Categorical ``obs`` columns kept with the model (for metrics and label-conditioned baselines).
        expression_scale
            ``"log"`` (non-negative values expected) or ``"any"`` (e.g. already z-scored).

        Examples
        --------
        >>> gg.GeMMGAN.setup_anndata(adata, layer="log1p", patch_store=adata.uns["gemmgan"]["patch_store"])  # doctest: +SKIP
        """
        cls._setup(
            adata, layer=layer, text_key=text_key, text_mask_key=text_mask_key if text_key else None,
            patch_store=patch_store, slide_key=slide_key, labels_keys=labels_keys, expression_scale=expression_scale,
        )

    def _validate_hparams(self) -> None:
        hp = self.hparams
        for key in ("d_model", "n_latent", "n_patches", "n_heads", "n_layers", "d_ff"):
            if not isinstance(hp[key], int) or hp[key] < 1:
                raise ValueError(f"{key} must be a positive int, got {hp[key]!r}.")
        if hp["d_model"] % hp["n_heads"]:
            raise ValueError(f"d_model={hp['d_model']} must be divisible by n_heads={hp['n_heads']}.")
        hp["hidden"] = tuple(int(h) for h in hp["hidden"])
        if not hp["hidden"] or min(hp["hidden"]) < 1:
            raise ValueError(f"hidden must be a non-empty sequence of positive ints, got {hp['hidden']!r}.")
        if hp["conditioning"] not in CONDITIONING_MODES:
            raise ValueError(f"Unknown conditioning {hp['conditioning']!r}; choose one of {CONDITIONING_MODES}.")
        if hp["fusion_variant"] not in FUSION_VARIANTS:
            raise ValueError(f"Unknown fusion_variant {hp['fusion_variant']!r}; choose one of {FUSION_VARIANTS}.")
        if not 0.0 <= float(hp["dropout"]) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {hp['dropout']!r}.")
        self.conditioning = resolve_conditioning(hp["conditioning"], self.registry.has_image, self.registry.has_text)

    def _uses(self, modality: str) -> bool:
        if modality == "text":
            return self.conditioning not in ("mean_image", "patch_transformer")
        if modality == "image":
            return self.conditioning != "text_cls"
        return False

    def _fusion(self) -> ConditionFusion:
        hp, reg = self.hparams, self.registry
        return ConditionFusion(
            patch_dim=reg.patch_dim if reg.has_image else None,
            text_dim=reg.text_dim if reg.has_text else None,
            d_model=hp["d_model"], n_heads=hp["n_heads"], n_layers=hp["n_layers"], d_ff=hp["d_ff"],
            dropout=hp["dropout"], conditioning=self.conditioning, variant=hp["fusion_variant"],
        )

    def _build_networks(self, n_genes: int):
        from ..train._wgan import WGANGPNetworks

        hp = self.hparams
        return WGANGPNetworks(
            generator=Generator(hp["n_latent"], hp["d_model"], n_genes, hp["hidden"]),
            critic=Critic(n_genes, hp["d_model"], hp["hidden"]),
            gen_condition=self._fusion(),
            critic_condition=self._fusion(),
        )

    def get_condition_embedding(self, adata=None, indices=None, seed: int | None = None, batch_size: int = 256):
        """The generator's fused condition of each row (n x d_model), e.g. for a UMAP of the condition space.

        Examples
        --------
        >>> adata.obsm["X_gemmgan_condition"] = model.get_condition_embedding(adata)  # doctest: +SKIP
        """
        import numpy as np
        import torch

        from .._settings import settings

        self._check_trained()
        adata, indices = self._conditioning_rows(adata, indices)
        bank = self._make_bank(adata, with_expression=False)
        seed = settings.seed if seed is None else seed
        gen = torch.Generator().manual_seed(int(seed) if seed is not None else 0)
        fusion = self.networks.gen_condition.eval()
        out = []
        with torch.no_grad():
            for chunk in torch.as_tensor(indices, dtype=torch.long).split(batch_size):
                out.append(fusion.from_conditions(bank.conditions(chunk, generator=gen)).float().numpy())
        return np.concatenate(out, axis=0)
