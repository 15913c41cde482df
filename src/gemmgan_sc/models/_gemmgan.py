"""GeMM-GAN: WGAN-GP conditioned on whole-slide patch embeddings and clinical text token embeddings."""

from __future__ import annotations

from typing import Any

from ..nn import CONDITIONING_MODES, Critic, Generator, resolve_conditioning
from ._fusion_model import FusionConditioned
from ._wgan_base import WGANGPModel


class GeMMGAN(FusionConditioned, WGANGPModel):
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

    def _validate_hparams(self) -> None:
        hp = self.hparams
        self._check_fusion_hparams()
        if isinstance(hp["n_latent"], bool) or not isinstance(hp["n_latent"], int) or hp["n_latent"] < 1:
            raise ValueError(f"n_latent must be a positive int, got {hp['n_latent']!r}.")
        hp["hidden"] = tuple(int(h) for h in hp["hidden"])
        if not hp["hidden"] or min(hp["hidden"]) < 1:
            raise ValueError(f"hidden must be a non-empty sequence of positive ints, got {hp['hidden']!r}.")
        if hp["conditioning"] not in CONDITIONING_MODES:
            raise ValueError(f"Unknown conditioning {hp['conditioning']!r}; choose one of {CONDITIONING_MODES}.")
        self.conditioning = resolve_conditioning(hp["conditioning"], self.registry.has_image, self.registry.has_text)

    def _uses(self, modality: str) -> bool:
        return self._fusion_uses(modality)

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
