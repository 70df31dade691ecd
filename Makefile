# VisNet. On a fresh machine: `make run` (serves http://127.0.0.1:8000) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
# Test sessions side by side: the core's tests in one, the service's in the other (tests/conftest.py); 0 runs one.
TEST_SESSIONS ?= 2

.PHONY: run test weights worker measure screenshot examples redis-stop clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# Stamps: reinstall only when a requirements file changes.
$(VENV)/.requirements: requirements.txt | $(PY)
	$(PY) -m pip install --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.requirements-dev: requirements.txt requirements-dev.txt | $(PY)
	$(PY) -m pip install --disable-pip-version-check -r requirements-dev.txt
	touch $@ $(VENV)/.requirements

## The weights present; `make run` then downloads the ImageNet file for auto (service.serve).
weights: $(VENV)/.requirements
	$(PY) -m visnet weights list

## Embedded Redis (unless REDIS_URL is set), one worker and gunicorn; Ctrl-C stops them all.
run: $(VENV)/.requirements weights
	$(PY) -m service.serve

## Unit, API, integration (real Redis, real worker, hed weights) and browser tests (Chromium).
test: $(VENV)/.requirements-dev
	$(PY) -m pytest --numprocesses $(TEST_SESSIONS) $(PYTEST_ARGS)

## One more worker against the same Redis (REDIS_URL, or this checkout's embedded one).
worker: $(VENV)/.requirements
	$(PY) worker.py

## README's figures: worker-ready time; for the default job on a warm worker, compute, queued time, upload to
## finished and to every PNG fetched, the overhead against compute + 0.3 s and where it goes; the same in Chromium.
measure: $(VENV)/.requirements-dev
	$(PY) scripts/measure_service.py

## Refresh README's pictures in docs/: the browser tests' screenshots (the sheet, the layer explorer), the figure
## of single-activation patches and the trained chain model's figure ("Your own model").
screenshot: $(VENV)/.requirements-dev
	$(PY) -m pytest tests/browser/test_browser_upload.py tests/browser/test_browser_explorer.py \
		tests/visnet/test_readme_figures.py tests/visnet/chain/test_trained_example.py \
		-k "test_upload_progress_sheet or test_explore_a_layer or test_single_activation_patches_figure or test_the_readme_figure" \
		--update-screenshot

## Regenerate static/examples/*.jpg from scikit-image's sample photos.
examples: $(VENV)/.requirements-dev
	$(PY) scripts/make_examples.py

redis-stop: $(VENV)/.requirements
	$(PY) -m service.embedded_redis stop

clean:
	rm -rf test-artifacts .pytest_cache
