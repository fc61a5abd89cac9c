"""Algebraic simplification that is exact in IEEE arithmetic.

Every rewrite gives bit-identical results for every input, NaN, infinities and signed zeros
included, so `x + 0.0 -> x` is NOT done for floats (`-0.0 + 0.0` is `+0.0`) while `x + -0.0 -> x`
is. A rewrite only fires when the replacement has exactly the node's type (shape and dtype), so
`x * 1` where the 1 broadcasts `x` to a bigger shape stays. Constants are `const` nodes whose
elements all equal one value (sign of zero included) and `full` nodes. Rules:

    mul x, 1 | mul 1, x | div x, 1                      -> x
    add x, -0.0 | add -0.0, x      (ints/bools: 0)      -> x
    sub x, +0.0                    (ints: 0)            -> x
    neg (neg x)                                         -> x
    reshape/expand x to x's shape | permute identity    -> x
    reshape (reshape x) -> reshape x; expand (expand x) -> expand x
    permute (permute x) -> one permute (or x)
    cast x to x's dtype                                 -> x
    detach x                                            -> x   (the passes run on graphs
                                          already differentiated: detach only stopped gradients)
    cast (cast x, d1), d2 -> cast x, d2   when the inner cast is exact (and cannot change what
                                          the outer one does), e.g. f32 -> f64 -> f32 is x
"""
from __future__ import annotations

import numpy as np

from ...ops import dtypes as D
from ..graph import Graph, Node


def simplify(g: Graph) -> Graph:
    """Apply the exact algebraic rules above in one forward walk. Mutates `g`.

    A node rewritten to an existing value is dropped and its uses redirected; a node rewritten to
    a new form (two permutes into one) keeps its name and loc. Operands left unused are for `dce`.

    Before:

        def f(%x: f32[2,3]) -> (f32[3,2], f32[2,3]):
          %0: f32[] = const 1.
          %1: f32[2,3] = mul %x, %0
          %2: f32[2,3] = neg %1
          %3: f32[2,3] = neg %2
          %4: f32[3,2] = permute %3, dims=(1, 0)
          %5: f32[2,3] = permute %4, dims=(1, 0)
          %6: f32[3,2] = permute %5, dims=(1, 0)
          %7: f64[2,3] = cast %5, dtype='float64'
          %8: f32[2,3] = cast %7, dtype='float32'
          return %6, %8

    After:

        def f(%x: f32[2,3]) -> (f32[3,2], f32[2,3]):
          %0: f32[] = const 1.
          %2: f32[2,3] = neg %x
          %4: f32[3,2] = permute %x, dims=(1, 0)
          %6: f32[3,2] = permute %x, dims=(1, 0)
          %7: f64[2,3] = cast %x, dtype='float64'
          return %6, %x
    """
    repl: dict[int, Node] = {}
    kept = []
    for n in g.nodes:
        n.inputs = [repl.get(id(i), i) for i in n.inputs]
        rule = _RULES.get(n.op)
        r = rule(n) if rule is not None else None
        if r is not None and r is not n and r.type == n.type:
            repl[id(n)] = r
            continue
        kept.append(n)
    g.nodes = kept
    g.outputs = [repl.get(id(o), o) for o in g.outputs]
    return g


# --- rules: each returns the replacement value, `n` itself (rewritten in place) or None ---


def _mul(n):
    a, b = n.inputs
    for x, c in ((a, b), (b, a)):
        if _is(c, lambda v: v == 1):
            return x


def _div(n):
    if _is(n.inputs[1], lambda v: v == 1):
        return n.inputs[0]


def _add(n):
    a, b = n.inputs
    for x, c in ((a, b), (b, a)):
        # x + (-0.0) == x for every float x; x + 0.0 is +0.0 for x = -0.0
        if _is(c, lambda v: v == 0 and (v.dtype.kind != "f" or np.signbit(v))):
            return x


def _sub(n):
    # x - (+0.0) == x for every float x (-0.0 - 0.0 == -0.0)
    if _is(n.inputs[1], lambda v: v == 0 and not (v.dtype.kind == "f" and np.signbit(v))):
        return n.inputs[0]


def _neg(n):
    x = n.inputs[0]
    if x.op == "neg":
        return x.inputs[0]


def _reshape(n):
    x = n.inputs[0]
    if x.op == "reshape":
        n.inputs = [x.inputs[0]]
        x = x.inputs[0]
    return x if x.type == n.type else n


def _expand(n):
    # expanding an expand of x is one valid expand of x: each step only adds or widens 1-dims
    x = n.inputs[0]
    if x.op == "expand":
        n.inputs = [x.inputs[0]]
        x = x.inputs[0]
    return x if x.type == n.type else n


def _permute(n):
    x, dims = n.inputs[0], tuple(n.params["dims"])
    if x.op == "permute":
        inner = tuple(x.params["dims"])
        dims = tuple(inner[d] for d in dims)
        n.inputs, n.params = [x.inputs[0]], dict(n.params, dims=dims)
        x = x.inputs[0]
    return x if dims == tuple(range(len(dims))) else n


def _cast(n):
    x = n.inputs[0]
    if x.op == "cast" and _cast_chain_exact(x.inputs[0].type.dtype, x.type.dtype, n.type.dtype):
        n.inputs = [x.inputs[0]]
        x = x.inputs[0]
    return x if x.type == n.type else n


_RULES = {"mul": _mul, "div": _div, "add": _add, "sub": _sub, "neg": _neg,
          "reshape": _reshape, "expand": _expand, "permute": _permute, "cast": _cast,
          "detach": lambda n: n.inputs[0]}


# --- constants and casts ---


def _is(c: Node, pred) -> bool:
    """Whether every element of the const or full `c` satisfies `pred` (of a 0-d array)."""
    v = _uniform(c)
    return v is not None and bool(pred(v))


def _uniform(c: Node):
    """The one value (0-d array) all elements of a const/full node equal, bitwise; else None."""
    if c.op == "full":
        try:
            return np.full((), c.params["value"], dtype=c.type.dtype.np)
        except (KeyError, TypeError, ValueError, OverflowError):
            return None
    if c.op != "const" or c.value is None or c.value.size == 0:
        return None
    v = c.value
    first = v.reshape(-1)[:1].reshape(())
    if v.dtype.kind == "f":
        if np.isnan(first) or not np.all(v == first) or \
                not np.all(np.signbit(v) == np.signbit(first)):
            return None
    elif not np.all(v == first):
        return None
    return first


def _lossless(a: D.DType, b: D.DType) -> bool:
    """Whether casting a -> b keeps every value of `a` exactly (NaN, inf, -0.0 included)."""
    if a is b or a.is_bool:
        return True
    if a.is_floating_point:
        return b.is_floating_point and b.itemsize >= a.itemsize
    if b.is_bool:
        return False
    ia = np.iinfo(a.np)
    if b.is_floating_point:
        return max(-ia.min, ia.max) <= 2 ** (np.finfo(b.np).nmant + 1)
    ib = np.iinfo(b.np)
    return ib.min <= ia.min and ia.max <= ib.max


def _cast_chain_exact(d0: D.DType, d1: D.DType, d2: D.DType) -> bool:
    """cast(cast(x: d0, d1), d2) == cast(x, d2) for every x: the inner cast keeps the value,
    and the outer cast then sees the same number, except float -> int outside the target's range
    (undefined, so it may differ) unless every d0 value is in range."""
    if not _lossless(d0, d1):
        return False
    return not (d1.is_floating_point and d2.is_integer) or _lossless(d0, d2)
