"""The IR's text form and type checker: print/parse round trips (consts with inf, nan, -0.0, bools,
int64 extremes, empty and 0-d data; index-key and string params), parse errors that name the line,
and one test per verifier rule. IR is stated as text, as the passes' tests do.
"""
from __future__ import annotations

import math
import textwrap

import numpy as np
import pytest

from tracejit.ir.graph import Graph, Node, TensorType, print_graph
from tracejit.ir.parser import parse
from tracejit.ir.verify import verify
from tracejit.ops import dtypes as D


def ir(text: str) -> str:
    return textwrap.dedent(text).strip("\n")


def assert_graph_equal(a: Graph, b: Graph) -> None:
    """Same names, ops, types, params (by type and repr), locs, operands, const bits, outputs."""
    assert a.name == b.name
    assert [(i.name, i.type) for i in a.inputs] == [(i.name, i.type) for i in b.inputs]
    assert len(a.nodes) == len(b.nodes)
    for m, n in zip(a.nodes, b.nodes):
        assert (m.name, m.op, m.type, m.loc) == (n.name, n.op, n.type, n.loc)
        assert [i.name for i in m.inputs] == [i.name for i in n.inputs]
        assert [(k, type(v), repr(v)) for k, v in m.params.items()] == \
            [(k, type(v), repr(v)) for k, v in n.params.items()]
        if m.op == "const":
            assert_same_bits(m.value, n.value)
    assert [o.name for o in a.outputs] == [o.name for o in b.outputs]


def assert_same_bits(x: np.ndarray, y: np.ndarray) -> None:
    """Equal dtype, shape and bits; NaNs only need to be NaN (the text does not keep payloads)."""
    assert x.dtype == y.dtype and x.shape == y.shape
    if x.dtype.kind == "f":
        nan = np.isnan(x)
        assert np.array_equal(nan, np.isnan(y))
        x, y = x[~nan], y[~nan]
    assert x.tobytes() == y.tobytes()


# --- round trips ---

ROUND_TRIP = [
    ir("""
    def f(%x: f32[4096,1024], %w: f32[1024], %b: f32[1024]) -> (f32[]):
      %0: f32[4096,1024] = mul %x, %w                 # model.py:12
      %1: f32[4096,1024] = add %0, %b                 # model.py:12
      %2: f32[4096,1024] = tanh %1                    # model.py:13
      %3: f32[] = sum %2, dims=(0, 1), keepdim=False  # model.py:14
      return %3
    """),
    ir("""
    def consts() -> (f64[6], f32[], f32[0], b8[2], i64[2], f64[2,0], u8[2,2], f64[], b8[]):
      %0: f64[6] = const [1.5,2.,inf,-inf,nan,-0.]
      %1: f32[] = const 0.1                           # a.py:3
      %2: f32[0] = const []
      %3: b8[2] = const [True,False]
      %4: i64[2] = const [-9223372036854775808,9223372036854775807]
      %5: f64[2,0] = const []
      %6: u8[2,2] = const [0,1,254,255]
      %7: f64[] = const nan
      %8: b8[] = const False
      return %0, %1, %2, %3, %4, %5, %6, %7, %8
    """),
    ir("""
    def g(%x: f32[4,5], %i: i64[3]) -> (f32[2,3], f32[3], f32[2,3]):
      %0: f32[2,3] = index %x, key=(('s', 0, 4, 2), ('s', 1, 4, 1))  # g.py:1
      %1: f32[3] = index %x, %i, key=(('t', 0), ('i', 2))
      %2: f32[2,3] = full shape=(2, 3), value=-inf, dtype='float32'
      %3: f32[2,3] = full shape=(2, 3), value=nan, dtype='float32'
      %4: f32[2,3] = full shape=(2, 3), value=-0.0, dtype='float32'
      %5: f32[2,3] = full shape=(2, 3), value=True, dtype='float32'
      %6: i64[] = argmax %x, dim=None, keepdim=False
      return %0, %1, %2
    """),
    ir("""
    def strs(%x: f32[2]) -> (f32[2], f32[2]):
      %0: f32[2] = full shape=(2,), value=np.float32(1.5), dtype="it's # not, a comment"  # b.py:9
      return %x, %0
    """),
    ir("""
    def nothing() -> ():
      return """),
    ir("""
    def <lambda>_backward(%fc1.weight: f32[2], %s0: f32[2]) -> (f32[2]):
      %0: f32[2] = mul %fc1.weight, %s0               # <stdin>:1
      return %0
    """),
]


