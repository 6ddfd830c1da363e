# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
# The CPU build of torch must be installed before sentence-transformers,
# otherwise pip resolves torch to a multi-GB CUDA build.
TORCH  ?= torch==2.13.0
HOST   ?= 127.0.0.1
PORT   ?= 8000
export MATCHER_DATA_DIR ?= data

.PHONY: install model seed run serve test bench clean

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ required"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet "$(TORCH)"
	$(PIP) install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

model: install
	$(VENV)/bin/matcher build-model

seed: model
	$(VENV)/bin/matcher seed

run: seed
	@echo "接口文档 http://$(HOST):$(PORT)/docs ；用上表的演示账号登录（右上角 Authorize），或："
	@echo "  curl -d username=broker -d password=broker-demo http://$(HOST):$(PORT)/auth/token"
	$(VENV)/bin/matcher serve --host $(HOST) --port $(PORT)

serve: install
	$(VENV)/bin/matcher serve --host $(HOST) --port $(PORT)

test: install
	$(PY) -m pytest -q -n 2 --dist loadfile

bench: install
	$(PIP) install --quiet -e '.[test,bench]'
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .cache .pytest_cache
