"""gg.datasets.tcga against a loopback HTTP server that speaks the GDC API (no network)."""

from __future__ import annotations

import hashlib
import io
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

import gemmgan_sc as gg
from gemmgan_sc.datasets import GDCError, read_star_counts

GENES = [  # gene_id, gene_name, gene_type
    ("ENSG00000000003.15", "TSPAN6", "protein_coding"),
    ("ENSG00000000005.6", "TNMD", "protein_coding"),
    ("ENSG00000000419.13", "DPM1", "protein_coding"),
    ("ENSG00000230368.2", "FAM41C", "lncRNA"),
    ("ENSG00000280000.1", "DPM1", "protein_coding"),  # duplicate name -> made unique
]


def star_tsv(tpm: list[float]) -> bytes:
    lines = ["# gene-model: GENCODE v36",
             "gene_id\tgene_name\tgene_type\tunstranded\tstranded_first\tstranded_second\ttpm_unstranded"
             "\tfpkm_unstranded\tfpkm_uq_unstranded"]
    for k in ("N_unmapped", "N_multimapping", "N_noFeature", "N_ambiguous"):
        lines.append(f"{k}\t\t\t{1000 + len(k)}\t10\t10\t\t\t")
    for (gid, name, gtype), t in zip(GENES, tpm, strict=True):
        lines.append(f"{gid}\t{name}\t{gtype}\t{int(t * 10)}\t1\t2\t{t}\t{t / 2}\t{t / 3}")
    return ("\n".join(lines) + "\n").encode()


def tiny_svs(seed: int) -> bytes:
    import tifffile

    img = np.random.default_rng(seed).integers(0, 255, (64, 80, 3), dtype=np.uint8)
    buf = io.BytesIO()
    tifffile.imwrite(buf, img, photometric="rgb")
    return buf.getvalue()


def _md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