@pytest.mark.parametrize("text", ROUND_TRIP)
def test_print_parse_round_trip(text):
    g = parse(text)
    assert print_graph(g) == text
    assert_graph_equal(parse(print_graph(g)), g)


def test_round_trip_verifies_and_keeps_params():
    g = parse(ROUND_TRIP[2])
    key = g.nodes[0].params["key"]
    assert key == (("s", 0, 4, 2), ("s", 1, 4, 1))
    assert g.nodes[1].inputs[1] is g.inputs[1]
    assert g.nodes[2].params["value"] == -math.inf
    assert math.isnan(g.nodes[3].params["value"])
    assert math.copysign(1.0, g.nodes[4].params["value"]) == -1.0
    assert g.nodes[5].params["value"] is True
    assert g.nodes[6].params["dim"] is None
    verify(g)
    s = parse(ROUND_TRIP[3]).nodes[0].params
    assert type(s["value"]) is np.float32 and s["dtype"] == "it's # not, a comment"
    assert parse(ROUND_TRIP[3]).nodes[0].loc == "b.py:9"


def test_consts_round_trip_through_the_api():
    g = Graph("c")
    vals = [np.array([1.5, 2.0, np.inf, -np.inf, np.nan, -0.0]),
            np.array(-0.0, np.float32), np.array([], np.float64).reshape(0, 3),
            np.array([[True], [False]]), np.array(-7, np.int8), np.arange(12, dtype=np.int32).reshape(3, 4),
            np.array([1e-45, 3.4028235e38, -1e-30], np.float32), np.array([6.1e-5, 65504], np.float16),
            np.array([5e-324, 1.7976931348623157e308, 0.1])]
    for v in vals:
        g.const(v, loc="t.py:1")
    g.outputs = list(g.nodes)
    h = parse(print_graph(g))
    verify(h)
    assert_graph_equal(h, g)
    assert print_graph(h) == print_graph(g)


@pytest.mark.parametrize("dt", [np.float16, np.float32, np.float64])
def test_float_consts_round_trip_bit_exact(dt):
    # random bit patterns: normals, subnormals, infinities, NaNs, both zeros
    rng = np.random.default_rng(0)
    it = {np.float16: np.uint16, np.float32: np.uint32, np.float64: np.uint64}[dt]
    bits = rng.integers(0, np.iinfo(it).max, size=4000, dtype=it, endpoint=True)
    v = np.concatenate([bits.view(dt), np.array([0.0, -0.0, np.inf, -np.inf, np.nan], dt)])
    g = Graph()
    g.const(v)
    g.outputs = list(g.nodes)
    assert_same_bits(parse(print_graph(g)).nodes[0].value, v)


def test_const_text_ignores_numpy_print_options():
    g = Graph()
    g.const(np.array([1e-30, 1.5, -0.0, np.nan, np.inf], np.float32))
    g.outputs = list(g.nodes)
    want = print_graph(g)
    with np.printoptions(suppress=True, sign="+", nanstr="NaN", infstr="Inf", precision=2,
                         formatter={"float": lambda x: f"{x:.1f}"}):
        assert print_graph(g) == want
    assert_same_bits(parse(want).nodes[0].value, g.nodes[0].value)


