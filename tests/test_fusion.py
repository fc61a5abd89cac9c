"""Tests of the fusion pass (tracejit/ir/passes/fusion.py): which nodes become one kernel.

Kernel counts of the workload graphs are pinned here (W1's gelu chain forward and backward, a
softmax, layer norm forward and backward, cross entropy forward plus backward); every refusal is
logged with its reason; the kernel description says what each kernel loads, stores and reduces.
The graphs are the IR text the tracer prints for these functions (tests/kernel_graphs.py).
"""
from __future__ import annotations

import logging

import numpy as np
import pytest
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

from tracejit.codegen.llvm.backend import compile_graph
from tracejit.ir.kernel import ROW_LIMIT
from tracejit.ir.passes.fusion import fuse
from tracejit.ir.passes.onehot import onehot


def kernels(g):
    return fuse(onehot(g)[0]).kernels


def test_w1_forward_is_one_kernel():
    s = fuse(workload(W1_FWD, n=1 << 24))
    (k,) = s.kernels
    assert k.is_reduce and k.reduce_axes == (0,) and k.splittable
    assert [ld.value.name for ld in k.loads] == ["x", "w", "b"]
    assert "%15: f32[] = kernel k0 {mul, add, pow, tanh, sum} %x, %w, %b" in str(s)
    # z ** 3 is lowered as two multiplies, not a general pow
    assert "pow" not in [st.op for st in k.steps]


def test_w1_backward_is_one_kernel_with_three_outputs():
    (k,) = kernels(workload(W1_BWD, n=1000))
    assert not k.is_reduce
    assert sorted(s.node.name for s in k.stores) == ["32", "33", "34"]
    # the broadcast scalar gradient is read through a stride-0 index map, not materialised
    g0 = [ld for ld in k.loads if ld.value.name == "g0"]
    assert g0 and g0[0].dims == ()


def test_softmax_is_one_row_kernel():
    (k,) = kernels(workload(SOFTMAX, r=64, c=1000))
    assert k.reduce_axes == (1,) and k.npasses == 2
    assert [st.op for st in k.steps if st.op in ("amax", "sum")] == ["amax", "sum"]
    assert [s.inner for s in k.stores] == [True]


def test_layer_norm_forward_is_one_kernel():
    (k,) = kernels(workload(LAYER_NORM, r=4096, c=1024))
    assert {s.node.name: s.inner for s in k.stores} == {"12": True, "5": False, "0": False}


W3_FWD = LAYER_NORM.replace(
    "(f32[{r},{c}], f32[{r},1], f32[{r},1]):", "(f32[], f32[{r},1], f32[{r},1]):").replace(
    "  return %12, %5, %0", """  %13: f32[{r},{c}] = mul %12, %x
  %14: f32[] = sum %13, dims=(0, 1), keepdim=False
  return %14, %5, %0""")


def test_sum_over_layer_norm_output_joins_the_row_kernel():
    """W3's forward: the full sum is split into a row pass of the layer-norm kernel and a sum of
    one value per row, so x is read once (split_reduce.py)."""
    g = workload(W3_FWD, r=4096, c=1024)
    s = fuse(g)
    row, total = s.kernels
    assert row.reduce_axes == (1,) and row.npasses == 3
    assert sorted(ld.value.name for ld in row.loads) == ["b", "w", "x"]
    assert [ld.value.name for ld in total.loads] == ["14.1"] and total.shape == (4096, 1)
    assert s.graph.inputs == g.inputs and [o.name for o in s.graph.outputs] == ["14", "5", "0"]
    small = workload(W3_FWD, r=33, c=300)
    arrays = random_inputs(small, seed=3)
    for got, want in zip(compile_graph(small)(arrays), interpret(small, arrays)):
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-3)


def test_split_reductions_only_where_a_row_reduction_feeds_it():
    from tracejit.ir.passes.split_reduce import split_reductions
    g = workload(W1_FWD, n=1000)         # a plain full sum: nothing to split
    assert split_reductions(g) is g
    text = str(split_reductions(workload(W3_FWD, r=8, c=16)))
    assert "%14.1: f32[8,1] = sum %13, dims=(1,), keepdim=True" in text
    assert "%14: f32[] = sum %14.1, dims=(0, 1), keepdim=False" in text


def test_layer_norm_backward_at_most_two_kernels():
    ks = kernels(workload(LAYER_NORM_BWD, r=4096, c=1024))
    assert len(ks) <= 2
    assert sorted(k.reduce_axes for k in ks) == [(0,), (1,)]


def test_cross_entropy_forward_and_backward_at_most_three_kernels():
    fwd = kernels(workload(XENT_FWD, r=8192, c=1000))
    bwd = kernels(workload(XENT_BWD, r=8192, c=1000))
    assert len(fwd) + len(bwd) <= 3
    assert len(bwd) == 1
    # the target's log-probability is picked from the logits (pass 0, beside the max), not from
    # the log-softmax row, which would need a third pass over the row
    assert fwd[0].reduce_axes == (1,) and fwd[0].npasses == 2


