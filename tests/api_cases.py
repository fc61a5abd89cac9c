"""Rows for test_ops.py's per-op harness (eager in float32/float64 against a float64 numpy
reference, non-contiguous inputs, gradients against finite differences, and, through
test_jit_ops.py, compiled against eager) for the sorting, scan, scatter and other torch
functions of tracejit/{pointwise,rearrange,selection,sorting,scans,linalg}.py.

NEW_OPS rows cover the op-table entries of ops/external.py; COMPOSITES rows cover functions
written over existing ops. Each row: (label, tracejit fn, numpy reference, inputs(rng), grad).
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple

import numpy as np

import tracejit as tj


class Case(NamedTuple):
    label: str
    fn: Callable
    ref: Callable
    inputs: Callable
    grad: bool = True


def _n(*shape):
    return lambda rng: [rng.standard_normal(shape)]


def _nn(*shapes):
    return lambda rng: [rng.standard_normal(s) for s in shapes]


def _zeros(rng):
    x = rng.uniform(0.5, 1.5, (3, 5))
    x[0, 1] = 0.0
    x[1, 0] = x[1, 3] = 0.0             # two zeros in a row: only the first gets a gradient
    x[2, 4] = 0.0
    return [x]


def _with_idx(shape, idx):
    return lambda rng: [rng.standard_normal(shape), np.array(idx, np.int64)]


def _sorted_rows(x, axis, descending=False):
    i = np.argsort(-x if descending else x, axis=axis, kind="stable")
    return np.take_along_axis(x, i, axis), i


def _np_fmod(a, b):
    return np.fmod(a, b)


def _np_scatter(x, idx, src, axis, add):
    out = x.copy()
    for pos in np.ndindex(*idx.shape):
        tgt = list(pos)
        tgt[axis] = idx[pos]
        if add:
            out[tuple(tgt)] += src[pos]
        else:
            out[tuple(tgt)] = src[pos]
    return out


def _np_roll(x):
    return np.roll(x, (1, -2), (0, 1))


def _np_lower_median(x, axis):
    s = np.sort(x, axis=axis)
    return np.take(s, (x.shape[axis] - 1) // 2, axis=axis)


NEW_OPS: dict[str, list[Case]] = {
    "cumsum": [
        Case("dim", lambda x: x.cumsum(1), lambda x: np.cumsum(x, 1), _n(3, 4)),
        Case("neg-dim", lambda x: tj.cumsum(x, -3), lambda x: np.cumsum(x, 0), _n(2, 3, 4)),
        Case("0d", lambda x: x.cumsum(0), lambda x: x.copy(), _n()),
        Case("empty", lambda x: x.cumsum(0), lambda x: np.cumsum(x, 0), _n(0, 3)),
    ],
    "cumprod": [
        Case("dim", lambda x: x.cumprod(-1), lambda x: np.cumprod(x, -1), _n(3, 4)),
        Case("zeros-rows", lambda x: x.cumprod(1), lambda x: np.cumprod(x, 1), _zeros),
        Case("zeros-cols", lambda x: tj.cumprod(x, 0), lambda x: np.cumprod(x, 0), _zeros),
    ],
    "argsort": [
        Case("sort", lambda x: tuple(x.sort()), lambda x: _sorted_rows(x, -1), _n(3, 4)),
        Case("sort-desc-dim0", lambda x: tuple(tj.sort(x, 0, descending=True)),
             lambda x: _sorted_rows(x, 0, True), _n(3, 4)),
        Case("argsort", lambda x: x.argsort(1), lambda x: np.argsort(x, 1), _n(3, 5), False),
        Case("topk", lambda x: tuple(x.topk(2)),
             lambda x: tuple(a[:, :2] for a in _sorted_rows(x, 1, True)), _n(3, 5)),
        Case("topk-smallest-dim0", lambda x: tuple(tj.topk(x, 2, 0, largest=False)),
             lambda x: tuple(a[:2] for a in _sorted_rows(x, 0)), _n(4, 3)),
        Case("kthvalue", lambda x: tuple(x.kthvalue(2, 1)),
             lambda x: tuple(a[:, 1] for a in _sorted_rows(x, 1)), _n(3, 5)),
        Case("median-all", lambda x: x.median(), lambda x: _np_lower_median(x.ravel(), 0),
             _n(3, 4)),
        Case("median-dim-keepdim", lambda x: x.median(0, keepdim=True).values,
             lambda x: _np_lower_median(x, 0)[None], _n(4, 3)),
    ],
    "atan2": [
        Case("bcast", lambda y, x: tj.atan2(y, x), np.arctan2, _nn((3, 4), (4,))),
        Case("method", lambda y, x: y.atan2(x), np.arctan2, _nn((2, 3), (2, 3))),
    ],
}

COMPOSITES: dict[str, list[Case]] = {
    "tril/triu": [
        Case("tril", lambda x: x.tril(), np.tril, _n(3, 4)),
        Case("tril-k", lambda x: tj.tril(x, -1), lambda x: np.tril(x, -1), _n(2, 3, 4)),
        Case("triu-k", lambda x: x.triu(2), lambda x: np.triu(x, 2), _n(4, 3)),
    ],
    "diag": [
        Case("1d", lambda x: tj.diag(x), np.diag, _n(4)),
        Case("1d-offset", lambda x: x.diag(-2), lambda x: np.diag(x, -2), _n(3)),
        Case("2d", lambda x: x.diag(), np.diag, _n(3, 4)),
        Case("2d-offset", lambda x: tj.diag(x, 2), lambda x: np.diag(x, 2), _n(3, 4)),
        Case("2d-past-end", lambda x: x.diag(-5), lambda x: np.diag(x, -5), _n(3, 4)),
    ],
    "roll": [
        Case("dims", lambda x: x.roll((1, -2), (0, 1)), _np_roll, _n(3, 4)),
        Case("flat", lambda x: tj.roll(x, 5), lambda x: np.roll(x, 5), _n(3, 4)),
    ],
    "movedim/tile/unbind": [
        Case("movedim", lambda x: x.movedim(0, -1), lambda x: np.moveaxis(x, 0, -1),
             _n(2, 3, 4)),
        Case("moveaxis-tuple", lambda x: tj.moveaxis(x, (0, 1), (2, 0)),
             lambda x: np.moveaxis(x, (0, 1), (2, 0)), _n(2, 3, 4)),
        Case("tile", lambda x: x.tile((2, 1, 3)), lambda x: np.tile(x, (2, 1, 3)), _n(2, 3)),
        Case("unbind", lambda x: x.unbind(1), lambda x: tuple(np.moveaxis(x, 1, 0)), _n(3, 2)),
    ],
    "repeat_interleave": [
        Case("int", lambda x: x.repeat_interleave(2), lambda x: np.repeat(x, 2), _n(2, 3)),
        Case("dim", lambda x: tj.repeat_interleave(x, 3, dim=-1),
             lambda x: np.repeat(x, 3, -1), _n(2, 3)),
        Case("tensor", lambda x: x.repeat_interleave(tj.tensor([1, 0, 2]), dim=0),
             lambda x: np.repeat(x, [1, 0, 2], 0), _n(3, 2)),
    ],
    "pointwise": [
        Case("lerp-scalar", lambda a, b: a.lerp(b, 0.75),
             lambda a, b: b - (b - a) * 0.25, _nn((3, 4), (4,))),
        Case("lerp-tensor", lambda a, b, w: tj.lerp(a, b, w), lambda a, b, w: a + w * (b - a),
             _nn((3, 4), (3, 4), (4,))),
        Case("addcmul", lambda a, b, c: a.addcmul(b, c, value=-0.5),
             lambda a, b, c: a - 0.5 * b * c, _nn((3, 4), (3, 4), (4,))),
        Case("addcdiv", lambda a, b, c: tj.addcdiv(a, b, c.exp(), value=2),
             lambda a, b, c: a + 2 * b / np.exp(c), _nn((3, 4), (3, 1), (4,))),
        Case("fmod", lambda a, b: a.fmod(b.abs() + 0.5),
             lambda a, b: _np_fmod(a, np.abs(b) + 0.5), _nn((3, 4), (3, 4))),
        Case("fmod-scalar-neg", lambda a: tj.fmod(a * 3, -1.25),
             lambda a: _np_fmod(a * 3, -1.25), _n(3, 4)),
        Case("nan_to_num", lambda a: (a.log() * a.sign()).nan_to_num(neginf=-3.0),
             lambda a: np.nan_to_num(np.log(a) * np.sign(a), nan=0.0, neginf=-3.0,
                                     posinf=np.finfo(np.float64).max), _n(3, 4), False),
        Case("outer", lambda a, b: tj.outer(a, b), np.outer, _nn((4,), (3,))),
        Case("diff", lambda x: x.diff(), lambda x: np.diff(x), _n(3, 4)),
        Case("diff-n2-prepend", lambda x, p: tj.diff(x, 2, 0, prepend=p),
             lambda x, p: np.diff(np.concatenate([p, x]), 2, 0), _nn((3, 4), (1, 4))),
    ],
    "norm": [
        Case("fro", lambda x: x.norm(), lambda x: np.sqrt((x * x).sum()), _n(3, 4)),
        Case("p1-dim", lambda x: tj.norm(x, 1, dim=1), lambda x: np.abs(x).sum(1), _n(3, 4)),
        Case("p3-keepdim", lambda x: x.norm(3, dim=-1, keepdim=True),
             lambda x: (np.abs(x) ** 3).sum(-1, keepdims=True) ** (1 / 3), _n(2, 3)),
        Case("inf", lambda x: x.norm(math.inf, dim=0), lambda x: np.abs(x).max(0), _n(3, 4)),
        Case("vector_norm", lambda x: tj.linalg.vector_norm(x, dim=(0, 2)),
             lambda x: np.sqrt((x * x).sum((0, 2))), _n(2, 3, 4)),
    ],
    "select/scatter": [
        Case("index_select", *[lambda x, i: x.index_select(1, i), lambda x, i: x[:, i]],
             _with_idx((3, 4), [3, 0, 3])),
        Case("masked_select", lambda x: x.masked_select(x > 0), lambda x: x[x > 0], _n(3, 4)),
        Case("scatter", lambda x, i, s: x.scatter(0, i, s),
             lambda x, i, s: _np_scatter(x, i, s, 0, False),
             lambda rng: [rng.standard_normal((3, 4)), np.array([[2, 0, 1, 0], [1, 2, 0, 2]]),
                          rng.standard_normal((2, 4))]),
        Case("scatter-value", lambda x, i: tj.scatter(x, -1, i, 1.5),
             lambda x, i: _np_scatter(x, i, np.full(i.shape, 1.5), 1, False),
             _with_idx((3, 4), [[0, 3], [1, 1], [2, 0]])),
        Case("scatter_add", lambda x, i, s: x.scatter_add(1, i, s),
             lambda x, i, s: _np_scatter(x, i, s, 1, True),
             lambda rng: [rng.standard_normal((2, 4)), np.array([[0, 0, 3], [1, 1, 1]]),
                          rng.standard_normal((2, 3))]),
    ],
}
