"""Graphs for the fusion and LLVM backend tests, and the numpy interpreter they are checked with.

The workload graphs are the IR text the tracer prints for them (W1's gelu chain, W3's layer norm,
W4's cross entropy, forward and backward), with sizes as parameters; `Builder` makes small graphs
programmatically. `interpret` runs a graph node by node with the op table's numpy functions.
"""
from __future__ import annotations

import numpy as np

from tracejit.ir.graph import Graph, TensorType, infer_type
from tracejit.ir.parser import parse
from tracejit.ops import REGISTRY
from tracejit.ops import dtypes as D


class Builder:
    def __init__(self, name: str = "f") -> None:
        self.g = Graph(name)

    def input(self, shape, dtype="float32", name=None):
        return self.g.add_input(TensorType(tuple(shape), D.get_dtype(dtype)),
                                name or f"a{len(self.g.inputs)}")

    def const(self, value, dtype="float32"):
        return self.g.const(np.asarray(value, dtype=D.get_dtype(dtype).np))

    def op(self, name, *ins, **params):
        return self.g.add(name, list(ins), params, infer_type(name, ins, params))

    def out(self, *nodes) -> Graph:
        self.g.outputs = list(nodes)
        return self.g


def interpret(g: Graph, arrays: list) -> list:
    env = {id(n): np.asarray(a) for n, a in zip(g.inputs, arrays)}
    with np.errstate(all="ignore"):
        _run(g, env)
    return [env[id(o)] for o in g.outputs]


def _run(g: Graph, env: dict) -> None:
    for n in g.nodes:
        if n.op == "const":
            env[id(n)] = n.value
        else:
            env[id(n)] = np.asarray(REGISTRY[n.op].eager(*[env[id(u)] for u in n.inputs],
                                                         **n.params))


def random_inputs(g: Graph, seed: int = 0, lo: float = -2.0, hi: float = 2.0) -> list:
    rng = np.random.default_rng(seed)
    out = []
    for n in g.inputs:
        dt = n.type.dtype.np
        if dt.kind == "f":
            out.append(rng.uniform(lo, hi, n.shape).astype(dt))
        elif dt.kind == "b":
            out.append(rng.random(n.shape) < 0.5)
        else:
            out.append(rng.integers(-5, 6, n.shape).astype(dt))
    return out


W1_FWD = """def w1(%x: f32[{n}], %w: f32[{n}], %b: f32[{n}]) -> (f32[]):
  %0: f32[{n}] = mul %x, %w
  %1: f32[{n}] = add %0, %b
  %2: f32[] = const 0.5
  %3: f32[{n}] = mul %1, %2
  %4: f32[] = const 3.
  %5: f32[{n}] = pow %1, %4
  %6: f32[] = const 0.044715
  %7: f32[{n}] = mul %5, %6
  %8: f32[{n}] = add %1, %7
  %9: f32[] = const 0.7978846
  %10: f32[{n}] = mul %8, %9
  %11: f32[{n}] = tanh %10
  %12: f32[] = const 1.
  %13: f32[{n}] = add %11, %12
  %14: f32[{n}] = mul %3, %13
  %15: f32[] = sum %14, dims=(0,), keepdim=False
  return %15"""

W1_BWD = """def w1_backward(%g0: f32[], %s0: f32[{n}], %s1: f32[{n}], %s2: f32[{n}]) -> \
(f32[{n}], f32[{n}], f32[{n}]):
  %0: f32[1] = reshape %g0, shape=(1,)
  %1: f32[{n}] = expand %0, shape=({n},)
  %2: f32[] = const 1.
  %3: f32[] = const 0.7978846
  %4: f32[] = const 0.044715
  %5: f32[] = const 3.
  %6: f32[{n}] = mul %s2, %s1
  %7: f32[{n}] = add %6, %s0
  %8: f32[{n}] = pow %7, %5
  %9: f32[{n}] = mul %8, %4
  %10: f32[{n}] = add %7, %9
  %11: f32[{n}] = mul %10, %3
  %12: f32[{n}] = tanh %11
  %13: f32[{n}] = add %12, %2
  %14: f32[{n}] = mul %1, %13
  %15: f32[] = const 0.5
  %16: f32[{n}] = mul %7, %15
  %17: f32[{n}] = mul %1, %16
  %18: f32[{n}] = mul %12, %12
  %19: f32[{n}] = sub %2, %18
  %20: f32[{n}] = mul %17, %19
  %21: f32[{n}] = mul %20, %3
  %22: f32[{n}] = mul %21, %4
  %23: f32[{n}] = mul %22, %5
  %24: f32[] = const 2.
  %25: f32[{n}] = pow %7, %24
  %26: f32[{n}] = mul %23, %25
  %27: f32[] = const 0.
  %28: b8[] = const True
  %29: f32[{n}] = where %28, %26, %27
  %30: f32[{n}] = add %21, %29
  %31: f32[{n}] = mul %14, %15
  %32: f32[{n}] = add %30, %31
  %33: f32[{n}] = mul %32, %s1
  %34: f32[{n}] = mul %32, %s2
  return %33, %34, %32"""

