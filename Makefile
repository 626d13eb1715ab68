# The README's quick start: `make demo` runs the main job, `make test` the test suite.
# Both create .venv with everything they need when it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench cuda-report clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

# The numerical cores compile once per machine (target, state dimension); warming them
# first says so and shows how long. Later runs find them in the disk cache at once.
demo: $(STAMP)
	$(PY) -m batchivp cache warm --targets parallel --dims 6
	$(PY) examples/debris_cloud.py

# Compiling kernels dominates the suite and is single-threaded: one worker per core, up
# to 4 (each worker holds its own compiled kernels, about 3 GB at most). loadfile keeps
# each test file on one worker, in order (tests/test_scipy_suite.py counts its calls).
test: $(STAMP)
	$(PY) -m batchivp cache warm --targets cpu,parallel --dims 1-4,6
	$(PY) -m batchivp cache warm --targets cpu,parallel --dims 3 --dtypes float32,mixed
	$(PY) -m pytest -q -n auto --maxprocesses 4 --dist loadfile

bench: $(STAMP)
	$(PY) benchmarks/bench_batch.py
	$(PY) benchmarks/bench_ivp.py

cuda-report: $(STAMP)
	$(PY) -m batchivp cuda-report

clean:
	rm -rf $(VENV) .pytest_cache
