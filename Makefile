# The README's two commands: `make demo` (the main job) and `make test` (the whole suite).
# Each one creates/updates .venv with pinned dependencies, then runs. torch is pinned (CPU build
# 2.13.0); pip is never asked for an unpinned torch.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEMO_DIR ?= runs/demo

.PHONY: demo test test-slow lint clean browser hd-photos hd-painting

$(STAMP): pyproject.toml requirements.lock requirements-dev.lock requirements-nodeps.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.lock -r requirements-dev.lock
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -r requirements-nodeps.lock
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/gankit demo --out $(DEMO_DIR)

# The browser tests (tests/browser/) drive Debian's Chromium through Playwright (pinned in
# requirements-dev.lock); Playwright's own browser builds come from a CDN that is unreachable
# offline, so none is downloaded. As root (CI), apt-get installs chromium the first time. With
# GANKIT_CHROMIUM set, that browser is used instead; without root and without a chromium,
# nothing is installed and the browser tests skip, saying why.
browser:
	@command -v chromium >/dev/null 2>&1 || [ -n "$$GANKIT_CHROMIUM" ] || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "make: installing Debian's chromium for the browser tests (apt-get)"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "make: no chromium and no root apt-get: the browser tests will skip"; fi; }

# The HD painting experiment (src/gankit/data/hd_photos.py) uses the nature photos of Debian's
# desktop wallpapers, mate-backgrounds (/usr/share/backgrounds/mate/nature/); nothing of them is
# committed. As root (CI), apt-get installs the package the first time. With GANKIT_HD_PHOTOS
# set, that folder is used instead; without root and without the photos, nothing is installed
# and the tests that need them skip, saying why. Not part of `make test`.
HD_PHOTOS := /usr/share/backgrounds/mate/nature
hd-photos:
	@[ -f $(HD_PHOTOS)/Dune.jpg ] || [ -n "$$GANKIT_HD_PHOTOS" ] || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "make: installing Debian's mate-backgrounds for the HD photos (apt-get)"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get update -qq && apt-get install -y -qq mate-backgrounds >/dev/null; \
	  else echo "make: no HD photos in $(HD_PHOTOS) and no root apt-get: the HD photo tests will skip"; fi; }

# The HD painting experiment (scripts/hd_painting.py, issue 19): trains the Siamese GAN, the same
# preset on downscaled photos and CycleGAN (about 20 minutes each on 2 cores) into
# runs/hd-painting/, translates the held-out photos at full size and writes docs/hd-painting/.
# A second run refuses to train over the first: run the script with --skip-training to score
# again, or remove runs/hd-painting. Not part of `make test`.
hd-painting: $(STAMP) hd-photos
	$(PY) scripts/hd_painting.py

test: $(STAMP) browser
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m pytest -q -m "not slow"

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

lint: $(STAMP)
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV) runs build *.egg-info src/*.egg-info
