"""`python perf/gpu_check.py`: the CUDA backend on a real NVIDIA GPU, in one run of a few minutes.

1. Correctness against CPU eager: every op of the table (eager, forward and backward, on odd sizes
   that span several blocks) and W1..W4 (CUDA eager and CUDA compiled, loss and gradients, at
   the sizes of WORKLOADS.md). These run in parallel worker processes: NVVM compiles on the CPU,
   and the kernels they compile land in the shared on-disk cache the timing phase then loads.
2. Timings in this process, medians after warm-up: the device's memory bandwidth (a triad
   c = a + 2*b over 64 MiB float32 arrays, and a device-to-device copy), W1 at N = 2**24
   compiled fwd+bwd against its memory floor (576 MiB / triad bandwidth), W1..W4 CUDA compiled,
   CUDA eager and (when installed) torch eager on the same GPU, and compile times (cold: a
   worker's first call; warm: this process's first call, kernels from the disk cache).
3. Where W3's and W4's compiled steps spend their time: ROW kernels at 16 against 32 elements
   per lane, numba's launch against the raw one, the host's enqueue time against the step's
   (and torch's), each kernel's GPU time between CUDA events (inflated by host gaps when the
   GPU waits for the host; `perf/gpu_profile.py` under ncu gives exact kernel times), and a
   cProfile of the host side.

The report is printed and written to $OUT/gpu_report.txt (or --out). `--tiny` runs everything at
toy sizes under Numba's CUDA simulator, to check this script without a GPU.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import traceback

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
from perf import gpu_ops  # noqa: E402  (run as a script: the repo root first)

SIZES = {"full": {"W1": 2 ** 24, "W2": (256, [784, 512, 512, 10]), "W3": (4096, 1024),
                  "W4": (8192, 1000), "ops": (37, 129)},
         "tiny": {"W1": 64, "W2": (8, [12, 10, 10, 4]), "W3": (4, 16), "W4": (8, 10),
                  "ops": (3, 5)}}


def parse(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tiny", action="store_true", help="toy sizes under the CUDA simulator")
    ap.add_argument("--workers", type=int, default=None, help="correctness processes")
    ap.add_argument("--budget", type=float, default=200.0,
                    help="seconds after which the remaining timings are skipped")
    ap.add_argument("--out", default=None, help="report path (default $OUT/gpu_report.txt)")
    ap.add_argument("--skip-ops", action="store_true", help="only W1..W4")
    ap.add_argument("--only-ops", action="store_true",
                    help="only the correctness of every op (no workloads, no timings)")
    return ap.parse_args(argv)


# --- the workloads, built identically for CPU eager, CUDA eager/compiled and torch -----------

def workload(wid: str, scale: str, seed: int = 0, sizes: dict | None = None):
    """(fn, inputs as numpy arrays, which require grad, floor bytes or None); `sizes` replaces
    SIZES[scale]."""
    import tracejit as tj
    F = tj.nn.functional
    rng = np.random.default_rng(seed)
    size = (sizes or SIZES[scale])[wid]
    f32 = np.float32
    if wid == "W1":
        arrays = [rng.standard_normal(size).astype(f32) for _ in range(3)]
        return (lambda x, w, b: F.gelu(x * w + b, approximate="tanh").sum()), arrays, \
            [True] * 3, 9 * size * 4
    if wid == "W3":
        r, c = size
        arrays = [rng.standard_normal((r, c)).astype(f32), rng.standard_normal(c).astype(f32),
                  rng.standard_normal(c).astype(f32)]
        return (lambda x, w, b: (F.layer_norm(x, (c,), w, b) * x).sum()), arrays, [True] * 3, \
            3 * r * c * 4
    if wid == "W4":
        r, c = size
        arrays = [rng.standard_normal((r, c)).astype(f32), rng.integers(0, c, r)]
        return F.cross_entropy, arrays, [True, False], 3 * r * c * 4
    batch, dims = size
    arrays = [rng.standard_normal((batch, dims[0])).astype(f32), rng.integers(0, dims[-1], batch)]
    for i in range(len(dims) - 1):
        lim = 1 / np.sqrt(dims[i])
        arrays += [rng.uniform(-lim, lim, (dims[i + 1], dims[i])).astype(f32),
                   rng.uniform(-lim, lim, dims[i + 1]).astype(f32)]

    def mlp(x, t, *p):
        for i in range(0, len(p) - 2, 2):
            x = F.linear(x, p[i], p[i + 1]).relu()
        return F.cross_entropy(F.linear(x, p[-2], p[-1]), t)
    return mlp, arrays, [False, False] + [True] * (len(arrays) - 2), None


def _tensors(arrays, rg, device):
    import tracejit as tj
    return [tj.tensor(a, device=device, requires_grad=r) for a, r in zip(arrays, rg)]


def check_workload(wid: str, scale: str) -> tuple:
    """Rows comparing CUDA eager and CUDA compiled with CPU eager; and the cold compile time."""
    import tracejit as tj
    fn, arrays, rg, _ = workload(wid, scale)
    ref_in = _tensors(arrays, rg, "cpu")
    ref = fn(*ref_in)
    ref.backward()
    want = [ref] + [t.grad for t, r in zip(ref_in, rg) if r]
    rows, cold = [], None
    for mode in ("eager", "compiled"):
        ins = _tensors(arrays, rg, "cuda")
        f = tj.compile(fn) if mode == "compiled" else fn
        t0 = time.perf_counter()
        out = f(*ins)
        out.backward()
        tj.cuda.synchronize()
        if mode == "compiled":
            cold = time.perf_counter() - t0
        got = [out] + [t.grad for t, r in zip(ins, rg) if r]
        rows.append(gpu_ops.compare(f"{wid} {mode}", got, want, rtol=2e-4, atol=2e-5))
    return rows, cold


def run_task(task):
    kind, arg, scale = task
    t0 = time.perf_counter()
    try:
        if kind == "ops":
            rows, cold = gpu_ops.check(arg, SIZES[scale]["ops"]), None
        else:
            rows, cold = check_workload(arg, scale)
    except Exception as e:  # noqa: BLE001 - a failure is a report row, not a crash
        rows = [(f"{kind} {arg}", False, float("nan"), f"{type(e).__name__}: {e}"[:300] + "\n" +
                 traceback.format_exc()[-1500:])]
        cold = None
    return rows, {"task": f"{kind} {arg}", "s": time.perf_counter() - t0, "cold": cold}


# --- timings ---------------------------------------------------------------------------------

def median_time(step, sync, reps: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        step()
    sync()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        step()
        sync()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def bandwidth(scale: str) -> dict:
    """Bytes/s of a triad (read a, b; write c) and of a device-to-device copy, 64 MiB arrays."""
    from numba import cuda
    n = (64 << 20) // 4 if scale == "full" else 256
    src = """
