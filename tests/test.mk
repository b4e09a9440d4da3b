# Every test, as `make test` runs it (`make -f tests/test.mk -k -j` with room for every step): the
# test beds and one Rust build prepared side by side, then each suite as soon as what it needs is
# ready, SUITE_SLOTS suites at a time (tests/step.sh --suite keeps that count, so a suite never
# holds back a test bed's build). Each step runs through tests/step.sh: its output in
# target/test/logs/STEP.log, its time in the table printed at the end. The Go builds run one after
# another (each keeps both cores busy); the order puts first what most suites wait for.
STEP := tests/step.sh
SUITE := $(STEP) --suite
K8S_MATRIX ?= 1.37

# One Rust build serves the suites, the demo and the node suite's image (FROM scratch): linked
# statically, for the host's target named explicitly so that build scripts and proc macros are not.
# (`make demo` builds the same way.)
export CARGO_BUILD_TARGET ?= $(shell rustc -vV | sed -n 's/^host: //p')
export RUSTFLAGS ?= -C target-feature=+crt-static
EXECUTABLES := target/test/executables.tsv

# Suites by what they need besides the build.
ALONE := modelcheck properties signer_vectors cloud_simulator simulator_accounts poller rrsa \
	sdk_crosscheck reference
ON_CONTROL_PLANE := e2e admission gitops leakproof restores tenants audit chaos bench fencing
SUITES := $(ALONE) $(ON_CONTROL_PLANE) workspace chart monitoring node argocd argocd_health
MATRIX_SUITES := e2e admission gitops

# The chain of Go builds first (each waits for the one before it), then the build, then the suites
# longest first: the order in which they take the suites' places.
all: argocd build suite-node suite-leakproof suite-e2e suite-chaos matrix-e2e suite-modelcheck \
	suite-cloud_simulator matrix-admission suite-admission suite-chart suite-gitops matrix-gitops \
	$(SUITES:%=suite-%) unit clippy fmt

# ---- Rust --------------------------------------------------------------------------------------
fmt:
	@$(STEP) fmt cargo fmt --all --check

# After the build: clippy checks every crate again (without code generation), while suites run.
clippy: build
	@$(STEP) clippy cargo clippy --workspace --all-targets -- -D warnings

# Every binary (the suites run the simulator's and the operator's), and every test executable,
# listed as NAME KIND PACKAGE_DIR PATH for tests/run-suite.sh.
build:
	@$(STEP) build sh -c 'cargo build --workspace --bins && cargo test --workspace --all-targets --no-run --message-format=json-render-diagnostics \
	  | jq -r "select(.reason == \"compiler-artifact\" and .executable != null and .profile.test) \
	  | [.target.name, .target.kind[0], (.manifest_path | rtrimstr(\"/Cargo.toml\")), .executable] | @tsv" \
	  > $(EXECUTABLES).tmp && mv $(EXECUTABLES).tmp $(EXECUTABLES)'

# ---- Test beds (Go builds and Debian packages, cached under ~/.cache/eipsegment-operator) ------
# In a whole run the Go builds form one chain, in this order; `CHAINED=` (as `make test-matrix`
# gives) builds only what the goals need.
CHAINED ?= yes

node-packages:
	@$(STEP) node-packages tests/node/install-packages.sh

# The default control plane (1.33) with the node's parts; the pause image needs buildah.
controlplane: node-packages
	@$(STEP) controlplane env WITH_NODE=1 tests/controlplane/build.sh

helm: | $(if $(CHAINED),controlplane)
	@$(STEP) helm tests/tools/build-helm.sh

prometheus-crds: | $(if $(CHAINED),helm)
	@$(STEP) prometheus-crds tests/tools/prometheus-operator-crds.sh

controlplane-matrix: | $(if $(CHAINED),prometheus-crds)
	@$(STEP) controlplane-matrix sh -c 'for v in $(K8S_MATRIX); do K8S_MINOR=$$v tests/controlplane/build.sh || exit 1; done'

# Last: only the monitoring suite, one of the shortest, waits for these.
promtool: | $(if $(CHAINED),controlplane-matrix)
	@$(STEP) promtool tests/tools/build-promtool.sh

dashboard-check: | $(if $(CHAINED),promtool)
	@$(STEP) dashboard-check tests/tools/build-dashboard-check.sh

# Last: only the Argo CD suites wait for it, and it is the longest of the builds.
argocd: | $(if $(CHAINED),dashboard-check)
	@$(STEP) argocd tests/tools/build-argocd.sh

# ---- Suites ------------------------------------------------------------------------------------
unit: build
	@$(SUITE) unit tests/run-suite.sh --unit

$(ALONE:%=suite-%): suite-%: build
	@$(SUITE) $* tests/run-suite.sh $*

$(ON_CONTROL_PLANE:%=suite-%): suite-%: build controlplane
	@$(SUITE) $* tests/run-suite.sh $*

# It runs cargo itself (cargo tree), which waits while another cargo holds the package cache.
suite-workspace: build clippy
	@$(SUITE) workspace tests/run-suite.sh workspace

suite-chart: build controlplane helm prometheus-crds
	@$(SUITE) chart tests/run-suite.sh chart

suite-monitoring: build helm promtool dashboard-check
	@$(SUITE) monitoring tests/run-suite.sh monitoring

suite-node: build controlplane helm
	@$(SUITE) node tests/run-suite.sh node

suite-argocd: build controlplane helm argocd
	@$(SUITE) argocd tests/run-suite.sh argocd

suite-argocd_health: build argocd
	@$(SUITE) argocd_health tests/run-suite.sh argocd_health

# The end-to-end, admission and GitOps suites again on the newest supported Kubernetes.
$(MATRIX_SUITES:%=matrix-%): matrix-%: build controlplane-matrix
	@$(SUITE) matrix-$* sh -c 'for v in $(K8S_MATRIX); do K8S_MINOR=$$v tests/run-suite.sh $* || exit 1; done'

.PHONY: all fmt clippy build node-packages controlplane helm prometheus-crds promtool dashboard-check argocd \
	controlplane-matrix unit $(SUITES:%=suite-%) $(MATRIX_SUITES:%=matrix-%)
