"""Tests generated from the op table (`tracejit.ops.REGISTRY`).

Elementwise ops need no entry here: their inputs come from each entry's `nin`, `domain`,
`cond_inputs`, `int_ok`/`bool_ok`, and their float64 reference is the entry's own scalar
expression evaluated with numpy (`op.expr(M, ...)`), the reference every backend is held to.
Each one is run eagerly over random broadcast shapes, 0-d, empty, non-contiguous inputs, Python
scalars on either side, every supported dtype (the result dtype checked against PyTorch's
promotion rule, restated below) and NaN/inf; its vjp (and its vjp's vjp) is checked against
central finite differences in float64.

Ops with their own shape rule (reductions, movement, indexing, matmul, sources) each need a
row in OTHER below: how to call them and their float64 numpy reference. A registered op without
a row fails `test_every_op_has_a_test`, so no op goes untested. Every call any test makes is
also checked against the op's `infer` (the shape/dtype rule the IR uses).
"""
from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from typing import NamedTuple

import hypothesis as hyp
import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
import api_cases
from conftest import assert_close, check_grads

import tracejit as tj
from tracejit.ops import REGISTRY, M
from tracejit.ops import dtypes as D
from tracejit.tensor import apply

R = REGISTRY
# numpy's "invalid value encountered" warnings of the float64 references (NaN/inf cases)
pytestmark = pytest.mark.filterwarnings("ignore:.*encountered in:RuntimeWarning")
ELEMENTWISE = sorted(n for n, op in R.items() if op.kind == "elementwise")
DIFFERENTIABLE = [n for n in ELEMENTWISE if R[n].vjp is not None]

# elementwise entries with static params: the params to test them with
PARAMS = {"cast": [{"dtype": "float64"}, {"dtype": "float32"}, {"dtype": "int64"},
                   {"dtype": "int32"}, {"dtype": "bool"}]}

DTYPES = [D.float32, D.float64, D.int32, D.int64, D.bool_]


def rng_for(*key) -> np.random.Generator:
    """A generator seeded by the test's identity: deterministic, different per op and case."""
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


# --- PyTorch's promotion rule, restated independently of ops/dtypes.py ---

def _category(d) -> int:
    return 0 if d is D.bool_ else (1 if d in (D.int32, D.int64) else 2)


def torch_result_type(operands) -> D.DType:
    """operands: ("dim" | "zero" | "scalar", dtype). Dimensioned tensors decide; a 0-d tensor,
    then a Python scalar (as float32/int64), only wins with a higher category."""
    out = None
    for kind in ("dim", "zero", "scalar"):
        group = [d for k, d in operands if k == kind]
        if not group:
            continue
        best = max(group, key=lambda d: (_category(d), d.itemsize))
        if out is None or _category(best) > _category(out):
            out = best
    return out


def expected_dtypes(op, operands, params):
    """(compute dtype, result dtype) of an elementwise op."""
    if op.name == "cast":
        return operands[0][1], D.get_dtype(params["dtype"])
    common = torch_result_type(operands[op.cond_inputs:])
    rule = op.dtype_rule
    if rule == "float":
        common = common if _category(common) == 2 else D.float32
        return common, common
    if rule == "compare":
        return common, D.bool_
    if rule == "logical":
        return D.bool_, D.bool_
    return common, common


# --- inputs of elementwise ops ---

def sample(rng, op, i, shape, dtype):
    """Values for input i of op: bool conditions, else inside the entry's test domain."""
    if i < op.cond_inputs or dtype is D.bool_:
        return rng.random(shape) < 0.5
    lo, hi = op.domain
    if dtype.is_integer:
        return rng.integers(math.ceil(lo), math.floor(hi) + 1, shape).astype(dtype.np)
    return rng.uniform(lo, hi, shape).astype(dtype.np)


def scalar_value(rng, op, dtype):
    v = sample(rng, op, op.cond_inputs, (), dtype)
    return bool(v) if dtype is D.bool_ else (int(v) if dtype.is_integer else float(v))


def dtype_supported(op, dtype) -> bool:
    if op.name == "cast" or op.dtype_rule == "logical":
        return True
    if dtype is D.bool_:
        return op.bool_ok
    lo, hi = op.domain
    return not dtype.is_integer or (op.int_ok and math.ceil(lo) <= math.floor(hi))


def broadcast_shapes(rng, n):
    out = tuple(int(s) for s in rng.integers(1, 5, size=int(rng.integers(1, 4))))
    shapes = []
    for _ in range(n):
        k = int(rng.integers(0, len(out) + 1))
        shapes.append(tuple(d if rng.random() < 0.6 else 1 for d in out[k:]))
    shapes[int(rng.integers(n))] = out
    return shapes


CASES = ["broadcast", "0d", "mixed-0d", "empty", "noncontig", "scalar-left", "scalar-right",
         "nan-inf"]


