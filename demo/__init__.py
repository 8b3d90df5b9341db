"""The live demo: reference participants choreograph orders on loopback while the
gateway reconstructs each order's status on demand."""

from ._run import Demo, Options, Summary, main

__all__ = ["Demo", "Options", "Summary", "main"]
