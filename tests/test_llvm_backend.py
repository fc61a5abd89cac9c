"""Tests of the LLVM CPU backend (tracejit/codegen/llvm/backend.py): compiled graphs against the
numpy interpreter.

Every elementwise op of the table (generated from it: its test domain, float32 and float64, ints
where the op takes them, NaN/inf/-0.0), odd and empty and 0-d shapes, non-contiguous inputs,
reductions over every axis set, the row-wise workload graphs, buffer reuse, and the accuracy of
a float32 sum of 2**24 elements against numpy's.
"""
from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_close
from kernel_graphs import (
    LAYER_NORM,
    LAYER_NORM_BWD,
    SOFTMAX,
    W1_BWD,
    W1_FWD,
    XENT_BWD,
    XENT_FWD,
    Builder,
    interpret,
    random_inputs,
    workload,
)

from tracejit.codegen.llvm import engine
from tracejit.codegen.llvm.backend import compile_graph
from tracejit.codegen.llvm.kernel import lower
from tracejit.ops import REGISTRY

ELEMENTWISE = sorted(n for n, op in REGISTRY.items() if op.kind == "elementwise")
SPECIAL = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, 1.0, -1.0, 1e-30, 1e30])
TOL = {"float32": (3e-6, 1e-6), "float64": (1e-12, 1e-14)}


def check(g, arrays, rtol=3e-6, atol=1e-6):
    cg = compile_graph(g)
    got, want = cg(arrays), interpret(g, arrays)
    for a, w in zip(got, want):
        assert a.dtype == w.dtype and a.flags.c_contiguous
        if a.dtype.kind == "f":
            assert_close(a, w, rtol=rtol, atol=atol)
        else:
            np.testing.assert_array_equal(a, w)
    return cg


def _operands(op, dtype, n, rng):
    lo, hi = op.domain
    if dtype in ("float32", "float64"):
        xs = [rng.uniform(lo, hi, n) for _ in range(op.nin)]
        k = len(SPECIAL)
        for i, x in enumerate(xs):        # every pair of special values appears once
            x[:k * k] = np.repeat(SPECIAL, k) if i == 0 else np.tile(SPECIAL, k)
        return [x.astype(dtype) for x in xs]
    if dtype == "bool":
        return [rng.random(n) < 0.5 for _ in range(op.nin)]
    return [rng.integers(max(int(lo) - 3, -5), int(hi) + 4, n).astype(dtype)
            for _ in range(op.nin)]


def _cases():
    for name in ELEMENTWISE:
        op = REGISTRY[name]
        if name in ("where", "cast"):
            continue
        dts = ["float32", "float64"]
        if op.int_ok and op.dtype_rule != "float":
            dts.append("int32" if name != "pow" else "int64")
            if op.bool_ok and op.dtype_rule in ("compare", "logical", "promote"):
                dts.append("bool")
        if op.dtype_rule == "logical":
            dts = ["bool"]
        for dt in dts:
            yield name, dt


@pytest.mark.parametrize("name,dtype", list(_cases()))
def test_every_elementwise_op(name, dtype):
    op = REGISTRY[name]
    rng = np.random.default_rng(abs(hash((name, dtype))) % 2**32)
    b = Builder(name)
    ins = [b.input((1000,), dtype) for _ in range(op.nin)]
    g = b.out(b.op(name, *ins))
    arrays = _operands(op, dtype, 1000, rng)
    if name == "pow" and dtype == "int64":
        arrays[1] = np.abs(arrays[1])            # numpy raises for negative integer powers
    if name in ("floordiv", "remainder") and dtype.startswith("int"):
        arrays[1][arrays[1] == 0] = 1            # integer division by zero raises (as torch)
    rtol, atol = TOL.get(dtype, (0, 0))
    check(g, arrays, rtol=rtol, atol=atol)


