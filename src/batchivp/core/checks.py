"""Load-time checks of the DOP853 tableau (diffrax's habit: a tableau is checked when built).

Runs on the host only, when :mod:`batchivp.core` is imported; never rendered.
"""

from . import coefficients as co

# The published coefficients carry about 30 digits; as doubles the sums hold to a few ulp.
TABLEAU_TOL = 1e-14


def check_tableau():
    """Raise ``ValueError`` if the coefficients are not a consistent DOP853 tableau.

    Checks: the weights of the 8th-order solution sum to one (order 1 condition),
    every row of ``A`` sums to its node ``C`` (stage consistency, extra stages included),
    and both error estimators sum to zero (they are differences of two solutions).
    """
    n = co.N_STAGES_EXTENDED
    problems = []
    if abs(sum(co.B) - 1.0) > TABLEAU_TOL:
        problems.append(f"sum(B) = {sum(co.B)!r}, expected 1")
    for s in range(1, n):
        row_sum = sum(co.A[s * n : s * n + s])
        if abs(row_sum - co.C[s]) > TABLEAU_TOL:
            problems.append(f"sum(A[{s}]) = {row_sum!r} != C[{s}] = {co.C[s]!r}")
    for name in ("E3", "E5"):
        total = sum(getattr(co, name))
        if abs(total) > TABLEAU_TOL:
            problems.append(f"sum({name}) = {total!r}, expected 0")
    if len(co.A) != n * n or len(co.C) != n or len(co.B) != co.N_STAGES:
        problems.append("tableau arrays have the wrong lengths")
    if len(co.D) != (co.INTERPOLATOR_POWER - co.END_ROWS) * n:
        problems.append("dense-output matrix D has the wrong length")
    if problems:
        raise ValueError("inconsistent DOP853 tableau: " + "; ".join(problems))
