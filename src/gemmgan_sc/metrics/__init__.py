"""Fidelity, detectability, utility and privacy of synthetic expression (``gg.metrics``)."""
# Each line below imports one module's public functions.
