"""Convolutional generator and critic of tiles (DCGAN-style), for the expression-to-tile WGAN-GP (TileGAN).

The generator maps ``[z | embedding(condition)]`` to a 4 x 4 feature map and doubles the resolution with
transposed convolutions (``upsample="transposed"``, DCGAN) or nearest-neighbour upsampling followed by a 3 x 3
convolution (``upsample="nearest"``, no checkerboard artefacts), with batch norm (modulated by the condition's
embedding in a conditional generator) and ReLU, to a tanh RGB tile in [-1, 1]. The critic halves the resolution with strided 4 x 4 convolutions and LeakyReLU (no normalisation layers:
they would break the gradient penalty) down to 4 x 4 and scores ``conv4x4(h) + <embedding(condition), sum(h)>``:
the projection discriminator of Miyato & Koyama (2018) with a linear embedding of a continuous condition.
"""

from __future__ import annotations

from numbers import Integral

import torch
from torch import nn

#: tile edges (px) the networks build: powers of two from 16 to 256
TILE_SIZES = (16, 32, 64, 128, 256)
UPSAMPLING = ("transposed", "nearest")


def check_tile_size(image_size) -> int:
    """Return ``image_size`` as an int or raise a ValueError naming the sizes the networks support.

    Examples
    --------
    >>> check_tile_size(64)
    64
    """
    if isinstance(image_size, bool) or not isinstance(image_size, Integral) or int(image_size) not in TILE_SIZES:
        raise ValueError(
            f"image_size={image_size!r} is not a tile size the convolutional generator supports; choose one of "
            f"{TILE_SIZES} (powers of two: the generator doubles a 4 x 4 map), e.g. image_size=64."
        )
    return int(image_size)


def _check_positive(**values) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}.")


