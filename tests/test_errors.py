"""The errors a user gets: PyTorch's exception type and a message that names the problem (the
shapes, the dim, the dtype). Never a crash from inside numpy, never a silent wrong answer. When
torch is installed, the same snippet must raise the same exception type in torch."""
from __future__ import annotations

import pytest

import tracejit as tj

# (snippet, exception type, regex the message must match); `tj` is tracejit or torch
ERRORS = [
    # shape mismatches name both shapes
    ("tj.ones(2, 3) + tj.ones(4)", RuntimeError, r"\(3\).*\(4\).*dimension 1"),
    ("tj.ones(2, 3) * tj.ones(3, 2)", RuntimeError, r"size of tensor a \(3\).*tensor b \(2\)"),
    ("tj.where(tj.ones(2) > 0, tj.ones(3), 0.0)", RuntimeError, r"\(2\).*\(3\)"),
    ("tj.ones(2, 3) @ tj.ones(4, 5)", RuntimeError, r"2x3 and 4x5"),
    ("tj.ones(3) @ tj.ones(4)", RuntimeError, r"\[3\].*\[4\]"),
    ("tj.ones(()) @ tj.ones(3)", RuntimeError, r"at least 1D"),
    ("tj.ones(2, 3).mm(tj.ones(3))", RuntimeError, r"2D|matrix"),
    ("tj.ones(2, 3).bmm(tj.ones(2, 3, 3))", RuntimeError, r"3D"),
    ("tj.ones(2, 3).view(4, 2)", RuntimeError, r"\[4, 2\].*size 6"),
    ("tj.ones(2, 3).reshape(4, -1)", RuntimeError, r"\[4, -1\].*size 6"),
    ("tj.ones(2, 3).T.view(6)", RuntimeError, r"view size is not compatible"),
    ("tj.ones(2, 3).expand(4, 3)", RuntimeError, r"expanded size.*\(4\).*existing size \(2\)"),
    ("tj.cat([tj.ones(2, 3), tj.ones(2, 1)])", RuntimeError, r"Sizes of tensors must match"),
    ("tj.cat([tj.ones(2), tj.ones(2, 1)])", RuntimeError, r"same number of dimensions"),
    ("tj.stack([tj.ones(2), tj.ones(3)])", RuntimeError, r"\[2\].*\[3\]"),
    ("tj.zeros(2).unflatten(0, (3, -1))", RuntimeError, r"3"),
    ("tj.ones(2, 3).repeat(2)", RuntimeError, r"repeat"),
    ("tj.ones(2, 3).permute(0)", RuntimeError, r"number of dimensions"),
    ("tj.ones(2, 3).split([1, 2])", RuntimeError, r"sum exactly to 2"),
    ("tj.ones(2, 3).chunk(0)", RuntimeError, r"greater than 0"),
    ("tj.ones(2).narrow(0, 1, 2)", RuntimeError, r"exceeds dimension size"),
    ("x = tj.ones(3); x[0:2] = tj.ones(3)", RuntimeError, r"shape|broadcast"),
    ("x = tj.ones(3); x.add_(tj.ones(2, 3))", RuntimeError, r"\[3\].*\[2, 3\]"),
    ("x = tj.ones(3); x.copy_(tj.ones(2))", RuntimeError, r"."),
    # backward
    ("x = tj.ones(2, requires_grad=True); (x * 2).backward()", RuntimeError,
     r"scalar outputs"),
    ("x = tj.ones(2, requires_grad=True); (x * 2).backward(tj.ones(3))", RuntimeError,
     r"shape"),
    ("x = tj.ones(2, requires_grad=True); y = x.exp().sum(); y.backward(); y.backward()",
     RuntimeError, r"second time.*retain_graph=True"),
    ("tj.ones(2).sum().backward()", RuntimeError, r"does not require grad"),
    (("x = tj.ones(2, requires_grad=True); tj.autograd.grad((x * 2).sum(), "
      "[x, tj.ones(1, requires_grad=True)])"), RuntimeError, r"allow_unused"),
    ("x = tj.ones(2, requires_grad=True); x.add_(1)", RuntimeError,
     r"leaf Variable that requires grad"),
    ("x = tj.ones(2, requires_grad=True); y = x.sigmoid(); y.mul_(2); y.sum().backward()",
     RuntimeError, r"modified by an inplace operation"),
    # values
    ("tj.ones(2).item()", RuntimeError, r"2 elements"),
    ("bool(tj.ones(2))", RuntimeError, r"ambiguous"),
    ("tj.ones(2, requires_grad=True).numpy()", RuntimeError, r"detach\(\)"),
    ("len(tj.tensor(1.0))", TypeError, r"0-d"),
    # indexing
    ("tj.ones(2)[2]", IndexError, r"index 2 is out of bounds for dimension 0 with size 2"),
    ("tj.ones(2, 3)[:, -4]", IndexError, r"index -4 .*dimension 1 with size 3"),
    ("tj.ones(2)[tj.tensor([0, 2])]", IndexError, r"index 2 is out of bounds"),
    ("tj.ones(2, 3)[0, 0, 0]", IndexError, r"too many indices"),
    ("tj.ones(2)[1.5]", IndexError, r"only integers, slices"),
    ("tj.ones(2)[tj.tensor([0.0])]", IndexError, r"long, int.*bool"),
    ("tj.ones(2)[::-1]", ValueError, r"step must be greater than zero"),
    ("tj.ones(2, 3)[:, ::-2]", ValueError, r"step must be greater than zero"),
    ("x = tj.ones(3); x[::-1] = 0.0", ValueError, r"step must be greater than zero"),
    ("tj.ones(2, 3).sum(2)", IndexError, r"Dimension out of range.*got 2"),
    ("tj.ones(2, 3).max(dim=-3)", IndexError, r"Dimension out of range"),
    ("tj.ones(2, 3).transpose(0, 2)", IndexError, r"Dimension out of range"),
    ("tj.ones(2, 3).unsqueeze(4)", IndexError, r"Dimension out of range"),
    ("tj.ones(2, 3).size(2)", IndexError, r"Dimension out of range"),
    ("tj.zeros(0, 3).max(0)", IndexError, r"non-zero size"),
    ("tj.zeros(0, 3).max()", RuntimeError, r"numel\(\) == 0"),
    ("tj.zeros(0, 3).argmax()", IndexError, r"numel\(\) == 0"),
    # dtypes an op does not support
    ("tj.tensor([True]) - tj.tensor([True])", RuntimeError, r"bool"),
    ("-tj.tensor([True])", RuntimeError, r"bool"),
    ("tj.tensor([True]) // tj.tensor([True])", NotImplementedError, r"bool"),
    ("tj.tensor([True]) ** tj.tensor([True])", NotImplementedError, r"bool"),
    ("tj.tensor([True]).abs()", NotImplementedError, r"bool"),
    ("tj.tensor([1.5]) | tj.tensor([True])", NotImplementedError, r"float"),
    ("~tj.tensor([1.5])", TypeError, r"~"),
    ("tj.ones(2, 3) @ tj.ones(3, 2, dtype=tj.float64)", RuntimeError, r"dtype|shapes"),
    ("tj.tensor([1, 2]).mean()", RuntimeError, r"Long|int64"),
    ("tj.tensor([1, 2]) ** -1", RuntimeError, r"negative integer powers"),
    ("tj.tensor([1, 2]).requires_grad_()", RuntimeError, r"floating point"),
    ("tj.where(tj.ones(2), 1.0, 0.0)", RuntimeError, r"bool"),
    ("tj.ones(2).masked_fill(tj.ones(2), 0.0)", RuntimeError, r"bool"),
    ("tj.ones(2) + 'a'", TypeError, r"str"),
    ("tj.ones(2) + None", TypeError, r"NoneType"),
    # arguments
    ("tj.zeros(2).sum((0, 0))", RuntimeError, r"multiple times"),
    ("tj.ones(2, 3).flatten(1, 0)", RuntimeError, r"start_dim cannot come after end_dim"),
    ("tj.ones(2).clamp()", RuntimeError, r"min.*max"),
    ("tj.ones(2).div(2, rounding_mode='x')", RuntimeError, r"rounding_mode"),
    ("tj.stack([])", RuntimeError, r"non-empty"),
    ("tj.cat([])", ValueError, r"non-empty"),
]


