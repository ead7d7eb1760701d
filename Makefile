# Operator targets: thin wrappers over the nox sessions (`make help` lists them).
# Each runs nox from the project's lock file with uv. `make verify` and `make test` set up
# what they need: uv (with pip), and a Docker engine (scripts/install-docker.sh: on
# Debian/Ubuntu as root it installs and starts one; elsewhere it says what to install).
.DEFAULT_GOAL := help
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

UV ?= uv
# Bytecode is written, under .dashtam/pycache, even when the caller's environment turns it
# off: otherwise nox and every worker it starts compile the same modules on every run (the
# noxfile sets the same for the processes nox starts; pipeline.verification.BYTECODE_CACHE).
NOX := PYTHONDONTWRITEBYTECODE= PYTHONPYCACHEPREFIX=$(CURDIR)/.dashtam/pycache \
	$(UV) run --locked --no-default-groups --group pipeline nox
AIRGAP := $(filter airgap,$(DASHTAM_IMAGE_SOURCE))
# air-gapped mode builds local stand-ins for the base images first, in the same nox run
# (nothing to do, decided from their labels, when their inputs are unchanged).
AIRGAP_PREP := $(if $(AIRGAP),base-images,)
# The compose project the dev-* targets act on: DASHTAM_PROJECT=<name> runs a second dev
# stack beside your own, with its own env file (env/.env.<name>) and volumes.
DEV_PROJECT := $(or $(DASHTAM_PROJECT),dashtam-dev)

.PHONY: help tools engine verify test lint build publish base-images \
	dev-up dev-down dev-restart dev-status dev-logs dev-shell dev-rebuild dev-destroy \
	test-up test-down test-rebuild

help: ## List every target with one line
	@awk -F ':.*## ' '/^[a-z-]+:.*## / {printf "  %-13s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

tools: ## Install uv (the one Python tool the host needs) when it is missing
	@command -v $(UV) >/dev/null || python3 -m pip install --quiet uv \
	  || { echo "make: cannot install uv; run 'python3 -m pip install uv' and retry." >&2; exit 1; }

engine: ## Install and start Docker Engine >= 26 with Compose and Buildx when none answers
	@bash scripts/install-docker.sh $(if $(AIRGAP),--with-mmdebstrap,)

# Lint runs beside the verify sessions (nox's scheduler: both allow it), on the CPU they leave
# idle while their stacks boot; the builds come first, alone.
verify: tools engine ## The main job: lint, build every stage, verify every environment
	$(NOX) -s $(AIRGAP_PREP) build-all lint verify

test: tools engine ## The test suite: unit, lint, build, verify every environment, pipeline integration
	$(NOX) -s $(AIRGAP_PREP) tests build lint verify integration

lint: tools ## Lint Dockerfile, YAML, compose configs, workflows and env files
	$(NOX) -s lint

build: tools ## Build all five stages (tags development, production, callback)
	$(NOX) -s $(AIRGAP_PREP) build-all

publish: tools engine ## Tag in the registry the digests every verify passed on (TAG=name; default: the commit)
	$(NOX) -s publish $(if $(TAG),-- --tag $(TAG),)

base-images: tools ## Build the air-gapped stand-ins for the upstream base images
	@bash scripts/install-docker.sh --with-mmdebstrap
	$(NOX) -s base-images

dev-up: tools ## Start the dev stack (creates env/.env.dev from the template on first use)
	$(NOX) -s "up(dev)"

dev-down: tools ## Stop the dev stack; its data volumes are kept
	$(NOX) -s "down(dev)"

dev-restart: dev-down dev-up ## Stop and start the dev stack

dev-status: tools ## Show the dev stack's containers, health and ports
	$(NOX) -s "status(dev)"

dev-logs: tools ## Follow the dev stack's logs
	$(NOX) -s "logs(dev)"

dev-shell: tools ## Open a shell in the dev app container (as appuser)
	$(NOX) -s "shell(dev)"

dev-rebuild: tools ## Rebuild the development image without cache and restart the dev stack
	DASHTAM_BUILD_NO_CACHE=1 $(NOX) -s "up(dev)"

dev-destroy: tools ## DELETE the dev stack's data volumes (asks first; CONFIRM=<project> skips)
	@echo "WARNING: this deletes the PostgreSQL and Redis data of $(DEV_PROJECT) for good." >&2
	@if [ "$${CONFIRM:-}" != "$(DEV_PROJECT)" ]; then \
	  read -r -p "Type $(DEV_PROJECT) to confirm: " answer && [ "$$answer" = "$(DEV_PROJECT)" ] \
	  || { echo "make: nothing deleted." >&2; exit 1; }; fi
	$(NOX) -s "down(dev)" -- --volumes

test-up: tools ## Start the test stack (ports differ from dev's; both can run)
	$(NOX) -s "up(test)"

test-down: tools ## Stop the test stack (its data is on tmpfs)
	$(NOX) -s "down(test)"

test-rebuild: tools ## Rebuild the development image without cache and restart the test stack
	DASHTAM_BUILD_NO_CACHE=1 $(NOX) -s "up(test)"
