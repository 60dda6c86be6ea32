# robot_meta — every target creates .venv and installs the pinned set on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: demo test bench lint install system-deps clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[train,dev,distributed]"
	@touch $(STAMP)

install: $(STAMP) system-deps

# System packages the tests need: headless Chromium for the report page check. Installed from the
# OS packages when missing and we are root (CI and the project's machines); otherwise a warning,
# and that test fails naming the fix (set ROBOT_META_NO_BROWSER=1 to skip it on purpose).
system-deps:
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	   command -v google-chrome >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing Chromium from the OS packages (the report's browser test needs it)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
	  echo "warning: no Chromium/Chrome on PATH: run 'sudo apt-get install chromium' for the report's browser test"; \
	fi

# The main job end to end on the embedded default configuration.
demo: $(STAMP)
	$(VENV)/bin/robot-meta demo

# The whole suite (slow tests included: it fits the CI budget). Exit 5 (no tests) is a failure.
test: $(STAMP) system-deps
	@$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing on purpose"; exit 1; fi; exit $$rc

bench: $(STAMP)
	$(VENV)/bin/robot-meta bench

lint: $(STAMP)
	$(VENV)/bin/ruff check robot_meta tests benchmarks
	$(VENV)/bin/ruff format --check robot_meta tests benchmarks
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
