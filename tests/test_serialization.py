"""tj.save / tj.load: round trips of tensors and nested containers, model and optimizer
checkpoints (resuming gives the same next loss as not stopping), the documented container
(zip of .npy readable by numpy), refusal of pickle, clear errors for damaged files, and atomic
saving (a crash mid-save leaves the previous checkpoint intact)."""
from __future__ import annotations

import io
import json
import os
import pickle
import zipfile
from collections import OrderedDict

import numpy as np
import pytest

import tracejit as tj
import tracejit.nn.functional as F
from tracejit import nn
from tracejit.serialization import CheckpointError


def test_round_trip_of_nested_values(tmp_path):
    t64 = tj.tensor([[1.5, -2.0]], dtype=tj.float64)
    obj = {
        "f32": tj.randn(3, 2), "f64": t64, "i64": tj.arange(5), "bool": tj.tensor([True, False]),
        "u8": tj.tensor([1, 255], dtype=tj.uint8), "f16": tj.ones(2, dtype=tj.float16),
        "scalar": tj.tensor(3.0), "empty": tj.zeros(0, 4),
        "grad": tj.ones(2, requires_grad=True), "param": nn.Parameter(tj.ones(1)),
        "nested": [1, 2.5, "s", None, True, (t64, [t64])], 3: float("nan"),
        (1, "k"): float("-inf"), "od": OrderedDict(b=1, a=2), "dtype": tj.float16,
        "size": tj.Size([2, 3]), "bytes": b"\x00\xff", "np": np.arange(3.0),
        "big": 2 ** 62, "tiny": 5e-324,
    }
    path = tmp_path / "obj.tj"
    tj.save(obj, path)
    back = tj.load(path)
    assert list(back) == list(obj)
    for k in ("f32", "f64", "i64", "bool", "u8", "f16", "scalar", "empty"):
        assert back[k].dtype is obj[k].dtype and back[k].shape == obj[k].shape, k
        assert (back[k].numpy() == obj[k].numpy()).all(), k
    assert back["grad"].requires_grad and isinstance(back["param"], nn.Parameter)
    assert back["nested"][:5] == [1, 2.5, "s", None, True]
    assert isinstance(back["nested"][5], tuple)
    assert back["nested"][5][0] is back["nested"][5][1][0]   # one object saved once
    assert np.isnan(back[3]) and back[(1, "k")] == float("-inf")
    assert isinstance(back["od"], OrderedDict) and list(back["od"]) == ["b", "a"]
    assert back["dtype"] is tj.float16 and back["size"] == (2, 3)
    assert isinstance(back["size"], tj.Size)
    assert back["bytes"] == b"\x00\xff" and isinstance(back["np"], np.ndarray)
    assert back["big"] == 2 ** 62 and back["tiny"] == 5e-324
    assert tj.load(path)["scalar"].item() == 3.0


def test_file_objects_and_numpy_can_read_the_container(tmp_path):
    buf = io.BytesIO()
    tj.save({"w": tj.ones(2, 2)}, buf)
    buf.seek(0)
    assert tj.load(buf)["w"].tolist() == [[1.0, 1.0], [1.0, 1.0]]
    path = tmp_path / "m.tj"
    tj.save(nn.Linear(3, 2).state_dict(), path)
    with zipfile.ZipFile(path) as zf:
        header = json.loads(zf.read("tracejit.json"))
        assert header["format"] == "tracejit" and header["version"] == 1
        assert [m["shape"] for m in header["tensors"]] == [[2, 3], [2]]
        assert not any(n.endswith(".pkl") for n in zf.namelist())
    with np.load(path) as npz:                     # a plain .npz reader sees the tensors
        assert npz["tensors/0"].shape == (2, 3)


def test_plain_npz_of_a_state_dict_loads(tmp_path):
    ref = nn.Linear(3, 2)
    path = tmp_path / "exported.npz"
    np.savez(path, **{k: v.numpy() for k, v in ref.state_dict().items()})
    fresh = nn.Linear(3, 2)
    fresh.load_state_dict(tj.load(path))
    assert (fresh.weight.detach().numpy() == ref.weight.detach().numpy()).all()


def _data(seed):
    rng = np.random.default_rng(seed)
    return tj.tensor(rng.standard_normal((8, 4)).astype(np.float32)), \
        tj.tensor(rng.integers(0, 3, 8))


def _step(model, opt, sched, seed):
    x, y = _data(seed)
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    sched.step()
    return loss.item()


def _setup():
    tj.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    opt = tj.optim.AdamW(model.parameters(), lr=0.05, amsgrad=True)
    sched = tj.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    return model, opt, sched


@pytest.mark.parametrize("opt_name", ["AdamW", "SGD"])
def test_resuming_from_a_checkpoint_gives_the_same_next_loss(tmp_path, opt_name):
    model, opt, sched = _setup()
    if opt_name == "SGD":
        opt = tj.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
        sched = tj.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    for s in range(3):
        _step(model, opt, sched, s)
    path = tmp_path / "ckpt.tj"
    tj.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
             "scheduler": sched.state_dict(), "step": 3}, path)
    uninterrupted = [_step(model, opt, sched, s) for s in range(3, 6)]

    model2, opt2, sched2 = _setup()
    if opt_name == "SGD":
        opt2 = tj.optim.SGD(model2.parameters(), lr=0.1, momentum=0.9, nesterov=True)
        sched2 = tj.optim.lr_scheduler.StepLR(opt2, step_size=2, gamma=0.5)
    ckpt = tj.load(path)
    model2.load_state_dict(ckpt["model"])
    opt2.load_state_dict(ckpt["optimizer"])
    sched2.load_state_dict(ckpt["scheduler"])
    resumed = [_step(model2, opt2, sched2, s) for s in range(ckpt["step"], 6)]
    assert resumed == uninterrupted


