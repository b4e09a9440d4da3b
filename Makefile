# Entry points for developers and CI. Targets stay thin: the logic lives in the scripts they call.
.PHONY: cluster-up cluster-down test test-matrix lint demo crd reference controlplane tools node-packages image release deploy bench chaos modelcheck

# ---- Local control plane ----------------------------------------------------------------------
# etcd + kube-apiserver + kube-controller-manager (garbage collection, namespace deletion) built from
# upstream sources (tests/controlplane/), CRDs and RBAC installed; `CLUSTER_FLAGS=` for the lighter
# set. Then: export KUBECONFIG=$(CLUSTER_DIR)/kubeconfig (more in $(CLUSTER_DIR)/cluster.env).
# `CLUSTER_FLAGS=--with-node` (as root) adds a worker node (containerd, kubelet, kube-proxy,
# kube-scheduler; tests/node/node.sh) with the operator's image imported, ready for `helm install`.
CLUSTER_DIR ?= $(CURDIR)/target/cluster
CLUSTER_FLAGS ?= --with-controller-manager
IMAGE_ARCHIVE ?= $(CURDIR)/target/image/eipsegment-operator.tar
IMAGE_BUILDER ?= buildah
export IMAGE_STORAGE_DIR ?= $(HOME)/.cache/eipsegment-operator/image-storage

ifneq (,$(findstring --with-node,$(CLUSTER_FLAGS)))
cluster-up: node-packages image
	tests/controlplane/cluster.sh up $(CLUSTER_DIR) $(CLUSTER_FLAGS) --import-image $(IMAGE_ARCHIVE)
else
cluster-up:
	tests/controlplane/cluster.sh up $(CLUSTER_DIR) $(CLUSTER_FLAGS)
endif

cluster-down:
	tests/controlplane/cluster.sh down $(CLUSTER_DIR)

# ---- Tests -------------------------------------------------------------------------------------
# Every test: the formatting and lint checks, unit and decision tables, the model checker, signer
# vectors, client <-> simulator, the official SDKs against the simulator, the end-to-end suites on a
# real control plane, the node suite (the image on a real node, with helm; needs root), and the
# end-to-end, admission and GitOps suites again on the newest supported Kubernetes. Builds and
# installs what it needs; the suites run JOBS at a time as their test beds get ready, beside the
# test beds' builds (tests/test.mk), and a timing table closes the run (logs in target/test/logs/).
JOBS ?= 3
test:
	@tests/step.sh --begin
	@$(MAKE) --no-print-directory -f tests/test.mk -k -j64 SUITE_SLOTS=$(JOBS) all; made=$$?; tests/step.sh --table; exit $$(( made || $$? ))

# The supported Kubernetes range at both ends (Chart.yaml's kubeVersion; k8s-openapi built for the
# oldest): every suite runs on the oldest, 1.33 (tests/controlplane/build.sh's default), and the
# end-to-end, admission and GitOps suites again on each control plane of K8S_MATRIX, each built from
# its own k8s.io/kubernetes module (tests/controlplane/versions/) and cached.
K8S_MATRIX ?= 1.37
test-matrix:
	@tests/step.sh --begin
	@$(MAKE) --no-print-directory -f tests/test.mk -k -j64 SUITE_SLOTS=$(JOBS) CHAINED= K8S_MATRIX="$(K8S_MATRIX)" matrix-e2e matrix-admission matrix-gitops; \
	  made=$$?; tests/step.sh --table; exit $$(( made || $$? ))

# rustfmt (rustfmt.toml) and clippy with every warning an error.
lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

# The model checker with every scenario's budget of faults and user edits raised by BUDGET (the
# run in `make test` uses the base budgets); prints states explored, depth and time per scenario.
BUDGET ?= 1
modelcheck:
	MODELCHECK_BUDGET=$(BUDGET) cargo test --release --test modelcheck

# The long chaos run (the short one is part of `test`): 200 EipSegments created and deleted in waves
# while the operator is SIGKILLed (55 times), the simulated cloud fails, drops, delays and throttles
# calls and the kube-apiserver restarts once; then every invariant is checked (tests/chaos.rs).
# CHAOS_SEED=<n> picks another reproducible schedule. Report: target/chaos/long-seed<n>.{txt,json}.
chaos: controlplane
	cargo build --workspace --bins
	CHAOS_PROFILE=long cargo test --test chaos

# Builds (once per version, cached in ~/.cache/eipsegment-operator) etcd, kube-apiserver, kubectl.
controlplane:
	tests/controlplane/build.sh >/dev/null

