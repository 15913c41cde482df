"""Plots: training history, real-vs-synthetic embeddings, metrics, tissue and tile QC.

Every function takes ``ax=`` (draw into these axes), ``show=`` (``None``: ``gg.settings.autoshow``) and ``save=``
(a file path, or ``True`` for ``gg.settings.figdir``), and returns the axes.
"""
# Each line below imports one module's public functions.
from ._metrics import metrics
from ._slides import tiles, tissue
from ._history import history
from ._embedding import real_vs_synthetic
from ._generated_tiles import generated_tiles
