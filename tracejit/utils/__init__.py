"""Utilities around tracejit that are not part of the tensor API.

`tracejit.utils.benchmark.compare(fn, *args)` times a user's function eager and compiled and
checks that both agree, in the same format as `python -m perf`.
"""
from . import benchmark

__all__ = ["benchmark"]
