"""Models: the tiny in-DAG model world (tokenizer + bidirectional transformer) and loading of
saved or hub models (LLaDA) through the Hugging Face Auto classes."""

from .forward import forward_logits, supports_padding
from .loading import TokenIds, load_model, load_tokenizer, token_ids
from .tiny import TinyModelSpec, build_tiny_model
from .tokenizer import build_char_tokenizer

__all__ = [
    "TinyModelSpec",
    "TokenIds",
    "build_char_tokenizer",
    "build_tiny_model",
    "forward_logits",
    "load_model",
    "load_tokenizer",
    "supports_padding",
    "token_ids",
]
