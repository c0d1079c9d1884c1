# Two commands for a newcomer: `make train` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# The stamp records that this pyproject.toml was installed, so a second `make train` installs nothing.
STAMP  := $(VENV)/.installed
# The optional musicnn teacher (TensorFlow): its own stamp, so `make train` never needs it.
MUSICNN_STAMP := $(VENV)/.installed-musicnn

.PHONY: musicnn train test test-all lint format tensorboard bench clean help real-manifest train-real

help:
	@echo "make train        create .venv (once), train on the embedded synthetic dataset"
	@echo "make test         run the test suite (CPU, offline)"
	@echo "make tensorboard  open TensorBoard on logs/"
	@echo "make lint         ruff format --check + ruff check + import contracts (lint-imports)"
	@echo "make bench        loader / training / inference speed table + JSON (< 5 min on CPU)"
	@echo "make musicnn      install the optional musicnn teacher (TensorFlow CPU) into .venv"
	@echo "make train-real   import + mix ../shared/data (REAL_DATA=dir), train configs/real.yaml"

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[train,sources,eval,dev,onnx]'
	@touch $(STAMP)

train: $(STAMP)
	$(PY) scripts/train.py $(ARGS)

# Real music: import each labelled set (configs/sources/*.yaml), mix them with group-aware splits
# (configs/mix/real.yaml), train configs/real.yaml. REAL_DATA holds gtzan3/, emotify/, mood4q/.
REAL_DATA    ?= ../shared/data
REAL_DIR     ?= data/real
REAL_SOURCES ?= gtzan3 emotify mood4q

real-manifest: $(STAMP)
	@for s in $(REAL_SOURCES); do \
	  $(PY) scripts/build_dataset.py configs/sources/$$s.yaml --set root=$(REAL_DATA)/$$s \
	    --out $(REAL_DIR)/$$s --quiet || exit 1; \
	done
	$(PY) scripts/mix_manifests.py --spec configs/mix/real.yaml --root $(REAL_DIR) \
	  --out $(REAL_DIR)/manifest.csv

train-real: real-manifest
	$(PY) scripts/train.py --config configs/real.yaml --data.manifest $(REAL_DIR)/manifest.csv \
	  --test_after_fit false $(ARGS)

# musicnn's wheel pins numpy<1.17 (stale; it runs on NumPy 2): install it without dependencies.
$(MUSICNN_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[musicnn]'
	$(PY) -m pip install --quiet --no-deps 'musicnn==0.1.0'
	@touch $(MUSICNN_STAMP)

musicnn: $(MUSICNN_STAMP)

# CI exercises the teacher too, so the test suite installs it.
test: $(STAMP) $(MUSICNN_STAMP)
	$(PY) -m pytest -q -m "not gpu" $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

tensorboard: $(STAMP)
	$(VENV)/bin/tensorboard --logdir logs

# Speed: naive vs cached loading, training clips/s, inference real-time factor and cold start.
bench: $(STAMP)
	$(PY) scripts/benchmark.py $(ARGS)

clean:
	rm -rf logs lightning_logs data/cache .pytest_cache