def make_operands(op, case, dtype, rng):
    """(operands for apply, their float64/int64 reference arrays, operand kinds)."""
    n = op.nin
    if case == "0d":
        shapes = [()] * n
    elif case == "mixed-0d":
        shapes = [(2, 3)] + [()] * (n - 1)
        shapes = shapes[::-1] if rng.random() < 0.5 else shapes
    elif case == "empty":
        shapes = [(0, 3)] + [(1, 3)] * (n - 1)
    elif case == "noncontig":
        shapes = [(3, 4)] * n
    else:
        shapes = broadcast_shapes(rng, n)
    arrays = [sample(rng, op, i, s, dtype) for i, s in enumerate(shapes)]
    if case == "nan-inf" and dtype.is_floating_point:
        for i, a in enumerate(arrays):
            if i >= op.cond_inputs and a.ndim:
                flat = a.reshape(-1)
                for v in (np.nan, np.inf, -np.inf):
                    flat[rng.integers(flat.size)] = v
    operands, kinds = [], []
    for i, a in enumerate(arrays):
        if case == "noncontig":
            big = np.zeros((a.shape[0], a.shape[1] * 2), a.dtype)
            big[:, ::2] = a
            t = tj.from_numpy(big[:, ::2])
            assert not t.is_contiguous()
        else:
            t = tj.tensor(a)
        operands.append(t)
        kinds.append(("dim" if a.ndim else "zero", t.dtype))
    scal = {"scalar-left": op.cond_inputs, "scalar-right": n - 1}.get(case)
    if scal is not None and n - op.cond_inputs >= 2:
        v = scalar_value(rng, op, dtype)
        operands[scal] = v
        kinds[scal] = ("scalar", D.scalar_dtype(v))
    return operands, kinds


def reference(op, operands, compute, params):
    """The entry's scalar expression, in float64 (or int64/bool) numpy, on the same values."""
    ref_np = np.float64 if compute.is_floating_point else (
        np.bool_ if compute.is_bool else np.int64)
    ins = []
    for i, o in enumerate(operands):
        a = o.numpy() if isinstance(o, tj.Tensor) else np.asarray(o)
        ins.append(a.astype(np.bool_) if i < op.cond_inputs else a.astype(ref_np))
    if op.name == "cast":
        ins = [np.asarray(operands[0].numpy(), np.float64) if operands[0].dtype
               .is_floating_point else operands[0].numpy()]
    with np.errstate(all="ignore"):
        return np.asarray(op.expr(M, *ins, **params))


def _param_sets(name):
    return PARAMS.get(name, [{}])


def _ew_ids():
    out = []
    for name in ELEMENTWISE:
        for k, params in enumerate(_param_sets(name)):
            out.append(pytest.param(name, params, id=name + (f"-{k}" if params else "")))
    return out


@pytest.mark.parametrize("name,params", _ew_ids())
@pytest.mark.parametrize("case", CASES)
def test_elementwise_eager(name, params, case):
    op = R[name]
    tested = 0
    for dtype in DTYPES:
        if not dtype_supported(op, dtype):
            continue
        if case == "nan-inf" and not dtype.is_floating_point:
            continue
        if case == "nan-inf" and name == "cast" and not D.get_dtype(params["dtype"]) \
                .is_floating_point:
            continue  # nan -> int is undefined (in numpy and in PyTorch)
        rng = rng_for(name, case, dtype.name, str(params))
        operands, kinds = make_operands(op, case, dtype, rng)
        compute, want = expected_dtypes(op, kinds, params)
        out = apply(op, *operands, **params)
        shapes = [o.shape for o in operands if isinstance(o, tj.Tensor)]
        assert out.dtype is want, f"{name} on {dtype.name} ({case}): dtype {out.dtype}"
        assert tuple(out.shape) == np.broadcast_shapes(*shapes)
        ref = np.broadcast_to(reference(op, operands, compute, params), out.shape)
        if want.is_floating_point and (compute is D.float32 or want is D.float32):
            assert_close(out.numpy(), ref, rtol=2e-5, atol=2e-6, msg=f"{name} {dtype.name}")
        elif want.is_floating_point:
            assert_close(out.numpy(), ref, rtol=1e-10, atol=1e-12, msg=f"{name} {dtype.name}")
        else:
            np.testing.assert_array_equal(out.numpy(), ref.astype(want.np),
                                          err_msg=f"{name} {dtype.name} ({case})")
        tested += 1
    assert tested or case == "nan-inf", f"{name}: no dtype could be tested"


MIXED = [(D.float32, D.float64), (D.int32, D.float32), (D.int64, D.int32), (D.bool_, D.int32),
         (D.float64, D.int64), (D.bool_, D.float32)]


@pytest.mark.parametrize("name", [n for n in ELEMENTWISE if R[n].nin - R[n].cond_inputs >= 2])
def test_elementwise_mixed_dtypes(name):
    """Operands of different dtypes, dimensioned and 0-d: PyTorch's promotion."""
    op = R[name]
    for a, b in MIXED:
        for zero in (False, True):
            if not (dtype_supported(op, a) and dtype_supported(op, b)):
                continue
            rng = rng_for(name, a.name, b.name, zero)
            shapes = [(2, 3)] * op.nin
            if zero:
                shapes[-1] = ()
            arrays = [sample(rng, op, i, s, a if i == op.cond_inputs else b)
                      for i, s in enumerate(shapes)]
            operands = [tj.tensor(x) for x in arrays]
            kinds = [("dim" if x.ndim else "zero", t.dtype) for x, t in zip(arrays, operands)]
            compute, want = expected_dtypes(op, kinds, {})
            if compute.is_bool and not op.bool_ok and op.dtype_rule != "logical":
                with pytest.raises(RuntimeError, match="bool"):
                    apply(op, *operands)
                continue
            out = apply(op, *operands)
            assert out.dtype is want, f"{name}({a.name}, {b.name}, 0-d={zero}): {out.dtype}"
            ref = reference(op, operands, compute, {})
            if want.is_floating_point:
                assert_close(out.numpy(), ref, rtol=2e-5, atol=2e-6, msg=name)
            else:
                np.testing.assert_array_equal(out.numpy(), ref.astype(want.np))


