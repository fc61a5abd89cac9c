"""Properties of the IR passes over many graphs, evaluated by a tiny numpy interpreter that calls
each op's `eager`: random elementwise/movement graphs (hypothesis) built with the op table
round-trip through print/parse and keep their results bit for bit (NaN, inf and signed zeros
included) through several pass pipelines; and, exhaustively, every `x op c` / `c op x` with a
special constant and every dtype triple of a cast chain keeps its bits through `simplify`.
"""
from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tracejit.ir.graph import Graph, TensorType, infer_type, print_graph
from tracejit.ir.parser import parse
from tracejit.ir.passes import run_passes
from tracejit.ir.passes.simplify import _cast_chain_exact
from tracejit.ir.verify import verify
from tracejit.ops import REGISTRY, broadcast_shapes
from tracejit.ops import dtypes as D

# --- property: random graphs keep their results bit for bit through every pipeline ---

SPECIAL = [0.0, -0.0, 1.0, -1.0, 0.5, 2.0, -2.5, 3.0, 0.1, 1 / 3, 1e-30, np.inf, -np.inf,
           np.nan]
CONSTS = [0.0, -0.0, 1.0] * 4 + SPECIAL  # the values simplify looks for, and near misses
INPUTS = [-0.0, 0.0] * 3 + SPECIAL  # signed zeros tell x + 0.0 from x
SHAPES = [(), (3,), (2, 3), (2, 1)]
UNARY = ["neg", "abs", "exp", "tanh", "sqrt", "log", "relu", "square", "sign", "floor",
         "sigmoid", "reciprocal", "expm1", "log1p"]
BINARY = ["add", "sub", "mul", "div", "maximum", "minimum", "pow"]
PIPELINES = [("simplify", "fold", "cse", "dce"), ("fold", "simplify", "dce", "cse"),
             ("cse", "simplify", "simplify", "fold", "dce")]


def evaluate(g: Graph, args: list) -> list:
    """The tiny reference interpreter: each node through the op table's numpy implementation."""
    env = {id(i): a for i, a in zip(g.inputs, args)}
    with np.errstate(all="ignore"):
        for n in g.nodes:
            if n.op == "const":
                out = n.value
            else:
                out = np.asarray(REGISTRY[n.op].eager(*[env[id(i)] for i in n.inputs],
                                                      **n.params))
            assert out.shape == n.type.shape and out.dtype == n.type.dtype.np, n
            env[id(n)] = out
    return [env[id(o)] for o in g.outputs]


def _const_node(g, draw, shape, dt):
    kind = draw(st.sampled_from(["scalar", "uniform", "mixed", "full"]))
    v = draw(st.sampled_from(CONSTS))
    if kind == "scalar":
        return g.const(np.array(v, dt))
    if kind == "uniform":
        return g.const(np.full(shape, v, dt))
    if kind == "mixed":  # one value everywhere but in one place
        size = int(np.prod(shape))
        vals = [v] * size
        vals[draw(st.integers(0, size - 1))] = draw(st.sampled_from(CONSTS))
        return g.const(np.array(vals, dt).reshape(shape))
    params = {"shape": shape, "value": float(v), "dtype": D.from_numpy_dtype(np.dtype(dt)).name}
    return g.add("full", [], params, infer_type("full", [], params))


