# Planet's front door. Every target installs what it needs first (make deps).
SHELL := /bin/bash
PLANET := bun core/cli/main.ts
DEV_ROOTFS := build/dev/rootfs
DEV_SECRETS := build/dev/secrets
DEV_HOST := planet-dev
DEV_IP := 10.211.0.1
# Another version of an asset for every build, e.g. make production ASSETS=kubernetes@1.36.3
ASSETS ?=
BUILD := $(PLANET) build $(foreach a,$(ASSETS),--asset $(a))
START_FLAGS := --rootfs $(DEV_ROOTFS) --netns $(DEV_HOST) --public-ip $(DEV_IP) --secrets-dir $(DEV_SECRETS) --cluster-id dev

.PHONY: deps dev production master node conformance conformance-run dev-start enter stop test ha-test upgrade-test bench lint clean

deps: ## install Debian packages, bun and node_modules
	@build.assets/host-deps.sh
	@bun install --frozen-lockfile --silent

dev: deps ## build build/dev/planet.tar.gz (master + node on one host)
	$(BUILD) --target dev

production: master node ## build the master and node images

master: deps
	$(BUILD) --target master

node: deps
	$(BUILD) --target node

conformance: deps ## build the conformance bundle (e2e.test, ginkgo, the images its specs run) into build/conformance
	$(BUILD) --target conformance

conformance-run: production conformance ## the full [Conformance] suite on one master + two nodes (hours): docs/conformance/README.md
	bun bench/conformance.ts --parallel $${PARALLEL:-4}

dev-start: dev ## build, issue dev secrets, create the test host and boot the dev bubble (returns when ready)
	$(PLANET) secrets init --domain planet.local --ip $(DEV_IP) --host planet-dev $(DEV_SECRETS)
	$(PLANET) dev-host up $(DEV_HOST) --ip $(DEV_IP)
	$(DEV_ROOTFS)/usr/bin/planet start $(START_FLAGS) --detach
	@echo "ready: make enter | KUBECONFIG=$(DEV_SECRETS)/admin.kubeconfig kubectl get nodes | make stop"

enter: ## a shell inside the dev bubble
	$(DEV_ROOTFS)/usr/bin/planet enter --rootfs $(DEV_ROOTFS)

stop: ## halt the dev bubble and remove the test host
	-$(PLANET) stop --rootfs $(DEV_ROOTFS)
	$(PLANET) dev-host down $(DEV_HOST)

test: deps ## lint, typecheck and every test (integration tests boot real bubbles)
	@test/run.sh

bench: deps ## the quick benches, each figure beside the last recorded one (RECORD=1 adds this run to bench/results/ and the README)
	@bun bench/_check.ts
	@for b in secrets boot kube; do PLANET_BENCH_RECORD=$${RECORD:-0} bun bench/$$b.ts || exit 1; done
	@if [ "$${RECORD:-0}" = 1 ]; then bun bench/_readme.ts; fi

ha-test: deps ## only the three-master tests (part of make test): the leader's bubble stopped under a writer; masters joining and leaving
	bun test --timeout 900000 ./test/ha.test.ts ./test/masters.test.ts

upgrade-test: deps ## upgrades: one host killed at every phase boundary, Kubernetes 1.36 → 1.37 on one host and rolled over 3 masters + 1 node (not in make test)
	PLANET_UPGRADE_KILLS=all PLANET_UPGRADE_VERSIONS=1 PLANET_UPGRADE_CLUSTER=1 bun test --timeout 3600000 ./test/upgrade.test.ts ./test/upgrade-versions.test.ts ./test/upgrade-cluster.test.ts

lint:
	bunx biome check .
	bunx tsc --noEmit

clean: ## remove build outputs (the asset cache in ~/.cache/planet stays)
	-$(PLANET) stop --rootfs $(DEV_ROOTFS) 2>/dev/null
	rm -rf build
