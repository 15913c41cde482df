"""Loading never executes code: no pickle in the package, and every torch.load uses weights_only=True."""

import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "gemmgan_sc"


def test_no_pickle_and_torch_load_is_weights_only():
    offenders = []
    for path in SRC.rglob("*.py"):
        text = path.read_text()
        if re.search(r"^\s*(import pickle|from pickle|import dill|import joblib)", text, re.M):
            offenders.append(f"{path.name}: imports a pickle module")
        offenders += [f"{path.name}: {call}" for call in _unsafe_torch_loads(text)]
    assert not offenders, offenders


def _unsafe_torch_loads(text: str) -> list[str]:
    """The ``torch.load(...)`` calls (parentheses balanced) that lack ``weights_only=True``."""
    calls = []
    for match in re.finditer(r"torch\.load\(", text):
        depth, end = 1, match.end()
        while depth and end < len(text):
            depth += {"(": 1, ")": -1}.get(text[end], 0)
            end += 1
        call = text[match.start() : end]
        if "weights_only=True" not in call:
            calls.append(call)
    return calls


def test_the_scanner_sees_unsafe_calls():
    assert _unsafe_torch_loads("x = torch.load(str(p), map_location='cpu')") == ["torch.load(str(p), map_location='cpu')"]
    assert _unsafe_torch_loads("x = torch.load(str(p), weights_only=True)") == []
