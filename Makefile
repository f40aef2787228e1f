# Every target creates its own virtual environment on first use (.venv), pinned by constraints.txt.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test python-test check lint bench soak tools screenshot clean node-test node-types node-bench

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# System tools the tests drive (systemd-analyze for the unit file; setpriv/unshare for uid and
# disk-full tests). Installed from Debian's packages when missing, so a fresh machine passes too.
tools:
	@command -v systemd-analyze >/dev/null && command -v setpriv >/dev/null && command -v unshare >/dev/null \
	  || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd util-linux >/dev/null; }

# `make demo DEMO_ARGS="--port 8001 --seconds 60"` passes options to `seo-sync demo`.
demo: $(STAMP)
	$(BIN)/seo-sync demo $(DEMO_ARGS)

# Lint and types, the first step of both lanes.
lint: $(STAMP)
	$(BIN)/ruff check daemon tests examples
	$(BIN)/bandit -q -c pyproject.toml -r daemon
	$(BIN)/mypy

# The fast lane, for every change: lint, types, and the two tiers that start no daemon process
# (pure unit tests; component tests on temp files, moto and fakes), spread over the cores.
check: lint
	$(BIN)/python -m pytest -n 4 tests/unit tests/component

# Everything CI runs, in two steps of two jobs side by side (each job's output printed whole when it
# ends): the venv with lint and types beside `npm ci`, then every Python tier beside the Node
# reader's tests. Most tests wait on daemons, sockets and timers more than they compute, so four
# pytest workers share the 2 cores; the slow tests go first (tests/conftest.py) and are handed out
# two at a time, so no worker is left with the minute-long ones at the end.
test: tools
	$(MAKE) -j2 --output-sync=target lint $(NODE_STAMP)
	$(MAKE) -j2 --output-sync=target python-test node-test

python-test: $(STAMP)
	$(BIN)/python -m pytest -n 4 --maxschedchunk 2

# The generation server's reader (clients/node): dependencies from its lock file, compiled, and
# tested against a real daemon that node_fixture.py starts with this venv's python.
NODE_DIR := clients/node
NODE_STAMP := $(NODE_DIR)/node_modules/.installed

$(NODE_STAMP): $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json
	cd $(NODE_DIR) && npm ci --no-audit --no-fund
	touch $(NODE_STAMP)

node-test: $(STAMP) $(NODE_STAMP)
	cd $(NODE_DIR) && npm test

node-bench: $(STAMP) $(NODE_STAMP)
	cd $(NODE_DIR) && npm run bench

# Regenerate the reader's types after a change to schema.py (a unit test fails until this is done).
node-types: $(STAMP)
	$(BIN)/seo-sync schema --typescript --output $(NODE_DIR)/src/generated/schema.ts

# The README's picture of the demo (docs/demo.svg): a short real run drawn by rich's SVG export.
screenshot: $(STAMP)
	$(BIN)/python -m seo_sync.demo.screenshot docs/demo.svg

bench: $(STAMP)
	$(BIN)/python -m tests.bench

soak: $(STAMP)
	SEO_SYNC_SOAK_SECONDS=1800 $(BIN)/python -m pytest -q tests/fault/test_soak.py

clean:
	rm -rf $(VENV) .pytest_cache $(NODE_DIR)/node_modules $(NODE_DIR)/dist $(NODE_DIR)/build
