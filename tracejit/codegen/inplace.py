"""Which in-place updates a backend may write straight into the updated input's memory.

A compiled function that modifies an input (an optimizer step, BatchNorm's running stats)
returns the new value as an extra output; the caller copies it back. When the kernel computing
that output is the input's last reader, it can store into the input's array instead, and the
copy disappears. Both backends plan this the same way, over their schedule's steps given as
`(kind, step, ins, outs, ...)` tuples: kind "k" is a fused kernel (`step.k`, ins its load
values' ids, outs its stores' ids), kind "n" one graph node run on its own.
"""
from __future__ import annotations

from ..ir.kernel import Kernel

_NEW_ARRAY = ("matmul", "cat")     # nodes that never return a view of an input


def overwrite_ok(k: Kernel, store: int, value) -> bool:
    """Whether store `store` may write over the array `value` is read from: every load of it
    has the store's index map, so each element is read before it is written, by the thread
    that writes it. In a reduction only a store of a reduced result qualifies (once per output,
    after all passes: the final stage of a split reduction)."""
    st = k.stores[store]
    if k.is_reduce and st.inner:
        return False
    return all(ld.dims == st.dims for ld in k.loads if ld.value is value)


def plan(steps: list, graph, inplace: dict, writes_in_place, first: int = 0) -> dict:
    """{id(output node): (input index, step index, store index)} for the outputs of `inplace`
    ({output index: input index}) that may be stored into their input: computed by a kernel
    step at index >= `first` for which `writes_in_place(step)` holds, whose loads of the input
    allow it (`overwrite_ok`), with no step from that one on reading the input or a view of it,
    the output returned once and the input not returned."""
    out_ids = [id(o) for o in graph.outputs]
    donors: dict = {}
    for oi, ii in inplace.items():
        o, inp = graph.outputs[oi], graph.inputs[ii]
        if out_ids.count(id(o)) != 1 or id(inp) in out_ids or o.type != inp.type:
            continue
        s = next((i for i, st in enumerate(steps) if st[0] == "k" and id(o) in st[3]), None)
        if s is None or s < first or not writes_in_place(steps[s][1]):
            continue
        j = steps[s][3].index(id(o))
        if overwrite_ok(steps[s][1].k, j, inp) and \
                last_read(steps, id(inp), set(out_ids), skip=s) < s:
            donors[id(o)] = (ii, s, j)
    return donors


def last_read(steps: list, v: int, out_ids: set, skip: int = -1) -> int:
    """The last step that reads value v or a view made of it, leaving out step `skip`'s direct
    loads of v (not its loads of views); -1 when none does, len(steps) when a view of it is
    returned (the outputs are read after the last step)."""
    last = -1
    for i, st in enumerate(steps):
        kind, step, ins, outs = st[:4]
        if v not in ins or i == skip:
            continue
        last = max(last, i)
        if kind == "n" and step.op not in _NEW_ARRAY:            # may return a view of v
            last = max(last, len(steps) if outs[0] in out_ids else
                       last_read(steps, outs[0], out_ids))
    return last
