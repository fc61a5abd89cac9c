"""The op table: one entry per operation (see base.py). Imports numpy only."""
from . import elementwise, external, shaped  # noqa: F401  (registers the entries)
from .base import M, OUT, REGISTRY, Op, broadcast_shapes
from .dtypes import DType

__all__ = ["M", "OUT", "REGISTRY", "Op", "DType", "broadcast_shapes"]
