"""Eager per-op overhead: microseconds per `a + b` on 16-element float32 tensors.

    python -m perf.overhead            # about 10 s
    python -m perf.overhead --quick    # about 2 s

Times, in one process and interleaved (the machine is shared and noisy), numpy's `a + b`, then
tracejit's `a + b` without grad and with `requires_grad=True` on both inputs (which records an
autograd node per op), and torch's when it is installed. Each figure is the median over rounds
of the best-of-N loop, so a background burst does not inflate it. The target is <= 5 us per op
without grad; the ratio to numpy is the number to compare between machines.
"""
from __future__ import annotations

import argparse
import statistics
import timeit

import numpy as np


def per_call_us(fn, number: int, repeat: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def measure(rounds: int = 7, number: int = 20_000, repeat: int = 5) -> dict:
    import tracejit as tj

    an, bn = np.ones(16, np.float32), np.full(16, 2.0, np.float32)
    a, b = tj.ones(16), tj.full((16,), 2.0)
    ag, bg = tj.ones(16, requires_grad=True), tj.full((16,), 2.0, requires_grad=True)
    cases = {"numpy a + b": lambda: an + bn,
             "tracejit a + b": lambda: a + b,
             "tracejit a + b (requires_grad)": lambda: ag + bg}
    try:
        import torch
        at, bt = torch.ones(16), torch.full((16,), 2.0)
        atg, btg = at.clone().requires_grad_(), bt.clone().requires_grad_()
        cases["torch a + b"] = lambda: at + bt
        cases["torch a + b (requires_grad)"] = lambda: atg + btg
    except ImportError:
        pass
    assert (a + b).tolist() == (an + bn).tolist()
    for f in cases.values():  # warm up
        f()
    samples = {k: [] for k in cases}
    for _ in range(rounds):  # interleaved, so drift hits every case alike
        for k, f in cases.items():
            samples[k].append(per_call_us(f, number, repeat))
    return {k: statistics.median(v) for k, v in samples.items()}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m perf.overhead", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds (about 2 s)")
    args = ap.parse_args(argv)
    res = measure(rounds=3, number=5_000, repeat=3) if args.quick else measure()
    base = res["numpy a + b"]
    print("eager per-op overhead, a + b on 16-element float32 tensors (median of rounds)")
    for k, us in res.items():
        print(f"  {k:34s} {us:7.2f} us   {us / base:6.1f}x numpy")
    ok = res["tracejit a + b"] <= 5.0
    print(f"target <= 5 us per op without grad: {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