def run(snippet, lib):
    exec(snippet, {"tj": lib})  # noqa: S102  (the table's snippets are ours)


@pytest.mark.parametrize("snippet,exc,pattern", ERRORS, ids=[e[0] for e in ERRORS])
def test_error(snippet, exc, pattern):
    with pytest.raises(exc, match=pattern):
        run(snippet, tj)


@pytest.mark.parametrize("snippet,exc,pattern", ERRORS, ids=[e[0] for e in ERRORS])
def test_torch_raises_the_same_type(snippet, exc, pattern):
    torch = pytest.importorskip("torch")
    if "tj.pad" in snippet:
        pytest.skip("torch spells it torch.nn.functional.pad")
    with pytest.raises(exc):
        run(snippet, torch)


def test_errors_never_leak_numpy_exceptions():
    """A sweep of bad calls: every failure is a torch-style exception from tracejit itself."""
    bad = [lambda: tj.ones(2, 3) + tj.ones(2, 4), lambda: tj.ones(3, 1) - tj.ones(2, 4, 2),
           lambda: tj.maximum(tj.ones(2), tj.ones(3)), lambda: tj.ones(2, 3) > tj.ones(3, 2),
           lambda: tj.clamp(tj.ones(2, 3), tj.ones(3), tj.ones(4)),
           lambda: tj.ones(2, 2).logical_and(tj.ones(3) > 0)]
    for f in bad:
        with pytest.raises(RuntimeError, match="size of tensor"):
            f()


