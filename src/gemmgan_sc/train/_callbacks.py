"""Lightning callbacks and the in-memory logger behind ``model.history``."""

from __future__ import annotations

import time
from collections.abc import Callable

import lightning.pytorch as pl
import torch
from lightning.pytorch.loggers import Logger


class HistoryLogger(Logger):
    """Collects the epoch-level metrics logged by a plan into ``rows`` (one dict per epoch, on every process).

    Each row gets ``epoch`` (continuing ``epoch_offset``), ``step`` (training batches, i.e. generator updates,
    continuing ``step_offset``) and ``time`` (seconds since this logger was made, plus ``time_offset``).
    """

    def __init__(self, rows: list[dict], epoch_offset: int = 0, step_offset: int = 0,
                 time_offset: float = 0.0) -> None:
        super().__init__()
        self.rows = rows
        self.epoch_offset, self.step_offset, self.time_offset = epoch_offset, step_offset, time_offset
        self._start = time.perf_counter()

    @property
    def name(self) -> str:
        return "history"

    @property
    def version(self) -> int:
        return 0

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        """Hyperparameters live in the model's JSON, not in the history."""

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        values = {k: float(v) for k, v in metrics.items() if k != "epoch"}
        if "epoch" not in metrics:
            return
        epoch = self.epoch_offset + int(metrics["epoch"])
        if not self.rows or self.rows[-1]["epoch"] != epoch:
            self.rows.append({"epoch": epoch})
        row = self.rows[-1]
        row.update(values)
        if step is not None:
            row["step"] = self.step_offset + int(step) + 1  # Lightning passes the batches stepped before this one
        row["time"] = self.time_offset + time.perf_counter() - self._start

    def merge(self, epoch: int, metrics: dict) -> None:
        """Add ``metrics`` to the row of ``epoch`` (Lightning logs the epoch's training metrics only after the
        ``on_train_epoch_end`` hooks, where checkpoints are written)."""
        epoch = self.epoch_offset + int(epoch)
        if not self.rows or self.rows[-1]["epoch"] != epoch:
            self.rows.append({"epoch": epoch})
        self.rows[-1].update({k: float(v) for k, v in metrics.items() if not k.endswith("_step")})


class BestWeights(pl.Callback):
    """Keep the networks' weights of the best ``monitor`` value (in memory) and restore them when training ends.

    The weights kept are the plan's ``sampling_state_dict()``: those that generated the validation profiles
    (the averaged generator of a plan with ``ema_decay``)."""

    def __init__(self, monitor: str = "val_frechet", mode: str = "min", restore: bool = True) -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}.")
        self.monitor, self.mode, self.restore = monitor, mode, restore
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.state: dict[str, torch.Tensor] | None = None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if value is None or trainer.sanity_checking or not torch.isfinite(value):
            return
        value = float(value)
        if self.best is None or (value < self.best if self.mode == "min" else value > self.best):
            self.best, self.best_epoch = value, int(trainer.current_epoch)
            self.state = {k: v.detach().clone() for k, v in pl_module.sampling_state_dict().items()}

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.restore and self.state is not None:
            pl_module.networks.load_state_dict(self.state)


class EveryEpochs(pl.Callback):
    """Call ``action(plan)`` after every ``every``-th training epoch and after the last one (checkpoints)."""

    def __init__(self, action: Callable[[pl.LightningModule], None], every: int) -> None:
        self.action, self.every = action, int(every)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if (trainer.current_epoch + 1) % self.every == 0:
            if isinstance(trainer.logger, HistoryLogger):
                trainer.logger.merge(trainer.current_epoch, trainer.callback_metrics)
            self.action(pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if (trainer.current_epoch + 1) % self.every != 0 or trainer.should_stop:
            self.action(pl_module)
