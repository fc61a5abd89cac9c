"""The IR's type checker: `verify(g)` raises `ValueError` when a graph breaks an invariant.

Invariants: every value is defined once, before its uses (SSA in topological order); every op is
an op-table entry (or `const`, and `input` only among the graph's inputs) with exactly the params
the entry declares (`Op.static`); every node's type is what the entry's rule infers from its
inputs (`infer_type`); elementwise inputs are as the dispatcher leaves them (condition inputs
bool, all other inputs one dtype that the op's dtype rule accepts); consts hold an ndarray of
their type; outputs are defined. The message names the broken rule and shows the node's printed
line (with the user's file:line), so a pass that breaks a graph is caught at the pass.
"""
from __future__ import annotations

import numpy as np

from ..ops import REGISTRY
from .graph import Graph, Node, infer_type, print_node


def verify(g: Graph) -> None:
    """Raise ValueError naming the first broken invariant of `g`; return None if there is none."""
    everywhere = {id(n) for n in g.inputs} | {id(n) for n in g.nodes}
    defined: set[int] = set()
    names: dict[str, Node] = {}

    def define(n: Node) -> None:
        if not isinstance(n.name, str) or not n.name:
            _fail(n, f"a value has no name (name={n.name!r})")
        if id(n) in defined:
            _fail(n, f"%{n.name} appears twice in the graph")
        if n.name in names:
            _fail(n, f"%{n.name} is defined twice")
        names[n.name] = n
        defined.add(id(n))

    for n in g.inputs:
        if n.op != "input" or n.inputs:
            _fail(n, f"graph input %{n.name} must be an 'input' node without operands, "
                     f"got op {n.op!r}")
        define(n)
    for n in g.nodes:
        for i in n.inputs:
            if not isinstance(i, Node):
                _fail(n, f"operand {i!r} is not a Node")
            if id(i) not in defined:
                where = "used before it is defined" if id(i) in everywhere else \
                    "not defined in the graph"
                _fail(n, f"operand %{i.name} is {where}")
        _check_node(n)
        define(n)
    for o in g.outputs:
        if not isinstance(o, Node) or id(o) not in defined:
            name = f"%{o.name}" if isinstance(o, Node) else repr(o)
            rets = ", ".join(f"%{getattr(x, 'name', x)}" for x in g.outputs)
            raise ValueError(f"verify: output {name} is not defined in the graph\n  return {rets}")


def _check_node(n: Node) -> None:
    if n.op == "const":
        _check_const(n)
        return
    if n.op == "input":
        _fail(n, "'input' nodes belong in the graph's inputs, not among its nodes")
    op = REGISTRY.get(n.op)
    if op is None:
        _fail(n, f"unknown op {n.op!r}: not in the op table (ops.REGISTRY)")
    if op.nin >= 0 and len(n.inputs) != op.nin:
        _fail(n, f"{n.op} takes {op.nin} operand(s), got {len(n.inputs)}")
    if set(n.params) != set(op.static):
        _fail(n, f"{n.op} takes params ({', '.join(op.static)}), "
                 f"got ({', '.join(n.params)})")
    for k, v in n.params.items():
        if not _printable(v):
            _fail(n, f"param {k}={v!r} is not a number, string, None, bool or tuple of them")
    if op.kind == "elementwise":
        _check_elementwise(n, op)
    try:
        want = infer_type(n.op, n.inputs, n.params)
    except (LookupError, RuntimeError, TypeError, ValueError) as e:  # the rule rejects them
        _fail(n, f"the op table's type rule for {n.op} fails: {type(e).__name__}: {e}")
    if want != n.type:
        _fail(n, f"type {n.type} differs from the type the op table infers, {want}")


def _check_elementwise(n: Node, op) -> None:
    if n.op == "cast":
        return  # cast takes any dtype: it is the op the dispatcher inserts
    cond = getattr(op, "cond_inputs", 0)
    for i in n.inputs[:cond]:
        if not i.type.dtype.is_bool:
            _fail(n, f"condition operand %{i.name} of {n.op} must be bool, got {i.type}")
    rest = n.inputs[cond:]
    if not rest:
        return
    dts = {i.type.dtype.name for i in rest}
    if len(dts) > 1:
        _fail(n, f"operands of {n.op} have dtypes {sorted(dts)}; the dispatcher casts them to "
                 f"one dtype, insert cast nodes")
    dt = rest[0].type.dtype
    if op.dtype_rule == "float" and not dt.is_floating_point:
        _fail(n, f"{n.op} computes in floating point; its operands are {dt.name}")
    if op.dtype_rule == "logical" and not dt.is_bool:
        _fail(n, f"{n.op} takes bool operands; its operands are {dt.name}")
    if dt.is_bool and not op.bool_ok and op.dtype_rule != "logical":
        _fail(n, f"{n.op} is not defined on bool operands")


def _check_const(n: Node) -> None:
    if n.inputs or n.params:
        _fail(n, "a const takes no operands and no params")
    v = n.value
    if not isinstance(v, np.ndarray):
        _fail(n, f"const value must be a numpy array, got {type(v).__name__}")
    if v.shape != n.type.shape or v.dtype != n.type.dtype.np:
        _fail(n, f"const value has shape {v.shape} and dtype {v.dtype}, "
                 f"but its type is {n.type}")


def _printable(v) -> bool:
    if isinstance(v, tuple):
        return all(_printable(x) for x in v)
    return v is None or isinstance(v, (bool, int, float, str, np.number, np.bool_))


def _fail(n: Node, msg: str):
    try:
        line = print_node(n).strip()
    except (AttributeError, TypeError, ValueError):  # too broken to print: still a message
        line = repr(n)
    raise ValueError(f"verify: {msg}\n  {line}")
