"""Processes, caches and scipy itself: fork after ``parallel``, threads, a damaged or
unwritable cache folder, a replaced ``scipy.integrate.solve_ivp``, a compile-lock wait,
what ``import batchivp`` loads.

Whatever can hang, abort or poison a process runs in a child process with a timeout.
"""

import importlib.metadata
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.integrate
from scipy.integrate._ivp.ivp import solve_ivp as scipy_solve_ivp

import batchivp as bi
from batchivp import cache, ivp, render


def child_env(**extra):
    """This process's environment for a child: no simulator, no default target."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("NUMBA_ENABLE_CUDASIM", "BATCHIVP_TARGET", "NUMBA_THREADING_LAYER")}
    env.update(extra)
    return env


def run_child(script, timeout, **env):
    """Run ``script`` (Python source) in a child; its completed process."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script)], env=child_env(**env),
                          capture_output=True, text=True, timeout=timeout)


def last_json(stdout):
    return json.loads(stdout.strip().splitlines()[-1])


# ---- fork after parallel, threads -------------------------------------------------

FORK_SCRIPT = """
    import json, multiprocessing, threading
    import numba, numpy as np
    import batchivp as bi
    from batchivp import models

    P = np.column_stack([np.full(8, 10.0), np.linspace(20.0, 30.0, 8), np.full(8, 8 / 3)])

    def solve(target, lo=0, hi=8):
        res = bi.solve_batch(models.lorenz, (0.0, 1.0), np.ones((hi - lo, 3)), params=P[lo:hi],
                             rtol=1e-8, atol=1e-8, target=target)
        return res.y_final.tolist(), res.nfev.tolist()

    parent = solve("parallel")  # starts numba's threads
    layer = numba.threading_layer()

    # Two threads launching parallel kernels at once (Dask's threads do).
    results = [None, None]
    def work(i):
        results[i] = [solve("parallel") for _ in range(3)]
    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads: t.start()
    for t in threads: t.join()
    threads_ok = all(r == [parent] * 3 for r in results)

    # Fork children that solve on cpu (loaded in the children) and on parallel.
    tasks = [("cpu", 0, 4), ("parallel", 4, 8), ("cpu", 4, 8), ("parallel", 0, 4)]
    with multiprocessing.get_context("fork").Pool(2) as pool:
        forked = pool.starmap_async(solve, tasks).get(timeout=240)
    here = [solve(*task) for task in tasks]
    print(json.dumps({"layer": layer, "threads_ok": threads_ok, "forked_equal": forked == here,
                      "parallel_equals_cpu": parent == solve("cpu")}))
"""


