"""``codyn route``: pick a model for prompts with a trained router.

The decision and the fallback order are the routing policy's (:mod:`codyn.policy`), the
same the server runs.

``--target-share P`` turns a wanted share of calls to the most expensive model into a
cost weight the way training does (:mod:`codyn.evaluation.calibration`): the smallest weight
whose share is at most P on the router's out-of-fold predictions of its training split
(``oof_predictions.parquet`` beside router.json), never on rows it was fitted on. ``--target
NAME`` uses a weight router.json records (``parity``, ``budget-0.5``, ``share-0.2`` ...). A
router saved before out-of-fold calibration existed has neither: ``--target-share`` then
falls back to its in-sample predictions of its training prompts (read back from the targets
files router.json lists, when still there and unchanged), else to the prompts given, and
says so, since both favour the router.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from codyn.errors import CodynError, InputError
from codyn.io import decode_utf8, read_text, sha256_file, sha256_text
from codyn.policy import (
    NO_CALIBRATION,
    adjusted_scores,
    auto_weight,
    calibrate,
    fallback_order,
    score_dict,
    share_most_expensive,
)
from codyn.validate import Where, no_surrogates

# --- the cost weight for a target -------------------------------------------------------------


def training_prompts(router_dir: str | Path) -> list[str] | None:
    """The train-split prompts a router was fitted on, read back from the targets files its
    router.json names (``trained_on``); None when any is missing or changed since."""
    from codyn.routers.base import read_router_json
    from codyn.routing_data import read_targets

    sources = read_router_json(router_dir).get("trained_on") or []
    if not sources:
        return None
    prompts: list[str] = []
    for source in sources:
        path = Path(source.get("path", ""))
        if not path.is_file() or (source.get("sha256") and sha256_file(path) != source["sha256"]):
            return None
        frame, _ = read_targets(path)
        if "split" in frame.columns:
            frame = frame[frame["split"] == "train"]
        prompts += frame["prompt"].astype(str).tolist()
    return prompts or None


def weight_for_share(
    router, router_dir, target_share: float, given_scores
) -> tuple[float, float, str]:
    """Cost weight for a wanted share of calls to the most expensive model.

    Chosen on the router's out-of-fold predictions (:mod:`codyn.evaluation.calibration`);
    for a router without them, on its in-sample predictions of its training prompts, else on
    the prompts given, with the source saying so. Returns (weight, share on the rows it was
    chosen on, what those rows were)."""
    from codyn.evaluation import calibration
    from codyn.routers.base import read_router_json

    meta = read_router_json(router_dir)
    oof = calibration.load_oof(router_dir, meta) if meta.get("calibration") else None
    if oof is not None:
        chosen = calibration.choose_weight(
            oof.pred, oof.scores, oof.costs, calibration.Target("share", target_share), oof.sbs
        )
        source = (
            f"chosen on out-of-fold predictions of the router's {len(oof.task_ids)} training "
            f"prompts ({oof.n_folds} folds)"
        )
        return chosen["cost_weight"], chosen["share_most_expensive"], source
    prompts = training_prompts(router_dir)
    if prompts is not None:
        scores = np.asarray(router.predict_scores(prompts), dtype=float)
        source = (
            f"{NO_CALIBRATION}; calibrated on in-sample predictions of its {len(prompts)} "
            "training prompts, which favour the router"
        )
    else:
        scores = np.asarray(given_scores, dtype=float)
        source = (
            f"{NO_CALIBRATION}; calibrated on the {len(scores)} prompt(s) given "
            "(the router's training prompts are not available)"
        )
    weight = float(calibrate(scores, router.costs, target_share))
    return weight, share_most_expensive(scores, router.costs, weight), source


# --- prompts ----------------------------------------------------------------------------------


def _stdin_text(name: str) -> str:
    buffer = getattr(sys.stdin, "buffer", None)
    if buffer is None:  # already text (a wrapped or replaced stdin)
        return sys.stdin.read()
    return decode_utf8(buffer.read(), name)


def read_prompts(source: str, fmt: str = "auto") -> list[tuple[str, str]]:
    """(id, prompt) pairs from a file or ``-`` (stdin).

    Formats: ``jsonl`` (objects with ``prompt``, ids from ``id``/``task_id``; task files work
    as they are), ``lines`` (one prompt per non-empty line), ``text`` (the whole input is one
    prompt). ``auto`` = jsonl for ``*.jsonl(.gz)``, else lines.
    """
    name = "<stdin>" if source == "-" else source
    if fmt == "auto":
        fmt = "jsonl" if source.endswith((".jsonl", ".jsonl.gz")) else "lines"
    # Bytes in, decoded once by the one policy (codyn.io.decode_utf8: UTF-8 or a clear error).
    text = _stdin_text(name) if source == "-" else read_text(source)
    if fmt == "jsonl":
        out = []
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except (json.JSONDecodeError, RecursionError) as exc:
                reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
                raise InputError(
                    f"malformed JSON ({reason})", path=name, record=f"line {lineno}"
                ) from None
            prompt = rec.get("prompt") if isinstance(rec, dict) else None
            if not isinstance(prompt, str) or not prompt.strip():
                raise InputError(
                    "missing or empty prompt", path=name, record=f"line {lineno}", field="prompt"
                )
            rid = rec.get("id", rec.get("task_id", str(lineno)))
            where = Where(path=name, record=f"line {lineno}")
            no_surrogates(prompt, replace(where, field="prompt"))
            out.append((no_surrogates(str(rid), replace(where, field="id")), prompt))
        return out
    if fmt == "text":
        return [("1", text)] if text.strip() else []
    return [(str(i), line) for i, line in enumerate(text.splitlines(), start=1) if line.strip()]


# --- CLI ----------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="codyn route",
        description="Pick a model for each prompt with a trained router and show every "
        "model's predicted score.",
        epilog="--target-share and --target choose the cost weight on the router's out-of-fold "
        "predictions of its training split (router.json 'calibration', oof_predictions.parquet). "
        "A router saved without them: --target-share falls back to in-sample predictions of its "
        "training prompts, else to the prompts given, and says so; --target falls back to w = 0.",
    )
    p.add_argument("prompts", nargs="*", help="prompts (or use --file, or pipe into stdin)")
    p.add_argument("--router", required=True, help="router folder (with router.json)")
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--cost-weight", type=float, default=None, help="w in score + w * CS^-1 (default 0)"
    )
    g.add_argument(
        "--target-share",
        type=float,
        default=None,
        help="wanted share of calls to the most expensive model; picks the cost weight",
    )
    g.add_argument(
        "--target",
        default=None,
        help="a calibration target router.json records: parity, budget-B (B = fraction of the "
        "single best model's cost), share-P",
    )
    p.add_argument("--file", help="read prompts from this file ('-' = stdin)")
    p.add_argument(
        "--format",
        choices=["auto", "jsonl", "lines", "text"],
        default="auto",
        help="prompt file format",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per prompt on stdout")
    return p


class _Usage(Exception):
    """A usage problem: printed as it is, exit status 2."""


def _items(args) -> list[tuple[str, str]]:
    """(id, prompt) pairs from the arguments, --file or stdin."""
    if args.file:
        items = read_prompts(args.file, args.format)
    elif args.prompts:
        # An argument with bytes that are not UTF-8 arrives with lone surrogates.
        items = [
            (str(i), no_surrogates(p, Where(record=f"argument {i}", field="prompt")))
            for i, p in enumerate(args.prompts, start=1)
        ]
        blank = [rid for rid, p in items if not p.strip()]
        if blank:
            raise InputError("empty prompt", record=f"argument {blank[0]}", field="prompt")
    elif not sys.stdin.isatty():
        items = read_prompts("-", "text" if args.format == "auto" else args.format)
    else:
        raise _Usage("no prompts (give them as arguments, --file, or stdin)")
    if not items:
        raise _Usage("no prompts in the input")
    return items


def _check_weight_args(args) -> None:
    if args.cost_weight is not None and (
        not math.isfinite(args.cost_weight) or args.cost_weight < 0
    ):
        raise _Usage("--cost-weight must be a finite number >= 0")
    if args.target_share is not None and not 0.0 <= args.target_share <= 1.0:
        raise _Usage("--target-share must be in [0, 1]")


def _weight(args, router, scores) -> tuple[float, dict | None]:
    """The cost weight the arguments ask for, and how it was calibrated (None: given)."""
    if args.target_share is not None:
        weight, share, source = weight_for_share(router, args.router, args.target_share, scores)
        return weight, {"target_share": args.target_share, "share": share, "source": source}
    if args.target is not None:
        weight, source = auto_weight(router, None, args.target)
        return weight, {"target": args.target, "source": source}
    return float(args.cost_weight or 0.0), None


def _print_text(rid: str, models, costs, row, total, order, weight: float) -> None:
    chosen = models[order[0]] if order else None
    print(f"[{rid}] -> {chosen}   (cost weight {weight:.4g})")
    width = max(len(m) for m in models)
    for j, m in enumerate(models):
        mark = "*" if order and j == order[0] else " "
        s = "-inf" if not np.isfinite(row[j]) else f"{row[j]:+.4f}"
        t = "-inf" if not np.isfinite(total[j]) else f"{total[j]:+.4f}"
        print(f"  {mark} {m:<{width}}  score {s}  with cost {t}  cost {float(costs[j]):g}")


def _json_record(rid: str, prompt: str, models, row, order, weight, calibration) -> dict:
    rec = {
        "id": rid,
        "prompt_sha256": sha256_text(prompt),
        "model": models[order[0]] if order else None,
        "cost_weight": weight,
        "scores": score_dict(models, row),
        "fallback_order": [models[i] for i in order],
    }
    if calibration:
        rec["calibration"] = calibration
    return rec


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        items = _items(args)
        _check_weight_args(args)
        from codyn.routers import load_router

        router = load_router(args.router)
        scores = np.asarray(router.predict_scores([p for _, p in items]), dtype=float)
        weight, calibration = _weight(args, router, scores)
    except _Usage as exc:
        print(f"codyn route: {exc}", file=sys.stderr)
        return 2
    except CodynError as exc:
        print(f"codyn route: {exc}", file=sys.stderr)
        return 1

    models = list(router.models)
    totals = adjusted_scores(scores, router.costs, weight)
    if calibration and not args.json:
        what = calibration["source"]
        if "share" in calibration:
            what = (
                f"share of calls to the most expensive model {calibration['share']:.3f} "
                f"(target {args.target_share}; {what})"
            )
        print(f"cost weight {weight:.4g}: {what}", file=sys.stderr)
    for (rid, prompt), row, total in zip(items, scores, totals, strict=True):
        order = fallback_order(row, router.costs, weight)
        if args.json:
            rec = _json_record(rid, prompt, models, row, order, weight, calibration)
            print(json.dumps(rec, sort_keys=True))
        else:
            _print_text(rid, models, router.costs, row, total, order, weight)
    return 0


if __name__ == "__main__":
    sys.exit(main())
