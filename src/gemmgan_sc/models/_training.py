"""How a model's ``train()`` arguments become a training plan, a Lightning ``Trainer`` and its callbacks."""

from __future__ import annotations

import dataclasses
import logging
import math
import warnings
from typing import Any

import numpy as np

from .._settings import settings

#: keys of a preset that are not plan arguments
_BUDGET_KEYS = ("batch_size", "max_steps", "max_epochs", "patience", "lr_halving_every_epochs")


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}.")
    return int(value)


@dataclasses.dataclass
class TrainConfig:
    """One training run's settings: the preset, overridden by what the user passed."""

    preset: str
    batch_size: int
    max_steps: int | None
    max_epochs: int | None
    patience: int
    plan_kwargs: dict[str, Any]
    trainer_kwargs: dict[str, Any]
    n_train: int

    @classmethod
    def resolve(cls, model, preset: str, batch_size, kwargs: dict, max_steps, max_epochs,
                train_size: float = 0.8) -> "TrainConfig":
        presets = model._presets
        if preset not in presets:
            raise ValueError(f"Unknown preset {preset!r} for {type(model).__name__}; choose one of {sorted(presets)}.")
        values = {**presets["default"], **presets[preset]}
        plan_kwargs = {k: v for k, v in values.items() if k not in _BUDGET_KEYS}
        trainer_kwargs = {}
        kwargs = dict(kwargs)
        patience = _positive_int("patience", kwargs.pop("patience", values.get("patience", 20)))
        for key, value in kwargs.items():
            (plan_kwargs if key in plan_kwargs else trainer_kwargs)[key] = value
        model._validate_plan_kwargs(plan_kwargs)
        batch_size = _positive_int("batch_size", values["batch_size"] if batch_size is None else batch_size)
        if max_steps is not None:
            max_steps = _positive_int("max_steps", max_steps)
        if max_epochs is not None:
            max_epochs = _positive_int("max_epochs", max_epochs)
        if max_steps is None and max_epochs is None:
            max_steps, max_epochs = values.get("max_steps"), values.get("max_epochs")
        n_train = int(round(model.adata.n_obs * float(train_size))) if model.split is None else len(model.split["train"])
        halving = values.get("lr_halving_every_epochs")
        if halving and "lr_halving_every" not in kwargs:  # epochs of the preset's batch size -> steps
            plan_kwargs["lr_halving_every"] = int(halving) * max(1, math.ceil(n_train / batch_size))
        return cls(preset, batch_size, max_steps, max_epochs, patience, plan_kwargs, trainer_kwargs, n_train)

    def remaining(self, history: list[dict]) -> int:
        """Steps (or epochs, for an epoch budget) still to train after ``history``."""
        if self.max_steps is not None:
            return self.max_steps - int(history[-1].get("step", 0) if history else 0)
        return self.max_epochs - len(history)

    def budget(self, history: list[dict], steps_per_batch: int) -> dict[str, int]:
        """Trainer arguments of the rest of the budget (Lightning counts every optimiser step)."""
        if self.max_steps is not None:
            return {"max_steps": self.remaining(history) * int(steps_per_batch), "max_epochs": -1}
        return {"max_epochs": self.remaining(history)}

    def record(self, **extra: Any) -> dict[str, Any]:
        return {"preset": self.preset, "max_steps": self.max_steps, "max_epochs": self.max_epochs,
                "batch_size": self.batch_size, "patience": self.patience, **extra, **self.plan_kwargs}


def _check_train_args(train_size, checkpoint_every, compile, resume, checkpoint_dir, early_stopping) -> None:
    if not 0.0 < float(train_size) <= 1.0:
        raise ValueError(f"train_size must be in (0, 1], got {train_size!r}.")
    _positive_int("checkpoint_every", checkpoint_every)
    if not isinstance(compile, (bool, np.bool_)):
        raise ValueError(f"compile must be True or False, got {compile!r}.")
    if resume and checkpoint_dir is None:
        raise ValueError("resume=True needs checkpoint_dir=... (the folder given to the interrupted run).")
    if not isinstance(early_stopping, (bool, np.bool_)):
        _positive_int("early_stopping", early_stopping)