@pytest.mark.parametrize("src", ["float32", "float64", "int32", "int64", "bool"])
def test_cast_and_where(src):
    rng = np.random.default_rng(1)
    b = Builder()
    x, c = b.input((300,), src), b.input((300,), "bool")
    outs = [b.op("cast", x, dtype=d) for d in ("float32", "float64", "int32", "int64", "bool")]
    g = b.out(*outs, b.op("where", c, x, b.op("cast", b.op("cast", x, dtype="bool"), dtype=src)))
    x_val = (rng.uniform(-1e3, 1e3, 300) if src.startswith("f") else rng.integers(-9, 9, 300))
    x_val = x_val.astype(src)
    if src.startswith("f"):
        x_val[:6] = [np.nan, np.inf, -np.inf, -0.0, 0.5, -1.5]
    check(g, [x_val, rng.random(300) < 0.5])


@pytest.mark.parametrize("n", [1, 3, 17, 1000003])
def test_odd_sizes(n):
    b = Builder()
    x, y = b.input((n,)), b.input((n,))
    g = b.out(b.op("tanh", b.op("mul", x, y)), b.op("sum", b.op("exp", x), dims=(0,),
                                                       keepdim=False))
    check(g, random_inputs(g), rtol=2e-5)


def test_zero_dim_and_empty():
    b = Builder()
    x, s = b.input(()), b.input(())
    check(b.out(b.op("add", b.op("exp", x), s)), [np.float32(0.5), np.float32(2.0)])
    for shape in [(0,), (3, 0), (0, 4)]:
        b = Builder()
        x = b.input(shape)
        g = b.out(b.op("exp", x), b.op("sum", x, dims=(0,), keepdim=False),
                  b.op("prod", x, dims=tuple(range(len(shape))), keepdim=True))
        out = check(g, [np.zeros(shape, np.float32)])([np.zeros(shape, np.float32)])
        assert out[2].reshape(-1).tolist() == [1.0]


def test_amax_of_empty_raises_like_eager():
    b = Builder()
    x = b.input((0, 3))
    g = b.out(b.op("amax", x, dims=(0,), keepdim=False))
    cg = compile_graph(g)
    with pytest.raises((RuntimeError, IndexError)) as eager:
        interpret(g, [np.zeros((0, 3), np.float32)])
    with pytest.raises(eager.type):
        cg([np.zeros((0, 3), np.float32)])


def test_non_contiguous_inputs():
    b = Builder()
    x, y, z = b.input((40, 30)), b.input((40, 30)), b.input((40, 30))
    g = b.out(b.op("add", b.op("mul", x, y), b.op("sin", z)),
              b.op("sum", b.op("mul", x, z), dims=(1,), keepdim=False))
    rng = np.random.default_rng(2)
    base = rng.standard_normal((30, 40)).astype(np.float32)
    stepped = rng.standard_normal((80, 90)).astype(np.float32)[::2, ::3]
    bcast = np.broadcast_to(rng.standard_normal(30).astype(np.float32), (40, 30))
    cg = check(g, [base.T, stepped, bcast])
    check(g, [bcast, base.T, stepped])
    assert len(cg.kernels) == 1


def test_reductions_over_every_axis_set():
    rng = np.random.default_rng(3)
    shape = (3, 4, 5)
    for dims in [(0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2)]:
        for keep in (False, True):
            for op, dt in [("sum", "float32"), ("prod", "float64"), ("amax", "float32"),
                           ("amin", "int32"), ("sum", "int32"), ("sum", "bool"),
                           ("all", "float32"), ("any", "bool"), ("amax", "bool")]:
                b = Builder()
                x = b.input(shape, dt)
                g = b.out(b.op(op, x, dims=dims, keepdim=keep))
                v = rng.uniform(0.5, 1.5, shape).astype(dt) if dt != "bool" else \
                    rng.random(shape) < 0.5
                if dt.startswith("f"):
                    v.reshape(-1)[[0, 7]] = [np.nan, 0.0]
                check(g, [v], rtol=1e-5)


