"""The precision study: fp32 tail truncation (exact enumeration, Monte Carlo, analytic) and the model study.

Why the truncated regime is checked by exhaustive enumeration rather than Monte Carlo: a class can
only be truncated if its probability per draw is below ~g = 2^-24, so every truncated-tail event
costs ~1/g = 1.7e7 sampled elements; a statistically meaningful Monte-Carlo check needs ~1e9-1e10
elements (minutes). Enumerating all 2^24 float32 uniforms through the sampler's own arithmetic gives
the exact fp32 probabilities in about a second. Monte Carlo is used where it is cheap: the hard
bound (fp32 can *never* draw a class with q / q_mask < E_min / E_max ~ 2.6e-9) and a moderate case.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from maskdiff.precision import (
    ModelFreeSettings,
    ModelStudySettings,
    analytic_model_free,
    analytic_row,
    fit_effective_temperature,
    fp32_exact_unmask_probability,
    mdlm_draw_probabilities,
    model_study,
    simulate_draws,
    simulate_row,
    token_entropies,
    write_precision_csv,
    zipf_distribution,
)
from maskdiff.seeding import step_generator
from maskdiff.tasks.countdown import generate_countdown

G = 2.0**-24


# ---------------------------------------------------------------- analytic model vs exact fp32 arithmetic
@pytest.mark.parametrize("x", [0.5, 2.0, 6.0])
def test_lattice_formula_matches_exhaustive_fp32_two_classes(x):
    """One token with q = g / x against a mask class of 1: formula within 0.1% of the exact value,
    and far below the fp64 (= exact sampling) probability once x >~ 1."""
    q = G / x
    exact = fp32_exact_unmask_probability(1.0, q)
    predicted = mdlm_draw_probabilities(np.array([q, 1.0]), "fp32")[0]
    assert exact == pytest.approx(predicted, rel=1e-3)
    fp64 = mdlm_draw_probabilities(np.array([q, 1.0]), "fp64")[0]
    assert fp64 == pytest.approx(q / (1 + q), rel=1e-9)
    assert exact / fp64 == pytest.approx(x / math.expm1(x), rel=1e-2)  # the truncation factor


@pytest.mark.parametrize("x", [1.0, 5.0])
def test_mean_field_matches_exhaustive_fp32_many_tokens(x):
    """Mask + n equal tokens holding 1% of the mass (competing tokens are lattice-truncated too):
    the renormalised mean-field formula is within 3% of the exact fp32 probability. (It is only
    approximate when truncated tokens hold a large share: 30% at x = 5 gives 0.014 vs 0.023.)"""
    q = G / x
    n = round(0.01 / q)
    exact = fp32_exact_unmask_probability(1 - n * q, q, n)
    per_token = mdlm_draw_probabilities(np.array([q, 1 - n * q]), "fp32", multiplicity=np.array([n, 1]))[0]
    assert exact == pytest.approx(n * per_token, rel=0.03)
    assert exact < 0.6 * n * q  # well below what exact sampling gives


def test_fp32_cannot_draw_below_hard_bound_fp64_can():
    """q_token / q_mask = 2e-9 < E_min / E_max = 5.97e-8 / 23.03: no fp32 uniform lets a token win.

    Monte Carlo (16k tokens x 512 draws) sees exactly 0 unmasks in fp32, as the enumeration proves
    for every draw; fp64 draws such tokens at rate sum(q) (= 3.3e-5 per draw here, so the fp64 side
    is shown on a tail 1000x heavier, where both precisions agree: the truncation is about q < ~g,
    not a broken sampler)."""
    n, q = 2**14, 2e-9
    classes = np.append(np.full(n, q), 1 - n * q)
    counts = simulate_draws(classes, "fp32", 512, step_generator(0, "bound", "fp32"))
    assert counts[-1] == 512
    assert fp32_exact_unmask_probability(1 - n * q, q, n) == 0.0
    assert 1 - mdlm_draw_probabilities(classes, "fp64")[-1] == pytest.approx(n * q, rel=1e-6)

    heavy = np.append(np.full(n, 1000 * q), 1 - n * 1000 * q)  # unmask rate 0.033, q = 2e-6 >> g
    draws = 4096
    for precision in ("fp32", "fp64"):
        counts = simulate_draws(heavy, precision, draws, step_generator(0, "heavy", precision))
        rate = n * 1000 * q
        unmasks = draws - counts[-1]
        assert abs(unmasks - draws * rate) < 4 * math.sqrt(draws * rate)


def test_untruncated_case_simulation_matches_analytic():
    """V = 1024, Zipf(1), N = 16: the smallest per-step probability (~8e-6) is far above the fp32
    floor (~6e-8), so both precisions sample exactly here: ~1000 unmask events per precision; the
    simulated statistics agree with the analytic ones within 4 standard errors (unmask rate, tail
    mass), 0.1 in T, and 3% in the bias-matched entropy ratio. (The truncated regime is checked by
    the exhaustive fp32 enumeration tests.)"""
    settings = ModelFreeSettings(target_unmasks=1000, max_elements=2**25)
    for precision in ("fp32", "fp64"):
        row = simulate_row(1024, 1.0, 16, 1.0, precision, settings)
        draws, unmasks = row["draws"], row["unmasks"]
        p = row["pred_unmask_prob"]
        assert abs(row["unmask_freq"] - p) < 4 * math.sqrt(p * (1 - p) / draws)
        tail = row["pred_cond_tail_mass"]
        assert abs(row["cond_tail_mass"] - tail) < 4 * math.sqrt(tail * (1 - tail) / unmasks)
        assert abs(row["eff_temperature"] - row["pred_eff_temperature"]) < 0.1
        assert abs(row["entropy_ratio"] - row["pred_entropy_ratio"]) < 0.03


def test_analytic_fp32_lowers_temperature_at_large_vocab_and_n():
    small = analytic_row(32, 1.0, 4096, 1.0, "fp32", 0.01)
    assert small["entropy_ratio"] > 0.995  # a small vocabulary is barely affected
    ratios = [analytic_row(131072, 1.0, n, 1.0, "fp32", 0.01)["entropy_ratio"] for n in (16, 256, 4096)]
    assert ratios[0] > ratios[1] > ratios[2] and ratios[2] < 0.7
    big32 = analytic_row(131072, 1.0, 4096, 1.0, "fp32", 0.01)
    big64 = analytic_row(131072, 1.0, 4096, 1.0, "fp64", 0.01)
    assert big32["eff_temperature"] < 0.85 and big32["cond_tail_mass"] < 0.1 * big32["tail_mass_pi"]
    assert big64["entropy_ratio"] > 0.99999 and big64["eff_temperature"] == pytest.approx(1.0, abs=1e-3)


def test_fit_effective_temperature_recovers_tempered_distribution():
    pi = zipf_distribution(5000, 1.1)
    for temperature in (0.6, 1.0, 1.7):
        tempered = pi ** (1 / temperature)
        assert fit_effective_temperature(np.log(pi), tempered / tempered.sum()) == pytest.approx(temperature, rel=1e-3)


def test_analytic_frame_covers_grid():
    settings = ModelFreeSettings(analytic_vocab_sizes=(32, 1 << 20), analytic_steps=(10, 1000), precisions=("fp32", "fp64"))
    frame = analytic_model_free(settings)
    assert len(frame) == 2 * 2 * 2 and set(frame["part"]) == {"model_free_analytic"}
    assert frame["entropy_ratio"].between(0, 1 + 1e-9).all()


# ---------------------------------------------------------------- model study
def test_token_entropies_stop_at_first_eos():
    eos = 2
    completions = torch.tensor([[5, 5, 6, 6, eos, 7], [eos, 5, 6, 7, 8, 9], [5, 6, 7, 8, 5, 6]])
    entropy, lengths, corpus = token_entropies(completions, eos)
    assert lengths.tolist() == [4, 0, 6]
    assert entropy[0] == pytest.approx(math.log(2)) and entropy[1] == 0.0
    assert entropy[2] == pytest.approx(-(2 * (1 / 3) * math.log(1 / 3) + 2 * (1 / 6) * math.log(1 / 6)))
    pooled = np.array([4, 4, 1, 1]) / 10  # 5: 2+2, 6: 2+2, 7: 1, 8: 1
    assert corpus == pytest.approx(float(-(pooled * np.log(pooled)).sum()))


MODEL_COLUMNS = {
    "part", "mode", "sampler", "precision", "steps", "steps_per_length", "tokens_per_call", "gen_length", "n",
    "entropy_mean", "entropy_sem", "corpus_entropy", "mean_length", "accuracy", "accuracy_ci_low",
    "accuracy_ci_high", "nfe_mean", "nfe_calls", "wall_time_s", "temperature", "seed",
}


@pytest.fixture(scope="module")
def study_inputs():
    records = generate_countdown(3, seed=0, split="test")
    settings = ModelStudySettings(
        gen_length=6, step_multiples=(1, 4), fhs_tokens_per_call=(1, 2), num_unconditional=3, batch_size=2, seed=3
    )
    return records, settings


def test_model_study_columns_and_costs(tiny_model, tokenizer, ids, study_inputs, tmp_path):
    records, settings = study_inputs
    frame = model_study(tiny_model, tokenizer, ids, records, settings)
    assert MODEL_COLUMNS <= set(frame.columns)
    assert len(frame) == 2 * (2 * 2 + 2)  # modes x (ancestral N x precision + FHS variants)
    fhs = frame[frame["sampler"] == "fhs"].set_index(["mode", "tokens_per_call"])["nfe_mean"]
    assert fhs[("prompted", 1)] == 6 and fhs[("prompted", 2)] == 3
    ancestral = frame[frame["sampler"] == "ancestral"]
    assert (ancestral["nfe_mean"] <= settings.gen_length).all() and (ancestral["nfe_mean"] >= 1).all()
    prompted = frame[frame["mode"] == "prompted"]
    assert prompted["accuracy"].between(0, 1).all()
    assert (prompted["accuracy_ci_low"] <= prompted["accuracy"] + 1e-12).all()
    unconditional = frame[frame["mode"] == "unconditional"]
    assert unconditional["accuracy"].isna().all() and prompted["valid_rate"].isna().all()
    assert unconditional["valid_rate"].between(0, 1).all() and (unconditional["gen_length"] == 6).all()
    assert (frame["entropy_mean"] >= 0).all() and (frame["n"] == 3).all()

    # same settings, same results, even when run alone (each batch has its own labelled stream)
    subset = replace(settings, modes=("unconditional",), step_multiples=(4,), precisions=("fp32",), fhs_tokens_per_call=(2,))
    again = model_study(tiny_model, tokenizer, ids, records, subset)
    stable = [c for c in frame.columns if c != "wall_time_s"]
    key = ["mode", "sampler", "precision", "steps", "tokens_per_call"]
    merged = again[stable].merge(frame[stable], on=key, suffixes=("", "_full"))
    assert len(merged) == 2
    for column in ("entropy_mean", "corpus_entropy", "mean_length", "nfe_mean", "nfe_calls"):
        assert (merged[column] == merged[f"{column}_full"]).all(), column

    # Unconditional samples may be longer than the task's answers (whole examples); N scales with them.
    longer = replace(settings, modes=("unconditional",), unconditional_length=9, precisions=("fp64",), fhs_tokens_per_call=(1,))
    wide = model_study(tiny_model, tokenizer, ids, records, longer)
    assert (wide["gen_length"] == 9).all()
    assert sorted(wide["steps"].dropna()) == [9, 36] and (wide.loc[wide["sampler"] == "fhs", "nfe_mean"] == 9).all()

    path = tmp_path / "precision.csv"
    sim = pd.DataFrame([{"part": "model_free_sim", "vocab": 8, "precision": "fp32"}])
    table = write_precision_csv([sim, frame], path)
    read = pd.read_csv(path)
    assert list(read.columns)[0] == "part" and len(read) == len(table) == 1 + len(frame)
    assert set(read["part"]) == {"model_free_sim", "model"}
