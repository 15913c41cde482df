"""Denoising diffusion parts (tensors only): the cosine noise schedule, a residual-MLP denoiser with a timestep
embedding, and the DDIM / ancestral samplers.

Notation of Ho et al. (2020) and Song et al. (2021): ``alpha_bar[t]`` is the signal fraction at step ``t``
(``alpha_bar[0] = 1``: clean data), ``x_t = sqrt(alpha_bar[t]) x_0 + sqrt(1 - alpha_bar[t]) eps``. The denoiser
predicts ``eps`` or ``v = sqrt(alpha_bar) eps - sqrt(1 - alpha_bar) x_0`` (Salimans & Ho, 2022).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from numbers import Integral, Real

import torch
from torch import nn
from torch.nn import functional as F

PREDICTIONS = ("v", "eps")
SAMPLERS = ("ddim", "ancestral")


def _positive_int(name: str, value) -> int:
    if not isinstance(value, Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}.")
    return int(value)


def check_sampling(n_steps, guidance, sampler: str, n_timesteps: int, prediction: str = "v") -> None:
    """Raise a clear error for sampler settings that cannot run.

    ``n_steps`` must be an int in [1, ``n_timesteps``], ``guidance`` (the classifier-free guidance weight w) a
    finite number >= 0, ``sampler`` one of :data:`SAMPLERS` and ``prediction`` one of :data:`PREDICTIONS`.

    Examples
    --------
    >>> check_sampling(50, 0.0, "ddim", 1000)
    >>> check_sampling(0, 0.0, "ddim", 1000)
    Traceback (most recent call last):
    ...
    ValueError: n_steps must be an int in [1, 1000] (sampling steps, at most the training timesteps), got 0.
    """
    if (not isinstance(n_steps, Integral) or isinstance(n_steps, bool) or not 1 <= n_steps <= n_timesteps):
        raise ValueError(f"n_steps must be an int in [1, {n_timesteps}] (sampling steps, at most the training "
                         f"timesteps), got {n_steps!r}.")
    if isinstance(guidance, bool) or not isinstance(guidance, Real) or not 0.0 <= float(guidance) < math.inf:
        raise ValueError(f"guidance (the classifier-free guidance weight w) must be a number >= 0, got {guidance!r}; "
                         "0 samples from the conditional model alone.")
    if sampler not in SAMPLERS:
        raise ValueError(f"Unknown sampler {sampler!r}; choose one of {SAMPLERS}.")
    if prediction not in PREDICTIONS:
        raise ValueError(f"Unknown prediction {prediction!r}; choose one of {PREDICTIONS}.")


class CosineSchedule(nn.Module):
    """The cosine noise schedule of Nichol & Dhariwal (2021) on ``n_timesteps`` discrete steps.

    ``alpha_bar[t] = f(t) / f(0)`` with ``f(t) = cos(((t / T) + offset) / (1 + offset) * pi / 2) ** 2``, through
    per-step ``beta_t = 1 - alpha_bar[t] / alpha_bar[t - 1]`` clipped at ``max_beta`` (so ``alpha_bar[T] > 0``).
    The table is a non-persistent buffer (rebuilt from ``n_timesteps``, never saved).

    Examples
    --------
    >>> sched = CosineSchedule(1000)
    >>> float(sched.alpha_bar[0]), sched.alpha_bar.shape
    (1.0, torch.Size([1001]))
    >>> bool((sched.alpha_bar[1:] < sched.alpha_bar[:-1]).all())
    True
    """

    def __init__(self, n_timesteps: int = 1000, offset: float = 0.008, max_beta: float = 0.999) -> None:
        super().__init__()
        self.n_timesteps = _positive_int("n_timesteps", n_timesteps)
        if not 0.0 < float(max_beta) < 1.0 or not float(offset) >= 0.0:
            raise ValueError(f"max_beta must be in (0, 1) and offset >= 0, got {max_beta!r} and {offset!r}.")
        t = torch.arange(self.n_timesteps + 1, dtype=torch.float64) / self.n_timesteps
        f = torch.cos((t + offset) / (1 + offset) * math.pi / 2) ** 2
        betas = (1 - f[1:] / f[:-1]).clamp(max=max_beta)
        alpha_bar = torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(1 - betas, dim=0)])
        self.register_buffer("betas", betas.float(), persistent=False)
        self.register_buffer("alpha_bar", alpha_bar.float(), persistent=False)

    def _ab(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return self.alpha_bar[t].to(like.dtype).unsqueeze(-1)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """``x_t`` of clean rows ``x0`` (B x G) at steps ``t`` (B ints in [0, T]) with Gaussian ``noise``."""
        a = self._ab(t, x0)
        return a.sqrt() * x0 + (1 - a).sqrt() * noise

    def target(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor, prediction: str) -> torch.Tensor:
        """What the denoiser learns to output: the noise (``"eps"``) or the velocity (``"v"``)."""
        if prediction == "eps":
            return noise
        a = self._ab(t, x0)
        return a.sqrt() * noise - (1 - a).sqrt() * x0

    def split(self, out: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, prediction: str):
        """The clean-data and noise estimates ``(x0_hat, eps_hat)`` of a denoiser output at ``x_t``."""
        a = self._ab(t, x_t)
        if prediction == "eps":
            return (x_t - (1 - a).sqrt() * out) / a.sqrt(), out
        return a.sqrt() * x_t - (1 - a).sqrt() * out, a.sqrt() * out + (1 - a).sqrt() * x_t

    def timesteps(self, n_steps: int) -> list[int]:
        """``n_steps + 1`` evenly spaced steps from ``T`` down to 0 (every step when ``n_steps == T``)."""
        n_steps = _positive_int("n_steps", n_steps)
        if n_steps > self.n_timesteps:
            raise ValueError(f"n_steps={n_steps} exceeds the schedule's {self.n_timesteps} timesteps.")
        grid = torch.linspace(self.n_timesteps, 0, n_steps + 1, dtype=torch.float64).round().long()
        return [int(v) for v in grid]


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding (B x ``dim``) of integer or real steps ``t`` (B), as in the Transformer.

    Examples
    --------
    >>> import torch
    >>> timestep_embedding(torch.tensor([0, 10]), 8).shape
    torch.Size([2, 8])
    """
    half = _positive_int("dim", dim) // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / max(half, 1))
    angles = t.float().unsqueeze(-1) * freqs
    emb = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)
    return F.pad(emb, (0, dim - 2 * half))


