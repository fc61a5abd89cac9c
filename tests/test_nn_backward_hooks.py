"""Module full backward hooks and backward pre-hooks, as PyTorch's: what the hooks see (the
gradients of the positional tensor inputs and of the outputs, None for non-tensors and unused
outputs, zeros for inputs that do not require grad), replacing gradients, the case where no input
requires grad, refused in-place forwards, removal, and compiled callers."""
from __future__ import annotations

import numpy as np
import pytest

import tracejit as tj
from tracejit import nn


def _lists(grads):
    return [None if g is None else g.tolist() for g in grads]


def _fixed_linear():
    lin = nn.Linear(2, 1)
    with tj.no_grad():
        lin.weight.copy_(tj.tensor([[1.0, 2.0]]))
        lin.bias.fill_(0.5)
    return lin


def test_hook_sees_input_and_output_gradients():
    lin, seen = _fixed_linear(), []
    lin.register_full_backward_hook(lambda m, gi, go: seen.append((m, _lists(gi), _lists(go))))
    x = tj.tensor([[1.0, 2.0]], requires_grad=True)
    (lin(x) * 3).sum().backward()
    assert seen == [(lin, [[[3.0, 6.0]]], [[[3.0]]])]
    assert x.grad.tolist() == [[3.0, 6.0]] and lin.weight.grad.tolist() == [[3.0, 6.0]]


class Two(nn.Module):
    def forward(self, a, k, b):
        return a * b * k, a + b


def test_non_tensors_unused_outputs_and_inputs_without_grad():
    seen = []
    two = Two()
    two.register_full_backward_hook(lambda m, gi, go: seen.append((_lists(gi), _lists(go))))
    a, b = tj.tensor([1.0, 2.0], requires_grad=True), tj.tensor([3.0, 4.0])
    o1, o2 = two(a, 2, b)
    o1.sum().backward(retain_graph=True)
    # k is no tensor: None; b needs no grad: zeros (torch); o2 unused: None
    assert seen == [([[6.0, 8.0], None, [0.0, 0.0]], [[1.0, 1.0], None])]
    seen.clear()
    a.grad = None
    (o1.sum() + o2.sum()).backward()
    assert seen == [([[7.0, 9.0], None, [0.0, 0.0]], [[1.0, 1.0], [1.0, 1.0]])]
    assert a.grad.tolist() == [7.0, 9.0]


def test_hook_result_replaces_grad_input():
    two = Two()
    two.register_full_backward_hook(lambda m, gi, go: (gi[0] * 10, None, None))
    a = tj.tensor([1.0, 2.0], requires_grad=True)
    two(a, 1, tj.tensor([3.0, 4.0]))[0].sum().backward()
    assert a.grad.tolist() == [30.0, 40.0]
    bad = Two()
    bad.register_full_backward_hook(lambda m, gi, go: (gi[0],))
    with pytest.raises(RuntimeError, match="Backward hook returned an invalid number of "
                       "grad_input, got 1, but expected 3"):
        bad(a, 1, tj.ones(2))[0].sum().backward()
    resized = Two()
    resized.register_full_backward_hook(lambda m, gi, go: (tj.ones(3), None, None))
    with pytest.raises(RuntimeError, match="has changed the size of value"):
        resized(a, 1, tj.ones(2))[0].sum().backward()


def test_hooks_chain_in_order_and_prepend():
    lin, order = _fixed_linear(), []

    def doubler(tag):
        def hook(m, gi, go):
            order.append(tag)
            return (gi[0] * 2,)
        return hook
    lin.register_full_backward_hook(doubler("a"))
    lin.register_full_backward_hook(doubler("first"), prepend=True)
    x = tj.tensor([[1.0, 1.0]], requires_grad=True)
    lin(x).sum().backward()
    assert order == ["first", "a"] and x.grad.tolist() == [[4.0, 8.0]]


def test_no_input_requires_grad():
    lin, seen = _fixed_linear(), []
    lin.register_full_backward_hook(lambda m, gi, go: seen.append((_lists(gi), _lists(go))))
    with pytest.warns(UserWarning, match="no inputs require gradients"):
        (lin(tj.ones(1, 2)) * 2).sum().backward()
    assert seen == [([None], [[[2.0]]])]
    lin2 = _fixed_linear()
    lin2.register_full_backward_hook(lambda m, gi, go: (tj.ones(1, 2),))
    with pytest.warns(UserWarning), pytest.raises(RuntimeError, match="should always return "
                                                  "None or None for all gradients"):
        lin2(tj.ones(1, 2)).sum().backward()
    # nothing requires grad at all: no node, no hook
    lin.requires_grad_(False)
    assert not lin(tj.ones(1, 2)).requires_grad