def test_parse_accepts_blank_lines_comments_and_indentation():
    g = parse("# a test graph\n\ndef f(%x: f32[2]) -> (f32[2]):\n\n    # why\n"
              "    %0: f32[2] = neg %x\n    return %0\n")
    assert print_graph(g) == ir("""
    def f(%x: f32[2]) -> (f32[2]):
      %0: f32[2] = neg %x
      return %0
    """)
    assert g.add("neg", [g.nodes[0]], {}, g.nodes[0].type).name == "1"  # no name reuse


# --- parse errors: the line number and what is wrong ---

PARSE_ERRORS = [
    ("", 1, "empty text"),
    ("define f():\n  return", 1, "expected the header"),
    ("def f(%x: f33[2]) -> ():\n  return", 1, "unknown dtype 'f33'"),
    ("def f(%x: f32[2) -> ():\n  return", 1, "unbalanced brackets"),
    ("def f(%x f32[2]) -> ():\n  return", 1, "bad input"),
    ("def f(%x: f32[2], %x: f32[2]) -> ():\n  return", 1, "declared twice"),
    ("def f(%x: f32[2]) -> (f32[2]):\n  %0: f32[2] = neg %y\n  return %0", 2,
     "%y is not defined"),
    ("def f(%x: f32[2]) -> (f32[2]):\n  %0: f32[2] = neg %1\n  %1: f32[2] = neg %x\n  return %0",
     2, "%1 is not defined on an earlier line"),
    ("def f(%x: f32[2]) -> (f32[2]):\n  %0: f32[2] = neg %x\n  %0: f32[2] = neg %x\n  return %0",
     3, "%0 is defined twice (first on line 2)"),
    ("def f(%x: f32[2]) -> (f32[2]):\n  %x: f32[2] = neg %x\n  return %x", 2, "defined twice"),
    ("def f(%x: f32[2]) -> (f32[2]):\n  %0: f32[2] = neg %x, dims=foo(1)\n  return %0", 2,
     "is not a literal"),
    ("def f(%x: f32[2]) -> (f32[2]):\n  %0: f32[2] = neg %x, dims=(1,\n  return %0", 2,
     "unbalanced"),
    ("def f(%x: f32[2]) -> (f32[2]):\n  %0: f32[2] = add dims=1, %x\n  return %0", 2,
     "comes after params"),
    ("def f(%x: f32[2]) -> (f32[2]):\n  %0: f32[2] = neg %x, d=1, d=2\n  return %0", 2,
     "given twice"),
    ("def f(%x: f32[2]) -> (f32[2]):\n  %0: f32[2] = neg %x,, %x\n  return %0", 2,
     "empty item"),
    ("def f() -> (f32[3]):\n  %0: f32[3] = const [1.,2.]\n  return %0", 2,
     "2 values but its type f32[3] has 3 elements"),
    ("def f() -> (b8[2]):\n  %0: b8[2] = const [True,1]\n  return %0", 2, "not True or False"),
    ("def f() -> (i64[1]):\n  %0: i64[1] = const [1.5]\n  return %0", 2, "bad const data"),
    ("def f() -> (u8[1]):\n  %0: u8[1] = const [256]\n  return %0", 2, "bad const data"),
    ("def f() -> (f32[]):\n  %0: f32[] = const [1.]\n  return %0", 2, "without brackets"),
    ("def f() -> (f32[1]):\n  %0: f32[1] = const 1.\n  return %0", 2, "bracketed list"),
    ("def f() -> (f32[1]):\n  %0: f32[1] = const [1.\n  return %0", 2, "closing ']'"),
    ("def f() -> (f32[1]):\n  %0: f32[1] = const\n  return %0", 2, "const without data"),
    ("def f(%x: f32[2]) -> (f32[2]):\n  %0: f32[2] = neg %x", 2, "ends without a 'return"),
    ("def f(%x: f32[2]) -> (f32[2]):\n  return %x\n  %0: f32[2] = neg %x", 3,
     "after the 'return'"),
    ("def f(%x: f32[2]) -> (f32[3]):\n  return %x", 1, "declares outputs (f32[3])"),
    ("def f(%x: f32[2]) -> (f32[2]):\n  %0 f32[2] = neg %x\n  return %0", 2, "expected '%name"),
    ("def f(%x: f32[2]) -> (f32[2]):\n  %0: f32[2] = input\n  return %0", 2, "not an op"),
    ("def f(%x: f32[2]) -> (f32[2]):\n  %0: f32[2] = neg x\n  return %0", 2, "bad argument"),
    ("def f(%x: f32[2]) -> (f32[2]):\n  %0: f32[2,a] = neg %x\n  return %0", 2, "bad type"),
]


