# modelauth: see README.md. Prerequisites: Go (the version in go.mod) and make.

GO        ?= go
BIN       := build/bin
APP       ?= build/app
# The staged handler is the Linux binary Azure runs; `make run` stages one
# for this machine instead.
HANDLER_GOOS   ?= linux
HANDLER_GOARCH ?= amd64
DATA_DIR  ?= $(CURDIR)/.modelauth
PORT      ?= 7071
# Short runs count executions: a time limit can end a run with a spurious
# "context deadline exceeded" from the fuzzing engine.
SHORTFUZZ := 30000x
FUZZTIME  ?= $(SHORTFUZZ)
LONGFUZZ  ?= 2m
# For example BENCH_ARGS="-repeats 9 -duration 3s" on a noisy machine.
BENCH_ARGS ?=
# Fuzz targets: package:Target, or package:Target:N for a short run of N
# executions (for targets that touch the disk).
FUZZ_TARGETS := \
	./shared/bearer:FuzzParseValue \
	./shared/authn:FuzzIdentityJSON \
	./shared/azfunc:FuzzDecodeInvokeRequest \
	./shared/azfunc:FuzzTime \
	./shared/secretstore/filestore:FuzzValueRoundTrip:1000x \
	./shared/secretstore/filestore:FuzzDecodeRecord \
	./shared/jwtauth:FuzzVerify \
	./shared/jwtclaims:FuzzUnmarshal \
	./shared/jwtclaims:FuzzMembersAgreeWithDecoder \
	./functions:FuzzIsClean \
	./infra:FuzzParseBicep

.PHONY: build stage lambda package run nginx admin-key test fuzz-short fuzz bench lint clean

build:
	$(GO) build ./...
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/funchost ./cmd/funchost
	$(GO) build -o $(BIN)/demomodel ./cmd/demomodel
	$(GO) build -o $(BIN)/secretctl ./cmd/secretctl
	$(GO) build -o $(BIN)/modelauth ./cmd/modelauth

