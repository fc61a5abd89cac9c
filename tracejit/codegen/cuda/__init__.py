"""The CUDA backend: Numba CUDA kernels generated as Python source from the op table's scalar
expressions and from the fusion pass's `Kernel` descriptions.

`array.py` owns `CudaArray` (a strided view of a numba device buffer: what a CUDA tensor's
`_data` is) and a caching allocator, `scalar.py` the scalar vocabulary `m` emitted as CUDA-Python
source, `loader.py` turns source into cached kernels (in memory and on disk), `kernels.py`
launches a fused `Kernel` and `lower.py` generates its source (elementwise, row-wise and split
reductions), `eager.py` runs one op-table entry on device arrays,
`indexing.py` gathers/scatters, `matmul.py` is the tiled shared-memory matmul and `backend.py`
compiles a whole graph. Everything here imports numba, so nothing outside this package imports
it at module level: `tracejit/cuda.py` loads it on the first CUDA operation.
"""