def test_small_torch_parities_none_comparison_zero_dim_reduction_bool_subtraction():
    t = tj.tensor([1.0, 2.0])
    assert (t == None) is False and (t != None) is True    # noqa: E711 - what is tested
    assert tj.tensor(2.5).sum(-1).item() == 2.5
    with pytest.raises(IndexError, match=r"expected to be in range of \[-1, 0\], but got -3"):
        tj.tensor(2.5).sum(-3)
    with pytest.raises(RuntimeError, match="with a bool tensor is not supported"):
        t - tj.tensor([True, False])
    with pytest.raises(RuntimeError, match="with a bool tensor is not supported"):
        tj.tensor([1, 2]) - True
    with pytest.raises(RuntimeError, match="with two bool tensors is not supported"):
        tj.tensor([True]) - tj.tensor([True])
    assert (t - 1).tolist() == [0.0, 1.0]


def test_integer_division_by_zero_and_negative_powers_as_torch():
    """Integer // and % by zero raise in eager and compiled code alike (compiled kernels check
    the divisors before anything is written); a negative Python exponent of an integer tensor
    raises, a tensor of negative exponents computes torch's values (1, +-1 or 0)."""
    a, b = tj.tensor([-7, 3, 7]), tj.tensor([2, 0, -4])
    for f in (lambda a, b: a // b, lambda a, b: a % b):
        cf = tj.compile(f)
        for fn in (f, cf, cf):
            with pytest.raises(RuntimeError, match="ZeroDivisionError"):
                fn(a, b)
        ok = tj.tensor([2, 1, -4])
        assert cf(a, ok).tolist() == f(a, ok).tolist()
    x = tj.tensor([0, 0, -1, -1, 1, 2, -2])
    e = tj.tensor([-1, -2, -1, -2, -3, -1, -1])
    assert (x ** e).tolist() == [0, 0, -1, 1, 1, 0, 0]
    assert tj.compile(lambda x, e: x ** e)(x, e).tolist() == [0, 0, -1, 1, 1, 0, 0]
    assert (2 ** tj.tensor([1, -2, 3])).tolist() == [2, 0, 8]
    for fn in (lambda x: x ** -1, tj.compile(lambda x: x ** -1)):
        with pytest.raises(RuntimeError, match="Integers to negative integer powers"):
            fn(tj.tensor([1, 2]))
    assert (tj.tensor([2.0, 4.0]) ** -1).tolist() == [0.5, 0.25]


def test_python_ints_out_of_an_integer_dtypes_range_wrap_as_torch():
    assert (tj.tensor([1, 2], dtype=tj.int8) + 300).tolist() == [45, 46]
    assert (tj.tensor([1, 2], dtype=tj.uint8) + (-3)).tolist() == [254, 255]
    assert (tj.tensor([1, 2], dtype=tj.int16) - 70000).tolist() == [-4463, -4462]
