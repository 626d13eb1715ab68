"""The cache folder: where it is, its health, the files batchivp keeps in it, and how
a generated module gets there and is imported.

:func:`import_generated` writes each generated module (rendered by
:mod:`batchivp.render`) as ``batchivp_generated_<target>_n<dim>_<hash>.py`` to
:func:`usable_cache_dir`, once, and imports it under a compile lock
(:func:`compile_lock`); numba keeps the compiled functions of those modules next to
them, in ``__pycache__`` (``*.nbi`` indexes, ``*.nbc`` code; Python may add a
``*.pyc``), or under ``NUMBA_CACHE_DIR`` when that is set. All of these names begin with
:data:`MODULE_PREFIX`, or ``guf-`` and that prefix for the gufunc wrappers;
compile locks end in ``.lock``. Only such files count as batchivp's: the folder may be
one the user chose (``BATCHIVP_CACHE_DIR``) and hold other things, which are never
listed or removed. Clearing costs a compile (several seconds per target) the next time
each kernel is used; clear while no batchivp process is running.

Two things must not stop a solve: a cache folder batchivp cannot write
(:func:`usable_cache_dir` then compiles in a private temporary folder, with one
warning), and a damaged cache file (a cut-short write, a full disk):
:func:`import_generated` finds it (:func:`module_file_intact`,
:func:`remove_damaged_numba_files`), and the file is replaced or removed, with one
warning naming it.
"""

import atexit
import contextlib
import glob
import importlib.util
import os
import pickle
import pickletools
import re
import shutil
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

CACHE_ENV_VAR = "BATCHIVP_CACHE_DIR"
MODULE_PREFIX = "batchivp_generated_"
NUMBA_CACHE_SUFFIXES = (".nbi", ".nbc")
LOCK_NOTICE_SECONDS = 5.0  # a compile-lock wait longer than this says what it waits for


def cache_dir():
    """Where generated modules go: ``$BATCHIVP_CACHE_DIR`` or the user cache folder."""
    configured = os.environ.get(CACHE_ENV_VAR)
    if configured:
        return Path(configured).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("batchivp")) / "generated"


_usable_lock = threading.Lock()
_usable = {}  # configured folder -> the folder used: itself, or a private one


def usable_cache_dir():
    """:func:`cache_dir` when batchivp can create it and write in it; else a private
    temporary folder of this process (removed at exit), with one ``RuntimeWarning``
    saying which folder failed, why, and where kernels compile instead.

    Checked once per folder and process, by writing a file: ``os.access`` says yes to
    root on a read-only file system, and no error must reach a solve as "cannot compile".
    """
    folder = cache_dir()
    with _usable_lock:
        used = _usable.get(folder)
        if used is None:
            reason = _unwritable_reason(folder)
            used = folder if reason is None else _private_dir()
            if reason is not None:
                warnings.warn(
                    f"batchivp cannot write to its cache folder {folder} ({reason}); "
                    f"compiling in the private temporary folder {used} instead, which is "
                    "removed at exit, so each process compiles its kernels again. Set "
                    f"{CACHE_ENV_VAR} to a writable folder to keep them.",
                    RuntimeWarning, stacklevel=4)
            _usable[folder] = used
    return used


def _unwritable_reason(folder):
    """None if ``folder`` can be created and written, else the error, in words."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=MODULE_PREFIX, suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return f"{type(exc).__name__}: {exc.strerror or exc}"
    return None


def _private_dir():
    folder = Path(tempfile.mkdtemp(prefix="batchivp-cache-"))
    atexit.register(_remove_private_dir, folder, os.getpid())
    return folder


def _remove_private_dir(folder, pid):
    if os.getpid() == pid:  # not in a forked child that exits normally
        shutil.rmtree(folder, ignore_errors=True)


def write_atomic(path, text):
    """Write ``text`` (UTF-8, Python's source encoding) to ``path`` by renaming a
    complete temporary file into place: readers see the old file or the new one, whole."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_once(path, text):
    """Write ``text`` to ``path`` atomically unless it is already there.

    An existing file is never rewritten: its mtime keys numba's on-disk cache (a
    damaged one is replaced by :func:`replace_damaged_module`). Two processes
    rendering at once both write a temporary file and rename it into place; the
    contents are equal, so either rename wins.
    """
    if path.is_file():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, text)


