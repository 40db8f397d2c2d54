"""Benchmarks, each run as `python -m bench.NAME` from the repository root (see each module's docstring).

Several drive the functional test framework (tests/functional), whose helpers import their siblings top-level,
as under pytest, which puts tests/ on sys.path: so tests/ goes on it here too, after everything else.
"""

import sys
from pathlib import Path

_TESTS = str(Path(__file__).resolve().parent.parent / "tests")
if _TESTS not in sys.path:
    sys.path.append(_TESTS)