SOFTMAX = """def softmax(%x: f32[{r},{c}]) -> (f32[{r},{c}]):
  %0: f32[{r},1] = amax %x, dims=(1,), keepdim=True
  %1: f32[{r},1] = detach %0
  %2: f32[{r},{c}] = sub %x, %1
  %3: f32[{r},{c}] = exp %2
  %4: f32[{r},1] = sum %3, dims=(1,), keepdim=True
  %5: f32[{r},{c}] = div %3, %4
  return %5"""

LAYER_NORM = """def layer_norm(%x: f32[{r},{c}], %w: f32[{c}], %b: f32[{c}]) -> \
(f32[{r},{c}], f32[{r},1], f32[{r},1]):
  %0: f32[{r},1] = sum %x, dims=(1,), keepdim=True
  %1: f32[] = const {c}.
  %2: f32[{r},1] = div %0, %1
  %3: f32[{r},{c}] = sub %x, %2
  %4: f32[{r},{c}] = mul %3, %3
  %5: f32[{r},1] = sum %4, dims=(1,), keepdim=True
  %6: f32[{r},1] = div %5, %1
  %7: f32[] = const 1.e-05
  %8: f32[{r},1] = add %6, %7
  %9: f32[{r},1] = rsqrt %8
  %10: f32[{r},{c}] = mul %3, %9
  %11: f32[{r},{c}] = mul %10, %w
  %12: f32[{r},{c}] = add %11, %b
  return %12, %5, %0"""

LAYER_NORM_BWD = """def w3_backward(%g0: f32[], %s0: f32[{r},{c}], %s1: f32[{c}], %s2: f32[{c}], \
%s3: f32[{r},1], %s4: f32[{r},1]) -> (f32[{r},{c}], f32[{c}], f32[{c}]):
  %0: f32[1,1] = reshape %g0, shape=(1, 1)
  %1: f32[{r},{c}] = expand %0, shape=({r}, {c})
  %2: f32[{r},{c}] = mul %1, %s0
  %3: f32[] = const 1.e-05
  %4: f32[] = const {c}.
  %5: f32[{r},1] = div %s3, %4
  %6: f32[{r},1] = add %5, %3
  %7: f32[{r},1] = rsqrt %6
  %8: f32[{r},1] = div %s4, %4
  %9: f32[{r},{c}] = sub %s0, %8
  %10: f32[{r},{c}] = mul %9, %7
  %11: f32[{r},{c}] = mul %10, %s2
  %12: f32[{r},{c}] = add %11, %s1
  %13: f32[{r},{c}] = mul %1, %12
  %14: f32[1,{c}] = sum %2, dims=(0,), keepdim=True
  %15: f32[{c}] = reshape %14, shape=({c},)
  %16: f32[{r},{c}] = mul %2, %s2
  %17: f32[{r},{c}] = mul %2, %10
  %18: f32[1,{c}] = sum %17, dims=(0,), keepdim=True
  %19: f32[{c}] = reshape %18, shape=({c},)
  %20: f32[{r},{c}] = mul %16, %7
  %21: f32[{r},{c}] = mul %16, %9
  %22: f32[{r},1] = sum %21, dims=(1,), keepdim=True
  %23: f32[{r},1] = mul %22, %7
  %24: f32[{r},1] = mul %23, %7
  %25: f32[{r},1] = mul %24, %7
  %26: f32[] = const -0.5
  %27: f32[{r},1] = mul %25, %26
  %28: f32[{r},1] = div %27, %4
  %29: f32[{r},{c}] = expand %28, shape=({r}, {c})
  %30: f32[{r},{c}] = mul %29, %9
  %31: f32[{r},{c}] = add %20, %30
  %32: f32[{r},{c}] = add %31, %30
  %33: f32[{r},{c}] = neg %32
  %34: f32[{r},1] = sum %33, dims=(1,), keepdim=True
  %35: f32[{r},{c}] = add %13, %32
  %36: f32[{r},1] = div %34, %4
  %37: f32[{r},{c}] = expand %36, shape=({r}, {c})
  %38: f32[{r},{c}] = add %35, %37
  return %38, %19, %15"""

