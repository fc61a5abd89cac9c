"""`tj.save(obj, f)` and `tj.load(f)`: checkpoints in a zip/npz container that never uses pickle.

Format (version 1). A zip archive (stored, no compression) holding:

- `tracejit.json`: `{"format": "tracejit", "version": 1, "root": <value>, "tensors": [<meta>]}`
  where `<meta>` is `{"file": "tensors/<i>.npy", "dtype": "float32", "shape": [...],
  "requires_grad": false, "parameter": false}`, and `<value>` is JSON: null, true/false,
  integers, strings and finite floats as themselves; lists as lists; everything else as a
  one-key tagged object: `{"$tensor": i}` (index into "tensors"), `{"$float": "nan"|"inf"|"-inf"}`,
  `{"$tuple": [...]}`, `{"$dict": [[key, value], ...], "ordered": bool}` (keys of any saved
  type, in order), `{"$dtype": "float32"}`, `{"$size": [...]}`, `{"$bytes": "<base64>"}`,
  `{"$ndarray": i}` (a numpy array, returned as one).
- `tensors/<i>.npy`: each tensor's data in numpy's .npy format, written and read with
  `allow_pickle=False`.

Because the tensors are .npy members of a zip, `numpy.load(path)` also opens a checkpoint.
Loading parses JSON and .npy only, so a file can never execute code; every member's CRC, the
header and each tensor's dtype/shape are checked, and any damage raises `CheckpointError` (a
RuntimeError) naming the file. Saving to a path writes a temporary file in the same directory,
flushes it to disk and renames it over the target, so a crash mid-save leaves the previous
checkpoint intact. A plain `.npz` of named arrays (e.g. a PyTorch state dict exported with
`np.savez(f, **{k: v.numpy() for k, v in sd.items()})`) loads as a dict of Tensors.
"""
from __future__ import annotations

import base64
import io
import json
import math
import os
import secrets
import zipfile
from collections import OrderedDict

import numpy as np

from .ops import dtypes as D
from .tensor import Size, Tensor

HEADER = "tracejit.json"
FORMAT, VERSION = "tracejit", 1


class CheckpointError(RuntimeError):
    """A file that tj.load cannot read: truncated, corrupted or not a checkpoint."""


# --- encoding ---


class _Encoder:
    def __init__(self) -> None:
        self.arrays: list[np.ndarray] = []
        self.meta: list[dict] = []
        self._ids: dict[int, int] = {}

    def _add(self, key_obj, arr: np.ndarray, meta: dict) -> int:
        i = self._ids.get(id(key_obj))
        if i is None:
            i = self._ids[id(key_obj)] = len(self.arrays)
            self.arrays.append(arr)
            self.meta.append({"file": f"tensors/{i}.npy", "dtype": arr.dtype.name,
                              "shape": list(arr.shape), **meta})
        return i

    def value(self, x, path: str = "obj"):
        if x is None or isinstance(x, (bool, str)):
            return x
        if isinstance(x, int):
            return x
        if isinstance(x, float):
            return x if math.isfinite(x) else {"$float": repr(x)}
        if isinstance(x, Tensor):
            if x._is_symbolic:
                raise TypeError(f"tj.save: {path} is a traced (symbolic) tensor; save concrete "
                                f"tensors only")
            from .nn.parameter import Parameter
            meta = {"requires_grad": bool(x.requires_grad), "parameter": isinstance(x, Parameter)}
            if x.is_cuda:                       # saved from the host, loaded back to the GPU
                meta["device"] = "cuda"
            return {"$tensor": self._add(x, x._data if not x.is_cuda else
                                         x._data.copy_to_host(), meta)}
        if isinstance(x, np.ndarray):
            if x.dtype.hasobject:
                raise TypeError(f"tj.save: {path} is a numpy array of Python objects, which "
                                f"cannot be saved without pickle")
            return {"$ndarray": self._add(x, x, {"numpy": True})}
        if isinstance(x, np.generic):
            return self.value(x.item(), path)
        if isinstance(x, D.DType):
            return {"$dtype": x.name}
        if isinstance(x, Size):
            return {"$size": [int(s) for s in x]}
        if isinstance(x, (bytes, bytearray)):
            return {"$bytes": base64.b64encode(bytes(x)).decode("ascii")}
        if isinstance(x, tuple):
            return {"$tuple": [self.value(v, f"{path}[{i}]") for i, v in enumerate(x)]}
        if isinstance(x, list):
            return [self.value(v, f"{path}[{i}]") for i, v in enumerate(x)]
        if isinstance(x, dict):
            items = [[self.value(k, f"{path} key"), self.value(v, f"{path}[{k!r}]")]
                     for k, v in x.items()]
            return {"$dict": items, "ordered": isinstance(x, OrderedDict)}
        hint = " (save module.state_dict() instead)" if hasattr(x, "state_dict") else ""
        raise TypeError(f"tj.save: cannot save {path} of type {type(x).__name__}{hint}; "
                        f"supported: tensors, numpy arrays, dicts, lists, tuples, str, int, "
                        f"float, bool, None, bytes, dtypes")


