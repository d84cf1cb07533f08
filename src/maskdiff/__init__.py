"""maskdiff: a reproducible pipeline for masked-diffusion LM reasoning (MDPO, RCR, FHS)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("maskdiff")  # one source: pyproject.toml's [project] version
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
