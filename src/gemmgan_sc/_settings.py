"""Global settings, reachable as ``gg.settings``."""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger("gemmgan_sc")
if not logger.handlers:
    _handler = logging.StreamHandler()
    _handler.setFormatter(logging.Formatter("gemmgan-sc %(levelname)s: %(message)s"))
    logger.addHandler(_handler)
    logger.propagate = False
logger.setLevel(logging.WARNING)

_VERBOSITY = {0: logging.ERROR, 1: logging.WARNING, 2: logging.INFO, 3: logging.DEBUG}


class Settings:
    """Package-wide settings.

    Attributes
    ----------
    seed
        Seed for Python ``random``, NumPy and torch; setting it seeds all three at once. It changes nothing
        else in the process (see ``deterministic``).
    deterministic
        ``True`` asks torch for deterministic algorithms where they exist
        (``torch.use_deterministic_algorithms(True, warn_only=True)``), so that two runs with the same seed give
        the same history and samples on one device, at some cost in speed on GPUs. Process-wide; default
        ``False`` (torch's default).
    device
        Default device for encoders and sampling (``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``...).
    num_workers
        Default number of worker processes for tile reading and data loading.
    progress_bar
        Show tqdm progress bars on long work.
    verbosity
        0 errors, 1 warnings (default), 2 info, 3 debug.
    max_bank_bytes
        Largest float16 patch bank held in memory (default None: half of the machine's RAM). Larger banks are
        streamed from the zarr patch store at each step (bounded memory, slower).
    autoshow
        What ``show=None`` means in every ``gg.pl`` function (as scanpy's ``settings.autoshow``): ``True``
        (default) calls ``plt.show()`` after drawing, ``False`` leaves the figure open for more drawing.
    figdir
        Folder where ``gg.pl`` functions write ``save=True`` figures (default ``"figures"``, as scanpy).

    Examples
    --------
    >>> import gemmgan_sc as gg
    >>> gg.settings.seed = 0
    >>> gg.settings.progress_bar = False
    >>> gg.settings.autoshow = False
    """

    def __init__(self) -> None:
        self._seed: int | None = None
        self._device = "auto"
        self._num_workers = 0
        self.progress_bar = True
        self._verbosity = 1
        self._max_bank_bytes: int | None = None
        self._deterministic = False
        self._autoshow = True
        self._figdir = Path("figures")

    # seed -----------------------------------------------------------------
    @property
    def seed(self) -> int | None:
        return self._seed

    @seed.setter
    def seed(self, value: int | None) -> None:
        if value is None:
            self._seed = None
            return
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"settings.seed must be a non-negative int or None, got {value!r}.")
        self._seed = int(value)
        seed_everything(self._seed)

    @property
    def deterministic(self) -> bool:
        return self._deterministic

    @deterministic.setter
    def deterministic(self, value: bool) -> None:
        import torch

        if not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"settings.deterministic must be True or False, got {value!r}.")
        if value:
            # cuBLAS needs a fixed workspace for deterministic matmuls; it is read when CUDA starts
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(bool(value), warn_only=True)
        self._deterministic = bool(value)

    # plots ----------------------------------------------------------------
    @property
    def autoshow(self) -> bool:
        return self._autoshow

    @autoshow.setter
    def autoshow(self, value: bool) -> None:
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"settings.autoshow must be True or False, got {value!r}.")
        self._autoshow = bool(value)

    @property
    def figdir(self) -> Path:
        return self._figdir

    @figdir.setter
    def figdir(self, value: str | os.PathLike) -> None:
        if not isinstance(value, (str, os.PathLike)) or not str(value):
            raise ValueError(f"settings.figdir must be a folder path, got {value!r}.")
        self._figdir = Path(value)

    # device ---------------------------------------------------------------
    @property
    def device(self) -> str:
        return self._device

    @device.setter
    def device(self, value: str) -> None:
        import torch

        if value != "auto":
            try:
                torch.device(value)
            except (RuntimeError, TypeError) as err:
                raise ValueError(
                    f"settings.device={value!r} is not a torch device; use 'auto', 'cpu', 'cuda' or 'cuda:N'."
                ) from err
        self._device = str(value)

    def resolve_device(self, device: str | None = None):
        """Return the ``torch.device`` for ``device`` (default: this setting; ``"auto"`` picks CUDA when present)."""
        import torch

        device = device or self._device
        if device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(device)

    # workers --------------------------------------------------------------
    @property
    def num_workers(self) -> int:
        return self._num_workers

    @num_workers.setter
    def num_workers(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"settings.num_workers must be an int >= 0, got {value!r}.")
        self._num_workers = int(value)

    # verbosity ------------------------------------------------------------
    @property
    def verbosity(self) -> int:
        return self._verbosity

    @verbosity.setter
    def verbosity(self, value: int) -> None:
        if value not in _VERBOSITY:
            raise ValueError(f"settings.verbosity must be one of {sorted(_VERBOSITY)}, got {value!r}.")
        self._verbosity = int(value)
        logger.setLevel(_VERBOSITY[self._verbosity])

    # bank memory ------------------------------------------------------------
    @property
    def max_bank_bytes(self) -> int | None:
        return self._max_bank_bytes

    @max_bank_bytes.setter
    def max_bank_bytes(self, value: int | None) -> None:
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0):
            raise ValueError(f"settings.max_bank_bytes must be an int >= 0 or None, got {value!r}.")
        self._max_bank_bytes = None if value is None else int(value)

    def bank_limit(self) -> int:
        """``max_bank_bytes``, or half of the physical memory when it is None."""
        if self._max_bank_bytes is not None:
            return self._max_bank_bytes
        try:
            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
        except (ValueError, OSError, AttributeError):
            return 8 * 2**30

    def __repr__(self) -> str:
        return (
            f"gemmgan_sc.settings(seed={self.seed}, deterministic={self.deterministic}, device={self.device!r}, "
            f"num_workers={self.num_workers}, progress_bar={self.progress_bar}, verbosity={self.verbosity}, "
            f"autoshow={self.autoshow}, figdir={str(self.figdir)!r})"
        )


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (nothing else: see ``settings.deterministic``)."""
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def progress(iterable: Any = None, total: int | None = None, desc: str | None = None, **kwargs: Any):
    """A tqdm progress bar, hidden unless ``gg.settings.progress_bar``; use it as an iterable or call ``update``."""
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, disable=not settings.progress_bar, **kwargs)


settings = Settings()
