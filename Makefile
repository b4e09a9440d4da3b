# Entry points for developers and CI. Targets stay thin: the logic lives in the scripts they call.
.PHONY: cluster-up cluster-down

# ---- Local control plane ----------------------------------------------------------------------
# etcd + kube-apiserver built from upstream sources (tests/controlplane/), CRDs and RBAC installed.
# `make cluster-up CLUSTER_FLAGS=--with-controller-manager` adds garbage collection and namespace
# deletion. Then: export KUBECONFIG=$(CLUSTER_DIR)/kubeconfig (more in $(CLUSTER_DIR)/cluster.env).
CLUSTER_DIR ?= $(CURDIR)/target/cluster
CLUSTER_FLAGS ?=

cluster-up:
	tests/controlplane/cluster.sh up $(CLUSTER_DIR) $(CLUSTER_FLAGS)

cluster-down:
	tests/controlplane/cluster.sh down $(CLUSTER_DIR)

# ---- Tests -------------------------------------------------------------------------------------

# ---- Demo --------------------------------------------------------------------------------------

# ---- Benchmarks --------------------------------------------------------------------------------
