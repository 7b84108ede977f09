# Parley's verbs. Everything runs through the Go toolchain and the tools pinned
# in tools/go.mod, so a fresh machine with only Go installed can run them.

GO      ?= go
TOOL    := $(GO) tool   # workspace mode: the tool directives of tools/go.mod
MODULES := apis platform eventbus userservice chatservice presenceservice notificationservice gateway tools
# `./...` does not cross module boundaries in a workspace: list every module.
PKGS    := ./... $(addprefix ./,$(addsuffix /...,$(MODULES)))
TESTFLAGS ?= -race -count=1 -timeout 20m

.PHONY: run test test-integration test-browser lint fmt vet staticcheck buflint generate check-generated gazelle check-gazelle buildifier breaking bench images

## run: start the whole platform with embedded backends on http://localhost:8080
run:
	$(GO) run ./cmd/parley

## test: unit, integration (embedded backends) and end-to-end tests, with -race
test:
	$(GO) test $(TESTFLAGS) $(PKGS)

## test-integration: the same tests against real servers (PARLEY_MONGODB_URI,
## PARLEY_NATS_URL, PARLEY_REDIS_URL must be set) plus the `integration` tag tier
test-integration:
	@test -n "$$PARLEY_MONGODB_URI" -a -n "$$PARLEY_NATS_URL" -a -n "$$PARLEY_REDIS_URL" || \
		{ echo "test-integration needs PARLEY_MONGODB_URI, PARLEY_NATS_URL and PARLEY_REDIS_URL (see .ci/run)"; exit 2; }
	$(GO) test $(TESTFLAGS) -tags integration $(PKGS)

## test-browser: the web client driven by headless Chromium (needs chromium
## installed, or CHROMIUM_PATH); the `browser` tag tier of e2e
test-browser:
	$(GO) test $(TESTFLAGS) -tags browser -run '^TestBrowser' ./e2e/

## lint: formatting, vet, staticcheck, buf lint, generated code and Bazel files fresh
lint: fmt vet staticcheck buflint check-generated check-gazelle buildifier breaking

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^apis/gen/')); \
		if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)
	$(GO) vet -tags integration $(PKGS)
	$(GO) vet -tags browser ./e2e/

staticcheck:
	$(TOOL) staticcheck $(PKGS)
	$(TOOL) staticcheck -tags browser ./e2e/

buflint:
	bash scripts/protodeps.sh
	$(TOOL) buf lint

## generate: regenerate Go, grpc-gateway and OpenAPI code from apis/
generate:
	bash scripts/generate.sh

check-generated: generate
	@if [ -n "$$(git status --porcelain -- apis/gen)" ]; then \
		echo "generated code is stale: run 'make generate' and commit"; git status --short -- apis/gen; exit 1; fi

## gazelle: regenerate BUILD.bazel files
gazelle:
	bash scripts/gazelle.sh fix

check-gazelle:
	bash scripts/gazelle.sh diff

buildifier:
	$(TOOL) buildifier -mode=check -lint=warn -r .

breaking:
	bash scripts/buf-breaking.sh

## bench: the benchmarks whose numbers are in docs/performance.md
bench:
	$(GO) test -run '^$$' -bench . -benchtime 2s $(PKGS)