def _widths(image_size: int, channels: int, max_channels: int) -> list[tuple[int, int]]:
    """(resolution, channels) of the feature maps from 4 px up to ``image_size / 2``: ``channels`` at half the
    tile size, doubling at every halving of the resolution, at most ``max_channels``."""
    out, r = [], 4
    while r < image_size:
        out.append((r, min(int(max_channels), int(channels) * (image_size // 2) // r)))
        r *= 2
    return out


class ConditionalBatchNorm2d(nn.Module):
    """Batch norm whose per-channel scale and shift are linear maps of an embedding (``1 + gamma(e)``, ``beta(e)``;
    both maps start at zero, so the layer starts as a plain batch norm).

    Examples
    --------
    >>> import torch
    >>> bn = ConditionalBatchNorm2d(4, embed_dim=3)
    >>> bn(torch.randn(2, 4, 8, 8), torch.randn(2, 3)).shape
    torch.Size([2, 4, 8, 8])
    """

    def __init__(self, channels: int, embed_dim: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.gamma = nn.Linear(embed_dim, channels)
        self.beta = nn.Linear(embed_dim, channels)
        for layer in (self.gamma, self.beta):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        return self.norm(x) * (1 + self.gamma(e))[:, :, None, None] + self.beta(e)[:, :, None, None]


class ConvGenerator(nn.Module):
    """DCGAN-style generator: ``[z | Linear(condition)]`` to a 4 x 4 map, doubled to ``image_size`` (tanh output).

    A conditional generator also modulates every batch norm by the condition's embedding
    (:class:`ConditionalBatchNorm2d`), so the condition reaches every resolution, not only the first layer.

    Parameters
    ----------
    n_latent
        Width of the noise ``z``.
    cond_dim
        Width of the condition (0: unconditional, plain batch norm).
    image_size
        Tile edge in px, one of :data:`TILE_SIZES`.
    channels, max_channels
        Feature maps at half the tile size (doubling towards 4 x 4, at most ``max_channels``).
    upsample
        ``"transposed"`` (4 x 4 transposed convolutions, stride 2, DCGAN) or ``"nearest"`` (upsample + 3 x 3 conv).
    embed_dim
        Width of the condition's linear embedding (concatenated to ``z`` and read by the batch norms).

    Examples
    --------
    >>> import torch
    >>> g = ConvGenerator(n_latent=8, cond_dim=5, image_size=32, channels=4)
    >>> g(torch.randn(2, 8), torch.randn(2, 5)).shape
    torch.Size([2, 3, 32, 32])
    """

    def __init__(self, n_latent: int, cond_dim: int, image_size: int = 64, channels: int = 32,
                 max_channels: int = 512, upsample: str = "transposed", embed_dim: int = 128) -> None:
        super().__init__()
        self.image_size = check_tile_size(image_size)
        _check_positive(n_latent=n_latent, channels=channels, max_channels=max_channels, embed_dim=embed_dim)
        if isinstance(cond_dim, bool) or not isinstance(cond_dim, Integral) or cond_dim < 0:
            raise ValueError(f"cond_dim must be a non-negative int, got {cond_dim!r}.")
        if upsample not in UPSAMPLING:
            raise ValueError(f"upsample must be one of {UPSAMPLING}, got {upsample!r}.")
        self.n_latent, self.cond_dim = int(n_latent), int(cond_dim)
        self.embed = nn.Linear(cond_dim, embed_dim) if cond_dim else None
        widths = _widths(self.image_size, channels, max_channels)
        c0 = widths[0][1]
        self.project = nn.Sequential(
            nn.Linear(self.n_latent + (embed_dim if cond_dim else 0), 16 * c0, bias=False), nn.Unflatten(1, (c0, 4, 4)),
        )
        outs = [c for _, c in widths[1:]] + [3]
        self.ups = nn.ModuleList(_up(c_in, c_out, upsample, bias=c_out == 3 and i == len(outs) - 1)
                                 for i, ((_, c_in), c_out) in enumerate(zip(widths, outs)))
        # the norms after the projection and after every up-block but the last (tanh there)
        self.norms = nn.ModuleList(ConditionalBatchNorm2d(c, embed_dim) if cond_dim else nn.BatchNorm2d(c)
                                   for c in [c0] + outs[:-1])
        self.act = nn.ReLU(inplace=True)

    def forward(self, z: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        e = None
        if self.embed is not None:
            if cond is None:
                raise ValueError("This generator is conditional: pass the condition (B x cond_dim).")
            e = self.embed(cond)
            z = torch.cat([z, e], dim=1)
        h = self.project(z)
        for norm, up in zip(self.norms, self.ups):
            h = up(self.act(norm(h) if e is None else norm(h, e)))
        return torch.tanh(h)


def _up(c_in: int, c_out: int, mode: str, bias: bool = False) -> nn.Module:
    if mode == "transposed":
        return nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=bias)
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c_out, 3, padding=1, bias=bias))


class ConvCritic(nn.Module):
    """Strided 4 x 4 convolutions (LeakyReLU 0.2) down to 4 x 4, then ``conv4x4(h) + <Linear(condition), sum(h)>``.

    Parameters
    ----------
    image_size
        Tile edge in px, one of :data:`TILE_SIZES`.
    cond_dim
        Width of the condition (0: unconditional, no projection term).
    channels, max_channels
        Feature maps at half the tile size (doubling at every halving, at most ``max_channels``).

    Examples
    --------
    >>> import torch
    >>> d = ConvCritic(image_size=32, cond_dim=5, channels=4)
    >>> d(torch.randn(2, 3, 32, 32), torch.randn(2, 5)).shape
    torch.Size([2])
    """

    def __init__(self, image_size: int = 64, cond_dim: int = 0, channels: int = 32, max_channels: int = 512) -> None:
        super().__init__()
        self.image_size = check_tile_size(image_size)
        _check_positive(channels=channels, max_channels=max_channels)
        if isinstance(cond_dim, bool) or not isinstance(cond_dim, Integral) or cond_dim < 0:
            raise ValueError(f"cond_dim must be a non-negative int, got {cond_dim!r}.")
        self.cond_dim = int(cond_dim)
        widths = list(reversed(_widths(self.image_size, channels, max_channels)))  # image_size/2 ... 4
        layers: list[nn.Module] = []
        c_in = 3
        for _, c_out in widths:
            layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True)]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.score = nn.Conv2d(c_in, 1, 4)  # the 4 x 4 map -> one value
        self.project = nn.Linear(cond_dim, c_in, bias=False) if cond_dim else None

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(x)
        out = self.score(h).flatten(1).squeeze(1)
        if self.project is not None:
            if cond is None:
                raise ValueError("This critic is conditional: pass the condition (B x cond_dim).")
            out = out + (self.project(cond) * h.sum(dim=(2, 3))).sum(dim=1)
        return out
