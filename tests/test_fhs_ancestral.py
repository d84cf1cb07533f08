"""FHS and the ancestral sampler against a known joint distribution, and the network-call cache.

The toy network is exactly time-agnostic: its prediction for a masked position is the true
conditional ``p(x_i | unmasked tokens)`` of a fixed joint over 3 positions x 3 tokens, so an exact
sampler must reproduce the joint, while filling all positions from one call gives the product of
the marginals. TV bounds: with 20k samples over 27 cells the sampling noise of the TV estimate is
about 0.5 * sum_c sqrt(2 p_c / (pi n)) < 0.015, so 0.025 is a ~2x margin (fixed seeds: deterministic).
"""

from __future__ import annotations

import itertools
import math
from types import SimpleNamespace

import pytest
import torch

from maskdiff.models.loading import TokenIds
from maskdiff.sampling.ancestral import ancestral_sample
from maskdiff.sampling.fhs import alpha, first_hitting_sample, masked_fraction, time_of_masked_fraction
from maskdiff.seeding import step_generator

MASK = 3
TOY_IDS = TokenIds(mask=MASK, pad=0, eos=0)
LENGTH, VOCAB = 3, 3
SAMPLES = 20_000
TV_BOUND = 0.025


def toy_joint() -> torch.Tensor:
    """A strongly dependent joint p(x1, x2, x3): mostly 'all equal' plus a fixed random part."""
    g = torch.Generator().manual_seed(7)
    joint = 0.4 * torch.rand((VOCAB,) * LENGTH, generator=g, dtype=torch.float64)
    joint = joint / joint.sum() * 0.4
    for v, w in zip(range(VOCAB), (0.3, 0.2, 0.1)):
        joint[(v,) * LENGTH] += w
    return joint / joint.sum()


class ConditionalTable(torch.nn.Module):
    """Logits = log p(x_i = v | unmasked positions) of ``joint``; a large mask logit that samplers
    must exclude. Counts calls and rows evaluated."""

    def __init__(self, joint: torch.Tensor):
        super().__init__()
        self.joint = joint
        self.configs = torch.tensor(list(itertools.product(range(VOCAB), repeat=LENGTH)))  # [27, L]
        self.calls = 0
        self.rows = 0

    def forward(self, input_ids: torch.Tensor, **_) -> SimpleNamespace:
        self.calls += 1
        self.rows += input_ids.shape[0]
        x = input_ids[:, -LENGTH:]  # the generated region (no prompt in these tests)
        consistent = ((x.unsqueeze(1) == MASK) | (x.unsqueeze(1) == self.configs)).all(-1)  # [B, 27]
        weights = consistent * self.joint.flatten()  # [B, 27]
        onehot = torch.nn.functional.one_hot(self.configs, VOCAB).double()  # [27, L, V]
        cond = torch.einsum("bc,clv->blv", weights, onehot)
        logits = torch.log(cond / cond.sum(-1, keepdim=True)).float()
        logits = torch.cat([logits, torch.full((*logits.shape[:2], 1), 5.0)], dim=-1)  # mask logit
        return SimpleNamespace(logits=logits)


def empirical(seqs: torch.Tensor) -> torch.Tensor:
    index = (seqs * torch.tensor([VOCAB**2, VOCAB, 1])).sum(-1)
    return torch.bincount(index, minlength=VOCAB**LENGTH).double().reshape((VOCAB,) * LENGTH) / len(seqs)


def tv(p: torch.Tensor, q: torch.Tensor) -> float:
    return 0.5 * float((p - q).abs().sum())


def product_of_marginals(joint: torch.Tensor) -> torch.Tensor:
    m = [joint.sum(dim=tuple(d for d in range(LENGTH) if d != i)) for i in range(LENGTH)]
    return torch.einsum("a,b,c->abc", *m)


@pytest.fixture(scope="module")
def joint():
    return toy_joint()


def empty_prompts(n: int) -> torch.Tensor:
    return torch.empty((n, 0), dtype=torch.long)


def test_joint_is_far_from_product(joint):
    assert tv(joint, product_of_marginals(joint)) > 0.2


def test_fhs_reproduces_joint(joint):
    net = ConditionalTable(joint)
    out = first_hitting_sample(net, empty_prompts(SAMPLES), LENGTH, TOY_IDS, step_generator(0, "fhs-joint"))
    assert out.nfe == LENGTH and net.calls == LENGTH
    assert not bool((out.completions == MASK).any())
    assert tv(empirical(out.completions), joint) < TV_BOUND


def test_fhs_one_shot_parallel_gives_product_of_marginals(joint):
    net = ConditionalTable(joint)
    out = first_hitting_sample(
        net, empty_prompts(SAMPLES), LENGTH, TOY_IDS, step_generator(0, "fhs-parallel"), tokens_per_call=LENGTH
    )
    assert out.nfe == 1
    freq = empirical(out.completions)
    assert tv(freq, product_of_marginals(joint)) < TV_BOUND
    assert tv(freq, joint) > 0.2


