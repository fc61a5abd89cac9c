"""The IR passes, stated as text: a "before" graph, the pass, the "expected" graph, compared as
printed text (passes keep the names of the nodes they keep, so the expected text shows which
nodes went; `run_passes` renumbers at the end). The verifier runs before and after every pass.
A hypothesis test builds random elementwise/movement graphs with the op table, round-trips them
through print/parse and checks that every pipeline keeps the results bit for bit (NaN, inf, -0.0).
"""
from __future__ import annotations

import functools
import itertools
import re
import textwrap

import pytest

from tracejit.ir.graph import Graph, print_graph
from tracejit.ir.parser import parse
from tracejit.ir.passes import PASSES, cse, dce, fold, run_passes, simplify
from tracejit.ir.verify import verify


def ir(text: str) -> str:
    return textwrap.dedent(text).strip("\n")


def check(pass_fn, before: str, expected: str) -> Graph:
    g = parse(ir(before))
    verify(g)
    g = pass_fn(g)
    verify(g)
    assert print_graph(g) == ir(expected)
    return g


def unchanged(pass_fn, text: str) -> None:
    check(pass_fn, text, text)


@pytest.mark.parametrize("name", sorted(PASSES))
def test_docstring_example(name):
    """Each pass's docstring shows a before and an after graph: they must be right."""
    blocks = re.findall(r"\n((?:        .*\n|\n)+)", PASSES[name].__doc__)
    before, after = [ir(b) for b in blocks if "def " in b]
    check(PASSES[name], before, after)


# --- dce ---

def test_dce_keeps_inputs_and_everything_outputs_need():
    check(dce, """
    def f(%x: f32[3], %unused: f32[3]) -> (f32[3], f32[3]):
      %0: f32[3] = exp %x                             # a.py:1
      %1: f32[3] = neg %0
      %2: f32[3] = tanh %1
      %3: f32[3] = add %0, %0
      %4: f32[] = const 1.
      return %3, %x
    """, """
    def f(%x: f32[3], %unused: f32[3]) -> (f32[3], f32[3]):
      %0: f32[3] = exp %x                             # a.py:1
      %3: f32[3] = add %0, %0
      return %3, %x
    """)


def test_dce_nothing_dead():
    unchanged(dce, """
    def f(%x: f32[3]) -> (f32[3], f32[3]):
      %0: f32[3] = exp %x
      %1: f32[3] = neg %0
      return %1, %0
    """)


# --- cse ---

def test_cse_merges_chains_and_redirects_outputs():
    check(cse, """
    def f(%x: f32[2,3]) -> (f32[3], f32[3]):
      %0: f32[2,3] = exp %x                           # a.py:1
      %1: f32[2,3] = exp %x                           # a.py:2
      %2: f32[3] = sum %0, dims=(0,), keepdim=False
      %3: f32[3] = sum %1, dims=(0,), keepdim=False
      return %2, %3
    """, """
    def f(%x: f32[2,3]) -> (f32[3], f32[3]):
      %0: f32[2,3] = exp %x                           # a.py:1
      %2: f32[3] = sum %0, dims=(0,), keepdim=False
      return %2, %2
    """)


def test_cse_keeps_different_params_operand_order_and_signed_zeros():
    unchanged(cse, """
    def f(%x: f32[2,3], %y: f32[2,3]) -> (f32[3], f32[2], f32[2,3], f32[2,3], f32[2,3], f32[2,3]):
      %0: f32[3] = sum %x, dims=(0,), keepdim=False
      %1: f32[2] = sum %x, dims=(1,), keepdim=False
      %2: f32[2,3] = sub %x, %y
      %3: f32[2,3] = sub %y, %x
      %4: f32[2,3] = full shape=(2, 3), value=0.0, dtype='float32'
      %5: f32[2,3] = full shape=(2, 3), value=-0.0, dtype='float32'
      %6: f32[2,3] = full shape=(2, 3), value=1, dtype='float32'
      %7: f32[2,3] = full shape=(2, 3), value=True, dtype='float32'
      return %0, %1, %2, %3, %4, %5
    """)