XENT_FWD = """def w4(%lg: f32[{r},{c}], %t: i64[{r}]) -> (f32[], f32[], f32[{r},1], f32[{r},1]):
  %0: f32[{r},1] = amax %lg, dims=(1,), keepdim=True
  %1: f32[{r},1] = detach %0
  %2: f32[{r},{c}] = sub %lg, %1
  %3: f32[{r},{c}] = exp %2
  %4: f32[{r},1] = sum %3, dims=(1,), keepdim=True
  %5: f32[{r},1] = log %4
  %6: f32[{r},{c}] = sub %2, %5
  %7: i64[] = const -100
  %8: b8[{r}] = ne %t, %7
  %9: i64[] = const 0
  %10: i64[{r}] = where %8, %t, %9
  %11: i64[{r},1] = reshape %10, shape=({r}, 1)
  %12: i64[{r},1] = const [{rows}]
  %13: f32[{r},1] = index %6, %12, %11, key=(('t', 0), ('t', 1))
  %14: f32[{r}] = reshape %13, shape=({r},)
  %15: f32[{r}] = cast %8, dtype='float32'
  %16: f32[{r}] = neg %14
  %17: f32[{r}] = mul %16, %15
  %18: f32[] = sum %17, dims=(0,), keepdim=False
  %19: f32[] = sum %15, dims=(0,), keepdim=False
  %20: f32[] = div %18, %19
  return %20, %19, %4, %0"""

XENT_BWD = """def w4_backward(%g0: f32[], %s0: f32[], %s1: i64[{r}], %s2: f32[{r},1], \
%s3: f32[{r},1], %s4: f32[{r},{c}]) -> (f32[{r},{c}]):
  %0: f32[] = div %g0, %s0
  %1: f32[1] = reshape %0, shape=(1,)
  %2: f32[{r}] = expand %1, shape=({r},)
  %3: i64[] = const -100
  %4: b8[{r}] = ne %s1, %3
  %5: f32[{r}] = cast %4, dtype='float32'
  %6: f32[{r}] = mul %2, %5
  %7: f32[{r}] = neg %6
  %8: f32[{r},1] = reshape %7, shape=({r}, 1)
  %9: f32[{r},{c}] = full shape=({r}, {c}), value=0, dtype='float32'
  %10: i64[] = const 0
  %11: i64[{r}] = where %4, %s1, %10
  %12: i64[{r},1] = reshape %11, shape=({r}, 1)
  %13: i64[{r},1] = const [{rows}]
  %14: f32[{r},{c}] = index_put %9, %8, %13, %12, key=(('t', 0), ('t', 1)), accumulate=True
  %15: f32[{r},{c}] = neg %14
  %16: f32[{r},1] = sum %15, dims=(1,), keepdim=True
  %17: f32[{r},1] = div %16, %s2
  %18: f32[{r},{c}] = expand %17, shape=({r}, {c})
  %19: f32[{r},1] = detach %s3
  %20: f32[{r},{c}] = sub %s4, %19
  %21: f32[{r},{c}] = exp %20
  %22: f32[{r},{c}] = mul %18, %21
  %23: f32[{r},{c}] = add %14, %22
  return %23"""


def workload(text: str, **sizes) -> Graph:
    if "r" in sizes:
        sizes["rows"] = ",".join(str(i) for i in range(sizes["r"]))
    return parse(text.format(**sizes))
