"""W1's forward and backward graphs on the LLVM backend alone: kernel time against numpy eager
of the same graph and against the memory floor, plus W6-style compile latency.

    python -m perf.llvm_kernels [log2 N]      (default 24)

The graphs are what the tracer produces for W1 (forward: one fused sum kernel; backward: one
kernel writing three gradients). Bandwidth comes from a triad c = a + 2*b over float32 arrays of
N elements measured in the same run: numpy's (one thread, two passes: 5 arrays moved) and the
backend's own threaded one-pass kernel (3 arrays); the floor uses the faster. Compile
latency runs in fresh processes: once with an empty disk cache, once with it warm.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

_COMPILE = """
import json, sys, time
t0 = time.perf_counter()
from perf.llvm_kernels import w1_graphs
from tracejit.codegen.llvm.backend import compile_graph
fwd, bwd = w1_graphs(int(sys.argv[1]))
t1 = time.perf_counter()
compile_graph(fwd); compile_graph(bwd)
t2 = time.perf_counter()
print(json.dumps({"import_trace_s": t1 - t0, "compile_s": t2 - t1}))
"""


def w1_graphs(n: int):
    """W1's traced forward and backward graphs (traced with the interpreter: nothing runs)."""
    import tracejit as tj

    def gelu_tanh(z):
        return 0.5 * z * (1 + (0.7978845608 * (z + 0.044715 * z ** 3)).tanh())

    def w1(x, w, b):
        return gelu_tanh(x * w + b).sum()
    args = [tj.zeros(n, requires_grad=True) for _ in range(3)]
    import contextlib
    import io
    with contextlib.redirect_stdout(io.StringIO()):
        e = tj.explain(w1, backend="interpret")(*args)
    return e.forward_graph, e.backward_graph


def _triad_graph(n: int):
    from tracejit.ir.graph import Graph, TensorType, infer_type
    from tracejit.ops import dtypes as D
    g = Graph("triad")
    a, b = (g.add_input(TensorType((n,), D.float32), k) for k in "ab")
    two = g.const(np.float32(2.0))
    m = g.add("mul", [b, two], {}, infer_type("mul", [b, two], {}))
    g.outputs = [g.add("add", [a, m], {}, infer_type("add", [a, m], {}))]
    return g


def _median(f, reps: int = 7) -> float:
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return sorted(ts)[len(ts) // 2]


def _interpret(g, arrays):
    from tracejit.codegen.interpret import compile_graph
    return compile_graph(g)(arrays)


def main(log2n: int = 24) -> dict:
    from tracejit.codegen import threadpool
    from tracejit.codegen.llvm.backend import compile_graph
    n = 1 << log2n
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal(n).astype(np.float32) for _ in range(2))
    c = np.empty_like(a)

    def triad():
        np.multiply(b, np.float32(2), out=c)
        np.add(a, c, out=c)
    bw_numpy = 5 * 4 * n / _median(triad)
    # numpy's triad is one thread: on a many-core machine our own (threaded, one pass) triad
    # kernel shows more of the bandwidth; the floor uses the better of the two
    tri = _triad_graph(n)
    ct = compile_graph(tri)
    (kt,) = ct.kernels       # run it into a preallocated c: no page faults of a fresh output
    bw_kernel = 3 * 4 * n / _median(lambda: kt.run([a, b], [c]))
    bandwidth = max(bw_numpy, bw_kernel)
    fwd, bwd = w1_graphs(n)
    cf, cb = compile_graph(fwd), compile_graph(bwd)
    xs = {i.name: rng.standard_normal(i.shape).astype(np.float32) for i in fwd.inputs}
    f_in = [xs[i.name] for i in fwd.inputs]
    # backward inputs: the scalar grad, then the saved primals (same arrays)
    b_in = [np.ones((), np.float32) if i.shape == () else f_in[k % 3]
            for k, i in enumerate(bwd.inputs)]
    out = {"n": n, "threads": threadpool.num_threads(), "bandwidth_GBs": bandwidth / 1e9,
           "bandwidth_numpy_triad_GBs": bw_numpy / 1e9,
           "bandwidth_kernel_triad_GBs": bw_kernel / 1e9,
           "fwd_kernels": [str(k) for k in cf.kernels], "bwd_kernels": [str(k) for k in cb.kernels]}
    with np.errstate(all="ignore"):
        for name, cg, g, ins, arrays_moved in (("fwd", cf, fwd, f_in, 3),
                                               ("bwd", cb, bwd, b_in, 6)):
            t = _median(lambda cg=cg, ins=ins: cg(ins))
            e = _median(lambda g=g, ins=ins: _interpret(g, ins), 3)
            floor = arrays_moved * 4 * n / bandwidth
            out[name] = {"ms": t * 1e3, "floor_ms": floor * 1e3, "x_floor": t / floor,
                         "numpy_eager_ms": e * 1e3, "speedup_vs_numpy": e / t}
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, TRACEJIT_CACHE_DIR=d)
        for key in ("cold", "warm"):
            r = subprocess.run([sys.executable, "-c", _COMPILE, str(log2n)], env=env,
                               capture_output=True, text=True, check=True)
            out[f"compile_{key}"] = json.loads(r.stdout.strip().splitlines()[-1])
    return out


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 24), indent=1))