@pytest.mark.parametrize("name", [n for n in ELEMENTWISE if not R[n].bool_ok and
                                  R[n].dtype_rule != "logical"])
def test_elementwise_bool_unsupported(name):
    op = R[name]
    args = [tj.tensor([True, False])] * op.nin
    with pytest.raises(RuntimeError, match="bool"):  # NotImplementedError, as in PyTorch
        apply(op, *args)


def test_elementwise_ops_are_public():
    """Every elementwise entry is `tracejit.<name>` and `Tensor.<name>` (cast is `.to`)."""
    for name in ELEMENTWISE:
        if name == "cast":
            continue
        assert callable(getattr(tj, name, None)), f"tracejit.{name} is missing"
        if name not in ("where", "clamp"):  # Tensor.where/clamp take torch's argument order
            x = tj.tensor([0.5, 1.5])
            args = [x] * (R[name].nin - 1)
            if R[name].dtype_rule == "logical":
                x, args = x > 1, [a > 1 for a in args]
            assert getattr(x, name)(*args).shape == x.shape


# --- gradients of elementwise ops ---

GRAD_CASES = ["broadcast", "0d", "mixed-0d", "noncontig", "scalar-left", "scalar-right"]


def _grad_setup(name, params, case):
    op = R[name]
    rng = rng_for("grad", name, case, str(params))
    operands, _ = make_operands(op, case, D.float64, rng)
    arrays, slots, scalars = [], [], {}
    for i, o in enumerate(operands):
        if isinstance(o, tj.Tensor):
            slots.append(i)
            arrays.append(np.array(o.numpy(), copy=True))
        else:
            scalars[i] = o
    noncontig = case == "noncontig"

    def fn(*xs):
        args = list(xs)
        for i, v in scalars.items():
            args.insert(i, v)
        return apply(op, *args, **params)

    def leaf(a):
        if noncontig and a.ndim == 2:
            big = np.zeros((a.shape[0], a.shape[1] * 2), a.dtype)
            big[:, ::2] = a
            return tj.from_numpy(big[:, ::2]).requires_grad_()
        return tj.tensor(a, requires_grad=True)
    wrt = [k for k, i in enumerate(slots) if i >= op.cond_inputs]
    return fn, arrays, wrt, leaf


def _grad_ids():
    out = []
    for name in DIFFERENTIABLE:
        for k, params in enumerate(_param_sets(name)):
            if params.get("dtype") and params["dtype"] != "float64":
                continue  # finite differences need a float64 output
            out.append(pytest.param(name, params, id=name + (f"-{k}" if params else "")))
    return out


@pytest.mark.parametrize("name,params", _grad_ids())
@pytest.mark.parametrize("case", GRAD_CASES)
def test_elementwise_vjp(name, params, case):
    """The entry's vjp against central finite differences (float64)."""
    fn, arrays, wrt, leaf = _grad_setup(name, params, case)
    if not wrt:
        pytest.skip("no differentiable tensor input in this case")
    check_grads(fn, arrays, wrt=wrt, leaf=leaf)


@pytest.mark.parametrize("name,params", _grad_ids())
def test_elementwise_double_backward(name, params):
    """vjps are written with Tensor ops, so they differentiate again (create_graph=True)."""
    fn, arrays, wrt, _ = _grad_setup(name, params, "broadcast")
    rng = rng_for("double", name)
    out_shape = np.broadcast_shapes(*[a.shape for a in arrays])
    v = tj.tensor(rng.uniform(0.5, 1.5, out_shape))

    def first_grads(*xs):
        xs = [x if x.requires_grad or x.dtype.is_bool else x.requires_grad_() for x in xs]
        ins = [xs[k] for k in wrt]
        gs = tj.autograd.grad((fn(*xs) * v).sum(), ins, create_graph=True, allow_unused=True)
        return tj.cat([(tj.zeros_like(x) if g is None else g).reshape(-1)
                       for g, x in zip(gs, ins)])
    check_grads(first_grads, arrays, wrt=wrt, rtol=1e-3, atol=1e-4)


# --- property test: random mutually broadcastable shapes (0-size and 1-size dims included) ---

@pytest.mark.parametrize("name", [n for n in ELEMENTWISE if not R[n].static])
@hyp.settings(max_examples=8, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(hyp.HealthCheck))
@hyp.given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=3,
                                                   min_side=0, max_side=3),
           seed=st.integers(0, 2**16))
def test_elementwise_random_shapes(name, shapes, seed):
    op = R[name]
    rng = np.random.default_rng(seed)
    in_shapes = shapes.input_shapes[:op.nin]
    arrays = [sample(rng, op, i, s, D.float64) for i, s in enumerate(in_shapes)]
    operands = [tj.tensor(a) for a in arrays]
    out = apply(op, *operands)
    assert tuple(out.shape) == np.broadcast_shapes(*in_shapes)
    compute, _ = expected_dtypes(op, [("dim" if a.ndim else "zero", t.dtype)
                                      for a, t in zip(arrays, operands)], {})
    assert_close(out.numpy(), np.broadcast_to(reference(op, operands, compute, {}), out.shape),
                 rtol=1e-10, atol=1e-12, msg=name)
    wrt = [i for i, a in enumerate(arrays) if i >= op.cond_inputs and a.dtype.kind == "f"]
    if op.vjp is not None and out.dtype.is_floating_point and wrt:
        check_grads(lambda *xs: apply(op, *xs), arrays, wrt=wrt)