def module_file_intact(path, text):
    """True when the generated module at ``path`` holds exactly ``text``, the source
    its name's content hash was computed from (a file cut short, emptied or
    overwritten is not)."""
    try:
        return path.read_text(encoding="utf-8", errors="replace") == text
    except FileNotFoundError:
        return False


def replace_damaged_module(path, text):
    """Replace the damaged generated module at ``path`` with ``text`` (atomically),
    remove numba's cache of it (compiled from the damaged file, or stale), and warn."""
    size = path.stat().st_size if path.exists() else 0
    warnings.warn(
        f"batchivp's generated module {path} is damaged ({size:,} bytes, its content "
        "does not match its hash); writing it again and compiling it again.",
        RuntimeWarning, stacklevel=4)
    write_atomic(path, text)
    for cached in numba_files(path):
        cached.unlink(missing_ok=True)


def numba_files(module_path):
    """numba's cache files (``.nbi``, ``.nbc``) of the generated module at ``module_path``,
    its functions' and its gufunc wrappers'."""
    stem = Path(module_path).stem
    files = []
    for directory in numba_cache_dirs(Path(module_path).parent):
        for pattern in (f"{stem}.*", f"guf-{stem}.*"):
            files += [p for p in directory.glob(pattern) if p.suffix in NUMBA_CACHE_SUFFIXES]
    return sorted(files)


def remove_damaged_numba_files(module_path, exc=None):
    """Remove each of numba's cache files of ``module_path`` that cannot be read, with
    one ``RuntimeWarning`` naming it; return the removed paths.

    numba recompiles when a cache file is missing or stale, but fails with unrelated
    errors (``EOFError``, ``UnpicklingError``, ...) on one cut short or overwritten
    (numba/core/caching.py reads them with ``pickle`` and catches only ``OSError``).
    A file is damaged when it does not unpickle, or when ``exc`` (the error of the
    load) arose in numba's reading of it. An index goes with its data files and a data
    file with its index, so numba rebuilds that function's entry whole.
    """
    damaged = {path: reason for path in numba_files(module_path)
               if (reason := _unreadable_reason(path)) is not None}
    if exc is not None:
        path = _numba_file_of_error(exc)
        if path is not None and path.exists():
            damaged.setdefault(path, f"{type(exc).__name__}: {exc}"[:200])
    removed = []
    for path, reason in damaged.items():
        warnings.warn(f"numba's cache file {path} is damaged ({reason}); removing it and "
                      "compiling again.", RuntimeWarning, stacklevel=4)
        # numba's names: <module>.<function>-<line>.py311.nbi and .py311.<k>.nbc
        match = re.fullmatch(r"(.*\.py\d+)(\.\d+)?\.nb[ic]", path.name)
        entries = [path] if match is None else [
            p for p in path.parent.glob(glob.escape(match[1]) + ".*")
            if re.fullmatch(r"(\.\d+)?\.nb[ic]", p.name[len(match[1]):])]
        for entry in entries:
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def _unreadable_reason(path):
    """None if numba's cache file ``path`` is a whole pickle (an index: numba's version,
    then one), else why not. Its opcodes are read, not run: unpickling would import the
    generated module."""
    try:
        with open(path, "rb") as handle:
            if path.suffix == ".nbi":
                import numba

                if pickle.load(handle) != numba.__version__:
                    return None  # another numba's index: numba ignores it
            data = handle.read()
        end = None
        for opcode, _, pos in pickletools.genops(data):
            end = pos if opcode.name == "STOP" else None
        if end != len(data) - 1:
            return "not a whole pickle"
    except FileNotFoundError:
        return None  # removed meanwhile (by another process healing it)
    except Exception as exc:  # garbage can raise almost anything
        return f"{type(exc).__name__}: {exc}"[:200]
    return None