def test_cse_consts_by_type_and_bytes():
    check(cse, """
    def f() -> (f32[2], f32[2], f32[2], f64[2], f32[2], f32[], f32[2]):
      %0: f32[2] = const [1.,nan]
      %1: f32[2] = const [1.,nan]
      %2: f32[2] = const [0.,0.]
      %3: f64[2] = const [0.,0.]
      %4: f32[2] = const [-0.,0.]
      %5: f32[] = const 0.
      %6: f32[2] = const [0.,0.]
      return %0, %1, %2, %3, %4, %5, %6
    """, """
    def f() -> (f32[2], f32[2], f32[2], f64[2], f32[2], f32[], f32[2]):
      %0: f32[2] = const [1.,nan]
      %2: f32[2] = const [0.,0.]
      %3: f64[2] = const [0.,0.]
      %4: f32[2] = const [-0.,0.]
      %5: f32[] = const 0.
      return %0, %0, %2, %3, %4, %5, %2
    """)


# --- fold ---

def test_fold_chains_and_keeps_locs():
    check(fold, """
    def f(%x: f32[3]) -> (f32[3]):
      %0: f32[3] = const [1.,-2.,0.]                  # a.py:1
      %1: f32[3] = neg %0                             # a.py:2
      %2: f32[3] = div %1, %0                         # a.py:3
      %3: f32[] = sum %2, dims=(0,), keepdim=False    # a.py:4
      %4: f32[3] = mul %x, %3                         # a.py:5
      return %4
    """, """
    def f(%x: f32[3]) -> (f32[3]):
      %0: f32[3] = const [1.,-2.,0.]                  # a.py:1
      %1: f32[3] = const [-1.,2.,-0.]                 # a.py:2
      %2: f32[3] = const [-1.,-1.,nan]                # a.py:3
      %3: f32[] = const nan                           # a.py:4
      %4: f32[3] = mul %x, %3                         # a.py:5
      return %4
    """)


def test_fold_size_limit():
    # results over max_numel elements stay (a full, an expand); a bigger const reduced to a small
    # result folds; the sum of a big full does not (the full is no const)
    check(functools.partial(fold, max_numel=4), """
    def f() -> (f32[5], f32[2,2], f32[5], f32[], f32[2,2], f32[]):
      %0: f32[5] = full shape=(5,), value=1.0, dtype='float32'
      %1: f32[2,2] = full shape=(2, 2), value=-inf, dtype='float32'
      %2: f32[] = const 2.
      %3: f32[5] = expand %2, shape=(5,)
      %4: f32[] = sum %0, dims=(0,), keepdim=False
      %5: f32[6] = const [1.,2.,3.,4.,5.,6.]
      %6: f32[4] = index %5, key=(('s', 1, 5, 1),)
      %7: f32[2,2] = reshape %6, shape=(2, 2)
      %8: f32[] = sum %5, dims=(0,), keepdim=False
      return %0, %1, %3, %4, %7, %8
    """, """
    def f() -> (f32[5], f32[2,2], f32[5], f32[], f32[2,2], f32[]):
      %0: f32[5] = full shape=(5,), value=1.0, dtype='float32'
      %1: f32[2,2] = const [-inf,-inf,-inf,-inf]
      %2: f32[] = const 2.
      %3: f32[5] = expand %2, shape=(5,)
      %4: f32[] = sum %0, dims=(0,), keepdim=False
      %5: f32[6] = const [1.,2.,3.,4.,5.,6.]
      %6: f32[4] = const [2.,3.,4.,5.]
      %7: f32[2,2] = const [2.,3.,4.,5.]
      %8: f32[] = const 21.
      return %0, %1, %3, %4, %7, %8
    """)
    g = parse(ir("""
    def f() -> (f32[64], f32[65]):
      %0: f32[64] = full shape=(64,), value=1.0, dtype='float32'
      %1: f32[65] = full shape=(65,), value=1.0, dtype='float32'
      return %0, %1
    """))
    assert [n.op for n in fold(g).nodes] == ["const", "full"]  # the default limit is 64


