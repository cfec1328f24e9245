# The two entry points of the README:
#   make demo   set up, generate the toy data set, train, evaluate (COCO AP), draw predictions
#   make test   set up and run the test suite (slow tests: make test-all)
# and: make updetr-demo     UP-DETR pre-training and fine-tuning on the toy data (docs/up_detr.md)
#      make panoptic-demo   DETR panoptic segmentation on the toy panoptic data (docs/panoptic.md)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo updetr-demo panoptic-demo test test-all

$(STAMP): scripts/install.sh setup.py
	bash scripts/install.sh
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	PYTHON=$(PY) bash scripts/demo.sh

updetr-demo: $(STAMP)
	PYTHON=$(PY) bash scripts/updetr_demo.sh

panoptic-demo: $(STAMP)
	PYTHON=$(PY) bash scripts/panoptic_demo.sh

test: $(STAMP)
	$(PY) -m pytest tests -m "not slow"

test-all: $(STAMP)
	$(PY) -m pytest tests
