"""The documentation: every public name in the API reference, the tutorials, and a full `sphinx-build -W`."""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
TUTORIALS = ROOT / "tutorials"
NAMESPACES = ("pp", "tl", "pl", "metrics", "datasets", "data", "encoders")


def _public(module_name: str) -> list[str]:
    mod = importlib.import_module(f"gemmgan_sc.{module_name}")
    names = getattr(mod, "__all__", None)
    if names is None and hasattr(mod, "_EXPORTS"):  # lazily exported namespaces
        names = list(mod._EXPORTS)
    if names is None:
        names = [n for n in vars(mod) if not n.startswith("_")]
    out = []
    for n in names:
        obj = getattr(mod, n)
        if callable(obj) and not isinstance(obj, dict) and getattr(obj, "__module__", "").startswith("gemmgan_sc"):
            out.append(n)
    return out


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_every_public_function_is_in_the_api_reference(namespace):
    api = (DOCS / "api.md").read_text()
    listed = set(re.findall(rf"^\s+{namespace}\.(\w+)\s*$", api, flags=re.M))
    missing = [n for n in _public(namespace) if n not in listed]
    assert not missing, f"gg.{namespace} names missing from docs/api.md: {missing}"


def test_every_model_is_in_the_api_reference():
    import gemmgan_sc as gg

    api = (DOCS / "api.md").read_text()
    for name in gg._MODELS:
        assert re.search(rf"^\s+{name}\s*$", api, flags=re.M), f"{name} missing from docs/api.md"


def test_tutorials_exist_and_quickstart_ends_in_the_umap():
    for name in ("quickstart", "tcga", "evaluation"):
        text = (TUTORIALS / f"{name}.md").read_text()
        assert "kernelspec:" in text and "```{code-cell} ipython3" in text
    quick = (TUTORIALS / "quickstart.md").read_text()
    cells = re.findall(r"```\{code-cell\} ipython3\n(.*?)```", quick, flags=re.S)
    assert "gg.datasets.demo(" in cells[1]
    last = cells[-1]
    assert "gg.tl.concat_real_synthetic(" in last
    assert re.search(r"sc\.pl\.umap\(both, color=\[\"disease_type\", \"synthetic\"\]", last)
    tcga = (TUTORIALS / "tcga.md").read_text()
    assert 'gg.datasets.tcga(' in tcga and 'encoder="uni"' in tcga and '"clinical-modernbert"' in tcga
    ev = (TUTORIALS / "evaluation.md").read_text()
    for word in ("gg.WGANGP", "gg.CondWGANGP", "gg.CVAE", "gg.BetaVAE", "conditioning=mode", "compare_models"):
        assert word in ev
    # the docs see the tutorials through a link
    assert (DOCS / "tutorials" / "quickstart.md").is_file()


def test_readme_names_what_a_new_user_needs():
    readme = (ROOT / "README.md").read_text()
    assert "gemmgan-sc demo --out" in readme
    assert 'pip install -e ".[test]" && python -m pytest -q tests' in readme
    code = re.search(r"```python\n(.*?)```", readme, flags=re.S).group(1)
    assert len(code.strip().splitlines()) <= 12
    for link in re.findall(r"\]\(((?:docs|tutorials|examples)/[^)]+)\)", readme):
        assert (ROOT / link).exists(), f"README links to a missing file {link}"


@pytest.mark.slow
def test_sphinx_build_warnings_as_errors(tmp_path):
    for mod in ("sphinx", "myst_nb", "sphinx_book_theme", "ipykernel"):
        if importlib.util.find_spec(mod) is None:
            pytest.skip(f"{mod} is not installed (pip install -e '.[docs]')")
    src = tmp_path / "docs"
    shutil.copytree(DOCS, src, symlinks=False, ignore=shutil.ignore_patterns("_build", "generated", "jupyter_execute"))
    out = tmp_path / "html"
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # figures need the kernel's inline backend
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(src), str(out)],
        capture_output=True, text=True, timeout=900, cwd=tmp_path, env=env,
    )
    assert proc.returncode == 0, f"sphinx-build -W failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
    quick = (out / "tutorials" / "quickstart.html").read_text()
    # executed: the outputs (the AnnData repr and the figures) are in the page
    assert "n_obs × n_vars" in quick
    assert quick.count("<img") >= 2
    assert (out / "generated" / "gemmgan_sc.tl.concat_real_synthetic.html").is_file()
    assert (out / "generated" / "gemmgan_sc.GeMMGAN.html").is_file()
    # the not-executed tutorials are rendered without outputs
    assert "TCGA-LUAD" in (out / "tutorials" / "tcga.html").read_text()
