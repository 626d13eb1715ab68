"""Benchmark: single ``solve_ivp`` calls, scipy's against batchivp's drop-in, in one run.

The suite ships in the package (``batchivp bench`` runs it from an installed wheel):
the cases and how to read the table are in ``src/batchivp/bench/ivp_cases.py``. This
script prints their table of its own, with the options it always had: ``--repeat N``,
``--cases``, ``--json PATH``.
"""

import sys

from batchivp.bench.ivp_cases import main

if __name__ == "__main__":
    sys.exit(main())
