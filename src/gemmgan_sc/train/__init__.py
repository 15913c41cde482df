"""Lightning training plans (WGAN-GP with manual optimisation, VAE) and the device-resident condition bank."""

from ._bank import ConditionBank

__all__ = ["ConditionBank"]