def test_fold_leaves_what_eager_would_reject():
    # integer division by zero and amax of an empty tensor raise at run time: not folded
    unchanged(fold, """
    def f() -> (i64[2], i64[2], f32[]):
      %0: i64[2] = const [7,8]
      %1: i64[2] = const [2,0]
      %2: i64[2] = floordiv %0, %1
      %3: i64[2] = remainder %0, %1
      %4: f32[0] = const []
      %5: f32[] = amax %4, dims=(0,), keepdim=False
      return %2, %3, %5
    """)


def test_fold_int_float_bool_and_index_with_tensor_key():
    check(fold, """
    def f() -> (i64[2], f32[2], b8[2], u8[2], f32[2]):
      %0: i64[2] = const [7,-8]
      %1: i64[2] = const [2,3]
      %2: i64[2] = floordiv %0, %1
      %3: f32[2] = cast %2, dtype='float32'
      %4: f32[] = const 0.
      %5: f32[2] = div %3, %4
      %6: b8[2] = gt %5, %4
      %7: u8[2] = const [250,10]
      %8: u8[2] = add %7, %7
      %9: f32[3] = const [0.5,1.5,2.5]
      %10: i64[2] = const [2,0]
      %11: f32[2] = index %9, %10, key=(('t', 0),)
      return %2, %5, %6, %8, %11
    """, """
    def f() -> (i64[2], f32[2], b8[2], u8[2], f32[2]):
      %0: i64[2] = const [7,-8]
      %1: i64[2] = const [2,3]
      %2: i64[2] = const [3,-3]
      %3: f32[2] = const [3.,-3.]
      %4: f32[] = const 0.
      %5: f32[2] = const [inf,-inf]
      %6: b8[2] = const [True,False]
      %7: u8[2] = const [250,10]
      %8: u8[2] = const [244,20]
      %9: f32[3] = const [0.5,1.5,2.5]
      %10: i64[2] = const [2,0]
      %11: f32[2] = const [2.5,0.5]
      return %2, %5, %6, %8, %11
    """)


# --- simplify ---

def test_simplify_identities_with_consts_and_fulls():
    check(simplify, """
    def f(%x: f32[2,3], %i: i64[2,3]) -> (f32[2,3], f32[2,3], f32[2,3], f32[2,3], i64[2,3], i64[2,3]):
      %0: f32[] = const 1.
      %1: f32[2,3] = mul %0, %x                       # a.py:1
      %2: f32[2,3] = div %1, %0
      %3: f32[2,3] = const [-0.,-0.,-0.,-0.,-0.,-0.]
      %4: f32[2,3] = add %2, %3
      %5: f32[3] = full shape=(3,), value=0.0, dtype='float32'
      %6: f32[2,3] = sub %4, %5
      %7: f32[2,3] = full shape=(2, 3), value=-0.0, dtype='float32'
      %8: f32[2,3] = add %7, %6
      %9: i64[] = const 0
      %10: i64[2,3] = add %i, %9
      %11: i64[2,3] = sub %10, %9
      %12: i64[] = const 1
      %13: i64[2,3] = mul %11, %12
      return %1, %4, %6, %8, %13, %11
    """, """
    def f(%x: f32[2,3], %i: i64[2,3]) -> (f32[2,3], f32[2,3], f32[2,3], f32[2,3], i64[2,3], i64[2,3]):
      %0: f32[] = const 1.
      %3: f32[2,3] = const [-0.,-0.,-0.,-0.,-0.,-0.]
      %5: f32[3] = full shape=(3,), value=0.0, dtype='float32'
      %7: f32[2,3] = full shape=(2, 3), value=-0.0, dtype='float32'
      %9: i64[] = const 0
      %12: i64[] = const 1
      return %x, %x, %x, %x, %i, %i
    """)


