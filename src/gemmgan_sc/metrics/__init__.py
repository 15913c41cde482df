"""Fidelity, detectability, utility and privacy of synthetic expression (``gg.metrics``)."""
# Each line below imports one module's public functions.
from ._classifiers import CLASSIFIERS, make_classifier
from ._conditional import ConditionalFidelity, conditional_fidelity
from ._correlation import correlation_gamma, correlation_mse
from ._detectability import detectability
from ._evaluate import evaluate, evaluate_samples, metrics_table
from ._fidelity import density_coverage, fidelity, precision_recall
from ._frechet import frechet_distance, sd_ratio
from ._image import ImageScore, image_features, image_frechet, image_kid, tile_retrieval
from ._privacy import privacy
from ._utility import utility

__all__ = [
    "CLASSIFIERS",
    "ConditionalFidelity",
    "conditional_fidelity",
    "correlation_gamma",
    "correlation_mse",
    "density_coverage",
    "detectability",
    "evaluate",
    "evaluate_samples",
    "fidelity",
    "frechet_distance",
    "ImageScore",
    "image_features",
    "image_frechet",
    "image_kid",
    "tile_retrieval",
    "make_classifier",
    "metrics_table",
    "precision_recall",
    "privacy",
    "sd_ratio",
    "utility",
]