def test_fork_pool_and_threads_after_a_parallel_solve():
    """After a parallel solve, two threads solve on parallel at once, and a fork pool's
    children solve on cpu and parallel: no hang, no abort, the parent's answers.
    (numba's default layer here, GNU OpenMP, aborts every forked child.)"""
    proc = run_child(FORK_SCRIPT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = last_json(proc.stdout)
    assert out["threads_ok"] and out["forked_equal"] and out["parallel_equals_cpu"], out
    try:
        importlib.metadata.version("tbb")
    except importlib.metadata.PackageNotFoundError:
        assert out["layer"] in ("tbb", "workqueue")  # fork-safe, whatever loaded
    else:
        assert out["layer"] == "tbb", out  # fork- and thread-safe: batchivp chose it


@pytest.mark.parametrize("how", ["env", "config"])
def test_a_threading_layer_the_user_chose_is_kept(how):
    script = f"""
        import numba, numpy as np
        if {how!r} == "config":
            numba.config.THREADING_LAYER = "workqueue"
        import batchivp as bi
        from batchivp import models
        bi.solve_batch(models.lorenz, (0.0, 0.1), np.ones((2, 3)), params=[[10.0, 28.0, 8 / 3]] * 2,
                       target="parallel")
        print(numba.threading_layer())
    """
    env = {"NUMBA_THREADING_LAYER": "workqueue"} if how == "env" else {}
    proc = run_child(script, timeout=300, **env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split()[-1] == "workqueue"


# ---- a damaged cache heals itself ---------------------------------------------------

HEAL_SCRIPT = """
    import json, warnings
    import numpy as np, batchivp as bi
    warnings.simplefilter("always")
    f = bi.register_rhs("def heal_decay(t, y, p, dydt):\\n    dydt[0] = -p[0] * y[0]\\n")
    with warnings.catch_warnings(record=True) as caught:
        res = bi.solve_batch(f, (0.0, 1.0), np.ones((2, 1)), params=[[1.0], [2.0]],
                             rtol=1e-10, atol=1e-12, target="cpu")
    print(json.dumps({"y": res.y_final.tolist(), "nfev": res.nfev.tolist(),
                      "warnings": [str(w.message) for w in caught
                                   if issubclass(w.category, RuntimeWarning)]}))
"""


@pytest.fixture(scope="module")
def healthy_cache(tmp_path_factory):
    """A cache folder holding the compiled cpu kernel and function of HEAL_SCRIPT, and its
    answer."""
    folder = tmp_path_factory.mktemp("healthy-cache")
    proc = run_child(HEAL_SCRIPT, timeout=600, BATCHIVP_CACHE_DIR=str(folder))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = last_json(proc.stdout)
    np.testing.assert_allclose(out["y"], [[np.exp(-1.0)], [np.exp(-2.0)]], rtol=1e-8)
    assert out["warnings"] == []
    return folder, out


def _one(folder, pattern):
    paths = sorted(folder.glob(pattern))
    assert len(paths) == 1, (pattern, paths)
    return paths[0]


def _damage(path, how):
    data = path.read_bytes()
    path.write_bytes({"empty": b"", "truncated": data[: len(data) // 2],
                      "garbage": os.urandom(len(data))}[how])


@pytest.mark.parametrize("file, how", [
    ("module", "truncated"),  # the generated .py of the (linked) kernel
    ("kernel index", "empty"),  # numba's .nbi of the kernel
    ("kernel data", "truncated"),  # its .nbc
    ("wrapper data", "garbage"),  # the .nbc of the gufunc's wrapper, same length
    ("function module", "truncated"),  # the .py of the user's function alone
    ("function data", "garbage"),  # the .nbc of its C function
])
def test_a_damaged_cache_file_heals_in_the_next_process(healthy_cache, tmp_path, file, how):
    """Each later process used to fail (EOFError, UnpicklingError, AttributeError...):
    the next one warns once naming the file, rebuilds it and answers as before; the
    one after it loads without a warning."""
    source, healthy = healthy_cache
    folder = tmp_path / "cache"
    shutil.copytree(source, folder)
    pycache = folder / "__pycache__"
    path = {"module": lambda: _one(folder, "batchivp_generated_linked_cpu_*.py"),
            "function module": lambda: _one(folder, "batchivp_generated_plugin_*.py"),
            "function data": lambda: _one(pycache, "batchivp_generated_plugin_*.address-*.nbc"),
            "kernel index": lambda: _one(pycache, "batchivp_generated_*.dop853_kernel-*.nbi"),
            "kernel data": lambda: _one(pycache, "batchivp_generated_*.dop853_kernel-*.nbc"),
            "wrapper data": lambda: _one(pycache, "guf-batchivp_generated_*.nbc")}[file]()
    _damage(path, how)
    for run in range(2):
        proc = run_child(HEAL_SCRIPT, timeout=600, BATCHIVP_CACHE_DIR=str(folder))
        assert proc.returncode == 0, proc.stderr[-3000:]
        out = last_json(proc.stdout)
        assert (out["y"], out["nfev"]) == (healthy["y"], healthy["nfev"])
        if run == 0:
            assert len(out["warnings"]) == 1 and str(path) in out["warnings"][0], out["warnings"]
        else:
            assert out["warnings"] == []


@bi.rhs
def proc_decay(t, y, p, dydt):
    dydt[0] = -p[0] * y[0]


def _fresh_load(target="python"):
    """Load proc_decay's module as a new process would (nothing in memory)."""
    text, content_hash = render.render_source(target, 1, [proc_decay])
    sys.modules.pop(cache.module_stem(target, "n1", content_hash), None)
    render._modules.clear()
    return render.load_module(target, 1, [proc_decay]), text


@pytest.mark.parametrize("how", ["empty", "truncated", "garbage"])
def test_a_damaged_generated_module_is_written_again(tmp_path, monkeypatch, how):
    monkeypatch.setenv("BATCHIVP_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(render, "_modules", {})
    module, text = _fresh_load()
    path = Path(module.__file__)
    _damage(path, how)
    with pytest.warns(RuntimeWarning, match="generated module .* is damaged") as caught:
        module, _ = _fresh_load()
    assert len(caught) == 1 and str(path) in str(caught[0].message)
    assert path.read_text() == text
    res = bi.solve_batch(proc_decay, (0.0, 1.0), np.ones((1, 1)), params=[[2.0]],
                         rtol=1e-10, atol=1e-12, target="python")
    np.testing.assert_allclose(res.y_final[0, 0], np.exp(-2.0), rtol=1e-8)


# ---- an unwritable cache folder ------------------------------------------------------

def test_an_unwritable_cache_folder_compiles_in_a_private_one(tmp_path, monkeypatch):
    """A cache folder below a regular file cannot be created, even by root: modules go
    to a private temporary folder, with one warning for the folder."""
    (tmp_path / "a-file").write_text("not a folder")
    wanted = tmp_path / "a-file" / "cache"
    monkeypatch.setenv("BATCHIVP_CACHE_DIR", str(wanted))
    monkeypatch.setattr(render, "_modules", {})
    with pytest.warns(RuntimeWarning, match="cannot write to its cache folder") as caught:
        module, _ = _fresh_load()
    assert len(caught) == 1
    assert str(wanted) in str(caught[0].message) and "NotADirectoryError" in str(caught[0].message)
    private = Path(module.__file__).parent
    assert private != wanted and str(private) in str(caught[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        module, _ = _fresh_load()  # the same private folder, no second warning
    assert Path(module.__file__).parent == private


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root writes to read-only folders")
def test_a_read_only_cache_folder_compiles_in_a_private_one(tmp_path, monkeypatch):
    wanted = tmp_path / "read-only"
    wanted.mkdir(mode=0o500)
    monkeypatch.setenv("BATCHIVP_CACHE_DIR", str(wanted))
    monkeypatch.setattr(render, "_modules", {})
    with pytest.warns(RuntimeWarning, match="cannot write to its cache folder"):
        module, _ = _fresh_load()
    assert Path(module.__file__).parent != wanted


UNWRITABLE_SCRIPT = """
    import json, warnings
    import numpy as np, batchivp as bi
    from scipy.integrate._ivp.ivp import solve_ivp as scipy_solve_ivp
    from decay import decay
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = bi.solve_ivp(decay, (0.0, 2.0), [1.0, 2.0], rtol=1e-9, atol=1e-12)
    ref = scipy_solve_ivp(decay, (0.0, 2.0), [1.0, 2.0], method="DOP853", rtol=1e-9, atol=1e-12)
    print(json.dumps({"status": res.status, "y": res.y[:, -1].tolist(),
                      "scipy_y": ref.y[:, -1].tolist(),
                      "warnings": [f"{w.category.__name__}: {w.message}" for w in caught]}))
"""


def test_solve_ivp_with_an_unwritable_cache_compiles(tmp_path):
    """Not the "cannot compile" fallback to scipy: one warning about the folder, the
    compiled answer."""
    (tmp_path / "decay.py").write_text("def decay(t, y):\n    return [-y[0], -0.5 * y[1]]\n")
    (tmp_path / "a-file").write_text("")
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(UNWRITABLE_SCRIPT)], cwd=tmp_path,
        env=child_env(BATCHIVP_CACHE_DIR=str(tmp_path / "a-file" / "cache"),
                      PYTHONPATH=os.pathsep.join([str(tmp_path)] + sys.path)),
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = last_json(proc.stdout)
    assert len(out["warnings"]) == 1, out["warnings"]
    assert out["warnings"][0].startswith("RuntimeWarning: batchivp cannot write to its cache")
    assert out["status"] == 0
    np.testing.assert_allclose(out["y"], out["scipy_y"], rtol=1e-7)
    np.testing.assert_allclose(out["y"], [np.exp(-2.0), 2 * np.exp(-1.0)], rtol=1e-7)


def decay_plain(t, y):
    return [-y[0]]


def test_an_os_error_of_the_cache_is_not_a_compile_error(monkeypatch):
    """solve_ivp falls back to scipy only when numba cannot compile the function."""
    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(render, "load_module", disk_full)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ivp.CompilationWarning)
        with pytest.raises(OSError, match="No space left"):
            bi.solve_ivp(decay_plain, (0.0, 1.0), [1.0], target="cpu")


# ---- scipy's solve_ivp replaced by ours ---------------------------------------------

def test_scipy_solve_ivp_replaced_by_batchivp(monkeypatch):
    """``scipy.integrate.solve_ivp = batchivp.solve_ivp``: batchivp's hand-offs to scipy
    (another method, an empty problem, a callable it cannot compile) call scipy's own
    function, not the replaced name (RecursionError before), and give scipy's answers."""
    monkeypatch.setattr(scipy.integrate, "solve_ivp", bi.solve_ivp)
    fun = eval("lambda t, y: -y")  # no source to read: batchivp cannot compile it

    res = scipy.integrate.solve_ivp(fun, (0.0, 1.0), [1.0, 2.0], method="RK45")
    ref = scipy_solve_ivp(fun, (0.0, 1.0), [1.0, 2.0], method="RK45")
    assert res.nfev == ref.nfev
    np.testing.assert_array_equal(res.y, ref.y)

    res = scipy.integrate.solve_ivp(fun, (0.0, 1.0), [])
    ref = scipy_solve_ivp(fun, (0.0, 1.0), [], method="DOP853")
    assert res.status == ref.status == 0 and res.y.shape == ref.y.shape

    with pytest.warns(ivp.CompilationWarning):
        res = scipy.integrate.solve_ivp(fun, (0.0, 1.0), [1.0, 2.0], rtol=1e-8)
    ref = scipy_solve_ivp(fun, (0.0, 1.0), [1.0, 2.0], method="DOP853", rtol=1e-8)
    assert res.nfev == ref.nfev
    np.testing.assert_array_equal(res.y, ref.y)


# ---- import batchivp ---------------------------------------------------------------

IMPORT_SCRIPT = """
    import json, sys
    import batchivp
    print(json.dumps(sorted({name.partition(".")[0] for name in sys.modules})))
"""


@pytest.mark.parametrize("heavy", ["scipy", "numba", "dask", "jinja2"])
def test_import_batchivp_leaves_the_heavy_libraries_unloaded(heavy):
    """``import batchivp`` answers at once (issue 15): scipy, numba, jinja2 and dask
    are imported by the first call that needs them, not by the import."""
    proc = run_child(IMPORT_SCRIPT, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert heavy not in last_json(proc.stdout)


# ---- the compile lock ------------------------------------------------------------------

HOLD_LOCK = """
    import fcntl, os, sys
    with open(sys.argv[1], "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0); handle.truncate(); handle.write(f"{os.getpid()}\\n"); handle.flush()
        print("locked", flush=True)
        sys.stdin.readline()  # hold the lock until the test lets go
"""


def _hold_lock(lock_path):
    """A process holding the lock at ``lock_path`` until a line is written to its stdin."""
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(HOLD_LOCK), str(lock_path)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def _release(holder):
    if holder.poll() is None:
        holder.communicate("go\n", timeout=60)


@pytest.mark.skipif(sys.platform == "win32", reason="the compile lock is POSIX only")
def test_a_long_compile_lock_wait_says_what_it_waits_for(tmp_path, monkeypatch, capsys):
    """The lock is held until the notice is out (a loaded machine may take seconds to
    reach the lock: a fixed hold would race it)."""
    monkeypatch.setenv("BATCHIVP_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(render, "_modules", {})
    monkeypatch.setattr(cache, "LOCK_NOTICE_SECONDS", 1.0)
    _, content_hash = render.render_source("python", 1, [proc_decay])
    stem = cache.module_stem("python", "n1", content_hash)
    holder = _hold_lock(tmp_path / f"{stem}.lock")
    loaded = []
    loader = threading.Thread(target=lambda: loaded.append(_fresh_load()[0]), daemon=True)
    err, deadline = "", time.monotonic() + 120
    try:
        loader.start()
        while "batchivp: waiting" not in err and time.monotonic() < deadline:
            time.sleep(0.05)
            err += capsys.readouterr().err
        assert not loaded  # still waiting for the lock
    finally:
        _release(holder)
    loader.join(timeout=120)
    assert loaded and loaded[0].NDIM == 1
    err += capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("batchivp: waiting")]
    assert len(lines) == 1, err
    assert f"process {holder.pid}" in lines[0] and f"{stem}.py" in lines[0]
    assert str(tmp_path / f"{stem}.lock") in lines[0]


WAIT_FOR_LOCK = """
    import sys
    import batchivp as bi
    from batchivp import render
    f = bi.register_rhs("def lock_decay(t, y, p, dydt):\\n    dydt[0] = -y[0]\\n")
    print(render.render_source("python", 1, [f])[1], flush=True)
    sys.stdin.readline()  # the test holds the lock now
    render.load_module("python", 1, [f])
    print("loaded", flush=True)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="the compile lock is POSIX only")
def test_ctrl_c_interrupts_a_compile_lock_wait(tmp_path):
    waiter = subprocess.Popen([sys.executable, "-c", textwrap.dedent(WAIT_FOR_LOCK)],
                              env=child_env(BATCHIVP_CACHE_DIR=str(tmp_path)),
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    holder = None
    try:
        content_hash = waiter.stdout.readline().strip()
        holder = _hold_lock(tmp_path / f"{cache.module_stem('python', 'n1', content_hash)}.lock")
        waiter.stdin.write("go\n")
        waiter.stdin.flush()
        time.sleep(2.0)
        assert waiter.poll() is None  # waiting
        waiter.send_signal(signal.SIGINT)
        out, err = waiter.communicate(timeout=10)
    finally:
        waiter.kill()
        if holder is not None:
            holder.kill()
            holder.wait()
    assert "loaded" not in out
    assert waiter.returncode != 0 and "KeyboardInterrupt" in err, err
