# Two commands for a newcomer: `make train` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# The stamp records that this pyproject.toml was installed, so a second `make train` installs nothing.
STAMP  := $(VENV)/.installed

.PHONY: train test test-all lint format tensorboard bench clean help

help:
	@echo "make train        create .venv (once), train on the embedded synthetic dataset"
	@echo "make test         run the test suite (CPU, offline)"
	@echo "make tensorboard  open TensorBoard on logs/"
	@echo "make lint         ruff format --check + ruff check"

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,onnx]'
	@touch $(STAMP)

train: $(STAMP)
	$(PY) scripts/train.py $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -q -m "not gpu" $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

tensorboard: $(STAMP)
	$(VENV)/bin/tensorboard --logdir logs

clean:
	rm -rf logs lightning_logs data/cache .pytest_cache
