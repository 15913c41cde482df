"""Shared fixtures. Tests that need ../shared/data skip cleanly when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

# The suite's networks are tiny: intra-op threads only add synchronisation (and stall badly when the
# cores are shared), so tests run torch on one thread.
import torch  # noqa: E402

torch.set_num_threads(1)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of ../shared/data; skips the test when it is absent (a user's fresh machine)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real test data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _quiet_progress():
    import gemmgan_sc as gg

    old = gg.settings.progress_bar
    gg.settings.progress_bar = False
    yield
    gg.settings.progress_bar = old


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
