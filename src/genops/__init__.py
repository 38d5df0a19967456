"""genops: train, check and ship generative models (library; never imports kfp)."""

__version__ = "0.1.0"
