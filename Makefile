# classviz: one entry point for set-up, the demo, the tests and the benchmarks.
#
#   make          check the prerequisites, set up (venv + weights + release build) and
#                 visualise class 100 into demo/ (ignored by git)
#   make test     set up and run the whole test suite
#   make test-threads   the numeric tests again at two torch threads
#   make lint     rustfmt and clippy (warnings are errors) over the workspace
#   make check-gallery   the HTML gallery in headless Chromium
#   make wheel    a Python wheel (maturin): classviz and classviz-export, for pip
#   make install  classviz, its man page and completions under PREFIX (~/.local)
#
# Every step is idempotent: a second run reuses the venv, the weights and the build.

VENV    := .venv
PYTHON  := $(VENV)/bin/python3
# The Python that makes the venv: 3.11 to 3.14 (the pinned packages' wheels).
SYSTEM_PYTHON ?= python3
# Python 3.11 to 3.14, Rust 1.89 or newer and a C++ compiler, checked before
# anything is installed or built: one line naming the first one missing.
ifeq ($(filter clean,$(MAKECMDGOALS)),)
MISSING := $(shell SYSTEM_PYTHON=$(SYSTEM_PYTHON) $(if $(filter-out default,$(origin CXX)),CXX=$(CXX)) tools/prerequisites.sh)
ifneq ($(MISSING),)
$(error $(MISSING))
endif
endif
STAMP   := $(VENV)/.requirements-installed
BIN     := target/release/classviz
MODELS  := weights/efficientnet_lite0.pt weights/efficientnet_lite1.pt weights/efficientnet_lite2.pt
# Lite0 that also returns six of its blocks' outputs, early to late (--objective channel:…).
TAPPED  := weights/efficientnet_lite0_taps.pt
TAPS    := _blocks.1,_blocks.3,_blocks.5,_blocks.8,_blocks.11,_blocks.15
# MaCo's natural magnitude spectrum, from the photos scikit-image and scikit-learn ship.
SPECTRUM := weights/maco_magnitude.npy
# The compiled engine: an AOTInductor package of Lite0's ascent step for the CPU (about a minute).
PACKAGE := weights/efficientnet_lite0.cpu.pt2
FIXTURE := tests/models/.built
# The Python tools: export, compile, spectrum (weights/*.py run them).
TOOLS   := $(wildcard python/classviz/*.py python/classviz/export/*.py)

# tch builds against the libtorch inside the venv's PyTorch wheel.
export LIBTORCH_USE_PYTORCH := 1
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: demo setup build weights fixtures test test-threads lint check-gallery bench bench-engine bench-presets bench-quality bench-saliency bench-taps bench-accentuate wheel install clean

demo: setup
	$(BIN) --class 100 --iters 150 --lr 1.0 --out demo --force

setup: $(STAMP) weights build

$(STAMP): requirements.txt
	test -x $(PYTHON) || $(SYSTEM_PYTHON) -m venv $(VENV)
	$(PYTHON) -m pip install --disable-pip-version-check -q -r requirements.txt
	touch $@

weights: $(MODELS) $(TAPPED) $(SPECTRUM) $(PACKAGE)

$(PACKAGE): weights/efficientnet_lite0.pt $(TOOLS) $(STAMP)
	$(PYTHON) weights/export.py efficientnet_lite0 --compile

$(TAPPED): $(TOOLS) $(STAMP)
	$(PYTHON) weights/export.py efficientnet_lite0 --taps $(TAPS)

$(SPECTRUM): $(TOOLS) $(STAMP)
	$(PYTHON) weights/maco_spectrum.py

weights/%.pt: $(TOOLS) $(STAMP)
	$(PYTHON) weights/export.py $*

# classviz against the Python/PyTorch references; a quiet machine, please.
bench: setup
	$(PYTHON) bench/run.py

# The compiled step's design choices: a dynamic batch against one batch size, the
# update inside the package against outside (three compiles: about 5 minutes on 2 cores).
bench-engine: setup
	$(PYTHON) bench/step_variants.py

# Each preset against its Python reference on 8 classes, interleaved, with Lite1's
# verdict on both (about 25 minutes on 2 cores).
bench-presets: setup
	$(PYTHON) bench/presets.py --repeats 3

# The natural and maco presets on the original 50 and the 50 hard classes, scored by
# Lite1 and Lite2, and on the 25 held-out classes, scored by Lite2 (bench/quality.py;
# 47 minutes on 2 cores, 2026-12-03).
bench-quality: setup
	$(PYTHON) bench/quality.py

# A tapped model's logit run against the untapped model's (issue: taps cost nothing).
bench-taps: setup
	$(PYTHON) bench/taps.py

# The saliency tables of docs/saliency.md (methods and CAMs on ten photos, the sanity
# check, the segmentation on composites, grad-cam's runtime), then the batching and
# baseline benchmarks.
bench-saliency: setup
	$(PYTHON) bench/saliency_tables.py
	cargo bench --bench saliency
	cargo bench --bench baseline

# cargo decides what to rebuild; a no-op build takes a fraction of a second.
build: $(STAMP)
	cargo build --release

fixtures: $(FIXTURE)

# Test models: small ones made and trained here, a torchvision export with
# random weights, and a user checkpoint through export.py --checkpoint.
$(FIXTURE): tests/make_models.py tests/make_families.py tests/make_exemplars.py tests/checkpoint_module.py tests/cam_reference.py tests/attention_reference.py $(TOOLS) $(STAMP)
	$(PYTHON) tests/make_models.py
	$(PYTHON) weights/export.py --torchvision resnet18 --random-init --out tests/models
	$(PYTHON) weights/export.py --checkpoint tests/models/tiny_state.pt --entry tests.checkpoint_module:build \
		--name tiny --input-shape 3,16,16 --mean 0.5,0.5,0.5 --std 0.25,0.25,0.25 \
		--labels tests/models/tiny_labels.txt --out tests/models
	# The same checkpoint tapped, randomised and compiled: the fixture of the
	# compiled engine and of the saliency sanity check.
	$(PYTHON) weights/export.py --checkpoint tests/models/tiny_state.pt --entry tests.checkpoint_module:build \
		--name tiny --input-shape 3,16,16 --mean 0.5,0.5,0.5 --std 0.25,0.25,0.25 \
		--labels tests/models/tiny_labels.txt --out tests/models --taps conv --randomise --compile
	# The same checkpoint behind a division by the input's norm: its gradient is
	# not finite at the zero image, as MaxViT's is.
	$(PYTHON) weights/export.py --checkpoint tests/models/tiny_state.pt --entry tests.checkpoint_module:build_normed \
		--name normed --input-shape 3,16,16 --mean 0.5,0.5,0.5 --std 0.25,0.25,0.25 \
		--labels tests/models/tiny_labels.txt --out tests/models
	# A transformer-shaped checkpoint whose tap returns tokens.
	$(PYTHON) weights/export.py --checkpoint tests/models/tokens_state.pt --entry tests.checkpoint_module:build_tokens \
		--name tokens --input-shape 3,16,16 --mean 0.5,0.5,0.5 --std 0.25,0.25,0.25 \
		--labels tests/models/tiny_labels.txt --out tests/models --taps blocks
	# Class activation maps of an independent implementation, with hooks.
	$(PYTHON) tests/cam_reference.py
	# torchvision, timm and Hugging Face classifiers and the digits ViT and CNN,
	# exported through weights/export.py (tests/families.rs).
	$(PYTHON) tests/make_families.py
	# Attention rollouts of an independent implementation on the eager digits ViT.
	$(PYTHON) tests/attention_reference.py
	# Folders of digits and photos for `classviz exemplars`, and the brute-force answer.
	$(PYTHON) tests/make_exemplars.py
	touch $@

# One torch thread per test process: parallel tests each running an OpenMP
# pool on the same cores slow down 10-30x.
test: setup fixtures
	OMP_NUM_THREADS=1 cargo test --release --workspace

# The files of numeric tests again at two torch threads, one test at a time:
# no result may depend on the thread count (tests/golden.rs says why).
NUMERIC := golden real_model quality units closed_form saliency batch natural
test-threads: setup fixtures
	OMP_NUM_THREADS=2 cargo test --release $(NUMERIC:%=--test %) -- --test-threads 1

# The HTML gallery in headless Chromium (Debian's chromium package): a
# 1000-class page from file://, search, sort and the viewer, load time.
check-gallery: setup
	tests/check_gallery.sh

# The habits CI keeps: formatted and clippy-clean, and no module of a crate
# using one that uses it back. The crates keep the layers apart
# (docs/architecture.md): records, engine, core, the binary.
lint: setup
	cargo fmt --all --check
	cargo clippy --release --workspace --all-targets -- -D warnings
	$(PYTHON) tools/import_cycles.py

# The wheel's binary finds libtorch in the torch package beside it (build.rs,
# CLASSVIZ_WHEEL), so it is built apart from target/release.
WHEEL_TARGET := target/wheel
wheel: $(STAMP)
	$(PYTHON) -m pip install --disable-pip-version-check -q "maturin>=1.5,<2"
	CLASSVIZ_WHEEL=1 CARGO_TARGET_DIR=$(WHEEL_TARGET) $(VENV)/bin/maturin build --release --out target/wheels
	@ls target/wheels/*.whl

PREFIX ?= $(HOME)/.local
install: build
	install -d $(PREFIX)/bin $(PREFIX)/share/man/man1 $(PREFIX)/share/bash-completion/completions
	install -m 755 $(BIN) $(PREFIX)/bin/classviz
	$(BIN) man > $(PREFIX)/share/man/man1/classviz.1
	$(BIN) completions bash > $(PREFIX)/share/bash-completion/completions/classviz
	@echo "classviz installed in $(PREFIX)/bin (it uses the libtorch of $(CURDIR)/$(VENV))"

# Feature accentuation against adversarial examples, scored by three networks.
bench-accentuate: setup
	$(PYTHON) bench/accentuate.py

clean:
	rm -rf target tests/models weights/*.pt weights/*.pt2 weights/*.json weights/*.npy weights/imagenet_classes.txt
