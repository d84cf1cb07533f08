"""maskdiff: a reproducible pipeline for masked-diffusion LM reasoning (MDPO, RCR, FHS)."""

__version__ = "0.1.0"
