"""Time eager against compiled code, and check that both give the same result.

This module owns the rules every tracejit timing follows (warm-up, then the median and the
min-max spread of repeated runs with the garbage collector off), the correctness rule (the
compiled loss and every gradient against eager; a wrong result never gets a time) and the format
of one result line. `perf/` (the W1..W7 comparison) and `compare`, for a user's own function,
both use it, so their numbers read the same way:

    >>> from tracejit.utils.benchmark import compare
    >>> compare(loss_fn, x, w, backward=True)         # doctest: +SKIP
    eager          first call   compiled       speedup  kernels  check
    1.23 ms (...)  210 ms       0.41 ms (...)  3.0x     1+1      ok
"""
from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

RTOL = 1e-4  # float32 results: relative tolerance per element ...
ATOL_SCALE = 1e-5  # ... plus an absolute one scaled to the largest magnitude in the array


# --- timing ---------------------------------------------------------------------------------
@dataclass
class Timing:
    """Seconds per call: the median and the min-max spread of `n` repetitions."""

    median: float
    min: float
    max: float
    n: int

    def __str__(self) -> str:
        return fmt_timing(self)

    def as_dict(self) -> dict:
        return {"median_s": self.median, "min_s": self.min, "max_s": self.max, "reps": self.n}


def fmt_time(seconds: float | None) -> str:
    """Three significant digits in the unit that suits: '812 ns', '12.3 us', '1.23 s'."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            break
    else:
        unit, scale = "ns", 1e-9
    v = seconds / scale
    return f"{v:.3g} {unit}" if v < 100 else f"{v:.0f} {unit}"


def fmt_timing(t: Timing | None) -> str:
    """'1.23 ms (1.20-1.31)': median, then min-max in the median's unit."""
    if t is None:
        return "-"
    med = fmt_time(t.median)
    unit = med.split()[-1]
    scale = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}[unit]
    return f"{med} ({_num(t.min / scale)}-{_num(t.max / scale)})"


def _num(v: float) -> str:
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def time_fn(fn: Callable[[], Any], *, warmup: int = 2, reps: int | None = None,
            min_reps: int = 3, max_reps: int = 50, target_s: float = 0.5,
            number: int = 1) -> Timing:
    """Time `fn()`: `warmup` untimed calls, then `reps` timed repetitions of `number` calls.

    With `reps=None` the count is chosen so that the repetitions take about `target_s`, within
    [min_reps, max_reps]. Returns seconds per call.
    """
    return time_fns([fn], warmup=warmup, reps=reps, min_reps=min_reps, max_reps=max_reps,
                    target_s=target_s, number=number)[0]


