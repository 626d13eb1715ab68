"""The registry of benchmark cases: a name, a function producing table rows, options.

The contract a case fulfils is in the package docstring (:mod:`batchivp.bench`).
"""

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class BenchConfig:
    """What the runner hands every case."""

    targets: tuple  # the targets to time, all usable here (cuda only on a real GPU)
    quick: bool = False  # small, CI-sized problems
    repeat: int | None = None  # timed runs per engine, best kept; None: the case's default
    scipy_sample: int | None = None  # problems a sampled scipy loop runs; None: the case's default
    scipy_blas: str = "index"  # the scipy loop's BLAS order: "index" or "stock" (scipy_ref)


@dataclass(frozen=True)
class BenchCase:
    name: str
    run: Callable  # run(config: BenchConfig) -> list of row dicts
    quick: bool  # part of ``batchivp bench --quick``
    notes: Callable | None  # notes(rows of the whole run) -> lines printed after the table


CASES = {}  # name -> BenchCase, in registration order (the order of the table)


def register(name, *, quick=False, notes=None):
    """Decorator: register ``run(config) -> rows`` as the case ``name``."""
    def decorate(run):
        if name in CASES:
            raise ValueError(f"a benchmark case named {name!r} is already registered")
        CASES[name] = BenchCase(name, run, quick, notes)
        return run
    return decorate