# --- a few hand-checked values, independent of the table's expressions ---

SPOT = {"exp": math.exp, "log": math.log, "log1p": math.log1p, "expm1": math.expm1,
        "log2": math.log2, "exp2": lambda x: 2.0 ** x, "sqrt": math.sqrt,
        "rsqrt": lambda x: 1 / math.sqrt(x), "reciprocal": lambda x: 1 / x,
        "sin": math.sin, "cos": math.cos, "tanh": math.tanh, "erf": math.erf,
        "sigmoid": lambda x: 1 / (1 + math.exp(-x)), "floor": math.floor, "ceil": math.ceil,
        "trunc": math.trunc, "round": round, "relu": lambda x: max(x, 0.0), "abs": abs,
        "neg": lambda x: -x,
        "square": lambda x: x * x, "sign": lambda x: float((x > 0) - (x < 0))}


@pytest.mark.parametrize("name", sorted(SPOT))
def test_unary_spot_values(name):
    lo, hi = R[name].domain
    xs = [lo + (hi - lo) * f for f in (0.1, 0.37, 0.5, 0.93)] + [2.5, -2.5]
    xs = [x for x in xs if lo <= x <= hi]
    out = getattr(tj, name)(tj.tensor(xs, dtype=tj.float64)).tolist()
    np.testing.assert_allclose(out, [SPOT[name](x) for x in xs], rtol=1e-12, atol=1e-12)


# --- the same ops in PyTorch, when it is installed (found by name: no per-op entry) ---

TORCH_NAMES = {"floordiv": "floor_divide", "cast": None}


def _torch_fn(torch, name):
    name = TORCH_NAMES.get(name, name)
    for ns in (torch, torch.nn.functional, torch.special):
        if name and hasattr(ns, name):
            return getattr(ns, name)
    return None


@pytest.mark.parametrize("name", [n for n in ELEMENTWISE if not R[n].static])
@pytest.mark.parametrize("case", ["broadcast", "mixed-0d", "scalar-right", "nan-inf"])
def test_elementwise_against_torch(name, case):
    torch = pytest.importorskip("torch")
    op, fn = R[name], _torch_fn(torch, name)
    assert fn is not None, f"no torch function found for {name}; add it to TORCH_NAMES"
    for dtype in (D.float32, D.int64):
        if not dtype_supported(op, dtype) or (case == "nan-inf" and dtype is D.int64):
            continue
        operands, _ = make_operands(op, case, dtype, rng_for("torch", name, case, dtype.name))
        if case == "scalar-right" and name in ("maximum", "minimum", "logical_and",
                                               "logical_or", "logical_xor", "where"):
            continue  # torch wants tensors there
        ours = apply(op, *operands)
        try:
            theirs = fn(*[torch.from_numpy(np.array(o.numpy())) if isinstance(o, tj.Tensor)
                          else o for o in operands])
        except (RuntimeError, TypeError):
            continue  # tracejit accepts more here (float functions of ints, clamp of a 0-d x)
        assert str(theirs.dtype).replace("torch.", "") == ours.dtype.name, name
        assert_close(ours.numpy(), theirs.numpy(), rtol=2e-5, atol=2e-6, msg=name)
        if R[name].vjp is not None and dtype is D.float32 and case != "nan-inf":
            xs = [o for o in operands if isinstance(o, tj.Tensor) and o.dtype.is_floating_point]
            ts = [torch.from_numpy(np.array(o.numpy())) for o in xs]
            for x, t in zip(xs, ts):
                x.requires_grad_()
                t.requires_grad_()
            it = iter(ts)
            targs = [next(it) if isinstance(o, tj.Tensor) and o.dtype.is_floating_point else
                     (torch.from_numpy(np.array(o.numpy())) if isinstance(o, tj.Tensor) else o)
                     for o in operands]
            try:
                fn(*targs).sum().backward()
            except RuntimeError:
                continue  # torch's clamp backward cannot broadcast self (a 0-d x, 2-D bounds)
            apply(op, *operands).sum().backward()
            for x, t in zip(xs, ts):
                assert_close(x.grad.numpy(), t.grad.numpy(), rtol=1e-5, atol=1e-6,
                             msg=f"{name} grad")


# --- ops with their own shape rules: one table row per op ---

class Case(NamedTuple):
    label: str
    fn: Callable       # tracejit tensors -> Tensor (or a tuple of Tensors)
    ref: Callable      # float64 numpy arrays -> array (or tuple)
    inputs: Callable   # rng -> list of arrays (floats are tested in float32 and float64)
    grad: bool = True


def _n(*shape):
    return lambda rng: [rng.standard_normal(shape)]


def _nn(*shapes):
    return lambda rng: [rng.standard_normal(s) for s in shapes]


def _with_zeros(rng):
    x = rng.uniform(0.5, 1.5, (3, 4))
    x[0, 1] = 0.0
    x[2, 0] = x[2, 3] = 0.0
    return [x]


def _with_nan(rng):
    x = rng.standard_normal((3, 4))
    x[1, 2] = np.nan
    x[2, 0] = np.inf
    return [x]


def _idx(*arrays):
    return lambda rng: [rng.standard_normal((4, 5))] + [np.array(a, np.int64) for a in arrays]


