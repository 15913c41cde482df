"""Datasets: the simulated demo cohort and real loaders (TCGA through the GDC API)."""
# Each line below imports one module's public functions.
from ._demo import demo
from ._tcga import read_star_counts, tcga
from ._gdc import GDCError