def test_simplify_never_changes_signed_zeros_or_broadcasting():
    # x + 0.0 is +0.0 for x = -0.0; x - (-0.0) likewise; 0 - x and 1 / x are not x; a const
    # that broadcasts x to a bigger shape, or holds mixed values or zero signs, changes the value
    unchanged(simplify, """
    def f(%x: f32[3], %b: f32[2,3]) -> (f32[3], f32[3], f32[3], f32[3], f32[2,3], f32[3], f32[3], f32[3]):
      %0: f32[] = const 0.
      %1: f32[3] = add %x, %0
      %2: f32[] = const -0.
      %3: f32[3] = sub %x, %2
      %4: f32[3] = sub %0, %x
      %5: f32[] = const 1.
      %6: f32[3] = div %5, %x
      %7: f32[2,3] = full shape=(2, 3), value=1.0, dtype='float32'
      %8: f32[2,3] = mul %x, %7
      %9: f32[3] = const [1.,2.,1.]
      %10: f32[3] = mul %x, %9
      %11: f32[3] = const [-0.,0.,-0.]
      %12: f32[3] = add %x, %11
      %13: f32[3] = full shape=(3,), value=0.0, dtype='float32'
      %14: f32[3] = add %13, %x
      return %1, %3, %4, %6, %8, %10, %12, %14
    """)


def test_simplify_bool_and_nan_consts():
    check(simplify, """
    def f(%c: b8[3], %x: f32[3]) -> (b8[3], b8[3], f32[3]):
      %0: b8[] = const True
      %1: b8[3] = mul %c, %0
      %2: b8[] = const False
      %3: b8[3] = add %2, %c
      %4: f32[3] = full shape=(3,), value=nan, dtype='float32'
      %5: f32[3] = mul %x, %4
      return %1, %3, %5
    """, """
    def f(%c: b8[3], %x: f32[3]) -> (b8[3], b8[3], f32[3]):
      %0: b8[] = const True
      %2: b8[] = const False
      %4: f32[3] = full shape=(3,), value=nan, dtype='float32'
      %5: f32[3] = mul %x, %4
      return %c, %c, %5
    """)


def test_simplify_movement():
    check(simplify, """
    def f(%x: f32[2,3,4], %s: f32[]) -> (f32[2,3,4], f32[24], f32[4,2,3], f32[2,3,4], f32[2,3,4], f32[5,3,4]):
      %0: f32[6,4] = reshape %x, shape=(6, 4)         # a.py:1
      %1: f32[2,12] = reshape %0, shape=(2, 12)       # a.py:2
      %2: f32[2,3,4] = reshape %1, shape=(2, 3, 4)    # a.py:3
      %3: f32[24] = reshape %1, shape=(24,)           # a.py:4
      %4: f32[2,3,4] = reshape %x, shape=(2, 3, 4)
      %5: f32[3,4,2] = permute %x, dims=(1, 2, 0)     # a.py:5
      %6: f32[4,2,3] = permute %5, dims=(1, 2, 0)     # a.py:6
      %7: f32[2,3,4] = permute %6, dims=(1, 2, 0)     # a.py:7
      %8: f32[2,3,4] = permute %7, dims=(0, 1, 2)
      %9: f32[2,3,4] = expand %8, shape=(2, 3, 4)
      %10: f32[3,4] = expand %s, shape=(3, 4)
      %11: f32[5,3,4] = expand %10, shape=(5, 3, 4)   # a.py:8
      return %2, %3, %6, %9, %4, %11
    """, """
    def f(%x: f32[2,3,4], %s: f32[]) -> (f32[2,3,4], f32[24], f32[4,2,3], f32[2,3,4], f32[2,3,4], f32[5,3,4]):
      %0: f32[6,4] = reshape %x, shape=(6, 4)         # a.py:1
      %1: f32[2,12] = reshape %x, shape=(2, 12)       # a.py:2
      %3: f32[24] = reshape %x, shape=(24,)           # a.py:4
      %5: f32[3,4,2] = permute %x, dims=(1, 2, 0)     # a.py:5
      %6: f32[4,2,3] = permute %x, dims=(2, 0, 1)     # a.py:6
      %10: f32[3,4] = expand %s, shape=(3, 4)
      %11: f32[5,3,4] = expand %s, shape=(5, 3, 4)    # a.py:8
      return %x, %3, %6, %x, %x, %11
    """)