def _setitem(key):
    def fn(x, v):
        y = x.clone()
        y[key] = v
        return y

    def ref(x, v):
        y = x.copy()
        y[key] = v
        return y
    return fn, ref


def _np_argmax(f, dim=None, keepdim=False):
    def run(x):
        if dim is None:
            return np.asarray(f(x.reshape(-1)))
        return f(x, axis=dim, keepdims=keepdim)
    return run


def _np_var(x, axis=None, ddof=1, keepdims=False):
    return np.var(x, axis=axis, ddof=ddof, keepdims=keepdims)


def _np_lse(x, axis, keepdims=False):
    m = np.max(x, axis=axis, keepdims=True)
    r = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return r if keepdims else np.squeeze(r, axis=axis)


OTHER: dict[str, list[Case]] = {
    "sum": [
        Case("all", lambda x: x.sum(), np.sum, _n(3, 4)),
        Case("dim-neg-keepdim", lambda x: x.sum(-1, keepdim=True),
             lambda x: x.sum(-1, keepdims=True), _n(2, 3, 4)),
        Case("dims-tuple", lambda x: x.sum((0, 2)), lambda x: x.sum((0, 2)), _n(2, 3, 4)),
        Case("dims-tuple-neg", lambda x: tj.sum(x, dim=(-1, 0), keepdim=True),
             lambda x: x.sum((0, 2), keepdims=True), _n(2, 3, 4)),
        Case("0d", lambda x: x.sum(0), np.sum, _n()),
        Case("empty-dim", lambda x: x.sum(0), lambda x: x.sum(0), _n(0, 3)),
        Case("empty-all", lambda x: x.sum(), np.sum, _n(2, 0)),
        Case("nan-inf", lambda x: x.sum(1), lambda x: x.sum(1), _with_nan, grad=False),
    ],
    "prod": [
        Case("dim", lambda x: x.prod(1), lambda x: x.prod(1), _n(3, 4)),
        Case("all", lambda x: x.prod(), np.prod, _n(2, 3)),
        Case("zeros", lambda x: x.prod(1, keepdim=True), lambda x: x.prod(1, keepdims=True),
             _with_zeros),
        Case("zeros-all", lambda x: x[0].prod(), lambda x: x[0].prod(), _with_zeros),
    ],
    "amax": [
        Case("dims", lambda x: x.amax((0, 2)), lambda x: x.max((0, 2)), _n(2, 3, 4)),
        Case("keepdim", lambda x: x.amax(-1, keepdim=True), lambda x: x.max(-1, keepdims=True),
             _n(3, 4)),
        Case("all", lambda x: x.max(), np.max, _n(3, 4)),
        Case("0d", lambda x: x.amax(), np.max, _n()),
        Case("empty-other-dim", lambda x: x.amax(1), lambda x: x.max(1), _n(0, 3)),
        Case("nan-inf", lambda x: x.amax(1), lambda x: x.max(1), _with_nan, grad=False),
    ],
    "amin": [
        Case("dims", lambda x: x.amin((1,)), lambda x: x.min(1), _n(2, 3, 4)),
        Case("all", lambda x: tj.min(x), np.min, _n(3, 4)),
        Case("nan-inf", lambda x: x.amin(0), lambda x: x.min(0), _with_nan, grad=False),
    ],
    "all": [
        Case("dim", lambda x: (x > 0).all(1), lambda x: (x > 0).all(1), _n(3, 4), False),
        Case("all", lambda x: (x > -3).all(), lambda x: (x > -3).all(), _n(3, 4), False),
        Case("empty", lambda x: (x > 0).all(0), lambda x: (x > 0).all(0), _n(0, 2), False),
    ],
    "any": [
        Case("dims", lambda x: (x > 1).any((0, 1), keepdim=True),
             lambda x: (x > 1).any((0, 1), keepdims=True), _n(2, 3, 2), False),
        Case("float-input", lambda x: (x > 0).float().any(), lambda x: (x > 0).any(),
             _n(3), False),
    ],
    "argmax": [
        Case("all", lambda x: x.argmax(), _np_argmax(np.argmax), _n(3, 4), False),
        Case("dim-keepdim", lambda x: x.argmax(1, keepdim=True),
             _np_argmax(np.argmax, 1, True), _n(3, 4), False),
        Case("nan", lambda x: x.argmax(1), _np_argmax(np.argmax, 1), _with_nan, False),
    ],
    "argmin": [
        Case("dim-neg", lambda x: x.argmin(-1), _np_argmax(np.argmin, -1), _n(2, 3, 4),
             False),
        Case("all", lambda x: tj.argmin(x), _np_argmax(np.argmin), _n(5), False),
    ],
    "reshape": [
        Case("infer", lambda x: x.reshape(6, -1), lambda x: x.reshape(6, -1), _n(3, 4)),
        Case("view", lambda x: x.view(2, 2, 3), lambda x: x.reshape(2, 2, 3), _n(3, 4)),
        Case("flatten", lambda x: x.flatten(1), lambda x: x.reshape(2, -1), _n(2, 3, 4)),
        Case("flatten-0d", lambda x: x.flatten(), lambda x: x.reshape(1), _n()),
        Case("unflatten", lambda x: x.unflatten(-1, (2, -1)),
             lambda x: x.reshape(3, 2, 2), _n(3, 4)),
        Case("unsqueeze", lambda x: x.unsqueeze(-1), lambda x: x[..., None], _n(3, 4)),
        Case("squeeze", lambda x: x.squeeze(), lambda x: x.squeeze(), _n(3, 1, 4, 1)),
        Case("squeeze-dim", lambda x: x.squeeze(1), lambda x: x.squeeze(1), _n(3, 1, 4, 1)),
        Case("to-0d", lambda x: x.reshape(()), lambda x: x.reshape(()), _n(1, 1)),
        Case("empty", lambda x: x.reshape(3, 0, 2), lambda x: x.reshape(3, 0, 2), _n(0, 6)),
    ],
    "permute": [
        Case("permute", lambda x: x.permute(2, 0, 1), lambda x: x.transpose(2, 0, 1),
             _n(2, 3, 4)),
        Case("transpose", lambda x: x.transpose(0, -1), lambda x: x.swapaxes(0, -1),
             _n(2, 3, 4)),
        Case("T", lambda x: x.T, lambda x: x.T, _n(3, 4)),
        Case("mT", lambda x: x.mT, lambda x: x.swapaxes(-1, -2), _n(2, 3, 4)),
        Case("then-reshape", lambda x: x.permute(1, 0).reshape(-1),
             lambda x: x.T.reshape(-1), _n(3, 4)),
    ],
    "expand": [
        Case("expand", lambda x: x.expand(2, 3, 4), lambda x: np.broadcast_to(x, (2, 3, 4)),
             _n(3, 1)),
        Case("minus-one", lambda x: x.expand(-1, 5), lambda x: np.broadcast_to(x, (3, 5)),
             _n(3, 1)),
        Case("expand_as", lambda x, y: x.expand_as(y), lambda x, y: np.broadcast_to(x, y.shape),
             _nn((1, 4), (3, 4))),
        Case("repeat", lambda x: x.repeat(2, 1, 3), lambda x: np.tile(x, (2, 1, 3)), _n(2, 3)),
        Case("0d", lambda x: x.expand(2, 2), lambda x: np.broadcast_to(x, (2, 2)), _n()),
    ],
    "flip": [
        Case("one", lambda x: x.flip(0), lambda x: np.flip(x, 0), _n(3, 4)),
        Case("many", lambda x: tj.flip(x, (0, -1)), lambda x: np.flip(x, (0, 2)), _n(2, 3, 4)),
    ],
    "detach": [
        Case("values", lambda x: apply(R["detach"], x), lambda x: x, _n(3, 4), False),
    ],
    "copy": [
        Case("clone", lambda x: x.clone(), lambda x: x.copy(), _n(3, 4)),
        Case("contiguous", lambda x: x.T.contiguous(), lambda x: x.T.copy(), _n(3, 4)),
    ],
    "cat": [
        Case("dim1", lambda x, y: tj.cat([x, y], 1), lambda x, y: np.concatenate([x, y], 1),
             _nn((2, 3), (2, 4))),
        Case("neg-three", lambda x, y, z: tj.cat([x, y, z], -1),
             lambda x, y, z: np.concatenate([x, y, z], -1), _nn((2, 1), (2, 2), (2, 3))),
        Case("empty-part", lambda x, y: tj.cat([x, y]), lambda x, y: np.concatenate([x, y]),
             _nn((0, 3), (2, 3))),
        Case("stack", lambda x, y: tj.stack([x, y], 1), lambda x, y: np.stack([x, y], 1),
             _nn((2, 3), (2, 3))),
        Case("stack-neg", lambda x, y: tj.stack((x, y), -1), lambda x, y: np.stack([x, y], -1),
             _nn((3,), (3,))),
    ],
    "index": [
        Case("int", lambda x: x[1], lambda x: x[1], _n(3, 4)),
        Case("int-neg", lambda x: x[-1, -2], lambda x: x[-1, -2], _n(3, 4)),
        Case("slices", lambda x: x[1:, ::2], lambda x: x[1:, ::2], _n(3, 5)),
        Case("clipped-slice", lambda x: x[-10:2, 3:100], lambda x: x[-10:2, 3:100], _n(3, 5)),
        Case("none-ellipsis", lambda x: x[None, ..., 1:3, None],
             lambda x: x[None, ..., 1:3, None], _n(2, 3, 4)),
        Case("list-dups", lambda x: x[[0, 2, 2, 0]], lambda x: x[[0, 2, 2, 0]], _n(3, 4)),
        Case("tensor-2d", lambda x, i: x[i], lambda x, i: x[i], _idx([[0, 3], [3, 3]])),
        Case("pairs-dups", lambda x, i, j: x[i, j], lambda x, i, j: x[i, j],
             _idx([0, 1, 1, 3], [2, 4, 4, -1])),
        Case("slice-then-tensor", lambda x, i: x[1:, i], lambda x, i: x[1:, i], _idx([4, 0, 4])),
        Case("split-advanced", lambda x, i: x[i, :, i],
             lambda x, i: x[i, :, i], lambda rng: [rng.standard_normal((3, 2, 3)),
                                                   np.array([0, 2, 2])]),
        Case("bool-mask", lambda x: x[x > 0], lambda x: x[x > 0], _n(3, 4)),
        Case("bool-rows", lambda x: x[x[:, 0] > 0], lambda x: x[x[:, 0] > 0], _n(6, 2)),
        Case("narrow", lambda x: x.narrow(1, 1, 2), lambda x: x[:, 1:3], _n(3, 4)),
        Case("split", lambda x: x.split([1, 3], 1), lambda x: (x[:, :1], x[:, 1:]), _n(2, 4)),
        Case("split-size", lambda x: tj.split(x, 2), lambda x: (x[:2], x[2:4], x[4:]), _n(5, 2)),
        Case("chunk", lambda x: x.chunk(2, -1), lambda x: (x[:, :2], x[:, 2:]), _n(2, 3)),
        Case("empty", lambda x: x[2:2], lambda x: x[2:2], _n(3, 4)),
        Case("0d", lambda x: x[()], lambda x: x[()], _n()),
    ],
    "index_put": [
        Case("setitem-int", *_setitem(1), _nn((3, 4), (4,))),
        Case("setitem-slice-bcast", *_setitem((slice(None), slice(1, 3))), _nn((3, 4), (2,))),
        Case("setitem-tensor", *_setitem(([0, 2], [3, 1])), _nn((3, 4), (2,))),
        Case("pad", lambda x: tj.pad(x, (1, 2)), lambda x: np.pad(x, ((0, 0), (1, 2))),
             _n(2, 3)),
        Case("pad-2d-value", lambda x: tj.pad(x, (0, 1, 2, 0), value=1.5),
             lambda x: np.pad(x, ((2, 0), (0, 1)), constant_values=1.5), _n(2, 3)),
        Case("pad-negative", lambda x: tj.pad(x, (-1, 1)),
             lambda x: np.pad(x[:, 1:], ((0, 0), (0, 1))), _n(2, 3)),
    ],
    "matmul": [
        Case("2d@2d", lambda a, b: a @ b, np.matmul, _nn((3, 4), (4, 2))),
        Case("1d@2d", lambda a, b: a @ b, np.matmul, _nn((4,), (4, 2))),
        Case("2d@1d", lambda a, b: tj.matmul(a, b), np.matmul, _nn((3, 4), (4,))),
        Case("1d@1d", lambda a, b: a @ b, np.matmul, _nn((4,), (4,))),
        Case("batch-bcast", lambda a, b: a @ b, np.matmul, _nn((2, 1, 3, 4), (5, 4, 2))),
        Case("3d@1d", lambda a, b: a @ b, np.matmul, _nn((2, 3, 4), (4,))),
        Case("1d@3d", lambda a, b: a @ b, np.matmul, _nn((3,), (2, 3, 4))),
        Case("mm", lambda a, b: tj.mm(a, b), np.matmul, _nn((2, 3), (3, 3))),
        Case("bmm", lambda a, b: a.bmm(b), np.matmul, _nn((2, 2, 3), (2, 3, 4))),
        Case("empty-k", lambda a, b: a @ b, np.matmul, _nn((2, 0), (0, 3))),
    ],
    "full": [
        Case("new_full", lambda x: x.new_full((2, 3), 1.5), lambda x: np.full((2, 3), 1.5),
             _n(1), False),
        Case("new_zeros", lambda x: x.new_zeros(2, 1), lambda x: np.zeros((2, 1)), _n(1), False),
    ],
}

