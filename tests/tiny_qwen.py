"""Test helper: a tiny Qwen2 causal LM + tokenizer built locally (no hub download).

``build_tiny_qwen2(path, vocab_texts=None, seed=0) -> path``; the library part lives in
codyn.tiny_models so the pipeline's default config can name ``tiny-qwen2`` too.
"""

from codyn.tiny_models import DEFAULT_VOCAB_TEXTS, build_tiny_qwen2

__all__ = ["DEFAULT_VOCAB_TEXTS", "build_tiny_qwen2"]