def _write(header: dict, arrays: list, fileobj) -> None:
    with zipfile.ZipFile(fileobj, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        zf.writestr(HEADER, json.dumps(header, allow_nan=False))
        for meta, arr in zip(header["tensors"], arrays):
            with zf.open(meta["file"], "w", force_zip64=True) as member:
                np.lib.format.write_array(member, arr, allow_pickle=False)


def save(obj, f, **kwargs) -> None:
    """Save tensors and nested dicts/lists/tuples of tensors and scalars to a path or a
    writable binary file object. Extra PyTorch keyword arguments are accepted and ignored."""
    enc = _Encoder()
    root = enc.value(obj)     # raises before any file is touched
    header = {"format": FORMAT, "version": VERSION, "root": root, "tensors": enc.meta}
    if hasattr(f, "write"):
        _write(header, enc.arrays, f)
        return
    path = os.fspath(f)
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{secrets.token_hex(4)}.tmp")
    # O_EXCL: never clobber another writer's temp file; 0o666 lets the umask decide the mode
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            _write(header, enc.arrays, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable (POSIX); not available everywhere
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


# --- decoding ---


def _name(f) -> str:
    if hasattr(f, "read"):
        return getattr(f, "name", None) or f"<{type(f).__name__}>"
    return os.fspath(f)


def load(f, map_location=None, weights_only: bool | None = None, **kwargs):
    """Load what `tj.save` wrote (or a plain .npz of arrays). Never executes code from the
    file; raises CheckpointError naming the file when it is damaged or not a checkpoint."""
    if map_location is not None and not isinstance(map_location, dict) and \
            not callable(map_location) and str(map_location) not in ("cpu",):
        from .factories import _device_check
        _device_check(map_location)
    name = _name(f)
    if not hasattr(f, "read"):
        with open(name, "rb") as fh:
            data = fh.read()
    else:
        data = f.read()

    def bad(reason: str, damaged: bool = True) -> CheckpointError:
        hint = (" The file is truncated, corrupted or of another format; re-create it with "
                "tj.save() or restore a backup.") if damaged else ""
        return CheckpointError(f"tj.load: '{name}' is not a readable tracejit checkpoint: "
                               f"{reason}.{hint}")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as e:
        if data[:2] == b"\x80\x02" or data[:1] == b"\x80":
            raise bad("it is a pickle file (tracejit never unpickles: export the tensors with "
                      "numpy.savez instead)", False) from None
        raise bad(f"not a zip archive ({e})") from None
    with zf:
        try:
            broken = zf.testzip()
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
            raise bad(f"damaged zip archive ({e})") from None
        if broken is not None:
            raise bad(f"member '{broken}' fails its CRC check")
        names = zf.namelist()
        if HEADER not in names:
            if "data.pkl" in names or any(n.endswith("/data.pkl") for n in names):
                raise bad("it is a PyTorch (pickle) checkpoint; tracejit never unpickles. In "
                          "PyTorch, export it with numpy.savez(path, **{k: v.numpy() for k, v "
                          "in state_dict.items()}) and load that .npz", False)
            if names and all(n.endswith(".npy") for n in names):
                return OrderedDict((n[:-4], Tensor._make(_read_npy(zf, n, bad))) for n in names)
            raise bad(f"no '{HEADER}' header")
        try:
            header = json.loads(zf.read(HEADER).decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise bad(f"unreadable header ({e})") from None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise bad("the header does not describe a tracejit checkpoint")
        if header.get("version") != VERSION:
            raise bad(f"format version {header.get('version')!r} is not supported by this "
                      f"tracejit (reads version {VERSION})", False)
        metas = header.get("tensors")
        if not isinstance(metas, list):
            raise bad("the header has no tensor list")
        values = [_read_tensor(zf, m, bad, map_location) for m in metas]
        return _Decoder(values, bad).value(header.get("root"))


def _read_npy(zf: zipfile.ZipFile, member: str, bad) -> np.ndarray:
    try:
        with zf.open(member) as fh:
            return np.lib.format.read_array(fh, allow_pickle=False)
    except KeyError:
        raise bad(f"member '{member}' is missing") from None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise bad(f"member '{member}' is not a valid .npy array ({e})") from None


def _read_tensor(zf, meta, bad, map_location=None):
    """A tensor of the checkpoint, on the device it was saved from, or on `map_location`."""
    if not isinstance(meta, dict) or not isinstance(meta.get("file"), str):
        raise bad("malformed tensor entry in the header")
    arr = _read_npy(zf, meta["file"], bad)
    if arr.dtype.name != meta.get("dtype") or list(arr.shape) != meta.get("shape"):
        raise bad(f"member '{meta['file']}' holds {arr.dtype.name}{list(arr.shape)} but the "
                  f"header says {meta.get('dtype')}{meta.get('shape')}")
    if meta.get("numpy"):
        return arr
    try:
        D.from_numpy_dtype(arr.dtype)
    except TypeError:
        raise bad(f"member '{meta['file']}' has unsupported dtype {arr.dtype}") from None
    saved = meta.get("device", "cpu")
    if callable(map_location) and not isinstance(map_location, str):
        # torch calls map_location(storage, location): what it returns is the tensor's data
        # (None: where it was saved)
        got = map_location(Tensor._make(arr), "cuda:0" if saved.startswith("cuda") else saved)
        if isinstance(got, Tensor):
            arr, device = got._data, "cpu"
        else:
            device = saved
    elif isinstance(map_location, dict):        # {saved location: new location}
        alias = {"cuda": "cuda:0", "cuda:0": "cuda"}.get(saved)
        device = str(map_location.get(saved, map_location.get(alias, saved)))
    else:
        device = str(map_location) if map_location is not None else saved
    if device != "cpu" and type(arr) is np.ndarray:
        from .cuda import upload
        from .factories import _device_check
        _device_check(device)                   # (no GPU: a clear error, as torch's)
        arr = upload(arr)
    if meta.get("parameter"):
        from .nn.parameter import Parameter
        return Parameter(Tensor._make(arr), bool(meta.get("requires_grad", True)))
    t = Tensor._make(arr)
    if meta.get("requires_grad"):
        t.requires_grad_(True)
    return t


class _Decoder:
    def __init__(self, values: list, bad) -> None:
        self.values, self.bad = values, bad

    def value(self, x):
        if x is None or isinstance(x, (bool, int, float, str)):
            return x
        if isinstance(x, list):
            return [self.value(v) for v in x]
        if not isinstance(x, dict) or len(x) not in (1, 2):
            raise self.bad(f"unexpected value {str(x)[:60]!r} in the header")
        tag = next((k for k in x if isinstance(k, str) and k.startswith("$")), None)
        v = x.get(tag)
        try:
            if tag in ("$tensor", "$ndarray"):
                if not isinstance(v, int) or not 0 <= v < len(self.values):
                    raise self.bad(f"tensor reference {v!r} out of range")
                return self.values[v]
            if tag == "$float":
                if v not in ("nan", "inf", "-inf"):
                    raise self.bad(f"bad float {v!r}")
                return float(v)
            if tag == "$tuple":
                return tuple(self.value(e) for e in v)
            if tag == "$dict":
                cls = OrderedDict if x.get("ordered") else dict
                return cls((_hashable(self.value(k)), self.value(e)) for k, e in v)
            if tag == "$dtype":
                return D.get_dtype(v)
            if tag == "$size":
                return Size(int(s) for s in v)
            if tag == "$bytes":
                return base64.b64decode(v.encode("ascii"), validate=True)
        except CheckpointError:
            raise
        except (TypeError, ValueError, AttributeError) as e:
            raise self.bad(f"malformed {tag} value ({e})") from None
        raise self.bad(f"unknown tag {tag!r}")


def _hashable(k):
    if isinstance(k, list):
        raise TypeError("a dict key cannot be a list")
    return k
