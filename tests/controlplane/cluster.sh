#!/usr/bin/env bash
# A throwaway Kubernetes control plane on loopback: etcd + kube-apiserver (+ kube-controller-manager),
# built from upstream sources by build.sh, no containers. Everything one cluster owns (certificates,
# tokens, etcd data, logs, pids) lives in its directory, so several clusters can run side by side.
#
#   cluster.sh up DIR [--with-controller-manager] [--with-node [--import-image ARCHIVE]...]
#                                                   start; install crds/ and deploy/rbac/; write DIR/cluster.env
#   cluster.sh down DIR                             stop what DIR recorded and remove DIR
#   cluster.sh restart-apiserver DIR [--down-seconds N]   stop kube-apiserver, start it again after N s
#   cluster.sh import-image DIR ARCHIVE...          import image tarballs into the node's containerd
#
# --with-node adds a worker node (tests/node/node.sh, root only): kube-scheduler, containerd, kubelet
# and kube-proxy, the controllers Pods need, and ServiceAccount admission. The apiserver then serves
# on the node's address (NODE_IP in cluster.env), which Pods reach too. The operator is then meant
# to run as Pods installed with helm: deploy/rbac/ and the operator's namespace are not created.
#
# DIR/kubeconfig is cluster-admin (group system:masters). DIR/operator.kubeconfig authenticates exactly
# as the operator's ServiceAccount would, so the RBAC in deploy/rbac/ is what it is allowed to do.
# DIR/scoped-operator.kubeconfig is a second operator identity (ServiceAccount
# eipsegment-operator-scoped) for per-namespace mode: no rights until a test grants them, but those on
# the identity key's Secret in the operator's namespace.
# A bare apiserver runs no controllers: without --with-controller-manager there is no garbage
# collection and deleted namespaces stay Terminating.
# K8S_MINOR in the environment (1.33, 1.34, 1.37) picks the Kubernetes version build.sh builds and
# runs; unset, build.sh's default (1.33, the oldest supported). DIR/cluster.env records it as K8S_VERSION.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="${EIPSEG_CACHE:-$HOME/.cache/eipsegment-operator}"
operator_ns=eipsegment-system
operator_sa=eipsegment-operator
scoped_sa=eipsegment-operator-scoped
identity_key_secret=eipsegment-identity-key # the operator's default --identity-key-secret
marker=.eipsegment-cluster # `down` only ever removes a directory that `up` marked as its own