@pytest.mark.parametrize("k,length", [(2, 5), (4, 9), (3, 3), (5, 4)])
def test_fhs_nfe_is_ceil_length_over_k(tiny_model, ids, k, length):
    prompt = torch.tensor([[5, 6, 7], [8, 9, 10]])
    out = first_hitting_sample(tiny_model, prompt, length, ids, step_generator(1, "nfe"), tokens_per_call=k)
    assert out.nfe == math.ceil(length / k)
    assert torch.equal(out.sequences[:, :3], prompt)
    assert not bool((out.completions == ids.mask).any())


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_fhs_times_decrease_and_follow_the_schedule(joint, schedule):
    net = ConditionalTable(joint)
    out = first_hitting_sample(net, empty_prompts(4000), LENGTH, TOY_IDS, step_generator(2, schedule), schedule=schedule)
    times = out.unmask_times
    assert bool(((times > 0) & (times < 1)).all())
    # the unmasking order is the order of decreasing time: sorted times are the hitting times
    ordered = times.sort(dim=-1, descending=True).values
    # the first hitting time of L iid masking times: P(tau_{L-1} <= tau) = (1 - alpha(tau))^L
    grid = torch.tensor([0.3, 0.6, 0.9], dtype=torch.float64)
    expected = masked_fraction(grid, schedule) ** LENGTH
    observed = (ordered[:, :1] <= grid).double().mean(0)
    assert torch.allclose(observed, expected, atol=0.03)


def test_fhs_unmasks_a_uniformly_chosen_position():
    """The first position to unmask (the latest time) is uniform over the L positions, whatever the
    network predicts: a chi-square test on 6000 rows of a length-6 sequence."""
    from scipy import stats

    rows, length = 6000, 6
    out = first_hitting_sample(FixedLogits(), empty_prompts(rows), length, TOY_IDS, step_generator(8, "uniform"))
    first = out.unmask_times.argmax(dim=-1)
    counts = torch.bincount(first, minlength=length).numpy()
    assert stats.chisquare(counts).pvalue > 0.001, counts
    last = out.unmask_times.argmin(dim=-1)  # and so is the last one
    assert stats.chisquare(torch.bincount(last, minlength=length).numpy()).pvalue > 0.001


def test_fhs_every_hitting_time_has_the_order_statistic_law():
    """Linear schedule: with n masks left at time tau_n, the next time is tau_n * u^(1/n), so
    (tau_{n-1} / tau_n)^n must be U(0, 1) for every n (Kolmogorov-Smirnov, 4000 rows)."""
    from scipy import stats

    rows, length = 4000, 5
    out = first_hitting_sample(FixedLogits(), empty_prompts(rows), length, TOY_IDS, step_generator(9, "order"))
    ordered = out.unmask_times.sort(dim=-1, descending=True).values  # tau_{L-1}, tau_{L-2}, ..., tau_0
    previous = torch.cat([torch.ones(rows, 1, dtype=torch.float64), ordered[:, :-1]], dim=1)
    for j in range(length):
        n = length - j  # masks left before this hit
        ratio = (ordered[:, j] / previous[:, j]) ** n
        assert stats.kstest(ratio.numpy(), "uniform").pvalue > 0.001, f"hit {j} (n = {n})"


def test_schedule_inverse_roundtrip():
    t = torch.tensor([1e-9, 1e-3, 0.25, 0.5, 0.999, 1.0], dtype=torch.float64)
    for schedule in ("linear", "cosine"):
        assert torch.allclose(time_of_masked_fraction(masked_fraction(t, schedule), schedule), t, rtol=1e-12)
        assert torch.allclose(1 - alpha(t, schedule), masked_fraction(t, schedule), atol=1e-15)


def test_fhs_same_seed_same_samples(tiny_model, ids):
    prompt = torch.tensor([[5, 6, 7, 8]])
    a = first_hitting_sample(tiny_model, prompt.repeat(3, 1), 6, ids, step_generator(3, "det"))
    b = first_hitting_sample(tiny_model, prompt.repeat(3, 1), 6, ids, step_generator(3, "det"))
    assert torch.equal(a.sequences, b.sequences) and torch.equal(a.unmask_times, b.unmask_times)


@pytest.fixture(scope="module")
def ancestral_tv(joint):
    """TV to the joint of fp64 ancestral samples for several N (one run each)."""
    result = {}
    for steps in (2, 8, 256):
        out = ancestral_sample(
            ConditionalTable(joint), empty_prompts(SAMPLES), LENGTH, TOY_IDS, steps, step_generator(0, "anc", steps)
        )
        assert not bool((out.completions == MASK).any())
        assert bool((out.calls_per_row <= LENGTH).all())
        result[steps] = tv(empirical(out.completions), joint)
    return result


def test_ancestral_fp64_reproduces_joint_at_large_n(ancestral_tv):
    """Exact in the limit: at N = 256 >> L two positions rarely unmask in the same step."""
    assert ancestral_tv[256] < TV_BOUND


def test_ancestral_error_is_a_finite_step_effect(ancestral_tv):
    """Not exact for small N: positions unmasked in the same step are drawn independently from one
    call (the parallel-decoding error, O(L^2 / N)); FHS has no such error at L calls."""
    assert ancestral_tv[2] > ancestral_tv[8] > ancestral_tv[256]
    assert ancestral_tv[2] > 4 * TV_BOUND


