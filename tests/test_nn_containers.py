"""Containers as PyTorch's: Sequential's list operations (insert, extend, pop, +, +=, *, *=),
ModuleList's (+, pop, insert), ParameterList and ParameterDict (registration under positions or
keys, tensors wrapped into Parameters, state dict keys and order, torch's errors), and that
replacing an entry keeps its position."""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest

import tracejit as tj
from tracejit import nn


def _types(seq) -> list:
    return [type(m).__name__ for m in seq]


def test_replacing_an_entry_keeps_its_position():
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    seq[0] = nn.Linear(2, 3, bias=False)
    assert list(seq._modules) == ["0", "1", "2"]
    assert list(seq.state_dict()) == ["0.weight", "2.weight", "2.bias"]
    assert seq(tj.randn(4, 2)).shape == (4, 1)            # still applied in order
    lin = nn.Linear(2, 2)
    lin.weight = nn.Parameter(tj.zeros(2, 2))
    assert list(lin.state_dict()) == ["weight", "bias"]


def test_sequential_insert_extend_pop():
    a, b, c = nn.Linear(1, 1), nn.ReLU(), nn.Tanh()
    seq = nn.Sequential(a, b)
    assert seq.insert(0, c) is seq and list(seq) == [c, a, b]
    seq.insert(-1, nn.ELU())                  # before the last, as list.insert
    assert _types(seq) == ["Tanh", "Linear", "ELU", "ReLU"]
    seq.insert(len(seq), nn.Sigmoid())        # len is allowed: append
    assert _types(seq)[-1] == "Sigmoid" and list(seq._modules) == ["0", "1", "2", "3", "4"]
    with pytest.raises(IndexError, match="Index out of range: 6"):
        seq.insert(6, nn.ReLU())
    with pytest.raises(IndexError, match="Index out of range: -6"):
        seq.insert(-6, nn.ReLU())
    with pytest.raises(AssertionError, match="module should be of type"):
        seq.insert(0, 3)
    assert seq.pop(1) is a and len(seq) == 4 and list(seq._modules) == ["0", "1", "2", "3"]
    assert seq.pop(-1).__class__ is nn.Sigmoid
    with pytest.raises(IndexError, match="index 3 is out of range"):
        seq.pop(3)
    popped = seq.pop(slice(0, 2))
    assert isinstance(popped, nn.Sequential) and _types(popped) == ["Tanh", "ELU"]
    assert list(seq) == [b]
    assert seq.extend([c, a]) is seq and list(seq) == [b, c, a]
    seq.extend(seq)                            # its own modules, once
    assert list(seq) == [b, c, a, b, c, a]
    with pytest.raises(IndexError, match="index -7 is out of range"):
        seq[-7]


def test_sequential_add_and_mul_share_modules():
    lin, act = nn.Linear(2, 2), nn.ReLU()
    seq = nn.Sequential(lin, act)
    both = seq + nn.Sequential(nn.Tanh())
    assert isinstance(both, nn.Sequential) and both is not seq and len(seq) == 2
    assert both[0] is lin and _types(both) == ["Linear", "ReLU", "Tanh"]
    with pytest.raises(ValueError, match="add operator supports only objects of Sequential"):
        seq + nn.ReLU()
    with pytest.raises(ValueError, match="add operator supports only objects of Sequential"):
        seq += [nn.ReLU()]
    twice = seq * 2
    assert list(twice) == [lin, act, lin, act] and list(3 * seq)[4] is lin
    assert len(list(twice.parameters())) == 2         # the same Linear, twice
    x = tj.randn(3, 2)
    expected = act(lin(act(lin(x))))
    np.testing.assert_allclose(twice(x).detach().numpy(), expected.detach().numpy())
    with pytest.raises(ValueError, match="Non-positive multiplication factor 0"):
        seq * 0
    with pytest.raises(TypeError, match="unsupported operand type"):
        seq * 1.5
    same = seq
    seq *= 2
    assert seq is same and list(seq) == [lin, act, lin, act]
    seq += nn.Sequential(nn.Tanh())
    assert seq is same and _types(seq)[-1] == "Tanh" and list(seq._modules)[-1] == "4"


def test_sequential_slice_keeps_the_subclass():
    class Stack(nn.Sequential):
        pass
    s = Stack(nn.ReLU(), nn.Tanh(), nn.ReLU())
    assert type(s[1:]) is Stack and _types(s[::2]) == ["ReLU", "ReLU"]
    named = nn.Sequential(OrderedDict([("enc", nn.Linear(2, 2)), ("act", nn.Tanh())]))
    assert list(named[:1].state_dict()) == ["enc.weight", "enc.bias"]


