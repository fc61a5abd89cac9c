"""Time eager against compiled code, and check that both give the same result.

This module owns the rules every tracejit timing follows (warm-up, then the median and the
min-max spread of repeated runs with the garbage collector off), the correctness rule (the
compiled loss and every gradient against eager; a wrong result never gets a time) and the format
of one result line. `perf/` (the W1..W7 comparison) and `compare`, for a user's own function,
both use it, so their numbers read the same way:

    >>> from tracejit.utils.benchmark import compare
    >>> compare(loss_fn, x, w, backward=True)                          # doctest: +SKIP
    eager                compiled             speedup  first call  kernels  check
    8.1 ms (6.85-32.6)   3.5 ms (1.90-49.9)   2.31x    34.8 ms     1+1      ok
    backend: llvm
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


_BLOCK = 3     # timed repetitions per block when several functions are interleaved


def time_fns(fns: Sequence[Callable[[], Any]], *, warmup: int = 2, reps: int | None = None,
             min_reps: int = 3, max_reps: int = 50, target_s: float = 0.5,
             number: int = 1) -> list[Timing]:
    """Time several functions, their repetitions interleaved in short blocks (a a a a b b b b
    a a a a ...), the first call of each block untimed.

    On a shared machine the load drifts during a run; interleaving makes the drift fall on all
    of them alike, so that their ratio (a speedup) stays fair. The untimed call re-warms the
    caches the other function evicted, so each is timed warm, as a function timed alone (a
    peer) is. `target_s` is per function.
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
    per_block = _BLOCK if len(fns) > 1 else reps
    try:
        for _ in range(-(-reps // per_block)):
            for fn, ts in zip(fns, times):
                if len(fns) > 1:
                    fn()
                for _ in range(min(per_block, reps - len(ts))):
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
    only (an optimizer step); `number` calls make one timed repetition (microsecond functions);
    `sync` ends every timed step (`tj.cuda.synchronize` for tensors on a GPU).
    """

    fn: Callable
    args: tuple = ()
    params: list | None = None
    backward: bool = True
    after: Callable[[], Any] | None = None
    number: int = 1
    kwargs: dict = field(default_factory=dict)
    param_names: list | None = None  # for messages: "MISMATCH (... in grad w)"
    sync: Callable[[], Any] | None = None  # waits for queued device work (CUDA) before a clock
    # restores what `fn` itself updates (a whole training step: parameters, optimizer state)
    # before each checked call, so that eager and compiled start from the same state
    reset: Callable[[], Any] | None = None
    backward_inside: bool = False    # fn calls backward() itself (a whole training step)

    def __post_init__(self) -> None:
        if self.params is None:
            self.params = [a for a in _tensors(list(self.args)) if a.requires_grad]

    def run(self, f: Callable) -> Any:
        """Clear the gradients, call `f`, backward (a non-scalar output is summed first)."""
        for p in self.params:
            p.grad = None
        out = f(*self.args, **self.kwargs)
        if self.backward and not self.backward_inside:
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
            if self.sync is not None:
                self.sync()
        return step

    def collect(self, out) -> tuple[list[str], list[np.ndarray]]:
        """Names and copies of the outputs and, after backward, every gradient in `params`."""
        names, arrays = [], []
        for i, t in enumerate(_tensors(out)):
            names.append("loss" if i == 0 and t.ndim == 0 else f"output {i}")
            arrays.append(np.array(t.detach().cpu().numpy(), copy=True))
        if self.backward:
            for i, p in enumerate(self.params):
                names.append(f"grad {self.param_names[i] if self.param_names else i}")
                g = p.grad
                arrays.append(None if g is None else np.array(g.cpu().numpy(), copy=True))
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
    if isinstance(exc, ImportError):
        return True
    text = str(exc).lower()
    return any(w in text for w in ("unavailable", "not available", "unknown backend"))


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
    message: str = ""  # what the compiled cell shows instead of a time
    detail: str = ""  # the whole reason for n/a or error, or a backend fallback that happened
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
                "status": self.status, "message": self.message, "detail": self.detail,
                "max_err": self.max_err}


@dataclass
class FirstCall:
    """The first call of a compiled function: what ran, how long it took, what it returned."""

    fn: Callable | None = None  # the compiled function; None when nothing could compile
    backend: str | None = None  # the backend that ran
    seconds: float | None = None  # trace + compile + the call (fwd and bwd)
    results: tuple | None = None  # (names, arrays), as Case.collect gives them
    status: str = "ok"  # ok | n/a | error
    message: str = ""  # short, for a table cell: "n/a (cuda unavailable)"
    detail: str = ""  # the whole reason, or the fallback that happened


def compile_first_call(case: Case, backend: str = "llvm",
                       compiler: Callable | None = None) -> FirstCall:
    """Compile `case.fn` and make its first call, timed, its results collected.

    A missing `tj.compile` or backend gives status 'n/a'; with 'llvm' unavailable the
    'interpret' backend runs instead and `detail` says so; any other exception is an 'error'.
    """
    import tracejit as tj
    if compiler is None and not hasattr(tj, "compile"):
        return FirstCall(status="n/a", message="n/a (not available)",
                         detail="tj.compile does not exist yet")
    tries = [backend] + (["interpret"] if backend == "llvm" and compiler is None else [])
    detail = ""
    for b in tries:
        try:
            t0 = time.perf_counter()
            cf = compiler(case.fn) if compiler is not None else tj.compile(case.fn, backend=b)
            out = case.run(cf)
            if case.sync is not None:
                case.sync()
            seconds = time.perf_counter() - t0
        except Exception as exc:  # noqa: BLE001 - reported in the table instead of a time
            why = f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:200]
            if _unavailable(exc):
                detail = f"backend {b} unavailable ({why})"
                continue
            return FirstCall(backend=b, status="error", message=f"error: {type(exc).__name__}",
                             detail=f"backend {b}: {why}")
        ran = b if compiler is None else "custom"
        if detail:
            detail += f"; {ran} ran instead"
        return FirstCall(cf, ran, seconds, case.collect(out), detail=detail)
    return FirstCall(status="n/a", message=f"n/a ({backend} unavailable)", detail=detail)


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
    say("eager reference")
    if reference is None and case.reset is not None:
        case.reset()
    names, ref = reference or case.collect(case.run(case.fn))
    say("compiling (first call)")
    if case.reset is not None:
        case.reset()
    fc = compile_first_call(case, backend, compiler)
    res = Result(backend=fc.backend, status=fc.status, message=fc.message, detail=fc.detail)
    if fc.fn is not None:
        stats = getattr(fc.fn, "last_stats", None) or {}
        ok, res.max_err, where = check_close(ref, fc.results[1], names)
        if ok:
            res.first_call_s, res.compile_s = fc.seconds, stats.get("compile_s")
            res.kernels = kernels_text(stats)
        else:  # no time of any kind for a wrong result
            res.status, res.message = "mismatch", mismatch_text(res.max_err, where)
    try:
        if res.status == "ok":
            say(f"timing eager and compiled ({res.backend}), interleaved")
            res.eager, res.compiled = time_fns([case.step(case.fn), case.step(fc.fn)],
                                               **timing)
        else:
            say("timing eager")
            res.eager = time_fn(case.step(case.fn), **timing)
    except Exception as exc:  # noqa: BLE001 - a failure while timing is a cell, not a crash
        why = f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:200]
        res.eager = res.compiled = res.first_call_s = res.compile_s = None
        res.kernels, res.status = "-", "error"
        res.message = f"error while timing: {type(exc).__name__}"
        res.detail = f"while timing eager and compiled steps: {why}"
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


RESULT_HEADERS = ("eager", "compiled", "speedup", "first call", "kernels", "check")


def result_cells(r: Result) -> list[str]:
    """The cells of one result, in RESULT_HEADERS order (perf/'s table has the same ones)."""
    check = {"ok": "ok", "mismatch": "MISMATCH", "n/a": "-", "error": "error"}[r.status]
    return [fmt_timing(r.eager), r.compiled_text(),
            "-" if r.speedup is None else f"{r.speedup:.2f}x", fmt_time(r.first_call_s),
            r.kernels, check]


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
        if res.detail:
            print(f"note: {res.detail}")
        if res.backend:
            print(f"backend: {res.backend}")
    return res
