# The two entry points of the README:
#   make demo   set up, generate the toy data set, train, evaluate (COCO AP), draw predictions
#   make test   set up and run the test suite (slow tests: make test-all)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test test-all

$(STAMP): scripts/install.sh setup.py
	bash scripts/install.sh
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	PYTHON=$(PY) bash scripts/demo.sh

test: $(STAMP)
	$(PY) -m pytest tests -m "not slow"

test-all: $(STAMP)
	$(PY) -m pytest tests
