"""Supervised sequences for the masked-diffusion loss: prompt + solution + EOS fill.

Responses are exactly ``gen_length`` tokens: the reference solution followed by EOS up to the
generation length (LLaDA style), so the model learns to end answers the way the sampler decodes
them. Prompts are left-padded (the tiny model honours attention masks).

Optionally every record also has an *unconditional* form (``unconditional_length`` tokens: problem,
a space, solution, EOS fill) in which every token is a response token, so the loss may mask the
prompt too: rows drawn in that form teach the model whole examples (LLaDA pretraining masks
everything), which unconditional sampling then draws from.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..batching import encode_prompts, left_pad
from ..models.loading import TokenIds
from ..tasks.unconditional import unconditional_text


@dataclass
class SupervisedBatchSource:
    """All examples pre-tokenised: ``prompt_ids`` (ragged) and ``responses`` ``[N, gen_length]``."""

    prompts: list[list[int]]
    responses: torch.Tensor
    unconditional: torch.Tensor | None = None  # [N, unconditional_length] whole examples
    truncated: int = 0  # solutions cut to fit the response length (truncate=True)

    def __len__(self) -> int:
        return len(self.prompts)

    def batch(self, indices: list[int], pad_id: int, unconditional: list[bool] | None = None) -> dict[str, torch.Tensor]:
        """Conditional rows (clean prompt, loss on the response), then the rows flagged in
        ``unconditional`` in their whole-example form (loss on every token), left-padded to one width."""
        flags = unconditional or [False] * len(indices)
        if any(flags) and self.unconditional is None:
            raise ValueError("unconditional rows asked for, but the data was built without unconditional_length")
        cond = [i for i, u in zip(indices, flags) if not u]
        whole = [i for i, u in zip(indices, flags) if u]
        parts = []
        if cond:
            prompt_ids, prompt_mask = left_pad([self.prompts[i] for i in cond], pad_id)
            responses = self.responses[cond]
            parts.append((torch.cat([prompt_ids, responses], dim=1),
                          torch.cat([prompt_mask, torch.ones_like(responses)], dim=1),
                          torch.cat([torch.zeros_like(prompt_ids), torch.ones_like(responses)], dim=1)))
        if whole:
            seqs = self.unconditional[whole]
            parts.append((seqs, torch.ones_like(seqs), torch.ones_like(seqs)))
        width = max(p[0].shape[1] for p in parts)
        pad = lambda t, value: torch.nn.functional.pad(t, (width - t.shape[1], 0), value=value)  # noqa: E731
        input_ids = torch.cat([pad(ids, pad_id) for ids, _, _ in parts])
        attention_mask = torch.cat([pad(mask, 0) for _, mask, _ in parts])
        response_mask = torch.cat([pad(resp, 0) for _, _, resp in parts]).bool()
        return {"input_ids": input_ids, "attention_mask": attention_mask, "response_mask": response_mask}


def build_supervised(
    tokenizer, records: list[dict], gen_length: int, ids: TokenIds, chat_template: bool = False, source: str = "records",
    unconditional_length: int | None = None,
    truncate: bool = False,
    max_total_length: int | None = None,
) -> SupervisedBatchSource:
    """Tokenise ``prompt`` and ``solution`` of every record (and, with ``unconditional_length``,
    its whole-example form). A solution that does not fit ``gen_length`` with one EOS is an error,
    or with ``truncate`` cut to ``gen_length`` tokens (no EOS: the model learns that the answer
    goes on, as the released SFT's max-length truncation teaches it) and counted. With
    ``max_total_length`` (and ``truncate``) prompt and solution together are cut to that many tokens
    (the released ``sft_llada.py``'s ``max_length``), the EOS fill still padding the response."""
    prompts = encode_prompts(tokenizer, [r["prompt"] for r in records], chat_template)
    responses = torch.full((len(records), gen_length), ids.eos, dtype=torch.long)
    truncated = 0
    for row, record in enumerate(records):
        solution = tokenizer(record["solution"], add_special_tokens=False)["input_ids"]
        if truncate and max_total_length is not None and len(prompts[row]) + len(solution) > max_total_length:
            solution, truncated = solution[: max(1, max_total_length - len(prompts[row]))], truncated + 1
            if len(solution) < gen_length:
                responses[row, : len(solution)] = torch.tensor(solution, dtype=torch.long)
                continue
        if len(solution) >= gen_length:
            if not truncate:
                raise ValueError(
                    f"{source}: record {record.get('id', row)} has a {len(solution)}-token solution; "
                    f"decoding.gen_length={gen_length} must exceed it (one EOS at least)"
                )
            solution, truncated = solution[:gen_length], truncated + 1
        responses[row, : len(solution)] = torch.tensor(solution, dtype=torch.long)
    whole = None
    if unconditional_length:
        whole = torch.full((len(records), unconditional_length), ids.eos, dtype=torch.long)
        for row, record in enumerate(records):
            text = tokenizer(unconditional_text(record), add_special_tokens=False)["input_ids"]
            if len(text) >= unconditional_length:
                raise ValueError(
                    f"{source}: record {record.get('id', row)} is {len(text)} tokens as a whole example; "
                    f"pretrain.unconditional_length={unconditional_length} must exceed it (one EOS at least)"
                )
            whole[row, : len(text)] = torch.tensor(text, dtype=torch.long)
    return SupervisedBatchSource(prompts=prompts, responses=responses, unconditional=whole, truncated=truncated)
