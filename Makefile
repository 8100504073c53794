# One entry point for set-up, tests, benchmarks and the demo. Every target builds the virtualenv first.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# The older Airflow minors the provider supports: each gets its own virtualenv from its own pins and runs
# the compatibility suite (COMPAT_TESTS); the newest (constraints.txt, $(VENV)) runs everything.
COMPAT_AIRFLOW := 3.1 3.2
# What differs between Airflow versions: the operators on dag.test() (crash-retry no-duplicate tests
# included), the hooks, triggers and sensor, the provider's metadata, the webhook receiver, the results
# writer and the example DAGs' parsing.
COMPAT_TESTS := tests/test_compat.py tests/test_provider_info.py tests/test_conn_id_templating.py \
	tests/operators_submit tests/hooks \
	tests/triggers tests/sensors tests/utils tests/webhooks tests/results tests/landing \
	tests/dags_examples/test_dags_import.py \
	--deselect tests/operators_submit/test_submit_dag_runs.py::test_parquet_file_to_three_batches_with_deferred_sensor
# (deselected: it needs the batches still running when its sensor starts, which a loaded machine's slower
# dag.test() of 3.1/3.2 does not guarantee; deferral on dag.test() is covered by
# test_wait_for_completion_deferred_succeeds and tests/sensors.)

.PHONY: venv test test-fast test-distributed test-compose test-compat lint package docs ui-deps bench demo \
	emulator clean \
	$(foreach v,$(COMPAT_AIRFLOW),test-airflow-$(v) constraints-$(v))

venv: $(STAMP)

# Reinstall when the pins or the project's metadata change; pins come from constraints.txt.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test]"
	touch $(STAMP)

# .venv-af31 from constraints-3.1.txt, .venv-af32 from constraints-3.2.txt.
define compat_venv
.venv-af$(subst .,,$(1))/.installed: pyproject.toml constraints-$(1).txt
	test -x .venv-af$(subst .,,$(1))/bin/python || $(PYTHON) -m venv .venv-af$(subst .,,$(1))
	.venv-af$(subst .,,$(1))/bin/python -m pip install --quiet --upgrade "pip>=24"
	.venv-af$(subst .,,$(1))/bin/python -m pip install --quiet -c constraints-$(1).txt -e ".[test]"
	.venv-af$(subst .,,$(1))/bin/python -m pip check
	touch $$@

test-airflow-$(1): .venv-af$(subst .,,$(1))/.installed
	.venv-af$(subst .,,$(1))/bin/python -m pytest -q -p no:cacheprovider -m "not stack" $(COMPAT_TESTS)

# Re-pin after a release: the newest $(1).x, with constraints.txt's pins for everything Airflow $(1)
# accepts (pip reports the others; drop them from the -c file below and let pip choose). Keep the pins
# that the file's header comments explain (e.g. svcs for 3.2).
constraints-$(1):
	rm -rf .venv-pin && $(PYTHON) -m venv .venv-pin
	.venv-pin/bin/python -m pip install --quiet --upgrade "pip>=24"
	grep -viE '^(apache-airflow|apache-airflow-core|apache-airflow-task-sdk)==' constraints.txt > .venv-pin/base.txt
	.venv-pin/bin/python -m pip install --quiet -c .venv-pin/base.txt "apache-airflow==$(1).*" -e ".[test]"
	( grep '^#' constraints-$(1).txt; .venv-pin/bin/python -m pip freeze --exclude-editable ) > constraints-$(1).new
	mv constraints-$(1).new constraints-$(1).txt && rm -rf .venv-pin
endef
$(foreach v,$(COMPAT_AIRFLOW),$(eval $(call compat_venv,$(v))))

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check ntropy_provider tests bench dags

# The wheel and sdist as PyPI would get them: built from a clean tree, no build warning, twine-checked.
package: venv
	rm -rf dist
	# PYTHONDONTWRITEBYTECODE would make setuptools warn that it skips byte-compiling: not the package's fault.
	env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -m build --outdir dist . 2>&1 | tee dist.log
	! grep -iE 'warning|deprecat' dist.log
	rm -f dist.log
	$(BIN)/twine check --strict dist/*

# The documentation site (mkdocs.yml, docs/): --strict fails on a broken link, a missing page or snippet,
# or a docstring mkdocstrings cannot render. The site lands in site/.
DOCS_STAMP := $(VENV)/.docs-installed
$(DOCS_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[docs]"
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	$(BIN)/mkdocs build --strict --site-dir site

# The browser tests' tools (tests/ui): Debian's Chromium, Node.js, and playwright-core from the npm
# registry as locked in tests/ui/package-lock.json (playwright-core downloads no browser). apt-get runs
# only as root and only for the packages missing: a machine whose Node.js comes from elsewhere (e.g.
# NodeSource, with its own npm) cannot take Debian's npm beside it. Without them the browser tests
# skip, saying why.
ui-deps:
	@missing=""; \
	command -v chromium >/dev/null || missing="chromium"; \
	command -v npm >/dev/null || missing="$$missing nodejs npm"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -qq && apt-get install -y -qq $$missing; \
		else echo "ui-deps: install$$missing (the browser tests skip without them)"; fi; \
	fi
	if command -v npm >/dev/null; then cd tests/ui && npm ci --no-audit --no-fund --loglevel=error; fi

# The compatibility suite on every older Airflow minor.
test-compat: $(foreach v,$(COMPAT_AIRFLOW),test-airflow-$(v))

# Everything CI runs: lint, the package, the docs, every test on the newest Airflow (the real-Airflow
# stack tests, the distributed one too, and the browser tests included), then the compatibility suite on
# the older minors. Not the real docker-compose run (test-compose): building its images from scratch alone
# exceeds CI's time budget.
test: venv
	$(BIN)/ruff check .
	$(MAKE) package
	$(MAKE) docs
	$(MAKE) ui-deps
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not compose"
	$(MAKE) test-compat

# Everything but the slow real-Airflow stack and browser tests, for the edit-test loop.
test-fast: venv
	$(BIN)/python -m pytest -q -m "not stack and not ui" -p no:cacheprovider

# The distributed stack alone: CeleryExecutor (Redis broker), two workers, two schedulers, two triggerers,
# and the kill scenarios (part of `make test` too; skipped, with the reason, without Redis or PostgreSQL).
test-distributed: venv
	$(BIN)/python -m pytest -q -rs -p no:cacheprovider -m distributed tests/stack

# docker-compose.yml started for real through podman + podman-compose, both profiles (needs podman; as root
# with debootstrap it builds the local base images first, cached by podman for later runs).
test-compose: venv
	$(BIN)/python -m pytest -q -rs -p no:cacheprovider -m compose tests/stack/test_stack_compose.py

bench: venv
	$(BIN)/python -m bench

# The whole nightly pipeline on this machine, against the local emulator (or the real API with NTROPY_API_KEY).
demo:
	bash demo/run_demo.sh

emulator: venv
	$(BIN)/ntropy-emulator --api-key demo-key

clean:
	rm -rf $(VENV) .venv-af31 .venv-af32 .venv-pin dist site tests/ui/node_modules airflow_home .pytest_cache .ruff_cache
