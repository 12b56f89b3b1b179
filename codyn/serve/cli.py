"""``codyn serve``: the command line (``codyn serve --router DIR --config CFG``)."""

from __future__ import annotations

import argparse
import logging
import socket
import sys

from codyn.errors import CodynError
from codyn.io import write_text
from codyn.serve.app import create_app
from codyn.serve.settings import serve_settings, tune_router


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="codyn serve",
        description="OpenAI-compatible routing server: POST /v1/chat/completions, GET /v1/models, "
        "GET /health, GET /metrics.",
        epilog="Request model 'codyn-auto' routes with the cost weight router.json records for "
        "serve.target (chosen out-of-fold on the training split) or serve.cost_weight when set, "
        "'codyn-auto:0.25' with cost weight 0.25, a portfolio model name goes to that model "
        "without routing, 'codyn-cascade' runs the verified cascade of serve.cascade. Limits, "
        "timeouts, auth (serve.auth_token_env) and the call log: the 'serve' config section.",
    )
    p.add_argument("--router", required=True, help="router folder (with router.json)")
    p.add_argument(
        "--config", required=True, nargs="+", help="config file(s) defining the router's portfolio"
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (0 = any free port)")
    p.add_argument("--port-file", help="write the port actually bound to this file")
    p.add_argument("--cost-weight", type=float, help="overrides serve.cost_weight")
    p.add_argument("--target", help="overrides serve.target (parity, budget-B, share-P)")
    p.add_argument("--log-path", help="overrides serve.log_path")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return p


def listening_socket(host: str, port: int) -> socket.socket:
    """A bound TCP socket for uvicorn (port 0 = any free port)."""
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY on accepted connections only for
    # sockets that say so, and without it Nagle + delayed ACK add ~40 ms to every response.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def load_app(args: argparse.Namespace):
    """The app for the command line's router and config; (app, router tuning notes)."""
    from codyn.config import load_config
    from codyn.routers import load_router

    overrides: dict = {}
    for key, value in (
        ("cost_weight", args.cost_weight),
        ("log_path", args.log_path),
        ("target", args.target),
    ):
        if value is not None:
            overrides.setdefault("serve", {})[key] = value
    config = load_config(*args.config, overrides=overrides)
    router = load_router(args.router)
    settings = serve_settings(config)
    tuned = tune_router(
        router, threads=settings["router_threads"], quantize=settings["quantize_router"]
    )
    app = create_app(router, config)
    # Load weights and caches now, not on the first user's request.
    router.predict_scores(["warm-up"])
    return app, tuned


def banner(service, url: str, tuned: list[str]) -> str:
    """What the server says at start-up."""
    simulated = "  (SIMULATED backends)" if any(service.simulated.values()) else ""
    auth = "  auth on" if service.token else ""
    router = "  router: " + ", ".join(tuned) if tuned else ""
    cascade = "  cascade: " + service.cascade.policy.name if service.cascade else ""
    return (
        f"codyn serve: {url}  models {service.models}{simulated}{auth}\n"
        f"codyn serve: codyn-auto cost weight {service.auto_weight:.4g} ({service.auto_source})"
        f"{router}{cascade}"
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not 0 <= args.port <= 65535:
        print(f"codyn serve: option --port: {args.port} is not a port (0-65535)", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    try:
        app, tuned = load_app(args)
    except CodynError as exc:
        print(f"codyn serve: {exc}", file=sys.stderr)
        return 1

    import uvicorn

    try:
        sock = listening_socket(args.host, args.port)
    except OSError as exc:
        print(f"codyn serve: cannot listen on {args.host}:{args.port} ({exc})", file=sys.stderr)
        return 1
    port = sock.getsockname()[1]
    url = f"http://{args.host}:{port}/v1"
    print(banner(app.state.service, url, tuned), file=sys.stderr, flush=True)
    server = uvicorn.Server(
        uvicorn.Config(app, log_level=args.log_level, access_log=False, timeout_graceful_shutdown=5)
    )
    if args.port_file:
        write_text(args.port_file, f"{port}\n")
    server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