@st.composite
def graphs(draw):
    dt = draw(st.sampled_from([np.float32, np.float64]))
    other = np.float64 if dt is np.float32 else np.float32
    name, oname = D.from_numpy_dtype(np.dtype(dt)).name, D.from_numpy_dtype(np.dtype(other)).name
    g = Graph("rand")
    nin = draw(st.integers(1, 3))
    pool = [g.add_input(_type(draw(st.sampled_from(SHAPES)), dt), f"a{k}") for k in range(nin)]

    def add(op, inputs, **params):
        n = g.add(op, inputs, params, infer_type(op, inputs, params), loc=f"r.py:{len(g.nodes)}")
        pool.append(n)
        return n

    for _ in range(draw(st.integers(1, 12))):
        x = draw(st.sampled_from(pool))
        step = draw(st.sampled_from(["unary", "binary", "const", "const", "const", "negneg",
                                     "cast", "reshape", "permute", "expand", "where", "sum"]))
        if step == "unary":
            add(draw(st.sampled_from(UNARY)), [x])
        elif step == "binary":
            y = draw(st.sampled_from(pool))
            if _broadcasts(x, y):
                add(draw(st.sampled_from(BINARY)), [x, y] if draw(st.booleans()) else [y, x])
        elif step == "const":
            c = _const_node(g, draw, x.shape if draw(st.booleans()) else (), dt)
            add(draw(st.sampled_from(["add", "sub", "mul", "div"])),
                [x, c] if draw(st.booleans()) else [c, x])
        elif step == "negneg":
            add("neg", [add("neg", [x])])
        elif step == "cast":
            mid = add("cast", [x], dtype=draw(st.sampled_from([name, oname, oname])))
            pool.pop()  # keep the pool at one dtype
            add("cast", [mid], dtype=name)
        elif step == "reshape":
            flat = add("reshape", [x], shape=(x.type.numel,))
            add("reshape", [flat], shape=x.shape)
        elif step == "permute":
            dims = tuple(range(x.ndim))[::-1] if draw(st.booleans()) else tuple(range(x.ndim))
            p = add("permute", [x], dims=dims)
            add("permute", [p], dims=dims)
        elif step == "expand":
            if x.shape in ((), (3,), (2, 1), (2, 3)):
                e = add("expand", [x], shape=(2, 3))
                add("expand", [e], shape=(4, 2, 3))
        elif step == "where" and _broadcasts(x, y := draw(st.sampled_from(pool))):
            c = add("gt", [x, y])
            pool.pop()
            add("where", [c, x, y])
        elif step == "sum" and x.ndim:
            add("sum", [x], dims=(0,), keepdim=draw(st.booleans()))
    # every value nothing else reads is an output, so no computation goes unobserved
    used = {id(i) for n in g.nodes for i in n.inputs}
    g.outputs = [n for n in g.nodes if id(n) not in used and n.type.dtype.np == dt] + \
        draw(st.lists(st.sampled_from(pool), min_size=1, max_size=2))
    args = [np.array(draw(st.lists(st.sampled_from(INPUTS), min_size=i.type.numel,
                                   max_size=i.type.numel)), dt).reshape(i.shape)
            for i in g.inputs]
    return g, args


def _type(shape, dt) -> TensorType:
    return TensorType(shape, D.from_numpy_dtype(np.dtype(dt)))


def _broadcasts(x, y) -> bool:
    try:
        broadcast_shapes(x.shape, y.shape)
    except RuntimeError:
        return False
    return True


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graphs())
def test_random_graphs_round_trip_and_keep_results(case):
    g, args = case
    verify(g)
    text = print_graph(g)
    assert print_graph(parse(text)) == text
    want = evaluate(g, args)
    for pipeline in PIPELINES:
        h = run_passes(parse(text), passes=pipeline, verify_each=True)
        assert [str(o.type) for o in h.outputs] == [str(o.type) for o in g.outputs]
        got = evaluate(h, args)
        for w, r in zip(want, got):
            assert w.dtype == r.dtype and w.shape == r.shape
            np.testing.assert_array_equal(r, w)  # NaN == NaN here
            assert np.array_equal(np.signbit(r), np.signbit(w)), (pipeline, text)
        assert len(h.nodes) <= len(g.nodes)  # passes never add nodes


_DTYPES = [D.bool_, D.uint8, D.int8, D.int16, D.int32, D.int64, D.float16, D.float32, D.float64]


