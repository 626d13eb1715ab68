"""The command line: ``python -m batchivp info``, ``cache``, ``bench`` (in subprocesses)."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

import batchivp as bi
from batchivp import cache

REPO = Path(__file__).resolve().parents[1]
MODULE = "batchivp_generated_cpu_n1_0123456789abcdef0123"


def run_cli(args, cache_dir, timeout=60, **env_extra):
    """``python -m batchivp *args`` with its own cache folder, no simulator, default target."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("NUMBA_ENABLE_CUDASIM", "BATCHIVP_TARGET", "NUMBA_CACHE_DIR")}
    env.update(BATCHIVP_CACHE_DIR=str(cache_dir), **env_extra)
    return subprocess.run([sys.executable, "-m", "batchivp", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def line_starting(text, prefix):
    lines = [line for line in text.splitlines() if line.startswith(prefix)]
    assert len(lines) == 1, text
    return lines[0]


def fake_cache(folder):
    """batchivp's files as render and numba name them, and files of others beside them.
    Returns (ours: path -> size, others)."""
    pycache = folder / "__pycache__"
    pycache.mkdir(parents=True)
    ours = {folder / f"{MODULE}.py": 3000,
            pycache / f"{MODULE}.kernel-120.py311.nbi": 700,
            pycache / f"{MODULE}.kernel-120.py311.1.nbc": 5000,
            pycache / f"guf-{MODULE}.dop853_kernel-5.py311.nbi": 300,  # a gufunc wrapper
            folder / f"{MODULE}.lock": 0,  # render's compile lock
            folder / f"{MODULE}k2h1x9.tmp": 10}  # a write cut short (cache.write_once)
    others = [folder / "notes.txt", folder / "mymodule.py", pycache / "mymodule.cpython-311.pyc",
              folder / "sub" / f"{MODULE}.py"]  # not batchivp's folder: left alone
    for path, size in list(ours.items()) + [(p, 100_000) for p in others]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * size)
    return ours, others


def test_format_bytes():
    assert cache.format_bytes(0) == "0 bytes"
    assert cache.format_bytes(1023) == "1023 bytes"
    assert cache.format_bytes(1536) == "1.5 KiB"
    assert cache.format_bytes(3 * 1024 ** 3) == "3.0 GiB"


@pytest.mark.parametrize("env", [{}, {"NUMBA_ENABLE_CUDASIM": "1", "BATCHIVP_TARGET": "cpu"},
                                 {"BATCHIVP_TARGET": "bogus"}], ids=["plain", "simulator", "bad-target"])
def test_info_reports_targets_and_cache_size(tmp_path, env):
    ours, _ = fake_cache(tmp_path)
    done = run_cli(["info"], tmp_path, **env)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert line_starting(out, "batchivp ").startswith(f"batchivp {bi.__version__}, numba ")
    usable = line_starting(out, "targets usable here: ")
    assert usable.startswith("targets usable here: cpu, parallel")
    cuda_line = line_starting(out, "cuda: ")
    if env.get("NUMBA_ENABLE_CUDASIM"):
        assert "simulator" in cuda_line and "cuda" in usable
    else:  # a GPU machine names its GPU, any other says why not
        assert cuda_line.startswith(("cuda: not usable: ", "cuda: usable, GPU: "))
        assert ("cuda" in usable) == cuda_line.startswith("cuda: usable")
    default = line_starting(out, "default target: ")
    if env.get("BATCHIVP_TARGET") == "cpu":
        assert default.startswith("default target: cpu ")
    elif env.get("BATCHIVP_TARGET") == "bogus":
        assert default.startswith("default target: none: ") and "'bogus'" in default
    else:
        assert default.split()[2] in ("parallel", "cuda")
    # Only batchivp's files count: the others are 100,000 bytes each.
    assert line_starting(out, "cache folder: ") == (
        f"cache folder: {tmp_path}: {cache.format_bytes(sum(ours.values()))} "
        "(1 generated modules, 3 numba cache files, 2 other files)")


def test_cache_clear_removes_only_batchivp_files(tmp_path):
    ours, others = fake_cache(tmp_path)
    freed = f"{cache.format_bytes(sum(ours.values()))}: 1 generated modules, 3 numba cache files"

    dry = run_cli(["cache", "clear", "--dry-run"], tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert set(dry.stdout.splitlines()[:-1]) == {str(p) for p in ours}
    assert dry.stdout.splitlines()[-1].startswith(f"would free {freed}")
    assert all(p.exists() for p in list(ours) + others)

    done = run_cli(["cache", "clear"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"freed {freed}, 2 other files in {tmp_path}"]
    assert not any(p.exists() for p in ours)
    assert all(p.exists() for p in others)

    for args in (["cache"], ["cache", "info"]):
        empty = run_cli(args, tmp_path)
        assert empty.stdout == (f"cache folder: {tmp_path}: 0 bytes "
                                "(0 generated modules, 0 numba cache files)\n")


WARM_CHILD = """
import numpy as np, batchivp as bi
f = bi.register_rhs("def warm_decay(t, y, p, dydt):\\n    dydt[0] = -y[0]\\n")
print(bi.solve_batch(f, (0.0, 1.0), np.ones((1, 1)), target="cpu").y_final[0, 0])
"""


def test_cache_warm_compiles_the_core_once_and_a_new_function_then_only_itself(tmp_path):
    first = run_cli(["cache", "warm", "--targets", "cpu", "--dims", "1"], tmp_path, timeout=900)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("cpu core, 1-dimensional states: compiled in ")
    again = run_cli(["cache", "warm", "--targets", "cpu", "--dims", "1"], tmp_path, timeout=300)
    assert again.stdout.startswith("cpu core, 1-dimensional states: already compiled\n")
    env = {k: v for k, v in os.environ.items() if k != "BATCHIVP_KERNEL"}
    env["BATCHIVP_CACHE_DIR"] = str(tmp_path)
    child = subprocess.run([sys.executable, "-c", WARM_CHILD], env=env, capture_output=True,
                           text=True, timeout=300)
    assert child.returncode == 0, child.stderr
    assert float(child.stdout) == pytest.approx(math.exp(-1.0), rel=1e-5)
    assert "compiling" not in child.stderr  # the core came from the cache


@pytest.mark.parametrize("args, message", [
    (["--targets", "cuda"], "target 'cuda' has no linked core"),
    (["--dims", "0"], "dimensions are positive integers"),
    (["--dims", "three"], "--dims 'three': expected dimensions such as 1-4,6"),
    (["--jobs", "0"], "--jobs 0: give at least 1"),
])
def test_cache_warm_refuses_what_it_cannot_warm(tmp_path, args, message):
    done = run_cli(["cache", "warm", *args], tmp_path)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_bench_quick_writes_json_and_plot_and_the_cache_is_clearable(tmp_path):
    """A tiny quick run, cold cache: a batch case and a solve_ivp case on cpu."""
    out_json, out_png = tmp_path / "bench.json", tmp_path / "bench.png"
    folder = tmp_path / "cache"
    done = run_cli(["bench", "--quick", "--cases", "lorenz,trivial", "--targets", "cpu",
                    "--repeat", "2", "--json", str(out_json), "--plot", str(out_png)],
                   folder, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out_json.read_text())
    assert set(report) == {"meta", "rows", "nfev_mismatches", "nfev_differences_blas_order"}
    assert report["meta"]["cases"] == ["lorenz", "trivial"] and report["meta"]["quick"]
    rows = report["rows"]
    assert [(r["case"], r["engine"]) for r in rows] == [
        ("lorenz", "scipy loop"), ("lorenz", "cpu"), ("trivial", "scipy"), ("trivial", "cpu")]
    for case in ("lorenz", "trivial"):
        ref, cpu = (r for r in rows if r["case"] == case)
        assert ref["compile_s"] is None and ref["speedup"] == 1.0
        assert cpu["compile_s"] > 0 and cpu["time_s"] > 0 and cpu["speedup"] > 0
        assert cpu["speedup"] == pytest.approx(ref["time_s"] / cpu["time_s"])
        assert 0 <= cpu["nfev_equal"] <= cpu["nfev_checked"] and cpu["max_rel_dy"] < 1e-6
        assert f"\n{case} " in done.stdout  # its rows are in the table
    assert rows[0]["n"] == 256 and rows[0]["extrapolated"]  # quick: 64 of 256 for scipy
    # scipy summing in index order (scipy_ref; a child process here): every problem
    # takes scipy's steps. Without such a BLAS the rows are not strict, nothing fails.
    lorenz_ref, lorenz_cpu = rows[0], rows[1]
    assert lorenz_cpu["nfev_strict"] == lorenz_ref["blas_index_order"]
    assert f"[lorenz] scipy ran in {lorenz_ref['blas']}" in done.stdout
    if lorenz_ref["blas_index_order"]:
        assert lorenz_cpu["nfev_equal"] == lorenz_cpu["nfev_checked"] == 64
    assert report["nfev_mismatches"] == 0 and done.returncode == 0
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # The kernels the run compiled are what `cache` counts and `cache clear` removes.
    usage = cache.cache_usage(folder)
    assert usage.modules and usage.numba_files
    assert run_cli(["cache", "clear"], folder).returncode == 0
    assert not list(folder.rglob(cache.MODULE_PREFIX + "*"))


def test_bench_refuses_an_unknown_case(tmp_path):
    done = run_cli(["bench", "--cases", "lorenz,nosuchcase"], tmp_path)
    assert done.returncode == 2
    assert "nosuchcase" in done.stderr and "kepler+ev" in done.stderr


def test_bench_gpu_runs_in_the_simulator(tmp_path):
    """The GPU acceptance run's code, in the simulator at a tiny size: every work shape
    of the cuda rows bitwise equal to the first, parallel equal to cuda. The cores come
    from this session's cache (``make test`` warms them); float64 only, as the other
    precisions would compile cores of their own here (tests/test_dtype.py has them)."""
    out_json = tmp_path / "gpu.json"
    done = run_cli(["bench", "--gpu", "--simulator", "--small", "--no-tests", "--dtypes",
                    "float64", "--kepler-n", "2", "--lorenz-n", "4", "--json", str(out_json)],
                   cache.cache_dir(), timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "the CUDA simulator" in done.stdout and "no failures" in done.stdout
    rows = json.loads(out_json.read_text())["rows"]
    for system in ("kepler", "lorenz"):
        mine = [r for r in rows if r["system"] == system and r["dtype"] == "float64"]
        assert [r["target"] for r in mine] == ["cuda"] * 4 + ["parallel"], mine
        assert [r["check"] for r in mine] == ["reference"] + ["bitwise equal"] * 3 + [
            "bitwise equal to cuda"]
        assert all(r["steps"] > 0 and r["steps_per_s"] > 0 and not r["failed"] for r in mine)


@pytest.mark.parametrize("script", ["bench_batch.py", "bench_ivp.py"])
def test_benchmark_scripts_still_run(script):
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), "--help"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "--json" in done.stdout and "--repeat" in done.stdout
