# A worker node beside the control plane of tests/controlplane/cluster.sh (which sources this file
# for `up --with-node` and `down`): containerd + runc + the CNI bridge plugin from Debian's packages,
# kubelet, kube-proxy and kube-scheduler from the control plane's own Kubernetes module, no
# container engine. The node's address is that of a bridge the node creates (NODE_IP); Pods reach
# it, the Service IPs, and nothing else the node did not create.
#
# kube-proxy's rules and the bridge are host-wide, so one node runs per machine at a time: it holds
# $node_run/owner. A node whose cluster is gone (a failed run) is torn down by the next `up`.
# Everything else (containerd's root and state, runc's state, the kubelet's root, CNI state, the
# cgroup root) belongs to the cluster directory or is named after the node, so teardown finds it.

node_run=/run/eipsegment-node
node_name=eipseg-node
node_bridge=eipseg0
node_ip=10.213.0.1
node_cidr=10.213.0.0/24
node_cgroup=eipsegment-node
node_sysctls=(vm.overcommit_memory kernel.panic kernel.panic_on_oops) # the kubelet sets these
pause_image=localhost/eipsegment-pause:1

node_log() { echo "cluster.sh (node): $*" >&2; }

# The node slot: refuse while another live cluster holds it; clean up after a dead one.
node_claim() { # DIR
  mkdir -p "$node_run"
  local owner f
  owner="$(cat "$node_run/owner" 2>/dev/null || true)"
  if [[ -n "$owner" && "$owner" != "$1" ]]; then
    for f in "$owner"/*.pid; do
      [[ -e "$f" ]] || continue
      live_pid "$owner" "$f" >/dev/null &&
        die "a node cluster is running in $owner; one node runs per machine (run 'cluster.sh down $owner' first)"
    done
    node_log "tearing down the node left behind by $owner"
    node_teardown "$owner"
    node_kill_naming "$owner/" # its control plane too
    [[ -e "$owner/.eipsegment-cluster" ]] && rm -rf -- "$owner"
  fi
  echo "$1" >"$node_run/owner"
}

node_network_up() {
  ip link show "$node_bridge" >/dev/null 2>&1 || ip link add "$node_bridge" type bridge
  ip addr replace "$node_ip/24" dev "$node_bridge"
  ip link set "$node_bridge" up
}

# Values the kubelet changes, kept once per node so teardown can put them back.
node_save_sysctls() {
  [[ -e "$node_run/sysctl.saved" ]] && return 0
  local k
  for k in "${node_sysctls[@]}"; do echo "$k=$(sysctl -n "$k")"; done >"$node_run/sysctl.saved.tmp"
  mv "$node_run/sysctl.saved.tmp" "$node_run/sysctl.saved"
}

node_cgroups_up() {
  local h d
  for h in /sys/fs/cgroup/*/; do
    [[ -e "$h/cgroup.procs" ]] || continue
    d="$h$node_cgroup"
    mkdir -p "$d"
    # A new cpuset child starts with no CPUs and no memory nodes.
    [[ -e "$d/cpuset.cpus" ]] && cat "$h/cpuset.cpus" >"$d/cpuset.cpus" && cat "$h/cpuset.mems" >"$d/cpuset.mems"
  done
  return 0
}

node_write_configs() { # DIR KUBELET_PORT KUBELET_HEALTHZ_PORT PROXY_HEALTHZ_PORT PROXY_METRICS_PORT
  local dir="$1" n="$1/node"
  mkdir -p "$n/cni/conf" "$n/cni/ipam" "$n/containerd" "$n/kubelet" "$n/runc"
  cat >"$n/containerd/config.toml" <<EOF
version = 2
root = "$n/containerd/root"
state = "$n/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "$node_run/containerd.sock"
[ttrpc]
  address = "$node_run/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$n/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$pause_image"
  # The VM lacks CAP_SYS_RESOURCE: runc cannot lower oom_score_adj to the kubelet's -998.
  restrict_oom_score_adj = true
  disable_apparmor = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$n/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$n/cni/conf"
EOF
  cat >"$n/cni/conf/10-eipseg.conflist" <<EOF
{"cniVersion": "1.0.0", "name": "eipseg", "plugins": [
  {"type": "bridge", "bridge": "$node_bridge", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "dataDir": "$n/cni/ipam", "ranges": [[{"subnet": "$node_cidr", "gateway": "$node_ip", "rangeStart": "10.213.0.10"}]],
            "routes": [{"dst": "0.0.0.0/0"}]}}]}
