# Two entry points, each building its own virtual environment in .venv:
#   make demo  - install PerfSAGE, inspect the bundled example models and predict their cost
#   make test  - install PerfSAGE with its test extras and run the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test install install-test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e .

install-test: $(BIN)/python
	$(BIN)/pip install --quiet -e ".[test]"

demo: install
	$(BIN)/perfsage inspect examples/models/*.tflite
	$(BIN)/perfsage predict examples/models/*.tflite --target ethos-u55-128
	$(BIN)/perfsage predict examples/models/*.tflite --target cortex-m-tflm

test: install-test
	$(BIN)/python -m pytest -q

bench: install-test
	$(BIN)/python benchmarks/bench_reader.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
