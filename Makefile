# Two commands matter on a fresh machine: `make demo` and `make test`.
# Each installs what it needs into .venv first (torch is pinned to the CPU wheel, see pyproject.toml).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
DEMO_OUT ?= demo_out

.PHONY: install demo test test-fast bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[all]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/rlthf demo --out $(DEMO_OUT)

test: install
	$(PY) -m pytest -q -ra

test-fast: install
	$(PY) -m pytest -q -m "not slow and not label_studio"

bench: install
	$(PY) benchmarks/bench_iteration.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .hypothesis