# composites: functions over the table's ops (no entry of their own), same harness
COMPOSITES: dict[str, list[Case]] = {
    "mean": [
        Case("all", lambda x: x.mean(), np.mean, _n(3, 4)),
        Case("dims", lambda x: x.mean((0, -1), keepdim=True),
             lambda x: x.mean((0, 2), keepdims=True), _n(2, 3, 4)),
    ],
    "var": [
        Case("default", lambda x: x.var(), lambda x: _np_var(x), _n(3, 4)),
        Case("dim-correction0", lambda x: x.var(1, correction=0),
             lambda x: _np_var(x, 1, 0), _n(3, 4)),
        Case("dims-keepdim", lambda x: x.var((0, 2), keepdim=True, correction=2),
             lambda x: _np_var(x, (0, 2), 2, True), _n(2, 3, 4)),
    ],
    "std": [
        Case("dim", lambda x: x.std(-1), lambda x: np.sqrt(_np_var(x, -1)), _n(3, 4)),
        Case("unbiased-false", lambda x: x.std(0, unbiased=False),
             lambda x: np.std(x, 0), _n(3, 4)),
    ],
    "logsumexp": [
        Case("dim", lambda x: x.logsumexp(1), lambda x: _np_lse(x, 1), _n(3, 4)),
        Case("dims-keepdim", lambda x: tj.logsumexp(x, (0, 2), keepdim=True),
             lambda x: _np_lse(x, (0, 2), True), _n(2, 3, 4)),
        Case("large", lambda x: (x * 1000).logsumexp(-1), lambda x: _np_lse(x * 1000, -1),
             _n(2, 3)),
        Case("-inf-row", lambda x: x.masked_fill(x > -10, -float("inf")).logsumexp(1),
             lambda x: np.full(x.shape[0], -np.inf), _n(2, 3), False),
    ],
    "max(dim)": [
        Case("values-indices", lambda x: tuple(x.max(1)),
             lambda x: (x.max(1), x.argmax(1)), _n(3, 4)),
        Case("keepdim", lambda x: tuple(tj.max(x, -1, keepdim=True)),
             lambda x: (x.max(-1, keepdims=True), x.argmax(-1)[..., None]), _n(2, 3)),
        Case("min", lambda x: tuple(x.min(0)), lambda x: (x.min(0), x.argmin(0)), _n(3, 4)),
        Case("values-grad", lambda x: x.max(0).values, lambda x: x.max(0), _n(3, 4)),
    ],
    "masked_fill": [
        Case("scalar", lambda x: x.masked_fill(x > 0, -1.0), lambda x: np.where(x > 0, -1.0, x),
             _n(3, 4)),
        Case("bcast-mask", lambda x: x.masked_fill(x[0] > 0, 0.5),
             lambda x: np.where(x[0] > 0, 0.5, x), _n(3, 4)),
    ],
}

