"""The precision study: how float32 categorical sampling truncates the tail (Zheng et al., 2409.02908).

**(a) Model-free.** A known distribution ``pi_v ∝ v^-s`` (Zipf-like, v = 1..V) competes with a mask
class exactly as at one step of the ancestral sampler with the linear schedule at time ``t`` with
``N`` steps: ``q_v = pi_v r``, ``q_mask = 1 - r``, ``r = 1 / (N t)``. Draws use
:func:`~maskdiff.sampling.categorical.sample_categorical_mdlm` (MDLM's ``argmax q_j / E_j``,
``E_j = 1e-10 - log(u_j + 1e-10)``) in fp32 and fp64.

Analytic model (derived here, checked against an exhaustive enumeration of the fp32 arithmetic and
against simulation). ``torch.rand`` puts ``u`` on the grid ``k g`` with ``g = 2^-24`` (fp32) or
``2^-53`` (fp64), so for small ``E`` the draw is an Exp(1) variable rounded *up* to the lattice
``m g`` (each point with probability ~``g``), plus (fp32 only) a ``c = 1e-10`` offset. Class ``j``
arrives at ``A_j = E_j / q_j``; treating the competitors as a continuous race with total rate ``Q - q_j``
(``Q = sum q``, mean field) and summing the geometric series over the lattice gives::

    P(j) = exp(-c (Q - q_j) / q_j) * (e^g - 1) / (e^{x_j} - 1),     x_j = g Q / q_j

which is ``q_j / Q`` when ``q_j >> g Q`` and ``~ g e^{-x_j}`` (vanishing) when ``q_j << g Q``.
(The often-quoted ``g e^{-x} / (1 - (1 - g) e^{-x})`` agrees for small ``q_j`` but tends to
``q_j / (Q + q_j)`` rather than ``q_j / Q`` for large ones.) Probabilities are renormalised over all
classes (mass the tail cannot take goes to the others). Checked against exhaustive enumeration
(:func:`fp32_exact_unmask_probability`): within 1e-4 for one small class against the mask, within
3% when truncated classes hold <= 1% of Q (the Zipf study's regime, since their mass is at most
``r``); it underestimates them when they hold a large share (30% at x = 5: 0.014 vs 0.023), because
truncated competitors only arrive on their lattice and compete less than the mean field assumes.
fp64 is ``q_j / Q`` to ~1e-16: there ``u + 1e-10`` is exact near 1, the two ``1e-10`` cancel and
``E ~ 1 - u`` has no floor.
From these probabilities: the unmask probability, and the conditional token distribution given
unmasking, whose entropy, tail mass and effective temperature are reported for vocab sizes far
beyond what simulation can reach. Cost note: any fp32 deviation needs classes with probability
below ``g`` per draw, so each truncated-tail event costs ~``1/g`` = 1.7e7 sampled elements; the
simulation is budgeted (``max_elements``) and reports how many unmask events it saw.

**(b) On a trained model** (:func:`model_study`): prompted (Countdown) and unconditional sampling at
temperature 1 with the ancestral sampler for ``N`` = multiples of ``L`` in fp32 and fp64, and FHS
(fp64, exact and parallel). Unconditional sampling uses an empty prompt (only ``L`` masks);
``unconditional_prompt="eos"`` uses a single EOS token instead for models that need one.

CSV columns (:func:`write_precision_csv`; one file, ``part`` says which rows):

* all: ``part`` (``model_free_sim`` | ``model_free_analytic`` | ``model``), ``precision``, ``seed``.
* model-free: ``vocab``, ``zipf_s``, ``steps`` (N), ``t``, ``rate`` (r = 1/(N t), the per-step unmask
  probability), ``draws`` (sim), ``unmasks`` (sim), ``unmask_freq`` (sim: unmasks/draws; analytic:
  the analytic probability), ``pred_unmask_prob`` (sim rows: analytic prediction), ``entropy_pi``
  (H(pi), nats), ``cond_entropy`` (entropy of the token distribution given unmasking: plug-in
  estimate from the sim counts, exact for analytic rows), ``ref_entropy`` (what exact sampling
  shows under the same estimator: expected plug-in entropy of pi at ``unmasks`` samples for sim
  rows, H(pi) for analytic rows), ``entropy_ratio`` = cond_entropy / ref_entropy,
  ``pred_cond_entropy`` and ``pred_entropy_ratio`` (sim rows: expected plug-in entropy of the
  analytic conditional at ``unmasks`` samples, and its ratio), ``tail_k`` (top-k of pi, k =
  ``tail_frac`` V), ``tail_mass_pi`` (pi's mass outside the top k), ``cond_tail_mass`` (same for
  the conditional), ``pred_cond_tail_mass``, ``eff_temperature`` (ML fit of ``pi^(1/T) / Z`` to the
  conditional), ``pred_eff_temperature``, ``elapsed_s``.
* model: ``mode`` (prompted | unconditional), ``sampler`` (ancestral | fhs), ``steps`` (N; empty
  for FHS), ``steps_per_length`` (N / L), ``tokens_per_call`` (FHS k), ``gen_length``, ``n``,
  ``entropy_mean`` / ``entropy_sem`` (per-sequence entropy of the empirical unigram distribution of
  the generated tokens before the first EOS, nats; an empty sequence counts as 0),
  ``corpus_entropy`` (the unigram entropy of all those tokens pooled), ``mean_length``,
  ``accuracy``, ``accuracy_ci_low``, ``accuracy_ci_high`` (95% Wilson; prompted only), ``nfe_mean``
  (network evaluations per row), ``nfe_calls`` (batched network invocations), ``wall_time_s``,
  ``temperature``.
"""

