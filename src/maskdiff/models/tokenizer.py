"""A character-level tokenizer built in code, wrapped as a ``PreTrainedTokenizerFast``.

The local presets cannot download a tokenizer, and their tasks (Countdown expressions, LaTeX
numbers) need only a few dozen symbols; one token per character keeps the model tiny and makes
every generated position one visible character.
"""

from __future__ import annotations

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = {"pad_token": "[PAD]", "mask_token": "[MASK]", "eos_token": "[EOS]", "unk_token": "[UNK]"}

# Everything the compact Countdown and arithmetic prompts and answers use, plus a little slack
# (letters for \frac, \boxed, <answer>) so that reward paths with markup can be exercised too.
DEFAULT_CHARSET = "0123456789+-*/()=,.{}\\<>? abcdefghijklmnopqrstuvwxyz"


def build_char_tokenizer(charset: str = DEFAULT_CHARSET) -> PreTrainedTokenizerFast:
    """Special tokens take ids 0..3 ([PAD], [MASK], [EOS], [UNK]); characters follow in order."""
    if len(set(charset)) != len(charset):
        raise ValueError("tokenizer charset has duplicate characters")
    specials = list(SPECIAL_TOKENS.values())
    vocab = {tok: i for i, tok in enumerate(specials + list(charset))}
    backend = Tokenizer(models.WordLevel(vocab, unk_token=SPECIAL_TOKENS["unk_token"]))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    backend.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=backend, model_max_length=4096, **SPECIAL_TOKENS)
