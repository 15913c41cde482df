"""Training checkpoints without pickles: tensors in safetensors, everything else in JSON.

A checkpoint holds the networks, the normalisation, the optimiser and scheduler states, the RNG states of
Python, NumPy and torch, and the model's metadata (history, split, hyperparameters). It is written to a
temporary folder and renamed into place, so a process killed mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._io import atomic_folder

CHECKPOINT_NAME = "last"
TENSORS_FILE = "checkpoint.safetensors"
META_FILE = "checkpoint.json"


def _split_state(state: Any, prefix: str, tensors: dict[str, np.ndarray]) -> Any:
    """Replace every tensor in a nested state by a reference ``{"__tensor__": key}`` and collect it."""
    if isinstance(state, torch.Tensor):
        key = prefix
        tensors[key] = state.detach().cpu().contiguous().numpy()
        return {"__tensor__": key, "dtype": str(state.dtype).replace("torch.", "")}
    if isinstance(state, dict):
        return {"__dict__": [[_json_key(k), _split_state(v, f"{prefix}.{k}", tensors)] for k, v in state.items()]}
    if isinstance(state, (list, tuple)):
        return {"__list__": [_split_state(v, f"{prefix}.{i}", tensors) for i, v in enumerate(state)],
                "tuple": isinstance(state, tuple)}
    if isinstance(state, np.generic):
        return state.item()
    if state is None or isinstance(state, (bool, int, float, str)):
        return state
    raise TypeError(f"Cannot store {type(state).__name__} in a checkpoint without pickling.")


def _json_key(key: Any) -> Any:
    if isinstance(key, (str, int, float, bool)) or key is None:
        return key
    raise TypeError(f"Cannot store a {type(key).__name__} key in a checkpoint.")


def _join_state(state: Any, tensors: dict[str, np.ndarray]) -> Any:
    if isinstance(state, dict):
        if "__tensor__" in state:
            array = tensors[state["__tensor__"]]
            return torch.from_numpy(array.copy()).to(getattr(torch, state["dtype"]))
        if "__dict__" in state:
            return {k: _join_state(v, tensors) for k, v in state["__dict__"]}
        if "__list__" in state:
            items = [_join_state(v, tensors) for v in state["__list__"]]
            return tuple(items) if state.get("tuple") else items
    return state


def rng_states() -> dict[str, Any]:
    states: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    states["numpy"] = {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "cached": float(cached)}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"].to(torch.uint8))
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    npst = states["numpy"]
    np.random.set_state((npst["kind"], npst["keys"].numpy().astype(np.uint32), npst["pos"], npst["has_gauss"],
                         npst["cached"]))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.to(torch.uint8) for s in states["cuda"]])


def write_checkpoint(folder: str | os.PathLike, state: dict[str, Any], meta: dict[str, Any]) -> Path:
    """Write ``state`` (nested dicts/lists of tensors and JSON values) and ``meta`` (JSON) atomically."""
    from safetensors.numpy import save_file

    target = Path(folder) / CHECKPOINT_NAME
    with atomic_folder(target) as tmp:
        tensors: dict[str, np.ndarray] = {}
        skeleton = _split_state(state, "s", tensors)
        save_file(tensors, str(tmp / TENSORS_FILE))
        with open(tmp / META_FILE, "w") as fh:
            json.dump({"meta": meta, "state": skeleton}, fh)
    return target


def read_checkpoint(folder: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """``(state, meta)`` of the last checkpoint in ``folder``, or None when there is none."""
    from safetensors.numpy import load_file

    target = Path(folder) / CHECKPOINT_NAME
    if not (target / META_FILE).is_file() or not (target / TENSORS_FILE).is_file():
        return None
    try:
        payload = json.loads((target / META_FILE).read_text())
        tensors = load_file(str(target / TENSORS_FILE))
    except (OSError, ValueError) as err:
        raise ValueError(f"The checkpoint in {str(target)!r} is damaged ({err}); delete it to start afresh.") from err
    return _join_state(payload["state"], tensors), payload["meta"]
