import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pytest

import gemmgan_sc as gg
from cohorts import SMALL, make_cohort

EPOCHS = 6
TRAIN = dict(batch_size=16, lr=1e-3, n_critic=2, seed=3, restore_best=False, early_stopping=False)

SCRIPT = textwrap.dedent(
    """
    import sys, time
    import anndata as ad, lightning.pytorch as pl, torch
    import gemmgan_sc as gg
    torch.set_num_threads(1)
    gg.settings.progress_bar = False

    class Slow(pl.Callback):
        def on_train_epoch_end(self, trainer, module):
            time.sleep(1.0)

    adata = ad.read_h5ad(sys.argv[1])
    model = gg.GeMMGAN(adata, **{small})
    model.train(max_epochs={epochs}, checkpoint_dir=sys.argv[2], checkpoint_every=1, callbacks=[Slow()], **{train})
    """
)


@pytest.fixture
def setup_h5ad(tmp_path):
    adata, store = make_cohort(tmp_path, n=48, decided_by="image")
    gg.GeMMGAN.setup_anndata(adata, patch_store=store)
    path = tmp_path / "a.h5ad"
    adata.write_h5ad(path)
    return path


def test_killed_training_resumes_to_the_same_history(setup_h5ad, tmp_path):
    ckpt = tmp_path / "ckpt"
    script = tmp_path / "train.py"
    script.write_text(SCRIPT.format(small=repr(SMALL), epochs=EPOCHS, train=repr(TRAIN)))
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parent))
    proc = subprocess.Popen([sys.executable, str(script), str(setup_h5ad), str(ckpt)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    meta = ckpt / "last" / "checkpoint.json"
    deadline = time.time() + 120
    while not meta.is_file() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    out = proc.communicate()[0].decode()
    assert meta.is_file(), out
    done = json.loads(meta.read_text())["meta"]["checkpoint"]["epochs_done"]
    assert 1 <= done < EPOCHS, "the process should be killed mid-run"

    adata = ad.read_h5ad(setup_h5ad)
    resumed = gg.GeMMGAN(adata, **SMALL)
    resumed.train(max_epochs=EPOCHS, checkpoint_dir=ckpt, resume=True, **TRAIN)
    history = resumed.history
    assert list(history["epoch"]) == list(range(EPOCHS))

    straight = gg.GeMMGAN(ad.read_h5ad(setup_h5ad), **SMALL).train(max_epochs=EPOCHS, **TRAIN)
    cols = ["critic_loss", "generator_loss", "gradient_penalty", "val_frechet", "lr"]
    np.testing.assert_allclose(history[cols].to_numpy(), straight.history[cols].to_numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(resumed.sample(seed=0).X, straight.sample(seed=0).X, rtol=1e-4, atol=1e-5)


def test_resume_checks(setup_h5ad, tmp_path):
    adata = ad.read_h5ad(setup_h5ad)
    model = gg.GeMMGAN(adata, **SMALL)
    with pytest.raises(ValueError, match="checkpoint_dir"):
        model.train(max_epochs=1, resume=True)
    model.train(max_epochs=2, checkpoint_dir=tmp_path / "c", checkpoint_every=1, **TRAIN)
    files = sorted(p.name for p in (tmp_path / "c" / "last").iterdir())
    assert files == ["checkpoint.json", "checkpoint.safetensors"]
    other = gg.GeMMGAN(adata, **{**SMALL, "d_model": 8})
    with pytest.raises(ValueError, match="hyperparameters"):
        other.train(max_epochs=3, checkpoint_dir=tmp_path / "c", resume=True)
    again = gg.GeMMGAN(adata, **SMALL)
    again.train(max_epochs=2, checkpoint_dir=tmp_path / "c", resume=True)  # already complete: nothing to do
    assert len(again.history) == 2 and again.is_trained