# Builds helm, promtool and the dashboard checker (cached like the control plane), and fetches the
# Prometheus Operator's CRDs, for the chart's and the monitoring tests.
tools:
	tests/tools/build-helm.sh >/dev/null
	tests/tools/build-promtool.sh >/dev/null
	tests/tools/build-dashboard-check.sh >/dev/null
	tests/tools/prometheus-operator-crds.sh >/dev/null

# Debian's containerd, runc, CNI plugins, iptables and buildah for the node (installed once, as root).
node-packages:
	tests/node/install-packages.sh

# The operator's image (deploy/Dockerfile, FROM scratch): IMAGE_BUILDER=buildah|podman|docker,
# IMAGE=<registry>/eipsegment-operator:<tag>; also written as a docker-archive to IMAGE_ARCHIVE.
IMAGE ?= eipsegment-operator:$(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
image:
	deploy/build-image.sh --builder $(IMAGE_BUILDER) --tag $(IMAGE) --archive $(IMAGE_ARCHIVE)

# A release under target/release-artifacts/ (deploy/release.sh): the chart with VERSION (default:
# Cargo.toml's) stamped as its version, appVersion and image tag, packaged with helm; the image
# (IMAGE_BUILDER) as an OCI layout archive; their SHA256SUMS.
VERSION ?=
release:
	deploy/release.sh --builder $(IMAGE_BUILDER) $(if $(VERSION),--version $(VERSION))

# Re-renders deploy/ from the chart (a test fails when it is stale).
deploy:
	tests/tools/render-deploy.sh

# Regenerates the CRD from the Rust types (a test fails when the checked-in copy differs).
crd:
	cargo run --quiet -- crd > crds/eipsegment.io_eipsegments.yaml
	cp crds/eipsegment.io_eipsegments.yaml charts/eipsegment-operator/crds/

# Regenerates the reference pages: the chart's README from values.yaml (helm-docs, built once and
# cached like helm) and the API reference in crds/README.md from the CRD. The chart and reference
# suites fail when either is stale.
reference:
	$$(tests/tools/build-helm-docs.sh) --chart-search-root charts --skip-version-footer --log-level warning
	EIPSEG_WRITE_REFERENCE=1 cargo test --quiet --test reference the_api_reference_is_generated_from_the_crd

# ---- Demo --------------------------------------------------------------------------------------
# Control plane + simulator + operator: create a segment, see it Ready, delete it, see it released.
demo: export CARGO_BUILD_TARGET ?= $(shell rustc -vV | sed -n 's/^host: //p')
demo: export RUSTFLAGS ?= -C target-feature=+crt-static
demo:
	tests/demo.sh

# ---- Benchmarks --------------------------------------------------------------------------------
# Every phase on the real stack (control plane, simulator, operator in release mode): a creation
# storm of N objects, an operator restart, the steady state's drift rounds, then a delete storm.
# LIMITER is the cloud's shape (window or bucket) for QUOTA (CALLS/SECONDS, Alibaba's 60/60) of
# both mutating actions; the operator is told the quota, never the shape. READ_QUOTA raises the
# operator's quota of each Describe action (runs of thousands). It prints a table with
# each target's PASS/FAIL and writes target/bench/bench-$(N)-$(LIMITER).json; BENCH_STRICT=1 fails
# on a missed target. N=1000 at 60/60 takes about 35 minutes (two storms of 16 windows).
# HEAP_PROFILE=1 runs each operator under heaptrack, built with the C library's allocator.
N ?= 1000
LIMITER ?= window
QUOTA ?= 60/60
READ_QUOTA ?=
RELEASE_SECONDS ?= 5
ALLOCATE_SECONDS ?= 2

HEAP_PROFILE ?=

bench: controlplane
	cargo build --release --workspace --bins $(if $(filter 1,$(HEAP_PROFILE)),--features eipsegment-operator/system-allocator)
	BENCH_HEAP_PROFILE=$(HEAP_PROFILE) BENCH_N=$(N) BENCH_LIMITER=$(LIMITER) BENCH_QUOTA=$(QUOTA) BENCH_READ_QUOTA=$(READ_QUOTA) BENCH_RELEASE_SECONDS=$(RELEASE_SECONDS) \
	  BENCH_ALLOCATE_SECONDS=$(ALLOCATE_SECONDS) cargo test --release $(if $(filter 1,$(HEAP_PROFILE)),--features system-allocator) --test bench