def test_simplify_drops_detach_after_differentiation():
    """The passes run on differentiated graphs, where detach is the identity: one value, so a
    kernel stores it once (the forward of cross_entropy returned amax and its detach)."""
    check(simplify, """
    def f(%x: f32[2,3]) -> (f32[2,1], f32[2,3]):
      %0: f32[2,1] = amax %x, dims=(1,), keepdim=True
      %1: f32[2,1] = detach %0
      %2: f32[2,3] = sub %x, %1
      return %0, %2
    """, """
    def f(%x: f32[2,3]) -> (f32[2,1], f32[2,3]):
      %0: f32[2,1] = amax %x, dims=(1,), keepdim=True
      %2: f32[2,3] = sub %x, %0
      return %0, %2
    """)


def test_simplify_neg_and_casts():
    # i16 -> f32 -> i8 and f32 -> f64 -> i32 stay: a float -> int cast out of range differs from
    # the int -> int wrap (or is undefined); dead operands (%2, %7, %13) are left for dce, and
    # the duplicate casts (%4, %11, %16) for cse
    check(simplify, """
    def f(%x: f32[2], %i: i32[2], %h: i16[2], %b: b8[2]) -> (f32[2], f32[2], f32[2], f32[2], i8[2], i32[2], b8[2], f64[2], f16[2]):
      %0: f32[2] = neg %x
      %1: f32[2] = neg %0
      %2: f32[2] = neg %1
      %3: f32[2] = neg %2
      %4: f64[2] = cast %x, dtype='float64'
      %5: f32[2] = cast %4, dtype='float32'
      %6: f32[2] = cast %x, dtype='float32'
      %7: i64[2] = cast %i, dtype='int64'
      %8: f32[2] = cast %7, dtype='float32'
      %9: f32[2] = cast %h, dtype='float32'
      %10: i8[2] = cast %9, dtype='int8'
      %11: f64[2] = cast %x, dtype='float64'
      %12: i32[2] = cast %11, dtype='int32'
      %13: f32[2] = cast %b, dtype='float32'
      %14: b8[2] = cast %13, dtype='bool'
      %15: f32[2] = cast %4, dtype='float32'
      %16: f64[2] = cast %15, dtype='float64'
      %17: f16[2] = cast %4, dtype='float16'
      return %3, %5, %6, %8, %10, %12, %14, %16, %17
    """, """
    def f(%x: f32[2], %i: i32[2], %h: i16[2], %b: b8[2]) -> (f32[2], f32[2], f32[2], f32[2], i8[2], i32[2], b8[2], f64[2], f16[2]):
      %0: f32[2] = neg %x
      %2: f32[2] = neg %x
      %4: f64[2] = cast %x, dtype='float64'
      %7: i64[2] = cast %i, dtype='int64'
      %8: f32[2] = cast %i, dtype='float32'
      %9: f32[2] = cast %h, dtype='float32'
      %10: i8[2] = cast %9, dtype='int8'
      %11: f64[2] = cast %x, dtype='float64'
      %12: i32[2] = cast %11, dtype='int32'
      %13: f32[2] = cast %b, dtype='float32'
      %16: f64[2] = cast %x, dtype='float64'
      %17: f16[2] = cast %x, dtype='float16'
      return %x, %x, %x, %8, %10, %12, %b, %16, %17
    """)


# --- run_passes ---

