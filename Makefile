# The two commands a fresh machine needs: `make demo` runs the tutorial on a local control
# plane; `make test` runs every test. Both build what they need and cache it.
SHELL := /usr/bin/env bash

ASSETS = $(shell bash hack/k8s-binaries.sh)
# spire-server for the SPIRE backend's tests; empty (tests skip, saying why) only if it
# cannot be built.
SPIRE = $(shell bash hack/spire-binaries.sh)
HELM = $(shell bash hack/helm.sh)
# keytool (a JDK) for the Java keystore tests; hack/keytool.sh installs one if it can.
KEYTOOL = $(shell bash hack/keytool.sh)

.PHONY: all demo demo-credentials demo-kafka cluster test helm-lint image fuzz test-unit test-e2e generate verify-generated build bench bench-smoke bench-scale bench-status-cost bench-credentials bench-credentials-smoke bench-kafka bench-kafka-scale cli-demo demo-mapper bench-mapper-agent bench-mapper-aggregator test-istio-validation

all: build test

## demo: local control plane + operator + the network-policy tutorial, printing what is enforced
demo:
	KUBEBUILDER_ASSETS="$(ASSETS)" go run ./cmd/localcluster demo

## cli-demo: the CLI on the tutorial's files, offline: plan a change and what it would block, explain verdicts, draw the graph
CLI_DATA = cmd/intentguard/testdata
cli-demo:
	go build -o bin/intentguard ./cmd/intentguard
	@echo '$$ intentguard plan --snapshot tutorial/cluster.yaml --base tutorial/intents --dir tutorial/change'
	@bin/intentguard plan --snapshot $(CLI_DATA)/tutorial/cluster.yaml --base $(CLI_DATA)/tutorial/intents --dir $(CLI_DATA)/tutorial/change
	@echo; echo '$$ intentguard plan --snapshot tutorial/cluster.yaml --dir tutorial/intents --shadow-mode --map tutorial/map.json'
	@bin/intentguard plan --snapshot $(CLI_DATA)/tutorial/cluster.yaml --dir $(CLI_DATA)/tutorial/intents --shadow-mode --map $(CLI_DATA)/tutorial/map.json
	@echo; echo '$$ intentguard explain client-other.otterize-tutorial-npol server.otterize-tutorial-npol --dir tutorial/'
	@bin/intentguard explain client-other.otterize-tutorial-npol server.otterize-tutorial-npol --snapshot $(CLI_DATA)/tutorial/cluster.yaml --dir $(CLI_DATA)/tutorial/intents
	@echo; echo '$$ intentguard explain client.otterize-tutorial-npol server.otterize-tutorial-npol --dir tutorial/'
	@bin/intentguard explain client.otterize-tutorial-npol server.otterize-tutorial-npol --snapshot $(CLI_DATA)/tutorial/cluster.yaml --dir $(CLI_DATA)/tutorial/intents
	@echo; echo '$$ intentguard explain client.otterize-tutorial-kafka-mtls kafka.kafka --topic mytopic --op consume --dir kafka/'
	@bin/intentguard explain client.otterize-tutorial-kafka-mtls kafka.kafka --topic mytopic --op consume --dir $(CLI_DATA)/kafka
	@echo; echo '$$ intentguard graph -o mermaid --dir tutorial/ --dir kafka/'
	@bin/intentguard graph -o mermaid --snapshot $(CLI_DATA)/tutorial/cluster.yaml --dir $(CLI_DATA)/tutorial/change --dir $(CLI_DATA)/kafka

## demo-mapper: the network mapper on the tutorial's pods in network namespaces (needs root):
## real traffic, the agent and aggregator, then intentguard map list and map export
demo-mapper:
	go build -o bin/intentguard ./cmd/intentguard
	KUBEBUILDER_ASSETS="$(ASSETS)" go run ./cmd/localcluster demo-mapper --intentguard bin/intentguard

## demo-credentials: local control plane + both operators; a Deployment asks for a certificate and gets a Secret
demo-credentials:
	KUBEBUILDER_ASSETS="$(ASSETS)" go run ./cmd/localcluster demo-credentials

## demo-kafka: local control plane + operator + an ACL-enforcing Kafka broker, the Kafka tutorial
demo-kafka:
	KUBEBUILDER_ASSETS="$(ASSETS)" go run ./cmd/localcluster demo-kafka

## cluster: keep a local control plane with the operator running, and print its kubeconfig;
## ISTIO=1 also installs Istio's AuthorizationPolicy CRD and runs the Istio point
cluster:
	KUBEBUILDER_ASSETS="$(ASSETS)" go run ./cmd/localcluster up --with-tutorial $(if $(ISTIO),--istio)

## test: unit, property and end-to-end tests (the e2e suite runs on a real kube-apiserver)
test: verify-generated helm-lint
	KUBEBUILDER_ASSETS="$(ASSETS)" SPIRE_BIN_DIR="$(SPIRE)" HELM="$(HELM)" KEYTOOL="$(KEYTOOL)" KUBECTL="$(ASSETS)/kubectl" go test ./... -count=1 -timeout 20m
	$(MAKE) test-istio-validation

## test-istio-validation: every Istio policy the operator writes passes Istio's own
## validation (a module of its own: istio.io/istio stays out of the operator's go.mod)
test-istio-validation:
	cd test/istiovalidation && go test ./... -count=1

## helm-lint: lint the chart with the helm that hack/helm.sh builds and caches
helm-lint:
	"$(HELM)" lint --strict deploy/helm/intentguard

