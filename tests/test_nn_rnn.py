"""RNN / LSTM / GRU and their cells against the PyTorch-documented equations in float64 numpy
(batch_first, num_layers, bidirectional, initial states, unbatched input), finite-difference
gradients, parameter names/shapes/init, and argument errors."""
from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import assert_close, check_grads

import tracejit as tj
from tracejit import nn

RNG = np.random.default_rng(2)


def sig(x):
    return 1 / (1 + np.exp(-x))


def ref_cell(mode, x, h, c, w_ih, w_hh, b_ih, b_hh):
    gi = x @ w_ih.T + (0 if b_ih is None else b_ih)
    gh = h @ w_hh.T + (0 if b_hh is None else b_hh)
    if mode == "tanh":
        return np.tanh(gi + gh), None
    if mode == "relu":
        return np.maximum(gi + gh, 0), None
    if mode == "lstm":
        i, f, g, o = np.split(gi + gh, 4, -1)
        c = sig(f) * c + sig(i) * np.tanh(g)
        return sig(o) * np.tanh(c), c
    (ir, iz, inn), (hr, hz, hn) = np.split(gi, 3, -1), np.split(gh, 3, -1)
    r, z = sig(ir + hr), sig(iz + hz)
    n = np.tanh(inn + r * hn)
    return (1 - z) * n + z * h, None


def ref_rnn(mode, module, x, h0=None, c0=None):
    """x: (T, N, I). Returns output (T, N, D*H), h_n, c_n."""
    p = {k: v.detach().numpy() for k, v in module.named_parameters()}
    dirs = 2 if module.bidirectional else 1
    t, n = x.shape[:2]
    hsz = module.hidden_size
    h0 = np.zeros((module.num_layers * dirs, n, hsz)) if h0 is None else h0
    c0 = np.zeros_like(h0) if c0 is None else c0
    hn, cn = [], []
    inp = x
    for layer in range(module.num_layers):
        outs = []
        for d in range(dirs):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            h, c = h0[layer * dirs + d], c0[layer * dirs + d]
            seq = [None] * t
            for step in (reversed(range(t)) if d else range(t)):
                h, c = ref_cell(mode, inp[step], h, c, p["weight_ih" + sfx],
                                p["weight_hh" + sfx], p.get("bias_ih" + sfx),
                                p.get("bias_hh" + sfx))
                seq[step] = h
            outs.append(np.stack(seq))
            hn.append(h)
            cn.append(c)
        inp = np.concatenate(outs, -1)
    return inp, np.stack(hn), (np.stack(cn) if mode == "lstm" else None)


MODES = {"tanh": lambda **k: nn.RNN(nonlinearity="tanh", **k),
         "relu": lambda **k: nn.RNN(nonlinearity="relu", **k),
         "lstm": lambda **k: nn.LSTM(**k), "gru": lambda **k: nn.GRU(**k)}


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("layers,bidirectional,batch_first,bias", [
    (1, False, False, True), (2, False, True, True), (2, True, False, True),
    (1, True, True, False)])
