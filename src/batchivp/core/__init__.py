"""The numerical core: plain Python, rendered into every target's generated module.

Nothing here imports numpy, scipy, jinja or numba (docs/architecture.md, layering).
"""

from .checks import check_tableau

check_tableau()
