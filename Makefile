# Two commands for a newcomer: `make train` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# The stamp records that this pyproject.toml was installed, so a second `make train` installs nothing.
STAMP  := $(VENV)/.installed
# The optional musicnn teacher (TensorFlow): its own stamp, so `make train` never needs it.
MUSICNN_STAMP := $(VENV)/.installed-musicnn
# The feature teachers: permissive ones (librosa, pyloudnorm), and vibenet (GPL-3.0, run as a process).
FEATURES_STAMP := $(VENV)/.installed-features
VIBENET_STAMP  := $(VENV)/.installed-vibenet

.PHONY: distill refit musicnn vibenet train test test-all lint format tensorboard bench clean help real-manifest train-real serve

help:
	@echo "make train        create .venv (once), train on the embedded synthetic dataset"
	@echo "make test         run the test suite (CPU, offline)"
	@echo "make tensorboard  open TensorBoard on logs/"
	@echo "make lint         ruff format --check + ruff check + import contracts (lint-imports)"
	@echo "make bench        loader / training / inference speed table + JSON (< 5 min on CPU)"
	@echo "make serve        tag over HTTP + a page to try it on http://127.0.0.1:8000/ (ARGS=...)"
	@echo "make musicnn      install the optional musicnn teacher (TensorFlow CPU) into .venv"
	@echo "make vibenet      install the optional vibenet feature teacher (GPL-3.0, run as a process)"
	@echo "make train-real   import + mix ../shared/data (REAL_DATA=dir), train configs/real.yaml"
	@echo "make distill      accurate teacher (frozen musicnn + heads chosen on val) -> fast student, evaluated"
	@echo "make refit        the shipped model: teacher + student refitted on every clip -> lightning_module/shipped/"

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[train,sources,eval,dev,onnx,serve,library,catalogue,beets]'
	@touch $(STAMP)

train: $(STAMP)
	$(PY) scripts/train.py $(ARGS)

# Real music: import each labelled set (configs/sources/*.yaml), mix them with group-aware splits
# (configs/mix/real.yaml), train configs/real.yaml. REAL_DATA holds gtzan3/, gtzan7/, emotify/,
# mood4q/.
REAL_DATA    ?= ../shared/data
REAL_DIR     ?= data/real
REAL_SOURCES ?= gtzan3 gtzan7 emotify mood4q

# Then the feature teachers fill every empty feature cell (configs/sources/features.yaml: tempo by
# librosa, BS.1770 loudness, and the seven perceptual features by the optional GPL-3.0 vibenet,
# run as a separate process; VIBENET=off trains without it).
VIBENET ?= on
REAL_MANIFEST := $(REAL_DIR)/features/manifest.csv

real-manifest: $(STAMP) $(FEATURES_STAMP) $(if $(filter on,$(VIBENET)),$(VIBENET_STAMP))
	@for s in $(REAL_SOURCES); do \
	  $(PY) scripts/build_dataset.py configs/sources/$$s.yaml --set root=$(REAL_DATA)/$$s \
	    --out $(REAL_DIR)/$$s --quiet || exit 1; \
	done
	$(PY) scripts/mix_manifests.py --spec configs/mix/real.yaml --root $(REAL_DIR) \
	  --out $(REAL_DIR)/manifest.csv
	$(PY) scripts/build_dataset.py configs/sources/features.yaml --manifest $(REAL_DIR)/manifest.csv \
	  --set vibenet=$(VIBENET) --out $(REAL_DIR)/features --quiet

train-real: real-manifest
	$(PY) scripts/train.py --config configs/real.yaml --data.manifest $(REAL_MANIFEST) \
	  --test_after_fit false $(ARGS)

# One model that is fast and accurate (docs/results.md): the accurate teacher's outputs for every
# window of every clip (two frozen pretrained musicnn taggers, MSD and MTT, each alone or
# concatenated, heads chosen on val; features cached, so a rerun only refits), the fast student
# distilled from them on the train split, both evaluated on the held-out test split. ~60 min on 2
# CPU cores the first time; a GPU is used for training when present.
MUSICNN_WEIGHTS := checkpoints/msd_musicnn.pt
MTT_WEIGHTS     := checkpoints/mtt_musicnn.pt
TEACHER_WEIGHTS := $(MUSICNN_WEIGHTS),$(MTT_WEIGHTS)
TEACHER_EMBEDDINGS ?= [musicnn_pooled]
TEACHER_DIR     := $(REAL_DIR)/teacher
EVAL_DIR        ?= reports/distill

$(MUSICNN_WEIGHTS): $(MUSICNN_STAMP)
	$(PY) scripts/convert_musicnn.py --out $(MUSICNN_WEIGHTS)