from __future__ import annotations

import math
import time
import numpy as np
import pandas as pd
import torch
from scipy.optimize import minimize_scalar
from scipy.special import logsumexp
from .progress import progress as progress_bar

from .batching import decode_completions, encode_prompts, prompt_batches
from .io import atomic_path
from .precision_settings import ModelFreeSettings, ModelStudySettings
from .models.forward import supports_padding
from .models.loading import TokenIds
from .rewards import score_completions
from .sampling.ancestral import ancestral_sample
from .sampling.categorical import precision_dtype, sample_categorical_mdlm
from .sampling.fhs import first_hitting_sample
from .seeding import step_generator
from .stats import wilson_interval
from .tasks import reference_of, reward_kind
from .tasks.unconditional import valid_example

LATTICE = {"fp32": 2.0**-24, "fp64": 2.0**-53}  # spacing of torch.rand's uniforms
# MDLM's "1e-10 - log(u + 1e-10)": in fp32 ``u + 1e-10`` rounds back to ``u`` near 1, so the smallest
# draws sit 1e-10 above the lattice; in fp64 the two 1e-10 cancel (E ~ 1 - u) and no floor remains.
EXP_FLOOR = {"fp32": 1e-10, "fp64": 0.0}
PARTS = ("model_free_sim", "model_free_analytic", "model")


# ---------------------------------------------------------------- model-free: distributions
def zipf_distribution(vocab: int, s: float) -> np.ndarray:
    """``pi_v ∝ v^-s`` for v = 1..vocab (float64, sorted descending)."""
    log_w = -s * np.log(np.arange(1, vocab + 1, dtype=np.float64))
    return np.exp(log_w - logsumexp(log_w))


def unmask_rate(steps: int, t: float) -> float:
    """Per-step unmask probability of the linear schedule at time t with N steps: 1 / (N t)."""
    rate = 1.0 / (steps * t)
    if not 0 < rate <= 1:
        raise ValueError(f"N t must be >= 1, got N={steps}, t={t}")
    return rate


def step_classes(pi: np.ndarray, rate: float) -> np.ndarray:
    """``q`` over tokens then the mask class (last): ``[pi * r, 1 - r]``."""
    return np.append(pi * rate, 1.0 - rate)