@pytest.mark.parametrize("text,line,what", PARSE_ERRORS)
def test_parse_errors_name_line_and_problem(text, line, what):
    with pytest.raises(ValueError) as e:
        parse(text)
    msg = str(e.value)
    assert what in msg
    if text:
        assert f"line {line}:" in msg
        assert text.split("\n")[line - 1].strip() in msg


# --- the verifier: one case per rule, each message shows the offending line ---

GOOD = ir("""
def f(%x: f32[2,3], %y: f32[3], %c: b8[2,3], %i: i64[2,3]) -> (f32[2,3]):
  %0: f32[2,3] = add %x, %y                       # t.py:1
  %1: f32[2,3] = where %c, %0, %x                 # t.py:2
  %2: f32[3] = sum %1, dims=(0,), keepdim=False   # t.py:3
  %3: f32[2,3] = mul %1, %2                       # t.py:4
  %4: f32[] = const 2.                            # t.py:5
  %5: f32[2,3] = div %3, %4                       # t.py:6
  %6: f32[2,3] = cast %i, dtype='float32'         # t.py:7
  %7: b8[2,3] = lt %5, %6                         # t.py:8
  %8: f32[2,3] = where %7, %5, %6                 # t.py:9
  return %8
""")


def test_verify_accepts_a_good_graph():
    verify(parse(GOOD))


def _bad(line: str, replacement: str) -> Graph:
    """GOOD with the node on `# t.py:line` replaced."""
    out = []
    for text in GOOD.split("\n"):
        if text.endswith(f"# t.py:{line}"):
            text = replacement.ljust(48) + f"  # t.py:{line}" if replacement else text
        out.append(text)
    return parse("\n".join(out))


VERIFY_TEXT_ERRORS = [
    (1, "  %0: f32[3] = add %x, %y", "type f32[3] differs from the type the op table infers"),
    (1, "  %0: f32[2,3] = add %x, %c", "dtypes ['bool', 'float32']"),
    (1, "  %0: f32[2,3] = frobnicate %x, %y", "unknown op 'frobnicate'"),
    (1, "  %0: f32[2,3] = neg %x, %y", "neg takes 1 operand(s), got 2"),
    (2, "  %1: f32[2,3] = where %x, %0, %x", "condition operand %x of where must be bool"),
    (3, "  %2: f32[3] = sum %1, dims=(0,)", "sum takes params (dims, keepdim), got (dims)"),
    (3, "  %2: f32[3] = sum %1, dims=(0,), keepdim=False, extra=1", "got (dims, keepdim, extra)"),
    (3, "  %2: f32[3] = sum %1, dims=(5,), keepdim=False", "type f32[3] differs"),
    (4, "  %3: f32[2,3] = mul %1, %x, %y", "mul takes 2 operand(s), got 3"),
    # bool add is logical or: the dtype rule accepts it, but then the type is wrong
    (6, "  %5: f32[2,3] = add %c, %c", "differs from the type the op table infers, b8[2,3]"),
    (7, "  %6: f32[2,3] = exp %i", "exp computes in floating point; its operands are int64"),
    (8, "  %7: b8[2,3] = logical_and %5, %6", "logical_and takes bool operands"),
    (8, "  %7: b8[2,3] = sub %c, %c", "sub is not defined on bool operands"),
    (8, "  %7: b8[2,3] = lt %5, %y, %x", "lt takes 2 operand(s)"),
    (9, "  %8: f32[2,3] = add %5, %y, axis=1", "add takes params (), got (axis)"),
    (9, "  %8: f32[2,3] = add %5, %7", "dtypes ['bool', 'float32']"),
    (9, "  %8: f32[2,3] = matmul %5, %6",
     "type rule for matmul fails: RuntimeError: mat1 and mat2 shapes cannot be multiplied"),
    (9, "  %8: f32[2,3] = add %5, %2, %2", "add takes 2"),
]


