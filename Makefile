# radiod: `make demo` runs the node on an embedded default, `make test` runs the tests.
# Both install what is missing: Debian packages through apt, and a virtualenv in .venv.

PYTHON ?= python3
VENV := .venv
APT_PACKAGES := espeak-ng libportaudio2 mosquitto chromium chromium-driver ffmpeg icecast2
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test lint bench deps venv install clean

demo: deps venv
	$(VENV)/bin/radiod demo

# Most tests wait on real time (plays at real speed, brokers, timeouts), so they run in parallel workers; the few
# that time the first sample or a relay to tens of milliseconds (marker `timing`) then run alone.
TEST_WORKERS ?= 4

test: deps venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -q -n $(TEST_WORKERS) --dist loadfile -m "not timing"
	$(VENV)/bin/pytest -q -m timing

lint: venv
	$(VENV)/bin/ruff check .

bench: deps venv
	for b in bench/*.py; do $(VENV)/bin/python $$b || exit 1; done

# Debian packages: installed only when one is missing, so a prepared machine needs no network.
deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

venv: $(VENV)/bin/radiod

# The checkout is installed editable in setuptools' "compat" mode: a plain .pth path entry, as an installed node
# has its package on the path. The default mode imports a finder module at every interpreter start, about 15 ms that
# every radiod command and every test process would pay and a node never does (bench/speak.py times whole commands).
$(VENV)/bin/radiod: pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e ".[test]" --config-settings editable_mode=compat
	touch $@

# On a Pi: the radiod user, a venv in /opt/radiod, the unit, a config, profiles and voices (docs/technician.md).
install:
	$(SUDO) systemd/install.sh

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
