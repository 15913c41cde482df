"""The simulated demo cohort: expression, clinical records, descriptions and H&E-like slides."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .._settings import logger, settings
from ..pp._clinical import clinical_to_text
from ._cache import atomic_write_json, read_json, resolve_cache_dir
from ._slide_sim import SLIDE_MPP, SlideParams, render_slide, write_pyramid_tiff

DEMO_VERSION = "1"

# Patient-level latent factors. The first four are shared by expression and image; the last three
# act on expression only (no label, record or image reveals them).
SHARED_FACTORS = ("proliferation", "immune", "stroma", "atypia")
HIDDEN_FACTORS = ("hypoxia", "interferon", "metabolism")
N_NAMED_MODULES = 10  # 7 latent + smoking + sex + age


@dataclass(frozen=True)
class _TumourType:
    code: str
    disease_type: str
    primary_site: str
    female: float  # probability of a female patient
    age: float  # mean age at diagnosis
    smoker: float  # probability of ever smoking
    fragments: tuple[int, int]  # tissue pieces, inclusive range
    elongation: float
    lumen: float
    stroma: float
    cell_px: float
    nuc_radius: float
    immune: float
    cytoplasm: float


_TYPES = (
    _TumourType("LUAD", "Lung adenocarcinoma", "Bronchus and lung", 0.52, 66, 0.85, (2, 3), 1.8, 0.25, 0.35, 14, 4.0, 0.12, 0.6),
    _TumourType("LUSC", "Lung squamous cell carcinoma", "Bronchus and lung", 0.26, 68, 0.95, (1, 2), 1.4, 0.0, 0.3, 13, 4.7, 0.10, 0.9),
    _TumourType("BRCA", "Breast invasive carcinoma", "Breast", 0.99, 58, 0.35, (1, 1), 1.2, 0.05, 0.5, 15, 3.8, 0.15, 0.55),
    _TumourType("KIRC", "Kidney renal clear cell carcinoma", "Kidney", 0.35, 61, 0.5, (1, 1), 1.5, 0.1, 0.2, 17, 3.4, 0.08, 0.35),
    _TumourType("COAD", "Colon adenocarcinoma", "Colon", 0.47, 67, 0.5, (1, 2), 2.0, 0.3, 0.3, 12, 4.2, 0.10, 0.5),
)
_SITES = tuple(f"TSS-{k:02d}" for k in range(1, 7))  # tissue source sites: a staining batch effect
_STAGES = ("Stage I", "Stage II", "Stage III", "Stage IV")
_GRADES = ("G1", "G2", "G3")
_SMOKING = ("never", "former", "current")
_SMOKING_WORDS = {"never": "lifelong non-smoker", "former": "former smoker", "current": "current smoker"}


def _sigmoid(x: float) -> float:
    return float(1.0 / (1.0 + np.exp(-x)))


def _logit(p: float) -> float:
    return float(np.log(p / (1.0 - p)))


def _sample_case(seed: int, i: int) -> dict:
    """Latent factors, type and clinical record of sample ``i`` (depends on ``seed`` and ``i`` only)."""
    block = i // len(_TYPES)
    order = np.random.default_rng([seed, block, 3]).permutation(len(_TYPES))  # balanced types
    t = _TYPES[int(order[i % len(_TYPES)])]
    rng = np.random.default_rng([seed, i, 1])
    z = rng.standard_normal(len(SHARED_FACTORS) + len(HIDDEN_FACTORS))
    zs = dict(zip(SHARED_FACTORS + HIDDEN_FACTORS, z, strict=True))
    sex = "female" if rng.random() < t.female else "male"
    age = int(np.clip(round(rng.normal(t.age, 10)), 25, 90))
    if rng.random() < t.smoker:
        smoking = "current" if rng.random() < 0.4 else "former"
        pack_years = float(np.round(rng.gamma(4.0, (12.0 if t.primary_site == "Bronchus and lung" else 6.0)), 1))
    else:
        smoking, pack_years = "never", 0.0
    g = 0.9 * zs["atypia"] + 0.5 * rng.standard_normal()
    grade = _GRADES[0 if g < -0.6 else (2 if g > 0.6 else 1)]
    s = 0.6 * zs["proliferation"] + 0.3 * zs["stroma"] + 0.7 * rng.standard_normal()
    stage_i = int(np.searchsorted([-0.45, 0.3, 1.1], s))
    tumor_size = float(np.round(np.exp(rng.normal(0.9 + 0.25 * stage_i, 0.35)), 1))
    site = _SITES[int(rng.integers(len(_SITES)))]
    return {
        "type": t,
        "z": zs,
        "record": {
            "age": age,
            "sex": sex,
            "disease_type": t.disease_type,
            "primary_site": t.primary_site,
            "stage": _STAGES[stage_i],
            "grade": grade,
            "smoking_status": smoking,
            "pack_years": pack_years,
            "tumor_size_cm": tumor_size,
            "tissue_source_site": site,
        },
        "stain_batch": np.random.default_rng([seed, _SITES.index(site), 5]).standard_normal(2),
    }


def _describe(records: pd.DataFrame, seed: int) -> list[str]:
    """The clinical descriptions, written by ``gemmgan_sc.pp.clinical_to_text`` from the records.

    The text holds age, sex, diagnosis, site, stage, tumour size, grade and smoking: partly redundant
    with the slide (grade, stage, size) and partly complementary (smoking, sex, age). The wording
    varies per patient with ``seed`` (``wording_seed``); record ``i`` gets the same text for any
    ``n_samples``.
    """
    smoker = records["smoking_status"] != "never"
    facts = pd.DataFrame(
        {
            "age": records["age"],
            "sex": records["sex"],
            "primary_diagnosis": records["disease_type"],
            "primary_site": records["primary_site"],
            "stage": records["stage"],
            "tumor_size_cm": records["tumor_size_cm"],
            "grade": records["grade"],
            "tobacco_smoking_status": records["smoking_status"].map(_SMOKING_WORDS),
            "pack_years_smoked": records["pack_years"].where(smoker),  # no "0 pack-years" for non-smokers
        },
        index=records.index,
    )
    return clinical_to_text(facts, wording_seed=seed).tolist()


def _slide_params(case: dict, seed: int, i: int) -> SlideParams:
    """Map type, shared latent factors, tumour size and staining batch to slide parameters."""
    t, z = case["type"], case["z"]
    rng = np.random.default_rng([seed, i, 7])
    lo, hi = t.fragments
    batch = case["stain_batch"]
    size = case["record"]["tumor_size_cm"]
    return SlideParams(
        height=64 * int(rng.integers(8, 16)),
        width=64 * int(rng.integers(8, 16)),
        n_fragments=int(rng.integers(lo, hi + 1)),
        elongation=t.elongation,
        tissue_scale=float(np.clip(0.33 + 0.05 * np.log(size / 2.5), 0.26, 0.4)),
        stroma_frac=float(np.clip(_sigmoid(_logit(t.stroma) + 0.8 * z["stroma"]), 0.05, 0.85)),
        lumen_frac=float(t.lumen * np.exp(-0.3 * z["proliferation"])) if t.lumen > 0 else 0.0,
        cell_px=float(t.cell_px * np.exp(-0.12 * z["proliferation"])),
        occupancy=_sigmoid(1.4 + 0.5 * z["proliferation"]),
        nuc_radius=float(t.nuc_radius * np.exp(0.12 * z["atypia"])),
        pleomorphism=0.06 + 0.16 * _sigmoid(1.5 * z["atypia"]),
        immune_frac=float(np.clip(_sigmoid(_logit(t.immune) + 0.9 * z["immune"]), 0.01, 0.8)),
        hema=float(1.2 * np.exp(0.08 * z["proliferation"] + 0.08 * batch[0])),
        eosin=float(0.55 * np.exp(0.1 * batch[1])),
        cytoplasm=t.cytoplasm,
        stain_jitter=0.03,
    )


def _gene_model(seed: int, n_genes: int) -> dict:
    """Gene baselines, module memberships and loadings, and sparse type effects."""
    rng = np.random.default_rng([seed, 0x6E6E, n_genes])
    n_types = len(_TYPES)
    n_modules = N_NAMED_MODULES + 2 * n_types
    low = rng.random(n_genes) < 0.3
    mu = np.where(low, rng.normal(0.6, 0.7, n_genes), rng.normal(5.0, 2.0, n_genes)).clip(0.0, 13.0)
    module = np.full(n_genes, -1)
    n_member = max(int(0.4 * n_genes), min(n_genes, n_modules))
    members = rng.permutation(n_genes)[:n_member]
    module[members] = np.arange(n_member) % n_modules
    module[members] = module[members][rng.permutation(n_member)]
    weight = np.where(rng.random(n_genes) < 0.85, 1.0, -1.0) * rng.uniform(0.4, 1.2, n_genes)
    weight[module < 0] = 0.0
    # the sex module: strongly on/off genes (like XIST and Y-linked genes)
    weight[module == 8] = np.sign(weight[module == 8]) * 2.5
    type_gene = np.where(rng.random((n_types, n_genes)) < 0.1, rng.normal(0.0, 1.2, (n_types, n_genes)), 0.0)
    # type effects on modules: type programmes (modules >= 10) strongly, named modules mildly
    type_module = rng.normal(0.0, 0.3, (n_types, n_modules))
    type_module[:, N_NAMED_MODULES:] = rng.normal(0.0, 1.3, (n_types, n_modules - N_NAMED_MODULES))
    sd = rng.uniform(0.2, 0.6, n_genes)
    names = np.array(
        ["proliferation", "immune", "stroma", "atypia", "hypoxia", "interferon", "metabolism", "smoking", "sex", "age"]
        + [f"{t.code}_programme_{k}" for t in _TYPES for k in (1, 2)]
    )
    return {"mu": mu, "module": module, "weight": weight, "type_gene": type_gene, "type_module": type_module,
            "sd": sd, "module_names": names}


def _expression(cases: list[dict], gm: dict, seed: int) -> np.ndarray:
    n, n_genes = len(cases), gm["mu"].size
    types = [c["type"] for c in cases]
    t_idx = np.array([_TYPES.index(t) for t in types])
    n_modules = gm["type_module"].shape[1]
    act = gm["type_module"][t_idx].copy()
    for j, c in enumerate(cases):
        z, rec = c["z"], c["record"]
        act[j, :7] += 1.1 * np.array([z[k] for k in SHARED_FACTORS + HIDDEN_FACTORS])
        act[j, 7] += 0.9 * (np.log1p(rec["pack_years"]) - 2.0)
        act[j, 8] += 1.0 if rec["sex"] == "female" else -1.0
        act[j, 9] += (rec["age"] - 63.0) / 12.0
    member = gm["module"] >= 0
    loading = np.zeros((n_modules, n_genes))
    loading[gm["module"][member], np.nonzero(member)[0]] = gm["weight"][member]
    level = gm["mu"] + 0.8 * act @ loading + gm["type_gene"][t_idx]
    X = np.empty((n, n_genes), dtype=np.float32)
    for j in range(n):  # per-sample noise streams: the first k samples do not depend on n
        rng = np.random.default_rng([seed, j, 4])
        lev = level[j] + gm["sd"] * rng.standard_normal(n_genes)
        tpm = np.clip(np.exp2(lev) - 1.0, 0.0, None)
        tpm_obs = rng.poisson(tpm * 2.0) / 2.0  # sampling noise: low genes drop out to zero
        X[j] = np.log2(tpm_obs + 1.0)
    return X


def _ensure_slides(folder: Path, ids: list[str], params: list[SlideParams], seed: int, index: list[int]) -> list[Path]:
    """Write the slides that are missing (or whose size disagrees with the manifest)."""
    from tqdm.auto import tqdm

    manifest_path = folder / "manifest.json"
    manifest = read_json(manifest_path) or {}
    paths = [folder / f"{sid}.tiff" for sid in ids]
    todo = [
        k for k, p in enumerate(paths)
        if not p.is_file() or manifest.get(p.name) != p.stat().st_size
    ]

    def _make(k: int) -> tuple[str, int]:
        img = render_slide(params[k], np.random.default_rng([seed, index[k], 2]))
        write_pyramid_tiff(paths[k], img, n_levels=3, mpp=SLIDE_MPP)
        return paths[k].name, paths[k].stat().st_size

    if todo:
        logger.info("gemmgan-sc demo: writing %d simulated slides to %s", len(todo), folder)
        workers = max(1, min(4, os.cpu_count() or 1))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(
                tqdm(pool.map(_make, todo), total=len(todo), desc="simulating slides", disable=not settings.progress_bar)
            )
        manifest = read_json(manifest_path) or {}  # re-read: another process may have added entries
        manifest.update(dict(results))
        atomic_write_json(manifest_path, manifest)
    return paths


def demo(
    n_samples: int = 300,
    n_genes: int = 2000,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    slides: bool = True,
):
    """Simulated paired cohort (expression + H&E-like slide + clinical text). **Not real patients.**

    Every value is simulated, offline and deterministic: five tumour types modelled loosely on TCGA
    projects (LUAD, LUSC, BRCA, KIRC, COAD). Each patient has seven latent factors. Four
    (proliferation, immune infiltration, stroma, nuclear atypia) act on both the expression and the
    slide (nuclear density, lymphocytes, stroma area, nuclear size and pleomorphism), so the image
    tells something that the labels do not. Three (hypoxia, interferon, metabolism) act on the
    expression only. The clinical record (age, sex, stage, grade, smoking, tumour size, tissue
    source site) is partly redundant with the image (grade follows atypia, stage follows
    proliferation and stroma) and partly complementary (smoking, sex and age drive their own gene
    modules and are not visible on the slide). Expression is on a log2(TPM + 1) scale, built from
    gene baselines, co-expression modules, type effects and Poisson sampling noise.

    Slides are small tiled pyramidal TIFF files (512-960 px per side, 3 levels, 2 um/px,
    deflate), readable by OpenSlide, tifffile and PIL, white background with the tissue in the
    middle. They are written once to a cache folder and regenerated when missing. Sample ``i``
    depends only on ``seed`` and ``i``: ``demo(n_samples=10)`` gives the first 10 samples of
    ``demo()`` (with the same ``n_genes``).

    Parameters
    ----------
    n_samples
        Number of patients (one slide each).
    n_genes
        Number of genes.
    seed
        Seed of the simulation; the same seed gives the same cohort and slides.
    cache_dir
        Folder for the slides. Default: the environment variable ``GEMMGAN_SC_CACHE`` if set,
        else ``pooch.os_cache("gemmgan-sc")``. Slides go to ``<cache>/demo/v<version>/seed<seed>/``.
    slides
        Write the slides and fill ``obs["slide_path"]``. ``False`` skips the images (fast).

    Returns
    -------
    AnnData with ``X`` (float32 log2(TPM + 1)) and ``layers["log1p"]`` (the same values);
    ``obs``: ``case_id``, ``project_id``, ``disease_type``, ``primary_site`` (categorical),
    ``slide_id``, ``slide_path`` (absolute path; only with ``slides=True``), ``text`` (clinical
    description written by :func:`gemmgan_sc.pp.clinical_to_text` with ``wording_seed=seed``),
    and the record: ``age``, ``sex``, ``stage``, ``grade``, ``smoking_status``,
    ``pack_years``, ``tumor_size_cm``, ``tissue_source_site``; ``var``: ``gene_id``, ``module``;
    ``obsm["demo_latent"]``: the true latent factors (DataFrame); ``uns["gemmgan_demo"]``:
    ``simulated=True``, the parameters and a description.

    Examples
    --------
    >>> import gemmgan_sc as gg
    >>> adata = gg.datasets.demo(n_samples=20, n_genes=200, slides=False)
    >>> adata.uns["gemmgan_demo"]["simulated"]
    True
    >>> adata.obs["disease_type"].nunique()
    5
    """
    _check_args(n_samples, n_genes, seed, slides)
    import anndata as ad

    n_samples, n_genes, seed = int(n_samples), int(n_genes), int(seed)
    cases = [_sample_case(seed, i) for i in range(n_samples)]
    gm = _gene_model(seed, n_genes)
    X = _expression(cases, gm, seed)
    obs = _obs(cases, seed)
    folder = None
    if slides:
        folder = resolve_cache_dir(cache_dir, f"demo/v{DEMO_VERSION}/seed{seed}")
        params = [_slide_params(c, seed, i) for i, c in enumerate(cases)]
        paths = _ensure_slides(folder, obs["slide_id"].tolist(), params, seed, list(range(n_samples)))
        obs["slide_path"] = [str(p) for p in paths]
    adata = ad.AnnData(X=X, obs=obs, var=_var(gm, n_genes))
    adata.layers["log1p"] = X.copy()
    latent = pd.DataFrame([c["z"] for c in cases], index=obs.index, columns=list(SHARED_FACTORS + HIDDEN_FACTORS))
    adata.obsm["demo_latent"] = latent.astype(np.float32)
    adata.uns["gemmgan_demo"] = {
        "simulated": True,
        "description": (
            "SIMULATED cohort from gemmgan_sc.datasets.demo: not real patients, expression or tissue. "
            "Shared latent factors (image and expression): " + ", ".join(SHARED_FACTORS)
            + "; expression-only factors: " + ", ".join(HIDDEN_FACTORS) + "."
        ),
        "version": DEMO_VERSION,
        "params": {
            "n_samples": n_samples,
            "n_genes": n_genes,
            "seed": seed,
            "slides": bool(slides),
            "cache_dir": str(folder) if folder is not None else "",
        },
        "scale": "log2(TPM + 1)",
        "slide_mpp": SLIDE_MPP,
        "shared_factors": list(SHARED_FACTORS),
        "hidden_factors": list(HIDDEN_FACTORS),
    }
    return adata


def _check_args(n_samples, n_genes, seed, slides) -> None:
    for name, value, low in (("n_samples", n_samples, 1), ("n_genes", n_genes, 20)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}.")
    if not isinstance(slides, (bool, np.bool_)):
        raise TypeError(f"slides must be True or False, got {slides!r}.")


# categories of the obs columns (stage and grade ordered)
_OBS_LEVELS = {
    "project_id": [f"DEMO-{t.code}" for t in _TYPES],
    "disease_type": [t.disease_type for t in _TYPES],
    "primary_site": sorted({t.primary_site for t in _TYPES}),
    "sex": ["female", "male"],
    "stage": list(_STAGES),
    "grade": list(_GRADES),
    "smoking_status": list(_SMOKING),
    "tissue_source_site": list(_SITES),
}
_RECORD_COLUMNS = ("age", "sex", "stage", "grade", "smoking_status", "pack_years", "tumor_size_cm", "tissue_source_site")


def _obs(cases: list[dict], seed: int) -> pd.DataFrame:
    """Ids, type, slide id, the clinical record and its description, one row per case."""
    ids = [f"DEMO-{i:04d}" for i in range(len(cases))]
    records = pd.DataFrame([c["record"] for c in cases], index=ids)
    obs = pd.DataFrame(index=pd.Index(ids, name=None))
    obs["case_id"] = ids
    obs["project_id"] = [f"DEMO-{c['type'].code}" for c in cases]
    obs["disease_type"] = records["disease_type"]
    obs["primary_site"] = records["primary_site"]
    obs["slide_id"] = [f"demo-s{seed}-{i:04d}" for i in range(len(cases))]
    for col in _RECORD_COLUMNS:
        obs[col] = records[col]
    obs["text"] = _describe(records, seed)
    for col, levels in _OBS_LEVELS.items():
        obs[col] = pd.Categorical(obs[col], categories=levels, ordered=col in ("stage", "grade"))
    obs["age"] = obs["age"].astype(np.int64)
    return obs


def _var(gm: dict, n_genes: int) -> pd.DataFrame:
    var = pd.DataFrame(index=pd.Index([f"GENE{g:05d}" for g in range(n_genes)]))
    var["gene_id"] = [f"SIMG{g:06d}" for g in range(n_genes)]
    var["module"] = pd.Categorical(
        np.where(gm["module"] >= 0, gm["module_names"][np.maximum(gm["module"], 0)], "none")
    )
    return var
