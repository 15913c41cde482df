"""The shared base of every generative model: setup registry, normalisation, split, training, sampling, save/load."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._settings import logger, settings
from ..data._registry import SETUP_KEY, AnnDataRegistry, get_expression
from .._io import atomic_folder, json_safe, synthetic_uns
from ..data._scaler import ExpressionScaler
from ..train._checkpoint import read_checkpoint, write_checkpoint
from ._training import TrainConfig, _calibration_method, _check_train_args, fit, make_trainer

FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
META_FILE = "model.json"


class BaseGenerativeModel:
    """Base class of the models (scvi-tools anatomy): ``setup_anndata`` -> ``Model(adata)`` -> ``train`` -> ``sample``.

    Subclasses define ``_default_hparams``, ``_build_networks`` (the torch module for ``n_genes`` output genes),
    ``_make_plan`` (the Lightning training plan) and ``_presets`` (named training settings; ``"default"`` was
    chosen by the convergence study in ``benchmarks/convergence.py``). ``setup_inputs`` says which conditions
    ``setup_anndata`` can register (``"text"``, ``"image"``, ``"labels"``) and ``labels_required`` whether
    labels must be given.
    """

    _default_hparams: dict[str, Any] = {}
    _presets: dict[str, dict[str, Any]] = {"default": {}}
    _requires_condition = True
    setup_inputs: frozenset[str] = frozenset()
    labels_required: bool = False

    # ----------------------------------------------------------------- setup
    @classmethod
    def _setup(cls, adata, **kwargs) -> AnnDataRegistry:
        registry = AnnDataRegistry.setup(adata, require_condition=cls._requires_condition, **kwargs)
        adata.uns[SETUP_KEY] = {"model": cls.__name__, **registry.to_uns()}
        logger.info("%s.setup_anndata: %s", cls.__name__, registry)
        return registry

    # ------------------------------------------------------------------ init
    def __init__(self, adata, **hparams: Any) -> None:
        self.registry = self._registry_of(adata)
        unknown = set(hparams) - set(self._default_hparams)
        if unknown:
            raise TypeError(
                f"{type(self).__name__} got unknown arguments {sorted(unknown)}; known: {sorted(self._default_hparams)}."
            )
        self.hparams = {**self._default_hparams, **hparams}
        self._validate_hparams()
        self.registry.validate(adata, check_categories=False, require_expression=False)
        self.adata = adata
        self.scaler = ExpressionScaler()
        self.networks = None
        self.calibration = None
        #: the validation corr-MSE of each covariance calibration tried by the last ``train`` (DataFrame)
        self.calibration_scores = pd.DataFrame()
        self.split: dict[str, np.ndarray] | None = None
        self._history: list[dict] = []
        self.train_params: dict[str, Any] = {}
        self.is_trained = False
        self.device = None

    @classmethod
    def _registry_of(cls, adata) -> AnnDataRegistry:
        if SETUP_KEY not in adata.uns:
            raise ValueError(f"The AnnData is not set up: call gg.{cls.__name__}.setup_anndata(adata, ...) first.")
        setup = dict(adata.uns[SETUP_KEY])
        owner = setup.pop("model", cls.__name__)
        if owner != cls.__name__:
            raise ValueError(
                f"The AnnData was set up for {owner}, not {cls.__name__}: call gg.{cls.__name__}.setup_anndata(adata, ...)."
            )
        return AnnDataRegistry.from_uns(setup)

    def _validate_hparams(self) -> None:
        """Subclasses check their hyperparameters here."""

    def __repr__(self) -> str:
        state = "trained" if self.is_trained else "not trained"
        genes = f"{len(self.var_names)} genes" if self.scaler.fitted else f"{self.registry.n_vars} genes in setup"
        hp = ", ".join(f"{k}={v!r}" for k, v in self.hparams.items())
        return f"{type(self).__name__}({hp}) [{state}, {genes}, {len(self._history)} epochs]"

    # ------------------------------------------------------------ properties
    @property
    def history(self) -> pd.DataFrame:
        """Per-epoch training history (losses, gradient penalty, Wasserstein estimate on the validation split)."""
        return pd.DataFrame(self._history)

    @property
    def var_names(self) -> pd.Index:
        """The genes the model generates (after its gene filter)."""
        if not self.scaler.fitted:
            raise RuntimeError("The model is not trained yet: call model.train() first.")
        return pd.Index(self._setup_var_names[self.scaler.keep])

    @property
    def _setup_var_names(self) -> pd.Index:
        return pd.Index(self.adata.var_names) if not hasattr(self, "_saved_var_names") else self._saved_var_names

    def view_anndata_setup(self) -> pd.DataFrame:
        """The registry as a table (which AnnData fields the model reads); also printed."""
        reg = self.registry
        rows = [
            ("expression", "adata.X" if reg.layer is None else f"adata.layers[{reg.layer!r}]", f"{reg.n_vars} genes, scale={reg.expression_scale}"),
            ("text tokens", f"adata.obsm[{reg.text_key!r}]" if reg.text_key else "-", f"dim {reg.text_dim}" if reg.text_dim else ""),
            ("text mask", f"adata.obsm[{reg.text_mask_key!r}]" if reg.text_mask_key else "-", ""),
            ("patch store", reg.patch_store or "-", f"dim {reg.patch_dim}" if reg.patch_dim else ""),
            ("slide ids", f"adata.obs[{reg.slide_key!r}]" if reg.slide_key else "-", ""),
        ]
        for key in reg.labels_keys:
            rows.append((f"label {key}", f"adata.obs[{key!r}]", f"{len(reg.categories.get(key, []))} categories"))
        table = pd.DataFrame(rows, columns=["field", "source", "summary"]).set_index("field")
        print(table.to_string())
        return table

    # ---------------------------------------------------------------- tensors
    def normalize(self, x: np.ndarray) -> np.ndarray:
        """z-score an (n x ``var_names``) array on the user's scale with the training statistics."""
        return self.scaler.transform(x, filtered=True)

    def _expression(self, adata) -> np.ndarray:
        x = get_expression(adata, self.registry.layer)
        names = pd.Index(adata.var_names)
        expected = self._setup_var_names
        if not names.equals(expected):
            _check_var_names(names, expected, "the model")
            x = x[:, names.get_indexer(expected)]
        return x

    def _label_codes(self, adata) -> np.ndarray | None:
        keys = self.registry.labels_keys
        if not keys:
            return None
        codes = []
        for key in keys:
            cats = self.registry.categories[key]
            codes.append(pd.Categorical(adata.obs[key].astype(str), categories=cats).codes)
        return np.stack(codes, axis=1).astype(np.int64)

    def _make_bank(self, adata, with_expression: bool):
        """Build the device-ready tensors of ``adata`` (models are the only place AnnData becomes tensors)."""
        from ..train import ConditionBank

        reg = self.registry
        x = self.scaler.transform(self._expression(adata)) if with_expression else None
        text = mask = patches = offsets = counts = stream = None
        if reg.text_key is not None and self._uses("text"):
            text = np.asarray(adata.obsm[reg.text_key])
            mask = np.asarray(adata.obsm[reg.text_mask_key]).astype(bool) if reg.text_mask_key else None
        if reg.patch_store is not None and self._uses("image"):
            from ..data import PatchStore

            store = PatchStore(reg.patch_store, mode="r")
            ids = adata.obs[reg.slide_key].astype(str).tolist()
            nbytes, limit = store.bank_nbytes(ids), settings.bank_limit()
            if nbytes > limit:
                logger.warning(
                    "The patch bank (%.1f GB) exceeds gg.settings.max_bank_bytes (%.1f GB): tiles are streamed from "
                    "the zarr store at every step (slower, bounded memory).", nbytes / 1e9, limit / 1e9,
                )
                stream = (store, ids)
            else:
                patches, offsets, counts = store.bank(ids)
        return ConditionBank(
            x=x, text=text, text_mask=mask, patches=patches, offsets=offsets, counts=counts,
            labels=self._label_codes(adata) if self._uses("labels") else None,
            n_patches=self.hparams.get("n_patches", 256), stream_from=stream,
        )

    def _uses(self, modality: str) -> bool:
        """Whether the networks read ``"text"``, ``"image"`` or ``"labels"``."""
        return False

    @property
    def default_calibration(self) -> str:
        """The output calibration of ``train(calibrate=True)``.

        ``"covariance"`` where the conditions are labels or nothing: chosen on the validation rows of the TCGA
        cohort for six generators (corr-MSE and detectability down, k-NN precision up;
        benchmarks/calibration_methods.py). ``"moments"`` for models that read slide or text embeddings: their
        covariance map is fitted on the pooled profiles, so it also rescales the spread between conditions, and
        on the her2st sections it lowered the conditional fidelity of image-conditioned GeMM-GAN
        (benchmarks/results/calibration_study).

        Examples
        --------
        >>> gg.CondWGANGP(adata).default_calibration  # doctest: +SKIP
        'covariance'
        """
        return "moments" if self._uses("image") or self._uses("text") else "covariance"

    # ------------------------------------------------------------------ train
    def _build_networks(self, n_genes: int):
        raise NotImplementedError

    def _make_plan(self, bank, train_idx, val_idx, **plan_kwargs):
        raise NotImplementedError

    def _validate_plan_kwargs(self, kwargs: dict[str, Any]) -> None:
        """Subclasses check their training arguments here (before anything is built)."""

    def _make_split(self, n: int, train_size: float, seed: int | None) -> dict[str, np.ndarray]:
        if not 0.0 < train_size <= 1.0:
            raise ValueError(f"train_size must be in (0, 1], got {train_size!r}.")
        order = np.random.default_rng(seed).permutation(n)
        n_train = max(1, int(round(train_size * n)))
        return {"train": np.sort(order[:n_train]), "validation": np.sort(order[n_train:])}

    def train(
        self,
        max_steps: int | None = None,
        max_epochs: int | None = None,
        batch_size: int | None = None,
        preset: str = "default",
        train_size: float = 0.8,
        early_stopping: bool | int = True,
        restore_best: bool = True,
        calibrate: bool | str = True,
        accelerator: str = "auto",
        devices: int | str | list = "auto",
        precision: str | int | None = None,
        seed: int | None = None,
        checkpoint_dir: str | os.PathLike | None = None,
        checkpoint_every: int = 10,
        resume: bool = False,
        compile: bool = False,
        **kwargs: Any,
    ) -> "BaseGenerativeModel":
        """Train on the rows of the set-up AnnData; the subclasses document their loss arguments.

        The budget is ``max_steps`` training steps (one batch each: a generator update for the GANs) or
        ``max_epochs`` passes over the training rows; without either, the preset's budget. Every epoch the
        Frechet distance between profiles generated for the validation rows and the real ones (PCA space of the
        training rows) is logged as ``val_frechet``; early stopping (``patience`` epochs without improvement,
        or ``early_stopping=N`` for N) and restoring the best weights (``restore_best``) watch it. Then, with
        ``calibrate``, a per-gene output calibration is fitted so that profiles generated from the training
        rows' conditions have the training rows' per-gene mean and sd (per label group for models conditioned
        on labels; z-scored scale; a missing variance is
        added as independent per-gene noise, :class:`~gemmgan_sc.models._calibration.OutputCalibration`): GANs
        end training with small per-gene mean offsets that a linear classifier adds up over thousands of genes,
        and without residual noise their profiles lie closer together than real ones (k-NN recall ~0);
        benchmarks/convergence.py measures with and without. ``calibrate="quantiles"`` also maps each gene onto the
        training rows' quantiles (their whole marginal, point masses included: better train-on-synthetic
        utility, worse k-NN precision and recall; see OutputCalibration); ``calibrate="covariance"`` first moves
        the profiles by the Gaussian optimal-transport map that gives them the training rows' covariance in the
        training rows' top principal axes (their gene-gene correlations) and shrinks the rest of each profile
        towards independent noise, then matches the moments; the number of axes (10-100) and the share of the
        rest kept (0, 0.5 or 1) are those whose profiles for the validation rows have the closest gene-gene
        correlations (:attr:`calibration_scores` lists them; 10 and 0.5 without validation rows);
        ``True`` means :attr:`default_calibration`: ``"covariance"`` for models conditioned on labels or on
        nothing, ``"moments"`` (the per-gene step alone) for models conditioned on slide or text embeddings. A second call
        continues training the same networks, split and normalisation. ``checkpoint_dir`` writes a checkpoint
        (safetensors + JSON) every ``checkpoint_every`` epochs; ``resume=True`` continues an interrupted run
        from it (the early-stopping count and the best weights are tracked afresh from there). ``compile=True`` runs the fusion networks through ``torch.compile`` (it pays on GPUs). Other
        keyword arguments go to the training plan when it knows them, else to the Lightning ``Trainer``.

        Returns the model, so ``model.train().sample()`` chains.
        """
        import lightning.pytorch as pl

        config = TrainConfig.resolve(self, preset, batch_size, kwargs, max_steps, max_epochs, train_size)
        calibrate = _calibration_method(calibrate, self.default_calibration)
        _check_train_args(train_size, checkpoint_every, compile, resume, checkpoint_dir, early_stopping)
        seed = settings.seed if seed is None else seed
        if seed is not None:
            pl.seed_everything(seed, verbose=False)
        self.registry.validate(self.adata, check_categories=False)
        resume_state = self._resume(checkpoint_dir) if resume else None
        if resume and config.remaining(self._history) <= 0:
            logger.warning("The checkpoint already holds the whole budget: nothing to train.")
            self.is_trained = True
            return self
        self._prepare_split(train_size, seed)
        plan = self._plan_for(config, seed, resume_state)
        trainer = make_trainer(self, plan, config, accelerator=accelerator, devices=devices, precision=precision,
                               early_stopping=early_stopping, restore_best=restore_best,
                               checkpoint=(checkpoint_dir, checkpoint_every), trainer_kwargs=config.trainer_kwargs)
        fit(trainer, plan, self._loaders(config.batch_size), resume_state, compile)
        self.global_rank = int(trainer.global_rank)
        self.networks = plan.networks.cpu().eval()
        if calibrate:
            self._calibrate(seed=seed, method=calibrate)
        self.train_params = config.record(train_size=train_size, seed=seed, accelerator=accelerator,
                                          precision=precision, compile=compile, calibrate=calibrate)
        if self.calibration is not None and self.calibration.covariance is not None:
            self.train_params["calibration_axes"] = int(self.calibration.covariance[0].shape[1])
            self.train_params["calibration_residual_weight"] = self.calibration.residual_weight
        self.is_trained = True
        return self

    def _prepare_split(self, train_size: float, seed: int | None) -> None:
        """Split, normalisation and networks on the first call; kept by later calls."""
        n = self.adata.n_obs
        if self.split is None:
            self.split = self._make_split(n, train_size, seed)
            self.scaler.fit(self._expression(self.adata)[self.split["train"]])
            self.networks = self._build_networks(int(self.scaler.keep.sum()))
            self._fit_input_statistics(self.split["train"])
        elif abs(len(self.split["train"]) / n - train_size) > 1.0 / n:
            logger.warning("Continuing training on the existing split; train_size=%s is ignored.", train_size)

    def _fit_input_statistics(self, train_rows: np.ndarray) -> None:
        """Standardise the tile features every fusion network reads with the training slides' statistics."""
        from ..data import PatchStore
        from ..nn import ConditionFusion

        fusions = [m for m in self.networks.modules() if isinstance(m, ConditionFusion) and m.uses_image]
        if not fusions or self.registry.patch_store is None:
            return
        slides = self.adata.obs[self.registry.slide_key].astype(str).to_numpy()[train_rows]
        mean, sd = PatchStore(self.registry.patch_store, mode="r").feature_moments(slides)
        for fusion in fusions:
            fusion.set_patch_statistics(mean, sd)

    def _plan_for(self, config: "TrainConfig", seed: int | None, resume_state: dict | None):
        import torch

        bank = self._make_bank(self.adata, with_expression=True)
        train_idx, val_idx = (torch.as_tensor(self.split[k], dtype=torch.long) for k in ("train", "validation"))
        self.networks.train()
        plan = self._make_plan(bank, train_idx, val_idx, **config.plan_kwargs)
        plan.seed, plan.resume_state = seed, resume_state
        return plan

    def _loaders(self, batch_size: int):
        """Shuffled batches of training rows, and the validation rows (in order) when there are any."""
        import torch

        train_idx = torch.as_tensor(self.split["train"], dtype=torch.long)
        val_idx = torch.as_tensor(self.split["validation"], dtype=torch.long)
        train = torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(train_idx), batch_size=batch_size, shuffle=True,
            drop_last=len(train_idx) > batch_size and len(train_idx) % batch_size == 1,
        )
        val = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(val_idx), batch_size=1024)
        return train, (val if len(val_idx) > 1 else None)

    def _resume(self, checkpoint_dir) -> dict | None:
        found = read_checkpoint(checkpoint_dir)
        if found is None:
            logger.warning("No checkpoint in %s: training from the start.", checkpoint_dir)
            return None
        return self._restore_checkpoint(*found)

    def _write_checkpoint(self, folder, plan) -> None:
        state = {
            "networks": plan.networks.state_dict(),
            "scaler": {k: torch_tensor(v) for k, v in self.scaler.state().items()},
            "train": plan.training_state(),
        }
        meta = self._meta()
        meta["checkpoint"] = {"epochs_done": len(self._history)}
        write_checkpoint(folder, state, json_safe(meta))

    def _restore_checkpoint(self, state: dict, meta: dict) -> dict:
        """Load networks, normalisation, split and history from a checkpoint; return the optimiser/RNG states."""
        if meta.get("model") != type(self).__name__:
            raise ValueError(f"The checkpoint holds a {meta.get('model')}, not a {type(self).__name__}.")
        if list(meta["var_names"]) != [str(v) for v in self._setup_var_names]:
            raise ValueError("The checkpoint was written for other var_names than this AnnData's.")
        saved = {k: (tuple(v) if isinstance(v, list) else v) for k, v in meta["hparams"].items()}
        current = {k: (tuple(v) if isinstance(v, list) else v) for k, v in self.hparams.items()}
        if saved != current:
            raise ValueError(
                f"The checkpoint was written with other hyperparameters ({saved}) than this model's ({current})."
            )
        self.scaler = ExpressionScaler.from_state({k: v.numpy() for k, v in state["scaler"].items()})
        self.networks = self._build_networks(int(self.scaler.keep.sum()))
        self.networks.load_state_dict(state["networks"])
        self.split = {k: np.asarray(v, dtype=np.int64) for k, v in meta["split"].items()}
        self._history[:] = list(meta["history"])
        return state["train"]

    # ----------------------------------------------------------------- sample
    def _check_trained(self) -> None:
        if not self.is_trained or self.networks is None:
            raise RuntimeError(f"The {type(self).__name__} is not trained yet: call model.train() first.")

    def _conditioning_rows(self, adata, indices) -> tuple[Any, np.ndarray]:
        if adata is None:
            adata = self.adata
        else:
            self.registry.validate(adata, require_expression=False)
        if indices is None:
            indices = np.arange(adata.n_obs)
        else:
            indices = np.asarray(indices)
            if indices.dtype == bool:
                if indices.shape != (adata.n_obs,):
                    raise ValueError(f"Boolean indices must have length n_obs={adata.n_obs}, got {indices.shape}.")
                indices = np.flatnonzero(indices)
            elif not np.issubdtype(indices.dtype, np.integer):
                indices = adata.obs_names.get_indexer(indices.astype(str))
                if (indices < 0).any():
                    raise KeyError("Some indices are not obs_names of the AnnData.")
            if len(indices) and (indices.min() < -adata.n_obs or indices.max() >= adata.n_obs):
                raise IndexError(f"indices out of range for an AnnData with {adata.n_obs} rows.")
        return adata, indices

    def _generate(self, bank, rows: np.ndarray, seed: int | None, batch_size: int, device) -> np.ndarray:
        """z-scored profiles for bank rows ``rows`` (one per entry)."""
        import torch

        gen = torch.Generator(device=device)
        gen.manual_seed(int(seed) if seed is not None else int(torch.randint(0, 2**62, (1,)).item()))
        net = self.networks.to(device).eval()
        bank = bank.to(device)
        out = []
        with torch.no_grad():
            for chunk in torch.as_tensor(rows, dtype=torch.long).split(batch_size):
                chunk = chunk.to(device)
                cond = bank.conditions(chunk, generator=gen)
                z = torch.randn(len(chunk), net.n_latent, generator=gen, device=device)
                out.append(net.generate(cond, z).float().cpu().numpy())
        self.networks.cpu()
        z = np.concatenate(out, axis=0) if out else np.zeros((0, len(self.var_names)), np.float32)
        if self.calibration is None:
            return z
        noise = torch.randn(z.shape, generator=gen, device=device).cpu().numpy() if self.calibration.adds_noise else None
        groups = None if bank.labels is None else bank.labels.cpu().numpy()[np.asarray(rows)]
        return self.calibration.apply(z, noise, groups)

    def _calibrate(self, n_draws: int = 8192, seed: int | None = 0, method: str | None = None,
                   candidates=None) -> None:
        """Fit the output calibration (``method``, default :attr:`default_calibration`) on profiles generated
        from the training rows' conditions (per label group for models conditioned on labels); the covariance
        calibration's (axes, residual weight) are chosen among ``candidates`` (default
        :data:`~gemmgan_sc.models._calibration.COVARIANCE_CANDIDATES`) on the validation rows where there are
        enough."""
        from ._calibration import COVARIANCE_CANDIDATES, MIN_GROUP_ROWS, OutputCalibration, select_covariance

        method = method or self.default_calibration
        self.calibration, self.calibration_scores = None, pd.DataFrame()
        bank, device, seed = self._make_bank(self.adata, with_expression=False), self._sampling_device(None), calibration_seed(seed)
        train, validation = self.split["train"], self.split["validation"]
        rows = np.resize(train, max(int(n_draws), len(train)))
        fit_sets = self._calibration_set(bank, rows, train, seed, device)
        candidates = COVARIANCE_CANDIDATES if candidates is None else tuple(candidates)
        if method != "covariance" or len(validation) < 2 * MIN_GROUP_ROWS:
            fixed = dict(zip(("n_components", "residual_weight"), candidates[0])) if len(candidates) == 1 else {}
            self.calibration = OutputCalibration.fit(*fit_sets, method=method, seed=seed, **fixed)
            return
        val_generated, val_real, val_groups = self._calibration_set(bank, np.resize(validation, len(train)),
                                                                    validation, seed + 1, device)[:3]
        noise = np.random.default_rng(seed + 1).standard_normal(val_generated.shape)
        self.calibration, scores = select_covariance(*fit_sets, val_generated, val_real, val_groups, noise,
                                                     candidates)
        self.calibration_scores = pd.DataFrame(scores)

    def _calibration_set(self, bank, rows: np.ndarray, real_rows: np.ndarray, seed: int, device) -> tuple:
        """(generated from ``rows``' conditions, real ``real_rows`` z-scored, their label codes or Nones)."""
        generated = self._generate(bank, rows, seed, 1024, device)
        real = self.scaler.transform(self._expression(self.adata)[real_rows])
        codes = self._label_codes(self.adata) if self._uses("labels") else None
        return (generated, real) + ((None, None) if codes is None else (codes[rows], codes[real_rows]))

    def sample(
        self,
        adata=None,
        indices=None,
        n_samples: int = 1,
        seed: int | None = None,
        batch_size: int | None = None,
        device: str | None = None,
    ):
        """Generate synthetic profiles, one or more per conditioning row.

        Parameters
        ----------
        adata
            Rows whose conditions (text, slides, labels) to generate from; default: the training AnnData. New
            patients work: their slides must be in the model's patch store and their text embedded with the same
            encoder; expression is not needed.
        indices
            Row positions, obs names or a boolean mask selecting rows of ``adata`` (default: all).
        n_samples
            Profiles per row.
        seed
            Seed of the noise and tile draws (default: ``gg.settings.seed``); the same seed gives the same profiles.
        batch_size
            Rows per forward pass (default 256).
        device
            Torch device (default ``gg.settings.device``).

        Returns
        -------
        AnnData with the model's ``var_names``, ``X`` on the user's scale, ``obs`` copied from the conditioning rows
        plus ``synthetic=True`` and ``source_obs`` (the conditioning row's obs name).
        """

        self._check_trained()
        if not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
            raise ValueError(f"n_samples must be a positive int, got {n_samples!r}.")
        adata, indices = self._conditioning_rows(adata, indices)
        seed = settings.seed if seed is None else seed
        bank = self._make_bank(adata, with_expression=False)
        rows = np.repeat(indices, n_samples)
        z = self._generate(bank, rows, seed, int(batch_size or 256), self._sampling_device(device))
        return self._synthetic_anndata(adata, rows, z, n_samples)

    def _sampling_device(self, device: str | None):
        """``device``, else the one given to :meth:`load`, else ``gg.settings.device``."""
        return settings.resolve_device(device or getattr(self, "device", None))

    def _synthetic_anndata(self, adata, rows: np.ndarray, z: np.ndarray, n_samples: int):
        import anndata as ad

        x = self.scaler.inverse_transform(z)
        obs = adata.obs.iloc[rows].copy()
        obs["source_obs"] = obs.index.astype(str)
        rep = np.tile(np.arange(n_samples), len(rows) // max(n_samples, 1))
        obs.index = pd.Index([f"{name}-synth{k}" for name, k in zip(obs["source_obs"], rep)])
        obs["synthetic"] = True
        var = pd.DataFrame(index=self.var_names.copy())
        out = ad.AnnData(X=x.astype(np.float32), obs=obs, var=var)
        out.uns["gemmgan_synthetic"] = synthetic_uns(type(self).__name__, out.n_obs, int(n_samples))
        return out

    # ------------------------------------------------------------ save / load
    def _meta(self) -> dict[str, Any]:
        import torch

        from .. import __version__

        return {
            "format_version": FORMAT_VERSION,
            "model": type(self).__name__,
            "hparams": self.hparams,
            "registry": self.registry.to_dict(),
            "var_names": [str(v) for v in self._setup_var_names],
            "split": {k: v.tolist() for k, v in self.split.items()},
            "history": self._history,
            "train_params": self.train_params,
            "versions": {"gemmgan_sc": __version__, "torch": torch.__version__, "python": platform.python_version()},
        }

    def save(self, dir_path: str | os.PathLike, overwrite: bool = False, save_anndata: bool = False) -> Path:
        """Save to a folder: ``model.safetensors`` (weights, normalisation) + ``model.json``; never a pickle.

        The folder is written next to its destination and moved into place, so an interrupted save never leaves
        a folder that reads as a model.
        """
        from safetensors.numpy import save_file

        self._check_trained()
        target = Path(dir_path).expanduser().absolute()
        if target.exists() and not overwrite:
            raise FileExistsError(f"{str(target)!r} exists; pass overwrite=True to replace it.")
        with atomic_folder(target) as tmp:
            tensors = {f"net.{k}": v.detach().cpu().contiguous().numpy() for k, v in self.networks.state_dict().items()}
            tensors.update({f"scaler.{k}": v for k, v in self.scaler.state().items()})
            if self.calibration is not None:
                tensors.update({f"calibration.{k}": v for k, v in self.calibration.state().items()})
            # safetensors writes a strided (e.g. transposed) array's memory as it lies, not in its index order
            # (np.ascontiguousarray would also turn 0-d arrays into 1-d ones)
            save_file({k: v if v.flags.c_contiguous else v.copy(order="C") for k, v in tensors.items()},
                      str(tmp / WEIGHTS_FILE))
            with open(tmp / META_FILE, "w") as fh:
                json.dump(json_safe(self._meta()), fh, indent=1)
            if save_anndata:
                self.adata.write_h5ad(tmp / "adata.h5ad")
        return target

    @classmethod
    def load(cls, dir_path: str | os.PathLike, adata=None, device: str | None = None):
        """Load a saved model: rebuilt through ``__init__`` with the saved hyperparameters, after replaying the
        saved setup on ``adata`` (default: the saved ``adata.h5ad``), which is validated against it.

        Examples
        --------
        >>> model = gg.GeMMGAN.load("my_model", adata=adata)  # doctest: +SKIP
        """
        folder = Path(dir_path).expanduser()
        meta, tensors = _read_saved(folder)
        if meta["model"] != cls.__name__:
            if cls is not BaseGenerativeModel:
                raise ValueError(f"{str(folder)!r} holds a {meta['model']}, not a {cls.__name__}: use gg.{meta['model']}.load.")
            from . import MODEL_CLASSES

            if meta["model"] not in MODEL_CLASSES:
                raise ValueError(f"Unknown model class {meta['model']!r} in {str(folder / META_FILE)!r}.")
            cls = MODEL_CLASSES[meta["model"]]
        adata = _saved_anndata(folder) if adata is None else adata
        var_names = pd.Index(meta["var_names"])
        _check_var_names(pd.Index(adata.var_names), var_names, "the saved model")
        registry = AnnDataRegistry.from_dict(meta["registry"])
        registry.validate(adata, require_expression=False)
        adata.uns[SETUP_KEY] = {"model": cls.__name__, **registry.to_uns()}  # replay the setup
        hparams = {k: v for k, v in meta["hparams"].items() if k not in _RETIRED_HPARAMS}
        model = cls(adata, **hparams)
        model._saved_var_names = var_names
        model._load_state(tensors, meta, folder / WEIGHTS_FILE)
        model.device = None if device is None else str(settings.resolve_device(device))
        return model

    def _load_state(self, tensors: dict[str, np.ndarray], meta: dict, weights_path: Path) -> None:
        """Normalisation, weights, split and history of a saved model."""
        import torch

        from ..nn import upgrade_state_dict

        scaler_state = {k[len("scaler."):]: v for k, v in tensors.items() if k.startswith("scaler.")}
        try:
            self.scaler = ExpressionScaler.from_state(scaler_state)
        except (KeyError, ValueError) as err:
            raise ValueError(f"Normalisation statistics in {str(weights_path)!r} are missing or damaged: {err}") from err
        if len(self.scaler.keep) != len(self._saved_var_names):
            raise ValueError(f"The gene filter in {str(weights_path)!r} has {len(self.scaler.keep)} entries for "
                             f"{len(self._saved_var_names)} genes.")
        self.split = {k: np.asarray(v, dtype=np.int64) for k, v in meta["split"].items()}
        self.networks = self._build_networks(int(self.scaler.keep.sum()))
        state = upgrade_state_dict({k[len("net."):]: torch.from_numpy(v.copy()) for k, v in tensors.items()
                                    if k.startswith("net.")})
        expected = self.networks.state_dict()
        missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
        wrong = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
        if missing or unexpected or wrong:
            raise ValueError(
                f"The weights in {str(weights_path)!r} do not fit the saved hyperparameters: missing {missing[:5]}, "
                f"unexpected {unexpected[:5]}, wrong shapes {wrong[:5]}. The folder was modified or is damaged."
            )
        self.networks.load_state_dict(state)
        self.networks.eval()
        from ._calibration import OutputCalibration

        self.calibration = OutputCalibration.from_state(
            {k[len("calibration."):]: v for k, v in tensors.items() if k.startswith("calibration.")})
        n = sum(len(v) for v in self.split.values())
        if self.adata.n_obs != n:
            logger.warning("The AnnData has %d rows but the model was trained on %d; model.split refers to the "
                           "training AnnData.", self.adata.n_obs, n)
        self._history = list(meta.get("history", []))
        self.train_params = dict(meta.get("train_params", {}))
        self.is_trained = True


#: hyperparameters of earlier versions that the models no longer take (their effect lives in the saved state)
_RETIRED_HPARAMS = ("filter_genes",)


def calibration_seed(seed: int | None) -> int:
    """The seed of the output calibration's own draws for a training ``seed``: one that no sampling seed is
    likely to be. Drawn with the training seed, ``sample(seed=...)`` at that seed would reuse the very noise the
    calibration was fitted on and be calibrated in-sample (on TCGA the diffusion model's held-out LR AUC read
    0.53 at its training seed and 0.71-0.76 at others).

    Examples
    --------
    >>> calibration_seed(0) == calibration_seed(0) != 0
    True
    """
    return int(np.random.SeedSequence([0 if seed is None else int(seed), 0x63616C]).generate_state(1)[0])


def _read_saved(folder: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """The JSON and the tensors of a saved-model folder, checked for damage and foreign files."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    meta_path, weights_path = folder / META_FILE, folder / WEIGHTS_FILE
    for path in (meta_path, weights_path):
        if not path.is_file():
            raise FileNotFoundError(f"{str(path)!r} is missing: {str(folder)!r} is not a saved gemmgan-sc model.")
    extra = sorted(p.name for p in folder.iterdir() if p.suffix in {".pkl", ".pickle", ".pt", ".pth", ".ckpt", ".bin"})
    if extra:
        raise ValueError(
            f"{str(folder)!r} contains {extra}: saved models are safetensors + JSON only, so these files were added "
            "by someone else. Refusing to load; remove them if you trust the folder."
        )
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{str(meta_path)!r} is not valid JSON: {err}") from err
    for key in ("model", "hparams", "registry", "var_names", "split"):
        if key not in meta:
            raise ValueError(f"{str(meta_path)!r} has no {key!r} entry: the folder is damaged.")
    try:
        tensors = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"{str(weights_path)!r} is not a valid safetensors file: {err}") from err
    return meta, tensors


def _saved_anndata(folder: Path):
    h5 = folder / "adata.h5ad"
    if not h5.is_file():
        raise ValueError(f"Pass adata=...: {str(folder)!r} was saved without its AnnData (save_anndata=False).")
    import anndata as ad

    return ad.read_h5ad(h5)


def _check_var_names(names: pd.Index, expected: pd.Index, what: str) -> None:
    """Raise unless every gene of ``expected`` is in ``names`` (order may differ: callers reorder)."""
    missing = expected.difference(names)
    if len(missing):
        raise ValueError(
            f"adata.var_names do not match {what}: {len(missing)} of its {len(expected)} genes are missing "
            f"(e.g. {list(missing[:5])}). Give an AnnData with the genes the model was trained on (any order)."
        )


def torch_tensor(array: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(array))