$(MTT_WEIGHTS): $(MUSICNN_STAMP)
	$(PY) scripts/convert_musicnn.py --model MTT_musicnn --out $(MTT_WEIGHTS)

distill: real-manifest $(MUSICNN_WEIGHTS) $(MTT_WEIGHTS)
	$(PY) scripts/build_dataset.py teacher --manifest $(REAL_MANIFEST) --set weights=$(TEACHER_WEIGHTS) \
	  --set 'embeddings=$(TEACHER_EMBEDDINGS)' --out $(TEACHER_DIR) --quiet
	rm -rf checkpoints/student
	$(PY) scripts/train.py --config configs/real.yaml --config configs/student.yaml \
	  --test_after_fit false $(ARGS)
	$(PY) scripts/evaluate.py $(TEACHER_DIR)/teacher.ckpt $(TEACHER_DIR)/manifest.csv --split test \
	  --out $(EVAL_DIR)/teacher --no-baseline
	$(PY) scripts/evaluate.py $$(ls checkpoints/student/best-*.ckpt) $(TEACHER_DIR)/manifest.csv \
	  --split test --out $(EVAL_DIR)/student

# The shipped model: the same recipe refitted on train + val + test (teacher heads and student),
# written to checkpoints/refit/tagger.ckpt, then shipped into lightning_module/shipped/ (ONNX +
# slim checkpoint + model.json; the model card beside them is written by hand): the default of
# every tool.
MODEL_VERSION ?= 1.4.0
# Then the tempo and key branches are refitted on listener tempi and annotated keys (GTZAN-3's
# and gtzan7's, chosen on val; scripts/fit_branches.py) and the result is shipped.
# The refit teacher reads only the tagger `make distill` chose on val (MSD_musicnn alone: MTT_musicnn
# and both concatenated lost, docs/results.md), so a fresh machine computes one tagger's features.
REFIT_TEACHER_WEIGHTS ?= $(MUSICNN_WEIGHTS)
refit: real-manifest $(MUSICNN_WEIGHTS)
	$(PY) scripts/build_dataset.py teacher --manifest $(REAL_MANIFEST) --set weights=$(REFIT_TEACHER_WEIGHTS) \
	  --set 'embeddings=$(TEACHER_EMBEDDINGS)' --set refit=true \
	  --set features_cache=$(TEACHER_DIR)/features --out $(REAL_DIR)/teacher_refit --quiet
	$(PY) scripts/train.py --config configs/real.yaml --config configs/student.yaml \
	  --config configs/refit.yaml --test_after_fit false $(ARGS)
	$(PY) scripts/fit_branches.py checkpoints/refit/tagger.ckpt --manifest $(REAL_MANIFEST) \
	  --manifest $(REAL_DIR)/gtzan3/manifest.csv --manifest $(REAL_DIR)/gtzan7/manifest.csv \
	  --out checkpoints/refit/tagger-branches.ckpt --work-dir $(REAL_DIR)/branches --quiet
	$(PY) scripts/ship_model.py checkpoints/refit/tagger-branches.ckpt --version $(MODEL_VERSION)

# The permissive feature teachers (librosa tempo, pyloudnorm BS.1770 loudness).
$(FEATURES_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[features]'
	@touch $(FEATURES_STAMP)

# vibenet (GPL-3.0, ONNX model inside its wheel): an optional teacher that our MIT code never
# imports; build_dataset.py runs its command line as a separate process.
$(VIBENET_STAMP): $(FEATURES_STAMP)
	$(PY) -m pip install --quiet 'vibenet==0.1.0'
	@touch $(VIBENET_STAMP)

vibenet: $(VIBENET_STAMP)

# musicnn's wheel pins numpy<1.17 (stale; it runs on NumPy 2): install it without dependencies.
$(MUSICNN_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[musicnn]'
	$(PY) -m pip install --quiet --no-deps 'musicnn==0.1.0'
	@touch $(MUSICNN_STAMP)

musicnn: $(MUSICNN_STAMP)

# CI exercises the teachers too (musicnn, the feature teachers, vibenet), so the test suite installs
# them. The test files run in parallel processes (pytest-xdist; ARGS="-n 0" runs them in one), a
# file's tests in one process, so its module fixtures are built once.
test: $(STAMP) $(MUSICNN_STAMP) $(VIBENET_STAMP)
	$(PY) -m pytest -q -m "not gpu" -n auto --maxprocesses 4 --dist loadfile $(ARGS)

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

# The local tagging service and its page on http://127.0.0.1:8000/ (docs/service.md).
serve: $(STAMP)
	$(PY) scripts/serve.py $(ARGS)

clean:
	rm -rf logs lightning_logs data/cache .pytest_cache