def time_fns(fns: Sequence[Callable[[], Any]], *, warmup: int = 2, reps: int | None = None,
             min_reps: int = 3, max_reps: int = 50, target_s: float = 0.5,
             number: int = 1) -> list[Timing]:
    """Time several functions, their repetitions interleaved (a, b, a, b, ...).

    On a shared machine the load drifts during a run; interleaving makes the drift fall on all
    of them alike, so that their ratio (a speedup) stays fair. `target_s` is per function.
    """
    rounds = max(warmup, 1) if reps is None else warmup
    est = 0.0  # seconds per repetition of all of them: the last warm-up round, timed
    for fn in fns:
        for i in range(rounds):
            last = i == rounds - 1
            t0 = time.perf_counter()
            for _ in range(number if last else 1):
                fn()
            if last:
                est += time.perf_counter() - t0
    if reps is None:
        reps = int(min(max_reps, max(min_reps, target_s * len(fns) // max(est, 1e-9))))
    times: list[list[float]] = [[] for _ in fns]
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()  # a collection inside one repetition would be noise, not the function's cost
    try:
        for _ in range(reps):
            for fn, ts in zip(fns, times):
                t0 = time.perf_counter()
                for _ in range(number):
                    fn()
                ts.append((time.perf_counter() - t0) / number)
    finally:
        if enabled:
            gc.enable()
    return [Timing(float(np.median(ts)), min(ts), max(ts), len(ts)) for ts in times]


# --- what is run ----------------------------------------------------------------------------
def _tensors(out) -> list:
    import tracejit as tj
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _tensors(o)]
    if isinstance(out, dict):
        return [t for o in out.values() for t in _tensors(o)]
    return [out] if tj.is_tensor(out) else []


@dataclass
class Case:
    """One function to measure: `fn(*args)` run eagerly or compiled, forward and maybe backward.

    `params` are the tensors whose gradients are compared (default: the args that require grad;
    add module parameters `fn` closes over). `after` runs eagerly after backward in timed steps
    only (an optimizer step); `number` calls make one timed repetition (microsecond functions).
    """

    fn: Callable
    args: tuple = ()
    params: list | None = None
    backward: bool = True
    after: Callable[[], Any] | None = None
    number: int = 1
    kwargs: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.params is None:
            self.params = [a for a in _tensors(list(self.args)) if a.requires_grad]

    def run(self, f: Callable) -> Any:
        """Clear the gradients, call `f`, backward (a non-scalar output is summed first)."""
        for p in self.params:
            p.grad = None
        out = f(*self.args, **self.kwargs)
        if self.backward:
            outs = [t for t in _tensors(out) if t.requires_grad]
            if not outs:
                raise ValueError("backward=True but no output of the function requires grad")
            loss = outs[0] if outs[0].ndim == 0 and len(outs) == 1 else sum(t.sum() for t in outs)
            loss.backward()
        return out

    def step(self, f: Callable) -> Callable[[], None]:
        """A zero-argument callable doing one timed step with `f`."""
        def step() -> None:
            self.run(f)
            if self.after is not None:
                self.after()
        return step

    def collect(self, out) -> tuple[list[str], list[np.ndarray]]:
        """Names and copies of the outputs and, after backward, every gradient in `params`."""
        names, arrays = [], []
        for i, t in enumerate(_tensors(out)):
            names.append("loss" if i == 0 and t.ndim == 0 else f"output {i}")
            arrays.append(np.array(t.detach().numpy(), copy=True))
        if self.backward:
            for i, p in enumerate(self.params):
                names.append(f"grad {i}")
                g = p.grad
                arrays.append(None if g is None else np.array(g.numpy(), copy=True))
        return names, arrays


def check_close(ref: Sequence[np.ndarray | None], got: Sequence[np.ndarray | None],
                names: Sequence[str], rtol: float = RTOL,
                atol_scale: float = ATOL_SCALE) -> tuple[bool, float, str]:
    """(ok, max abs error, where): `got` against `ref`, element by element.

    An element passes when |got - ref| <= rtol*|ref| + atol_scale*max|ref|; NaN and inf must sit
    where the reference has them, shapes and the presence of each gradient must agree.
    """
    if len(ref) != len(got):
        return False, math.inf, f"{len(got)} results instead of {len(ref)}"
    worst, worst_at, bad, bad_at = 0.0, "", None, ""
    for name, r, g in zip(names, ref, got):
        if (r is None) != (g is None):
            return False, math.inf, f"{name} ({'missing' if g is None else 'unexpected'})"
        if r is None:
            continue
        r64, g64 = np.asarray(r, np.float64), np.asarray(g, np.float64)
        if r64.shape != g64.shape:
            return False, math.inf, f"{name} (shape {g64.shape} instead of {r64.shape})"
        finite = np.isfinite(r64)
        if not (np.array_equal(r64[~finite], g64[~finite], equal_nan=True)
                and np.isfinite(g64[finite]).all()):
            return False, math.inf, f"{name} (NaN/inf differ)"
        if not finite.any():
            continue
        rf, gf = r64[finite], g64[finite]
        err = np.abs(gf - rf)
        allowed = rtol * np.abs(rf) + atol_scale * float(np.max(np.abs(rf)))
        e = float(np.max(err))
        if bool(np.any(err > allowed)) and (bad is None or e > bad):
            bad, bad_at = e, name
        if e > worst or not worst_at:
            worst, worst_at = max(e, worst), name
    if bad is not None:
        return False, bad, bad_at
    return True, worst, worst_at


def mismatch_text(max_err: float, where: str) -> str:
    return f"MISMATCH (max err {max_err:.2g} in {where})"


# --- compiling ------------------------------------------------------------------------------
def _unavailable(exc: BaseException) -> bool:
    """Does `exc` say that a backend is not there (as opposed to a bug while compiling)?"""
    if isinstance(exc, (NotImplementedError, ImportError)):
        return True
    text = str(exc).lower()
    return any(w in text for w in ("unavailable", "not available", "not implemented",
                                   "unknown backend", "not supported yet"))


def kernels_text(stats: dict | None) -> str:
    """'forward+backward' kernel counts from a compiled function's `last_stats`; '-' unknown."""
    stats = stats or {}
    fwd, bwd = stats.get("kernels_forward"), stats.get("kernels_backward")
    if fwd is None and bwd is None:
        return "-"
    return f"{'-' if fwd is None else fwd}+{'-' if bwd is None else bwd}"


@dataclass
class Result:
    """What `measure` found for one Case. `compiled` is None unless the results agreed."""

    eager: Timing | None = None
    compiled: Timing | None = None
    first_call_s: float | None = None
    kernels: str = "-"
    backend: str | None = None
    status: str = "n/a"  # ok | mismatch | n/a | error
    message: str = ""
    max_err: float | None = None
    compile_s: float | None = None

    @property
    def speedup(self) -> float | None:
        if self.eager is None or self.compiled is None:
            return None
        return self.eager.median / self.compiled.median

    def compiled_text(self) -> str:
        return fmt_timing(self.compiled) if self.status == "ok" else self.message

    def as_dict(self) -> dict:
        return {"eager": self.eager and self.eager.as_dict(),
                "compiled": self.compiled and self.compiled.as_dict(),
                "first_call_s": self.first_call_s, "compile_s": self.compile_s,
                "speedup": self.speedup, "kernels": self.kernels, "backend": self.backend,
                "status": self.status, "message": self.message, "max_err": self.max_err}


def compile_first_call(case: Case, backend: str = "llvm", compiler: Callable | None = None):
    """Compile `case.fn` and make its first call (timed, results collected).

    Returns (compiled fn or None, backend that ran, first-call seconds, (names, arrays), note).
    A missing `tj.compile` or backend gives None and a note; with 'llvm' unavailable the
    'interpret' backend runs instead, and the note says so.
    """
    import tracejit as tj
    if compiler is None:
        if not hasattr(tj, "compile"):
            return None, None, None, None, "n/a (not available)"
        tries = [backend] + (["interpret"] if backend == "llvm" else [])
    else:
        tries = [backend]
    note = ""
    for i, b in enumerate(tries):
        try:
            t0 = time.perf_counter()
            cf = compiler(case.fn) if compiler is not None else tj.compile(case.fn, backend=b)
            out = case.run(cf)
            first = time.perf_counter() - t0
        except Exception as exc:  # noqa: BLE001 - reported in the table instead of a time
            if _unavailable(exc):
                note = f"{b} unavailable ({type(exc).__name__}: {exc})"
                if i + 1 < len(tries):
                    continue
                return None, None, None, None, f"n/a ({note})"
            return None, b, None, None, f"error: {type(exc).__name__}: {str(exc)[:120]}"
        return cf, (b if compiler is None else "custom"), first, case.collect(out), note
    raise AssertionError("unreachable")


def measure(case: Case, *, backend: str = "llvm", compiler: Callable | None = None,
            warmup: int = 2, min_reps: int = 3, max_reps: int = 50, target_s: float = 0.5,
            progress: Callable[[str], None] | None = None,
            reference: tuple | None = None) -> Result:
    """Eager time, compiled first-call time, steady compiled time and agreement for `case`.

    The first compiled call's loss and gradients are checked against eager (`reference`, the
    (names, arrays) of `case.collect`, when already computed) before anything is timed; on a
    mismatch the compiled column holds the mismatch and no time.
    """
    say = progress or (lambda s: None)
    timing = {"warmup": warmup, "min_reps": min_reps, "max_reps": max_reps,
              "target_s": target_s, "number": case.number}
    res = Result()
    say("eager reference")
    names, ref = reference or case.collect(case.run(case.fn))
    say("compiling (first call)")
    cf, res.backend, res.first_call_s, got, note = compile_first_call(case, backend, compiler)
    if cf is not None:
        res.kernels = kernels_text(getattr(cf, "last_stats", None))
        res.compile_s = (getattr(cf, "last_stats", None) or {}).get("compile_s")
        ok, res.max_err, where = check_close(ref, got[1], names)
        res.status = "ok" if ok else "mismatch"
        res.message = note if ok else mismatch_text(res.max_err, where)
        if not ok:  # no time of any kind for a wrong result
            res.first_call_s = res.compile_s = None
    else:
        res.status = "error" if note.startswith("error") else "n/a"
        res.message = note
    if res.status == "ok":
        say(f"timing eager and compiled ({res.backend}), interleaved")
        res.eager, res.compiled = time_fns([case.step(case.fn), case.step(cf)], **timing)
    else:
        say("timing eager")
        res.eager = time_fn(case.step(case.fn), **timing)
    return res


# --- tables ---------------------------------------------------------------------------------
def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]],
                 markdown: bool = False) -> str:
    """Aligned plain text, or a GitHub markdown table."""
    cells = [[str(c) for c in r] for r in rows]
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        lines += ["| " + " | ".join(c.replace("|", "/") for c in r) + " |" for r in cells]
        return "\n".join(lines)
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(fmt.format(*r).rstrip() for r in [list(headers)] + cells)


