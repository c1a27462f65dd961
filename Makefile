# Herald: the two commands of the README, and a few helpers.

.PHONY: run test test-slow build bench fuzz soak release image image-files

# The version stamped into binaries and images: the git tag (or commit) of the checkout.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
# -trimpath and an empty build id make the same checkout give the same bytes on any machine.
LDFLAGS = -s -w -buildid= -X main.version=$(VERSION) -X main.commit=$(COMMIT)
GOBUILD = CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags '$(LDFLAGS)'

# Run a development hub on :3000 (random key, anonymous subscribers, permissive CORS).
run:
	go run ./cmd/herald serve --dev

# Install what the tests need when missing, then run every test with -race.
test:
	bash scripts/test.sh

# Tests too slow for every run (over a minute each): a hub that becomes ready when its ACME CA
# comes back, at the first retry.
test-slow:
	HERALD_TEST_SLOW=1 go test -race -count=1 -run 'TestACMECAComesBack' ./cmd/herald

build:
	$(GOBUILD) -o herald ./cmd/herald

# Static binaries for every platform, and their checksums, in dist/.
RELEASE_PLATFORMS ?= linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 windows/arm64
release:
	rm -rf dist && mkdir -p dist
	for p in $(RELEASE_PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; ext=; [ $$os = windows ] && ext=.exe; \
		GOOS=$$os GOARCH=$$arch $(GOBUILD) -o dist/herald_$(VERSION)_$${os}_$${arch}$$ext ./cmd/herald || exit 1; \
	done
	cd dist && sha256sum herald_* > SHA256SUMS
	cat dist/SHA256SUMS

# The container image (see Dockerfile): the files it copies, then the build. CONTAINER=podman
# builds in the docker format, the one that keeps HEALTHCHECK.
IMAGE ?= herald:$(VERSION)
IMAGE_ARCHES ?= $(shell go env GOARCH)
CONTAINER ?= docker
CA_BUNDLE ?= /etc/ssl/certs/ca-certificates.crt
image-files:
	mkdir -p build/data
	cp $(CA_BUNDLE) build/ca-certificates.crt
	for arch in $(IMAGE_ARCHES); do GOOS=linux GOARCH=$$arch $(GOBUILD) -o build/linux-$$arch/herald ./cmd/herald || exit 1; done

image: image-files
	$(CONTAINER) build $(if $(findstring podman,$(CONTAINER)),--format docker) \
		--build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) -t $(IMAGE) .

bench:
	go test -run '^$$' -bench . -benchmem ./hub ./topic ./sse ./transport/...

FUZZTIME ?= 30s
fuzz:
	go test -run '^$$' -fuzz '^FuzzPublishBody$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 2s ./server
	go test -run '^$$' -fuzz '^FuzzH2Frames$$' -fuzztime $(FUZZTIME) ./server
	go test -run '^$$' -fuzz '^FuzzRoundTrip$$' -fuzztime $(FUZZTIME) ./sse
	go test -run '^$$' -fuzz '^FuzzReader$$' -fuzztime $(FUZZTIME) ./sse
	go test -run '^$$' -fuzz '^FuzzCompile$$' -fuzztime $(FUZZTIME) ./topic
	go test -run '^$$' -fuzz '^FuzzTemplateIndex$$' -fuzztime $(FUZZTIME) ./hub
	go test -run '^$$' -fuzz '^FuzzVerify$$' -fuzztime $(FUZZTIME) ./auth

# A short soak (6 minutes) of a Herald hub built from this tree: churning subscribers, paced
# publishes, connection bursts; fails on a lost, duplicated or reordered update or a resource
# that keeps growing after the first 3 minutes. The store keeps 1 000 updates, so that it and
# its write-ahead log are full within the warm-up. SOAKFLAGS go to `herald bench soak`; REF_HUB=/path/to/mercure soaks the
# reference hub beside it. Results in soak-results/.
SOAKFLAGS ?=
soak:
	STORE_SIZE=1000 bash scripts/soak.sh soak-results --duration 6m --warmup 3m $(SOAKFLAGS)