def test_elementwise_chain_with_broadcast_and_shared_value():
    b = Builder()
    x, row = b.input((8, 16)), b.input((1, 16))
    e = b.op("exp", b.op("mul", x, row))
    g = b.out(b.op("add", e, x), b.op("mul", e, e))
    (k,) = fuse(g).kernels
    assert len(k.stores) == 2
    assert sum(st.op == "exp" for st in k.steps) == 1         # computed once, used twice
    assert {ld.dims for ld in k.loads} == {(0, 1), (None, 1)}


def test_permute_and_expand_become_index_maps():
    b = Builder()
    x, y = b.input((3, 5)), b.input((5,))
    t = b.op("permute", b.op("exp", x), dims=(1, 0))            # (5, 3)
    e = b.op("expand", b.op("reshape", y, shape=(5, 1)), shape=(5, 3))
    g = b.out(b.op("add", t, e))
    (k,) = fuse(g).kernels
    assert {ld.value.name: ld.dims for ld in k.loads} == {"a0": (1, 0), "a1": (0,)}


def test_reduction_epilogue_and_prologue_fuse():
    b = Builder()
    x = b.input((32, 40))
    s = b.op("sum", b.op("exp", x), dims=(0,), keepdim=False)
    g = b.out(b.op("log", s))
    (k,) = fuse(g).kernels
    assert k.reduce_axes == (0,) and [s.inner for s in k.stores] == [False]


def test_matmul_is_external_and_its_neighbours_fuse():
    b = Builder()
    x, w = b.input((8, 8)), b.input((8, 8))
    y = b.op("exp", x)
    z = b.op("matmul", y, w)
    g = b.out(b.op("add", b.op("tanh", z), y))
    s = fuse(g)
    assert [type(st).__name__ if not hasattr(st, "op") else st.op for st in s.steps] == \
        ["Kernel", "matmul", "Kernel"]
    assert "external matmul" in s.describe()


def test_refusals_are_logged(caplog):
    b = Builder()
    x = b.input((16, 32))
    rows = b.op("sum", x, dims=(1,), keepdim=True)               # over axis 1
    cols = b.op("sum", b.op("mul", x, rows), dims=(0,), keepdim=True)  # over axis 0
    g = b.out(cols)
    with caplog.at_level(logging.INFO, logger="tracejit.fusion"):
        ks = fuse(g).kernels
    assert len(ks) == 2
    assert "reductions over different spaces" in caplog.text


def test_long_rows_are_not_read_by_several_passes(caplog):
    g = workload(SOFTMAX, r=2, c=ROW_LIMIT + 8)
    with caplog.at_level(logging.INFO, logger="tracejit.fusion"):
        ks = fuse(g).kernels
    assert len(ks) > 1
    assert "does not fit in cache" in caplog.text
    assert len(fuse(g, row_limit=1 << 20).kernels) == 1


def test_unsupported_dtype_runs_outside():
    b = Builder()
    x = b.input((4,), "float16")
    g = b.out(b.op("exp", x))
    assert fuse(g).kernels == []


@pytest.mark.parametrize("shape,dims", [((3, 4, 5), (0, 2)), ((3, 4, 5), (1,)), ((7,), (0,)),
                                        ((2, 3), ())])
def test_reduce_axes_are_the_reduction_dims(shape, dims):
    b = Builder()
    x = b.input(shape)
    g = b.out(b.op("sum", b.op("abs", x), dims=dims, keepdim=True))
    (k,) = fuse(g).kernels
    assert k.reduce_axes == dims and k.shape == shape


def test_onehot_rewrites_row_gather_and_adds_a_check():
    g = workload(XENT_FWD, r=6, c=5)
    g2, nchecks = onehot(g)
    assert nchecks == 1 and len(g2.outputs) == len(g.outputs) + 1
    assert "index" not in [n.op for n in g2.nodes]
    assert "index" in [n.op for n in g.nodes]                     # the input graph is unchanged
    check = g2.outputs[-1]
    assert check.type.shape == (6, 1) and check.type.dtype.name == "bool"
    # the gather moved through the elementwise ops onto the logits: lg[i, t] - max - log(sum)
    (sel,) = [n for n in g2.nodes if n.op == "where" and n.type.dtype.name == "float32"]
    assert sel.inputs[1].name == "lg"
    # the per-element compare runs in int32 (the index is checked in int64 first)
    (eq,) = [n for n in g2.nodes if n.op == "eq"]
    assert [u.type.dtype.name for u in eq.inputs] == ["int32", "int32"]


def test_row_gather_from_values_broadcast_along_rows_stays_a_one_hot_select():
    """Pushing the gather through x + bias with bias (1, C) would need a gather of bias too:
    left as one select of the sum."""
    b = Builder()
    x, bias, t = b.input((6, 5)), b.input((1, 5)), b.input((6, 1), "int64")
    rows = b.const(np.arange(6).reshape(6, 1), "int64")
    s = b.op("add", x, bias)
    g = b.out(b.op("index", s, rows, t, key=(("t", 0), ("t", 1))))
    g2, _ = onehot(g)
    (sel,) = [n for n in g2.nodes if n.op == "where" and n.type.dtype.name == "float32"]
    assert sel.inputs[1].op == "add"
    arrays = [np.random.default_rng(0).standard_normal((6, 5)).astype(np.float32),
              np.ones((1, 5), np.float32), np.array([[0], [4], [-1], [2], [3], [-5]])]
    np.testing.assert_array_equal(compile_graph(g)(arrays)[0], interpret(g, arrays)[0])