def mdlm_draw_probabilities(q: np.ndarray, precision: str, multiplicity: np.ndarray | None = None) -> np.ndarray:
    """Analytic probability that ``sample_categorical_mdlm(q, precision)`` returns each class.

    ``multiplicity[j]`` (default 1) says how many identical classes ``q[j]`` stands for (the result is
    the probability of each one of them), so a huge vocabulary of repeated values stays cheap."""
    g = LATTICE[precision]
    q = np.asarray(q, dtype=np.float64)
    mult = np.ones_like(q) if multiplicity is None else np.asarray(multiplicity, dtype=np.float64)
    total = float((q * mult).sum())
    out = np.zeros_like(q)
    pos = q > 0
    with np.errstate(over="ignore"):
        x = g * total / q[pos]
        out[pos] = math.expm1(g) / np.expm1(x) * np.exp(-EXP_FLOOR[precision] * (total - q[pos]) / q[pos])
    return out / (out * mult).sum()


def fp32_exact_unmask_probability(q_mask: float, q_token: float, n_tokens: int = 1, chunk: int = 2**20) -> float:
    """Exact probability that fp32 ``sample_categorical_mdlm([q_token] * n_tokens + [q_mask])`` does
    not return the mask class (last), by pushing all 2^24 float32 uniforms through the same
    arithmetic; argmax ties go to the first index, i.e. to a token. Validates the lattice model
    without Monte-Carlo noise (whose cost, ~1/g samples per truncated event, is prohibitive)."""
    u = torch.arange(2**24, dtype=torch.float32) * 2.0**-24  # exact: integers < 2^24 fit in float32
    exponential = 1e-10 - (u + 1e-10).log()  # non-increasing in u, so the ratios below are sorted
    token = torch.tensor(q_token, dtype=torch.float32) / exponential
    mask_ratio = torch.tensor(q_mask, dtype=torch.float32) / exponential
    mask_wins = 0.0
    for start in range(0, 2**24, chunk):
        below = torch.searchsorted(token, mask_ratio[start : start + chunk], side="left").double() / 2.0**24
        mask_wins += float(torch.exp(n_tokens * torch.log(below)).sum())  # P(every token ratio < mask's)
    return 1.0 - mask_wins / 2.0**24


# ---------------------------------------------------------------- model-free: statistics
def plugin_entropy(weights: np.ndarray) -> float:
    w = np.asarray(weights, dtype=np.float64)
    total = w.sum()
    if total <= 0:
        return float("nan")
    p = w[w > 0] / total
    return float(-(p * np.log(p)).sum())


def expected_plugin_entropy(p: np.ndarray, n: int, generator: torch.Generator, reps: int = 8) -> float:
    """Mean plug-in entropy of ``n`` draws from ``p``: the bias-matched reference for a sample of n."""
    if n <= 0:
        return float("nan")
    probs = torch.as_tensor(p, dtype=torch.float64)
    values = []
    for _ in range(reps):
        draws = torch.multinomial(probs, n, replacement=True, generator=generator)
        values.append(plugin_entropy(torch.bincount(draws, minlength=len(p)).numpy()))
    return float(np.mean(values))


def fit_effective_temperature(log_pi: np.ndarray, weights: np.ndarray, bounds: tuple[float, float] = (0.02, 50.0)) -> float:
    """ML temperature T of the family ``pi^(1/T) / Z(T)`` for counts (or probabilities) ``weights``.

    Minimises the cross-entropy ``-sum w_v log p_T(v)`` over ``log T`` (bounded)."""
    w = np.asarray(weights, dtype=np.float64)
    if w.sum() <= 0:
        return float("nan")
    w = w / w.sum()
    keep = w > 0
    mean_log = float((w[keep] * log_pi[keep]).sum())

    def loss(log_t: float) -> float:
        a = math.exp(-log_t)
        return -(a * mean_log - logsumexp(a * log_pi))

    res = minimize_scalar(loss, bounds=(math.log(bounds[0]), math.log(bounds[1])), method="bounded",
                          options={"xatol": 1e-6})
    return float(math.exp(res.x))


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else float("nan")  # nan for fewer than 2 unmasks (no entropy to compare)


def tail_size(vocab: int, tail_frac: float) -> int:
    return max(1, math.ceil(tail_frac * vocab))


