# Partner Space portal: `make run` serves the demo, `make test` proves it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
MANAGE := $(BIN)/python manage.py
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: setup peers browser bench-tools run test faults bench bench-short bench-cloud lint format messages migrate clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

setup: $(STAMP)

migrate: setup
	DEBUG=$${DEBUG:-1} $(MANAGE) migrate --noinput

# Web server, worker and demo SFTP server in one terminal; Ctrl-C stops all three within
# seconds (serve_demo kills a worker still busy after a short grace).
run: migrate
	DEBUG=$${DEBUG:-1} $(MANAGE) seed_demo
	@echo ""
	@echo "  Partner Space on http://$(HOST):$(PORT)/ with its worker and the demo SFTP server"
	@echo "  (files land in var/demo-sftp/). Ctrl-C stops all three."
	@echo ""
	@DEBUG=$${DEBUG:-1} $(MANAGE) serve_demo $(HOST):$(PORT)

# Real servers the tests talk to (OpenSSH for SFTP), from Debian's packages.
peers:
	@test -x /usr/sbin/sshd || (apt-get update -qq && apt-get install -y -qq openssh-server)

# Debian's Chromium for the browser suite (tests/browser/); Playwright drives this binary
# (CHROMIUM), never a browser of its own download.
CHROMIUM ?= /usr/bin/chromium
export CHROMIUM
browser:
	@test -x $(CHROMIUM) || (apt-get update -qq && apt-get install -y -qq chromium)

# TEST_MARKERS: which tests; CI's second pass leaves the browser suite out (it ran once).
TEST_MARKERS ?= not faults
test: setup peers browser
	$(BIN)/pytest -m "$(TEST_MARKERS)" $(PYTEST_ARGS)

# Fault injection with real worker processes (slower; CI runs them on PostgreSQL + Redis).
faults: setup peers
	$(BIN)/pytest -m faults $(PYTEST_ARGS)

# Benchmarks print figures; see docs/performance.md. The short run is what CI prints.
# rclone is the reference the SFTP benchmark compares against.
bench-tools: peers
	@command -v rclone >/dev/null || (apt-get update -qq && apt-get install -y -qq rclone)

bench: setup bench-tools
	$(BIN)/python bench/sftp_throughput.py
	$(BIN)/python bench/sftp_throughput.py --rtt-ms 30
	$(BIN)/python bench/latency.py
	$(BIN)/python bench/pages.py
	$(BIN)/python bench/memory.py
	$(BIN)/python bench/cloud_throughput.py

bench-short: setup bench-tools
	$(BIN)/python bench/sftp_throughput.py --documents 300 --clients 30

# Cloud drives' APIs (local fakes: 30 ms a request, 100 requests/s, 429 above it).
bench-cloud: setup
	$(BIN)/python bench/cloud_throughput.py --provider gdrive
	$(BIN)/python bench/cloud_throughput.py --provider gdrive --connections 8
	$(BIN)/python bench/cloud_throughput.py --provider dropbox
	$(BIN)/python bench/cloud_throughput.py --provider onedrive

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Needs GNU gettext (installed with apt-get when missing).
messages: setup
	@command -v msgfmt >/dev/null || (apt-get update -qq && apt-get install -y -qq gettext)
	DEBUG=1 $(MANAGE) makemessages --locale nl --locale fr --locale en --ignore '.venv/*' --ignore 'var/*' --no-obsolete
	DEBUG=1 $(MANAGE) makemessages --domain djangojs --locale nl --locale fr --locale en --ignore '.venv/*' --ignore 'var/*' --no-obsolete
	DEBUG=1 $(MANAGE) compilemessages --ignore '.venv/*'

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
