# One entry point for set-up, tests, benchmarks and the demo. Every target builds the virtualenv first.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv test test-fast lint bench demo emulator clean

venv: $(STAMP)

# Reinstall when the pins or the project's metadata change; pins come from constraints.txt.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test]"
	touch $(STAMP)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check ntropy_provider tests bench dags

# The whole suite: lint, then every test (the real-Airflow stack tests included).
test: venv
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -p no:cacheprovider

# Everything but the slow real-Airflow stack tests, for the edit-test loop.
test-fast: venv
	$(BIN)/python -m pytest -q -m "not stack" -p no:cacheprovider

bench: venv
	$(BIN)/python -m bench

# The whole nightly pipeline on this machine, against the local emulator (or the real API with NTROPY_API_KEY).
demo:
	bash demo/run_demo.sh

emulator: venv
	$(BIN)/ntropy-emulator --api-key demo-key

clean:
	rm -rf $(VENV) airflow_home .pytest_cache .ruff_cache