EOF
  # No nameserver: Pods address the node, Pods and Service IPs, never a resolver.
  echo "options ndots:1" >"$n/resolv.conf"
  cat >"$n/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $node_ip
port: $2
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $3
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $dir/pki/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $dir/pki/kubelet.crt
tlsPrivateKeyFile: $dir/pki/kubelet.key
containerRuntimeEndpoint: unix://$node_run/containerd.sock
cgroupDriver: cgroupfs
cgroupRoot: /$node_cgroup
failCgroupV1: false
failSwapOn: false
clusterDNS: []
clusterDomain: cluster.local
resolvConf: $n/resolv.conf
podLogsDir: $n/pod-logs
# The eviction manager cannot read this VM's disk statistics; images are imported, never pulled.
evictionHard: {memory.available: "1Mi", nodefs.available: "0%", nodefs.inodesFree: "0%", imagefs.available: "0%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
EOF
  cat >"$n/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $n/kube-proxy.kubeconfig}
mode: iptables
clusterCIDR: $node_cidr
hostnameOverride: $node_name
bindAddress: $node_ip
healthzBindAddress: 127.0.0.1:$4
metricsBindAddress: 127.0.0.1:$5
nodePortAddresses: ["$node_ip/32"]
# Leave the host's sysctls alone: no route_localnet, no conntrack table sizes or timeouts.
iptables: {localhostNodePorts: false}
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
}

# Imports image archives (docker-archive or OCI tarballs) into the node's containerd.
node_import() { # ARCHIVE...
  local a
  for a in "$@"; do
    ctr --address "$node_run/containerd.sock" -n k8s.io images import "$a" >/dev/null ||
      die "importing $a into the node's containerd failed"
  done
}

node_start() { # DIR BIN IMAGE_ARCHIVE...
  local dir="$1" bin="$2" n="$1/node"; shift 2
  local kubelet_port kubelet_healthz proxy_healthz proxy_metrics sched_port
  read -r kubelet_port kubelet_healthz proxy_healthz proxy_metrics sched_port < <(free_ports 5)
  node_write_configs "$dir" "$kubelet_port" "$kubelet_healthz" "$proxy_healthz" "$proxy_metrics"
  node_save_sysctls
  node_cgroups_up
  # As under an init system: what containerd and the kubelet create (image roots, volume
  # directories) must be readable by the non-root users of the Pods (cluster.sh runs with 077).
  umask 022

  start kube-scheduler "$bin/kube-scheduler" --kubeconfig="$dir/controller-manager.kubeconfig" \
    --leader-elect=false --bind-address=127.0.0.1 --secure-port="$sched_port"
  wait_for kube-scheduler 60 curl -fsSk "https://127.0.0.1:$sched_port/healthz"

  start containerd containerd --config "$n/containerd/config.toml"
  wait_for containerd 30 ctr --address "$node_run/containerd.sock" version
  node_import "$bin/pause-image.tar" "$@"

  start kubelet "$bin/kubelet" --config="$n/kubelet/config.yaml" --kubeconfig="$n/kubelet.kubeconfig" \
    --root-dir="$n/kubelet/root" --hostname-override="$node_name" --node-ip="$node_ip" --v=1
  start kube-proxy "$bin/kube-proxy" --config="$n/kube-proxy.yaml" --v=1
  wait_for kubelet 90 bash -c "'$bin/kubectl' --kubeconfig '$dir/kubeconfig' get node '$node_name' \
    -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -qx True"
  wait_for kube-proxy 30 curl -fsS "http://127.0.0.1:$proxy_healthz/healthz"
}

node_kill_naming() { # TEXT: KILL every process whose command line contains TEXT
  local p
  for p in /proc/[0-9]*; do
    [[ "${p#/proc/}" != "$$" && "${p#/proc/}" != "$BASHPID" ]] || continue
    tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -qF -- "$1" && kill -KILL "${p#/proc/}" 2>/dev/null
  done
  return 0
}

