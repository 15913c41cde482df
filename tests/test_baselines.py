import numpy as np
import pytest

import gemmgan_sc as gg
from cohorts import make_cohort

TINY = dict(n_latent=8, hidden=(32, 32))


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    adata, _ = make_cohort(tmp_path_factory.mktemp("b"), n=100, with_image=False, with_text=False)
    return adata


def _nearest_group_accuracy(adata, synth):
    """Share of synthetic profiles nearer (marker genes) to their own label's real mean than to the other's."""
    groups = adata.obs["group"].astype(str).to_numpy()
    means = {g: adata.X[groups == g, :20].mean(0) for g in np.unique(groups)}
    labels = synth.obs["group"].astype(str).to_numpy()
    names = sorted(means)
    d = np.stack([np.linalg.norm(synth.X[:, :20] - means[g], axis=1) for g in names], axis=1)
    return float((np.array(names)[d.argmin(1)] == labels).mean())


@pytest.mark.parametrize("cls,epochs", [(gg.CondWGANGP, 20), (gg.CVAE, 40)])
def test_label_conditioned_models_follow_their_labels(cohort, cls, epochs, tmp_path):
    cls.setup_anndata(cohort, labels_keys=["group"])
    model = cls(cohort, **TINY).train(max_epochs=epochs, batch_size=32, lr=1e-3, seed=0)
    synth = model.sample(seed=1)
    assert synth.n_obs == len(model.split["train"])  # default: the training rows
    assert _nearest_group_accuracy(cohort, synth) > 0.9
    counts = model.sample(labels={"group": {"g0": 7, "g1": 4}}, seed=0)
    assert counts.obs["group"].value_counts().to_dict() == {"g0": 7, "g1": 4}
    assert _nearest_group_accuracy(cohort, counts) > 0.9
    with pytest.raises(ValueError, match="Unknown category"):
        model.sample(labels={"group": {"g7": 1}})
    path = model.save(tmp_path / "m")
    loaded = gg.models.BaseGenerativeModel.load(path, adata=cohort)
    assert type(loaded) is cls
    np.testing.assert_array_equal(loaded.sample(seed=2).X, model.sample(seed=2).X)


@pytest.mark.parametrize("cls", [gg.WGANGP, gg.BetaVAE])
def test_unconditional_models_train_sample_save(cohort, cls, tmp_path):
    cls.setup_anndata(cohort)
    model = cls(cohort, **TINY).train(max_epochs=2, batch_size=32, seed=0)
    assert len(model.history) == 2
    synth = model.sample(seed=0)
    assert synth.n_obs == len(model.split["train"]) and synth.obs["synthetic"].all()
    assert model.sample(n_samples=5, seed=0).n_obs == 5
    with pytest.raises(ValueError, match="n_samples"):
        model.sample(n_samples=0)
    loaded = cls.load(model.save(tmp_path / "m"), adata=cohort)
    np.testing.assert_array_equal(loaded.sample(n_samples=4, seed=3).X, model.sample(n_samples=4, seed=3).X)


def test_label_models_need_labels_and_load_checks_class(cohort, tmp_path):
    with pytest.raises(ValueError, match="labels_keys"):
        gg.CVAE.setup_anndata(cohort)
    gg.WGANGP.setup_anndata(cohort)
    with pytest.raises(ValueError, match="set up for WGANGP"):
        gg.CVAE(cohort)
    model = gg.WGANGP(cohort, **TINY).train(max_epochs=1, batch_size=50)
    path = model.save(tmp_path / "w")
    with pytest.raises(ValueError, match="holds a WGANGP"):
        gg.CVAE.load(path, adata=cohort)


def test_every_model_goes_through_metrics_evaluate(cohort):
    for cls, kw in [(gg.WGANGP, {}), (gg.CVAE, {"labels_keys": ["group"]})]:
        cls.setup_anndata(cohort, **kw)
        model = cls(cohort, **TINY).train(max_epochs=2, batch_size=50, seed=0)
        ref = model.sample(indices=[0, 1, 2], seed=0)
        assert list(ref.obs["source_obs"]) == list(cohort.obs_names[:3])
        table = gg.metrics.evaluate(model, cohort, n_runs=1, label_keys=["group"], classifiers=("logreg",))
        assert {"metric", "classifier", "label", "mean", "std"} <= set(table.columns) and len(table) > 3
