"""TileGAN: H&E tiles generated from gene expression (the reverse direction, as RNA-GAN), on the shared base class."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .._settings import logger, settings
from ..nn._conv import TILE_SIZES, UPSAMPLING, check_tile_size
from ._base import META_FILE, BaseGenerativeModel
from ._wgan_base import WGANGPModel

#: ``adata.uns`` key of the tile source (patch store and slide ids) :meth:`TileGAN.setup_anndata` registers
TILE_SETUP_KEY = "_gemmgan_tiles"
CONDITIONINGS = ("expression", "expression+text", "none")


@dataclasses.dataclass
class GeneratedTiles:
    """Tiles (n x H x W x 3 uint8) and the AnnData row each was made for (or read from).

    ``np.asarray(result)`` is the tile array; ``rows`` are row positions in the AnnData, ``obs_names`` their names.

    Examples
    --------
    >>> import numpy as np
    >>> out = GeneratedTiles(np.zeros((2, 8, 8, 3), np.uint8), np.array([0, 0]), np.array(["a", "a"]))
    >>> np.asarray(out).shape, len(out)
    ((2, 8, 8, 3), 2)
    """

    tiles: np.ndarray
    rows: np.ndarray
    obs_names: np.ndarray

    def __array__(self, dtype=None, copy=None):
        return self.tiles if dtype is None else self.tiles.astype(dtype)

    def __len__(self) -> int:
        return len(self.tiles)

    def __getitem__(self, i):
        return self.tiles[i]

    @property
    def shape(self) -> tuple[int, ...]:
        return self.tiles.shape


def _tile_setup(adata, cls_name: str) -> dict[str, Any]:
    setup = adata.uns.get(TILE_SETUP_KEY)
    if not isinstance(setup, dict) or "patch_store" not in setup:
        raise ValueError(f"The AnnData has no tile source: call gg.{cls_name}.setup_anndata(adata, patch_store=...) "
                         "first.")
    return {"patch_store": str(setup["patch_store"]), "slide_key": str(setup["slide_key"])}


def read_tiles(store_path: str, slide_ids, size: int, max_per_slide: int | None = None, seed: int = 0,
               num_workers: int = 0, what: str = "rows") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read the tiles of each row's slide at the patch store's coordinates (repeated slides read once).

    The pixels come from the slide files by the library's slide readers (:class:`gemmgan_sc.pp._tile_reader.TileDataset`),
    tile by tile, resized to ``size`` px; at most ``max_per_slide`` tiles per slide (a seeded random subset).

    Returns
    -------
    tiles
        T x size x size x 3 uint8.
    offsets, counts
        Per row of ``slide_ids``: its slide's first tile in ``tiles`` and the number of tiles.
    """
    from ..data import PatchStore
    from ..pp._embedding import _plan_jobs
    from ..pp._tile_reader import TileDataset, next_batch, tile_loader

    ids = [str(s) for s in slide_ids]
    unique = list(dict.fromkeys(ids))
    store = PatchStore(store_path, mode="r")
    jobs, empty = _plan_jobs(store, unique, {"failed": {}}, skip=set())
    if empty:
        bad = [i for i, s in enumerate(ids) if s in set(empty)]
        raise ValueError(
            f"{len(bad)} {what} have no tiles in the patch store {str(store.path)!r} (slides with no tissue, e.g. "
            f"{sorted(set(empty))[:5]}): TileGAN needs real tiles of them. Drop those rows first, e.g. "
            "adata = adata[adata.obs['n_tiles'] > 0].copy(), or tile their slides with a lower min_tissue."
        )
    rng = np.random.default_rng(seed)
    for job in jobs:
        if max_per_slide is not None and len(job["coords"]) > max_per_slide:
            job["coords"] = job["coords"][np.sort(rng.choice(len(job["coords"]), int(max_per_slide), replace=False))]
    dataset = TileDataset(jobs, int(size))
    batches, parts = iter(tile_loader(dataset, 256, num_workers)), []
    try:
        while (batch := next_batch(batches)) is not None:
            parts.append(batch.numpy())
    finally:
        del batches
        dataset.close()
    tiles = np.concatenate(parts) if parts else np.zeros((0, size, size, 3), np.uint8)
    sizes = np.array([len(job["coords"]) for job in jobs], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    where = {job["sid"]: i for i, job in enumerate(jobs)}
    index = np.array([where[s] for s in ids], dtype=np.int64)
    return tiles, starts[index], sizes[index]


class TileGAN(BaseGenerativeModel):
    """H&E tiles generated from a row's expression: beta-VAE latent + noise -> convolutional WGAN-GP (RNA-GAN).

    The condition of a row is the posterior mean of an expression beta-VAE (RNA-GAN's, Carrillo-Perez et al. 2023:
    MLP with batch norm, beta 0.005), trained first (``vae_pretrain_steps``) and then jointly with the GAN by its
    own loss (the GAN does not back-propagate into it), optionally with the text CLS embedding of the row. A DCGAN-style generator (transposed convolutions, or
    upsampling + convolution) maps ``[noise | condition]`` to a tile; a convolutional critic with projection
    conditioning scores ``(tile, condition)`` pairs; WGAN-GP with the gradient penalty on interpolated tiles.
    Training pairs are (row expression, a random tile of that row's slide or spot), the pixels read from the slides at
    the patch store's tile coordinates (no pixel copy of a whole slide; at most ``max_tiles_per_slide`` tiles of
    each slide are held, as uint8, on the training device).

    Parameters
    ----------
    adata
        AnnData set up with :meth:`setup_anndata`.
    conditioning
        ``"expression"`` (default), ``"expression+text"`` (also the text CLS embedding; set up with ``text_key``) or
        ``"none"`` (an unconditional DCGAN-style WGAN-GP: the baseline).
    image_size
        Tile edge in px: 16, 32, 64 (default), 128 or 256 (the paper configuration).
    n_latent
        Width of the generator's noise.
    channels, max_channels
        Feature maps of generator and critic at half the tile size (doubling towards 4 x 4, capped).
    upsample
        ``"transposed"`` (DCGAN) or ``"nearest"`` (upsample + 3 x 3 convolution).
    embed_dim
        Width of the generator's embedding of the condition.
    vae_latent, vae_hidden
        The expression beta-VAE's latent width (RNA-GAN: 200) and hidden layers.
    max_tiles_per_slide
        Tiles of each slide held for training (a seeded random subset when a slide has more).

    Examples
    --------
    >>> import gemmgan_sc as gg
    >>> gg.pp.tile_spots(adata, tile_size=64, neighbourhood_px=256, store="spots.zarr")  # doctest: +SKIP
    >>> gg.TileGAN.setup_anndata(adata, layer="log1p")  # doctest: +SKIP
    >>> model = gg.TileGAN(adata, image_size=64).train(max_steps=1500, preset="cpu")  # doctest: +SKIP
    >>> tiles = model.sample(adata_new, n_per_row=4, seed=0)  # n x 64 x 64 x 3 uint8  # doctest: +SKIP
    >>> paper = gg.TileGAN(adata, image_size=256, channels=64)  # the paper configuration  # doctest: +SKIP
    """

    _default_hparams: dict[str, Any] = {
        "conditioning": "expression", "image_size": 64, "n_latent": 128, "channels": 32, "max_channels": 512,
        "upsample": "transposed", "embed_dim": 128, "vae_latent": 200, "vae_hidden": (1024, 512),
        "max_tiles_per_slide": 64,
    }
    _presets: dict[str, dict[str, Any]] = {
        "default": {"batch_size": 64, "max_steps": 20000, "max_epochs": None, "patience": 50, "n_critic": 5,
                    "lambda_gp": 10.0, "optimizer": "adam", "lr": 1e-4, "critic_lr": None, "betas": (0.0, 0.9),
                    "lr_halving_every": None, "vae_lr": 1e-3, "beta": 0.005, "vae_weight": 1.0, "vae_pretrain_steps": 500,
                    "mismatch_weight": 0.5, "clip_critic": None, "clip_generator": None, "score_encoder": "hed-texture"},
        "cpu": {"batch_size": 32, "max_steps": 1500, "patience": 1000, "n_critic": 2, "lr": 2e-4,
                "critic_lr": 4e-4, "betas": (0.5, 0.9)},
        "paper": {"batch_size": 64, "max_steps": 50000, "n_critic": 5, "lr": 1e-4, "betas": (0.0, 0.9)},
    }
    _requires_condition = False
    setup_inputs = frozenset({"text", "image"})
    #: what the model generates (the command line's ``train``/``demo`` list expression models only)
    generates = "tiles"

    # ----------------------------------------------------------------- setup
    @classmethod
    def setup_anndata(
        cls,
        adata,
        layer: str | None = None,
        patch_store: str | os.PathLike | None = None,
        slide_key: str = "slide_id",
        text_key: str | None = None,
        text_mask_key: str | None = "text_mask",
        expression_scale: str = "log",
    ) -> None:
        """Register the expression (``X`` or ``layer``), the tile source and optionally the text embeddings.

        Parameters
        ----------
        adata
            One row per sample or spot, tiled by :func:`gemmgan_sc.pp.tile_slides` or :func:`gemmgan_sc.pp.tile_spots`
            (tile coordinates are enough: the model reads pixels, not tile embeddings).
        layer
            Expression layer (default ``X``), e.g. log1p CPM.
        patch_store
            The patch store with the tile coordinates (default ``adata.uns["gemmgan"]["patch_store"]``).
        slide_key
            ``obs`` column of slide (or spot) ids in the store.
        text_key, text_mask_key
            ``obsm`` keys of text token embeddings (CLS first) and their mask, for ``conditioning="expression+text"``.
        expression_scale
            ``"log"`` (non-negative, e.g. log1p) or ``"any"``.

        Examples
        --------
        >>> gg.TileGAN.setup_anndata(adata, layer="log1p_cpm", slide_key="slide_id")  # doctest: +SKIP
        """
        from ..data import PatchStore

        if patch_store is None:
            patch_store = (adata.uns.get("gemmgan") or {}).get("patch_store")
            if not patch_store:
                raise ValueError("No patch store: pass patch_store=... or tile the rows first (gg.pp.tile_slides / "
                                 "gg.pp.tile_spots write adata.uns['gemmgan']['patch_store']).")
        store = PatchStore(patch_store, mode="r")
        if slide_key not in adata.obs:
            raise KeyError(f"adata.obs[{slide_key!r}] (slide ids in the patch store) is missing; pass slide_key=... "
                           f"naming it. obs has: {list(adata.obs.columns)}.")
        ids = adata.obs[slide_key].astype(str)
        missing = sorted(set(ids) - set(store.slide_ids))
        if missing:
            raise KeyError(f"{len(missing)} slide(s) of adata.obs[{slide_key!r}] are not in the patch store "
                           f"{str(store.path)!r}, e.g. {missing[:5]}: tile them first.")
        cls._setup(adata, layer=layer, text_key=text_key, text_mask_key=text_mask_key if text_key else None,
                   patch_store=None, labels_keys=None, expression_scale=expression_scale,
                   use_text=text_key is not None)
        adata.uns[TILE_SETUP_KEY] = {"patch_store": str(store.path), "slide_key": str(slide_key)}

    # ------------------------------------------------------------------ init
    def __init__(self, adata, **hparams: Any) -> None:
        super().__init__(adata, **hparams)
        self.tile_source = _tile_setup(adata, type(self).__name__)

    def _validate_hparams(self) -> None:
        hp = self.hparams
        if hp["conditioning"] not in CONDITIONINGS:
            raise ValueError(f"Unknown conditioning {hp['conditioning']!r}; choose one of {CONDITIONINGS}.")
        if hp["conditioning"] == "expression+text" and not self.registry.has_text:
            raise ValueError("conditioning='expression+text' needs text embeddings: call "
                             "gg.TileGAN.setup_anndata(adata, text_key='X_text_tokens') (run gg.pp.embed_text first).")
        hp["image_size"] = check_tile_size(hp["image_size"])
        if hp["upsample"] not in UPSAMPLING:
            raise ValueError(f"upsample must be one of {UPSAMPLING}, got {hp['upsample']!r}.")
        for key in ("n_latent", "channels", "max_channels", "embed_dim", "vae_latent"):
            if isinstance(hp[key], bool) or not isinstance(hp[key], (int, np.integer)) or hp[key] < 1:
                raise ValueError(f"{key} must be a positive int, got {hp[key]!r}.")
        hp["vae_hidden"] = tuple(int(h) for h in hp["vae_hidden"])
        if not hp["vae_hidden"] or min(hp["vae_hidden"]) < 1:
            raise ValueError(f"vae_hidden must be a non-empty sequence of positive ints, got {hp['vae_hidden']!r}.")
        m = hp["max_tiles_per_slide"]
        if m is not None and (isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1):
            raise ValueError(f"max_tiles_per_slide must be a positive int or None, got {m!r}.")

    @property
    def conditioning(self) -> str:
        return self.hparams["conditioning"]

    def _uses(self, modality: str) -> bool:
        return modality == "text" and self.conditioning == "expression+text"

    # ---------------------------------------------------------------- networks
    def _build_networks(self, n_genes: int):
        from ..train._tilegan import TileGANNetworks

        hp = self.hparams
        return TileGANNetworks(
            n_genes, hp["image_size"], use_expression=self.conditioning != "none",
            text_dim=int(self.registry.text_dim or 0) if self._uses("text") else 0, vae_latent=hp["vae_latent"],
            vae_hidden=hp["vae_hidden"], n_latent=hp["n_latent"], channels=hp["channels"],
            max_channels=hp["max_channels"], upsample=hp["upsample"], embed_dim=hp["embed_dim"],
        )

    def _tile_bank(self, adata, seed: int | None):
        import torch

        from ..train._tilegan import TileBank

        ids = adata.obs[self.tile_source["slide_key"]].astype(str).tolist()
        tiles, offsets, counts = read_tiles(
            self.tile_source["patch_store"], ids, self.hparams["image_size"], self.hparams["max_tiles_per_slide"],
            seed=0 if seed is None else int(seed), num_workers=settings.num_workers, what="training rows",
        )
        nbytes, limit = tiles.nbytes, settings.bank_limit()
        if nbytes > limit:
            raise ValueError(
                f"The training tiles take {nbytes / 1e9:.1f} GB, above gg.settings.max_bank_bytes "
                f"({limit / 1e9:.1f} GB): lower max_tiles_per_slide (now {self.hparams['max_tiles_per_slide']}) or "
                "raise gg.settings.max_bank_bytes."
            )
        logger.info("TileGAN: %d tiles of %d slides in the tile bank (%.0f MB)", len(tiles),
                    len(set(ids)), nbytes / 1e6)
        return TileBank(torch.from_numpy(tiles).permute(0, 3, 1, 2).contiguous(), offsets, counts)

    # ------------------------------------------------------------------ train
    def _validate_plan_kwargs(self, kwargs: dict[str, Any]) -> None:
        WGANGPModel._validate_plan_kwargs(self, kwargs)
        for key in ("vae_lr", "beta", "vae_weight"):
            if not float(kwargs[key]) >= 0:
                raise ValueError(f"{key} must be >= 0, got {kwargs[key]!r}.")
        if not 0.0 <= float(kwargs["mismatch_weight"]) < 1.0:
            raise ValueError(f"mismatch_weight must be in [0, 1), got {kwargs['mismatch_weight']!r}.")
        steps = kwargs["vae_pretrain_steps"]
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
            raise ValueError(f"vae_pretrain_steps must be an int >= 0, got {steps!r}.")
        if kwargs.get("critic_lr") is not None and not float(kwargs["critic_lr"]) > 0:
            raise ValueError(f"critic_lr must be > 0 or None, got {kwargs['critic_lr']!r}.")

    def _make_plan(self, bank, train_idx, val_idx, **kwargs):
        from ..train._tilegan import TileGANPlan

        if self._history:  # a second train() call continues with the VAE trained before
            kwargs = {**kwargs, "vae_pretrain_steps": 0}
        return TileGANPlan(self.networks, bank, train_idx, val_idx, self._tile_bank(self.adata, self._seed), **kwargs)

    def _calibrate(self, n_draws: int = 0, seed: int | None = 0, method: str | None = None,
                   candidates=None) -> None:
        """Tiles have no per-gene output calibration (the expression models' post-training step)."""
        self.calibration = None

    def train(self, max_steps: int | None = None, max_epochs: int | None = None, batch_size: int | None = None,
              preset: str = "default", seed: int | None = None, **kwargs: Any) -> "TileGAN":
        """Train the tile WGAN-GP (and the expression VAE with it).

        Parameters
        ----------
        max_steps
            Generator updates (each after ``n_critic`` critic updates on the same batch of rows, one random tile
            per row); ``"default"``: 20,000, ``"cpu"``: 1,500, ``"paper"``: 50,000.
        max_epochs
            Instead of ``max_steps``: passes over the training rows.
        batch_size
            Rows (tiles) per step (64; ``"cpu"``: 32).
        preset
            ``"default"`` (Adam 1e-4, betas (0, 0.9), 5 critic steps: WGAN-GP's), ``"cpu"`` (a CPU budget: 2 critic
            steps, two time-scale learning rates 2e-4 / 4e-4, batch 32) or ``"paper"`` (batch 64, 50,000 steps; use
            with ``image_size=256, channels=64``).
        seed
            Seed of the split, the tile subset, the initial weights and the draws.
        n_critic, lambda_gp, optimizer, lr, critic_lr, betas, lr_halving_every, clip_critic, clip_generator
            The WGAN-GP's settings (:meth:`gemmgan_sc.WGANGP.train`); ``critic_lr`` defaults to ``lr``.
        vae_lr, beta, vae_weight
            The expression VAE's learning rate (1e-3), KL weight (0.005) and loss weight (1).
        vae_pretrain_steps
            VAE updates before the first GAN step (500; the first ``train()`` call only): RNA-GAN trains the
            expression encoder first. The VAE then keeps training jointly, by its own loss.
        mismatch_weight
            Matching-aware critic (GAN-CLS): this share (0.5) of the critic's fake side is real tiles paired with
            another row's condition, so the critic judges whether a tile fits its expression; 0 turns it off.
        score_encoder
            Image encoder of the validation score ``val_frechet`` (Frechet distance between generated and real
            tiles of the validation rows; early stopping and ``restore_best`` watch it), default ``"hed-texture"``.
        **kwargs
            ``train_size``, ``early_stopping``, ``patience``, ``restore_best``, ``accelerator``, ``devices``,
            ``precision``, ``checkpoint_dir``, ... as in :meth:`BaseGenerativeModel.train`.

        Examples
        --------
        >>> model.train(max_steps=1500, preset="cpu", seed=0)  # doctest: +SKIP
        >>> model.history.plot(x="step", y="val_frechet")  # doctest: +SKIP
        """
        self._seed = settings.seed if seed is None else seed
        return super().train(max_steps=max_steps, max_epochs=max_epochs, batch_size=batch_size, preset=preset,
                             seed=seed, **kwargs)

    _seed: int | None = None

    # ----------------------------------------------------------------- sample
    def _rows(self, adata, indices):
        adata, indices = self._conditioning_rows(adata, indices)
        return adata, np.asarray(indices, dtype=np.int64) % max(adata.n_obs, 1)

    def sample(self, adata=None, indices=None, n_per_row: int = 1, seed: int | None = None,
               batch_size: int | None = None, device: str | None = None) -> GeneratedTiles:
        """Generate tiles from the rows' expression (and text), ``n_per_row`` per row.

        Parameters
        ----------
        adata
            Rows to generate from (default: the training AnnData); new rows need the model's genes (any order) on
            the same scale, and their text embeddings for ``"expression+text"``; no tiles are needed.
        indices
            Row positions, obs names or a boolean mask of ``adata`` (default: all rows).
        n_per_row
            Tiles per row (different noise).
        seed
            Seed of the noise (default ``gg.settings.seed``): the same seed and rows give the same tiles, whatever
            the ``batch_size``.
        batch_size, device
            Tiles per forward pass (default 256) and torch device (default: the loading device or
            ``gg.settings.device``).

        Returns
        -------
        :class:`GeneratedTiles`: ``tiles`` (n x H x W x 3 uint8, ``np.asarray`` gives it), ``rows`` (positions in
        ``adata``) and ``obs_names``, rows repeated ``n_per_row`` times in order.

        Examples
        --------
        >>> out = model.sample(adata_test, indices=[0, 1], n_per_row=4, seed=0)  # doctest: +SKIP
        >>> out.tiles.shape  # doctest: +SKIP
        (8, 64, 64, 3)
        """
        import torch

        from ..train._tilegan import to_uint8

        self._check_trained()
        if isinstance(n_per_row, bool) or not isinstance(n_per_row, (int, np.integer)) or n_per_row < 1:
            raise ValueError(f"n_per_row must be a positive int, got {n_per_row!r}.")
        adata, indices = self._rows(adata, indices)
        rows = np.repeat(indices, int(n_per_row))
        seed = settings.seed if seed is None else seed
        dev = self._sampling_device(device)
        net = self.networks.to(dev).eval()
        x = None
        if self.conditioning != "none":
            x = self.scaler.transform(self._expression(adata)[rows])
        text = None
        if self._uses("text"):
            text = np.asarray(adata.obsm[self.registry.text_key][rows, 0], dtype=np.float32)
        gen = torch.Generator(device=dev)
        gen.manual_seed(int(seed) if seed is not None else int(torch.randint(0, 2**62, (1,)).item()))
        noise = torch.randn(len(rows), net.n_latent, generator=gen, device=dev)  # drawn at once: any batch_size
        out, step = [], int(batch_size or 256)
        with torch.no_grad():
            for start in range(0, len(rows), step):
                stop = min(start + step, len(rows))
                xb = None if x is None else torch.from_numpy(np.ascontiguousarray(x[start:stop])).to(dev)
                tb = None if text is None else torch.from_numpy(text[start:stop]).to(dev)
                cond = net.condition(xb, tb)
                out.append(to_uint8(net.generate(cond, noise[start:stop])).cpu().numpy())
        self.networks.cpu()
        size = self.hparams["image_size"]
        tiles = np.concatenate(out) if out else np.zeros((0, size, size, 3), np.uint8)
        return GeneratedTiles(tiles, rows, adata.obs_names.to_numpy().astype(str)[rows])

    def real_tiles(self, adata=None, indices=None, n_per_row: int = 1, seed: int | None = 0) -> GeneratedTiles:
        """Real tiles of the rows' slides (or spots), read from the slides at the patch store's coordinates and
        resized to the model's tile size: ``n_per_row`` random distinct tiles per slide (a seeded draw; all of them
        when a slide has fewer; rows sharing a slide get the same tiles), in the layout of :meth:`sample`. Only
        the drawn tiles are read.

        A row whose slide has no tiles raises a ValueError naming it.

        Examples
        --------
        >>> real = model.real_tiles(adata_test, indices=[0, 1], n_per_row=2)  # doctest: +SKIP
        """
        if isinstance(n_per_row, bool) or not isinstance(n_per_row, (int, np.integer)) or n_per_row < 1:
            raise ValueError(f"n_per_row must be a positive int, got {n_per_row!r}.")
        if adata is None:
            adata = self.adata
        _, indices = self._rows(adata, indices)
        key = self.tile_source["slide_key"]
        if key not in adata.obs:
            raise KeyError(f"adata.obs[{key!r}] (the slide ids of the model's tile source) is missing.")
        ids = adata.obs[key].astype(str).to_numpy()[indices]
        tiles, offsets, counts = read_tiles(self.tile_source["patch_store"], ids, self.hparams["image_size"],
                                            int(n_per_row), seed=0 if seed is None else int(seed), what="rows")
        picks = np.concatenate([np.arange(o, o + c) for o, c in zip(offsets, counts)]) if len(ids) else np.zeros(0, int)
        rows = np.repeat(indices, counts)
        return GeneratedTiles(tiles[picks], rows, adata.obs_names.to_numpy().astype(str)[rows])

    # ------------------------------------------------------------ save / load
    def _meta(self) -> dict[str, Any]:
        return {**super()._meta(), "tiles": dict(self.tile_source)}

    @classmethod
    def load(cls, dir_path: str | os.PathLike, adata=None, device: str | None = None) -> "TileGAN":
        """Load a saved TileGAN (safetensors + JSON); the tile source (patch store, slide key) is replayed on
        ``adata`` with the saved setup.

        Examples
        --------
        >>> model = gg.TileGAN.load("tilegan_model", adata=adata)  # doctest: +SKIP
        """
        meta_path = Path(dir_path).expanduser() / META_FILE
        if adata is not None and meta_path.is_file():
            try:
                tiles = json.loads(meta_path.read_text()).get("tiles")
            except json.JSONDecodeError:
                tiles = None  # the base class reports the damaged file
            if isinstance(tiles, dict):
                adata.uns[TILE_SETUP_KEY] = dict(tiles)
        return super().load(dir_path, adata=adata, device=device)


__all__ = ["TileGAN", "GeneratedTiles", "read_tiles", "TILE_SIZES"]
