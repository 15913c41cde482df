"""State dicts of earlier saved-model formats, mapped onto today's modules."""

from __future__ import annotations

from collections.abc import Mapping

import torch


def upgrade_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map the network state dict of a saved model of an earlier format onto today's modules.

    Format 1 (gemmgan-sc 0.1.0 and its development versions) ran the fusion network on hand-written fast CPU layers
    (``gemmgan_sc.nn.TransformerEncoderLayer``, a packed-projection cross attention), which were given the
    parameter names and shapes of ``torch.nn.TransformerEncoderLayer`` / ``torch.nn.MultiheadAttention`` on
    purpose: ``transformer.layers.<i>.self_attn.in_proj_weight`` (3d x d, queries, keys, values stacked),
    ``...self_attn.out_proj``, ``linear1``, ``linear2``, ``norm1``, ``norm2``, and ``text_to_patch`` /
    ``patch_to_text`` as ``nn.MultiheadAttention`` modules. Today's modules are torch's own, so every tensor of
    format 1 maps to itself, and an already current state dict is returned unchanged as well: loaders can call
    this on every state dict they read. Fusion networks saved before tile features were standardised have no
    ``patch_center`` / ``patch_scale`` buffers: they get the identity (zeros, ones), which is what they ran.

    Parameters
    ----------
    state
        Parameter name -> tensor, as ``module.state_dict()`` gives it (any prefix, e.g. ``gen_condition.``).

    Returns
    -------
    A new dict (the input is not modified) that ``load_state_dict(..., strict=True)`` accepts on a network built
    with the saved hyperparameters.

    Examples
    --------
    >>> import torch
    >>> from gemmgan_sc.nn import ConditionFusion
    >>> fusion = ConditionFusion(patch_dim=8, text_dim=6, d_model=4, n_heads=2, n_layers=1, d_ff=8)
    >>> fusion.load_state_dict(upgrade_state_dict(fusion.state_dict()))
    <All keys matched successfully>
    """
    if not isinstance(state, Mapping):
        raise TypeError(f"upgrade_state_dict needs a mapping of parameter names to tensors, got {type(state).__name__}.")
    upgraded: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if not isinstance(key, str):
            raise TypeError(f"State-dict keys must be str, got {key!r} ({type(key).__name__}).")
        if not isinstance(value, torch.Tensor):
            raise TypeError(
                f"State-dict entry {key!r} is a {type(value).__name__}, not a torch.Tensor: convert arrays read from "
                "a safetensors file with torch.from_numpy (or read them with safetensors.torch.load_file)."
            )
        upgraded[key] = value
    _add_patch_statistics(upgraded)
    return upgraded


def _add_patch_statistics(state: dict[str, torch.Tensor]) -> None:
    """Saved before tile features were standardised (format <= 2): identity statistics, the old behaviour."""
    for key in list(state):
        for layer in ("patch_proj.weight", "image_head.weight"):
            if key == layer or key.endswith("." + layer):
                prefix = key[: -len(layer)]
                dim = state[key].shape[1]
                state.setdefault(prefix + "patch_center", torch.zeros(dim, dtype=state[key].dtype))
                state.setdefault(prefix + "patch_scale", torch.ones(dim, dtype=state[key].dtype))
