"""float32 transcendental primitives of the LLVM backend against numpy's float32 ufuncs.

    python -m perf.llvm_math [--log2n 22] [--repeat 15] [--ops exp,tanh,...] [--json PATH]

For each primitive, one loop ``out[i] = m.<op>(x[i])`` over 2**log2n contiguous float32
elements is compiled at O3 for the host CPU (scalar body, so the LLVM loop vectoriser makes
the SIMD code, as in the backend's elementwise kernels) and run on one thread; the time is
the median of ``repeat`` runs after a warm-up, in ns per element. Two builds are timed in
the same run: ``f32`` (the float32-native code, what the backend emits) and ``f64`` (the
older path: widen to double, compute, round once; ``LLVMScalar(native_f32=False)``), next
to numpy's float32 ufunc (scipy.special.erf for erf, when scipy is installed) on the same
input with ``out=``. The ratios are the figures that matter: absolute times drift on a
shared machine. The inputs are uniform over a typical range of each function.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import time

import numpy as np

OPS = ("exp", "expm1", "log", "log1p", "tanh", "erf", "sin", "cos", "pow")
RANGES = {"exp": (-10, 10), "expm1": (-5, 5), "log": (1e-3, 1e3), "log1p": (-0.9, 10),
          "tanh": (-5, 5), "erf": (-3, 3), "sin": (-100, 100), "cos": (-100, 100),
          "pow": (0.1, 10)}


def compile_loop(op: str, native_f32: bool):
    """ctypes function ``f(n, x, y, out)`` running ``out[i] = m.<op>(x[i][, y[i]])``."""
    import llvmlite.binding as llvm
    from llvmlite import ir

    from tracejit.codegen.llvm.scalar import LLVMScalar
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    f32, i64 = ir.FloatType(), ir.IntType(64)
    mod = ir.Module(name=op)
    mod.triple = llvm.get_process_triple()
    ptr = ir.PointerType(f32)
    fn = ir.Function(mod, ir.FunctionType(ir.VoidType(), [i64, ptr, ptr, ptr]), name="f")
    n, xp, yp, outp = fn.args
    for a in (xp, yp, outp):
        a.add_attribute("noalias")
    entry, loop, done = (fn.append_basic_block(s) for s in ("entry", "loop", "done"))
    b = ir.IRBuilder(entry)
    b.cbranch(b.icmp_signed(">", n, ir.Constant(i64, 0)), loop, done)
    b.position_at_end(loop)
    i = b.phi(i64)
    i.add_incoming(ir.Constant(i64, 0), entry)
    m = LLVMScalar(b, native_f32=native_f32)
    x = b.load(b.gep(xp, [i], inbounds=True))
    args = (x, b.load(b.gep(yp, [i], inbounds=True))) if op == "pow" else (x,)
    b.store(getattr(m, op)(*args), b.gep(outp, [i], inbounds=True))
    nxt = b.add(i, ir.Constant(i64, 1))
    i.add_incoming(nxt, loop)
    b.cbranch(b.icmp_signed("<", nxt, n), loop, done)
    b.position_at_end(done)
    b.ret_void()
    llmod = llvm.parse_assembly(str(mod))
    target = llvm.Target.from_triple(llvm.get_process_triple())
    tm = target.create_target_machine(cpu=llvm.get_host_cpu_name(),
                                      features=llvm.get_host_cpu_features().flatten(), opt=3)
    pto = llvm.create_pipeline_tuning_options(speed_level=3)
    pto.loop_vectorization = pto.slp_vectorization = True
    pb = llvm.create_pass_builder(tm, pto)
    pb.getModulePassManager().run(llmod, pb)
    engine = llvm.create_mcjit_compiler(llmod, tm)
    engine.finalize_object()
    cfn = ctypes.CFUNCTYPE(None, ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p,
                           ctypes.c_void_p)(engine.get_function_address("f"))
    cfn.engine = engine                     # keep the code alive with the function
    return cfn


def numpy_fn(op: str):
    """numpy's float32 ufunc (or scipy's erf), called with ``out=``; None if there is none."""
    if op == "erf":
        try:
            from scipy.special import erf
        except ImportError:
            return None
        return lambda x, y, out: erf(x, out=out)
    if op == "pow":
        return lambda x, y, out: np.power(x, y, out=out)
    uf = getattr(np, op)
    return lambda x, y, out: uf(x, out=out)


def median_ns(call, n: int, repeat: int) -> float:
    call()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        call()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts)) / n * 1e9


def run(ops, log2n: int, repeat: int) -> list[dict]:
    n = 1 << log2n
    rng = np.random.default_rng(0)
    rows = []
    for op in ops:
        lo, hi = RANGES[op]
        if op == "log":
            x = np.exp(rng.uniform(np.log(lo), np.log(hi), n)).astype(np.float32)
        else:
            x = rng.uniform(lo, hi, n).astype(np.float32)
        y = rng.uniform(-5, 5, n).astype(np.float32)
        out = np.empty_like(x)
        row = {"op": op}
        ptrs = (x.ctypes.data, y.ctypes.data, out.ctypes.data)
        for key, native in (("f32", True), ("f64", False)):
            f = compile_loop(op, native)
            row[key] = median_ns(lambda f=f, ptrs=ptrs: f(n, *ptrs), n, repeat)
        ref = numpy_fn(op)
        with np.errstate(all="ignore"):
            row["numpy"] = None if ref is None else median_ns(
                lambda ref=ref, args=(x, y, out): ref(*args), n, repeat)
        rows.append(row)
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m perf.llvm_math", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--log2n", type=int, default=22)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--ops", default=",".join(OPS))
    ap.add_argument("--json", metavar="PATH")
    a = ap.parse_args(argv)
    rows = run([o.strip() for o in a.ops.split(",") if o.strip()], a.log2n, a.repeat)
    print(f"ns/element, one thread, 2**{a.log2n} float32, median of {a.repeat}")
    print(f"{'op':6} {'f32':>7} {'f64 path':>9} {'numpy':>7} {'f32/numpy':>10} {'f64/f32':>8}")
    for r in rows:
        npy = r["numpy"]
        ratio = f"{r['f32'] / npy:10.2f}" if npy else f"{'-':>10}"
        nps = f"{npy:7.2f}" if npy else f"{'-':>7}"
        print(f"{r['op']:6} {r['f32']:7.2f} {r['f64']:9.2f} {nps} {ratio} "
              f"{r['f64'] / r['f32']:8.2f}")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
