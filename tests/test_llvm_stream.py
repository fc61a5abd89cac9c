"""Streaming elementwise kernels (codegen/llvm/stream.py): the explicit vector loop with
non-temporal stores must give bit-identical results to the plain loop for every op of the table,
for aligned, misaligned and mutually misaligned outputs and for any thread-chunk boundaries."""
from __future__ import annotations

import re

import numpy as np
import pytest
from kernel_graphs import W1_BWD, Builder, _run, random_inputs, workload

from tracejit.codegen import threadpool
from tracejit.codegen.llvm import engine, launch
from tracejit.codegen.llvm.backend import compile_graph
from tracejit.codegen.llvm.kernel import lower
from tracejit.ops import REGISTRY

N = 1000 + 37                  # not a multiple of any vector width


def _single_op_graphs():
    out = []
    for name, op in sorted(REGISTRY.items()):
        if op.kind != "elementwise" or name in ("cast",):
            continue
        for dt in ("float32", "float64"):
            b = Builder(name)
            if name == "where":
                ins = [b.input((N,), "bool"), b.input((N,), dt), b.input((N,), dt)]
            elif name.startswith("logical"):
                ins = [b.input((N,), "bool") for _ in range(op.nin)]
            else:
                ins = [b.input((N,), dt) for _ in range(op.nin)]
            out.append((f"{name}-{dt}", b.out(b.op(name, *ins))))
    for src, dst in (("int32", "float32"), ("float32", "float64"), ("float64", "float32"),
                     ("int64", "float64"), ("float32", "int32")):
        b = Builder("cast")
        out.append((f"cast-{src}-{dst}", b.out(b.op("cast", b.input((N,), src), dtype=dst))))
    b = Builder("mixed")       # a bool vector inside, a broadcast (invariant) operand, 2 outputs
    x, y, s = b.input((N,)), b.input((N,)), b.input((1,))
    m = b.op("where", b.op("lt", x, y), b.op("exp", x), b.op("mul", y, s))
    out.append(("mixed", b.out(m, b.op("tanh", m))))
    out.append(("w1_bwd", workload(W1_BWD, n=N)))
    return out


GRAPHS = _single_op_graphs()


def _buffer(nbytes: int, offset: int) -> np.ndarray:
    """nbytes at `offset` bytes past a 64-byte boundary."""
    raw = np.empty(nbytes + 128, np.uint8)
    start = (offset - raw.ctypes.data) % 64
    return raw[start:start + nbytes]


def _outputs(g, offsets):
    return [_buffer(int(np.prod(o.shape)) * o.type.dtype.itemsize, off)
            .view(o.type.dtype.np).reshape(o.shape) for o, off in zip(g.outputs, offsets)]


def _loads(g, k, arrays: list) -> list:
    """The arrays kernel k reads, given the graph's inputs (views such as expand included)."""
    env = {id(n): a for n, a in zip(g.inputs, arrays)}
    with np.errstate(all="ignore"):
        _run(g, env)
    return [env[id(ld.value)] for ld in k.k.loads]


def _same(got: np.ndarray, want: np.ndarray) -> None:
    """Bit for bit (signed zeros included), except that any NaN equals any NaN (which NaN an
    operation returns, sign and payload, is not something numpy or IEEE pin down)."""
    if got.dtype.kind == "f":
        nan = np.isnan(want)
        np.testing.assert_array_equal(np.isnan(got), nan)
        got, want = got[~nan], want[~nan]
    np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))


@pytest.mark.parametrize("name,g", GRAPHS, ids=[n for n, _ in GRAPHS])
def test_stream_kernel_matches_plain_loop(monkeypatch, name, g):
    arrays = [a if a.dtype.kind != "f" else np.asarray(a * 3) for a in random_inputs(g, seed=1)]
    for a in arrays:                           # special values go through the vector loop too
        if a.dtype.kind == "f" and a.size > 8:
            a[:6] = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-40]
    monkeypatch.setattr(launch, "STREAM_MIN_BYTES", 1 << 62)
    plain = compile_graph(g)
    monkeypatch.setattr(launch, "STREAM_MIN_BYTES", 0)
    stream = compile_graph(g)
    (kp,), (ks,) = plain.kernels, stream.kernels
    arrays = _loads(g, kp, arrays)
    want = _outputs(g, [0] * len(g.outputs))
    with np.errstate(all="ignore"):
        kp.run(arrays, want)
    streams = min(o.type.dtype.itemsize for o in g.outputs) >= 4
    assert any(k.endswith("n") for k in ks.patterns) == streams
    # aligned, all shifted by one element (a peeled prologue), and mutually misaligned outputs
    for offsets in ([0] * 3, [g.outputs[0].type.dtype.itemsize] * 3, [0, 4, 8]):
        got = _outputs(g, offsets)
        with np.errstate(all="ignore"):
            ks.run(arrays, got)
        for w, o in zip(want, got):
            _same(o, w)


def test_chunk_boundaries_and_threads(monkeypatch):
    """Thread-pool chunks start anywhere: each peels to its own aligned index."""
    g = workload(W1_BWD, n=100_003)
    monkeypatch.setattr(launch, "STREAM_MIN_BYTES", 0)
    k = compile_graph(g).kernels[0]
    arrays = _loads(g, k, random_inputs(g, seed=2))
    plan = k.plan(arrays + _outputs(g, [0, 0, 0]))
    assert plan.pattern and any(p.endswith("n") for p in k.patterns)
    want = _outputs(g, [0, 0, 0])
    plan.fns["main"](0, 100_003, plan.meta_ptr, *[a.ctypes.data for a in arrays + want])
    got = _outputs(g, [0, 0, 0])
    ptrs = (plan.meta_ptr, *[a.ctypes.data for a in arrays + got])
    for grain in (1, 7, 4096):
        got[0][:] = got[1][:] = got[2][:] = np.nan
        threadpool.parallel_for(plan.fns["main"], 100_003, ptrs, grain)
        for w, o in zip(want, got):
            _same(o, w)


def test_stream_variant_emits_nontemporal_stores():
    g = workload(W1_BWD, n=4096)
    text, _ = lower(compile_graph(g).kernels[0].k, "0111111", stream=True)
    asm = engine._state().tm.emit_assembly(engine._state().optimize(text))
    if "avx" not in engine._state().features:
        pytest.skip("not an x86 host with AVX")
    assert len(re.findall(r"\bv?movnt", asm)) >= 3


def test_large_outputs_choose_streaming_small_do_not():
    g = workload(W1_BWD, n=1 << 10)
    k = compile_graph(g).kernels[0]
    assert not any(p.endswith("n") for p in k.patterns)
    big = workload(W1_BWD, n=launch.STREAM_MIN_BYTES // 12 + 1)     # 3 outputs of 4 bytes
    assert any(p.endswith("n") for p in compile_graph(big).kernels[0].patterns)
