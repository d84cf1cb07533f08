"""Denoising trajectories you can see: a model's full prediction and its committed text at every step.

Over-denoising (the MDPO paper's Answer Backslide) is a model that had the right answer at some step
and lost it by the end. This module records, for a few such problems, what the base model predicted
at each step (``x0_hat_t``, every masked position filled), whether that prediction was correct, and
what stayed committed after the step (masks shown as ``·``); then the same problems decoded by the
trained models (MDPO, ...), and one problem decoded with RCR next to LCR. The report draws them as
step-by-step grids with the correct predictions highlighted.

The cases come from the **validation** split (the first ``scan`` problems of each task, decoded by the
base model at the default cell with LCR): Answer Backslide problems first, then, if there are fewer
than asked, the first other problems (each case says which it is). No test problem is read here.
"""

from __future__ import annotations

import dataclasses

import torch

from .backslide import answer_backslide
from .batching import encode_prompts, prompt_batches
from .evaluate import step_correctness
from .models.forward import supports_padding
from .models.loading import TokenIds
from .rewards import RewardCache, RewardSettings
from .sampling.generate import DecodeSettings, generate
from .seeding import step_generator
from .tasks import reference_of, reward_kind
from .trajectory_report import MASK_GLYPH



def token_texts(tokenizer, rows: torch.Tensor, ids: TokenIds) -> list[str]:
    """Display text of token rows ``[N, L]``, position by position: a mask is ``·``, everything from
    the first EOS on is dropped (the tiny models pad with EOS), other special tokens are dropped."""
    out = []
    special = set(getattr(tokenizer, "all_special_ids", []) or []) - {ids.mask}
    for row in rows.long().tolist():
        pieces = []
        for token in row:
            if token == ids.eos:
                break
            if token == ids.mask:
                pieces.append(MASK_GLYPH)
            elif token not in special:
                pieces.append(tokenizer.decode([token]))
        out.append("".join(pieces))
    return out


@torch.no_grad()
def trace(model, tokenizer, ids: TokenIds, records: list[dict], cell: DecodeSettings, seed: int, chat_template: bool = False,
          rewards: RewardSettings | None = None) -> list[dict]:
    """Decode ``records`` (one batch) at ``cell`` recording every step: per record the steps'
    ``prediction`` (x0_hat_t), ``correct`` (its reward > 0.5) and ``committed`` (the text after the
    step), and the final answer's correctness and Answer Backslide flag."""
    if not records:
        return []
    encoded = encode_prompts(tokenizer, [r["prompt"] for r in records], chat_template)
    generator = step_generator(seed, "trajectories", cell.label)
    out_rows: list[dict] = []
    for indices, prompt_ids, attention_mask in prompt_batches(encoded, len(records), ids.pad, supports_padding(model)):
        out = generate(model, prompt_ids, cell, ids, attention_mask, generator, record_trajectory=True)
        refs = [reference_of(records[i]) for i in indices]
        step_rewards, final_rewards = step_correctness(tokenizer, out.trajectory.x0_hat, out.completions, ids,
                                                       reward_kind(records[indices[0]]["task"]), refs, 0, rewards,
                                                       RewardCache())
        steps, batch, length = out.trajectory.x0_hat.shape
        states = torch.cat([out.trajectory.x_t[1:], out.completions.unsqueeze(0).to(out.trajectory.x_t.dtype).cpu()])
        predictions = token_texts(tokenizer, out.trajectory.x0_hat.reshape(steps * batch, length), ids)
        committed = token_texts(tokenizer, states.reshape(steps * batch, length), ids)
        for j, index in enumerate(indices):
            correct = step_rewards[j] > 0.5
            final = bool(final_rewards[j] > 0.5)
            out_rows.append({
                "id": records[index]["id"], "final_correct": final,
                "backslide": answer_backslide(correct, final).backslide,
                "steps": [{"step": t + 1, "prediction": predictions[t * batch + j], "correct": bool(correct[t]),
                           "committed": committed[t * batch + j]} for t in range(steps)],
            })
    order = {r["id"]: i for i, r in enumerate(records)}
    return sorted(out_rows, key=lambda r: order[r["id"]])


def _answer(record: dict):
    ref = reference_of(record)
    return ref.get("target", ref.get("answer", ""))


def pick_cases(scanned: list[dict], n: int) -> list[str]:
    """Ids of up to ``n`` Answer Backslide problems, then the first other problems."""
    backslides = [r["id"] for r in scanned if r["backslide"]]
    others = [r["id"] for r in scanned if not r["backslide"]]
    return (backslides + others)[:n]


def build_trajectories(base, others: dict, records: dict[str, list[dict]], cell: DecodeSettings, n_cases: int,
                       seed: int, chat_template: bool = False, rewards: RewardSettings | None = None) -> dict:
    """``base`` and each of ``others`` (``{name: (model, tokenizer, ids)}`` or, per task,
    ``{name: {task: (model, tokenizer, ids)}}``) as ``(model, tokenizer, ids)``; ``records``: each
    task's validation problems to scan. Returns the JSON document the report draws."""
    model, tokenizer, ids = base
    rcr = dataclasses.replace(cell, remasking="rcr", rcr_score="max")
    tasks = {}
    for task, scan in records.items():
        scanned = trace(model, tokenizer, ids, scan, cell, seed, chat_template, rewards)
        chosen = pick_cases(scanned, n_cases)
        by_id = {r["id"]: r for r in scan}
        traced = {r["id"]: r for r in scanned}
        cases = [{"id": i, "prompt": by_id[i]["prompt"], "target": str(_answer(by_id[i])),
                  "backslide": traced[i]["backslide"], "views": {f"base ({cell.label})": traced[i]}}
                 for i in chosen]
        for name, loaded in others.items():
            loaded = loaded.get(task) if isinstance(loaded, dict) else loaded
            if loaded is None:
                continue
            rows = trace(*loaded, [by_id[i] for i in chosen], cell, seed, chat_template, rewards)
            for case, row in zip(cases, rows):
                case["views"][f"{name} ({cell.label})"] = row
        remasking = None
        if chosen:
            row = trace(model, tokenizer, ids, [by_id[chosen[0]]], rcr, seed, chat_template, rewards)[0]
            remasking = {"id": chosen[0], "prompt": by_id[chosen[0]]["prompt"],
                         "views": {f"base ({cell.label})": traced[chosen[0]], f"base ({rcr.label})": row}}
        tasks[task] = {"scanned": len(scanned), "backslide_found": sum(r["backslide"] for r in scanned),
                       "cases": cases, "remasking": remasking}
    return {"cell": cell.label, "mask_glyph": MASK_GLYPH, "source": "validation", "tasks": tasks}