def test_unsupported_objects_raise_before_writing(tmp_path):
    path = tmp_path / "x.tj"
    with pytest.raises(TypeError, match=r"cannot save obj\['m'\] of type Linear.*state_dict"):
        tj.save({"m": nn.Linear(1, 1)}, path)
    with pytest.raises(TypeError, match="numpy array of Python objects"):
        tj.save([np.array([object()])], path)
    assert os.listdir(tmp_path) == []


def test_truncated_and_corrupted_files_raise_clear_errors(tmp_path):
    path = tmp_path / "good.tj"
    tj.save({"w": tj.randn(64, 64), "step": 1}, path)
    data = path.read_bytes()
    for name, blob in [("truncated.tj", data[: len(data) // 2]),
                       ("tail_cut.tj", data[:-10]),
                       ("garbage.tj", b"not a checkpoint at all"),
                       ("empty.tj", b"")]:
        bad = tmp_path / name
        bad.write_bytes(blob)
        with pytest.raises(CheckpointError, match=name) as e:
            tj.load(bad)
        assert isinstance(e.value, RuntimeError)
    flipped = bytearray(data)
    flipped[len(data) // 3] ^= 0x55                      # inside the tensor data
    (tmp_path / "flipped.tj").write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match="flipped.tj.*CRC"):
        tj.load(tmp_path / "flipped.tj")
    with pytest.raises(FileNotFoundError):
        tj.load(tmp_path / "missing.tj")


def test_tampered_headers_are_rejected(tmp_path):
    def write(name, header, members=()):
        p = tmp_path / name
        with zipfile.ZipFile(p, "w") as zf:
            zf.writestr("tracejit.json", json.dumps(header))
            for n, b in members:
                zf.writestr(n, b)
        return p
    npy = io.BytesIO()
    np.save(npy, np.zeros(3, np.float32))
    meta = {"file": "tensors/0.npy", "dtype": "float32", "shape": [3]}
    good = {"format": "tracejit", "version": 1, "root": {"$tensor": 0}, "tensors": [meta]}
    assert tj.load(write("ok.tj", good, [("tensors/0.npy", npy.getvalue())])).shape == (3,)
    cases = {
        "version.tj": (dict(good, version=99), "version 99"),
        "format.tj": (dict(good, format="other"), "does not describe"),
        "ref.tj": (dict(good, root={"$tensor": 5}), "out of range"),
        "tag.tj": (dict(good, root={"$eval": "print(1)"}), "unknown tag"),
        "shape.tj": (dict(good, tensors=[dict(meta, shape=[4])]), "header says"),
        "missing.tj": (dict(good, tensors=[dict(meta, file="tensors/9.npy")]), "missing"),
    }
    for name, (header, msg) in cases.items():
        with pytest.raises(CheckpointError, match=msg):
            tj.load(write(name, header, [("tensors/0.npy", npy.getvalue())]))


class _Marker:
    """Unpickling this would create a file: the test checks that it never happens."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_loading_never_unpickles(tmp_path):
    marker = tmp_path / "executed"
    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps(_Marker(str(marker))))
    with pytest.raises(CheckpointError, match="pickle"):
        tj.load(evil)
    # a zip whose .npy member holds pickled objects (allow_pickle would run them)
    npy = io.BytesIO()
    np.save(npy, np.array([_Marker(str(marker))], dtype=object), allow_pickle=True)
    header = {"format": "tracejit", "version": 1, "root": {"$tensor": 0},
              "tensors": [{"file": "tensors/0.npy", "dtype": "object", "shape": [1]}]}
    sneaky = tmp_path / "sneaky.tj"
    with zipfile.ZipFile(sneaky, "w") as zf:
        zf.writestr("tracejit.json", json.dumps(header))
        zf.writestr("tensors/0.npy", npy.getvalue())
    with pytest.raises(CheckpointError, match="not a valid .npy"):
        tj.load(sneaky)
    # a PyTorch-style zip (data.pkl) is refused with a conversion hint
    torch_like = tmp_path / "model.pt"
    with zipfile.ZipFile(torch_like, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps(_Marker(str(marker))))
    with pytest.raises(CheckpointError, match="numpy.savez"):
        tj.load(torch_like)
    assert not marker.exists()


def test_crash_mid_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.tj"
    tj.save({"version": 1, "w": tj.ones(3)}, path)
    before = path.read_bytes()
    real = np.lib.format.write_array
    calls = []

    def crash(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt("simulated crash while writing")
        return real(*args, **kwargs)
    monkeypatch.setattr(np.lib.format, "write_array", crash)
    with pytest.raises(KeyboardInterrupt):
        tj.save({"version": 2, "a": tj.zeros(1000), "b": tj.zeros(1000)}, path)
    monkeypatch.setattr(np.lib.format, "write_array", real)
    assert path.read_bytes() == before
    assert tj.load(path)["version"] == 1
    assert os.listdir(tmp_path) == ["ckpt.tj"]           # no temporary file left behind
    tj.save({"version": 3}, str(path))
    assert tj.load(str(path)) == {"version": 3}
