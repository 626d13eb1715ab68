"""The benchmark suite: scipy's DOP853 against batchivp's targets, ``batchivp bench``.

Run ``batchivp bench`` (or ``python -m batchivp bench``): every case, one table;
``--quick`` runs the quick cases at small sizes (CI: well under a minute on two cores,
compiling included); ``--cases``, ``--targets``, ``--repeat`` select; ``--json PATH``
keeps the figures, ``--plot PATH`` draws the speed-ups (matplotlib). The run exits with
status 1 when a problem's ``nfev`` differs from scipy's, the scipy loop summing in index
order as batchivp does (``--scipy-blas``, :mod:`.scipy_ref`). Cases:

- :mod:`.batch_cases`: ``kepler``, ``kepler+ev``, ``lorenz``, batches against a loop of
  scipy calls (also ``benchmarks/bench_batch.py``); ``lorenz-dtypes``, the Lorenz batch
  in float64, float32 and mixed precision on each target: speed and error against a
  tight float64 reference (own table);
- :mod:`.ivp_cases`: ``lotka``, ``arenstorf``, ``arenstorf+dense``, ``trivial``, single
  ``solve_ivp`` calls against scipy's (also ``benchmarks/bench_ivp.py``, own table);
- :mod:`.orbit_cases`: ``orbit``, a 100,000-fragment debris cloud under J2 and drag for
  a day, against a scipy loop extrapolated from a sample;
- :mod:`.first_call_cases`: ``first-call``, the first answer for a function new to the
  cache in fresh processes, inlined kernel (before) against linked (now) and scipy, and
  the per-step cost of each kernel kind (own tables, after the main one);
- :mod:`.summary_cases`: ``summaries``, the cost of statistics computed in the kernel
  against storing the trajectory (own table).

Each module's docstring describes its problems and how to read the figures.

Adding a case
-------------
A case is a function ``run(config) -> rows`` registered under a name; the runner
(:mod:`.runner`) calls it and never needs to change. The ``orbit`` case (a
cloud of 100,000 objects under J2 and drag) was added this way:

1. Write a module, here ``src/batchivp/bench/orbit_cases.py``::

       from .registry import register

       @register("orbit", quick=False)          # quick=True: part of --quick
       def run_orbit(config):
           n = 1_000 if config.quick else 100_000
           ...                                   # scipy on a sample, each target
           return rows

   ``config`` is a :class:`BenchConfig`: ``targets`` (those usable here, to time each),
   ``quick``, ``repeat`` and ``scipy_sample`` (None: the case's own default). Print
   progress lines as you go; the table comes after all cases. For a batch against
   scipy, :func:`.batch_cases.bench_case` does the timing and the nfev check given a
   :class:`.batch_cases.BatchCase` and the config.
2. Import the module below, after the others (that order is the table's).

A row is a dict of plain numbers and strings: ``case`` (the name), ``engine``
(``"scipy loop"`` or ``"scipy"`` for the reference, else the target), ``n`` (problems),
``compile_s`` (the first call: render and compile or load from the disk cache; None for
scipy), ``time_s`` (best run, compiled kernel in memory), ``extrapolated`` (True where
scipy ran a sample; then also ``scipy_problems`` and ``measured_s``), ``speedup``
(scipy time / ``time_s``; 1.0 on the reference row); for a target, ``nfev_equal`` and
``nfev_checked`` (problems whose nfev matches scipy's; a mismatch fails the run unless
the row has ``nfev_strict`` False: scipy's BLAS did not sum in index order);
optional ``steps_per_s``, ``fevals_per_s``, ``max_rel_dy``. ``register(...,
notes=f)`` adds the lines ``f(rows)`` after the table, given the rows of the whole run.
A row with a ``table`` key (its own table's name) is left out of the standard table and
the plot, for figures that do not fit its columns: the case's ``notes`` print it (it
is in the JSON, and its ``nfev_equal``/``nfev_checked``, if any, count as above).
"""

from . import batch_cases, ivp_cases, orbit_cases, sensitivity_cases  # noqa: F401  (registers the cases, in table order)
from . import summary_cases  # noqa: F401
from . import first_call_cases  # noqa: F401  (last: its own tables come after the main one)
from .registry import CASES, BenchCase, BenchConfig, register
from .runner import main, run

__all__ = ["CASES", "BenchCase", "BenchConfig", "main", "register", "run"]
