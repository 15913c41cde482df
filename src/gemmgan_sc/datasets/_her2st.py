"""The HER2-positive breast cancer spatial transcriptomics sections of Andersson et al. (2021) as AnnData.

Spots are rows (raw counts in ``X``), their full-resolution pixel centres are ``obsm["spatial"]`` and each
section's H&E image is in ``uns["spatial"][section]`` as scanpy / squidpy expect (a downscaled ``"hires"`` copy with
``tissue_hires_scalef``; the full-resolution JPEG is named in ``metadata["source_image_path"]``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["read_her2st"]

_SECTION = re.compile(r"^[A-Za-z][0-9]+$")
ST_SPOT_UM, ST_PITCH_UM = 100.0, 200.0  # ST arrays: 100 um spots, 200 um centre to centre
_JOINS = ("inner", "outer")


def _section_files(folder: Path, section: str) -> dict[str, Path] | None:
    """Counts, spots and image of ``section`` in the flat layout (``C2.counts.tsv.gz``, ``C2.spots.tsv``,
    ``C2.jpg``) or the layout of the authors' repository (``data/ST-cnts/C2.tsv.gz``,
    ``data/ST-spotfiles/C2_selection.tsv``, ``data/ST-imgs/C/C2/*.jpg``); None when neither is complete."""
    flat = {"counts": folder / f"{section}.counts.tsv.gz", "spots": folder / f"{section}.spots.tsv",
            "image": folder / f"{section}.jpg"}
    if all(p.is_file() for p in flat.values()):
        return flat
    for root in (folder / "data", folder):
        images = sorted((root / "ST-imgs" / section[0] / section).glob("*.jpg"))
        repo = {"counts": root / "ST-cnts" / f"{section}.tsv.gz",
                "spots": root / "ST-spotfiles" / f"{section}_selection.tsv"}
        if len(images) == 1 and all(p.is_file() for p in repo.values()):
            return dict(repo, image=images[0])
    return None


def _find_sections(folder: Path) -> list[str]:
    names = {p.name.split(".")[0] for p in folder.glob("*.counts.tsv.gz")}
    for root in (folder / "data", folder):
        names |= {p.name.split(".")[0] for p in (root / "ST-cnts").glob("*.tsv.gz")}
    return sorted(n for n in names if _SECTION.match(n) and _section_files(folder, n) is not None)


def _read_spots(path: Path, section: str) -> pd.DataFrame:
    spots = pd.read_csv(path, sep="\t")
    need = {"x", "y", "pixel_x", "pixel_y"}
    if not need <= set(spots.columns):
        raise ValueError(
            f"{path} is not a her2st spot file: columns {sorted(need - set(spots.columns))} are missing "
            f"(found {list(spots.columns)})."
        )
    if "selected" in spots:
        spots = spots[spots["selected"].astype(int) == 1]
    spots = spots.assign(key=spots["x"].astype(int).astype(str) + "x" + spots["y"].astype(int).astype(str))
    if spots["key"].duplicated().any():
        raise ValueError(f"{path}: spots {spots['key'][spots['key'].duplicated()].tolist()[:5]} are listed twice.")
    return spots.set_index("key")


def _pixels_per_pitch(spots: pd.DataFrame) -> float:
    """Image px between neighbouring array positions (least-squares fit of pixel on array coordinates)."""
    cols = ("new_x", "new_y") if {"new_x", "new_y"} <= set(spots.columns) else ("x", "y")
    slopes = []
    for axis, col in zip(("pixel_x", "pixel_y"), cols):
        a = spots[col].to_numpy(float)
        if np.ptp(a) > 0:
            slopes.append(abs(np.polyfit(a, spots[axis].to_numpy(float), 1)[0]))
    return float(np.mean(slopes)) if slopes else float("nan")


def _hires(path: Path, hires_px: int | None) -> tuple[np.ndarray | None, float | None, tuple[int, int]]:
    """A copy of the JPEG with its longest side ``hires_px`` (decoded at a reduced DCT scale), its scale factor
    and the full-resolution (width, height)."""
    from PIL import Image

    from ..pp._spatial import trusted_image_size

    with trusted_image_size(), Image.open(path) as img:
        full = img.size
        if hires_px is None:
            return None, None, full
        scale = min(1.0, hires_px / max(full))
        size = (max(1, round(full[0] * scale)), max(1, round(full[1] * scale)))
        img.draft("RGB", size)  # JPEG: decode at the nearest DCT scale above the target size
        small = img.convert("RGB").resize(size, Image.Resampling.LANCZOS)
    return np.asarray(small), scale, full


def _read_section(files: dict[str, Path], section: str, hires_px: int | None):
    import anndata as ad
    import scipy.sparse as sp

    counts = pd.read_csv(files["counts"], sep="\t", index_col=0)
    spots = _read_spots(files["spots"], section)
    n_listed = len(spots)
    keep = spots.index.intersection(counts.index, sort=False)
    if len(keep) == 0:
        raise ValueError(f"Section {section}: no spot of {files['spots']} has counts in {files['counts']}.")
    spots, counts = spots.loc[keep], counts.loc[keep]
    obs = pd.DataFrame({
        "section": section, "array_x": spots["x"].astype(int).to_numpy(), "array_y": spots["y"].astype(int).to_numpy(),
        "pixel_x": spots["pixel_x"].to_numpy(float), "pixel_y": spots["pixel_y"].to_numpy(float), "in_tissue": 1,
    }, index=[f"{section}_{k}" for k in keep])
    x = sp.csr_matrix(counts.to_numpy(np.float32))
    adata = ad.AnnData(x, obs=obs, var=pd.DataFrame(index=counts.columns.astype(str)))
    adata.obsm["spatial"] = obs[["pixel_x", "pixel_y"]].to_numpy(float)
    image, scale, full = _hires(files["image"], hires_px)
    pitch = _pixels_per_pitch(spots)
    library = {
        "images": {} if image is None else {"hires": image},
        "scalefactors": {"spot_diameter_fullres": pitch * ST_SPOT_UM / ST_PITCH_UM,
                         **({} if scale is None else {"tissue_hires_scalef": scale})},
        "metadata": {"source_image_path": str(files["image"].absolute()), "fullres_width": full[0],
                     "fullres_height": full[1], "microns_per_pixel": ST_PITCH_UM / pitch,
                     "n_spots_without_counts": n_listed - len(keep)},
    }
    return adata, library


def read_her2st(
    folder: str | os.PathLike,
    sections: Sequence[str] | None = None,
    *,
    hires_px: int | None = 2000,
    join: str = "inner",
):
    """Read sections of the HER2+ breast cancer spatial transcriptomics data (Andersson et al., 2021) into AnnData.

    Each spot under tissue is a row. Spots are matched to their counts by array position (``"<x>x<y>"``); spots
    of the spot file without counts are left out (their number is in
    ``uns["spatial"][section]["metadata"]["n_spots_without_counts"]``).

    Parameters
    ----------
    folder
        Folder with ``<section>.counts.tsv.gz``, ``<section>.spots.tsv`` and ``<section>.jpg`` per section, or a
        clone of the authors' repository (``almaan/her2st``, its ``data/ST-cnts``, ``data/ST-spotfiles`` and
        ``data/ST-imgs`` folders).
    sections
        Section names such as ``["C2", "C3"]`` (default: every complete section in ``folder``).
    hires_px
        Longest side in px of the downscaled ``"hires"`` image kept in ``uns`` (None: no image in memory; the
        full-resolution file is always named in ``metadata["source_image_path"]``).
    join
        Genes of several sections: ``"inner"`` (those counted in every section) or ``"outer"`` (all; a gene
        missing from a section's table gets 0 counts there).

    Returns
    -------
    AnnData: ``X`` raw counts (sparse float32, spots x genes); ``obs`` with ``section`` and ``library_id``
    (categorical), ``array_x``, ``array_y``, ``pixel_x``, ``pixel_y``, ``in_tissue``; ``obsm["spatial"]`` the
    full-resolution (x, y) pixel centre of each spot; ``uns["spatial"][section]`` with ``images["hires"]``,
    ``scalefactors`` (``tissue_hires_scalef``, ``spot_diameter_fullres`` estimated from the array pitch: ST spots
    are 100 um wide, 200 um apart) and ``metadata`` (``source_image_path``, full-resolution size,
    ``microns_per_pixel``). Obs names are ``"<section>_<x>x<y>"``.

    Examples
    --------
    >>> import gemmgan_sc as gg
    >>> adata = gg.datasets.read_her2st("../shared/data/her2st", sections=["C2", "C3", "C4"])  # doctest: +SKIP
    >>> adata.obs["library_id"].value_counts()  # doctest: +SKIP
    """
    import anndata as ad

    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"her2st folder {str(folder)!r} does not exist; download the data from almaan/her2st.")
    if join not in _JOINS:
        raise ValueError(f"join must be one of {_JOINS}, got {join!r}.")
    if hires_px is not None and (isinstance(hires_px, bool) or not isinstance(hires_px, (int, np.integer))
                                 or hires_px < 16):
        raise ValueError(f"hires_px must be an int >= 16 or None, got {hires_px!r}.")
    if sections is None:
        sections = _find_sections(folder)
        if not sections:
            raise FileNotFoundError(f"No complete her2st section (counts, spots and image) in {str(folder)!r}.")
    elif isinstance(sections, str) or not all(isinstance(s, str) for s in sections) or not len(sections):
        raise TypeError(f"sections must be a non-empty list of section names such as ['C2'], got {sections!r}.")
    sections = list(dict.fromkeys(sections))
    parts, spatial = {}, {}
    for section in sections:
        files = _section_files(folder, section)
        if files is None:
            raise FileNotFoundError(
                f"Section {section!r} is incomplete or missing in {str(folder)!r}: it needs {section}.counts.tsv.gz, "
                f"{section}.spots.tsv and {section}.jpg (available: {_find_sections(folder)})."
            )
        parts[section], spatial[section] = _read_section(files, section, hires_px)
    adata = ad.concat(parts, join=join, label="library_id", fill_value=0) if len(parts) > 1 else parts[sections[0]]
    adata.obs["library_id"] = pd.Categorical(adata.obs["section"].astype(str), categories=sections)
    adata.obs["section"] = adata.obs["library_id"].copy()
    adata.obsm["spatial"] = adata.obs[["pixel_x", "pixel_y"]].to_numpy(float)
    adata.uns["spatial"] = spatial
    return adata