class _Block(nn.Module):
    """LayerNorm -> SiLU -> Linear, FiLM by the step/condition embedding, SiLU -> Linear; with a skip if residual."""

    def __init__(self, width: int, emb_dim: int, dropout: float, residual: bool) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, width)
        self.film = nn.Linear(emb_dim, 2 * width)
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(width, width)
        self.residual = residual

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        scale, shift = self.film(emb).chunk(2, dim=-1)
        y = self.fc1(F.silu(self.norm(h))) * (1 + scale) + shift
        y = self.fc2(self.drop(F.silu(y)))
        return h + y if self.residual else y


class Denoiser(nn.Module):
    """MLP denoiser ``(x_t, t, c) -> eps or v``: genes -> ``hidden`` -> ``n_blocks`` blocks -> genes.

    The step ``t`` (sinusoidal, then a two-layer MLP) plus a linear map of the condition vector ``c`` form an
    embedding that scales and shifts each block's hidden units (FiLM). ``residual=True`` (default) adds each
    block's input to its output (a residual MLP); the output layer starts at zero.

    Examples
    --------
    >>> import torch
    >>> net = Denoiser(n_genes=30, cond_dim=4, hidden=16, n_blocks=2, emb_dim=8)
    >>> net(torch.randn(5, 30), torch.tensor([1, 2, 3, 4, 5]), torch.randn(5, 4)).shape
    torch.Size([5, 30])
    """

    def __init__(self, n_genes: int, cond_dim: int = 0, hidden: int = 512, n_blocks: int = 3, emb_dim: int = 128,
                 dropout: float = 0.0, residual: bool = True) -> None:
        super().__init__()
        self.n_genes = _positive_int("n_genes", n_genes)
        hidden, n_blocks, emb_dim = (_positive_int(k, v) for k, v in
                                     (("hidden", hidden), ("n_blocks", n_blocks), ("emb_dim", emb_dim)))
        if not isinstance(cond_dim, Integral) or isinstance(cond_dim, bool) or cond_dim < 0:
            raise ValueError(f"cond_dim must be a non-negative int, got {cond_dim!r}.")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}.")
        self.cond_dim, self.emb_dim = int(cond_dim), emb_dim
        self.time_mlp = nn.Sequential(nn.Linear(emb_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.cond_proj = nn.Linear(self.cond_dim, emb_dim) if self.cond_dim else None
        self.inp = nn.Linear(self.n_genes, hidden)
        self.blocks = nn.ModuleList(_Block(hidden, emb_dim, float(dropout), bool(residual)) for _ in range(n_blocks))
        self.out_norm = nn.LayerNorm(hidden)
        self.out = nn.Linear(hidden, self.n_genes)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        emb = self.time_mlp(timestep_embedding(t, self.emb_dim).to(x_t.dtype))
        if self.cond_proj is not None:
            if cond is None:
                raise ValueError(f"This denoiser is conditional (cond_dim={self.cond_dim}): pass a condition vector.")
            emb = emb + self.cond_proj(cond)
        emb = F.silu(emb)
        h = self.inp(x_t)
        for block in self.blocks:
            h = block(h, emb)
        return self.out(F.silu(self.out_norm(h)))


def noise_generator(z: torch.Tensor) -> torch.Generator:
    """A ``torch.Generator`` on ``z``'s device seeded from a hash of ``z``'s values: the ancestral sampler's
    per-step noise is then a function of its initial noise, so the same ``z`` (the same seed and batches)
    gives the same samples.

    Examples
    --------
    >>> import torch
    >>> z = torch.randn(2, 3, generator=torch.Generator().manual_seed(0))
    >>> a, b = (torch.randn(4, generator=noise_generator(z)) for _ in range(2))
    >>> torch.equal(a, b)
    True
    """
    digest = hashlib.blake2b(z.detach().float().cpu().numpy().tobytes(), digest_size=8).digest()
    gen = torch.Generator(device=z.device)
    gen.manual_seed(int.from_bytes(digest, "little") & (2**63 - 1))
    return gen


@torch.no_grad()
def diffusion_sample(
    denoise: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    z: torch.Tensor,
    schedule: CosineSchedule,
    n_steps: int = 50,
    prediction: str = "v",
    eta: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Run the reverse process from ``x_T = z`` to clean rows on ``n_steps`` steps of ``schedule.timesteps``.

    Each step goes from ``t`` to ``s < t``: ``x_s = sqrt(ab_s) x0_hat + sqrt(1 - ab_s - sigma^2) eps_hat +
    sigma * noise`` with ``sigma = eta * sqrt((1 - ab_s) / (1 - ab_t) * (1 - ab_t / ab_s))`` (Song et al. 2021).
    ``eta=0`` is DDIM (deterministic given ``z``); ``eta=1`` is the ancestral DDPM sampler (its posterior variance;
    with ``n_steps = T`` the full sampler of Ho et al. 2020), whose per-step noise comes from ``generator``.

    Parameters
    ----------
    denoise
        ``(x_t, t) -> output`` (B x G, B step ints), in the parametrisation ``prediction``.
    z
        B x G initial noise.
    schedule, n_steps, prediction
        The training schedule, sampling steps and what the denoiser predicts (``"v"`` or ``"eps"``).
    eta, generator
        Noise scale (0 to 1) and the generator of the per-step noise.

    Examples
    --------
    >>> import torch
    >>> sched = CosineSchedule(100)
    >>> x0 = torch.randn(4, 3, dtype=torch.float64)
    >>> def perfect(x_t, t):  # the true noise of x_t around x0
    ...     a = sched.alpha_bar[t].double().unsqueeze(-1)
    ...     return (x_t - a.sqrt() * x0) / (1 - a).sqrt()
    >>> out = diffusion_sample(perfect, torch.randn(4, 3, dtype=torch.float64), sched, 10, prediction="eps")
    >>> torch.allclose(out, x0)
    True
    """
    if not 0.0 <= float(eta) <= 1.0:
        raise ValueError(f"eta must be in [0, 1], got {eta!r}.")
    x = z
    steps = schedule.timesteps(n_steps)
    for t, s in zip(steps[:-1], steps[1:]):
        tt = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
        x0, eps = schedule.split(denoise(x, tt), x, tt, prediction)
        if s == 0:
            return x0
        ab_t, ab_s = float(schedule.alpha_bar[t]), float(schedule.alpha_bar[s])
        sigma = float(eta) * math.sqrt((1 - ab_s) / (1 - ab_t) * (1 - ab_t / ab_s))
        x = math.sqrt(ab_s) * x0 + math.sqrt(max(1 - ab_s - sigma**2, 0.0)) * eps
        if sigma > 0:
            x = x + sigma * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return x