class FakeGDC:
    """In-memory GDC: files (expression and slides), cases, data; pages of at most 2 hits."""

    def __init__(self) -> None:
        self.files: list[dict] = []
        self.content: dict[str, bytes] = {}
        self.cases: dict[str, dict] = {}
        self.data_requests: list[str] = []
        self.corrupt: set[str] = set()
        rng = np.random.default_rng(1)
        layout = {"TCGA-AAA": ["01", "02", "03"], "TCGA-BBB": ["11", "12"]}
        info = {"TCGA-AAA": ("Adenomas and Adenocarcinomas", "Bronchus and lung"),
                "TCGA-BBB": ("Transitional Cell Papillomas and Carcinomas", "Bladder")}
        for pid, nums in layout.items():
            for num in nums:
                barcode = f"{pid}-{num}"
                cid = f"case-{pid[-3:].lower()}-{num}"
                self.cases[cid] = {
                    "case_id": cid, "submitter_id": barcode, "project": {"project_id": pid},
                    "disease_type": info[pid][0], "primary_site": info[pid][1],
                    "demographic": {"gender": "female" if int(num) % 2 else "male", "vital_status": "Alive",
                                    "race": "not reported", "age_at_index": 60 + int(num)},
                    "diagnoses": [{"age_at_diagnosis": (60 + int(num)) * 365.25 + 10, "ajcc_pathologic_stage": "Stage IIA",
                                   "tumor_grade": "'--", "primary_diagnosis": "Adenocarcinoma, NOS",
                                   "diagnosis_is_primary_disease": "true", "days_to_last_follow_up": 400,
                                   "treatments": [{"treatment_type": "Radiation Therapy, NOS", "treatment_or_therapy": "yes"},
                                                  {"treatment_type": "Pharmaceutical Therapy, NOS", "treatment_or_therapy": "no"}]}],
                    "exposures": [{"tobacco_smoking_status": "Current Reformed Smoker for > 15 yrs", "pack_years_smoked": 30}],
                }
                case_ref = {"case_id": cid, "submitter_id": barcode, "project": {"project_id": pid}}
                tpm = [float(np.round(rng.uniform(0, 50), 3)) for _ in GENES]
                self._add(f"expr-{cid}", f"{cid}.rna_seq.augmented_star_gene_counts.tsv", star_tsv(tpm),
                          {"data_type": "Gene Expression Quantification", "workflow": "STAR - Counts",
                           "case": case_ref, "sample": (f"{barcode}-01A", "Primary Tumor"), "tpm": tpm})
                if num == "01":  # a second, normal-tissue file that must not be picked
                    self._add(f"expr-{cid}-n", f"{cid}-normal.tsv", star_tsv([1.0] * len(GENES)),
                              {"data_type": "Gene Expression Quantification", "workflow": "STAR - Counts",
                               "case": case_ref, "sample": (f"{barcode}-11A", "Solid Tissue Normal"), "tpm": None})
                if num != "03":  # case 03 has no slide
                    self._add(f"slide-{cid}", f"{barcode}-01Z-00-DX1.ABC-{num}.svs", tiny_svs(int(num)),
                              {"data_type": "Slide Image", "strategy": "Diagnostic Slide", "case": case_ref,
                               "sample": (f"{barcode}-01Z", "Primary Tumor")})
                if num == "02":  # a tissue slide too: the diagnostic one must win
                    self._add(f"slide-{cid}-ts", f"{barcode}-01A-01-TS1.X.svs", tiny_svs(99),
                              {"data_type": "Slide Image", "strategy": "Tissue Slide", "case": case_ref,
                               "sample": (f"{barcode}-01A", "Primary Tumor")})

    def _add(self, fid: str, name: str, content: bytes, meta: dict) -> None:
        self.content[fid] = content
        self.files.append({"file_id": fid, "file_name": name, "md5sum": _md5(content), "file_size": len(content),
                           "_meta": meta,
                           "cases": [{**meta["case"], "samples": [{"submitter_id": meta["sample"][0],
                                                                   "sample_type": meta["sample"][1]}]}]})

    @staticmethod
    def _filters(f: dict) -> dict[str, list]:
        out: dict[str, list] = {}
        if f.get("op") == "and":
            for sub in f["content"]:
                out.update(FakeGDC._filters(sub))
        elif f.get("op") in ("in", "="):
            v = f["content"]["value"]
            out[f["content"]["field"]] = v if isinstance(v, list) else [v]
        return out

    def answer(self, endpoint: str, body: dict) -> dict:
        flt = self._filters(body.get("filters", {}))
        if endpoint == "files":
            hits = []
            for h in self.files:
                m = h["_meta"]
                ok = (h["cases"][0]["project"]["project_id"] in flt.get("cases.project.project_id", [])
                      and m["data_type"] in flt.get("data_type", []))
                if "analysis.workflow_type" in flt:
                    ok &= m.get("workflow") in flt["analysis.workflow_type"]
                if "experimental_strategy" in flt:
                    ok &= m.get("strategy") in flt["experimental_strategy"]
                if "cases.samples.sample_type" in flt:
                    ok &= m["sample"][1] in flt["cases.samples.sample_type"]
                if ok:
                    hits.append({k: v for k, v in h.items() if k != "_meta"}
                                | ({"experimental_strategy": m["strategy"], "data_format": "SVS"} if "strategy" in m else {}))
        elif endpoint == "cases":
            assert set(body["expand"].split(",")) >= {"diagnoses", "demographic", "exposures", "diagnoses.treatments"}
            hits = [self.cases[c] for c in flt.get("case_id", []) if c in self.cases]
        else:
            raise KeyError(endpoint)
        start, size = int(body.get("from", 0)), min(int(body.get("size", 10)), 2)
        page = hits[start:start + size]
        return {"data": {"hits": page, "pagination": {"count": len(page), "total": len(hits), "size": size,
                                                      "from": start}}, "warnings": {}}