def _calibration_method(calibrate, default: str = "covariance") -> str | bool:
    """``train(calibrate=...)`` as the method name (``True``: ``default``), or False."""
    from ._calibration import METHODS

    if calibrate is True or calibrate is False or isinstance(calibrate, np.bool_):
        return default if calibrate else False
    if calibrate not in METHODS:
        raise ValueError(f"calibrate must be True, False or one of {METHODS}, got {calibrate!r}.")
    return calibrate


def _callbacks(model, config: TrainConfig, early_stopping, restore_best: bool, checkpoint) -> list:
    from lightning.pytorch.callbacks import EarlyStopping

    from ..train._callbacks import BestWeights, EveryEpochs

    has_val = len(model.split["validation"]) > 1
    callbacks = []
    if has_val and restore_best:
        callbacks.append(BestWeights("val_frechet", "min"))
    if has_val and early_stopping is not False:
        patience = config.patience if early_stopping is True else int(early_stopping)
        callbacks.append(EarlyStopping("val_frechet", patience=patience, mode="min", check_finite=False,
                                       check_on_train_epoch_end=False))
    folder, every = checkpoint
    if folder is not None:
        callbacks.append(EveryEpochs(lambda plan: model._write_checkpoint(folder, plan), every))
    return callbacks


def make_trainer(model, plan, config: TrainConfig, accelerator, devices, precision, early_stopping,
                 restore_best: bool, checkpoint, trainer_kwargs: dict):
    """The Lightning ``Trainer`` of one run: budget, history logger, callbacks, the user's own arguments."""
    import lightning.pytorch as pl

    from ..train._callbacks import HistoryLogger

    history = model._history
    last = history[-1] if history else {}
    log = HistoryLogger(history, epoch_offset=len(history),
                        step_offset=int(last.get("step", 0)), time_offset=float(last.get("time", 0.0)))
    args = dict(accelerator=accelerator, devices=devices, logger=log, log_every_n_steps=1,
                enable_checkpointing=False, enable_model_summary=False, enable_progress_bar=settings.progress_bar,
                num_sanity_val_steps=0, **config.budget(history, plan.optimizer_steps_per_batch))
    if settings.deterministic:
        args["deterministic"] = "warn"
    if precision is not None:
        args["precision"] = precision
    callbacks = _callbacks(model, config, early_stopping, restore_best, checkpoint)
    args.update(trainer_kwargs)
    args["callbacks"] = callbacks + list(trainer_kwargs.get("callbacks", []))
    args["strategy"] = _ddp_strategy(args.get("strategy", "auto"), devices)
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    return pl.Trainer(**args)


def fit(trainer, plan, loaders, resume_state: dict | None, compile: bool) -> None:
    """``trainer.fit`` with the RNG states of a resumed run and the expected small-data warnings silenced."""
    from ..train._checkpoint import set_rng_states

    if compile:
        plan.compile_networks()
    train_loader, val_loader = loaders
    with warnings.catch_warnings():
        for message in (".*does not have many workers.*", ".*number of training batches.*",
                        ".*You defined a `validation_step`.*", ".*LeafSpec.*"):
            warnings.filterwarnings("ignore", message=message)
        if resume_state is not None:
            set_rng_states(resume_state["rng"])  # after seeding, before the first shuffle
        trainer.fit(plan, train_dataloaders=train_loader, val_dataloaders=val_loader)


_DDP_START = {"ddp": "popen", "ddp_spawn": "spawn", "ddp_fork": "fork", "ddp_notebook": "fork"}


def _ddp_strategy(strategy, devices):
    """DDP with unused-parameter detection: each backward of the critic/generator loop touches one network only."""
    if isinstance(strategy, str) and (
        strategy in _DDP_START or (strategy == "auto" and isinstance(devices, int) and devices > 1)
    ):
        from lightning.pytorch.strategies import DDPStrategy

        return DDPStrategy(find_unused_parameters=True, start_method=_DDP_START.get(strategy, "popen"))
    return strategy
