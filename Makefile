# The two commands of the README: `make demo` (the main job, offline, on embedded defaults)
# and `make test`. Both set everything up on a fresh machine first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.medlens-installed

.PHONY: demo test setup system-deps

demo: setup
	$(BIN)/medlens demo

test: setup
	$(BIN)/python -m pytest

setup: $(STAMP)

# torch is pinned here, not in pyproject: 2.14.1/0.29.1 are the builds that install offline
# beside each other (torchvision is needed by Qwen2-VL processors); the package keeps a range.
$(STAMP): pyproject.toml
	bash scripts/install-system-deps.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -e '.[all,dev]'
	touch $(STAMP)