# Everything the node made, in the order that lets each part clean up after itself. Safe to run on
# a node that never fully started, and more than once: each step is tried whatever the last did.
node_teardown() ( # DIR
  set +e +o pipefail
  shopt -s globstar
  local dir="$1" n="$1/node" crictl pid pids h m
  stop_recorded "$dir" kube-proxy
  stop_recorded "$dir" kubelet
  crictl="$(sed -n 's/^CONTROLPLANE_BIN=//p' "$dir/cluster.env" 2>/dev/null)/crictl"
  if [[ -S "$node_run/containerd.sock" && -x "$crictl" ]] && live_pid "$dir" "$dir/containerd.pid" >/dev/null; then
    # Removing the sandboxes through CRI runs CNI DEL: veths and IP leases go with them.
    timeout 60 "$crictl" --runtime-endpoint "unix://$node_run/containerd.sock" rmp --all --force >/dev/null 2>&1 || true
  fi
  stop_recorded "$dir" containerd
  # A node whose pid files are gone (its directory removed by hand) still has its processes.
  node_kill_naming "$n/"
  # Shims (and what they run) outlive containerd; ours name its socket.
  for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $node_run/containerd.sock" || true); do
    kill -KILL "$pid" 2>/dev/null || true
  done
  for ((h = 0; h < 50; h++)); do pgrep -f "containerd-shim-runc-v2 .*-address $node_run/containerd.sock" >/dev/null || break; sleep 0.1; done
  # Mounts under the cluster's node directory, deepest first.
  for m in $(awk -v p="$n/" 'index($5, p) == 1 {print $5}' /proc/self/mountinfo | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
  # What still runs in the node's cgroups (containers whose shim was killed outlive it) goes first.
  for ((h = 0; h < 50; h++)); do
    pids="$(cat /sys/fs/cgroup/*/"$node_cgroup"/cgroup.procs /sys/fs/cgroup/*/"$node_cgroup"/**/cgroup.procs 2>/dev/null | sort -u)"
    [[ -n "$pids" ]] || break
    kill -KILL $pids 2>/dev/null
    sleep 0.1
  done
  for h in /sys/fs/cgroup/*/"$node_cgroup"; do
    [[ -d "$h" ]] && find "$h" -depth -type d -exec rmdir {} + 2>/dev/null
  done
  local kube_proxy
  kube_proxy="$(sed -n 's/^CONTROLPLANE_BIN=//p' "$dir/cluster.env" 2>/dev/null)/kube-proxy"
  [[ -x "$kube_proxy" ]] && "$kube_proxy" --cleanup >/dev/null 2>&1
  # What the kubelet adds and what kube-proxy --cleanup leaves (its canaries, KUBE-MARK-MASQ; which
  # ones depends on the version): every KUBE- chain, in both families.
  # Emptied and unhooked first, then removed: a chain goes only once nothing jumps to it.
  local ipt t c from chains
  for ipt in iptables ip6tables; do
    for t in filter nat mangle; do
      chains="$("$ipt-save" -t "$t" 2>/dev/null | sed -n 's/^:\(KUBE-[^ ]*\) .*/\1/p')"
      for c in $chains; do
        "$ipt" -t "$t" -F "$c" 2>/dev/null || continue
        for from in PREROUTING INPUT OUTPUT FORWARD POSTROUTING; do
          while "$ipt" -t "$t" -D "$from" -j "$c" 2>/dev/null; do :; done
        done
      done
      for c in $chains; do "$ipt" -t "$t" -X "$c" 2>/dev/null; done
    done
  done
  ip link show "$node_bridge" >/dev/null 2>&1 && ip link del "$node_bridge"
  # The kubelet links every container's log into /var/log/containers, whatever podLogsDir says.
  [[ -d /var/log/containers ]] && find /var/log/containers -maxdepth 1 -lname "$n/*" -delete
  if [[ -e "$node_run/sysctl.saved" ]]; then
    sysctl -q -p "$node_run/sysctl.saved" >/dev/null 2>&1 || true
    rm -f "$node_run/sysctl.saved"
  fi
  rm -f "$node_run/containerd.sock" "$node_run/containerd.sock.ttrpc"
  [[ "$(cat "$node_run/owner" 2>/dev/null)" == "$dir" ]] && rm -f "$node_run/owner"
  return 0
)
