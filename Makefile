# facezoo — the two commands for a fresh machine are `make demo` and `make test`.
VENV   ?= .venv
PYTHON ?= python3
# The torch installed when the venv has none. On this project's CPU machines 2.13.0 is a CPU build on disk;
# GPU users: make install TORCH="torch==2.5.1 --index-url <your CUDA wheel index>", or create the venv from a
# Python that already has torch (it is kept: the venv then sees its site-packages).
TORCH  ?= torch==2.13.0
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.facezoo-installed

.PHONY: install test demo bench lint format libusb clean mutate

install: $(STAMP)

$(STAMP): pyproject.toml setup.py
	@if [ ! -x $(PY) ]; then \
	  if $(PYTHON) -c "import torch" 2>/dev/null; then \
	    echo "facezoo: $(PYTHON) already has torch; the venv keeps it (--system-site-packages)"; \
	    $(PYTHON) -m venv --system-site-packages $(VENV); \
	  else \
	    $(PYTHON) -m venv $(VENV); \
	  fi; \
	fi
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "setuptools>=77"   # pyproject's metadata; tests build the wheel without isolation
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e ".[dev]"
	@$(PY) -c "import open3d" 2>/dev/null || $(MAKE) --no-print-directory libusb
	@$(PY) -c "import torch, open3d, lightning; print('facezoo: torch', torch.__version__, '| open3d', open3d.__version__, '| lightning', lightning.__version__)"
	@touch $@

# open3d's wheels link libusb-1.0, which Debian/Ubuntu images often lack.
libusb:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "facezoo: installing libusb-1.0-0 (open3d needs it)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libusb-1.0-0 >/dev/null; \
	else \
	  echo "facezoo: open3d cannot load libusb-1.0.so.0; install it (Debian/Ubuntu: sudo apt-get install libusb-1.0-0)"; \
	  exit 1; \
	fi

test: install
	$(PY) -m pytest -q

# Mutation check (not part of `make test`): small deliberate bugs, one at a time, and the tests that catch each.
mutate: install
	$(PY) scripts/mutate.py $(MUTATE_ARGS)

demo: install
	$(VENV)/bin/facezoo demo

bench: install
	@for f in benchmarks/*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: install
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache runs lightning_logs