@pytest.mark.parametrize("shape,dims", [((1000, 40), (0,)), ((3, 500, 24), (0, 1)),
                                        ((3, 500, 24), (1,)), ((20000, 9), (0,))])
def test_column_reductions(shape, dims):
    # reduce over leading axes of a contiguous kept axis: accumulated a block of columns at once
    rng = np.random.default_rng(6)
    b = Builder()
    x, y = b.input(shape), b.input(shape, "int32")
    ex = b.op("mul", x, x)
    g = b.out(b.op("sum", ex, dims=dims, keepdim=False), b.op("amax", x, dims=dims, keepdim=True),
              b.op("sum", y, dims=dims, keepdim=False), b.op("exp", ex))
    xv = rng.standard_normal(shape).astype(np.float32)
    xv.reshape(-1)[5] = np.nan
    yv = rng.integers(-100, 100, shape).astype(np.int32)
    cg = check(g, [xv, yv], rtol=1e-5)
    check(g, [np.ascontiguousarray(xv.T).T, yv], rtol=1e-5)       # a transposed layout
    assert len(cg.kernels) == 2


def test_int_sum_accumulates_in_int64():
    b = Builder()
    x = b.input((1000,), "int32")
    g = b.out(b.op("sum", x, dims=(0,), keepdim=False))
    big = np.full(1000, 2**30, np.int32)
    assert compile_graph(g)([big])[0] == 1000 * 2**30


def test_float32_sum_at_least_as_accurate_as_numpy():
    n = 1 << 24
    x = np.random.default_rng(4).uniform(0, 1, n).astype(np.float32)
    b = Builder()
    g = b.out(b.op("sum", b.input((n,)), dims=(0,), keepdim=False))
    exact = np.sum(x, dtype=np.float64)
    ours = float(compile_graph(g)([x])[0])
    assert abs(ours - exact) <= abs(float(np.sum(x)) - exact)


@pytest.mark.parametrize("text,sizes", [(W1_FWD, {"n": 100003}), (W1_BWD, {"n": 100003}),
                                        (SOFTMAX, {"r": 33, "c": 1000}),
                                        (SOFTMAX, {"r": 2, "c": 70000}),
                                        (LAYER_NORM, {"r": 17, "c": 300}),
                                        (LAYER_NORM_BWD, {"r": 17, "c": 300}),
                                        (XENT_FWD, {"r": 37, "c": 11}),
                                        (XENT_BWD, {"r": 37, "c": 11})],
                         ids=["w1", "w1_bwd", "softmax", "softmax_long_rows", "layer_norm",
                              "layer_norm_bwd", "xent", "xent_bwd"])
def test_workload_graphs(text, sizes):
    g = workload(text, **sizes)
    for seed in (0, 1):                   # twice: no constants baked in, no stale buffers
        arrays = random_inputs(g, seed)
        arrays = [np.abs(a) % sizes.get("c", 1) if a.dtype.kind == "i" else a for a in arrays]
        if g.name == "w3_backward":
            arrays[4] = np.abs(arrays[4]) + 1.0      # a sum of squares
        check(g, arrays, rtol=2e-5, atol=1e-5)


def test_out_of_range_target_raises():
    g = workload(XENT_FWD, r=4, c=5)
    cg = compile_graph(g)
    logits = np.zeros((4, 5), np.float32)
    with pytest.raises(IndexError):
        cg([logits, np.array([0, 1, 5, 2])])
    assert np.isfinite(cg([logits, np.array([0, -1, -100, 4])])[0])


def test_outputs_are_fresh_with_matmul_between_kernels():
    b = Builder()
    x, w = b.input((16, 16)), b.input((16, 16))
    h = b.op("tanh", b.op("matmul", b.op("exp", x), w))
    h2 = b.op("relu", b.op("matmul", h, w))
    g = b.out(b.op("add", b.op("matmul", h2, w), x), x)
    cg = check(g, random_inputs(g), rtol=1e-5, atol=1e-4)    # 1-ulp exp differences, summed
    xs = random_inputs(g, 5)
    _, x_out = cg(xs)
    assert not np.shares_memory(x_out, xs[0]) and np.array_equal(x_out, xs[0])


