# Two commands matter on a fresh machine: `make demo` and `make test`.
# Each installs what it needs into .venv first (torch is pinned to the CPU wheel, see pyproject.toml).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
DEMO_OUT ?= demo_out

.PHONY: install demo test test-fast bench clean label-studio-demo

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[all]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/rlthf demo --out $(DEMO_OUT)

# Label Studio lives in its own venv (its pins clash with ours); the e2e tests start it from here.
LS_VENV := .venv-ls
$(LS_VENV)/.installed:
	$(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/python -m pip install --quiet label-studio==1.23.2
	touch $@

label-studio-demo: install $(LS_VENV)/.installed
	$(PY) -m ml_backend.demo

test: install $(LS_VENV)/.installed
	$(PY) -m pytest -q -ra

test-fast: install
	$(PY) -m pytest -q -m "not slow and not label_studio"

bench: install
	$(PY) benchmarks/bench_iteration.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .hypothesis
