"""Sampling: transfer schedules, precision-explicit categorical draws, the batched decoding engine
(LCR / RCR / random remasking), and the exact samplers of the time-agnostic MDM paper."""

from .ancestral import AncestralOutput, ancestral_sample
from .categorical import gumbel_argmax, gumbel_noise, sample_categorical_mdlm, token_confidence
from .fhs import FHSOutput, first_hitting_sample
from .generate import DecodeSettings, GenerationOutput, Trajectory, generate
from .schedules import transfer_counts

__all__ = [
    "AncestralOutput",
    "DecodeSettings",
    "FHSOutput",
    "ancestral_sample",
    "first_hitting_sample",
    "GenerationOutput",
    "Trajectory",
    "generate",
    "gumbel_argmax",
    "gumbel_noise",
    "sample_categorical_mdlm",
    "token_confidence",
    "transfer_counts",
]