def test_output_view_of_an_intermediate_is_not_overwritten():
    # o1 is a view of k0's output that must survive the kernel that runs after it
    b = Builder()
    x, w = b.input((8, 6)), b.input((6, 6))
    h = b.op("exp", x)
    o1 = b.op("index", h, key=(("s", 0, 8, 2), ("s", 0, 6, 1)))
    t = b.op("tanh", b.op("matmul", h, w))          # same size as h: would take its buffer
    g = b.out(o1, b.op("neg", b.op("matmul", t, w)))
    check(g, random_inputs(g), rtol=1e-5, atol=1e-5)


def test_elementwise_kernel_is_vectorised():
    b = Builder()
    x, y = b.input((1024,)), b.input((1024,))
    g = b.out(b.op("exp", b.op("add", x, y)))
    (k,) = compile_graph(g).schedule.kernels
    text, _ = lower(k, "111")
    opt = engine.optimized_ir(text)
    assert "x float>" in opt or "x double>" in opt


def test_parallel_chunks_cover_the_range(monkeypatch):
    monkeypatch.setenv("TRACEJIT_NUM_THREADS", "4")
    b = Builder()
    x = b.input((3, 1 << 18))
    g = b.out(b.op("mul", x, x), b.op("sum", x, dims=(0, 1), keepdim=False),
              b.op("amax", x, dims=(1,), keepdim=False))
    check(g, random_inputs(g), rtol=1e-5)


def test_recycled_output_buffers_are_never_visible_twice():
    """Big outputs are recycled once nobody references them; a live output (or a view of it)
    must never be overwritten by a later call."""
    import tracejit as tj
    cf = tj.compile(lambda x: x * 2.0, backend="llvm")
    n = 1 << 19  # 2 MiB of float32: pooled
    a = cf(tj.ones(n))
    view = cf(tj.full((n,), 3.0))[:4]
    b = cf(tj.full((n,), 5.0))
    assert not np.shares_memory(a.numpy(), b.numpy())
    del a
    c = cf(tj.full((n,), 7.0))
    np.testing.assert_array_equal(view.numpy(), 6.0)
    np.testing.assert_array_equal(b.numpy(), 10.0)
    np.testing.assert_array_equal(c.numpy(), 14.0)


def test_float32_row_sums_at_least_as_accurate_as_numpy():
    # Row sums keep float32 partials inside a block (so the body vectorises 16 wide); their
    # error must still be no worse than numpy's pairwise float32 sum.
    x = np.random.default_rng(5).uniform(0, 1, (512, 1024)).astype(np.float32)
    b = Builder()
    g = b.out(b.op("sum", b.input(x.shape), dims=(1,), keepdim=False))
    exact = x.astype(np.float64).sum(1)
    ours = np.abs(compile_graph(g)([x])[0] - exact)
    theirs = np.abs(x.sum(1) - exact)
    assert ours.mean() <= theirs.mean()      # (maxima are set by the final rounding)


def test_large_gradients_handed_over_without_copy_and_never_shared():
    import tracejit as tj
    n = 1 << 19                                  # 2 MiB: from the recycled-output pool
    x = tj.randn(n, requires_grad=True)
    f = tj.compile(lambda x: (x * x).sum())
    f(x).backward()
    g1 = x.grad
    data = g1.numpy()
    assert data.base is not None and data.base.dtype == np.uint8   # the backend's buffer itself
    x.grad = None
    f(x).backward()                              # g1 is alive: its buffer must not be reused
    assert not np.shares_memory(data, x.grad.numpy())
    np.testing.assert_allclose(data, 2 * x.detach().numpy(), rtol=1e-6)
    view = data[1:]                              # a user view keeps the buffer from the pool
    del g1, data
    x.grad = None
    f(x).backward()
    assert not np.shares_memory(view, x.grad.numpy())


