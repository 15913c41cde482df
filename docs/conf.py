"""Sphinx configuration of the gemmgan-sc documentation (myst-nb, sphinx-book-theme, autosummary)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

# The executed tutorials train small networks: one torch thread is faster than several on a shared CPU,
# and nothing may reach the network while the docs build.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# the notebook kernel must use its inline backend, or figures never reach the pages
os.environ.pop("MPLBACKEND", None)

import gemmgan_sc  # noqa: E402

project = "gemmgan-sc"
author = "gemmgan-sc developers"
copyright = "2026, gemmgan-sc developers"
release = version = gemmgan_sc.__version__

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "generated/*.tmp", "**.ipynb_checkpoints", "tutorials/README.md", "Thumbs.db", ".DS_Store"]
templates_path: list[str] = []

# --- API reference --------------------------------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = True
autodoc_typehints = "description"
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": False}
autodoc_mock_imports: list[str] = []
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_custom_sections = [("Writes", "returns_style")]
# numpy-style "Returns" text often names objects that are not documented here
nitpicky = False

intersphinx_mapping = {
    "python": ("https://docs.python.org/3", None),
    "anndata": ("https://anndata.readthedocs.io/en/stable/", None),
    "scanpy": ("https://scanpy.readthedocs.io/en/stable/", None),
}
# offline builds: intersphinx inventories cannot be fetched, so do not let that fail -W
intersphinx_disabled_reftypes = ["*"]
intersphinx_timeout = 2
if os.environ.get("GEMMGAN_DOCS_OFFLINE", "1") == "1":
    intersphinx_mapping = {}

# --- notebooks ------------------------------------------------------------------------------------
myst_enable_extensions = ["colon_fence", "dollarmath", "deflist"]
nb_execution_mode = os.environ.get("GEMMGAN_DOCS_EXECUTE", "force")
# (b) needs the network and gated models, (c) needs minutes of training: shown, not run, in the build
nb_execution_excludepatterns = ["tutorials/tcga.md", "tutorials/evaluation.md", "tutorials/spatial.md"]
nb_execution_timeout = 900
nb_execution_raise_on_error = True
nb_execution_in_temp = True  # files written by a tutorial go to a temporary folder, not the source tree
nb_merge_streams = True
nb_number_source_lines = False

# --- HTML -----------------------------------------------------------------------------------------
html_theme = "sphinx_book_theme"
html_title = f"gemmgan-sc {version}"
html_theme_options = {
    "repository_url": "https://github.com/gemmgan-sc/gemmgan-sc",
    "use_repository_button": False,
    "show_toc_level": 2,
}
html_static_path: list[str] = []
suppress_warnings = ["mystnb.unknown_mime_type"]