def test_recurrent_layers_match_equations(mode, layers, bidirectional, batch_first, bias):
    tj.manual_seed(0)
    m = MODES[mode](input_size=3, hidden_size=4, num_layers=layers, bias=bias,
                    batch_first=batch_first, bidirectional=bidirectional).double()
    x = RNG.standard_normal((5, 2, 3))
    dirs = 2 if bidirectional else 1
    h0 = RNG.standard_normal((layers * dirs, 2, 4))
    c0 = RNG.standard_normal((layers * dirs, 2, 4))
    hx = (tj.tensor(h0), tj.tensor(c0)) if mode == "lstm" else tj.tensor(h0)
    xin = x.transpose(1, 0, 2) if batch_first else x
    out, state = m(tj.tensor(xin), hx)
    ref_out, ref_h, ref_c = ref_rnn(mode, m, x, h0, c0)
    if batch_first:
        ref_out = ref_out.transpose(1, 0, 2)
    assert_close(out.detach().numpy(), ref_out, rtol=1e-10, atol=1e-12)
    if mode == "lstm":
        assert_close(state[0].detach().numpy(), ref_h, rtol=1e-10, atol=1e-12)
        assert_close(state[1].detach().numpy(), ref_c, rtol=1e-10, atol=1e-12)
    else:
        assert_close(state.detach().numpy(), ref_h, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("mode", ["lstm", "gru", "tanh"])
def test_recurrent_gradients(mode):
    tj.manual_seed(0)
    m = MODES[mode](input_size=2, hidden_size=3, num_layers=2, bidirectional=True).double()
    names = [n for n, _ in m.named_parameters()]
    x = RNG.standard_normal((3, 2, 2))

    def fn(x, *params):
        for name, p in zip(names, params):
            m._parameters[name] = p        # route the perturbed copies through the module
        return m(x)[0]
    params = [p.detach().numpy().copy() for p in m.parameters()]
    check_grads(fn, [x] + params)


def test_unbatched_and_default_state():
    tj.manual_seed(0)
    m = nn.LSTM(3, 4, num_layers=2).double()
    x = RNG.standard_normal((6, 3))
    out, (h, c) = m(tj.tensor(x))
    ref_out, _, ref_c = ref_rnn("lstm", m, x[:, None])
    assert out.shape == (6, 4) and h.shape == (2, 4) and c.shape == (2, 4)
    assert_close(out.detach().numpy(), ref_out[:, 0])
    assert_close(c.detach().numpy(), ref_c[:, 0])


@pytest.mark.parametrize("cls,mode,nstate", [(nn.RNNCell, "tanh", 1), (nn.LSTMCell, "lstm", 2),
                                             (nn.GRUCell, "gru", 1)])
def test_cells(cls, mode, nstate):
    tj.manual_seed(0)
    cell = cls(3, 4).double()
    x, h, c = RNG.standard_normal((2, 3)), RNG.standard_normal((2, 4)), RNG.standard_normal((2, 4))
    hx = (tj.tensor(h), tj.tensor(c)) if nstate == 2 else tj.tensor(h)
    out = cell(tj.tensor(x), hx)
    p = {k: v.detach().numpy() for k, v in cell.named_parameters()}
    rh, rc = ref_cell(mode, x, h, c, p["weight_ih"], p["weight_hh"], p["bias_ih"], p["bias_hh"])
    if nstate == 2:
        assert_close(out[0].detach().numpy(), rh)
        assert_close(out[1].detach().numpy(), rc)
    else:
        assert_close(out.detach().numpy(), rh)
    unb = cell(tj.tensor(x[0]))
    rh0, _ = ref_cell(mode, x[:1], np.zeros((1, 4)), np.zeros((1, 4)), p["weight_ih"],
                      p["weight_hh"], p["bias_ih"], p["bias_hh"])
    assert_close((unb[0] if nstate == 2 else unb).detach().numpy(), rh0[0])
    relu = nn.RNNCell(3, 4, nonlinearity="relu")
    assert repr(relu) == "RNNCell(3, 4, nonlinearity=relu)"


def test_parameter_names_shapes_and_init():
    tj.manual_seed(0)
    m = nn.LSTM(10, 20, num_layers=2, bidirectional=True)
    sd = m.state_dict()
    assert list(sd)[:5] == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0",
                            "weight_ih_l0_reverse"]
    assert sd["weight_ih_l0"].shape == (80, 10)
    assert sd["weight_ih_l1"].shape == (80, 40)
    assert sd["bias_hh_l1_reverse"].shape == (80,)
    assert len(sd) == 16
    bound = 1 / math.sqrt(20)
    allw = np.concatenate([v.numpy().ravel() for v in sd.values()])
    assert np.abs(allw).max() <= bound and abs(allw.std() - bound / math.sqrt(3)) < 0.01
    assert [k for k in nn.GRU(3, 5).state_dict()] == ["weight_ih_l0", "weight_hh_l0",
                                                      "bias_ih_l0", "bias_hh_l0"]
    assert nn.GRU(3, 5).weight_ih_l0.shape == (15, 3)
    assert repr(m) == "LSTM(10, 20, num_layers=2, bidirectional=True)"
    assert repr(nn.RNN(3, 4, batch_first=True)) == "RNN(3, 4, batch_first=True)"
    assert len(m.all_weights) == 4 and len(m.all_weights[0]) == 4


def test_errors_and_dropout():
    with pytest.raises(ValueError, match="nonlinearity"):
        nn.RNN(3, 4, nonlinearity="sigmoid")
    with pytest.warns(UserWarning, match="dropout"):
        nn.LSTM(3, 4, dropout=0.5)
    m = nn.LSTM(3, 4, num_layers=2, dropout=0.5)
    with pytest.raises(RuntimeError, match="input_size"):
        m(tj.randn(5, 2, 2))
    with pytest.raises(RuntimeError, match="Expected hidden size"):
        m(tj.randn(5, 2, 3), (tj.zeros(1, 2, 4), tj.zeros(1, 2, 4)))
    x = tj.randn(4, 2, 3)
    m.eval()
    a, _ = m(x)
    b, _ = m(x)
    assert_close(a.detach().numpy(), b.detach().numpy())     # no dropout in eval mode


def test_lstm_learns_to_copy_a_delayed_input():
    tj.manual_seed(0)
    rnn, head = nn.LSTM(1, 8, batch_first=True), nn.Linear(8, 1)
    opt = tj.optim.Adam(list(rnn.parameters()) + list(head.parameters()), lr=0.05)
    x = tj.randn(16, 6, 1)
    y = x[:, :-1]                                   # predict the previous input
    first = None
    for _ in range(60):
        out, _ = rnn(x)
        loss = ((head(out[:, 1:]) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first or loss.item()
    assert loss.item() < 0.1 * first