test-unit:
	go test ./internal/... ./api/... -count=1

test-e2e:
	KUBEBUILDER_ASSETS="$(ASSETS)" go test ./test/... -count=1 -v -timeout 20m

## generate: deepcopy, CRDs and RBAC from the kubebuilder markers; Istio's CRD from istio.io/api
generate:
	go tool controller-gen object paths=./api/...
	go tool controller-gen crd paths=./api/... output:crd:dir=config/crd
	go tool controller-gen rbac:roleName=intents-operator paths=./internal/... output:rbac:dir=config/rbac
	go tool controller-gen rbac:roleName=credentials-operator paths=./cmd/credentials-operator/... output:rbac:dir=config/rbac-credentials
	go tool controller-gen webhook paths=./internal/webhook/... output:webhook:dir=config/webhook
	go generate ./internal/point/istio/istiocrd
	mkdir -p config/default/crds deploy/helm/intentguard/files/crds
	cp config/crd/*.yaml config/default/crds/
	cp config/crd/*.yaml deploy/helm/intentguard/files/crds/
	cp config/rbac/role.yaml deploy/helm/intentguard/files/role.yaml
	cp config/rbac-credentials/role.yaml deploy/helm/intentguard/files/credentials-role.yaml
	cp config/webhook/manifests.yaml deploy/helm/intentguard/files/webhook.yaml

## verify-generated: fail when generated files are stale
verify-generated:
	@before=$$(find api config deploy -type f | sort | xargs sha256sum); \
	$(MAKE) --no-print-directory generate >/dev/null; \
	after=$$(find api config deploy -type f | sort | xargs sha256sum); \
	[ "$$before" = "$$after" ] || { diff <(echo "$$before") <(echo "$$after"); echo "generated files were stale and are now regenerated: commit them"; exit 1; }

## fuzz: run each conversion fuzzer for FUZZTIME (the seeds alone run in make test)
FUZZTIME ?= 30s
fuzz:
	go test ./api -run '^$$' -fuzz '^FuzzHubRoundTrip$$' -fuzztime $(FUZZTIME)
	go test ./api -run '^$$' -fuzz '^FuzzOldFileToHub$$' -fuzztime $(FUZZTIME)
	go test ./internal/mapper/agent -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME)

## bench: the benchmark harness at its default size (see docs/performance.md for flags)
bench:
	KUBEBUILDER_ASSETS="$(ASSETS)" go run ./test/bench

## bench-smoke: the harness at its smallest size, as CI runs it (no timing is asserted)
bench-smoke:
	KUBEBUILDER_ASSETS="$(ASSETS)" go run ./test/bench -workloads 20 -edges 40 -namespaces 2 -runs 1 -quiet 2s -full-floor-runs 1

## bench-scale: the scale-out size, 10,000 workloads and 30,000 calls over 100 namespaces
## (several minutes on 2 cores; not run in CI)
bench-scale:
	KUBEBUILDER_ASSETS="$(ASSETS)" go run ./test/bench -workloads 10000 -edges 30000 -namespaces 100 -runs 1 -throttled-floor-runs 1 -full-floor-runs 1

## bench-status-cost: what the API server spends per NetworkPolicy create, ClientIntents
## create and ClientIntents status write, in several shapes (not run in CI)
bench-status-cost:
	KUBEBUILDER_ASSETS="$(ASSETS)" go run ./test/statuscost

## bench-credentials: 1,000 annotated pods across 200 workloads (see docs/performance.md)
bench-credentials:
	KUBEBUILDER_ASSETS="$(ASSETS)" SPIRE_BIN_DIR="$(SPIRE)" go run ./test/credbench

## bench-credentials-smoke: the credentials bench at a small size, as CI runs it
bench-credentials-smoke:
	KUBEBUILDER_ASSETS="$(ASSETS)" SPIRE_BIN_DIR="$(SPIRE)" go run ./test/credbench -workloads 20 -replicas 2 -namespaces 2

## bench-kafka: the Kafka ACL benchmark at the issue's size (1,000 clients, 5,000 ACLs)
bench-kafka:
	KUBEBUILDER_ASSETS="$(ASSETS)" go run ./test/kafkabench -clients 1000

## bench-kafka-scale: the Kafka ACL benchmark at the scale-out size (10,000 clients, 50,000 ACLs; not run in CI)
bench-kafka-scale:
	KUBEBUILDER_ASSETS="$(ASSETS)" go run ./test/kafkabench -clients 10000

## bench-mapper-agent: the mapper agent's packet path at 1,000 new connections per second
bench-mapper-agent:
	go test ./internal/mapper/agent -run '^$$' -bench . -benchtime 3s

## bench-mapper-aggregator: the mapper aggregator's memory at 100,000 edges and 50,000 pods
bench-mapper-aggregator:
	go test ./internal/mapper/aggregator/... -run '^$$' -bench Memory -benchtime 1x

build:
	go build -o bin/ ./cmd/...

## image: the images the chart runs as bin/<image>.tar (intents-operator, credentials-operator,
## mapper), built without a container engine (load one with `docker load -i` or push it with
## `crane push`); the Dockerfiles build the same operators' images
image:
	CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags="-s -w" -o bin/ ./cmd/intents-operator ./cmd/credentials-operator ./cmd/mapper-agent ./cmd/mapper-aggregator
	for i in intents-operator credentials-operator mapper; do go run ./cmd/build-image -image $$i || exit 1; done
