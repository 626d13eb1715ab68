"""The files batchivp keeps in its cache folder: listing, size and clearing.

:func:`render.load_module` writes each generated module as
``batchivp_generated_<target>_n<dim>_<hash>.py`` to :func:`render.cache_dir`, and numba
keeps the compiled functions of those modules next to them, in ``__pycache__``
(``*.nbi`` indexes, ``*.nbc`` code; Python may add a ``*.pyc``), or under
``NUMBA_CACHE_DIR`` when that is set. All of these names begin with
:data:`render.MODULE_PREFIX`, or ``guf-`` and that prefix for the gufunc wrappers;
compile locks end in ``.lock``. Only such files count as batchivp's: the folder may be
one the user chose (``BATCHIVP_CACHE_DIR``) and hold other things, which are never
listed or removed. Clearing costs a compile (several seconds per target) the next time
each kernel is used; clear while no batchivp process is running.
"""

import os
from dataclasses import dataclass, field
from pathlib import Path

from . import render

NUMBA_CACHE_SUFFIXES = (".nbi", ".nbc")


def numba_cache_dirs(folder):
    """The folders where numba caches the functions of modules in ``folder``: its
    ``__pycache__``, and numba's folder for it under ``NUMBA_CACHE_DIR`` when set."""
    folder = Path(folder)
    dirs = [folder / "__pycache__"]
    if os.environ.get("NUMBA_CACHE_DIR"):
        from numba.core import caching, config

        # numba's own mapping of a source folder to its folder under CACHE_DIR.
        subpath = caching.UserProvidedCacheLocator.get_suitable_cache_subpath(
            str(folder / "module.py"))
        dirs.append(Path(config.CACHE_DIR) / subpath)
    return dirs


@dataclass
class CacheUsage:
    """batchivp's files in one cache folder, by kind, and their size in bytes."""

    folder: Path
    modules: list = field(default_factory=list)  # batchivp_generated_*.py
    numba_files: list = field(default_factory=list)  # their *.nbi, *.nbc
    other_files: list = field(default_factory=list)  # *.pyc, interrupted *.tmp writes
    nbytes: int = 0

    @property
    def files(self):
        return self.modules + self.numba_files + self.other_files

    def summary(self):
        """One line: folder, size, and the count of each kind of file."""
        counts = [f"{len(self.modules):,} generated modules",
                  f"{len(self.numba_files):,} numba cache files"]
        if self.other_files:
            counts.append(f"{len(self.other_files):,} other files")
        return f"cache folder: {self.folder}: {format_bytes(self.nbytes)} ({', '.join(counts)})"


def cache_usage(folder=None):
    """:class:`CacheUsage` of ``folder`` (default :func:`render.cache_dir`); a missing
    folder is empty."""
    folder = Path(folder) if folder is not None else render.cache_dir()
    usage = CacheUsage(folder)
    for directory in [folder] + numba_cache_dirs(folder):
        if not directory.is_dir():
            continue
        # numba names a gufunc's wrapper cache "guf-<module>...": batchivp's too.
        paths = set(directory.glob(render.MODULE_PREFIX + "*"))
        paths |= set(directory.glob("guf-" + render.MODULE_PREFIX + "*"))
        for path in sorted(paths):
            if not path.is_file() or path.is_symlink():
                continue
            if directory == folder and path.suffix == ".py":
                usage.modules.append(path)
            elif path.suffix in NUMBA_CACHE_SUFFIXES:
                usage.numba_files.append(path)
            else:
                usage.other_files.append(path)
            usage.nbytes += path.stat().st_size
    return usage


def clear_cache(folder=None, dry_run=False):
    """Delete batchivp's files in ``folder`` (see the module docstring); return the
    :class:`CacheUsage` that was (with ``dry_run``, would be) freed. Folders stay."""
    usage = cache_usage(folder)
    if not dry_run:
        for path in usage.files:
            path.unlink(missing_ok=True)  # another process may have removed it first
    return usage


def format_bytes(nbytes):
    """``1536`` -> ``'1.5 KiB'`` (binary units)."""
    size = float(nbytes)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            break
        size /= 1024
    return f"{nbytes} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