# ---------------------------------------------------------------- model-free: simulation and analytic
def simulate_draws(
    q: np.ndarray, precision: str, draws: int, generator: torch.Generator, chunk_bytes: int = 2**29
) -> np.ndarray:
    """Counts per class of ``draws`` independent ``sample_categorical_mdlm`` draws, chunked so the
    temporaries (~6 per element) stay below ``chunk_bytes``."""
    probs = torch.as_tensor(q, dtype=torch.float64).to(precision_dtype(precision))
    rows = max(1, chunk_bytes // (len(q) * 8 * 6))
    counts = torch.zeros(len(q), dtype=torch.long)
    for start in range(0, draws, rows):
        n = min(rows, draws - start)
        counts += torch.bincount(sample_categorical_mdlm(probs.expand(n, -1), precision, generator), minlength=len(q))
    return counts.numpy()


def _conditional_stats(cond: np.ndarray, log_pi: np.ndarray, k: int) -> dict:
    total = cond.sum()
    return {
        "cond_tail_mass": float(cond[k:].sum() / total) if total > 0 else float("nan"),
        "eff_temperature": fit_effective_temperature(log_pi, cond),
    }


def analytic_row(vocab: int, s: float, steps: int, t: float, precision: str, tail_frac: float) -> dict:
    """All statistics of one setting from :func:`mdlm_draw_probabilities` (no sampling)."""
    pi = zipf_distribution(vocab, s)
    rate = unmask_rate(steps, t)
    probs = mdlm_draw_probabilities(step_classes(pi, rate), precision)
    cond = probs[:-1] / probs[:-1].sum()
    k = tail_size(vocab, tail_frac)
    h_pi = plugin_entropy(pi)
    h = plugin_entropy(cond)
    return {
        "part": "model_free_analytic", "vocab": vocab, "zipf_s": s, "steps": steps, "t": t, "rate": rate,
        "precision": precision, "unmask_freq": float(1 - probs[-1]), "entropy_pi": h_pi, "cond_entropy": h,
        "ref_entropy": h_pi, "entropy_ratio": _ratio(h, h_pi), "tail_k": k, "tail_mass_pi": float(pi[k:].sum()),
        **_conditional_stats(cond, np.log(pi), k),
    }


def analytic_model_free(settings: ModelFreeSettings) -> pd.DataFrame:
    rows = [
        analytic_row(v, s, n, t, p, settings.tail_frac)
        for v in settings.analytic_vocab_sizes for s in settings.zipf_s for n in settings.analytic_steps
        for t in settings.times for p in settings.precisions if n * t >= 1
    ]
    return pd.DataFrame(rows)


def simulate_row(vocab: int, s: float, steps: int, t: float, precision: str, settings: ModelFreeSettings) -> dict:
    """One simulated setting, with the analytic predictions for the same sample size next to it."""
    started = time.time()
    pi = zipf_distribution(vocab, s)
    log_pi = np.log(pi)
    rate = unmask_rate(steps, t)
    q = step_classes(pi, rate)
    budget = max(1, settings.max_elements // len(q))
    draws = int(min(budget, max(settings.min_draws, math.ceil(settings.target_unmasks / rate))))
    gen = step_generator(settings.seed, "model-free", vocab, s, steps, t, precision)
    counts = simulate_draws(q, precision, draws, gen, settings.chunk_bytes)
    unmasks = int(draws - counts[-1])
    analytic = analytic_row(vocab, s, steps, t, precision, settings.tail_frac)
    pred = mdlm_draw_probabilities(q, precision)[:-1]
    pred = pred / pred.sum()
    k = tail_size(vocab, settings.tail_frac)
    ref_gen = step_generator(settings.seed, "model-free-reference", vocab, s, steps, t, precision)
    ref_entropy = expected_plugin_entropy(pi, unmasks, ref_gen)
    pred_entropy = expected_plugin_entropy(pred, unmasks, ref_gen)
    cond_entropy = plugin_entropy(counts[:-1])
    return {
        "part": "model_free_sim", "vocab": vocab, "zipf_s": s, "steps": steps, "t": t, "rate": rate,
        "precision": precision, "draws": draws, "unmasks": unmasks, "unmask_freq": unmasks / draws,
        "pred_unmask_prob": analytic["unmask_freq"], "entropy_pi": analytic["entropy_pi"],
        "cond_entropy": cond_entropy, "ref_entropy": ref_entropy, "entropy_ratio": _ratio(cond_entropy, ref_entropy),
        "pred_cond_entropy": pred_entropy, "pred_entropy_ratio": _ratio(pred_entropy, ref_entropy),
        "tail_k": k, "tail_mass_pi": float(pi[k:].sum()), **_conditional_stats(counts[:-1].astype(np.float64), log_pi, k),
        "pred_cond_tail_mass": analytic["cond_tail_mass"], "pred_eff_temperature": analytic["eff_temperature"],
        "seed": settings.seed, "elapsed_s": time.time() - started,
    }


def simulate_model_free(settings: ModelFreeSettings, progress: bool = True) -> pd.DataFrame:
    grid = [
        (v, s, n, t, p) for v in settings.vocab_sizes for s in settings.zipf_s for n in settings.steps
        for t in settings.times for p in settings.precisions if n * t >= 1
    ]
    rows = [simulate_row(*cell, settings) for cell in progress_bar(grid, desc="model-free", disable=not progress, mininterval=5)]
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- model study
def config_label(cfg: dict) -> str:
    if cfg["sampler"] == "fhs":
        return f"fhs-k{cfg['tokens_per_call']}-{cfg['precision']}"
    return f"ancestral-N{cfg['steps']}-{cfg['precision']}"


def token_entropies(completions: torch.Tensor, eos_id: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Per-sequence unigram entropy (nats) of the tokens before the first EOS, their counts, and the
    entropy of all of them pooled. Batched with one scatter (no per-row loops)."""
    ids = completions.long()
    valid = ((ids == eos_id).long().cumsum(dim=-1) == 0).double()
    vocab = int(ids.max()) + 1 if ids.numel() else 1
    counts = torch.zeros((ids.shape[0], vocab), dtype=torch.float64).scatter_add_(1, ids, valid)
    lengths = counts.sum(dim=-1)
    p = counts / lengths.clamp(min=1).unsqueeze(-1)
    entropy = -(p * torch.where(p > 0, p.log(), torch.zeros_like(p))).sum(dim=-1)
    return entropy.numpy(), lengths.numpy(), plugin_entropy(counts.sum(dim=0).numpy())


def _mode_batches(mode: str, tokenizer, model, ids: TokenIds, records: list[dict], s: ModelStudySettings) -> list:
    if mode == "prompted":
        encoded = encode_prompts(tokenizer, [r["prompt"] for r in records], s.chat_template)
        return list(prompt_batches(encoded, s.batch_size, ids.pad, supports_padding(model)))
    if mode != "unconditional":
        raise ValueError(f"unknown mode {mode!r}; choose prompted or unconditional")
    width = {"empty": 0, "eos": 1}[s.unconditional_prompt]
    out = []
    for start in range(0, s.num_unconditional, s.batch_size):
        indices = list(range(start, min(start + s.batch_size, s.num_unconditional)))
        out.append((indices, torch.full((len(indices), width), ids.eos, dtype=torch.long), None))
    return out


def _run_sampler(cfg: dict, model, prompt_ids, attention_mask, ids: TokenIds, length: int, s: ModelStudySettings,
                 generator):
    """``(completions, nfe per row, batched calls)`` for one batch of ``length`` generated positions."""
    if cfg["sampler"] == "fhs":
        out = first_hitting_sample(
            model, prompt_ids, length, ids, generator, attention_mask, temperature=1.0,
            precision=cfg["precision"], tokens_per_call=cfg["tokens_per_call"], schedule=s.schedule,
        )
        return out.completions, torch.full((prompt_ids.shape[0],), float(out.nfe), dtype=torch.float64), out.nfe
    out = ancestral_sample(
        model, prompt_ids, length, ids, cfg["steps"], generator, attention_mask,
        precision=cfg["precision"], schedule=s.schedule,
    )
    return out.completions, out.calls_per_row.double(), out.nfe_calls


def model_study(model, tokenizer, ids: TokenIds, records: list[dict], settings: ModelStudySettings) -> pd.DataFrame:
    """Entropy, accuracy and cost of ancestral (fp32/fp64, N = multiples of L) vs FHS sampling.

    Every batch draws from ``step_generator(seed, "precision-model", mode, label, batch)``, so the
    same settings give identical results on CPU whatever else ran before."""
    s = settings
    if "prompted" in s.modes and not records:
        raise ValueError("prompted sampling needs records")
    configs = {mode: s.sampler_configs(mode) for mode in s.modes}
    batches = {mode: _mode_batches(mode, tokenizer, model, ids, records, s) for mode in s.modes}
    rows = []
    with progress_bar(total=sum(len(batches[m]) * len(configs[m]) for m in s.modes), desc="precision study", mininterval=5) as bar:
        for mode in s.modes:
            n = len(records) if mode == "prompted" else s.num_unconditional
            length = s.length(mode)
            for cfg in configs[mode]:
                label = config_label(cfg)
                completions = torch.empty((n, length), dtype=torch.long)
                nfe = torch.zeros(n, dtype=torch.float64)
                calls = 0
                started = time.time()
                for b, (indices, prompt_ids, attention_mask) in enumerate(batches[mode]):
                    gen = step_generator(s.seed, "precision-model", mode, label, b)
                    done, row_nfe, batch_calls = _run_sampler(cfg, model, prompt_ids, attention_mask, ids, length, s, gen)
                    completions[indices] = done.cpu()
                    nfe[indices] = row_nfe
                    calls += batch_calls
                    bar.update()
                wall = time.time() - started
                rows.append(_model_row(mode, cfg, completions, nfe, calls, wall, tokenizer, ids, records, s))
    return pd.DataFrame(rows)


def _model_row(mode, cfg, completions, nfe, calls, wall, tokenizer, ids, records, s: ModelStudySettings) -> dict:
    entropy, lengths, corpus = token_entropies(completions, ids.eos)
    n = len(entropy)
    row = {
        "part": "model", "mode": mode, "sampler": cfg["sampler"], "precision": cfg["precision"],
        "steps": cfg["steps"], "steps_per_length": cfg["steps"] / s.length(mode) if cfg["steps"] else None,
        "tokens_per_call": cfg["tokens_per_call"], "gen_length": s.length(mode), "n": n,
        "entropy_mean": float(entropy.mean()), "entropy_sem": float(entropy.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan"),
        "corpus_entropy": corpus, "mean_length": float(lengths.mean()),
        "accuracy": float("nan"), "accuracy_ci_low": float("nan"), "accuracy_ci_high": float("nan"),
        "valid_rate": float("nan"), "valid_ci_low": float("nan"), "valid_ci_high": float("nan"),
        "nfe_mean": float(nfe.mean()), "nfe_calls": calls, "wall_time_s": wall, "temperature": 1.0, "seed": s.seed,
    }
    if mode == "prompted":
        texts = decode_completions(tokenizer, completions, ids.eos)
        rewards = score_completions(reward_kind(records[0]["task"]), texts, [reference_of(r) for r in records])
        correct = int((rewards > 0.5).sum())
        low, high = wilson_interval(correct, n)
        row.update(accuracy=correct / n, accuracy_ci_low=low, accuracy_ci_high=high)
    else:
        # Quality of unconditional samples: the share that are correct examples of a local task.
        texts = decode_completions(tokenizer, completions, ids.eos)
        valid = sum(valid_example(t) is not None for t in texts)
        low, high = wilson_interval(valid, n)
        row.update(valid_rate=valid / n, valid_ci_low=low, valid_ci_high=high)
    return row


# ---------------------------------------------------------------- output
def write_precision_csv(parts: list[pd.DataFrame], path) -> pd.DataFrame:
    """Concatenate the parts (each with a ``part`` column) into one CSV, written atomically."""
    frames = [p for p in parts if p is not None and len(p)]
    for frame in frames:
        unknown = set(frame["part"]) - set(PARTS)
        if unknown:
            raise ValueError(f"unknown part(s) {sorted(unknown)}; expected {PARTS}")
    table = pd.concat(frames, ignore_index=True, sort=False)
    table = table[["part"] + [c for c in table.columns if c != "part"]]
    with atomic_path(path, suffix=".csv") as tmp:
        table.to_csv(tmp, index=False)
    return table
