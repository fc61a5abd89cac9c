"""Reverse-mode autodiff over the graph IR.

`reverse_accumulate` walks a graph's nodes in reverse topological order and applies each op's
vjp through a callback (the jit layer runs the op table's vjp on traced Tensors, which appends
the backward nodes to the same joint graph). Gradients flowing into one value are summed. The IR
layer owns the walk; it never sees a Tensor.

    before:  %0 = mul %x, %w ; %1 = sum %0          (forward, seed d%1 = %g)
    after :  %2 = expand %g ; %3 = mul %2, %w ; %4 = mul %2, %x   (d%x = %3, d%w = %4)
"""
from __future__ import annotations

from typing import Callable


def reverse_accumulate(nodes: list, seeds: dict, differentiable: Callable,
                       apply_vjp: Callable, add: Callable) -> dict:
    """Gradient of every value reachable backwards from the seeds, keyed by id(node).

    seeds: {id(node): grad}; differentiable(node) -> bool; apply_vjp(node, grad) -> one gradient
    (or None) per input of node; add(a, b) -> a + b.
    """
    grads = dict(seeds)
    for n in reversed(nodes):
        g = grads.get(id(n))
        if g is None or not differentiable(n):
            continue
        for inp, r in zip(n.inputs, apply_vjp(n, g)):
            if r is None:
                continue
            k = id(inp)
            grads[k] = r if k not in grads else add(grads[k], r)
    return grads
