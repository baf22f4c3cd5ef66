# The two commands of the quick start: `make run` and `make test` (`make quick`: the tests
# that take milliseconds, for the edit-test loop; `make test` and CI run everything).
# Each one makes everything it needs: Debian packages, a Python >= 3.12, the pinned environment.

PYTHON := $(shell scripts/find-python)
UV_VERSION := 0.13.8
UV := .uv/bin/uv
VENV := .venv
export UV_PYTHON := $(PYTHON)
export UV_PYTHON_DOWNLOADS := never
export UV_NATIVE_TLS := 1

.PHONY: run test quick lint typecheck diagram bench clean

run: $(VENV)/.synced
	$(VENV)/bin/sonic-fsm tui

test: $(VENV)/.synced
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(VENV)/bin/pytest

quick: $(VENV)/.synced
	$(VENV)/bin/pytest -m "not slow" -q

lint: $(VENV)/.synced
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

diagram: $(VENV)/.synced
	$(VENV)/bin/sonic-fsm diagram --output fsm_diagram.md

bench: $(VENV)/.synced
	$(VENV)/bin/sonic-fsm bench

$(UV):
	@test -n "$(PYTHON)" || { echo "make: no Python >= 3.12 found" >&2; exit 1; }
	$(PYTHON) -m venv .uv
	.uv/bin/pip install --quiet uv==$(UV_VERSION)

$(VENV)/.synced: pyproject.toml uv.lock scripts/system-deps | $(UV)
	scripts/system-deps
	$(UV) sync --frozen --all-extras
	@touch $@

clean:
	rm -rf .uv $(VENV) .pytest_cache .mypy_cache .ruff_cache
