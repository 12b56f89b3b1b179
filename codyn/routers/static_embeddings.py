"""The fast router tier's featurisers: features in microseconds, not gigaflops (issue 20).

``encoder: static-minilm`` -- static token embeddings distilled offline from the shipped
MiniLM, model2vec's recipe (Tulkens & van Dongen 2024) without its package: every
vocabulary token goes through MiniLM once (``[CLS] token [SEP]``, mean-pooled, as the
sentence encoder pools), PCA to ``static_dims`` dimensions, then SIF weighting by
Zipf rank (``w = 1e-4 / (1e-4 + p(rank))``, token id as the rank, as model2vec does), so
frequent tokens count less. At run time a prompt is its fast-tokenizer tokens' rows,
mean-pooled and L2-normalised: one table lookup per token.

The distillation is deterministic (fixed model, full SVD, no sampling) and runs once
per machine: the table is cached under ``$CODYN_CACHE/static`` (default
``cache/static``) as a save_pretrained-style folder (config.json, embeddings.npy,
tokenizer.json), and a router that uses it copies the folder into its own checkpoint
(``encoder/``), so a saved router needs neither the cache nor MiniLM to run.

``encoder: hashed`` -- hashed n-gram counts (scikit-learn's HashingVectorizer): character
3-5-grams inside word boundaries plus word 1-2-grams, ``2**hash_bits`` buckets each,
L2-normalised. Stateless: nothing to distill or save.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np

from codyn.errors import InputError
from codyn.io import atomic_path, write_json

log = logging.getLogger(__name__)
STATIC = "static-minilm"
HASHED = "hashed"
FAST_ENCODERS = (STATIC, HASHED)
SIF = 1e-4
TABLE, CONFIG, TOKENIZER = "embeddings.npy", "config.json", "tokenizer.json"
FORMAT = 1


def static_cache_dir() -> Path:
    return Path(os.environ.get("CODYN_CACHE", "cache")) / "static"


def distill_table(source: str, dims: int, batch_size: int = 1024) -> np.ndarray:
    """(vocab, dims) float32 SIF-weighted, PCA-reduced token embeddings of ``source``."""
    import torch
    from sklearn.decomposition import PCA
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModel.from_pretrained(source).eval()
    vocab = len(tokenizer)
    if dims > model.config.hidden_size:
        raise InputError(
            f"static_dims {dims} exceeds the encoder's width {model.config.hidden_size}",
            field="static_dims",
        )
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    parts = []
    with torch.no_grad():
        for start in range(0, vocab, batch_size):
            ids = torch.arange(start, min(vocab, start + batch_size)).unsqueeze(1)
            seq = torch.cat([torch.full_like(ids, cls), ids, torch.full_like(ids, sep)], dim=1)
            hidden = model(input_ids=seq, attention_mask=torch.ones_like(seq)).last_hidden_state
            parts.append(hidden.mean(dim=1).numpy())
    raw = np.vstack(parts).astype(np.float64)
    # Full SVD: the randomized solver would make the table depend on a seed and BLAS.
    reduced = PCA(n_components=dims, svd_solver="full").fit_transform(raw)
    inv_rank = 1.0 / np.arange(2, vocab + 2)
    proba = inv_rank / inv_rank.sum()
    return (reduced * (SIF / (SIF + proba))[:, None]).astype(np.float32)


class StaticEmbeddings:
    """``encode(texts) -> (n, dims) float32``: mean of the prompt's token rows."""

    def __init__(self, table: np.ndarray, tokenizer, config: dict):
        self.table = table
        # a tokenizers.Tokenizer; the shipped tokenizer.json pads and truncates, which
        # would pool pad rows and drop a long prompt's tail
        tokenizer.no_padding()
        tokenizer.no_truncation()
        self.tokenizer = tokenizer
        self.config = config

    @classmethod
    def distill(cls, source: str, source_key: str, dims: int) -> StaticEmbeddings:
        from tokenizers import Tokenizer

        table = distill_table(source, dims)
        tokenizer = Tokenizer.from_file(str(Path(source) / TOKENIZER))
        config = {"format": FORMAT, "source_key": source_key, "dims": dims, "sif": SIF,
                  "vocab_size": int(table.shape[0])}  # fmt: skip
        return cls(table, tokenizer, config)

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.table.shape[1]), dtype=np.float32)
        for i, enc in enumerate(self.tokenizer.encode_batch(list(texts), add_special_tokens=False)):
            if enc.ids:
                out[i] = self.table[enc.ids].mean(axis=0)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms > 0, norms, 1.0)

    def save(self, folder: Path) -> Path:
        """save_pretrained-style: config.json, embeddings.npy, tokenizer.json (atomic each;
        config.json last, so a folder with it is complete)."""
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder / TABLE) as tmp, open(tmp, "wb") as fh:
            np.save(fh, self.table, allow_pickle=False)
        with atomic_path(folder / TOKENIZER) as tmp:
            tmp.write_text(self.tokenizer.to_str(), encoding="utf-8")
        write_json(folder / CONFIG, self.config)
        return folder

    @classmethod
    def load(cls, folder: Path) -> StaticEmbeddings:
        from tokenizers import Tokenizer

        for name in (CONFIG, TABLE, TOKENIZER):
            if not (folder / name).is_file():
                raise InputError("static embedding table incomplete: file missing",
                                 path=folder / name)  # fmt: skip
        try:
            config = json.loads((folder / CONFIG).read_text(encoding="utf-8"))
            dims, vocab = int(config["dims"]), int(config["vocab_size"])
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"unreadable static embedding config ({exc})",
                             path=folder / CONFIG) from None  # fmt: skip
        try:
            table = np.load(folder / TABLE, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise InputError(f"damaged static embedding table ({exc})",
                             path=folder / TABLE) from None  # fmt: skip
        if table.shape != (vocab, dims) or table.dtype != np.float32:
            raise InputError(
                f"static embedding table is {table.dtype}{table.shape}, config.json says "
                f"float32({vocab}, {dims})",
                path=folder / TABLE,
            )
        try:
            tokenizer = Tokenizer.from_file(str(folder / TOKENIZER))
        except Exception as exc:  # the Rust tokenizer raises a bare Exception
            raise InputError(f"damaged tokenizer ({str(exc)[:200]})",
                             path=folder / TOKENIZER) from None  # fmt: skip
        return cls(table, tokenizer, config)


def cached_static(source: str, source_key: str, dims: int) -> StaticEmbeddings:
    """The distilled table of ``source`` at ``dims``, distilled once per cache."""
    folder = static_cache_dir() / f"{source_key}-d{dims}"
    if (folder / CONFIG).is_file():
        return StaticEmbeddings.load(folder)
    log.info("distilling static token embeddings from %s (%d dims, once)", source, dims)
    static = StaticEmbeddings.distill(source, source_key, dims)
    # Distil into a private folder, then rename: concurrent jobs never see half a table.
    scratch = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
    static.save(scratch)
    try:
        scratch.rename(folder)
    except OSError:  # another job won the race; its table is the same
        shutil.rmtree(scratch, ignore_errors=True)
    return static


class HashedNgrams:
    """``encode(texts) -> (n, 2 * 2**bits) float32`` hashed char and word n-grams."""

    def __init__(self, bits: int = 11):
        from sklearn.feature_extraction.text import HashingVectorizer

        common = {"n_features": 2**bits, "alternate_sign": False, "norm": "l2",
                  "dtype": np.float32}  # fmt: skip
        self.chars = HashingVectorizer(analyzer="char_wb", ngram_range=(3, 5), **common)
        self.words = HashingVectorizer(
            analyzer="word", ngram_range=(1, 2), token_pattern=r"(?u)\b\w+\b|[^\w\s]", **common
        )

    def encode(self, texts: list[str]) -> np.ndarray:
        texts = list(texts)
        x = np.hstack(
            [self.chars.transform(texts).toarray(), self.words.transform(texts).toarray()]
        )
        return x / np.sqrt(2.0, dtype=np.float32)
