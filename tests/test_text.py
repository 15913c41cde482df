"""embed_text and the text-encoder registry: real MiniLM, a tiny random ModernBERT, offline hub errors."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import gemmgan_sc as gg
from gemmgan_sc.encoders import TEXT_ENCODERS, get_text_encoder
from gemmgan_sc.encoders._text import TextEncoder, minilm_path

from test_clinical import CASES, DISEASE

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def minilm() -> TextEncoder:
    return get_text_encoder("minilm", device="cpu")


@pytest.fixture(scope="module")
def tiny_modernbert(tmp_path_factory) -> str:
    """A randomly initialised 3-layer ModernBERT with the MiniLM (BERT) tokenizer, saved to a folder."""
    import torch

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny_modernbert")
    tok = transformers.AutoTokenizer.from_pretrained(str(minilm_path()))
    cfg = transformers.ModernBertConfig(
        vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=2,
        max_position_embeddings=512, local_attention=16, pad_token_id=tok.pad_token_id, cls_token_id=tok.cls_token_id,
        sep_token_id=tok.sep_token_id, bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id,
    )
    transformers.ModernBertModel(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


def _adata(texts, index=None) -> ad.AnnData:
    index = index or [f"s{i}" for i in range(len(texts))]
    return ad.AnnData(np.zeros((len(texts), 2), dtype=np.float32), obs=pd.DataFrame({"text": texts}, index=index))


def test_minilm_writes_the_contract(minilm, tmp_path):
    texts = gg.pp.clinical_to_text(CASES)
    adata = _adata(texts)
    gg.pp.embed_text(adata, encoder=minilm, max_length=300, batch_size=3)
    tokens, mask, cls = adata.obsm["X_text_tokens"], adata.obsm["text_mask"], adata.obsm["X_text_cls"]
    assert tokens.shape == (4, 300, 384) and tokens.dtype == np.float16
    assert mask.shape == (4, 300) and mask.dtype == bool
    assert cls.shape == (4, 384) and cls.dtype == np.float32
    n_tok = minilm.token_lengths(texts)
    assert (mask.sum(1) == n_tok).all() and mask[:, 0].all()
    for i, n in enumerate(n_tok):  # real tokens first, then padding (zeros)
        assert mask[i, :n].all() and not mask[i, n:].any()
        assert not tokens[i, n:].any() and np.abs(tokens[i, :n]).sum(-1).min() > 0
    np.testing.assert_allclose(tokens[:, 0].astype(np.float32), cls, atol=2e-3)  # CLS is the first token
    p = adata.uns["gemmgan_text"]["params"]
    assert p["encoder"] == "minilm" and p["dim"] == 384 and p["max_length"] == 300 and p["n_truncated"] == 0
    assert adata.uns["gemmgan"]["text_encoder"]["dim"] == 384
    adata.write_h5ad(tmp_path / "t.h5ad")
    back = ad.read_h5ad(tmp_path / "t.h5ad")
    np.testing.assert_array_equal(back.obsm["X_text_tokens"], tokens)
    assert back.obsm["text_mask"].dtype == bool and back.uns["gemmgan_text"]["params"]["dim"] == 384
    # the registry of the model accepts what was written
    from gemmgan_sc.data import AnnDataRegistry

    adata.X = np.log2(1 + np.random.default_rng(0).gamma(2.0, 5.0, size=adata.shape)).astype(np.float32)
    reg = AnnDataRegistry.setup(adata)
    assert reg.text_key == "X_text_tokens" and reg.text_mask_key == "text_mask" and reg.text_dim == 384


def test_same_diagnosis_is_closer_than_different_diagnoses(minilm):
    texts = gg.pp.clinical_to_text(CASES)
    adata = _adata(texts)
    gg.pp.embed_text(adata, encoder=minilm, max_length=128)
    x = adata.obsm["X_text_cls"]
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    sim = x @ x.T
    d = np.array(DISEASE)
    same = sim[(d[:, None] == d[None]) & ~np.eye(4, dtype=bool)]
    diff = sim[d[:, None] != d[None]]
    assert same.min() > diff.max() + 0.05, (same, diff)


def test_batching_order_and_truncation(minilm):
    texts = ["Lung adenocarcinoma, stage IB.", "Urothelial carcinoma of the bladder, high grade. " * 30, "A 70-year-old man."]
    one = _adata(texts)
    gg.pp.embed_text(one, encoder=minilm, max_length=48, batch_size=1)
    many = _adata(texts)
    gg.pp.embed_text(many, encoder=minilm, max_length=48, batch_size=3)
    np.testing.assert_array_equal(one.obsm["text_mask"], many.obsm["text_mask"])
    np.testing.assert_allclose(one.obsm["X_text_cls"], many.obsm["X_text_cls"], atol=1e-4)
    p = many.uns["gemmgan_text"]["params"]
    assert p["n_truncated"] == 1 and p["truncated"] == ["s1"] and p["n_tokens_max"] > 48
    assert many.obsm["text_mask"][1].all()  # truncated to exactly max_length


def test_key_added_naming_and_copy(minilm):
    adata = _adata(["Lung adenocarcinoma.", "Bladder cancer."])
    out = gg.pp.embed_text(adata, encoder=minilm, max_length=16, key_added="X_report", copy=True)
    assert not adata.obsm and "gemmgan_report" not in adata.uns  # the original is untouched
    assert set(out.obsm) == {"X_report_tokens", "report_mask", "X_report_cls"}
    assert out.uns["gemmgan_report"]["params"]["mask_key"] == "report_mask"
    assert gg.pp._text.text_keys("X_text") == {
        "tokens": "X_text_tokens", "mask": "text_mask", "cls": "X_text_cls", "uns": "gemmgan_text"
    }


def test_missing_and_bad_text(minilm):
    adata = _adata(["Lung adenocarcinoma.", "", None, "  "], index=["a", "b", "c", "d"])
    with pytest.raises(ValueError, match=r"3 row\(s\): \['b', 'c', 'd'\].*na_text"):
        gg.pp.embed_text(adata, encoder=minilm)
    gg.pp.embed_text(adata, encoder=minilm, max_length=16, na_text="No clinical information.")
    assert adata.uns["gemmgan_text"]["params"]["n_na"] == 3
    np.testing.assert_allclose(adata.obsm["X_text_cls"][1], adata.obsm["X_text_cls"][3], atol=1e-5)
    assert adata.obs["text"].iloc[1] == ""  # the user's column is not altered
    with pytest.raises(ValueError, match="na_text must be"):
        gg.pp.embed_text(adata, encoder=minilm, na_text="")
    with pytest.raises(KeyError, match="'report'.*clinical_to_text"):
        gg.pp.embed_text(adata, text_key="report", encoder=minilm)
    nums = _adata(["ok", "ok"])
    nums.obs["text"] = [1.5, "x"]
    with pytest.raises(TypeError, match=r"not text in rows \['s0'\]"):
        gg.pp.embed_text(nums, encoder=minilm)
    with pytest.raises(TypeError, match="AnnData"):
        gg.pp.embed_text(pd.DataFrame({"text": ["x"]}), encoder=minilm)
    with pytest.raises(ValueError, match="max_length=600 is longer than the 512"):
        gg.pp.embed_text(_adata(["x"]), encoder=minilm, max_length=600)
    with pytest.raises(ValueError, match="batch_size must be"):
        gg.pp.embed_text(_adata(["x"]), encoder=minilm, batch_size=0)


def test_encoder_names_and_offline_errors(tmp_path):
    assert {"minilm", "clinical-modernbert"} <= set(TEXT_ENCODERS)
    with pytest.raises(ValueError, match=r"Unknown text encoder 'bert-ish'.*\['clinical-modernbert', 'minilm'\]"):
        get_text_encoder("bert-ish")
    with pytest.raises(ValueError, match="hf:<owner>/<name>"):
        get_text_encoder("hf:")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        get_text_encoder(str(tmp_path / "empty"))
    # conftest sets HF_HUB_OFFLINE=1: the default hub encoder must fail with the ways out, not hang
    adata = _adata(["Lung adenocarcinoma."])
    with pytest.raises(OSError, match=r"Simonlee711/Clinical_ModernBERT.*local folder.*encoder='minilm'"):
        gg.pp.embed_text(adata, cache_dir=tmp_path / "hf_cache")
    with pytest.raises(OSError, match="encoder='minilm'"):
        get_text_encoder("hf:someone/missing-model", cache_dir=tmp_path / "hf_cache")


def test_tiny_modernbert_from_a_folder(tiny_modernbert):
    texts = gg.pp.clinical_to_text(CASES)
    adata = _adata(texts)
    gg.pp.embed_text(adata, encoder=tiny_modernbert, max_length=64, batch_size=2, device="cpu")
    p = adata.uns["gemmgan_text"]["params"]
    assert p["model_type"] == "modernbert" and p["dim"] == 32
    assert adata.obsm["X_text_tokens"].shape == (4, 64, 32)
    mask = adata.obsm["text_mask"]
    assert mask[:, 0].all() and (mask.sum(1) == np.minimum(get_text_encoder(tiny_modernbert).token_lengths(texts), 64)).all()
    assert np.isfinite(adata.obsm["X_text_tokens"].astype(np.float32)).all()
    # padding does not change a text's embedding (ModernBERT unpads)
    single = _adata(texts[:1])
    gg.pp.embed_text(single, encoder=tiny_modernbert, max_length=64, device="cpu")
    np.testing.assert_allclose(single.obsm["X_text_cls"][0], adata.obsm["X_text_cls"][0], atol=1e-4)


def test_clinical_modernbert_name_loads_from_the_hub_cache(tiny_modernbert, tmp_path):
    """The hub code path, offline: the model sits in a Hugging Face cache under the real repo id."""
    import shutil

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--Simonlee711--Clinical_ModernBERT"
    shutil.copytree(tiny_modernbert, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    adata = _adata(["A 67-year-old man diagnosed with lung adenocarcinoma."])
    gg.pp.embed_text(adata, max_length=32, cache_dir=tmp_path / "hub", device="cpu")  # the default encoder
    p = adata.uns["gemmgan_text"]["params"]
    assert p["encoder"] == "clinical-modernbert" and p["source"] == "Simonlee711/Clinical_ModernBERT"
    assert adata.obsm["X_text_tokens"].shape == (1, 32, 32)
    enc = get_text_encoder("hf:Simonlee711/Clinical_ModernBERT", cache_dir=tmp_path / "hub", device="cpu")
    assert enc.info["model_type"] == "modernbert"


def test_bad_device_is_reported():
    with pytest.raises(ValueError, match="device='gpu0' is not a torch device"):
        get_text_encoder("minilm", device="gpu0")


class _FakeHub:
    """The few Hugging Face hub routes transformers uses to download a model, served on 127.0.0.1."""

    commit = "0123456789abcdef0123456789abcdef01234567"

    def __init__(self, folder: str, repo: str):
        import hashlib
        import http.server
        import json
        import os
        import threading

        files = {f: open(os.path.join(folder, f), "rb").read() for f in sorted(os.listdir(folder))}
        hub = self
        self.requests: list[str] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                hub.requests.append(f"{self.command} {self.path}")

            def _reply(self, code, body=b"", headers=()):
                self.send_response(code)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command == "GET":
                    self.wfile.write(body)

            def _route(self):
                path = self.path.split("?")[0]
                api = f"/api/models/{repo}"
                if path == api or path.startswith(api + "/revision/"):
                    info = {"id": repo, "sha": hub.commit, "siblings": [{"rfilename": f} for f in files]}
                    return self._reply(200, json.dumps(info).encode(), [("Content-Type", "application/json")])
                if path.startswith(api + "/tree/"):
                    return self._reply(200, b"[]", [("Content-Type", "application/json")])
                prefix = f"/{repo}/resolve/"
                if not path.startswith(prefix) or "/" not in path[len(prefix):]:
                    return self._reply(404, headers=[("X-Error-Code", "RepoNotFound")])
                name = path[len(prefix):].split("/", 1)[1]
                if name not in files:
                    return self._reply(404, headers=[("X-Error-Code", "EntryNotFound")])
                data = files[name]
                etag = '"' + hashlib.sha1(data).hexdigest() + '"'
                return self._reply(200, data, [("X-Repo-Commit", hub.commit), ("ETag", etag)])

            do_GET = do_HEAD = _route

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.slow
def test_clinical_modernbert_downloads_from_a_hub_endpoint(tiny_modernbert, tmp_path):
    """The real download path (no offline flag, empty cache) against a loopback hub: HF_ENDPOINT is read at
    import time by huggingface_hub, so the download runs in a fresh interpreter."""
    import os
    import subprocess
    import sys

    hub = _FakeHub(tiny_modernbert, "Simonlee711/Clinical_ModernBERT")
    try:
        env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
        env.update(HF_ENDPOINT=hub.url, HF_HUB_DISABLE_TELEMETRY="1", NO_PROXY="127.0.0.1", no_proxy="127.0.0.1")
        code = (
            "import gemmgan_sc as gg\n"
            "from gemmgan_sc.encoders import get_text_encoder\n"
            "gg.settings.progress_bar = False\n"
            f"e = get_text_encoder('clinical-modernbert', cache_dir={str(tmp_path / 'cache')!r}, device='cpu')\n"
            "print('DIM', e.dim, e.info['model_type'], e.info['kind'])\n"
        )
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    finally:
        hub.close()
    assert out.returncode == 0, out.stderr[-2000:]
    assert "DIM 32 modernbert hub" in out.stdout
    assert any("model.safetensors" in r for r in hub.requests)
    assert (tmp_path / "cache" / "models--Simonlee711--Clinical_ModernBERT" / "snapshots" / hub.commit / "config.json").exists()


def test_hub_probe_fails_fast_on_a_closed_port(monkeypatch):
    import socket

    from gemmgan_sc.encoders._text import _hub_unreachable

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    assert f"127.0.0.1:{port} cannot be reached" in _hub_unreachable(timeout=2)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    assert _hub_unreachable(timeout=2) is None  # behind a proxy the probe says nothing
