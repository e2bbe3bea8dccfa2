# One entry point for set-up, tests and the demo. The first target that needs a venv creates it.
#   .venv       the full set: lava-nc (so numpy<2 and lava's other pins), the MNIST sample, dev tools
#   .venv-core  the core package only, next to numpy 2: no lava (its tests skip with the reason), MNIST sample
# Both install torch 2.13.0 first: `pip install torch==2.13.0` takes the CPU build on this machine's disk.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CORE       := .venv-core
CORE_BIN   := $(CORE)/bin
CORE_STAMP := $(CORE)/.installed
# the wheel's dependencies, downloaded at set-up so that the install test itself needs no network
WHEELHOUSE := $(CORE)/wheelhouse

.PHONY: setup setup-core test test-core test-install test-slow mcu-tools test-mcu lint demo bench clean

setup: $(STAMP)

# lava's pins come with the `lava` extra in the same resolve as everything else; `ternkit install-lava` then adds
# lava-nc itself (--no-deps --ignore-requires-python: it declares Python <3.11), the step a user runs too.
# Norse (the NIR consumer tests/export/test_nir_norse.py checks against) with --no-deps: its torchvision requirement
# would pull a CUDA torch; nirtorch needs only nir and torch, which are in by then.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev,mnist,lava,fpga,nir]'
	$(BIN)/pip install --quiet --no-deps norse==1.1.0 nirtorch==2.6
	$(BIN)/ternkit install-lava --quiet
	touch $(STAMP)

setup-core: $(CORE_STAMP)

# numpy 2 goes in first and must still be there after ternkit's own install (the check below fails otherwise).
$(CORE_STAMP): pyproject.toml
	$(PYTHON) -m venv $(CORE)
	$(CORE_BIN)/pip install --quiet torch==2.13.0
	$(CORE_BIN)/pip install --quiet 'numpy>=2'
	$(CORE_BIN)/pip install --quiet -e '.[dev,mnist]'
	$(CORE_BIN)/python -c "import numpy; assert int(numpy.__version__.split('.')[0]) >= 2, numpy.__version__"
	touch $(CORE_STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

# every test that does not need lava, next to numpy 2 (the lava ones report SKIPPED with the reason)
test-core: $(CORE_STAMP)
	$(CORE_BIN)/python -m pytest -q -rfEs

# build the wheel, install it in a fresh venv from the wheelhouse only (--no-index), run it outside the checkout
test-install: $(CORE_STAMP)
	$(CORE_BIN)/pip download --quiet --dest $(WHEELHOUSE) torch==2.13.0 .
	TERNKIT_WHEELHOUSE=$(abspath $(WHEELHOUSE)) $(CORE_BIN)/python -m pytest -q -m install tests/ternkit/test_install.py

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

# the Cortex-M4 tools of the C export (docs/mcu.md): cross-compiler, newlib, qemu; as root, or through sudo
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
mcu-tools:
	$(SUDO) apt-get update && $(SUDO) apt-get install -y gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm

# the C export cross-built for a Cortex-M4 and run in qemu (needs `make mcu-tools`)
test-mcu: $(STAMP)
	$(BIN)/python -m pytest -q -m mcu

lint: $(STAMP)
	$(BIN)/ruff check .

# one torch thread: the demo's small models gain nothing from a second, and lose 2-3x when another job shares the core
demo: $(STAMP)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/ternkit pipeline

clean:
	rm -rf $(VENV) $(CORE) build dist *.egg-info runs