OTHER.update(api_cases.NEW_OPS)         # sorting, scans, scatter, ... (tests/api_cases.py)
COMPOSITES.update(api_cases.COMPOSITES)
OTHER_CASES = [(name, c) for name in sorted(OTHER) for c in OTHER[name]] + \
    [(name, c) for name in sorted(COMPOSITES) for c in COMPOSITES[name]]


def test_every_op_has_a_test():
    """A new op with its own shape rule must come with a row in OTHER (elementwise ops are
    generated; elementwise ops with static params need a PARAMS row)."""
    missing = [n for n, op in R.items() if op.kind != "elementwise" and not OTHER.get(n)]
    assert not missing, f"add rows to OTHER in tests/test_ops.py for: {missing}"
    missing = [n for n in ELEMENTWISE if R[n].static and n not in PARAMS]
    assert not missing, f"add PARAMS in tests/test_ops.py for: {missing}"


def _to_list(x):
    return list(x) if isinstance(x, (tuple, list)) else [x]


def _compare(out, ref, dtype, label):
    outs, refs = _to_list(out), _to_list(ref)
    assert len(outs) == len(refs), label
    for o, r in zip(outs, refs):
        r = np.asarray(r)
        assert isinstance(o, tj.Tensor), label
        assert tuple(o.shape) == r.shape, f"{label}: shape {tuple(o.shape)}, expected {r.shape}"
        if r.dtype.kind == "f":
            assert o.dtype is dtype, f"{label}: dtype {o.dtype}, expected {dtype}"
            tol = (2e-5, 2e-5) if dtype is D.float32 else (1e-12, 1e-12)
            assert_close(o.numpy(), r, rtol=tol[0], atol=tol[1], msg=label)
        else:
            np.testing.assert_array_equal(o.numpy(), r, err_msg=label)


