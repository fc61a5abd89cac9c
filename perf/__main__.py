"""`python -m perf`: the command line of the eager-vs-compiled comparison.

    python -m perf --quick                     # under a minute: the README's first command
    python -m perf                             # the full sizes of WORKLOADS.md (minutes)
    python -m perf --workloads W1,W3 --backend interpret --json results.json --plot s.png
    python -m perf --markdown                  # the tables for perf/RESULTS.md

Exits 1 when a compiled result differs from eager (those workloads get no time), else 0.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import sys
import tempfile

ALL = ("W1", "W2", "W3", "W4", "W5", "W6", "W7")


def parse(argv: list | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m perf", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="smaller sizes and fewer repetitions (under a minute on 2 cores)")
    ap.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # for the tests
    ap.add_argument("--workloads", default=",".join(ALL),
                    help="comma-separated ids among W1..W7 (default: all); W6 measures the "
                    "compile latency of those of W1..W4 given, or of all four")
    ap.add_argument("--backend", default="llvm", choices=("llvm", "cuda", "interpret", "eager"),
                    help="tj.compile backend (default llvm; interpret runs if llvm is missing)")
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    ap.add_argument("--plot", metavar="PATH",
                    help="also draw speedups and fraction of floor reached (needs matplotlib)")
    ap.add_argument("--markdown", action="store_true", help="print markdown tables")
    ap.add_argument("--no-peers", action="store_true", help="skip the torch and jax columns")
    args = ap.parse_args(argv)
    ids = [w.strip().upper() for w in args.workloads.split(",") if w.strip()]
    bad = [w for w in ids if w not in ALL]
    if bad or not ids:
        ap.error(f"unknown workload {', '.join(bad) or '(none)'}; choose among {','.join(ALL)}")
    args.ids = ids
    args.scale = "tiny" if args.tiny else "quick" if args.quick else "full"
    if args.plot and importlib.util.find_spec("matplotlib") is None:
        ap.error("--plot needs matplotlib, which is not installed: "
                 "pip install matplotlib (or tracejit[plot]), or leave out --plot")
    return args


def main(argv: list | None = None) -> int:
    args = parse(argv)
    # A fresh kernel cache, so that "first call" means a cold compile in this run too.
    # Fresh compile caches (tracejit's, and torch.compile's when it runs), so that a "first
    # call" is a cold compile in this run too.
    cache = tempfile.mkdtemp(prefix="tracejit-perf-")
    fresh = {"TRACEJIT_CACHE_DIR": os.path.join(cache, "tracejit"),
             "TORCHINDUCTOR_CACHE_DIR": os.path.join(cache, "torchinductor")}
    old = {k: os.environ.get(k) for k in fresh}
    os.environ.update(fresh)
    try:
        from . import harness, report
        from .peers import available
        peers, notes = ([], ["peers skipped (--no-peers)"]) if args.no_peers else \
            available(quick=args.scale != "full")
        res = harness.run(args.ids, args.scale, args.backend, peers, notes)
        res.machine = report.machine_info(args.backend)
        print(report.render(res, markdown=args.markdown))
        if args.json:
            with open(args.json, "w") as f:
                json.dump(report.to_json(res), f, indent=1)
            print(f"results written to {args.json}")
        if args.plot:
            report.plot(res, args.plot)
            print(f"plot written to {args.plot}")
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(cache, ignore_errors=True)
    return 1 if res.mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
