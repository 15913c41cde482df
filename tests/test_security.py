"""Loading never executes code (no pickle; every torch.load has weights_only=True), and src/ uses public APIs only
(no private torch functions, no torch.ops.aten, no ctypes)."""

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


PRIVATE_API = re.compile(r"\btorch\._[A-Za-z]|\btorch\.ops\.aten\b|^\s*(import|from)\s+ctypes\b|\bctypes\.", re.M)


def _private_api_uses(text: str) -> list[str]:
    return [m.group(0).strip() for m in PRIVATE_API.finditer(text)]


def test_no_private_torch_api_or_ctypes():
    offenders = [f"{path.relative_to(SRC)}: {use}" for path in SRC.rglob("*.py")
                 for use in _private_api_uses(path.read_text())]
    assert not offenders, offenders


def test_the_private_api_scanner_sees_them():
    assert _private_api_uses("torch._softmax_backward_data(g, y, 1, x.dtype)") == ["torch._s"]
    assert _private_api_uses("torch.ops.aten._softmax.out(x, 1, False, out=y)") == ["torch.ops.aten"]
    assert _private_api_uses("import ctypes\nlibc = ctypes.CDLL(None)") == ["import ctypes", "ctypes."]
    assert _private_api_uses("torch.nn.functional.softmax(x, 1); my_torch._x = 1") == []
