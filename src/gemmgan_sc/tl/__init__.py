"""Small tools for scanpy workflows: real + synthetic AnnData, model comparison tables, report folders."""
# Each line below imports one module's public functions.
from ._concat import concat_real_synthetic
from ._compare import compare_models, comparison_table, headline_table
from ._report import report
