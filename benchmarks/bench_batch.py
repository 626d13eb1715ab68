"""Benchmark: a Python loop of scipy's DOP853 against batchivp's targets, in one run.

The suite ships in the package (``batchivp bench`` runs it from an installed wheel):
the cases and how to read the table are in ``src/batchivp/bench/batch_cases.py``. This
script runs its cases (Kepler, Kepler+events, Lorenz) with the options it always had:
``--quick``, ``--repeat``, ``--scipy-sample``, ``--targets``, ``--cases``, ``--json``;
and ``--plot``.
"""

import sys

from batchivp.bench import batch_cases, runner


def main(argv=None):
    return runner.main(argv, description=batch_cases.__doc__.split("\n\n")[0],
                       default_cases="kepler,kepler+ev,lorenz",
                       quick_help="small sizes (32 orbits, 256 Lorenz problems), repeat 1")


if __name__ == "__main__":
    sys.exit(main())