def test_ancestral_single_step_is_product_of_marginals(joint):
    """N = 1: every position unmasks in one step from one call (the other extreme)."""
    net = ConditionalTable(joint)
    out = ancestral_sample(net, empty_prompts(SAMPLES), LENGTH, TOY_IDS, 1, step_generator(0, "anc1"))
    assert tv(empirical(out.completions), product_of_marginals(joint)) < TV_BOUND


def test_ancestral_cache_skips_unchanged_rows_and_matches_uncached(joint):
    steps, rows = 600, 128  # N >> L: almost every step changes nothing
    cached_net, plain_net = ConditionalTable(joint), ConditionalTable(joint)
    a = ancestral_sample(cached_net, empty_prompts(rows), LENGTH, TOY_IDS, steps, step_generator(4, "cache"))
    b = ancestral_sample(plain_net, empty_prompts(rows), LENGTH, TOY_IDS, steps, step_generator(4, "cache"), cache=False)
    assert torch.equal(a.sequences, b.sequences)  # the cache never changes the samples
    assert bool((a.calls_per_row <= LENGTH).all()) and bool((a.calls_per_row >= 1).all())
    assert cached_net.rows == a.row_evaluations and cached_net.calls == a.nfe_calls
    assert a.nfe_calls <= rows * LENGTH and a.nfe_calls < steps  # calls only on steps that changed a row
    assert plain_net.rows > 10 * cached_net.rows  # rows re-evaluated without the cache


class FixedLogits(torch.nn.Module):
    """The same prediction everywhere (uniform over the 3 tokens)."""

    def forward(self, input_ids: torch.Tensor, **_) -> SimpleNamespace:
        return SimpleNamespace(logits=torch.zeros((*input_ids.shape, VOCAB + 1)))


def test_ancestral_no_call_in_a_step_where_nothing_unmasked():
    """L = 1, N = 2: a row still masked after step 0 changed nothing, so step 1 reuses its cached
    logits and makes no call at all; without the cache those rows are evaluated again."""
    calls: list[int] = []

    def counting_forward(model, input_ids, attention_mask=None):
        calls.append(input_ids.shape[0])
        return model(input_ids=input_ids).logits

    rows = 64
    kwargs = dict(generator=step_generator(5, "one"), forward=counting_forward)
    out = ancestral_sample(FixedLogits(), empty_prompts(rows), 1, TOY_IDS, 2, **kwargs)
    assert calls == [rows] and out.nfe_calls == 1 and bool((out.calls_per_row == 1).all())
    calls.clear()
    kwargs["generator"] = step_generator(5, "one")
    plain = ancestral_sample(FixedLogits(), empty_prompts(rows), 1, TOY_IDS, 2, cache=False, **kwargs)
    assert torch.equal(out.sequences, plain.sequences)
    assert len(calls) == 2 and 0 < calls[1] < rows  # the rows still masked (about half) again
    assert not bool((out.completions == MASK).any())


@pytest.mark.parametrize("precision,dtype", [("fp32", torch.float32), ("fp64", torch.float64)])
def test_ancestral_draws_in_the_requested_precision(monkeypatch, precision, dtype):
    """The step's categorical over vocabulary + mask is formed and drawn in the sampling precision
    (the truncation itself is tested on sample_categorical_mdlm and in the precision study)."""
    import maskdiff.sampling.ancestral as anc

    seen = []
    real = anc.sample_categorical_mdlm

    def spy(q, p, generator=None):
        seen.append((q.dtype, p))
        return real(q, p, generator)

    monkeypatch.setattr(anc, "sample_categorical_mdlm", spy)
    ancestral_sample(FixedLogits(), empty_prompts(8), 2, TOY_IDS, 5, step_generator(10, "dtype"), precision=precision)
    assert seen and all(s == (dtype, precision) for s in seen)


def test_ancestral_fp32_runs_and_prompts_are_kept(tiny_model, ids):
    prompt = torch.tensor([[5, 6, 7], [8, 9, 10]])
    out = ancestral_sample(tiny_model, prompt, 6, ids, 24, step_generator(6, "fp32"), precision="fp32")
    assert torch.equal(out.sequences[:, :3], prompt)
    assert not bool((out.completions == ids.mask).any())
    assert bool((out.calls_per_row <= 6).all()) and out.steps == 24


def test_ancestral_and_fhs_with_left_padding(tiny_model, ids):
    padded = torch.tensor([[0, 5, 6], [7, 8, 9]])
    mask = torch.tensor([[0, 1, 1], [1, 1, 1]])
    anc = ancestral_sample(tiny_model, padded, 4, ids, 16, step_generator(7, "pad"), attention_mask=mask)
    fhs = first_hitting_sample(tiny_model, padded, 4, ids, step_generator(7, "pad"), attention_mask=mask)
    for out in (anc, fhs):
        assert torch.equal(out.sequences[:, :3], padded)
        assert not bool((out.completions == ids.mask).any())
    assert bool((anc.calls_per_row <= 4).all())