def _samples(d: D.DType) -> np.ndarray:
    if d.is_bool:
        return np.array([False, True])
    if d.is_integer:
        i = np.iinfo(d.np)
        return np.array([i.min, i.min + 1, -1 if i.min else 2, 0, 1, 7, i.max - 1, i.max], d.np)
    f = np.finfo(d.np)
    with np.errstate(over="ignore"):
        return np.array([0.0, -0.0, 1.0, -1.5, 2.5, 127.0, 300.0, -40000.0, 1e10, f.max,
                         -f.max, f.tiny, f.smallest_subnormal, np.inf, -np.inf, np.nan], d.np)


def _same_bits(got: np.ndarray, want: np.ndarray, what: str) -> None:
    assert got.dtype == want.dtype and got.shape == want.shape, what
    np.testing.assert_array_equal(got, want, err_msg=what)
    assert np.array_equal(np.signbit(got), np.signbit(want)), what


def test_cast_chains_exhaustively():
    """Every dtype triple d0 -> d1 -> d2 through simplify: same bits as the graph before it,
    on extreme values; and the chains the rule accepts are many."""
    rewritten = 0
    for d0 in _DTYPES:
        x = _samples(d0)
        for d1 in _DTYPES:
            for d2 in _DTYPES:
                g = Graph("c")
                a = g.add_input(TensorType(x.shape, d0), "x")
                m = g.add("cast", [a], {"dtype": d1.name}, TensorType(x.shape, d1))
                g.outputs = [g.add("cast", [m], {"dtype": d2.name}, TensorType(x.shape, d2))]
                (want,) = evaluate(g, [x])
                h = run_passes(g, passes=("simplify", "dce"), verify_each=True)
                (got,) = evaluate(h, [x])
                _same_bits(got, want, f"{d0.name} -> {d1.name} -> {d2.name}")
                chained = any(n.op == "cast" and n.inputs[0].op == "cast" for n in h.nodes)
                rewritten += _cast_chain_exact(d0, d1, d2)
                assert chained != (_cast_chain_exact(d0, d1, d2) or d0 is d1 or d1 is d2)
    assert rewritten > 150
    assert not _cast_chain_exact(D.float64, D.float32, D.float64)
    assert not _cast_chain_exact(D.int16, D.float16, D.int16)
    assert not _cast_chain_exact(D.int64, D.float64, D.int64)


def test_binary_identities_exhaustively():
    """x op c and c op x for every special c (0-d const, filled const, full), through simplify:
    same bits on inputs holding both zeros, infinities and NaN; some rewrites do happen."""
    rewritten = 0
    for dt, ops, cs in ((D.float32, ("add", "sub", "mul", "div"), [0.0, -0.0, 1.0, -1.0, np.nan,
                                                                     np.inf, 2.0]),
                        (D.float64, ("add", "sub", "mul", "div"), [0.0, -0.0, 1.0, -np.inf]),
                        (D.int64, ("add", "sub", "mul"), [0, 1, -1, 2]),
                        (D.bool_, ("add", "mul"), [False, True])):
        x = _samples(dt)
        for op in ops:
            for c in cs:
                for kind in ("const0d", "const", "full"):
                    for left in (False, True):
                        g = Graph("b")
                        a = g.add_input(TensorType(x.shape, dt), "x")
                        if kind == "full":
                            k = g.add("full", [], {"shape": x.shape, "value": c, "dtype": dt.name},
                                      TensorType(x.shape, dt))
                        else:
                            k = g.const(np.full(x.shape if kind == "const" else (), c, dt.np))
                        ins = [k, a] if left else [a, k]
                        g.outputs = [g.add(op, ins, {}, infer_type(op, ins, {}))]
                        (want,) = evaluate(g, [x])
                        h = run_passes(g, passes=("simplify", "dce"), verify_each=True)
                        (got,) = evaluate(h, [x])
                        _same_bits(got, want, f"{'c ' + op + ' x' if left else 'x ' + op} {c}")
                        rewritten += not h.nodes
    # per const kind: floats x + -0.0 (2 sides), x - 0.0, x * 1 (2 sides), x / 1; ints the same
    # without div; bools x + False, x * True (2 sides each)
    assert rewritten == 3 * (6 + 6 + 5 + 4)