@pytest.fixture
def gdc():
    fake = FakeGDC()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # silence
            pass

        def _send(self, code: int, payload: bytes, ctype: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            endpoint = self.path.strip("/")
            try:
                out = fake.answer(endpoint, body)
            except KeyError:
                return self._send(404, b'{"message": "not found"}', "application/json")
            self._send(200, json.dumps(out).encode(), "application/json")

        def do_GET(self):
            if not self.path.startswith("/data/"):
                return self._send(404, b"", "text/plain")
            fid = self.path.split("/data/")[1]
            fake.data_requests.append(fid)
            if fid not in fake.content:
                return self._send(404, b"", "text/plain")
            payload = fake.content[fid]
            if fid in fake.corrupt:
                payload = payload[:-3] + b"xyz"
            self._send(200, payload, "application/octet-stream")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield fake
    server.shutdown()
    server.server_close()


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_read_star_counts(tmp_path):
    p = tmp_path / "x.tsv"
    p.write_bytes(star_tsv([1.0, 2.0, 3.0, 4.0, 5.0]))
    df = read_star_counts(p)
    assert list(df["gene_name"]) == ["TSPAN6", "TNMD", "DPM1", "DPM1"]  # no N_ rows, no lncRNA
    assert list(df["tpm_unstranded"]) == [1.0, 2.0, 3.0, 5.0]
    assert len(read_star_counts(p, gene_types=None)) == 5
    bad = tmp_path / "bad.tsv"
    bad.write_text("a\tb\n1\t2\n")
    with pytest.raises(ValueError, match="STAR - Counts"):
        read_star_counts(bad)


def test_tcga_builds_paired_anndata(gdc, tmp_path):
    adata = gg.datasets.tcga(["TCGA-AAA", "TCGA-BBB"], data_dir=tmp_path, base_url=gdc.url)
    # case 03 of AAA has no slide -> dropped; 2 + 2 cases
    assert list(adata.obs_names) == ["TCGA-AAA-01", "TCGA-AAA-02", "TCGA-BBB-11", "TCGA-BBB-12"]
    assert list(adata.var_names) == ["TSPAN6", "TNMD", "DPM1", "DPM1-1"]
    assert adata.var["gene_id"].iloc[3] == "ENSG00000280000.1"
    assert adata.X.dtype == np.float32
    meta = {h["file_id"]: h["_meta"] for h in gdc.files}
    for name, fid in zip(adata.obs_names, adata.obs["expression_file_id"], strict=True):
        tpm = np.array(meta[fid]["tpm"])[[0, 1, 2, 4]]
        np.testing.assert_allclose(adata[name].X.ravel(), np.log2(tpm + 1), rtol=1e-6)
    assert "expr-case-aaa-01-n" not in set(adata.obs["expression_file_id"])  # normal sample not used
    np.testing.assert_array_equal(adata.layers["log1p"], adata.X)
    obs = adata.obs
    assert list(obs["project_id"].cat.categories) == ["TCGA-AAA", "TCGA-BBB"]
    assert obs.loc["TCGA-BBB-11", "primary_site"] == "Bladder"
    assert obs.loc["TCGA-AAA-02", "slide_file_id"] == "slide-case-aaa-02"  # diagnostic beats tissue slide
    assert obs.loc["TCGA-AAA-01", "slide_id"] == "TCGA-AAA-01-01Z-00-DX1.ABC-01"
    for p in obs["slide_path"]:
        assert Path(p).is_absolute() and Path(p).is_file()
    assert obs.loc["TCGA-AAA-01", "age"] == pytest.approx(61.0, abs=0.1)
    assert obs.loc["TCGA-AAA-01", "sex"] == "female"
    assert obs.loc["TCGA-AAA-01", "smoking_status"] == "former"
    assert obs.loc["TCGA-AAA-01", "treatments"] == "Radiation Therapy, NOS"
    assert obs["grade"].isna().all()  # GDC "'--" -> missing
    assert obs["race"].isna().all()  # "not reported" -> missing
    text = obs.loc["TCGA-AAA-01", "text"]
    # written by gg.pp.clinical_to_text from the raw GDC case JSON (the one writer of descriptions)
    case = gdc.cases["case-aaa-01"]
    assert text == gg.pp.clinical_to_text(case)
    assert text.startswith("A 61-year-old woman diagnosed with adenocarcinoma, NOS.")
    for part in ("Primary site: bronchus and lung.", "AJCC pathologic stage IIA.",
                 "Treatment: received radiation therapy, NOS; no pharmaceutical therapy, NOS.",
                 "Smoking: current reformed smoker for > 15 years, 30 pack-years."):
        assert part in text, part
    assert "grade" not in text.lower() and "race" not in text.lower()  # "'--" and "not reported" left out
    assert adata.uns["gemmgan_tcga"]["params"]["project_ids"] == ["TCGA-AAA", "TCGA-BBB"]
    adata.write_h5ad(tmp_path / "t.h5ad")  # h5ad-safe
    import anndata as ad

    back = ad.read_h5ad(tmp_path / "t.h5ad")
    assert back.obs["text"].iloc[0] == text


def test_tcga_resumes_and_checks_md5(gdc, tmp_path):
    gg.datasets.tcga("TCGA-BBB", data_dir=tmp_path, base_url=gdc.url)
    assert sorted(gdc.data_requests) == ["expr-case-bbb-11", "expr-case-bbb-12", "slide-case-bbb-11", "slide-case-bbb-12"]
    gdc.data_requests.clear()
    gg.datasets.tcga("TCGA-BBB", data_dir=tmp_path, base_url=gdc.url)
    assert gdc.data_requests == []  # everything present with the right md5
    slide = next((tmp_path / "slides").glob("TCGA-BBB-11*"))
    slide.write_bytes(b"damaged")
    (tmp_path / "expression" / "case-bbb-12.rna_seq.augmented_star_gene_counts.tsv").unlink()
    gg.datasets.tcga("TCGA-BBB", data_dir=tmp_path, base_url=gdc.url)
    assert sorted(gdc.data_requests) == ["expr-case-bbb-12", "slide-case-bbb-11"]
    assert slide.read_bytes() == gdc.content["slide-case-bbb-11"]


def test_tcga_md5_mismatch_is_an_error(gdc, tmp_path):
    gdc.corrupt.add("slide-case-bbb-12")
    with pytest.raises(GDCError, match="md5 mismatch.*slide-case-bbb-12"):
        gg.datasets.tcga("TCGA-BBB", data_dir=tmp_path, base_url=gdc.url)
    assert not list((tmp_path / "slides").glob("TCGA-BBB-12*"))  # the bad file is not kept


def test_tcga_unknown_project(gdc, tmp_path):
    with pytest.raises(ValueError, match="TCGA-NOPE"):
        gg.datasets.tcga(["TCGA-AAA", "TCGA-NOPE"], data_dir=tmp_path, base_url=gdc.url, slides=False)


def test_tcga_n_cases_and_no_slides(gdc, tmp_path):
    adata = gg.datasets.tcga(["TCGA-AAA", "TCGA-BBB"], n_cases=1, data_dir=tmp_path, base_url=gdc.url, slides=False)
    assert list(adata.obs_names) == ["TCGA-AAA-01", "TCGA-BBB-11"]
    assert "slide_path" not in adata.obs
    assert not (tmp_path / "slides").exists()
    adata = gg.datasets.tcga("TCGA-AAA", data_dir=tmp_path, base_url=gdc.url, slides=False)
    assert adata.n_obs == 3  # case 03 kept: no slide needed


def test_tcga_unreachable_then_offline_from_data_dir(gdc, tmp_path):
    dead = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(GDCError, match="data_dir"):
        gg.datasets.tcga("TCGA-BBB", data_dir=tmp_path / "fresh", base_url=dead, timeout=5)
    online = gg.datasets.tcga("TCGA-BBB", data_dir=tmp_path / "d", base_url=gdc.url)
    offline = gg.datasets.tcga("TCGA-BBB", data_dir=tmp_path / "d", base_url=dead, timeout=5)
    assert offline.uns["gemmgan_tcga"]["offline_cache_used"] is True
    np.testing.assert_array_equal(offline.X, online.X)
    assert list(offline.obs["slide_path"]) == list(online.obs["slide_path"])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"project_ids": []}, "project_ids"),
        ({"project_ids": ["TCGA-AAA", 3]}, "project_ids"),
        ({"project_ids": "TCGA-AAA", "n_cases": 0}, "n_cases"),
        ({"project_ids": "TCGA-AAA", "base_url": "ftp://x"}, "base_url"),
        ({"project_ids": "TCGA-AAA", "slide_types": "Diagnostic Slide"}, "slide_types"),
        ({"project_ids": "TCGA-AAA", "data_dir": 5}, "data_dir"),
    ],
)
def test_tcga_validates_input(kwargs, match, tmp_path):
    with pytest.raises((ValueError, TypeError), match=match):
        gg.datasets.tcga(**{"data_dir": tmp_path, "base_url": "http://127.0.0.1:9", **kwargs})


