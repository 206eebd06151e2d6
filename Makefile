# `make demo` and `make test` set everything up themselves on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean

SETUP_LOG := $(VENV)/setup.log

# Set-up is quiet: pip's output goes to $(SETUP_LOG) and is printed only if it fails.
$(STAMP): pyproject.toml
	@$(PYTHON) -m venv $(VENV)
	@{ $(PY) -m pip install --upgrade pip && $(PY) -m pip install -e '.[test]'; } > $(SETUP_LOG) 2>&1 \
		|| { cat $(SETUP_LOG); echo "Set-up failed (log above, also in $(SETUP_LOG))." >&2; exit 1; }
	@touch $(STAMP)

demo: $(STAMP)
	@$(PY) -m lmmjax warmup --if-cold --quiet
	$(PY) -m lmmjax.demo

# Several pytest processes (tests/run_suite.py), so that no one process compiles many hundreds
# of XLA programs (jax 0.10.2 on CPU was seen to crash inside XLA late in a single long run).
test: $(STAMP)
	$(PY) tests/run_suite.py

bench: $(STAMP)
	$(PY) benchmarks/fit_speed.py
	$(PY) benchmarks/inference_speed.py
	$(PY) benchmarks/bootstrap_speed.py
	$(PY) benchmarks/power_speed.py
	$(PY) benchmarks/latency.py

clean:
	rm -rf $(VENV) .pytest_cache