def _inputs(case, name, dtype, noncontig=False):
    arrays = case.inputs(rng_for(name, case.label))
    ts = []
    for a in arrays:
        if a.dtype.kind == "f":
            a = a.astype(dtype.np)
            if noncontig and a.ndim >= 1:
                big = np.zeros(a.shape[:-1] + (a.shape[-1] * 2,), a.dtype)
                big[..., ::2] = a
                t = tj.from_numpy(big[..., ::2])
                ts.append(t)
                continue
        ts.append(tj.tensor(a))
    return arrays, ts


@pytest.mark.parametrize("name,case", [pytest.param(n, c, id=f"{n}-{c.label}")
                                       for n, c in OTHER_CASES])
@pytest.mark.parametrize("dtype", [D.float32, D.float64], ids=["float32", "float64"])
def test_other_eager(name, case, dtype):
    arrays, ts = _inputs(case, name, dtype)
    ref = case.ref(*[a.astype(np.float64) if a.dtype.kind == "f" else a for a in arrays])
    _compare(case.fn(*ts), ref, dtype, f"{name}/{case.label}")


@pytest.mark.parametrize("name,case", [pytest.param(n, c, id=f"{n}-{c.label}")
                                       for n, c in OTHER_CASES])
def test_other_noncontiguous(name, case):
    arrays, ts = _inputs(case, name, D.float64, noncontig=True)
    ref = case.ref(*[a.astype(np.float64) if a.dtype.kind == "f" else a for a in arrays])
    _compare(case.fn(*ts), ref, D.float64, f"{name}/{case.label} (non-contiguous)")


@pytest.mark.parametrize("name,case", [pytest.param(n, c, id=f"{n}-{c.label}")
                                       for n, c in OTHER_CASES if c.grad])
def test_other_vjp(name, case):
    arrays = case.inputs(rng_for(name, case.label))

    def fn(*xs):
        out = case.fn(*xs)
        if isinstance(out, (tuple, list)):  # differentiate the floating outputs together
            outs = [o.reshape(-1) for o in out if o.dtype.is_floating_point]
            return tj.cat(outs)
        return out
    check_grads(fn, arrays)


# --- every call made above agrees with the op's `infer` rule (what the IR uses) ---

@pytest.fixture(autouse=True)
def _infer_agrees_with_eager():
    calls = []
    originals = {}
    for op in R.values():
        originals[op] = op.eager

        def recording(*arrays, _op=op, _eager=op.eager, **params):
            out = _eager(*arrays, **params)
            calls.append((_op, [(a.shape, a.dtype) for a in arrays], params,
                          np.shape(out), np.asarray(out).dtype))
            return out
        op.eager = recording
    try:
        yield
    finally:
        for op, e in originals.items():
            op.eager = e
    for op, ins, params, shape, dtype in calls:
        types = [(tuple(s), D.from_numpy_dtype(d)) for s, d in ins]
        got = op.infer(*types, **params)
        assert (tuple(got[0]), got[1]) == (tuple(shape), D.from_numpy_dtype(dtype)), \
            f"{op.name}.infer{tuple(types)} {params} = {got}; eager gave {shape} {dtype}"
