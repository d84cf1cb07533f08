"""The decoding engine: schedules, LCR against a LLaDA-algorithm oracle, RCR invariants, sampling."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from maskdiff.models.forward import forward_logits
from maskdiff.sampling import DecodeSettings, generate, gumbel_argmax, gumbel_noise, transfer_counts
from maskdiff.sampling.categorical import gumbel_from_uniform, gumbel_noise_max
from maskdiff.sampling.generate import rank_along_last


# ---------------------------------------------------------------- schedules
@pytest.mark.parametrize("kind", ["even", "linear", "cosine"])
@pytest.mark.parametrize("n,steps", [(16, 16), (16, 4), (7, 3), (32, 5), (3, 8), (128, 64), (512, 128)])
def test_schedule_sums_to_block_size(kind, n, steps):
    counts = transfer_counts(n, steps, kind)
    assert counts.shape == (steps,)
    assert int(counts.sum()) == n
    assert bool((counts >= 0).all())


def test_even_schedule_is_llada_split():
    assert transfer_counts(10, 4, "even").tolist() == [3, 3, 2, 2]


def test_linear_schedule_matches_maskgit_formula():
    n, steps = 10, 4
    cumulative = [n - math.floor(n * (1 - (i + 1) / steps)) for i in range(steps)]
    expected = [cumulative[0]] + [b - a for a, b in zip(cumulative, cumulative[1:])]
    assert transfer_counts(n, steps, "linear").tolist() == expected


def test_schedule_batched_rows_differ():
    counts = transfer_counts(torch.tensor([4, 9, 0]), 3, "even")
    assert counts.sum(-1).tolist() == [4, 9, 0]


def test_unknown_schedule_is_rejected():
    with pytest.raises(ValueError, match="unknown schedule"):
        transfer_counts(4, 2, "zigzag")


# ---------------------------------------------------------------- settings validation
@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(gen_length=16, block_length=5, steps=16), "must divide"),
        (dict(gen_length=16, block_length=4, steps=6), "multiple of the number of blocks"),
        (dict(gen_length=16, block_length=16, steps=4, remasking="foo"), "remasking"),
        (dict(gen_length=16, block_length=16, steps=4, precision="fp16"), "precision"),
    ],
)
def test_bad_settings_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DecodeSettings(**kwargs)


# ---------------------------------------------------------------- LCR oracle
def llada_generate_oracle(model, prompt: torch.Tensor, gen_length, block_length, steps, mask_id):
    """LLaDA's published generate() written from its description, one sequence at a time:
    greedy x0 = argmax, confidence = softmax prob (float64, over the whole vocabulary) of x0,
    positions beyond the current block and already-decoded positions get -inf, the top-k (k from
    the even split of the block's masks) are committed. One deliberate difference, mirrored from
    the engine: the [MASK] token itself is never predicted (excluded from the argmax only)."""
    x = torch.cat([prompt, torch.full((gen_length,), mask_id, dtype=torch.long)])
    p_len = prompt.numel()
    num_blocks = gen_length // block_length
    steps_per_block = steps // num_blocks
    for b in range(num_blocks):
        block_end = p_len + (b + 1) * block_length
        n_masked = int((x[p_len + b * block_length : block_end] == mask_id).sum())
        base, rem = divmod(n_masked, steps_per_block)
        ks = [base + (1 if i < rem else 0) for i in range(steps_per_block)]
        for k in ks:
            logits = model(input_ids=x[None]).logits[0]
            probs = torch.softmax(logits.double(), dim=-1)
            no_mask = logits.clone()
            no_mask[:, mask_id] = -math.inf
            x0 = no_mask.argmax(-1)
            x0_p = probs[torch.arange(x.numel()), x0]
            x0_p[block_end:] = -math.inf
            is_mask = x == mask_id
            x0 = torch.where(is_mask, x0, x)
            conf = torch.where(is_mask, x0_p, torch.tensor(-math.inf, dtype=torch.float64))
            top = torch.topk(conf, k).indices
            x[top] = x0[top]
    return x


@pytest.mark.parametrize("gen_length,block_length,steps", [(16, 16, 16), (16, 16, 5 * 1 + 3), (16, 4, 8), (12, 4, 12), (16, 8, 6)])
def test_lcr_matches_llada_oracle(tiny_model, ids, gen_length, block_length, steps):
    torch.manual_seed(0)
    prompts = torch.randint(4, 30, (5, 7))
    settings = DecodeSettings(gen_length, block_length, steps, remasking="lcr", schedule="even")
    out = generate(tiny_model, prompts, settings, ids)
    assert out.nfe == steps
    for row in range(prompts.shape[0]):
        expected = llada_generate_oracle(tiny_model, prompts[row], gen_length, block_length, steps, ids.mask)
        assert torch.equal(out.sequences[row], expected), f"row {row} differs"


def test_lcr_confidence_keeps_mask_in_the_normaliser():
    """LLaDA ranks positions by softmax(logits)[x0] with [MASK] in the denominator: a position whose
    mask logit is high is not confident even if it prefers one real token among the others."""
    from types import SimpleNamespace

    toy = SimpleNamespace(mask=2, pad=3, eos=3)
    # V = 3 (tokens 0, 1 and the mask 2). Position 0: token 0 vs a strong mask logit; position 1: token 0, no mask mass.
    scripted = torch.tensor([[2.0, 0.0, 5.0], [1.5, 0.0, -10.0]])

    def forward(model, x, attention_mask=None):
        logits = torch.zeros(x.shape[0], x.shape[1], 3)
        logits[:, -2:] = scripted
        return logits

    prompt = torch.zeros((1, 1), dtype=torch.long)
    out = generate(None, prompt, DecodeSettings(2, 2, 2, remasking="lcr"), toy, forward=forward, record_trajectory=True)
    after_first = out.trajectory.x_t[1, 0].tolist()
    assert after_first == [2, 0], "position 1 (p = 0.82 with the mask in the normaliser) goes first, not 0 (p = 0.05)"
    assert out.completions[0].tolist() == [0, 0]


def test_padded_batch_equals_unpadded_rows(tiny_model, ids):
    """Left padding with an attention mask gives each prompt exactly its unbatched result."""
    settings = DecodeSettings(8, 8, 8)
    short, long_ = torch.tensor([[5, 6, 7]]), torch.tensor([[8, 9, 10, 11, 12]])
    padded = torch.tensor([[ids.pad, ids.pad, 5, 6, 7], [8, 9, 10, 11, 12]])
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    batched = generate(tiny_model, padded, settings, ids, attention_mask=mask).completions
    assert torch.equal(batched[0], generate(tiny_model, short, settings, ids).completions[0])
    assert torch.equal(batched[1], generate(tiny_model, long_, settings, ids).completions[0])


# ---------------------------------------------------------------- RCR invariants
@pytest.mark.parametrize("rcr_score", ["max", "latest"])
@pytest.mark.parametrize("gen_length,block_length,steps,schedule", [(16, 4, 16, "even"), (16, 8, 8, "linear"), (16, 16, 6, "cosine")])
def test_rcr_respects_prompt_future_blocks_and_schedule(tiny_model, ids, rcr_score, gen_length, block_length, steps, schedule):
    torch.manual_seed(1)
    prompts = torch.randint(4, 30, (6, 5))
    s = DecodeSettings(gen_length, block_length, steps, remasking="rcr", rcr_score=rcr_score, schedule=schedule)
    out = generate(tiny_model, prompts, s, ids, record_trajectory=True)
    assert out.nfe == steps
    assert torch.equal(out.sequences[:, :5], prompts), "prompt was modified"
    assert not bool((out.completions == ids.mask).any()), "masks left at the end"
    states = torch.cat([out.trajectory.x_t.long(), out.completions[None]], dim=0)  # state before each step + final
    counts = transfer_counts(s.block_length, s.steps_per_block, schedule)
    position = torch.arange(gen_length)
    for t in range(steps):
        block, step = divmod(t, s.steps_per_block)
        after = states[t + 1]
        future = position >= (block + 1) * block_length
        assert bool((after[:, future] == ids.mask).all()), f"step {t}: a future-block position was touched"
        expected_left = block_length - int(counts[: step + 1].sum())
        masks_left = (after[:, ~future] == ids.mask).sum(-1)
        assert masks_left.tolist() == [expected_left] * prompts.shape[0], f"step {t}"


def rcr_oracle(logits_per_call, gen_length, block_length, steps, rcr_score, mask_id):
    """RCR from the MDPO paper's description, one sequence, plain Python: at each step fill every
    masked position of the current and earlier blocks with its argmax, update its score (running
    max of its confidences, or the latest one), then, unless it is the block's last step, re-mask
    the lowest-scoring positions of the current and earlier blocks (ties: lower position first)
    so that the scheduled number of masks remains. Returns the state after every step."""
    x, score, states = [mask_id] * gen_length, [-math.inf] * gen_length, []
    per_block = steps // (gen_length // block_length)
    for call, logits in enumerate(logits_per_call):
        block, step = divmod(call, per_block)
        started = range((block + 1) * block_length)
        probs = torch.softmax(logits.double(), dim=-1)
        for i in started:
            if x[i] == mask_id:
                token = int(logits[i, :mask_id].argmax())  # the mask is the last id here
                x[i] = token
                conf = float(probs[i, token])
                score[i] = max(score[i], conf) if rcr_score == "max" else conf
        if step < per_block - 1:
            base, rem = divmod(block_length, per_block)
            left = block_length - sum(base + (j < rem) for j in range(step + 1))
            for i in sorted(started, key=lambda i: (score[i], i))[:left]:
                x[i] = mask_id
        states.append(list(x))
    return states


@pytest.mark.parametrize("rcr_score", ["max", "latest"])
def test_rcr_remasks_exactly_the_lowest_scores_across_blocks(rcr_score):
    """Scripted logits (random, a fresh set per network call): the engine's states equal the
    oracle's, step by step, for a semi-AR run where earlier-block positions compete for re-masking."""
    from types import SimpleNamespace

    vocab, mask, gen_length, block_length, steps = 6, 6, 6, 3, 6
    toy = SimpleNamespace(mask=mask, pad=0, eos=0)
    g = torch.Generator().manual_seed(11)
    script = [torch.randn(gen_length, vocab + 1, generator=g) * 2 for _ in range(steps)]
    calls = []

    def forward(model, x, attention_mask=None):
        logits = script[len(calls)]
        calls.append(x.clone())
        return torch.cat([torch.zeros(x.shape[0], 1, vocab + 1), logits.expand(x.shape[0], -1, -1)], dim=1)

    settings = DecodeSettings(gen_length, block_length, steps, remasking="rcr", rcr_score=rcr_score)
    out = generate(None, torch.zeros((2, 1), dtype=torch.long), settings, toy, forward=forward, record_trajectory=True)
    states = torch.cat([out.trajectory.x_t[1:].long(), out.completions[None]], dim=0)[:, 0]
    expected = rcr_oracle(script, gen_length, block_length, steps, rcr_score, mask)
    assert states.tolist() == expected
    # the scripted run re-masks a first-block position while decoding the second block
    second_block = torch.tensor(expected[steps // 2 : -1])
    assert bool((second_block[:, :block_length] == mask).any())


def test_rcr_max_and_latest_differ_on_the_scripted_run():
    g = torch.Generator().manual_seed(11)
    script = [torch.randn(6, 7, generator=g) * 2 for _ in range(6)]
    assert rcr_oracle(script, 6, 3, 6, "max", 6) != rcr_oracle(script, 6, 3, 6, "latest", 6)


def test_rcr_can_revise_earlier_tokens(tiny_model, ids):
    """Unlike LCR, RCR re-masks low-scoring tokens: some position changes value mid-trajectory."""
    torch.manual_seed(2)
    prompts = torch.randint(4, 30, (16, 5))
    out = generate(tiny_model, prompts, DecodeSettings(16, 16, 8, remasking="rcr"), ids, record_trajectory=True)
    x = out.trajectory.x_t.long()
    unmasked_then_masked = ((x[:-1] != ids.mask) & (x[1:] == ids.mask)).any()
    assert bool(unmasked_then_masked)


def test_lcr_never_revises(tiny_model, ids):
    torch.manual_seed(2)
    prompts = torch.randint(4, 30, (16, 5))
    out = generate(tiny_model, prompts, DecodeSettings(16, 4, 8, remasking="lcr"), ids, record_trajectory=True)
    x = out.trajectory.x_t.long()
    assert not bool(((x[:-1] != ids.mask) & (x[1:] != x[:-1])).any())


def test_random_remasking_commits_scheduled_counts(tiny_model, ids):
    g = torch.Generator().manual_seed(0)
    prompts = torch.randint(4, 30, (4, 5))
    out = generate(tiny_model, prompts, DecodeSettings(16, 8, 8, remasking="random"), ids, generator=g, record_trajectory=True)
    masks = (out.trajectory.x_t.long() == ids.mask).sum(-1)  # [T, B]
    assert masks[:, 0].tolist() == [16, 14, 12, 10, 8, 6, 4, 2]


def test_trajectory_is_compact_and_consistent(tiny_model, ids):
    prompts = torch.randint(4, 30, (3, 5))
    out = generate(tiny_model, prompts, DecodeSettings(8, 8, 4), ids, record_trajectory=True)
    traj = out.trajectory
    assert traj.x_t.shape == traj.x0_hat.shape == traj.confidence.shape == (4, 3, 8)
    assert traj.x_t.dtype == torch.int16 and traj.confidence.dtype == torch.float16
    assert not bool((traj.x0_hat == ids.mask).any()), "x0_hat must fill every masked position"
    unmasked = traj.x_t != ids.mask
    assert torch.equal(traj.x0_hat[unmasked], traj.x_t[unmasked])
    assert torch.equal(traj.x0_hat[-1].long(), out.completions)


def test_same_seed_same_samples(tiny_model, ids):
    prompts = torch.randint(4, 30, (4, 5))
    s = DecodeSettings(8, 8, 8, temperature=1.0)
    a = generate(tiny_model, prompts, s, ids, generator=torch.Generator().manual_seed(3)).sequences
    b = generate(tiny_model, prompts, s, ids, generator=torch.Generator().manual_seed(3)).sequences
    c = generate(tiny_model, prompts, s, ids, generator=torch.Generator().manual_seed(4)).sequences
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_rank_along_last_breaks_ties_by_position():
    key = torch.tensor([[0.5, 0.9, 0.5, 0.1]])
    assert rank_along_last(key, descending=True).tolist() == [[1, 0, 2, 3]]


# ---------------------------------------------------------------- categorical sampling
@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
@pytest.mark.parametrize("precision", ["fp64", "fp32"])
def test_temperature_sampling_matches_target_distribution(temperature, precision):
    logits = torch.tensor([1.0, 0.2, -0.5, 2.0, 0.0])
    n = 40_000
    g = torch.Generator().manual_seed(11)
    draws = gumbel_argmax(logits.expand(n, -1), temperature, precision, g)
    observed = np.bincount(draws.numpy(), minlength=5)
    expected = torch.softmax(logits.double() / temperature, -1).numpy() * n
    assert stats.chisquare(observed, expected).pvalue > 1e-3


def test_temperature_zero_is_argmax():
    logits = torch.tensor([[0.1, 3.0, 2.9]])
    assert gumbel_argmax(logits, 0.0).item() == 1


def test_fp32_gumbel_noise_is_capped_fp64_is_not():
    # The largest uniform below 1 fixes the largest possible Gumbel draw (the analysis):
    assert gumbel_noise_max("fp32") == pytest.approx(16.6355, abs=1e-3)
    assert gumbel_noise_max("fp64") == pytest.approx(36.7368, abs=1e-3)
    one_below = torch.nextafter(torch.tensor(1.0), torch.tensor(0.0))
    assert float(gumbel_from_uniform(one_below)) == pytest.approx(16.6355, abs=1e-3)
    # Empirically: 2**26 draws. fp32 never exceeds the cap; fp64 does (P(miss) ~ e^-4, fixed seed).
    g32, g64 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    max32 = max(float(gumbel_noise((1 << 22,), "fp32", g32).max()) for _ in range(16))
    max64 = max(float(gumbel_noise((1 << 22,), "fp64", g64).max()) for _ in range(16))
    assert max32 <= gumbel_noise_max("fp32") + 1e-4
    assert max64 > gumbel_noise_max("fp32")


def test_forward_refuses_padding_for_models_that_ignore_it(tiny_model):
    class FakeLLaDA(torch.nn.Module):
        config = type("C", (), {"model_type": "llada"})()

    with pytest.raises(ValueError, match="ignores attention_mask"):
        forward_logits(FakeLLaDA(), torch.zeros(2, 3, dtype=torch.long), torch.tensor([[0, 1, 1], [1, 1, 1]]))