PIPELINE_BEFORE = """
def f(%x: f32[2,3]) -> (f32[2,3], f32[2,3]):
  %0: f32[] = const 2.                            # m.py:1
  %1: f32[] = const 0.5                           # m.py:1
  %2: f32[] = mul %0, %1                          # m.py:2
  %3: f32[2,3] = mul %x, %2                       # m.py:3
  %4: f32[2,3] = mul %x, %2                       # m.py:4
  %5: f32[2,3] = exp %4                           # m.py:5
  %6: f32[2,3] = exp %3                           # m.py:6
  %7: f32[2,3] = add %5, %6                       # m.py:7
  %8: f32[2,3] = tanh %7                          # m.py:8
  return %7, %5
"""


def test_run_passes_default_pipeline_renumbers_and_dumps():
    seen = []
    g = parse(ir(PIPELINE_BEFORE))
    out = run_passes(g, verify_each=True, dump=lambda *a: seen.append(a))
    # fold makes the factor 1.0 only after simplify ran; the second simplify is the user's
    assert print_graph(out) == ir("""
    def f(%x: f32[2,3]) -> (f32[2,3], f32[2,3]):
      %0: f32[] = const 1.                            # m.py:2
      %1: f32[2,3] = mul %x, %0                       # m.py:3
      %2: f32[2,3] = exp %1                           # m.py:5
      %3: f32[2,3] = add %2, %2                       # m.py:7
      return %3, %2
    """)
    assert [s[0] for s in seen] == ["transpose", "simplify", "fold", "cse", "dce"]
    assert seen[0][1] == ir(PIPELINE_BEFORE)
    for (_, _, after), (_, before, _) in itertools.pairwise(seen):
        assert after == before
    again = run_passes(out, passes=("simplify", "dce"), verify_each=True)
    assert print_graph(again) == ir("""
    def f(%x: f32[2,3]) -> (f32[2,3], f32[2,3]):
      %0: f32[2,3] = exp %x                           # m.py:5
      %1: f32[2,3] = add %0, %0                       # m.py:7
      return %1, %0
    """)


def test_run_passes_names_a_pass_that_breaks_the_graph():
    def bad_pass(g):
        g.nodes[0].type = g.nodes[-1].type
        return g
    g = parse(ir(PIPELINE_BEFORE))
    with pytest.raises(ValueError, match="invalid after pass 'bad_pass': verify: const value"):
        run_passes(g, passes=("dce", bad_pass), verify_each=True)
    with pytest.raises(ValueError, match="unknown pass 'inline'; available: simplify, fold"):
        run_passes(g, passes=("inline",))
    g = run_passes(parse(ir(PIPELINE_BEFORE)), passes=(), renumber=False)
    assert print_graph(g) == ir(PIPELINE_BEFORE)


def test_transpose_moves_onto_matmul_operands():
    from tracejit.ir.passes import run_passes
    from tracejit.ir.passes.transpose import transpose
    before = """def f(%a: f32[256,512], %g: f32[256,10]) -> (f32[10,512]):
  %0: f32[512,256] = permute %a, dims=(1, 0)
  %1: f32[512,10] = matmul %0, %g
  %2: f32[10,512] = permute %1, dims=(1, 0)
  return %2"""
    g = transpose(parse(before))
    verify(g)
    ops = [n.op for n in g.nodes]
    assert ops.count("matmul") == 1 and g.outputs[0].op == "matmul"
    g = run_passes(parse(before))
    verify(g)
    text = print_graph(g)
    # (a^T g)^T = g^T a: one permute of g, the a^T a^T pair cancels
    assert text.count("permute") == 1 and "matmul" in text
    import numpy as np
    a = np.random.default_rng(0).standard_normal((256, 512)).astype(np.float32)
    gg = np.random.default_rng(1).standard_normal((256, 10)).astype(np.float32)
    from tracejit.codegen.interpret import Interpreted
    (out,) = Interpreted(g)([a, gg])
    np.testing.assert_allclose(out, (a.T @ gg).T, rtol=1e-5, atol=1e-5)