RESULT_HEADERS = ("eager", "first call", "compiled", "speedup", "kernels", "check")


def result_cells(r: Result) -> list[str]:
    """The cells of one result, in RESULT_HEADERS order (shared with perf/'s table)."""
    check = {"ok": "ok", "mismatch": "MISMATCH", "n/a": "-", "error": "error"}[r.status]
    return [fmt_timing(r.eager), fmt_time(r.first_call_s), r.compiled_text(),
            "-" if r.speedup is None else f"{r.speedup:.2f}x", r.kernels, check]


def compare(fn: Callable, *args, backward: bool = True, backend: str = "llvm",
            params: list | None = None, compiler: Callable | None = None,
            warmup: int = 2, max_reps: int = 50, target_s: float = 0.5,
            verbose: bool = True, **kwargs) -> Result:
    """Time `fn(*args, **kwargs)` eager and compiled, check the results agree, print one row.

    With `backward=True` each run also calls backward (on the sum of the outputs that require
    grad) and compares the gradient of every argument that requires grad, plus `params` (e.g.
    `list(model.parameters())` when `fn` uses a model). `compiler` replaces `tj.compile` (a
    callable fn -> compiled fn). Returns the Result; nothing is timed for a wrong result.
    """
    case = Case(fn, args, params=params, backward=backward, kwargs=kwargs)
    res = measure(case, backend=backend, compiler=compiler, warmup=warmup, max_reps=max_reps,
                  target_s=target_s)
    if verbose:
        print(format_table(RESULT_HEADERS, [result_cells(res)]))
        if res.status == "ok" and res.message:
            print(f"note: {res.message}")
        if res.backend:
            print(f"backend: {res.backend}")
    return res
