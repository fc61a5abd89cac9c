"""Parse the IR's text form (exactly what `print_graph` prints) back into a `Graph`.

The parser is the inverse of the printer: `print_graph(parse(s)) == s` for every printed graph,
and `parse(print_graph(g))` is structurally equal to `g` (same names, ops, types, params, locs and
const bytes, up to NaN payloads). It checks syntax and name resolution only (every `%name` must be
defined on an earlier line, once); types are taken from the text as written, so that a graph with
a wrong type can still be parsed and handed to `verify`. Params are Python literals plus the
spellings `repr` gives floats and numpy scalars (`inf`, `nan`, `np.float32(1.5)`). Blank lines and
lines holding only a `# comment` are skipped. Every error is a `ValueError` that names the line
number, what is wrong and the line itself.
"""
from __future__ import annotations

import ast
import math
import re

import numpy as np

from ..ops import dtypes as D
from .graph import Graph, Node, TensorType

# a name is anything printable but whitespace and the text form's punctuation (`<lambda>`, `fc.w`)
_NAME = r"[^\s,:()\[\]=#%'\"]+"
_HEADER = re.compile(rf"def\s+({_NAME})\s*\((.*)\)\s*->\s*\((.*)\)\s*:$")
_TYPE = re.compile(r"([a-z]+[0-9]*)\[([0-9,\s]*)\]$")
_NODE = re.compile(rf"%({_NAME})\s*:\s*(\S+)\s*=\s*([A-Za-z_]\w*)(?:\s+(.*))?$")
_REF = re.compile(rf"%({_NAME})$")
_PARAM = re.compile(r"([A-Za-z_]\w*)\s*=(.*)$", re.DOTALL)
_NP_SCALARS = {"bool_", "uint8", "int8", "int16", "int32", "int64", "float16", "float32",
               "float64"}


class _Error(Exception):
    """A parse error inside one line; `parse` adds the line number and the line."""


def parse(text: str) -> Graph:
    """The Graph that `text` (the output of `print_graph`) describes."""
    lines = text.split("\n")
    i = _skip_blank(lines, 0)
    if i == len(lines):
        raise ValueError("parse: empty text; expected a graph starting with "
                         "'def name(...) -> (...):'")
    defined: dict[str, tuple[Node, int]] = {}
    try:
        g, out_types = _header(lines[i], defined, i + 1)
    except _Error as e:
        raise _at(i, lines[i], e) from None
    header_line = i
    outputs = None
    for i in range(header_line + 1, len(lines)):
        code, loc = _split_comment(lines[i])
        stripped = code.strip()
        if not stripped:  # blank, or a comment of its own (for hand-written test IR)
            continue
        try:
            if outputs is not None:
                raise _Error("text after the 'return' line")
            if stripped == "return" or stripped.startswith("return "):
                outputs = [_ref(a, defined) for a in _split(stripped[len("return"):])]
                if loc:
                    raise _Error("a 'return' line takes no '# file:line' comment")
                continue
            n = _node(stripped, loc, defined)
            if n.name in defined:
                raise _Error(f"%{n.name} is defined twice (first on line {defined[n.name][1]})")
            defined[n.name] = (n, i + 1)
            g.nodes.append(n)
        except _Error as e:
            raise _at(i, lines[i], e) from None
    if outputs is None:
        last = max(k for k in range(len(lines)) if lines[k].strip())
        raise _at(last, lines[last], _Error("the graph ends without a 'return %a, ...' line"))
    got = [str(o.type) for o in outputs]
    if got != out_types:
        raise _at(header_line, lines[header_line], _Error(
            f"the header declares outputs ({', '.join(out_types)}) but 'return' returns values "
            f"of types ({', '.join(got)})"))
    g.outputs = outputs
    numeric = [int(n.name) for n in g.nodes if n.name.isdigit()]
    g._counter = max(numeric, default=-1) + 1  # so g.add() never reuses a parsed name
    return g


def parse_type(text: str) -> TensorType:
    """`f32[2,3]` -> TensorType((2, 3), float32)."""
    m = _TYPE.match(text.strip())
    if not m:
        raise _Error(f"bad type {text.strip()!r}; expected e.g. f32[2,3] or i64[]")
    dtype = D.FROM_SHORT.get(m.group(1))
    if dtype is None:
        raise _Error(f"unknown dtype {m.group(1)!r} in type {text.strip()!r}; known: "
                     f"{', '.join(D.FROM_SHORT)}")
    dims = m.group(2).replace(" ", "")
    if dims and not all(d.isdigit() for d in dims.split(",")):
        raise _Error(f"bad shape in type {text.strip()!r}")
    return TensorType([int(d) for d in dims.split(",")] if dims else [], dtype)


