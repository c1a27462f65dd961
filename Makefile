# Herald: the two commands of the README, and a few helpers.

.PHONY: run test build bench fuzz soak

# Run a development hub on :3000 (random key, anonymous subscribers, permissive CORS).
run:
	go run ./cmd/herald serve --dev

# Install what the tests need when missing, then run every test with -race.
test:
	bash scripts/test.sh

build:
	CGO_ENABLED=0 go build -trimpath -o herald ./cmd/herald

bench:
	go test -run '^$$' -bench . -benchmem ./hub ./topic ./sse ./transport/...

FUZZTIME ?= 30s
fuzz:
	go test -run '^$$' -fuzz '^FuzzPublishBody$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 2s ./server
	go test -run '^$$' -fuzz '^FuzzRoundTrip$$' -fuzztime $(FUZZTIME) ./sse
	go test -run '^$$' -fuzz '^FuzzReader$$' -fuzztime $(FUZZTIME) ./sse
	go test -run '^$$' -fuzz '^FuzzCompile$$' -fuzztime $(FUZZTIME) ./topic
	go test -run '^$$' -fuzz '^FuzzVerify$$' -fuzztime $(FUZZTIME) ./auth

# A short soak (6 minutes) of a Herald hub built from this tree: churning subscribers, paced
# publishes, connection bursts; fails on a lost, duplicated or reordered update or a resource
# that keeps growing after the first 3 minutes. The store keeps 1 000 updates, so that it and
# its write-ahead log are full within the warm-up. SOAKFLAGS go to `herald bench soak`; REF_HUB=/path/to/mercure soaks the
# reference hub beside it. Results in soak-results/.
SOAKFLAGS ?=
soak:
	STORE_SIZE=1000 bash scripts/soak.sh soak-results --duration 6m --warmup 3m $(SOAKFLAGS)
