"""The server's settings: ``config['serve']`` over the schema's defaults, the portfolio check,
and the router's serving-time speed settings."""

from __future__ import annotations

from codyn.config import load_schema, section_defaults
from codyn.errors import ConfigError, InputError


def serve_settings(config: dict) -> dict:
    """``config['serve']`` over the schema's defaults (one source of defaults)."""
    props = load_schema()["properties"]["serve"]["properties"]
    # keys without a schema default read as None; the defaults come from the one validator
    settings = {key: None for key in props} | section_defaults("serve")
    unknown = set(config.get("serve") or {}) - set(props)
    if unknown:
        raise ConfigError(f"serve.{sorted(unknown)[0]}", "unknown key", allowed=sorted(props))
    settings.update(config.get("serve") or {})
    return settings


def check_portfolio(router, config: dict) -> None:
    """The router's models must all be configured: they are what the server forwards to."""
    missing = [m for m in router.models if m not in config["models"]]
    if missing:
        raise ConfigError(
            "models",
            f"the router was trained on {missing} which the config does not define; "
            "serve it with the config of the portfolio it was trained on",
            allowed=sorted(config["models"]),
        )


def tune_router(router, *, threads: int | None = None, quantize: bool = False) -> list[str]:
    """Serving-time speed settings (``serve.router_threads``, ``serve.quantize_router``);
    returns what was changed, for the start-up message."""
    notes = []
    if threads:
        # torch's intra-op pool is per process; every router that scores with torch
        # (cls, ar-*, knn/mlp on sentence embeddings) uses it
        import torch

        torch.set_num_threads(int(threads))
        notes.append(f"{threads} torch thread(s)")
    if quantize:
        method = getattr(router, "quantize", None)
        if method is None:
            raise ConfigError(
                "serve.quantize_router",
                f"the {getattr(router, 'type', '?')} router holds no torch model to quantize",
            )
        try:
            quantized = method()
        except InputError as exc:
            raise ConfigError("serve.quantize_router", str(exc)) from exc
        notes.append(f"int8 dynamic quantization of {', '.join(quantized)}")
    return notes