def test_module_list_add_pop_insert():
    a, b, c = nn.Linear(1, 1), nn.ReLU(), nn.Tanh()
    ml = nn.ModuleList([a, b])
    both = ml + [c]                 # any iterable of modules
    assert isinstance(both, nn.ModuleList) and list(both) == [a, b, c] and len(ml) == 2
    assert list(ml + nn.ModuleList([c])) == [a, b, c]
    ml.insert(1, c)
    assert list(ml) == [a, c, b]
    ml.insert(-1, nn.ELU())
    assert _types(ml) == ["Linear", "Tanh", "ELU", "ReLU"]
    assert ml.pop(0) is a and list(ml._modules) == ["0", "1", "2"]
    assert ml.pop(-1) is b
    with pytest.raises(IndexError, match="index 2 is out of range"):
        ml.pop(2)
    with pytest.raises(IndexError, match="index 5 is out of range"):
        del ml[5]
    with pytest.raises(TypeError, match="ModuleList.extend should be called with an iterable"):
        ml.extend(nn.Linear(1, 1))
    with pytest.raises(TypeError, match="not a Module"):
        ml.insert(0, 3)
    ml += ml
    assert _types(ml) == ["Tanh", "ELU", "Tanh", "ELU"]


def test_parameter_list_registration_and_wrapping():
    w = nn.Parameter(tj.ones(2))
    frozen = nn.Parameter(tj.zeros(3), requires_grad=False)
    pl = nn.ParameterList([w, tj.full((2, 2), 3.0), frozen])
    assert len(pl) == 3 and pl[0] is w and pl[2] is frozen and not pl[2].requires_grad
    assert isinstance(pl[1], nn.Parameter) and pl[1].requires_grad       # a tensor is wrapped
    assert [n for n, _ in pl.named_parameters()] == ["0", "1", "2"]
    assert pl[-1] is frozen and list(pl) == [pl[0], pl[1], pl[2]]
    pl.append(tj.zeros(1)).extend([tj.ones(4)])
    assert len(pl) == 5 and list(pl.state_dict()) == ["0", "1", "2", "3", "4"]
    pl += [nn.Parameter(tj.ones(1))]
    assert len(pl) == 6
    pl[0] = tj.full((2,), 7.0)
    assert isinstance(pl[0], nn.Parameter) and pl[0] is not w
    assert list(pl.state_dict())[0] == "0"                  # replaced in place
    sub = pl[1:4:2]
    assert isinstance(sub, nn.ParameterList) and list(sub) == [pl[1], pl[3]]
    assert len(pl[::-1]) == 6 and pl[::-1][0] is pl[5]
    with pytest.raises(IndexError, match="index 6 is out of range"):
        pl[6]
    with pytest.raises(IndexError, match="index -7 is out of range"):
        pl[-7] = tj.ones(1)
    with pytest.raises(TypeError, match="ParameterList.extend should be called with an "
                       "iterable, but got Tensor"):
        pl.extend(tj.ones(2))
    with pytest.raises(RuntimeError, match="floating point"):
        pl.append(tj.ones(2, dtype=tj.int64))
    assert len(pl) == 6                     # the failed append left no slot behind
    with pytest.raises(RuntimeError, match="ParameterList should not be called"):
        pl(tj.ones(1))


def test_parameter_list_holds_other_values_and_trains():
    pl = nn.ParameterList([tj.ones(2), None, 3])
    assert pl[1] is None and pl[2] == 3 and list(pl.state_dict()) == ["0"]

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scales = nn.ParameterList([tj.full((2,), 2.0), tj.full((2,), 3.0)])

        def forward(self, x):
            for s in self.scales:
                x = x * s
            return x
    net = Net()
    assert list(net.state_dict()) == ["scales.0", "scales.1"]
    net(tj.ones(2)).sum().backward()
    assert (net.scales[0].grad.numpy() == 3.0).all() and (net.scales[1].grad.numpy() == 2.0).all()
    assert repr(nn.ParameterList([tj.ones(2, 3)])) == \
        "ParameterList(  (0): Parameter containing: [tracejit.float32 of size 2x3])"
    assert repr(pl) == ("ParameterList(\n"
                        "    (0): Parameter containing: [tracejit.float32 of size 2]\n"
                        "    (1): Object of type: NoneType\n"
                        "    (2): Object of type: int\n"
                        ")")