def triad(a, b, c):
    i = cuda.grid(1)
    s = cuda.gridsize(1)
    while i < a.shape[0]:
        c[i] = a[i] + np.float32(2.0) * b[i]
        i += s
"""
    ns = {"cuda": cuda, "np": np}
    exec(src, ns)  # noqa: S102  (a literal kernel)
    k = cuda.jit(ns["triad"])
    a, b, c = (cuda.to_device(np.ones(n, np.float32)) for _ in range(3))
    launch = k[min(-(-n // 256), 65535 * 4), 256]
    # ten back-to-back launches per sample: the launch overhead (tens of us) must not count
    t_triad = median_time(lambda: [launch(a, b, c) for _ in range(10)], cuda.synchronize, 5) / 10
    t_copy = median_time(lambda: [c.copy_to_device(a) for _ in range(10)], cuda.synchronize,
                         5) / 10
    return {"triad": 3 * n * 4 / t_triad, "copy": 2 * n * 4 / t_copy}


def overheads() -> str:
    """Per-call costs on tiny tensors: a bare numba launch, one tracejit eager op, one compiled
    call (W5's function, no grad), one torch op."""
    from numba import cuda

    import tracejit as tj
    ns = {"cuda": cuda}
    exec("def noop(a, b):\n    if cuda.grid(1) < 0:\n        a[0] = b[0]\n", ns)  # noqa: S102
    k = cuda.jit(ns["noop"])
    a = cuda.to_device(np.zeros(16, np.float32))
    x, y = tj.ones(16, device="cuda"), tj.ones(16, device="cuda")
    f = tj.compile(lambda x, y: (x * y + 1.0).relu())
    from tracejit.codegen.cuda.launch import Launch
    raw, plain = Launch(k, 1, 32), Launch(k, 1, 32)
    raw(a, a)
    plain(a, a)
    plain.raw = False                                   # numba's _Kernel.launch
    parts = [("numba launch", lambda: k[1, 32](a, a)),
             ("tj Launch kernel.launch", lambda: plain(a, a)),
             (f"tj Launch raw ({'on' if raw.raw else 'refused'})", lambda: raw(a, a)),
             ("tj eager x*y", lambda: x * y), ("tj compiled W5", lambda: f(x, y))]
    try:
        import torch
        if torch.cuda.is_available():
            tx = torch.ones(16, device="cuda")
            parts.append(("torch x*y", lambda: tx * tx))
    except ImportError:
        pass
    out = []
    for name, fn in parts:
        fn()
        tj.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(200):
            fn()
        tj.cuda.synchronize()
        out.append(f"{name} {(time.perf_counter() - t0) / 200 * 1e6:.1f} us")
    return "  per call: " + ", ".join(out)


def time_tracejit(wid, scale, mode, reps) -> tuple:
    """(median fwd+bwd seconds, first-call seconds) for CUDA eager or compiled."""
    import tracejit as tj
    fn, arrays, rg, _ = workload(wid, scale)
    ins = _tensors(arrays, rg, "cuda")
    f = tj.compile(fn) if mode == "compiled" else fn
    opt = tj.optim.SGD([t for t, r in zip(ins, rg) if r], lr=0.01, momentum=0.9) \
        if wid == "W2" else None

    def step():
        for t in ins:
            t.grad = None
        f(*ins).backward()
        if opt is not None:
            opt.step()
    t0 = time.perf_counter()
    step()
    tj.cuda.synchronize()
    first = time.perf_counter() - t0
    if mode == "compiled":
        st = next(iter(f.cache.values())).stats
        KERNELS[wid] = f"{st['kernels_forward']}+{st['kernels_backward']}"
    return median_time(step, tj.cuda.synchronize, reps), first


KERNELS: dict = {}


def time_torch(wid, scale, reps):
    import torch
    if not torch.cuda.is_available():
        return None
    return median_time(torch_step(wid, scale), torch.cuda.synchronize, reps)


def torch_step(wid, scale):
    """torch's fwd+bwd step of `wid` on the GPU (no arguments)."""
    import torch
    import torch.nn.functional as F
    _, arrays, rg, _ = workload(wid, scale)
    ins = [torch.tensor(a, device="cuda").requires_grad_(r) for a, r in zip(arrays, rg)]
    f = {"W1": lambda x, w, b: F.gelu(x * w + b, approximate="tanh").sum(),
         "W3": lambda x, w, b: (F.layer_norm(x, (x.shape[-1],), w, b) * x).sum(),
         "W4": F.cross_entropy}.get(wid)
    if f is None:
        def f(x, t, *p):
            for i in range(0, len(p) - 2, 2):
                x = F.linear(x, p[i], p[i + 1]).relu()
            return F.cross_entropy(F.linear(x, p[-2], p[-1]), t)
    opt = torch.optim.SGD([t for t, r in zip(ins, rg) if r], lr=0.01, momentum=0.9) \
        if wid == "W2" else None

    def step():
        for t in ins:
            t.grad = None
        f(*ins).backward()
        if opt is not None:
            opt.step()
    return step


def launch_paths(scale, reps) -> str:
    """W3 and W4 compiled with numba's own launch (TRACEJIT_CUDA_LAUNCH=numba) against the raw
    launch (codegen/cuda/launch.py), in this process."""
    from tracejit.codegen.cuda import launch
    out = []
    for wid in ("W3", "W4"):
        got = {}
        for mode in ("numba", "raw"):
            launch._launches.clear()       # matmul/index launches are kept across functions
            os.environ["TRACEJIT_CUDA_LAUNCH"] = mode
            try:
                got[mode] = time_tracejit(wid, scale, "compiled", reps)[0]
            finally:
                os.environ.pop("TRACEJIT_CUDA_LAUNCH", None)
        out.append(f"{wid} {got['numba'] * 1e3:.3f} -> {got['raw'] * 1e3:.3f} ms")
    return "  launch path numba -> raw (compiled fwd+bwd): " + ", ".join(out)


def compiled_step(wid, scale, warmup=3):
    """A warm compiled fwd+bwd step of `wid` on CUDA tensors (no arguments; `.fn` is the
    compiled function)."""
    import tracejit as tj
    fn, arrays, rg, _ = workload(wid, scale)
    ins = _tensors(arrays, rg, "cuda")
    f = tj.compile(fn)

    def step():
        for t in ins:
            t.grad = None
        f(*ins).backward()
    for _ in range(warmup):
        step()
    tj.cuda.synchronize()
    step.fn = f
    return step


def knob(module, attr, values, scale, workloads=("W3", "W4"), pairs=200) -> str:
    """Compiled steps of `workloads` with constant `attr` of tracejit.codegen.cuda.`module`
    at each of `values` (set while each step is built and while it runs), alternated one for
    one (medians in ms)."""
    import importlib
    mod = importlib.import_module(f"tracejit.codegen.cuda.{module}")
    base, out = getattr(mod, attr), []

    def under(v, step):
        def run():
            setattr(mod, attr, v)
            step()
        return run
    try:
        for wid in workloads:
            steps = []
            for v in values:
                setattr(mod, attr, v)
                steps.append(under(v, compiled_step(wid, scale)))
            ts = alternate(steps, pairs)
            out.append(f"{wid} " + " -> ".join(f"{np.median(t) * 1e3:.3f}" for t in ts) + " ms")
    finally:
        setattr(mod, attr, base)
    return f"  {attr} {' -> '.join(map(str, values))} (compiled fwd+bwd, alternated): " + \
        ", ".join(out)


def alternate(steps: list, pairs: int, syncs=None) -> list:
    """Per step, its synchronised times over `pairs` rounds that run each step once in turn
    (a slow spell of this shared host hits them all)."""
    import tracejit as tj
    syncs = syncs or [tj.cuda.synchronize] * len(steps)
    ts: list = [[] for _ in steps]
    for _ in range(pairs):
        for f, sync, t in zip(steps, syncs, ts):
            t0 = time.perf_counter()
            f()
            sync()
            t.append(time.perf_counter() - t0)
    return ts


def breakdown(wid, scale, steps=10) -> str:
    """Where a compiled step's wall time goes: the host's time to enqueue one step (no sync
    between steps) against the step with its sync, and each kernel's GPU time (CUDA events
    recorded around every launch, a second pass) with torch's enqueue time beside it."""
    from numba import cuda

    import tracejit as tj
    from tracejit.codegen.cuda import launch as L
    step = compiled_step(wid, scale)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    host = (time.perf_counter() - t0) / steps
    tj.cuda.synchronize()
    whole = (time.perf_counter() - t0) / steps
    plain, seen = L.Launch.run, []

    def timed(self, args):
        e0, e1 = cuda.event(), cuda.event()
        e0.record()
        plain(self, args)
        e1.record()
        fn = getattr(self.fn, "py_func", self.fn)
        seen[-1].append((f"{getattr(fn, '__name__', '?')}{tuple(self.grid)}x"
                         f"{tuple(self.block)}", e0, e1))
    L.Launch.run = timed
    try:
        for _ in range(steps):
            seen.append([])
            step()
    finally:
        L.Launch.run = plain
    tj.cuda.synchronize()
    per: dict = {}                      # (position in the step, kernel) -> us per step
    for launches in seen:
        for i, (name, e0, e1) in enumerate(launches):
            per[i, name] = per.get((i, name), 0.0) + e0.elapsed_time(e1) * 1e3 / steps
    gpu = sum(per.values())
    th = _maybe(lambda: torch_enqueue(wid, scale, steps))
    lines = [f"  {wid} compiled step: {whole * 1e6:.0f} us with sync, host enqueue "
             f"{host * 1e6:.0f} us (torch {th * 1e6:.0f} us)" if th else
             f"  {wid} compiled step: {whole * 1e6:.0f} us with sync, host enqueue "
             f"{host * 1e6:.0f} us", f"    {len(seen[-1])} launches, kernels' GPU time "
             f"{gpu:.0f} us: " + ", ".join(f"{n} {us:.0f}" for (_, n), us in per.items())]
    return "\n".join(lines)


def torch_enqueue(wid, scale, steps):
    """torch's host time to enqueue one step (no sync between steps)."""
    import torch
    if not torch.cuda.is_available():
        return None
    step = torch_step(wid, scale)
    for _ in range(3):
        step()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    host = (time.perf_counter() - t0) / steps
    torch.cuda.synchronize()
    return host


def host_split(wid, scale, steps=50) -> str:
    """Where a compiled step's host enqueue time goes on this machine: the step as it is,
    with every launch skipped (tracejit's Python alone: compare with perf.cuda_census' host
    figures on the VM), and with the cyclic GC off; device allocations counted (the pool
    should serve every one)."""
    import gc

    from numba import cuda

    import tracejit as tj
    from tracejit.codegen.cuda import launch as L
    step = compiled_step(wid, scale)
    allocs = [0]
    alloc = cuda.device_array

    def counted(*a, **k):
        allocs[0] += 1
        return alloc(*a, **k)

    def per_step() -> float:
        tj.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        t = (time.perf_counter() - t0) / steps
        tj.cuda.synchronize()
        return t * 1e6
    cuda.device_array = counted
    try:
        base = per_step()
        gc.disable()
        try:
            nogc = per_step()
        finally:
            gc.enable()
        plain = L.Launch.run
        L.Launch.run = lambda self, args: None
        try:
            skipped = per_step()
        finally:
            L.Launch.run = plain
    finally:
        cuda.device_array = alloc
    return (f"  {wid} host enqueue per step ({steps} steps): {base:.0f} us, gc off {nogc:.0f} "
            f"us, launches skipped {skipped:.0f} us; device allocations {allocs[0]} "
            f"(in {3 * steps} steps)")


def launch_costs(wid, scale, reps=100) -> str:
    """Per kernel of a compiled step: our packing, cuda.core's conversion of those parameters
    (`ParamHolder`) against its conversion of numba's own packing, and the launch (pack,
    convert, driver call). Older numba-cuda versions pack an array's fields as ctypes objects,
    ~20x slower for cuda.core to convert than the Python ints `launch.Raw` keeps."""
    from cuda.core._kernel_arg_handler import ParamHolder

    import tracejit as tj
    from tracejit.codegen.cuda import launch as L
    step = compiled_step(wid, scale)
    seen, plain = [], L.Launch.run
    L.Launch.run = lambda self, args: (seen.append((self, list(args))), plain(self, args))
    try:
        step()
    finally:
        L.Launch.run = plain
    tj.cuda.synchronize()

    def us(f) -> float:
        t0 = time.perf_counter()
        for _ in range(reps):
            f()
        return (time.perf_counter() - t0) / reps * 1e6
    out = []
    for la, args in seen:
        raw = la.raw
        if not raw:
            out.append("raw launch refused")
            continue
        ours, numbas = raw.pack(args), []
        for ty, v in zip(raw.types, args):
            raw.prepare(ty, v, raw.stream, [], numbas)
        kinds = "/".join(sorted({type(v).__name__ for v in numbas}))
        go = us(lambda: raw.go(*ours))
        tj.cuda.synchronize()
        out.append(f"{len(ours)} params: pack {us(lambda: raw.pack(args)):.1f}, convert "
                   f"{us(lambda: ParamHolder(ours)):.1f} (numba's {kinds}: "
                   f"{us(lambda: ParamHolder(numbas)):.1f}), launch {go:.1f}")
    return f"  {wid} launch costs (us per kernel): " + "; ".join(out)


def versus_torch(wid, scale, pairs=300) -> str:
    """Compiled and torch steps alternated one for one (each synchronised): the medians, and
    how often the compiled step won."""
    import torch

    import tracejit as tj
    theirs = torch_step(wid, scale)
    for _ in range(3):
        theirs()
    a, b = alternate([compiled_step(wid, scale), theirs], pairs,
                     [tj.cuda.synchronize, torch.cuda.synchronize])
    won = sum(x < y for x, y in zip(a, b)) / pairs
    return (f"  {wid} alternated with torch ({pairs} pairs): compiled {np.median(a) * 1e3:.3f} "
            f"ms, torch {np.median(b) * 1e3:.3f} ms ({np.median(b) / np.median(a):.2f}x); "
            f"compiled faster in {won:.0%} of pairs")


def host_profile(wid, scale, steps=200, top=14) -> str:
    """Where the host time of a compiled step goes: cProfile's own and cumulative time per
    step, in us (profiling inflates both), top functions by own time."""
    import cProfile
    import pstats

    import tracejit as tj
    step = compiled_step(wid, scale)
    pr = cProfile.Profile()
    pr.enable()
    for _ in range(steps):
        step()
    tj.cuda.synchronize()
    pr.disable()
    rows = sorted(pstats.Stats(pr).stats.items(), key=lambda kv: -kv[1][2])[:top]
    lines = [f"    {tt / steps * 1e6:6.1f} {ct / steps * 1e6:7.1f} {nc / steps:5.1f}  "
             f"{os.path.basename(f)}:{ln}({name})"
             for (f, ln, name), (_, nc, tt, ct, _) in rows]
    return (f"  host profile of {steps} {wid} compiled steps (us per step: own, cumulative, "
            f"calls):\n" + "\n".join(lines))


# --- the run ---------------------------------------------------------------------------------

def main(argv=None) -> int:
    args = parse(argv)
    start = time.perf_counter()
    scale = "tiny" if args.tiny else "full"
    if args.tiny:
        os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
    os.environ.setdefault("TRACEJIT_CACHE_DIR", tempfile.mkdtemp(prefix="tracejit-gpu-"))
    lines = [f"tracejit gpu_check ({scale}) on {_device()}"]
    tasks = [] if args.skip_ops else [("ops", g, scale) for g in gpu_ops.groups()]
    if not args.only_ops:
        tasks += [("W", w, scale) for w in ("W1", "W2", "W3", "W4")]
    workers = args.workers if args.workers is not None else \
        (0 if args.tiny else min(12, os.cpu_count() or 1))
    if workers > 1:
        import multiprocessing as mp
        with mp.get_context("spawn").Pool(workers) as pool:
            results = pool.map(run_task, tasks, chunksize=1)
    else:
        results = [run_task(t) for t in tasks]
    rows = [r for rs, _ in results for r in rs]
    bad = [r for r in rows if not r[1]]
    lines.append(f"\n== correctness vs CPU eager: {len(rows) - len(bad)}/{len(rows)} ok "
                 f"({time.perf_counter() - start:.0f} s, {workers} workers)")
    for name, ok, err, note in rows:
        if not ok or name.startswith("W"):
            lines.append(f"  {'ok  ' if ok else 'FAIL'} {name:<34} max err {err:.2e} {note}")
    cold = {info["task"].split()[-1]: info["cold"] for _, info in results if info["cold"]}
    if args.only_ops:
        return report(lines, bad, args)
    lines.append("\n== timings (medians; fwd+bwd; W2 includes the SGD step)")
    try:
        bw = bandwidth(scale)
        lines.append(f"  bandwidth: triad {bw['triad'] / 1e9:.0f} GB/s, d2d copy "
                     f"{bw['copy'] / 1e9:.0f} GB/s")
    except Exception as e:  # noqa: BLE001
        bw = None
        lines.append(f"  bandwidth: failed ({e})")
    lines.append(_maybe_line(overheads))
    slow = sorted(((info["s"], info["task"]) for _, info in results), reverse=True)[:4]
    lines.append("  slowest correctness tasks: " + ", ".join(f"{t} {s:.0f}s" for s, t in slow))
    reps = 3 if args.tiny else 20
    header = f"  {'':4} {'compiled':>10} {'eager':>10} {'torch':>10}  {'torch/comp':>10}  " \
             f"{'compile cold/warm':>18}  floor"
    lines.append(header)
    for wid in ("W1", "W2", "W3", "W4"):
        if time.perf_counter() - start > args.budget:
            lines.append(f"  {wid}: skipped (time budget of {args.budget:.0f} s spent)")
            continue
        try:
            tc, warm = time_tracejit(wid, scale, "compiled", reps)
            te, _ = time_tracejit(wid, scale, "eager", max(3, reps // 4))
            tt = _maybe(lambda w=wid: time_torch(w, scale, reps))
            floor = workload(wid, scale)[3]
            fl = f"{tc / (floor / bw['triad']):.2f}x of {floor / bw['triad'] * 1e3:.3f} ms" \
                if floor and bw else "-"
            lines.append(f"  {wid:4} {_ms(tc)} {_ms(te)} {_ms(tt)}  "
                         f"{(tt / tc if tt else float('nan')):>9.2f}x  "
                         f"{cold.get(wid, float('nan')):>7.2f}s/{warm:>6.2f}s   {fl}"
                         f"  [kernels fwd+bwd {KERNELS.get(wid, '?')}]")
        except Exception as e:  # noqa: BLE001
            lines.append(f"  {wid}: failed: {type(e).__name__}: {e}"[:300])
    # most wanted first: the budget cuts the tail
    for extra in (lambda: versus_torch("W4", scale), lambda: versus_torch("W3", scale),
                  lambda: knob("matmul", "BLOCKED", (False, True), scale, ("W2",), 50),
                  lambda: knob("kernels", "SPLIT_MIN_PER_LANE", (8, 64), scale),
                  lambda: breakdown("W4", scale), lambda: breakdown("W2", scale),
                  lambda: launch_costs("W4", scale), lambda: host_split("W4", scale),
                  lambda: launch_paths(scale, reps), lambda: breakdown("W3", scale),
                  lambda: host_split("W3", scale), lambda: host_profile("W4", scale)):
        if time.perf_counter() - start < args.budget:
            lines.append(_maybe_line(extra))
    lines.append(f"\n(ms per step; cold compile = first call in a fresh process, warm = first "
                 f"call with the disk cache; total {time.perf_counter() - start:.0f} s)")
    return report(lines, bad, args)


def report(lines, bad, args) -> int:
    if bad:
        lines.append("\n== failures (details)")
        lines += [f"{n}: {note}" for n, _, _, note in bad]
    text = "\n".join(lines)
    print(text)
    out = args.out or (os.path.join(os.environ["OUT"], "gpu_report.txt")
                       if os.environ.get("OUT") else None)
    if out:
        with open(out, "w") as f:
            f.write(text + "\n")
    return 1 if bad else 0


def _maybe_line(f) -> str:
    try:
        return f()
    except Exception as e:  # noqa: BLE001
        return f"  {f.__name__} failed: {type(e).__name__}: {e}"[:300]


def _maybe(f):
    try:
        import torch  # noqa: F401
    except ImportError:
        return None
    try:
        return f()
    except Exception:  # noqa: BLE001 - torch missing CUDA etc.: no column
        return None


def _ms(t) -> str:
    return f"{t * 1e3:>10.3f}" if t is not None else f"{'-':>10}"


def _device() -> str:
    import numba

    import tracejit as tj
    try:
        name = tj.cuda.get_device_name()
    except RuntimeError as e:
        name = f"no device ({e})"
    from importlib import metadata
    extra = []
    for pkg in ("numba-cuda", "cuda-core"):
        try:
            extra.append(f", {pkg} {metadata.version(pkg)}")
        except metadata.PackageNotFoundError:
            pass
    return f"{name}; numba {numba.__version__}{''.join(extra)}, numpy {np.__version__}"


if __name__ == "__main__":
    sys.exit(main())
