"""Each router type's parameter schema, checked when the config is loaded.

A router entry in config (``routers.<name>``) is the router's params plus ``type`` and
the run keys (``gpu``, ``mem_mb``, ``runtime``). Its params are checked here, against
the schema of its own type -- an unknown key, a wrong type or an out-of-range value is a
:class:`~codyn.errors.ConfigError` naming ``routers.<name>.<param>`` at config time --
not after hours of training. This module imports no router (no torch), so the config
loader can use it; ``tests/test_robust.py`` checks that every key of every router
class's ``defaults`` has a schema here.
"""

from __future__ import annotations

import copy
from functools import cache

import jsonschema

_NAME = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]*$"}
_POS_INT = {"type": "integer", "minimum": 1}
_NONNEG_INT = {"type": "integer", "minimum": 0}
_POS = {"type": "number", "exclusiveMinimum": 0}
_NONNEG = {"type": "number", "minimum": 0}
_THREADS = {"type": ["integer", "null"], "minimum": 1}
_DEVICE = {"type": "string", "pattern": "^(auto|cpu|mps|cuda(:[0-9]+)?)$"}
_HEADER = {"oneOf": [{"type": "boolean"}, {"enum": ["auto", "true", "false"]}]}
_ENCODER = {"type": "string", "minLength": 1}
# how a transformer encoder runs (codyn.routers.onnx_encoder); not ``runtime``, which is
# the job's time limit
_ENCODER_RUNTIME = {"enum": ["torch", "onnx", "onnx-int8"]}

# Keys every router entry may carry: how to run the job, and which models to pick from.
_COMMON = {
    "type": {"type": "string"},
    "gpu": {"type": "boolean"},
    "mem_mb": _POS_INT,
    "runtime": _POS_INT,
    "candidates": {
        "oneOf": [
            {"enum": ["all", "pareto", "sbs-pair"]},
            {"type": "array", "items": _NAME, "minItems": 1, "uniqueItems": True},
        ]
    },
    "pair_max_cost_ratio": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
    # folds of the out-of-fold cost-weight calibration (codyn.evaluation.calibration)
    "calibration_folds": _NONNEG_INT,
}
_EMBEDDING = {
    "encoder": _ENCODER,
    "embed_batch_size": _POS_INT,
    "embed_max_length": _POS_INT,
    "encoder_runtime": _ENCODER_RUNTIME,
    # the fast tier (codyn.routers.static_embeddings)
    "static_dims": _POS_INT,
    "hash_bits": {"type": "integer", "minimum": 4, "maximum": 24},
}
_TRAINING = {
    "base_model": {"type": "string", "minLength": 1},
    "epochs": _POS_INT,
    "lr": _POS,
    "warmup_steps": _NONNEG_INT,
    "batch_size": _POS_INT,
    "grad_accum": _POS_INT,
    "max_length": _POS_INT,
    "bf16": {"type": "boolean"},
    "device": _DEVICE,
    "predict_batch_size": _POS_INT,
    "threads": _THREADS,
}
_AR = {
    **_TRAINING,
    "max_steps": {"type": ["integer", "null"], "minimum": 1},
    "lora_r": _POS_INT,
    "lora_alpha": _POS,
    "lora_dropout": {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
    "lora_target_modules": {
        "oneOf": [
            {"type": "string", "minLength": 1},
            {"type": "array", "items": {"type": "string"}, "minItems": 1},
        ]
    },
    "decoding": {"enum": ["constrained", "free"]},
    "on_malformed": {"enum": ["zero", "fallback"]},
    "gradient_checkpointing": {"type": "boolean"},
    "chat_template": {"oneOf": [{"type": "boolean"}, {"enum": ["auto", "true", "false"]}]},
}

PARAMS: dict[str, dict] = {
    "cls": {
        **_TRAINING,
        "weight_decay": _NONNEG,
        "max_grad_norm": _POS,
        "pooling": {"enum": ["model", "mean", "auto"]},
        "objective": {"enum": ["mse", "bce"]},
        "head_init": {"enum": ["random", "probe"]},
        "probe_C": _POS,
        "probe_alpha": _POS,
        "header": _HEADER,
        "header_weight": _NONNEG,
        "gradient_checkpointing": {"type": "boolean"},
        "optimizer": {"enum": ["adamw", "adamw-8bit"]},
        "encoder_runtime": _ENCODER_RUNTIME,
    },
    "ar-sft": _AR,
    "ar-grpo": {
        **_AR,
        "num_generations": {"type": "integer", "minimum": 2},
        "reward": {"enum": ["algorithm1", "shaped"]},
        "temperature": _POS,
        "beta": _NONNEG,
    },
    "rorf": {
        **_EMBEDDING,
        "pair": {
            "type": "array",
            "items": _NAME,
            "minItems": 2,
            "maxItems": 2,
            "uniqueItems": True,
        },
        "n_estimators": _POS_INT,
        "threshold": {"type": "number", "minimum": 0, "maximum": 1},
        "max_depth": {"type": ["integer", "null"], "minimum": 1},
    },
    "knn": {**_EMBEDDING, "k": _POS_INT, "weights": {"enum": ["uniform", "distance"]}},
    "mlp": {
        **_EMBEDDING,
        "hidden": {
            "oneOf": [_POS_INT, {"type": "array", "items": _POS_INT, "minItems": 1}],
        },
        "max_iter": _POS_INT,
        "alpha": _NONNEG,
        "lr": _POS,
    },
    "linear": {
        **_EMBEDDING,
        "C": _POS,
        "alpha": _POS,
        "max_iter": _POS_INT,
        "header": _HEADER,
        "header_weight": _NONNEG,
    },
    "random": {},
    "oracle": {},
    "sbs": {},
    "cheapest": {},
}


@cache
def _validator(router_type: str) -> jsonschema.Draft202012Validator:
    schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {**copy.deepcopy(_COMMON), **copy.deepcopy(PARAMS[router_type])},
    }
    return jsonschema.Draft202012Validator(schema)


def param_problems(router_type: str, params: dict) -> list[tuple[str, str]]:
    """(param, message) for every problem of ``params`` under ``router_type``'s schema,
    the first unknown or invalid key first; [] when they are valid. An unknown type is
    the config schema's business (its ``type`` enum)."""
    if router_type not in PARAMS:
        return [("type", f"unknown router type {router_type!r} (allowed: {sorted(PARAMS)})")]
    out = []
    errors = sorted(_validator(router_type).iter_errors(params), key=lambda e: list(e.path))
    for error in errors:
        if error.validator == "additionalProperties":
            known = sorted(_validator(router_type).schema["properties"])
            for extra in sorted(set(error.instance) - set(known)):
                out.append(
                    (
                        extra,
                        f"unknown parameter for a {router_type} router (allowed: "
                        f"{', '.join(known)})",
                    )
                )
            continue
        param = ".".join(str(p) for p in error.path) or "<params>"
        message = error.message
        if error.validator in ("oneOf", "enum"):
            message = f"{error.instance!r} is not allowed ({_describe(error.schema)})"
        out.append((param, message))
    return out


def _describe(schema: dict) -> str:
    if "enum" in schema:
        return "one of " + ", ".join(map(str, schema["enum"]))
    if "oneOf" in schema:
        return " or ".join(_describe(s) for s in schema["oneOf"])
    return str(schema.get("type", schema))
