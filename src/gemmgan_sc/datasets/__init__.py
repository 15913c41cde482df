"""Datasets: the simulated demo cohort and real loaders (TCGA through the GDC API, the MCAT TCGA tables)."""
# Each line below imports one module's public functions.
from ._demo import demo
from ._tcga import read_star_counts, tcga
from ._gdc import GDCError
from ._mcat import read_mcat
from ._her2st import read_her2st