# A runnable function app: host.json, one folder per function with its
# function.json, the handler binary, the service configuration and the
# local settings (but not with STAGE_LOCAL_SETTINGS=no, as `make package`
# stages: a deployed app never reads them, and they may hold secrets).
STAGE_LOCAL_SETTINGS := yes
stage:
	@rm -rf $(APP) && mkdir -p $(APP)
	cp host.json modelauth.json $(APP)/
	@for f in functions/*/function.json; do \
		d=$(APP)/$$(basename $$(dirname $$f)); mkdir -p $$d && cp $$f $$d/; done
	@if [ "$(STAGE_LOCAL_SETTINGS)" = no ]; then :; \
		elif [ -f local.settings.json ]; then cp local.settings.json $(APP)/; \
		else cp local.settings.example.json $(APP)/local.settings.json; fi
	CGO_ENABLED=0 GOOS=$(HANDLER_GOOS) GOARCH=$(HANDLER_GOARCH) $(GO) build -trimpath -o $(APP)/handler ./cmd/handler
	@echo "staged the function app in $(APP)"

# The AWS Lambda bootstrap (cmd/lambda: one binary, MODELAUTH_LAMBDA_HANDLER
# picks the function) for the provided.al2023 runtime on both Lambda
# architectures, <arch>:<GOARCH>: $(LAMBDA)/<arch>/bootstrap, and the
# deployment package $(LAMBDA)/modelauth-<arch>.zip with the bootstrap and
# modelauth.json at its root.
LAMBDA        ?= build/lambda
LAMBDA_ARCHES := arm64:arm64 x86_64:amd64
lambda:
	@for a in $(LAMBDA_ARCHES); do arch=$${a%%:*}; goarch=$${a#*:}; \
		mkdir -p $(LAMBDA)/$$arch || exit 1; \
		echo "building $(LAMBDA)/$$arch/bootstrap"; \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$goarch $(GO) build -tags lambda.norpc -trimpath \
			-o $(LAMBDA)/$$arch/bootstrap ./cmd/lambda || exit 1; \
		$(GO) run ./cmd/mkzip -o $(LAMBDA)/modelauth-$$arch.zip \
			$(LAMBDA)/$$arch/bootstrap modelauth.json || exit 1; \
		echo "wrote $(LAMBDA)/modelauth-$$arch.zip"; done

# The deployment packages, in $(PACKAGE):
#  - modelauth-azure.zip, for Azure Functions zip deploy (Flex Consumption,
#    Linux): `make stage` without local settings, the handler for
#    linux/$(HANDLER_GOARCH), zipped with the app folder's tree at its root;
#  - modelauth-lambda-<arch>.zip, `make lambda`'s zips.
# They are built in $(PACKAGE)/.work, which is removed at the end.
PACKAGE ?= build/package
package:
	@rm -rf $(PACKAGE)/.work && mkdir -p $(PACKAGE)/.work
	@$(MAKE) --no-print-directory -s stage APP=$(PACKAGE)/.work/app STAGE_LOCAL_SETTINGS=no \
		HANDLER_GOOS=linux HANDLER_GOARCH=$(HANDLER_GOARCH) >/dev/null
	@$(GO) run ./cmd/mkzip -o $(PACKAGE)/modelauth-azure.zip -C $(PACKAGE)/.work/app
	@$(MAKE) --no-print-directory -s lambda LAMBDA=$(PACKAGE)/.work/lambda >/dev/null
	@for a in $(LAMBDA_ARCHES); do arch=$${a%%:*}; \
		cp $(PACKAGE)/.work/lambda/modelauth-$$arch.zip $(PACKAGE)/modelauth-lambda-$$arch.zip || exit 1; done
	@rm -rf $(PACKAGE)/.work
	@echo "wrote $(PACKAGE)/modelauth-azure.zip (Azure Functions, linux/$(HANDLER_GOARCH))"
	@for a in $(LAMBDA_ARCHES); do echo "wrote $(PACKAGE)/modelauth-lambda-$${a%%:*}.zip (AWS Lambda, provided.al2023)"; done

# The demo model's address: the demo services' scoringUri in modelauth.json
# names 127.0.0.1:5001 (tests move it to keep clear of a running `make run`).
DEMO_ADDR ?= 127.0.0.1:5001
# The issuer follows PORT (the local settings name port 7071), unless
# MODELAUTH_ISSUER is in the environment; with PORT=0 the port is not known
# here, and the local settings' issuer stays.
RUN_ISSUER := $(if $(MODELAUTH_ISSUER),,$(if $(filter 0 7071,$(PORT)),,MODELAUTH_ISSUER=http://localhost:$(PORT)/api))

# Serve the app on http://localhost:$(PORT) with the embedded store in
# $(DATA_DIR), and the demo scoring model on $(DEMO_ADDR). Both run in the
# background of the recipe's shell, which waits for the host: Ctrl-C, or a
# TERM to make (which make passes to this shell), stops both at once, and
# the host's exit (an error at start, say) stops the demo model.
run: build
	@$(MAKE) --no-print-directory stage HANDLER_GOOS=$$($(GO) env GOOS) HANDLER_GOARCH=$$($(GO) env GOARCH)
	@echo "Read the administrator key with: make -s admin-key$(if $(filter $(CURDIR)/.modelauth,$(DATA_DIR)),, DATA_DIR=$(DATA_DIR))"
	@demo=; host=; \
		trap 'kill -TERM $$host $$demo 2>/dev/null; wait; exit 130' INT; \
		trap 'kill -TERM $$host $$demo 2>/dev/null; wait; exit 143' TERM; \
		$(BIN)/demomodel --addr $(DEMO_ADDR) & demo=$$!; \
		MODELAUTH_DATA_DIR=$(DATA_DIR) $(RUN_ISSUER) $(BIN)/funchost --app $(APP) --port $(PORT) & host=$$!; \
		wait $$host; status=$$?; kill -TERM $$demo 2>/dev/null; wait; exit $$status

# nginx in front of `make run`'s app ($(PORT)) and demo model ($(DEMO_ADDR)),
# in the foreground on http://127.0.0.1:8080 with the recipe
# deploy/gateways/nginx/modelauth.conf; its files in build/nginx
# (docs/gateways.md). Needs nginx: apt-get install nginx-light.
NGINX ?= nginx
NGINX_DIR := $(CURDIR)/build/nginx
nginx:
	@PATH="$$PATH:/usr/sbin"; command -v $(NGINX) >/dev/null || { echo "nginx is not installed: sudo apt-get install nginx-light"; exit 1; }; \
		mkdir -p $(NGINX_DIR) && chmod 755 $(CURDIR)/build $(NGINX_DIR) && \
		cp deploy/gateways/nginx/nginx.conf $(NGINX_DIR)/ && \
		sed -e 's/127\.0\.0\.1:7071/127.0.0.1:$(PORT)/' -e 's/127\.0\.0\.1:5001/$(DEMO_ADDR)/' \
			deploy/gateways/nginx/modelauth.conf >$(NGINX_DIR)/modelauth.conf && \
		echo "nginx on http://127.0.0.1:8080 in front of http://127.0.0.1:$(PORT) and $(DEMO_ADDR)" && \
		exec $(NGINX) -p $(NGINX_DIR)/ -c $(NGINX_DIR)/nginx.conf

# Print the administrator key of the local store (and nothing else).
admin-key:
	@MODELAUTH_DATA_DIR=$(DATA_DIR) $(GO) run ./cmd/secretctl get admin-key

test: lint
	$(GO) test -race -count=1 ./...
	$(GO) test -count=1 -run '^TestFleet$$' -v ./functions
	$(GO) test -count=1 -run 'Allocs$$' ./shared/... ./functions/...
	@$(MAKE) --no-print-directory fuzz-short

fuzz-short:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; rest=$${t#*:}; name=$${rest%%:*}; n=$${rest#$$name}; n=$${n#:}; \
		ft=$(FUZZTIME); [ -n "$$n" ] && [ "$(FUZZTIME)" = "$(SHORTFUZZ)" ] && ft=$$n; \
		$(GO) test -run='^$$' -fuzz="^$$name$$" -fuzztime=$$ft $$pkg || exit 1; done

fuzz:
	@$(MAKE) --no-print-directory fuzz-short FUZZTIME=$(LONGFUZZ)

bench:
	$(GO) test -run='^$$' -bench=. -benchmem ./shared/...
	$(GO) test -run='^$$' -bench=WrongKeyFlood -benchtime=1x ./functions -flood-settled
	$(GO) test -run=TestRotationUnderLoad -v ./functions -rotation-load=30s
	$(GO) test -run=TestEndpointRotationUnderLoad -v ./functions -endpoint-load=20s
	$(GO) run ./cmd/benchvalidate $(BENCH_ARGS)

lint:
	@out=$$(gofmt -l shared functions cmd infra docs); \
		if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

clean:
	rm -rf build
