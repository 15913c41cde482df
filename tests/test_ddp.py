"""Multi-process training (DDP over gloo on the CPU): the processes see disjoint rows and end with one model."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import gemmgan_sc as gg
from cohorts import SMALL, make_cohort

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import anndata as ad, lightning.pytorch as pl, torch
    import gemmgan_sc as gg
    torch.set_num_threads(1)
    gg.settings.progress_bar = False

    class Rows(pl.Callback):
        rows = []
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            if trainer.current_epoch == 0:
                self.rows.extend(batch[0].tolist())

    adata = ad.read_h5ad(sys.argv[1])
    model = gg.GeMMGAN(adata, **{small})
    rows = Rows()
    model.train(max_epochs=2, batch_size=8, n_critic=2, accelerator="cpu", devices=2, strategy="ddp", seed=0,
                callbacks=[rows])
    checksum = float(sum(p.double().sum() for p in model.networks.parameters()))
    out = {{"rank": model.global_rank, "rows": rows.rows, "checksum": checksum, "epochs": len(model.history)}}
    with open(sys.argv[2] + f"/rank{{model.global_rank}}.json", "w") as fh:
        json.dump(out, fh)
    """
)


@pytest.mark.slow
def test_ddp_two_cpu_processes(tmp_path):
    adata, store = make_cohort(tmp_path, n=40, decided_by="image")
    gg.GeMMGAN.setup_anndata(adata, patch_store=store)
    adata.write_h5ad(tmp_path / "a.h5ad")
    script = tmp_path / "ddp_train.py"
    script.write_text(SCRIPT.format(small=repr(SMALL)))
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parent), PYTHONWARNINGS="ignore")
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "a.h5ad"), str(tmp_path)], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    # each process drew its own rows: together the 32 training rows, no row twice
    rows0, rows1 = set(ranks[0]["rows"]), set(ranks[1]["rows"])
    assert rows0 and rows1 and not rows0 & rows1
    assert len(rows0 | rows1) == 32
    # gradients were averaged: both processes end with the same weights
    assert np.isclose(ranks[0]["checksum"], ranks[1]["checksum"], rtol=0, atol=1e-6)
    assert ranks[0]["epochs"] == ranks[1]["epochs"] == 2
