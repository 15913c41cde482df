"""The AnnData contract: schema keys, the setup registry and its validation, the patch store."""

from ._patch_store import PatchStore, validate_slide_id
from ._scaler import ExpressionScaler
from ._registry import AnnDataRegistry, validate_expression

__all__ = ["PatchStore", "validate_slide_id", "AnnDataRegistry", "validate_expression", "ExpressionScaler"]
