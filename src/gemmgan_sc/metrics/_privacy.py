"""Privacy: do synthetic profiles sit closer to the training profiles than to unseen ones?"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ._distances import DEFAULT_BLOCK_BYTES, Pairwise, Points, check_block_bytes, check_device, check_metric
from ._input import as_matrices


def privacy_arrays(
    synth: np.ndarray, real_train: np.ndarray, real_test: np.ndarray, metric: str = "euclidean",
    block_bytes: int = DEFAULT_BLOCK_BYTES, *, dtype=None, device: str | torch.device = "cpu",
) -> dict[str, float]:
    """The privacy metrics of dense matrices; ``dtype``: working precision (default: that of ``synth``)."""
    dt = synth.dtype if dtype is None else np.dtype(dtype)
    s, tr, te = (Points(x, dt, device) for x in (synth, real_train, real_test))  # norms once per set

    def distances(a: Points, b: Points, k: int) -> np.ndarray:
        scores = Pairwise(a, b, metric).knn(k, block_bytes).cpu().numpy()
        return np.sqrt(scores) if metric == "euclidean" else scores

    two = distances(s, tr, 2)
    d_train = two[:, 0]
    d_test = distances(s, te, 1)[:, 0]
    closer = np.where(d_train < d_test, 1.0, np.where(d_train == d_test, 0.5, 0.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        nndr = np.where(two[:, 1] > 0, two[:, 0] / two[:, 1], 0.0)
    dcr_holdout = distances(te, tr, 1)[:, 0]
    return {
        "closer_to_train": float(closer.mean()),
        "closer_to_train_expected": float(len(real_train) / (len(real_train) + len(real_test))),
        "nndr_mean": float(nndr.mean()),
        "nndr_median": float(np.median(nndr)),
        "dcr_synth_median": float(np.median(d_train)),
        "dcr_test_median": float(np.median(dcr_holdout)),
    }


def privacy(
    synth: Any,
    real_train: Any,
    real_test: Any,
    metric: str = "euclidean",
    *,
    layer: str | None = None,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    device: str | torch.device = "cpu",
) -> dict[str, float]:
    """Memorisation checks on synthetic profiles.

    * ``closer_to_train``: share of synthetic profiles whose nearest training profile is closer than their
      nearest held-out profile (ties count one half). Copies of the training set give 1. A generator that
      does not memorise gives ``closer_to_train_expected = n_train / (n_train + n_test)`` (0.5 when both
      real sets have the same size: the nearest of the pooled real profiles is then equally likely to be
      from either set). No subsampling is done, since a subsample of the training set would hide copies of
      the profiles left out.
    * ``nndr_mean`` / ``nndr_median``: nearest-neighbour distance ratio, distance to the closest training
      profile over distance to the second closest (0 for a copy of a training profile; 0/0 counts as 0).
    * ``dcr_synth_median``: median distance of a synthetic profile to its closest training record (full
      training set), beside ``dcr_test_median``, the same for held-out real profiles (a reference).

    Parameters
    ----------
    synth, real_train, real_test
        AnnData (genes aligned by ``var_names``) or arrays (samples x genes).
    metric
        ``"euclidean"`` or ``"l1"``.
    layer
        Layer of AnnData inputs (default ``X``).
    block_bytes
        Memory of one distance block.
    device
        Torch device of the distance computation (``"cpu"``, ``"cuda"``, ...).

    Returns
    -------
    dict of floats (keys above).

    Examples
    --------
    >>> import numpy as np, gemmgan_sc as gg
    >>> rng = np.random.default_rng(0)
    >>> train, test = rng.normal(size=(100, 5)), rng.normal(size=(100, 5))
    >>> gg.metrics.privacy(train.copy(), train, test)["closer_to_train"]
    1.0
    """
    check_metric(metric)
    check_block_bytes(block_bytes)
    check_device(device)
    # float32 data stay float32 (converted slab by slab in the float64 distances)
    s, tr, te = as_matrices(synth, real_train, real_test, names=["synth", "real_train", "real_test"], layer=layer,
                            keep_float32=True)
    if tr.shape[0] < 2:
        raise ValueError(f"real_train needs at least 2 samples for the distance ratio, got {tr.shape[0]}.")
    return privacy_arrays(s, tr, te, metric=metric, block_bytes=block_bytes, dtype="float64", device=device)