def test_backward_pre_hook_replaces_grad_output():
    lin, seen = _fixed_linear(), []
    lin.register_full_backward_pre_hook(lambda m, go: (go[0] * 5,))
    lin.register_full_backward_hook(lambda m, gi, go: seen.append(_lists(go)))
    x = tj.tensor([[1.0, 1.0]], requires_grad=True)
    lin(x).sum().backward()
    assert seen == [[[[5.0]]]] and x.grad.tolist() == [[5.0, 10.0]]
    assert lin.weight.grad.tolist() == [[5.0, 5.0]]
    bad = _fixed_linear()
    bad.register_full_backward_pre_hook(lambda m, go: (go[0], go[0]))
    with pytest.raises(RuntimeError, match="Backward pre hook returned an invalid number of "
                       "grad_output, got 2, but expected 1"):
        bad(x).sum().backward()


def test_hook_sees_the_output_after_forward_hooks_and_each_call():
    lin, seen = _fixed_linear(), []
    lin.register_full_backward_hook(lambda m, gi, go: seen.append(_lists(go)))
    lin.register_forward_hook(lambda m, args, out: out * 2)
    x = tj.tensor([[1.0, 1.0]], requires_grad=True)
    lin(x).sum().backward()
    assert seen == [[[[1.0]]]] and x.grad.tolist() == [[2.0, 4.0]]
    seen.clear()
    sq = nn.Linear(1, 1)
    calls = []
    sq.register_full_backward_hook(lambda m, gi, go: calls.append(go[0].item()))
    sq(sq(tj.ones(1, 1, requires_grad=True))).sum().backward()
    assert len(calls) == 2 and calls[0] == 1.0       # the outer call's output first


def test_inplace_forward_is_refused_and_handles_remove():
    relu = nn.ReLU(inplace=True)
    relu.register_full_backward_hook(lambda m, gi, go: None)
    with pytest.raises(RuntimeError, match="is a view and is being modified inplace"):
        relu(tj.randn(3, requires_grad=True) * 1)
    lin, seen = _fixed_linear(), []
    h = lin.register_full_backward_hook(lambda m, gi, go: seen.append(1))
    p = lin.register_full_backward_pre_hook(lambda m, go: seen.append(0))
    h.remove()
    p.remove()
    h.remove()                                     # twice is fine
    lin(tj.ones(1, 2, requires_grad=True)).sum().backward()
    assert seen == [] and not lin._backward_hooks and not lin._backward_pre_hooks
    assert type(lin(tj.ones(1, 2, requires_grad=True)).grad_fn).__name__ != "_HookNode"


def test_autograd_grad_and_double_backward():
    lin, seen = _fixed_linear(), []
    lin.register_full_backward_hook(lambda m, gi, go: seen.append(_lists(gi)))
    x = tj.tensor([[1.0, 1.0]], requires_grad=True)
    # only the weight is asked for: the input node does not run, nor the hook (as torch)
    (gw,) = tj.autograd.grad(lin(x).sum(), [lin.weight])
    assert gw.tolist() == [[1.0, 1.0]] and seen == []
    (gx,) = tj.autograd.grad((lin(x) ** 2).sum(), [x], create_graph=True)
    assert seen == [[[[7.0, 14.0]]]]                 # 2 * (1 + 2 + 0.5) * w
    # the second pass goes back through the output node too (gx depends on the output), so
    # the hook runs again, with that pass's gradients (as torch)
    (ggx,) = tj.autograd.grad(gx.sum(), [x])
    np.testing.assert_allclose(ggx.numpy(), [[6.0, 12.0]])  # d/dx of 2 (w.x + b) (1 + 2)
    assert seen == [[[[7.0, 14.0]]], [[[6.0, 12.0]]]]


def test_compiled_caller_runs_the_hook():
    net = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    compiled = tj.compile(net)
    x = tj.randn(4, 2, requires_grad=True)
    compiled(x).sum().backward()                 # traced without hooks
    expected = x.grad.numpy().copy()
    seen = []
    net[0].register_full_backward_hook(lambda m, gi, go: seen.append(tuple(go[0].shape)))
    x.grad = None
    with pytest.warns(RuntimeWarning, match="full backward hook"):
        compiled(x).sum().backward()             # retraced: a graph break, run eagerly
    assert seen == [(4, 3)]
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-6)


def test_backward_hooks_against_torch():
    torch = pytest.importorskip("torch")
    runs = []
    for lib in (torch, tj):
        class M(lib.nn.Module):
            def forward(self, a, k, b):
                return a * b * k, (a + b).sum()
        m, log = M(), []
        m.register_full_backward_pre_hook(lambda mod, go: log.append(("pre", _lists(go))))
        m.register_full_backward_hook(lambda mod, gi, go: log.append(("full", _lists(gi),
                                                                      _lists(go))))
        a = lib.tensor([1.0, 2.0], requires_grad=True)
        b = lib.tensor([3.0, -1.0], requires_grad=True)
        o1, o2 = m(a, 3.0, b)
        (o1 * lib.tensor([1.0, 2.0])).sum().backward()
        runs.append((log, a.grad.tolist(), b.grad.tolist()))
    assert runs[0] == runs[1]