@pytest.mark.parametrize("shape", [(4099, 300), (70, 5000), (3, 17)])
def test_float32_column_sums_fold_partials_accurately(shape):
    # column mode keeps float32 partials for RB rows, then folds them into f64 accumulators
    x = np.random.default_rng(6).uniform(0, 1, shape).astype(np.float32)
    b = Builder()
    xin = b.input(shape)
    g = b.out(b.op("sum", xin, dims=(0,), keepdim=False),
              b.op("sum", b.op("mul", xin, xin), dims=(0,), keepdim=True))
    exact = x.astype(np.float64).sum(0)
    ours, sq = compile_graph(g)([x])
    assert np.abs(ours - exact).mean() <= np.abs(x.sum(0) - exact).mean()
    np.testing.assert_allclose(sq[0], (x.astype(np.float64) ** 2).sum(0), rtol=1e-6)


def test_returned_matmul_is_handed_over_without_a_copy():
    b = Builder()
    x, w = b.input((512, 256)), b.input((256, 784))          # 1.5 MiB result: recycled buffer
    g = b.out(b.op("matmul", x, w))
    xs = [np.ones((512, 256), np.float32), np.ones((256, 784), np.float32)]
    out = compile_graph(g)(xs)[0]
    assert out.base is not None and out.base.dtype == np.uint8    # the buffer BLAS wrote into
    np.testing.assert_array_equal(out, np.full((512, 784), 256, np.float32))


def _chain():
    b = Builder()
    x, w = b.input((64, 32)), b.input((32, 32))
    h = b.op("matmul", x, w)                       # an intermediate BLAS result
    t = b.op("tanh", h)                            # an intermediate kernel result
    c = b.op("cat", t, h, dim=0)                   # an intermediate concatenation
    y = b.op("matmul", b.op("permute", c, dims=(1, 0)), c)
    return b.out(b.op("exp", b.op("mul", y, b.const(0.01))))


def test_intermediate_buffers_are_kept_from_call_to_call():
    g = _chain()
    cg = compile_graph(g)
    rng = np.random.default_rng(7)
    sizes = []
    for _ in range(3):
        arrays = [rng.standard_normal(n.shape).astype(np.float32) for n in g.inputs]
        assert_close(cg(arrays)[0], interpret(g, arrays)[0], rtol=1e-5, atol=1e-6)
        sizes.append(sorted((k, len(v)) for k, v in cg._spare.items()))
    assert sizes[0] and sizes[0] == sizes[1] == sizes[2]   # the same buffers, reused


def test_concurrent_calls_of_one_compiled_graph():
    import threading
    g = _chain()
    cg = compile_graph(g)
    rng = np.random.default_rng(8)
    cases = [[rng.standard_normal(n.shape).astype(np.float32) for n in g.inputs]
             for _ in range(4)]
    want = [interpret(g, a)[0] for a in cases]
    errors = []

    def work(i):
        for _ in range(30):
            got = cg(cases[i])[0]
            if not np.allclose(got, want[i], rtol=1e-5, atol=1e-6):
                errors.append(i)
    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


@pytest.mark.parametrize("shape,dims", [((5, 0), (1,)), ((0, 40), (0,)), ((0,), (0,)),
                                        ((3, 300), (1,)), ((3000, 40), (0,)), ((70000,), (0,))])
def test_float_sums_of_negative_zeros_and_of_nothing_match_numpy(shape, dims):
    """As numpy's, float sums start from +0.0: a sum of -0.0s and a sum over nothing are +0.0."""
    b = Builder()
    g = b.out(b.op("sum", b.input(shape), dims=dims, keepdim=False))
    x = np.full(shape, -0.0, np.float32)
    got, want = compile_graph(g)([x])[0], np.sum(x, axis=dims)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(want))