def test_parameter_dict_order_and_state_dict_keys():
    # a plain dict is added in sorted key order (torch's rule), an OrderedDict or pairs in theirs
    pd = nn.ParameterDict({"right": tj.ones(2), "left": tj.zeros(3)})
    assert list(pd) == ["left", "right"] and list(pd.state_dict()) == ["left", "right"]
    assert all(isinstance(p, nn.Parameter) for p in pd.values())
    od = nn.ParameterDict(OrderedDict([("z", tj.ones(1)), ("y", tj.ones(1))]))
    assert list(od.keys()) == ["z", "y"]
    assert list(nn.ParameterDict([("b", tj.ones(1)), ("a", tj.ones(1))])) == ["b", "a"]
    m = nn.Module()
    m.table = od
    assert list(m.state_dict()) == ["table.z", "table.y"]
    assert list(od | {"b": tj.ones(1), "a": tj.ones(1)}) == ["z", "y", "a", "b"]
    assert list(reversed(od)) == ["y", "z"]


def test_parameter_dict_methods_and_errors():
    w = nn.Parameter(tj.ones(2))
    pd = nn.ParameterDict({"w": w})
    assert pd["w"] is w and "w" in pd and len(pd) == 1 and pd.get("q", 5) == 5
    pd["v"] = tj.zeros(1)
    assert isinstance(pd["v"], nn.Parameter) and list(pd.items())[1][0] == "v"
    d0 = pd.setdefault("u", tj.ones(3))
    assert pd.setdefault("u") is d0 and list(pd) == ["w", "v", "u"]
    pd["w"] = tj.full((2,), 5.0)                  # overwritten in place, order kept
    assert list(pd) == ["w", "v", "u"] and list(pd.state_dict()) == ["w", "v", "u"]
    assert pd.pop("v").shape == (1,) and "v" not in pd and "v" not in pd.state_dict()
    assert pd.popitem()[0] == "u" and list(pd) == ["w"]
    cp = pd.copy()
    assert cp["w"] is pd["w"] and cp is not pd
    pd["n"] = 3                                   # a non-tensor is kept as is, not registered
    assert pd["n"] == 3 and list(pd.state_dict()) == ["w"]
    assert list(pd.fromkeys(["x", "y"]).items()) == [("x", None), ("y", None)]
    pd.clear()
    assert len(pd) == 0 and list(pd.parameters()) == []
    with pytest.raises(AttributeError, match="has no attribute 'x'"):
        pd["x"]
    with pytest.raises(KeyError):
        del pd["x"]
    with pytest.raises(TypeError, match="cannot be used as a key as it is not a string "
                       r"\(type is 'int'\)"):
        pd[1] = tj.ones(1)
    with pytest.raises(KeyError, match="contain"):
        pd["a.b"] = tj.ones(1)
    assert list(pd) == []                         # the refused keys left nothing behind
    with pytest.raises(TypeError, match="ParametersDict.update should be called with an "
                       "iterable of key/value pairs, but got int"):
        pd.update(5)
    with pytest.raises(TypeError, match="element #1 should be Iterable"):
        pd.update([("a", tj.ones(1)), 3])
    with pytest.raises(ValueError, match="element #0 has length 3; 2 is required"):
        pd.update([("a", tj.ones(1), 3)])
    with pytest.raises(KeyError, match="dictionary is empty"):
        nn.ParameterDict().popitem()
    with pytest.raises(RuntimeError, match="ParameterDict should not be called"):
        pd(tj.ones(1))


def test_parameter_containers_against_torch():
    torch = pytest.importorskip("torch")
    tl = torch.nn.ParameterList([torch.ones(2), torch.nn.Parameter(torch.zeros(3)), None])
    jl = nn.ParameterList([tj.ones(2), nn.Parameter(tj.zeros(3)), None])
    assert list(tl.state_dict()) == list(jl.state_dict()) and len(tl) == len(jl)
    assert repr(tl).replace("torch.", "tracejit.") == repr(jl)
    sizes = {"b": 1, "a": 2, "c": 3}
    tvals = {k: torch.ones(v) for k, v in sizes.items()}
    jvals = {k: tj.ones(v) for k, v in sizes.items()}
    assert list(torch.nn.ParameterDict(tvals).state_dict()) == \
        list(nn.ParameterDict(jvals).state_dict())
    ts = torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Tanh(), torch.nn.ELU())
    js = nn.Sequential(nn.ReLU(), nn.Tanh(), nn.ELU())
    for op in (lambda s, lib: s.insert(-2, lib.Sigmoid()), lambda s, lib: s.pop(1),
               lambda s, lib: s * 2, lambda s, lib: s + lib.Sequential(lib.ReLU())):
        r1, r2 = op(ts, torch.nn), op(js, nn)
        assert _types(r1 if isinstance(r1, torch.nn.Sequential) else ts) == \
            _types(r2 if isinstance(r2, nn.Sequential) else js)
