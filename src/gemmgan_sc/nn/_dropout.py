"""Dropout with a fast mask generator on the CPU.

``torch.nn.functional.dropout`` on the CPU draws one Mersenne-Twister float per element (``bernoulli_``), which made
dropout a quarter of a GeMM-GAN training step on 2 cores. Here the CPU mask comes from numpy's SFC64 generator, 16
random bits per element (four elements per 64-bit draw), about 6x faster; the generator is seeded from torch's
default generator at every call, so ``torch.manual_seed`` / ``gg.settings.seed`` still make runs reproducible.
On other devices ``torch.nn.functional.dropout`` is used unchanged.

The drop probability is rounded to a multiple of 1/65536 (``p = 0.1`` drops with probability 6554/65536 =
0.100006) and the kept values are scaled by ``1 / (1 - p_rounded)``, so the expectation is preserved exactly.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

_LEVELS = 65536


def dropout_mask(shape: torch.Size | tuple[int, ...], p: float) -> tuple[torch.Tensor, float]:
    """A CPU bool tensor, ``True`` = kept (probability ``1 - p``), and the scale ``1 / (1 - p)`` of kept values.

    A quarter of the memory of :func:`dropout_multiplier`, for callers that apply it block by block (as
    :func:`~gemmgan_sc.nn.self_attention` does).

    Examples
    --------
    >>> import torch
    >>> _ = torch.manual_seed(0)
    >>> keep, scale = dropout_mask((1000, 100), 0.1)
    >>> keep.dtype, abs((~keep).float().mean().item() - 0.1) < 0.01, round(scale, 4)
    (torch.bool, True, 1.1111)
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p!r}.")
    k = int(round(p * _LEVELS))
    n = int(np.prod(shape)) if len(shape) else 1
    seed = int(torch.randint(0, 2**62, (1,)).item())  # follows torch's seed
    words = np.random.Generator(np.random.SFC64(seed)).bit_generator.random_raw(-(-n // 4))
    uniform16 = torch.from_numpy(words).view(torch.int16)[:n]
    keep = torch.empty(shape, dtype=torch.bool)
    # a uniform int16 is below -32768 + k with probability k / 65536
    torch.ge(uniform16, k - _LEVELS // 2, out=keep.view(-1))
    return keep, _LEVELS / (_LEVELS - k)


def dropout_multiplier(
    shape: torch.Size | tuple[int, ...], p: float, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """A CPU tensor of ``0`` (dropped) and ``1 / (1 - p)`` (kept): inverted dropout is ``x * multiplier``.

    A float multiplier rather than a bool mask because a vectorised multiply is several times faster on the CPU
    than ``masked_fill`` with a bool mask, forward and backward. Same draws as :func:`dropout_mask`.

    Examples
    --------
    >>> import torch
    >>> _ = torch.manual_seed(0)
    >>> keep = dropout_multiplier((1000, 100), 0.1)
    >>> abs((keep == 0).float().mean().item() - 0.1) < 0.01, round(keep.max().item(), 4)
    (True, 1.1111)
    """
    mask, scale = dropout_mask(shape, p)
    return mask.to(dtype).mul_(scale)


def fast_dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """Inverted dropout: ``F.dropout`` semantics, with the fast mask generator on the CPU.

    Examples
    --------
    >>> import torch
    >>> x = torch.ones(4, 1000)
    >>> y = fast_dropout(x, 0.5)
    >>> sorted(set(y.unique().tolist()))
    [0.0, 2.0]
    >>> torch.equal(fast_dropout(x, 0.5, training=False), x)
    True
    """
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or not x.is_floating_point():
        return F.dropout(x, p, True)
    return x * dropout_multiplier(x.shape, p, x.dtype)
