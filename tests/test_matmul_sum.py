"""The pass that merges a sum of row-contracting matmuls into one matmul of concatenations
(tracejit/ir/passes/matmul_sum.py): where it applies, where it must not, and that compiled
unrolled-RNN gradients still match eager."""
from __future__ import annotations

import numpy as np
from kernel_graphs import Builder, interpret

import tracejit as tj
from tracejit.codegen.llvm.backend import compile_graph
from tracejit.ir.passes.matmul_sum import merge_matmul_sums


def _sum_of_products(n_terms: int, extra_use: bool = False):
    b = Builder()
    hs = [b.input((3 + i, 5)) for i in range(n_terms)]          # row counts may differ
    gs = [b.input((3 + i, 4)) for i in range(n_terms)]
    terms = [b.op("matmul", b.op("permute", h, dims=(1, 0)), g) for h, g in zip(hs, gs)]
    total = terms[0]
    partial = None
    for i, t in enumerate(terms[1:]):
        total = b.op("add", total, t)
        if i == 1:
            partial = total
    outs = [total] + ([b.op("exp", partial)] if extra_use else [])
    return b.out(*outs)


def _arrays(g):
    rng = np.random.default_rng(0)
    return [rng.standard_normal(n.shape).astype(np.float32) for n in g.inputs]


def test_sum_of_matmuls_becomes_one_matmul_of_concatenations():
    g = _sum_of_products(6)
    m = merge_matmul_sums(g)
    ops = [n.op for n in m.nodes]
    assert ops.count("matmul") == 1 and ops.count("cat") == 2 and "add" not in ops
    assert [n.op for n in m.outputs[0].inputs] == ["permute", "cat"]   # cat(h_t)^T @ cat(g_t)
    assert m.outputs[0].name == g.outputs[0].name and m.inputs == g.inputs
    arrays = _arrays(g)
    np.testing.assert_allclose(compile_graph(g)(arrays)[0], interpret(g, arrays)[0],
                               rtol=1e-5, atol=1e-5)


def test_small_sums_and_shared_partial_sums_are_left_alone():
    g = _sum_of_products(3)
    assert merge_matmul_sums(g) is g                             # fewer than MIN_TERMS
    g = _sum_of_products(6, extra_use=True)                       # a partial sum is read twice
    assert merge_matmul_sums(g) is g
    b = Builder()
    x, w = b.input((4, 5)), b.input((5, 4))
    total = b.op("add", b.op("matmul", x, w), b.op("exp", b.op("matmul", x, w)))
    for _ in range(4):
        total = b.op("add", total, b.op("matmul", x, w))
    g = b.out(total)                                              # one term is not a matmul
    assert merge_matmul_sums(g) is g


def test_plain_left_operands_concatenate_along_columns():
    b = Builder()
    ls = [b.input((4, 2 + i)) for i in range(5)]
    rs = [b.input((2 + i, 3)) for i in range(5)]
    total = b.op("matmul", ls[0], rs[0])
    for x, y in zip(ls[1:], rs[1:]):
        total = b.op("add", total, b.op("matmul", x, y))
    g = b.out(total)
    m = merge_matmul_sums(g)
    (cat_l,) = [n for n in m.nodes if n.op == "cat" and n.params["dim"] == 1]
    assert cat_l.shape == (4, sum(2 + i for i in range(5)))
    arrays = _arrays(g)
    np.testing.assert_allclose(compile_graph(g)(arrays)[0], interpret(g, arrays)[0],
                               rtol=1e-5, atol=1e-5)


def test_unrolled_rnn_gradients_match_eager():
    rng = np.random.default_rng(1)
    xs = tj.tensor(rng.standard_normal((6, 4, 3)).astype(np.float32))
    ws = [tj.tensor(rng.standard_normal(s).astype(np.float32) * 0.5, requires_grad=True)
          for s in ((3, 5), (5, 5), (5,))]

    def rnn(xs, wx, wh, b):
        h = tj.zeros(4, 5)
        for t in range(xs.shape[0]):
            h = (xs[t] @ wx + h @ wh + b).tanh()
        return h.sum()
    rnn(xs, *ws).backward()
    want = [w.grad.numpy().copy() for w in ws]
    for w in ws:
        w.grad = None
    tj.compile(rnn)(xs, *ws).backward()
    assert str(tj.explain(rnn)(xs, *ws)).count("external cat") == 4   # dW_x and dW_h merged
    for w, ref in zip(ws, want):
        np.testing.assert_allclose(w.grad.numpy(), ref, rtol=1e-5, atol=1e-5)
