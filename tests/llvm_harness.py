"""Test harness: JIT-compile an element-wise loop around one ``LLVMScalar`` primitive.

``compile_op`` builds ``void f(i64 n, T0* noalias in0, T1* noalias in1, Tout* noalias out)``
whose loop body is ``out[i] = m.<op>(in0[i], in1[i])``, optimises it with the O3 new pass
manager pipeline for the host CPU (so the loop vectoriser runs), loads it with MCJIT and
returns a callable on numpy arrays plus the optimised IR text.
"""
from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir

from tracejit.codegen.llvm.scalar import DTYPES, LLVMScalar

NP_DTYPES = {"float32": np.float32, "float64": np.float64, "int32": np.int32,
             "int64": np.int64, "bool": np.bool_}


def _target_machine() -> llvm.TargetMachine:
    """A fresh host target machine (an MCJIT engine takes ownership of the one it gets)."""
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    target = llvm.Target.from_triple(llvm.get_process_triple())
    return target.create_target_machine(cpu=llvm.get_host_cpu_name(),
                                        features=llvm.get_host_cpu_features().flatten(),
                                        opt=3)


def _mem_type(dtype: str) -> ir.Type:
    return ir.IntType(8) if dtype == "bool" else DTYPES[dtype]


class Kernel:
    """A compiled loop; call it with input arrays, get the output array."""

    def __init__(self, body: Callable, in_dtypes: tuple[str, ...], out_dtype: str,
                 lanes: int | None = None, native_f32: bool = True):
        """``lanes``: process explicit <lanes x T> vectors per iteration instead of scalars;
        ``native_f32=False``: float32 transcendentals through the f64 kernels."""
        self.in_dtypes, self.out_dtype, self.lanes = in_dtypes, out_dtype, lanes
        mod = ir.Module(name="kernel")
        mod.triple = llvm.get_process_triple()
        ptrs = [ir.PointerType(_mem_type(d))
                for d in (in_dtypes[0], in_dtypes[-1], in_dtypes[-1], out_dtype)]
        i64 = ir.IntType(64)
        fn = ir.Function(mod, ir.FunctionType(ir.VoidType(), [i64, ptrs[0], ptrs[1], ptrs[3]]),
                         name="f")
        n, in0, in1, out = fn.args
        for arg in (in0, in1, out):
            arg.add_attribute("noalias")
        entry, loop, done = (fn.append_basic_block(s) for s in ("entry", "loop", "done"))
        b = ir.IRBuilder(entry)
        b.cbranch(b.icmp_signed(">", n, ir.Constant(i64, 0)), loop, done)
        b.position_at_end(loop)
        i = b.phi(i64)
        i.add_incoming(ir.Constant(i64, 0), entry)
        def vec(t: ir.Type) -> ir.Type:
            return t if lanes is None else ir.VectorType(t, lanes)

        def addr(ptr: ir.Value, dt: str) -> ir.Value:
            p = b.gep(ptr, [i], inbounds=True)
            return p if lanes is None else b.bitcast(p, ir.PointerType(vec(_mem_type(dt))))
        args = []
        for ptr, dt in zip((in0, in1), in_dtypes):
            v = b.load(addr(ptr, dt), align=1)   # numpy data is only element-aligned
            args.append(b.trunc(v, vec(ir.IntType(1))) if dt == "bool" else v)
        res = body(LLVMScalar(b, native_f32=native_f32), *args)
        if out_dtype == "bool":
            res = b.zext(res, vec(ir.IntType(8)))
        b.store(res, addr(out, out_dtype), align=1)
        nxt = b.add(i, ir.Constant(i64, lanes or 1))
        i.add_incoming(nxt, loop)
        b.cbranch(b.icmp_signed("<", nxt, n), loop, done)
        b.position_at_end(done)
        b.ret_void()
        self.raw_ir = str(mod)
        llmod = llvm.parse_assembly(self.raw_ir)
        llmod.verify()
        tm = _target_machine()
        pto = llvm.create_pipeline_tuning_options(speed_level=3)
        pto.loop_vectorization = True
        pto.slp_vectorization = True
        pb = llvm.create_pass_builder(tm, pto)
        pb.getModulePassManager().run(llmod, pb)
        self.opt_ir = str(llmod)
        self._engine = llvm.create_mcjit_compiler(llmod, tm)
        self._engine.finalize_object()
        self._fn = ctypes.CFUNCTYPE(None, ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p,
                                    ctypes.c_void_p)(self._engine.get_function_address("f"))

    def __call__(self, *arrays: np.ndarray) -> np.ndarray:
        ins = [np.ascontiguousarray(a, dtype=NP_DTYPES[d])
               for a, d in zip(arrays, self.in_dtypes)]
        ins = [np.broadcast_to(a, ins[0].shape).copy() for a in ins]
        n = ins[0].size
        if self.lanes:                            # pad to whole vectors
            pad = -n % self.lanes
            ins = [np.concatenate([a.ravel(), np.repeat(a.ravel()[:1], pad)]) for a in ins]
        out = np.empty(ins[0].size, dtype=NP_DTYPES[self.out_dtype])
        second = ins[1] if len(ins) > 1 else ins[0]
        self._fn(out.size, ins[0].ctypes.data, second.ctypes.data, out.ctypes.data)
        return out[:n].reshape(arrays[0].shape)


@functools.cache
def compile_op(op: str, in_dtypes: tuple[str, ...], out_dtype: str | None = None,
               extra: tuple = (), lanes: int | None = None,
               native_f32: bool = True) -> Kernel:
    """Kernel for ``m.<op>(*inputs, *extra)``; out dtype defaults to the first input's."""
    def body(m: LLVMScalar, *xs: ir.Value) -> ir.Value:
        return getattr(m, op)(*xs[:len(in_dtypes)], *extra)
    return Kernel(body, in_dtypes, out_dtype or in_dtypes[0], lanes, native_f32)
