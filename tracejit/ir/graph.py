"""The graph IR: typed SSA values, one `Node` per op application, and the text form.

A `Graph` has input nodes (`op == "input"`), a topologically ordered list of op nodes, and
outputs. The IR knows no op semantics of its own: a node's `op` is the name of an op-table entry
(`ops.REGISTRY`) plus two structural ops, `input` and `const`. Every node has a `TensorType`
(shape and dtype; shapes are static), static `params` (ints, floats, bools, strings, None and
tuples of them, so they print and hash), and the user's source location. Text form:

    def f(%x: f32[4096,1024], %w: f32[1024]) -> f32[]:
      %0: f32[4096,1024] = mul %x, %w          # model.py:12
      %1: f32[] = sum %0, dims=(0, 1), keepdim=False          # model.py:14
      return %1
"""
from __future__ import annotations

import numpy as np

from ..ops import REGISTRY
from ..ops import dtypes as D


class TensorType:
    __slots__ = ("shape", "dtype")

    def __init__(self, shape, dtype: D.DType) -> None:
        self.shape = tuple(int(s) for s in shape)
        self.dtype = dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def numel(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n

    @property
    def nbytes(self) -> int:
        return self.numel * self.dtype.itemsize

    def __eq__(self, other) -> bool:
        return isinstance(other, TensorType) and self.shape == other.shape and \
            self.dtype is other.dtype

    def __hash__(self) -> int:
        return hash((self.shape, self.dtype.name))

    def __str__(self) -> str:
        return f"{D.SHORT[self.dtype]}[{','.join(str(s) for s in self.shape)}]"

    __repr__ = __str__


class Node:
    """One SSA value. `inputs` are Nodes; `value` holds a const's ndarray."""
    __slots__ = ("op", "inputs", "params", "type", "loc", "name", "value", "meta")

    def __init__(self, op: str, inputs, params: dict, type: TensorType, loc: str = "",
                 name: str | None = None, value: np.ndarray | None = None) -> None:
        self.op = op
        self.inputs = list(inputs)
        self.params = dict(params)
        self.type = type
        self.loc = loc
        self.name = name
        self.value = value
        self.meta = {}

    # numpy-like metadata, so a Node can stand in for an array inside a traced Tensor
    @property
    def shape(self) -> tuple:
        return self.type.shape

    @property
    def dtype(self) -> np.dtype:
        return self.type.dtype.np

    @property
    def ndim(self) -> int:
        return self.type.ndim

    @property
    def size(self) -> int:
        return self.type.numel

    def __repr__(self) -> str:
        return f"<ir.Node %{self.name} = {self.op} : {self.type}>"


class Graph:
    def __init__(self, name: str = "f") -> None:
        self.name = name
        self.inputs: list[Node] = []
        self.nodes: list[Node] = []
        self.outputs: list[Node] = []
        self._counter = 0

    def add_input(self, type: TensorType, name: str) -> Node:
        n = Node("input", [], {}, type, name=name)
        self.inputs.append(n)
        return n

    def add(self, op: str, inputs, params: dict, type: TensorType, loc: str = "",
            value=None) -> Node:
        n = Node(op, inputs, params, type, loc, name=str(self._counter), value=value)
        self._counter += 1
        self.nodes.append(n)
        return n

    def const(self, value: np.ndarray, loc: str = "") -> Node:
        value = np.asarray(value)
        return self.add("const", [], {}, TensorType(value.shape, D.from_numpy_dtype(value.dtype)),
                        loc, value=value)

    def renumber(self) -> "Graph":
        for i, n in enumerate(self.nodes):
            n.name = str(i)
        self._counter = len(self.nodes)
        return self

    def rewrite(self, replace) -> "Graph":
        """A copy of this graph (same inputs) with every node copied, except where
        `replace(node, new_inputs, graph, new)` returns a node standing for it (having
        appended what it built to `graph`; `new` maps id(old node) to its copy so far). This
        graph is not changed."""
        out = Graph(self.name)
        out.inputs = list(self.inputs)
        new: dict = {id(i): i for i in self.inputs}
        for n in self.nodes:
            ins = [new[id(u)] for u in n.inputs]
            r = replace(n, ins, out, new)
            if r is None:
                r = Node(n.op, ins, n.params, n.type, n.loc, n.name, n.value)
                out.nodes.append(r)
            new[id(n)] = r
        out.outputs = [new[id(o)] for o in self.outputs]
        return out

    def users(self) -> dict:
        out: dict = {id(n): [] for n in self.inputs + self.nodes}
        for n in self.nodes:
            for i in n.inputs:
                out[id(i)].append(n)
        return out

    def __str__(self) -> str:
        return print_graph(self)


def infer_type(op: str, inputs, params: dict) -> TensorType:
    """The output type of `op` applied to `inputs` (the op table's shape/dtype rule)."""
    entry = REGISTRY[op]
    shape, dtype = entry.infer(*((i.type.shape, i.type.dtype) for i in inputs), **params)
    return TensorType(shape, dtype)


def _fmt_param(v) -> str:
    if isinstance(v, float):
        return repr(v)
    return repr(v)


# numpy's global print options (suppress, sign, formatter, nanstr, legacy) must not change the
# text: the const format has to be deterministic and parse back exactly (ir/parser.py)
_CONST_PRINTOPTIONS = {"legacy": False, "sign": "-", "suppress": False, "nanstr": "nan",
                       "infstr": "inf", "formatter": None, "floatmode": "unique"}


def _fmt_const(n: Node) -> str:
    v = n.value
    with np.printoptions(**_CONST_PRINTOPTIONS):
        body = np.array2string(v.reshape(-1) if v.ndim else v, separator=",",
                               threshold=1 << 30, max_line_width=1 << 30,
                               floatmode="unique").replace(" ", "")
    return f"const {body}"


def print_node(n: Node) -> str:
    if n.op == "const":
        rhs = _fmt_const(n)
    else:
        args = [f"%{i.name}" for i in n.inputs]
        args += [f"{k}={_fmt_param(v)}" for k, v in n.params.items()]
        rhs = n.op + (" " + ", ".join(args) if args else "")
    line = f"  %{n.name}: {n.type} = {rhs}"
    if n.loc:
        line = line.ljust(48) + f"  # {n.loc}"
    return line


def print_graph(g: Graph) -> str:
    ins = ", ".join(f"%{i.name}: {i.type}" for i in g.inputs)
    outs = ", ".join(str(o.type) for o in g.outputs)
    lines = [f"def {g.name}({ins}) -> ({outs}):"]
    lines += [print_node(n) for n in g.nodes]
    lines.append("  return " + ", ".join(f"%{o.name}" for o in g.outputs))
    return "\n".join(lines)