log() { echo "cluster.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }
usage() { { echo "usage:"; sed -n '6,11s/^# */  /p' "$0"; } >&2; exit 2; }

# Absolute, so the paths written into pid files, kubeconfigs and cluster.env hold from any cwd.
resolve_dir() {
  [[ -n "${1:-}" ]] || usage
  local d
  d="$(realpath -m -- "$1")"
  [[ "$d" != *[[:space:]]* ]] || die "DIR must not contain whitespace: '$d'"
  [[ "$d" != / && "$d" != "$HOME" ]] || die "refusing to use '$d' as a cluster directory"
  echo "$d"
}

alive() { [[ -d /proc/$1 && "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]]; } # zombies count as gone

# A pid file is trusted only while that pid's command line still names DIR: pids get reused.
live_pid() { # DIR PIDFILE -> prints the pid if it is still one of ours
  local pid
  pid="$(cat "$2" 2>/dev/null)" || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  alive "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$1/" || return 1
  echo "$pid"
}

# Newest first: the apiserver shuts down cleanly only while etcd still answers.
stop_recorded() { # DIR NAME: TERM the process DIR/NAME.pid records, KILL it if still there after 10s
  local pid i
  pid="$(live_pid "$1" "$1/$2.pid")" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do alive "$pid" || return 0; sleep 0.1; done
  log "$2 (pid $pid) still running 10s after TERM; sending KILL"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 20; i++)); do alive "$pid" || return 0; sleep 0.1; done
}

stop_processes() { # DIR: each recorded process of the control plane
  local name
  for name in kube-scheduler kube-controller-manager kube-apiserver etcd; do stop_recorded "$1" "$name"; done
}

# Ports are picked by the kernel (bind to port 0), all at once so they differ from each other. Another
# process could still take one before our server binds it; the server then fails with its log shown.
free_ports() {
  python3 - "$1" <<'EOF'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# Runs a server detached from this script (its own session), so it outlives `up` until `down`. Its
# command line is kept in DIR/NAME.cmd (NUL-separated) for `restart-apiserver`; its log is appended
# to, so a restarted server's log follows the previous one.
start() { # NAME BINARY ARGS...
  local name="$1"; shift
  printf '%s\0' "$@" >"$dir/$name.cmd"
  setsid "$@" </dev/null >>"$dir/$name.log" 2>&1 &
  local pid=$! i
  echo "$pid" >"$dir/$name.pid"
  # Until the fork has exec'd, its command line is this script's, which live_pid does not trust:
  # a check that came too early would report a healthy server as exited.
  for ((i = 0; i < 100; i++)); do
    alive "$pid" || return 0
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$dir/" && return 0
    sleep 0.05
  done
}

wait_for() { # NAME TIMEOUT_SECONDS COMMAND... : poll until COMMAND succeeds while NAME stays alive
  local name="$1" timeout="$2" deadline=$((SECONDS + $2)); shift 2
  until "$@" >/dev/null 2>&1; do
    if ! live_pid "$dir" "$dir/$name.pid" >/dev/null; then
      log "$name exited; last lines of $dir/$name.log:"; tail -n 30 "$dir/$name.log" >&2; exit 1
    fi
    if ((SECONDS >= deadline)); then
      log "$name not ready after ${timeout}s; last lines of $dir/$name.log:"; tail -n 30 "$dir/$name.log" >&2; exit 1
    fi
    sleep 0.2
  done
}

gen_pki() { # PKI_DIR [NODE_IP]: a CA, the apiserver's serving certificate, a SA key; with a node
  # also the kubelet's serving certificate and the apiserver's client certificate towards it
  local pki="$1" node_ip="${2:-}" sans="IP:127.0.0.1,DNS:localhost"
  # The first Service IP and the in-cluster names: a Pod reaches the apiserver through them.
  [[ -n "$node_ip" ]] && sans+=",IP:$node_ip,IP:10.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  mkdir -p "$pki"
  # Our own config, so the result does not depend on the system's openssl.cnf.
  cat >"$pki/openssl.cnf" <<EOF
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = $sans
authorityKeyIdentifier = keyid
[client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
[kubelet]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:${node_ip:-127.0.0.1}
authorityKeyIdentifier = keyid
EOF
  local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  openssl req -x509 -config "$pki/openssl.cnf" -extensions ca "${ec[@]}" -days 3650 \
    -subj "/CN=eipsegment-test-ca" -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
  openssl req -new -config "$pki/openssl.cnf" "${ec[@]}" \
    -subj "/CN=kube-apiserver" -keyout "$pki/apiserver.key" -out "$pki/apiserver.csr" 2>/dev/null
  openssl x509 -req -in "$pki/apiserver.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
    -set_serial "0x$(openssl rand -hex 8)" -days 3650 -extfile "$pki/openssl.cnf" -extensions server \
    -out "$pki/apiserver.crt" 2>/dev/null
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
  [[ -n "$node_ip" ]] || return 0
  local name subj
  for name in kubelet apiserver-kubelet-client; do
    subj="/CN=$name"
    [[ "$name" == apiserver-kubelet-client ]] && subj="/O=system:masters/CN=kube-apiserver-kubelet-client"
    openssl req -new -config "$pki/openssl.cnf" "${ec[@]}" -subj "$subj" \
      -keyout "$pki/$name.key" -out "$pki/$name.csr" 2>/dev/null
    openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
      -set_serial "0x$(openssl rand -hex 8)" -days 3650 -extfile "$pki/openssl.cnf" \
      -extensions "$([[ $name == kubelet ]] && echo kubelet || echo client)" -out "$pki/$name.crt" 2>/dev/null
  done
}

write_kubeconfig() { # FILE USER TOKEN [NAMESPACE]
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: eipsegment-test
  cluster:
    server: https://$api_host:$api_port
    certificate-authority-data: $(base64 -w0 <"$dir/pki/ca.crt")
users:
- name: $2
  user:
    token: $3
contexts:
- name: $2
  context:
    cluster: eipsegment-test
    user: $2
    namespace: ${4:-default}
current-context: $2
EOF
}

cmd_up() {
  dir="$(resolve_dir "${1:-}")"; shift
  local with_kcm=0 with_node=0 images=()
  while (($#)); do
    case "$1" in
      --with-controller-manager) with_kcm=1 ;;
      --with-node) with_node=1 with_kcm=1 ;;
      --import-image) [[ -f "${2:-}" ]] || die "--import-image needs an existing archive (got '${2:-}')"; images+=("$(realpath -- "$2")"); shift ;;
      *) usage ;;
    esac
    shift
  done
  ((with_node == 0 && ${#images[@]} > 0)) && die "--import-image needs --with-node"
  ((with_node == 0 || EUID == 0)) || die "--with-node runs containerd and a kubelet: it needs root"

  if [[ -e "$dir/$marker" ]]; then
    local f
    for f in "$dir"/*.pid; do
      live_pid "$dir" "$f" >/dev/null &&
        die "a cluster (or part of one) is running in $dir (see $dir/cluster.env); run 'cluster.sh down $dir' first"
    done
    die "$dir holds a stopped or failed cluster; run 'cluster.sh down $dir' first"
  fi
  if [[ -e "$dir" && -n "$(ls -A "$dir" 2>/dev/null)" ]]; then
    die "$dir exists and is not a cluster directory; pass a new or empty directory"
  fi

  # One build at a time across parallel `up`s: the first builds, the others find the binaries cached.
  mkdir -p "$cache"
  local bin
  bin="$(K8S_MINOR="${K8S_MINOR:-}" WITH_CONTROLLER_MANAGER=$with_kcm WITH_NODE=$with_node flock "$cache/.build.lock" "$here/build.sh")"
  local kubectl="$bin/kubectl" k8s_version
  k8s_version="$("$bin/kube-apiserver" --version | awk '{print $2}')" # "Kubernetes v1.34.4"

  mkdir -p "$(dirname "$dir")"
  umask 077 # keys and tokens are for this user only
  mkdir -p "$dir"
  touch "$dir/$marker"
  # On any failure stop what was started but keep DIR: its logs tell why.
  trap 'teardown_node_of "$dir"; stop_processes "$dir"; log "up failed; logs are in $dir, remove it with: cluster.sh down $dir"' EXIT
  trap 'exit 130' INT TERM

  local etcd_port peer_port kcm_port
  read -r etcd_port peer_port api_port kcm_port < <(free_ports 4)
  api_host=127.0.0.1
  if ((with_node)); then
    node_claim "$dir"
    node_network_up
    api_host="$node_ip"
  fi

  gen_pki "$dir/pki" "$( ((with_node)) && echo "$node_ip")"
  local admin_token operator_token operator_user="system:serviceaccount:$operator_ns:$operator_sa"
  local scoped_token scoped_user="system:serviceaccount:$operator_ns:$scoped_sa"
  local node_token proxy_token
  admin_token="$(openssl rand -hex 24)"
  node_token="$(openssl rand -hex 24)"
  proxy_token="$(openssl rand -hex 24)"
  operator_token="$(openssl rand -hex 24)"
  scoped_token="$(openssl rand -hex 24)"
  # token,user,uid,"groups": the operators' groups are the ones the apiserver gives a real SA token.
  cat >"$dir/tokens.csv" <<EOF
$admin_token,eipsegment-admin,eipsegment-admin,"system:masters"
$operator_token,$operator_user,$operator_sa,"system:serviceaccounts,system:serviceaccounts:$operator_ns,system:authenticated"
$scoped_token,$scoped_user,$scoped_sa,"system:serviceaccounts,system:serviceaccounts:$operator_ns,system:authenticated"
EOF
  if ((with_node)); then
    cat >>"$dir/tokens.csv" <<EOF
$node_token,system:node:$node_name,$node_name,"system:nodes,system:authenticated"
$proxy_token,system:kube-proxy,kube-proxy,"system:authenticated"
EOF
  fi

  start etcd "$bin/etcd" --name=etcd --data-dir="$dir/etcd" \
    --listen-client-urls="http://127.0.0.1:$etcd_port" --advertise-client-urls="http://127.0.0.1:$etcd_port" \
    --listen-peer-urls="http://127.0.0.1:$peer_port" --initial-advertise-peer-urls="http://127.0.0.1:$peer_port" \
    --initial-cluster="etcd=http://127.0.0.1:$peer_port" \
    --unsafe-no-fsync --log-level=warn # test data: losing it on a crash is fine, fsync is slow
  wait_for etcd 30 curl -fsS "http://127.0.0.1:$etcd_port/health"

  # --advertise-address: without a default route the apiserver cannot pick an address and exits.
  # Without a node, ServiceAccount admission is off: no controller creates the default
  # ServiceAccounts it requires. With one, the node's controllers do, and the kubelet is authorized
  # as a node (Node authorizer, NodeRestriction). On loopback no endpoint reconciler: from 1.37 the
  # apiserver refuses to advertise a loopback address in the kubernetes Service's endpoints.
  local node_flags=(--authorization-mode=RBAC --disable-admission-plugins=ServiceAccount --endpoint-reconciler-type=none)
  # With a node, an audit log of who touched EipSegments and Leases: tests check which identity the
  # operator's Pods authenticate as.
  ((with_node)) && cat >"$dir/audit-policy.yaml" <<EOF
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  resources:
  - {group: eipsegment.io}
  - {group: coordination.k8s.io, resources: [leases]}
- level: None
EOF
  ((with_node)) && node_flags=(--authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction
    --audit-policy-file="$dir/audit-policy.yaml" --audit-log-path="$dir/audit.log"
    --kubelet-client-certificate="$dir/pki/apiserver-kubelet-client.crt"
    --kubelet-client-key="$dir/pki/apiserver-kubelet-client.key" --kubelet-preferred-address-types=InternalIP)
  start kube-apiserver "$bin/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$etcd_port" \
    --bind-address="$api_host" --advertise-address="$api_host" --secure-port="$api_port" \
    --tls-cert-file="$dir/pki/apiserver.crt" --tls-private-key-file="$dir/pki/apiserver.key" \
    --token-auth-file="$dir/tokens.csv" \
    --service-account-issuer="https://$api_host:$api_port" \
    --service-account-key-file="$dir/pki/sa.key" --service-account-signing-key-file="$dir/pki/sa.key" \
    --service-cluster-ip-range=10.0.0.0/24 --allow-privileged=true "${node_flags[@]}"
  wait_for kube-apiserver 90 curl -fsS --cacert "$dir/pki/ca.crt" -H "Authorization: Bearer $admin_token" \
    "https://$api_host:$api_port/readyz"

  write_kubeconfig "$dir/kubeconfig" admin "$admin_token"
  write_kubeconfig "$dir/operator.kubeconfig" operator "$operator_token" "$operator_ns"
  write_kubeconfig "$dir/scoped-operator.kubeconfig" scoped-operator "$scoped_token" "$operator_ns"
  local kc=("$kubectl" --kubeconfig "$dir/kubeconfig")

  if ((with_kcm)); then
    # Only what tests need: foreground/background deletion, namespace deletion and aggregated
    # ClusterRoles (the chart adds its rights for people to view, edit and admin); with a node, what
    # Deployments, Services and ServiceAccounts need. It acts with its own credentials (admin).
    write_kubeconfig "$dir/controller-manager.kubeconfig" controller-manager "$admin_token"
    local controllers=garbage-collector-controller,namespace-controller,clusterrole-aggregation-controller
    ((with_node)) && controllers+=,serviceaccount-controller,root-ca-certificate-publisher-controller,deployment-controller,replicaset-controller,endpointslice-controller,endpoints-controller,node-lifecycle-controller,pod-garbage-collector-controller,disruption-controller
    start kube-controller-manager "$bin/kube-controller-manager" \
      --kubeconfig="$dir/controller-manager.kubeconfig" \
      --root-ca-file="$dir/pki/ca.crt" --controllers="$controllers" \
      --use-service-account-credentials=false --leader-elect=false \
      --bind-address=127.0.0.1 --secure-port="$kcm_port"
    wait_for kube-controller-manager 60 curl -fsSk "https://127.0.0.1:$kcm_port/healthz"
  fi
  if ((with_node)); then
    mkdir -p "$dir/node"
    write_kubeconfig "$dir/node/kubelet.kubeconfig" "system:node:$node_name" "$node_token"
    write_kubeconfig "$dir/node/kube-proxy.kubeconfig" kube-proxy "$proxy_token"
    node_start "$dir" "$bin" "${images[@]}"
  fi

  local crds=() rbac=()
  shopt -s nullglob
  crds=("$repo"/crds/*.yaml)
  rbac=("$repo"/deploy/rbac/*.yaml)
  shopt -u nullglob
  # Server-side apply: large CRDs exceed the annotation limit of client-side apply.
  if ((${#crds[@]})); then
    "${kc[@]}" apply --server-side --field-manager=cluster.sh "${crds[@]/#/--filename=}" >/dev/null ||
      die "applying $repo/crds/*.yaml failed (kubectl's message above)"
    "${kc[@]}" wait --for=condition=Established --timeout=60s "${crds[@]/#/--filename=}" >/dev/null ||
      die "CRDs from $repo/crds/ not Established within 60s"
  fi
  # With a node the operator runs as Pods that helm installs with its own RBAC: the host-run
  # operator's identity (its namespace, rights and ServiceAccounts) would collide with a release.
  ((with_node)) && rbac=()
  ((with_node)) || "${kc[@]}" get namespace "$operator_ns" >/dev/null 2>&1 || "${kc[@]}" create namespace "$operator_ns" >/dev/null
  if ((${#rbac[@]})); then
    "${kc[@]}" apply --server-side --field-manager=cluster.sh "${rbac[@]/#/--filename=}" >/dev/null ||
      die "applying $repo/deploy/rbac/*.yaml failed (kubectl's message above)"
  fi
  # The scoped identity's ServiceAccount: tests grant it rights per namespace, but the identity key's
  # here, in the operator's namespace whatever it serves, as the chart grants them (the operator
  # reads the key's Secret at start, and creates it when absent).
  if ((!with_node)); then
    "${kc[@]}" get serviceaccount -n "$operator_ns" "$scoped_sa" >/dev/null 2>&1 ||
      "${kc[@]}" create serviceaccount -n "$operator_ns" "$scoped_sa" >/dev/null
    "${kc[@]}" apply --server-side --field-manager=cluster.sh -f - >/dev/null <<EOF ||
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: $scoped_sa-identity-key, namespace: $operator_ns}
rules:
- {apiGroups: [""], resources: [secrets], resourceNames: [$identity_key_secret], verbs: [get]}
- {apiGroups: [""], resources: [secrets], verbs: [create]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: $scoped_sa-identity-key, namespace: $operator_ns}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: $scoped_sa-identity-key}
subjects:
- {kind: ServiceAccount, name: $scoped_sa, namespace: $operator_ns}
EOF
      die "granting $scoped_sa the identity key's Secret failed (kubectl's message above)"
  fi

  cat >"$dir/cluster.env" <<EOF
KUBECONFIG=$dir/kubeconfig
OPERATOR_KUBECONFIG=$dir/operator.kubeconfig
OPERATOR_USER=$operator_user
SCOPED_OPERATOR_KUBECONFIG=$dir/scoped-operator.kubeconfig
SCOPED_OPERATOR_USER=$scoped_user
APISERVER_URL=https://$api_host:$api_port
APISERVER_HOST=$api_host
APISERVER_PORT=$api_port
ETCD_PORT=$etcd_port
CA_CERT=$dir/pki/ca.crt
KUBECTL=$kubectl
CONTROLPLANE_BIN=$bin
K8S_VERSION=$k8s_version
WITH_CONTROLLER_MANAGER=$with_kcm
WITH_NODE=$with_node
EOF
  ((with_node)) && cat >>"$dir/cluster.env" <<EOF
NODE_NAME=$node_name
NODE_IP=$node_ip
CONTAINERD_ADDRESS=$node_run/containerd.sock
AUDIT_LOG=$dir/audit.log
EOF
  trap - EXIT INT TERM
  # A test process that dies without cleaning up still takes its cluster with it.
  if [[ -n "${CLUSTER_OWNER_PID:-}" ]]; then
    nohup bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 1; done; "$2" down "$3" >/dev/null 2>&1' \
      _ "$CLUSTER_OWNER_PID" "$here/cluster.sh" "$dir" >/dev/null 2>&1 &
  fi
  log "cluster ($k8s_version) up in ${SECONDS}s at https://$api_host:$api_port$( ((with_node)) && echo ", node $node_name Ready") (${#crds[@]} CRD files, ${#rbac[@]} RBAC files applied)"
  log "  export KUBECONFIG=$dir/kubeconfig   # settings in $dir/cluster.env"
}

cmd_down() {
  dir="$(resolve_dir "${1:-}")"
  (($# <= 1)) || usage
  if [[ ! -e "$dir" ]]; then
    log "$dir does not exist; nothing to stop"
    return 0
  fi
  [[ -e "$dir/$marker" ]] || die "$dir was not created by 'cluster.sh up'; not touching it"
  teardown_node_of "$dir"
  stop_processes "$dir"
  rm -rf -- "$dir"
  log "cluster in $dir stopped and removed"
}

# The apiserver alone goes down and comes back, as in a control-plane upgrade or a crash: clients
# see refused connections and broken watches, then the same data (etcd keeps running).
cmd_restart_apiserver() {
  dir="$(resolve_dir "${1:-}")"; shift
  local down_seconds=0
  while (($#)); do
    case "$1" in
      --down-seconds) [[ "${2:-}" =~ ^[0-9]+([.][0-9]+)?$ ]] || usage; down_seconds="$2"; shift ;;
      *) usage ;;
    esac
    shift
  done
  [[ -e "$dir/$marker" && -f "$dir/cluster.env" ]] || die "$dir holds no running cluster (run 'cluster.sh up $dir')"
  live_pid "$dir" "$dir/etcd.pid" >/dev/null || die "etcd of $dir is not running; the apiserver would come back without data"
  local args=() pid api_port admin_token
  if [[ -s "$dir/kube-apiserver.cmd" ]]; then
    mapfile -d '' args <"$dir/kube-apiserver.cmd"
  elif pid="$(live_pid "$dir" "$dir/kube-apiserver.pid")"; then # a cluster started before .cmd files
    mapfile -d '' args <"/proc/$pid/cmdline"
  else
    die "no recorded command line for kube-apiserver in $dir"
  fi
  api_port="$(sed -n 's/^APISERVER_PORT=//p' "$dir/cluster.env")"
  local api_host
  api_host="$(sed -n 's/^APISERVER_HOST=//p' "$dir/cluster.env")"
  api_host="${api_host:-127.0.0.1}"
  admin_token="$(awk -F, '$2 == "eipsegment-admin" {print $1}' "$dir/tokens.csv")"
  [[ -n "$api_port" && -n "$admin_token" ]] || die "cannot read the apiserver port or admin token from $dir"

  # It stops listening at once, then may wait on open watches for a long while: 10s, as `down`.
  stop_recorded "$dir" kube-apiserver
  log "kube-apiserver stopped; starting it again in ${down_seconds}s"
  sleep "$down_seconds"
  start kube-apiserver "${args[@]}"
  wait_for kube-apiserver 90 curl -fsS --cacert "$dir/pki/ca.crt" -H "Authorization: Bearer $admin_token" \
    "https://$api_host:$api_port/readyz"
  log "kube-apiserver ready again at https://$api_host:$api_port (pid $(cat "$dir/kube-apiserver.pid"))"
}

# The node goes first: its Pods' cleanup needs containerd, and containerd's the node's processes gone.
teardown_node_of() { # DIR
  [[ -d "$1/node" || "$(cat "$node_run/owner" 2>/dev/null)" == "$1" ]] || return 0
  node_teardown "$1"
}

cmd_import_image() {
  dir="$(resolve_dir "${1:-}")"; shift
  (($#)) || usage
  [[ "$(sed -n 's/^WITH_NODE=//p' "$dir/cluster.env" 2>/dev/null)" == 1 ]] || die "$dir runs no node"
  local a archives=()
  for a in "$@"; do [[ -f "$a" ]] || die "no archive at $a"; archives+=("$(realpath -- "$a")"); done
  node_import "${archives[@]}"
  log "imported ${#archives[@]} image archive(s) into the node's containerd"
}

# shellcheck source=../node/node.sh
source "$here/../node/node.sh"

case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  import-image) shift; cmd_import_image "$@" ;;
  down) shift; cmd_down "$@" ;;
  restart-apiserver) shift; cmd_restart_apiserver "$@" ;;
  *) usage ;;
esac
