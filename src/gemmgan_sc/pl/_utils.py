"""The one rule every ``gg.pl`` function follows once it has drawn: save (``save=``), then show (``show=``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .._io import atomic_write
from .._settings import settings

_FORMATS = (".png", ".pdf", ".svg", ".jpg", ".jpeg", ".tif", ".tiff", ".eps", ".ps")


def figure_path(save: bool | str | os.PathLike, name: str) -> Path:
    """Where ``save=`` writes: ``True`` -> ``settings.figdir / f"{name}.png"``; a path is used as given (``.png``
    appended when it has no image suffix)."""
    if save is True:
        return Path(settings.figdir) / f"{name}.png"
    if isinstance(save, (str, os.PathLike)) and str(save):
        path = Path(save).expanduser()
        return path if path.suffix.lower() in _FORMATS else path.with_name(path.name + ".png")
    raise TypeError(f"save must be True, False/None or a file path, got {save!r}.")


def save_figure(fig: Any, path: str | os.PathLike, dpi: int = 150) -> Path:
    """Write ``fig`` to ``path`` atomically, in the format its suffix names; returns the path."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    return atomic_write(path, lambda p: fig.savefig(p, dpi=dpi, bbox_inches="tight", format=fmt))


def finish(ax: Any, show: bool | None, save: bool | str | os.PathLike | None, name: str, dpi: int = 150) -> Any:
    """Save the figure of ``ax`` (atomically) when ``save``, show it when ``show`` (``None``: ``settings.autoshow``),
    and return ``ax``."""
    import matplotlib.pyplot as plt

    if save is not None and save is not False:
        save_figure(ax.figure, figure_path(save, name), dpi)
    if settings.autoshow if show is None else show:
        plt.show()
    return ax