@pytest.mark.parametrize("line,replacement,what", VERIFY_TEXT_ERRORS)
def test_verify_rejects(line, replacement, what):
    g = _bad(line, replacement)
    with pytest.raises(ValueError) as e:
        verify(g)
    msg = str(e.value)
    assert what in msg
    assert f"# t.py:{line}" in msg and replacement.strip() in msg  # shows the node's line


def _expect(g: Graph, what: str) -> str:
    with pytest.raises(ValueError) as e:
        verify(g)
    assert what in str(e.value)
    return str(e.value)


def test_verify_use_before_definition():
    g = parse(GOOD)
    g.nodes[0], g.nodes[1] = g.nodes[1], g.nodes[0]
    msg = _expect(g, "operand %0 is used before it is defined")
    assert "where %c, %0, %x" in msg


def test_verify_value_from_another_graph():
    g, other = parse(GOOD), parse(GOOD)
    g.nodes[2].inputs[0] = other.nodes[1]
    _expect(g, "operand %1 is not defined in the graph")
    g = parse(GOOD)
    g.outputs = [other.nodes[8]]
    _expect(g, "output %8 is not defined in the graph")


def test_verify_duplicate_names_and_nodes():
    g = parse(GOOD)
    g.nodes[3].name = "1"
    _expect(g, "%1 is defined twice")
    g = parse(GOOD)
    g.nodes[4].name = "x"
    _expect(g, "%x is defined twice")
    g = parse(GOOD)
    g.nodes.append(g.nodes[0])
    _expect(g, "appears twice")


def test_verify_const_value_must_match_type():
    g = parse(GOOD)
    g.nodes[4].value = np.array([2.0], np.float32)
    _expect(g, "const value has shape (1,) and dtype float32, but its type is f32[]")
    g.nodes[4].value = np.array(2.0)
    _expect(g, "dtype float64, but its type is f32[]")
    g.nodes[4].value = 2.0
    _expect(g, "must be a numpy array")
    g = parse(GOOD)
    g.nodes[4].inputs = [g.inputs[0]]
    _expect(g, "a const takes no operands and no params")


def test_verify_structural_ops():
    g = parse(GOOD)
    g.nodes.insert(0, Node("input", [], {}, TensorType((2,), D.float32), name="z"))
    _expect(g, "'input' nodes belong in the graph's inputs")
    g = parse(GOOD)
    g.inputs[0].op = "neg"
    _expect(g, "graph input %x must be an 'input' node")


def test_verify_params_must_print_and_hash():
    g = parse(GOOD)
    g.nodes[2].params["dims"] = [0]
    _expect(g, "param dims=[0] is not a number, string, None, bool or tuple of them")


def test_verify_full_and_index():
    verify(parse(ir("""
    def f(%x: f32[4,5], %i: i64[3]) -> (f32[3], f32[2,3], f64[2]):
      %0: f32[3] = index %x, %i, key=(('t', 0), ('i', 2))
      %1: f32[2,3] = index %x, key=(('s', 0, 4, 2), ('s', 1, 4, 1))
      %2: f64[2] = full shape=(2,), value=1.5, dtype='float64'
      return %0, %1, %2
    """)))
    with pytest.raises(ValueError, match="differs from the type the op table infers, f64"):
        verify(parse(ir("""
        def f() -> (f32[2]):
          %0: f32[2] = full shape=(2,), value=1.5, dtype='float64'
          return %0
        """)))