def _numba_file_of_error(exc):
    """The cache file numba was reading when ``exc`` (or an error it chains) arose."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        tb = exc.__traceback__
        while tb is not None:
            code = tb.tb_frame.f_code
            if Path(code.co_filename).match("numba/core/caching.py"):
                local = tb.tb_frame.f_locals
                if code.co_name == "_load_index":
                    return Path(local["self"]._index_path)
                if code.co_name == "_load_data" and "path" in local:
                    return Path(local["path"])
            tb = tb.tb_next
        exc = exc.__cause__ or exc.__context__
    return None


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


# ---- importing a generated module: one process compiles it at a time ----

def module_stem(*parts):
    """The import name (and file stem) of a generated module named by ``parts``, which
    end with its content hash: ``batchivp_generated_<parts joined by _>``."""
    return MODULE_PREFIX + "_".join(parts)


def module_path(stem):
    """Where the generated module ``stem`` is written: the usable cache folder."""
    return usable_cache_dir() / f"{stem}.py"


def import_generated(path, text):
    """Write (or heal) the generated module ``text`` at ``path`` and import it.

    A file that does not hold ``text`` is damaged (its name is ``text``'s hash) and is
    replaced (:func:`replace_damaged_module`); numba's cache files that fail to load
    are removed (:func:`remove_damaged_numba_files`) and the module is compiled again,
    each with one warning. The module is compiled from ``text``, not from a ``.pyc``:
    that is one cache file less to go bad.
    """
    write_once(path, text)
    if not module_file_intact(path, text):
        with compile_lock(path, always=True):
            if not module_file_intact(path, text):  # else another process healed it
                replace_damaged_module(path, text)
    stem, healed = path.stem, set()
    while True:
        spec = importlib.util.spec_from_file_location(stem, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[stem] = module
        try:
            with compile_lock(path, always=bool(healed)):
                exec(compile(text, str(path), "exec", dont_inherit=True), module.__dict__)
            return module
        except Exception as exc:
            del sys.modules[stem]
            with compile_lock(path, always=True):
                removed = set(remove_damaged_numba_files(path, exc))
            if not removed - healed:
                raise
            healed |= removed
        except BaseException:
            del sys.modules[stem]
            raise


def is_compiled(path):
    """Whether numba's disk cache holds the generated module at ``path`` complete: the
    index of its kernel's gufunc wrapper, written last, or of a plugin module's C
    function (``address``, its only compiled function) is there."""
    patterns = (f"guf-{path.stem}.*.nbi", f"{path.stem}.address-*.nbi")
    return any(any(folder.glob(pattern)) for folder in numba_cache_dirs(path.parent)
               for pattern in patterns)


@contextlib.contextmanager
def compile_lock(path, always=False):
    """Let one process at a time compile the generated module at ``path``.

    Workaround: numba's disk cache is not safe against processes compiling the same
    gufunc at once: the kernel's cache files and its wrapper's (``guf-*``) can then come
    from different processes, and every later load segfaults (numba/numba#10128). Dask
    workers and parallel test runs on a cold cache do just that. Once the wrapper's
    index is there the cache is complete and loading needs no lock (unless ``always``:
    healing a damaged cache). POSIX only (``fcntl``); elsewhere there is no lock.
    """
    try:
        import fcntl
    except ImportError:
        fcntl = None
    if fcntl is None or (not always and is_compiled(path)):
        yield
        return
    lock_path = path.with_suffix(".lock")
    with open(lock_path, "a+") as handle:
        _wait_for_lock(fcntl, handle, path, lock_path)
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n")  # who holds it, for those who wait
            handle.flush()
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _wait_for_lock(fcntl, handle, path, lock_path):
    """Take the exclusive lock on ``handle``. A wait longer than
    :data:`LOCK_NOTICE_SECONDS` prints one line on stderr naming the module, the lock
    file and the process holding it. Polls (``LOCK_NB``), so Ctrl-C interrupts the
    wait at once in any thread that gets it."""
    start, told = time.monotonic(), False
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        if not told and time.monotonic() - start > LOCK_NOTICE_SECONDS:
            told = True
            print(f"batchivp: waiting for {_lock_holder(lock_path)} to finish compiling "
                  f"{path.name} (lock file {lock_path}); compiles take seconds to minutes",
                  file=sys.stderr, flush=True)
        time.sleep(0.05)


def _lock_holder(lock_path):
    """``"process 1234"`` (the pid the holder wrote, if that process runs), else
    ``"another process"``."""
    try:
        pid = int(lock_path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return "another process"
    try:
        os.kill(pid, 0)
    except PermissionError:
        pass  # it runs, as another user
    except OSError:
        return "another process"
    return f"process {pid}"


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
    """:class:`CacheUsage` of ``folder`` (default :func:`cache_dir`); a missing
    folder is empty."""
    folder = Path(folder) if folder is not None else cache_dir()
    usage = CacheUsage(folder)
    for directory in [folder] + numba_cache_dirs(folder):
        if not directory.is_dir():
            continue
        # numba names a gufunc's wrapper cache "guf-<module>...": batchivp's too.
        paths = set(directory.glob(MODULE_PREFIX + "*"))
        paths |= set(directory.glob("guf-" + MODULE_PREFIX + "*"))
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
