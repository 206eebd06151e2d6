# `make demo` and `make test` set everything up themselves on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	@$(PY) -m lmmjax warmup --if-cold --quiet
	$(PY) -m lmmjax.demo

test: $(STAMP)
	$(PY) -m pytest -q tests

bench: $(STAMP)
	$(PY) benchmarks/fit_speed.py
	$(PY) benchmarks/inference_speed.py
	$(PY) benchmarks/bootstrap_speed.py
	$(PY) benchmarks/power_speed.py

clean:
	rm -rf $(VENV) .pytest_cache
