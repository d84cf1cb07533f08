"""Supervised sequences for the masked-diffusion loss: prompt + solution + EOS fill.

Responses are exactly ``gen_length`` tokens: the reference solution followed by EOS up to the
generation length (LLaDA style), so the model learns to end answers the way the sampler decodes
them. Prompts are left-padded (the tiny model honours attention masks).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..batching import encode_prompts, left_pad
from ..models.loading import TokenIds


@dataclass
class SupervisedBatchSource:
    """All examples pre-tokenised: ``prompt_ids`` (ragged) and ``responses`` ``[N, gen_length]``."""

    prompts: list[list[int]]
    responses: torch.Tensor

    def __len__(self) -> int:
        return len(self.prompts)

    def batch(self, indices: list[int], pad_id: int) -> dict[str, torch.Tensor]:
        prompt_ids, prompt_mask = left_pad([self.prompts[i] for i in indices], pad_id)
        responses = self.responses[indices]
        input_ids = torch.cat([prompt_ids, responses], dim=1)
        attention_mask = torch.cat([prompt_mask, torch.ones_like(responses)], dim=1)
        response_mask = torch.cat([torch.zeros_like(prompt_ids), torch.ones_like(responses)], dim=1).bool()
        return {"input_ids": input_ids, "attention_mask": attention_mask, "response_mask": response_mask}


def build_supervised(
    tokenizer, records: list[dict], gen_length: int, ids: TokenIds, chat_template: bool = False, source: str = "records"
) -> SupervisedBatchSource:
    """Tokenise ``prompt`` and ``solution`` of every record; a solution longer than fits is an error."""
    prompts = encode_prompts(tokenizer, [r["prompt"] for r in records], chat_template)
    responses = torch.full((len(records), gen_length), ids.eos, dtype=torch.long)
    for row, record in enumerate(records):
        solution = tokenizer(record["solution"], add_special_tokens=False)["input_ids"]
        if len(solution) >= gen_length:
            raise ValueError(
                f"{source}: record {record.get('id', row)} has a {len(solution)}-token solution; "
                f"decoding.gen_length={gen_length} must exceed it (one EOS at least)"
            )
        responses[row, : len(solution)] = torch.tensor(solution, dtype=torch.long)
    return SupervisedBatchSource(prompts=prompts, responses=responses)
