"""Run the workloads and report them: floors, eager vs compiled, peers, compile latency (W6).

This module owns one run of `python -m perf`: it measures the machine's floors (memory bandwidth
and BLAS rate) in the same process, times every workload eager and compiled through
`tracejit.utils.benchmark.measure` (which refuses to time a wrong result), adds the peer columns,
spawns fresh processes for the compile latency of W6, and returns a `Report` that
perf/report.py turns into text, markdown, JSON or a plot.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

import tracejit as tj
from tracejit.utils.benchmark import Result, check_close, measure, mismatch_text, time_fn

from . import peers as P
from .workloads import W6_SOURCES, Workload, build, device_for

# Timing effort per scale: warm-up calls, repetitions within [min, max], seconds aimed at.
EFFORT = {"full": {"warmup": 3, "min_reps": 5, "max_reps": 100, "target_s": 2.0},
          "quick": {"warmup": 1, "min_reps": 3, "max_reps": 10, "target_s": 0.2},
          "tiny": {"warmup": 1, "min_reps": 2, "max_reps": 3, "target_s": 0.01}}
PEER_RTOL, PEER_ATOL_SCALE = 1e-3, 1e-4  # another library: other summation orders, other tanh


@dataclass
class Floors:
    bandwidth: float  # bytes/s, triad
    blas: float | None  # FLOP/s, one float32 matmul; None where no BLAS was measured (GPU)
    bandwidth_how: str
    blas_how: str

    def time(self, wl: Workload) -> float | None:
        if wl.floor_kind == "memory":
            return wl.floor_amount / self.bandwidth
        if wl.floor_kind == "blas" and self.blas:
            return wl.floor_amount / self.blas
        return None


@dataclass
class Row:
    wl: Workload
    result: Result
    floor_s: float | None
    peers: dict = field(default_factory=dict)  # peer -> {"timing", "first_call_s", ...}


@dataclass
class Report:
    scale: str
    backend: str
    floors: Floors
    rows: list = field(default_factory=list)
    latency: list = field(default_factory=list)  # W6: dicts per source workload
    peers: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    machine: dict = field(default_factory=dict)
    wall_s: float = 0.0

    @property
    def mismatches(self) -> list:
        return [r for r in self.rows if r.result.status == "mismatch"]


# --- floors ---------------------------------------------------------------------------------
def _triad_numba():
    import numba

    @numba.njit(parallel=True)
    def triad(a, b, c):
        for i in numba.prange(a.shape[0]):
            c[i] = a[i] + np.float32(2.0) * b[i]
    return lambda a, b, c: triad(a, b, c)


def _triad_numpy(threads: int, block: int = 1 << 17):
    """Threaded, cache-blocked numpy triad: one pass over memory, like a compiled loop."""
    from concurrent.futures import ThreadPoolExecutor
    pool = ThreadPoolExecutor(threads)
    tmps = [np.empty(block, np.float32) for _ in range(threads)]

    def run(a, b, c):
        edges = np.linspace(0, a.size, threads + 1).astype(int)

        def work(i):
            for s in range(edges[i], edges[i + 1], block):
                e = min(s + block, edges[i + 1])
                t = tmps[i][: e - s]
                np.multiply(b[s:e], 2.0, out=t)
                np.add(a[s:e], t, out=c[s:e])
        list(pool.map(work, range(threads)))
    return run


def measure_floors(scale: str) -> Floors:
    """Bandwidth (c = a + 2*b over float32 arrays, bytes read + written) and BLAS rate."""
    mib, mm = (4, 256) if scale == "tiny" else (64, 2048)
    n = mib * 2**20 // 4
    a, b, c = (np.full(n, v, np.float32) for v in (1.0, 2.0, 0.0))
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    triad, how = None, "numpy, threaded"
    if scale != "tiny":
        try:
            triad, how = _triad_numba(), "numba parallel loop"
        except ImportError:
            pass
    triad = triad or _triad_numpy(threads)
    # The best repetition, not the median: a floor is what the machine can do, and on a shared
    # machine the other repetitions measure the neighbours too.
    reps, mreps = (3, 3) if scale == "tiny" else (10, 5)
    t = time_fn(lambda: triad(a, b, c), warmup=1, reps=reps)
    x = np.random.default_rng(0).standard_normal((mm, mm), dtype=np.float32)
    tb = time_fn(lambda: np.matmul(x, x), warmup=1, reps=mreps)
    return Floors(3 * n * 4 / t.min, 2 * mm**3 / tb.min,
                  f"triad c = a + 2*b, 3 x {mib} MiB float32, {how}, {threads} threads, best of "
                  f"{reps}", f"numpy.matmul float32 {mm}x{mm}x{mm}, best of {mreps}")


def measure_gpu_floors(scale: str) -> Floors:
    """GPU bandwidth: the triad as a numba.cuda kernel, else a device-to-device copy (no BLAS
    rate: there is no vendor BLAS to time on the GPU side)."""
    from numba import config

    from . import gpu_triad
    # (Numba's CUDA simulator runs a Python thread per CUDA thread: a token size there)
    n = 1024 if config.ENABLE_CUDASIM else 2**20 if scale == "tiny" else 2**28
    run, nbytes, how = gpu_triad.make(n)
    t = time_fn(run, warmup=1, reps=10)
    where = "Numba's CUDA simulator" if config.ENABLE_CUDASIM else "the GPU"
    return Floors(nbytes / t.min, None, f"{how}, {n * 4 / 2**20:g} MiB float32 arrays on "
                  f"{where}, best of 10", "not measured on the GPU")


# --- peers ----------------------------------------------------------------------------------
def measure_peer(peer: str, wl: Workload, names: list, ref: list, effort: dict) -> dict:
    """One peer cell: checked against tracejit eager, then timed. Never raises."""
    try:
        pc = P.build(peer, wl)
        t0 = time.perf_counter()
        _, got = pc.result()
        first = time.perf_counter() - t0
        ok, err, where = check_close(ref, got, names, PEER_RTOL, PEER_ATOL_SCALE)
        if not ok:
            return {"status": "mismatch", "message": mismatch_text(err, where)}
        timing = time_fn(pc.step, number=pc.number, **effort)
    except Exception as exc:  # noqa: BLE001 - a peer's failure is a cell, not a crash
        why = " ".join(str(exc).split())[:100]
        return {"status": "error", "message": f"error: {type(exc).__name__}: {why}"}
    return {"status": "ok", "timing": timing, "first_call_s": first, "message": ""}


# --- W6: compile latency in fresh processes -------------------------------------------------
_FIRST_CALL = r"""
import json, sys, time
from perf.workloads import build
from tracejit.utils.benchmark import check_close, compile_first_call
from perf.workloads import device_for
wid, scale, backend = sys.argv[1:4]
wl = build(wid, scale, device=device_for(backend))[0]
fc = compile_first_call(wl.case, backend)
ok = True
if fc.fn is not None:
    names, ref = wl.case.collect(wl.case.run(wl.case.fn))
    ok = check_close(ref, fc.results[1], names)[0]