def parse_literal(text: str):
    """A param value: a Python literal, `inf`/`nan`, or a numpy scalar such as `np.int64(3)`."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError:
        raise _Error(f"param value {text.strip()!r} is not a Python literal") from None
    return _literal(tree.body)


# --- pieces of a line ---


def _header(line: str, defined: dict, lineno: int):
    m = _HEADER.match(line.strip())
    if not m:
        raise _Error("expected the header 'def name(%a: f32[2,3], ...) -> (f32[2,3], ...):'")
    g = Graph(m.group(1))
    for arg in _split(m.group(2)):
        name, sep, ty = arg.partition(":")
        ref = _REF.match(name.strip())
        if not sep or not ref:
            raise _Error(f"bad input {arg!r}; expected '%name: f32[2,3]'")
        if ref.group(1) in defined:
            raise _Error(f"input %{ref.group(1)} is declared twice")
        defined[ref.group(1)] = (g.add_input(parse_type(ty), ref.group(1)), lineno)
    return g, [str(parse_type(t)) for t in _split(m.group(3))]


def _node(code: str, loc: str, defined: dict) -> Node:
    m = _NODE.match(code)
    if not m:
        raise _Error("expected '%name: type = op %a, %b, key=value, ...' or 'return %a, ...'")
    name, ty, op, rest = m.group(1), parse_type(m.group(2)), m.group(3), m.group(4) or ""
    if op == "const":
        return Node("const", [], {}, ty, loc, name=name, value=_const_value(rest, ty))
    if op == "input":
        raise _Error("'input' is not an op; declare inputs in the 'def' header")
    inputs, params = [], {}
    for arg in _split(rest):
        if arg.startswith("%"):
            if params:
                raise _Error(f"operand {arg} comes after params; operands go first")
            inputs.append(_ref(arg, defined))
            continue
        p = _PARAM.match(arg)
        if not p:
            raise _Error(f"bad argument {arg!r}; expected '%name' or 'key=value'")
        if p.group(1) in params:
            raise _Error(f"param {p.group(1)!r} is given twice")
        params[p.group(1)] = parse_literal(p.group(2))
    return Node(op, inputs, params, ty, loc, name=name)


def _ref(text: str, defined: dict) -> Node:
    m = _REF.match(text.strip())
    if not m:
        raise _Error(f"expected a value '%name', got {text.strip()!r}")
    if m.group(1) not in defined:
        raise _Error(f"%{m.group(1)} is not defined on an earlier line")
    return defined[m.group(1)][0]


def _const_value(body: str, ty: TensorType) -> np.ndarray:
    body = body.strip()
    if body.startswith("["):
        if not body.endswith("]"):
            raise _Error("const data is missing its closing ']'")
        inner = body[1:-1].strip()
        toks = [t.strip() for t in inner.split(",")] if inner else []
        if ty.ndim == 0:
            raise _Error(f"a 0-d const ({ty}) prints its value without brackets")
    else:
        if not body:
            raise _Error("const without data; expected e.g. 'const [1.5,2.]' or 'const 3'")
        toks = [body]
        if ty.ndim != 0:
            raise _Error(f"const data for {ty} must be a bracketed list, got {body!r}")
    if len(toks) != ty.numel:
        raise _Error(f"const has {len(toks)} values but its type {ty} has {ty.numel} elements")
    dt = ty.dtype
    try:
        if dt.is_bool:
            bad = [t for t in toks if t not in ("True", "False")]
            if bad:
                raise ValueError(f"{bad[0]!r} is not True or False")
            vals = np.array([t == "True" for t in toks], dtype=bool)
        elif dt.is_integer:
            vals = np.array([int(t) for t in toks], dtype=dt.np)
        else:
            # shortest-repr float32/float16 text converts exactly through float64
            vals = np.array([float(t) for t in toks], dtype=np.float64).astype(dt.np)
    except (ValueError, OverflowError) as e:
        raise _Error(f"bad const data for {ty}: {e}") from None
    return vals.reshape(ty.shape)


def _literal(node):
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str, type(None))):
        return node.value
    if isinstance(node, ast.Tuple):
        return tuple(_literal(e) for e in node.elts)
    if isinstance(node, ast.List):
        return [_literal(e) for e in node.elts]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _literal(node.operand)
        if isinstance(v, (int, float, np.number)) and not isinstance(v, bool):
            return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.Name) and node.id in ("inf", "nan"):
        return math.inf if node.id == "inf" else math.nan
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and \
            node.value.id in ("np", "numpy") and node.attr in ("True_", "False_"):
        return np.True_ if node.attr == "True_" else np.False_
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
            isinstance(node.func.value, ast.Name) and node.func.value.id in ("np", "numpy") and \
            node.func.attr in _NP_SCALARS and len(node.args) == 1 and not node.keywords:
        return getattr(np, node.func.attr)(_literal(node.args[0]))
    raise _Error(f"param value {ast.unparse(node)!r} is not a literal (numbers, strings, None, "
                 f"bools, inf, nan and tuples of them)")


# --- lexing: top-level commas and the trailing comment, outside brackets and strings ---


def _scan(text: str):
    """Yield (index, char, depth) for characters outside string literals."""
    depth, quote, i = 0, None, 0
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = None
        elif c in "'\"":
            quote = c
        else:
            if c in "([{":
                depth += 1
            elif c in ")]}":
                depth -= 1
                if depth < 0:
                    raise _Error(f"unbalanced {c!r}")
            yield i, c, depth
        i += 1
    if quote:
        raise _Error("unterminated string")


def _split_comment(line: str) -> tuple[str, str]:
    """Split `code  # loc` into code and loc (the printer writes '  # ' before the loc)."""
    try:
        for i, c, _ in _scan(line):
            if c == "#":
                loc = line[i + 1:]
                return line[:i], loc.removeprefix(" ")
    except _Error:
        pass  # reported with its line number when the code is split
    return line, ""


def _split(text: str) -> list[str]:
    parts, start, depth = [], 0, 0
    for i, c, depth in _scan(text):
        if c == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth != 0:
        raise _Error("unbalanced brackets")
    parts.append(text[start:])
    parts = [p.strip() for p in parts]
    if parts == [""]:
        return []
    if any(not p for p in parts):
        raise _Error("empty item between commas")
    return parts


def _skip_blank(lines: list, i: int) -> int:
    while i < len(lines) and (not lines[i].strip() or lines[i].strip().startswith("#")):
        i += 1
    return i


def _at(i: int, line: str, e: _Error) -> ValueError:
    return ValueError(f"parse: line {i + 1}: {e}\n  {line.strip()}")