def _digest(adata) -> str:
    """sha256 of everything tcga() writes except the tmp paths: obs (values and dtypes), var, X, layers, uns."""
    obs = adata.obs.drop(columns=[c for c in ("slide_path",) if c in adata.obs])
    params = {k: v for k, v in adata.uns["gemmgan_tcga"]["params"].items() if k not in ("data_dir", "base_url")}
    uns = {k: v for k, v in adata.uns["gemmgan_tcga"].items() if k != "params"}
    parts = [obs.to_csv(), str(obs.dtypes.to_dict()), adata.var.to_csv(), adata.X.tobytes(),
             *(adata.layers[k].tobytes() for k in sorted(adata.layers)), json.dumps([params, uns], sort_keys=True)]
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else p.encode())
    return h.hexdigest()


# recorded from the code before gg.datasets.tcga was split into steps (issue 15); the output must not change
GOLDEN_DIGESTS = {
    "slides": "90f8e07e467fe10b49926ba2c63d50527c99e0d8ed6c523ca8d3279d3c318786",
    "no_slides_n1": "8e5661cafeee378065dcee3174eebf7a5c3500d875798e769563d7e293a619a4",
}


def test_tcga_output_matches_the_golden_digest(gdc, tmp_path):
    got = {
        "slides": _digest(gg.datasets.tcga(["TCGA-AAA", "TCGA-BBB"], data_dir=tmp_path, base_url=gdc.url)),
        "no_slides_n1": _digest(gg.datasets.tcga(["TCGA-BBB", "TCGA-AAA"], n_cases=1, data_dir=tmp_path,
                                                 base_url=gdc.url, slides=False)),
    }
    assert got == GOLDEN_DIGESTS