print(json.dumps({"first_call_s": fc.seconds, "backend": fc.backend, "note": fc.message,
                  "ok": ok}))
"""


def _first_call_process(wid: str, scale: str, backend: str, cache_dir: str) -> dict:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, TRACEJIT_CACHE_DIR=cache_dir)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    proc = None
    try:
        proc = subprocess.run([sys.executable, "-c", _FIRST_CALL, wid, scale, backend],
                              capture_output=True, text=True, env=env, timeout=600,
                              check=False)
        out = json.loads(proc.stdout.strip().splitlines()[-1])
    except Exception as exc:  # noqa: BLE001 - reported in the W6 table
        lines = proc.stderr.strip().splitlines() if proc is not None else []
        why = lines[-1] if lines else f"{type(exc).__name__}: {exc}"
        return {"first_call_s": None, "note": f"error: {why[:100]}", "ok": False}
    if not out["ok"]:
        out.update(first_call_s=None, note="MISMATCH")
    return out


def compile_latency(scale: str, backend: str, ids: list, say: Callable[[str], None]) -> list:
    """W6: first call of W1..W4 (those in `ids`, or all four when none is) in a new process,
    with a cold cache, then with the warm cache the first process left."""
    sources = [w for w in W6_SOURCES if w in ids] or list(W6_SOURCES)
    rows = []
    for wid in sources:
        cache = tempfile.mkdtemp(prefix="tracejit-perf-cold-")
        try:
            say(f"W6 compile latency of {wid}: cold cache, new process")
            cold = _first_call_process(wid, scale, backend, cache)
            say(f"W6 compile latency of {wid}: warm cache, new process")
            warm = _first_call_process(wid, scale, backend, cache)
        finally:
            shutil.rmtree(cache, ignore_errors=True)
        rows.append({"source": wid, "cold_s": cold.get("first_call_s"),
                     "warm_s": warm.get("first_call_s"), "backend": cold.get("backend"),
                     "note": cold.get("note") or warm.get("note") or ""})
    return rows


def _busy_note(load_start: float | None) -> str:
    """A warning when other work shared the machine (this run accounts for about one core)."""
    if load_start is None:
        return ""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    end = os.getloadavg()[0]
    if max(load_start, end - 1.0) <= 0.5 * cores:
        return ""
    return (f"the machine was busy (load average {load_start:.1f} at the start, {end:.1f} at "
            f"the end, on {cores} cores): times are noisy; compare ratios, or rerun when idle")


# --- the run --------------------------------------------------------------------------------
class Progress:
    """The progress line on stderr: rewritten in place on a terminal, one line per workload
    otherwise (details only on a terminal)."""

    def __init__(self, enabled: bool = True, stream=None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()

    def __call__(self, msg: str, detail: bool = False) -> None:
        if not self.enabled or (detail and not self.tty):
            return
        self.stream.write("\r\033[K" + msg[:150] if self.tty else msg + "\n")
        self.stream.flush()

    def done(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\r\033[K")
            self.stream.flush()


def run(ids: list, scale: str = "full", backend: str = "llvm", peers: list | None = None,
        peer_notes: list | None = None, progress: bool = True,
        workloads: list | None = None) -> Report:
    """Measure the workloads `ids` (W1..W7) at `scale`; `workloads` replaces the built ones."""
    t_start = time.perf_counter()
    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    say = Progress(progress)
    effort = EFFORT[scale]
    say("measuring the floors (memory bandwidth, BLAS rate)")
    device = device_for(backend)
    floors = measure_floors(scale) if device == "cpu" else measure_gpu_floors(scale)
    report = Report(scale, backend, floors, peers=list(peers or []),
                    notes=list(peer_notes or []))
    if device != "cpu" and (report.peers or peer_notes):
        report.notes = [f"peers skipped: they run on the CPU, the workloads on {device}"]
        report.peers = []
    if workloads is None:
        workloads = [wl for wid in ids if wid != "W6"
                     for wl in build(wid, scale, device=device)]
    for i, wl in enumerate(workloads, 1):
        head = f"[{i}/{len(workloads)}] {wl.id} {wl.name} {wl.size}"
        say(head)
        try:
            if wl.case.reset is not None:
                wl.case.reset()
            names, ref = wl.case.collect(wl.case.run(wl.case.fn))
        except Exception as exc:  # noqa: BLE001 - eager itself failed: a row saying so
            why = f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:200]
            res = Result(status="error", message=f"error in eager: {type(exc).__name__}",
                         detail=f"the eager reference failed: {why}")
            report.rows.append(Row(wl, res, report.floors.time(wl)))
            continue
        res = measure(wl.case, backend=backend, reference=(names, ref),
                      progress=lambda s, head=head: say(f"{head}: {s}", detail=True), **effort)
        row = Row(wl, res, report.floors.time(wl))
        for peer in report.peers:
            say(f"{head}: {peer}", detail=True)
            row.peers[peer] = measure_peer(peer, wl, names, ref, effort)
        report.rows.append(row)
    if "W6" in ids:
        if hasattr(tj, "compile"):
            report.latency = compile_latency(scale, backend, ids, say)
        else:
            report.notes.append("W6 skipped: tj.compile is not available")
    say.done()
    report.wall_s = time.perf_counter() - t_start
    busy = _busy_note(load_start)
    if busy:
        report.notes.append(busy)
    return report
