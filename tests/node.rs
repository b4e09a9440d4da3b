//! The operator as users run it: its own image on a real node (containerd, runc, kubelet,
//! kube-proxy), installed, upgraded and uninstalled with the real helm, in a namespace that enforces
//! PodSecurity `restricted`, against the VPC simulator on the node's address. Needs root (the node).
//!
//! The steps share one cluster and one release and run in order; last, the README's quick start runs
//! as written (tests/node/quickstart.rs). The figures (image size, node start, install to Ready,
//! hand-overs, the quick start) are printed at the end.
use eipsegment_test_support as support;

#[path = "node/quickstart.rs"]
mod quickstart;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{ACCESS_KEY_ID, ACCESS_KEY_SECRET, Cluster, Simulator, eventually};

const NS: &str = "eipseg-op";
const RELEASE: &str = "eop";
const FULLNAME: &str = "eop-eipsegment-operator";
const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/eipsegment-operator");
const IMAGE: &str = "docker.io/library/eipsegment-operator";
const SA_USER: &str = "system:serviceaccount:eipseg-op:eop-eipsegment-operator";
/// The chart's lease duration: a new holder before the old one's renewal plus this was handed the
/// Lease, it did not wait for it to expire.
const LEASE_SECONDS: f64 = 15.0;
const GRACE_SECONDS: f64 = 60.0;
const STORM: usize = 16;

fn repo(path: &str) -> String {
    format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))
}

/// Runs a command to its end: (success, stdout, stderr).
fn captured(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{:?}: {e}", cmd.get_program()));
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

fn run(program: &str, args: &[&str]) -> (bool, String, String) {
    captured(Command::new(program).args(args))
}

fn must(program: &str, args: &[&str]) -> String {
    let (ok, out, err) = run(program, args);
    assert!(ok, "{program} {args:?} failed: {err}{out}");
    out
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

#[derive(Default)]
struct Figures {
    rows: Vec<(String, String)>,
}

impl Figures {
    fn add(&mut self, what: &str, value: impl std::fmt::Display) {
        println!("node: {what}: {value}");
        self.rows.push((what.to_string(), value.to_string()));
    }
}

/// One verb on one resource that a Role or ClusterRole grants (namespace "" for a ClusterRole).
#[derive(Debug)]
struct Grant {
    verb: String,
    resource: String,
    namespace: String,
    name: Option<String>,
}

struct Node {
    c: Cluster,
    sim: Simulator,
    helm: String,
    crictl: String,
}

fn main() {
    assert!(
        run("id", &["-u"]).1.trim() == "0",
        "the node suite runs containerd and a kubelet: run it as root (CI does)"
    );
    let mut f = Figures::default();
    let archive = build_image(&mut f);
    let started = Instant::now();
    let dir = std::path::PathBuf::from(repo(&format!("target/node/cluster-{}", std::process::id())));
    let c = Cluster::up(dir, &["--with-node", "--import-image", &archive]);
    f.add("cluster with node up (image imported)", format!("{:.1} s", started.elapsed().as_secs_f64()));
    let node_ip = c.env["NODE_IP"].clone();
    let sim = Simulator::start(&["--listen", &format!("{node_ip}:0"), "--release-seconds", "2"]);
    let helm = must(&repo("tests/tools/build-helm.sh"), &[]).trim().to_string();
    let crictl = format!("{}/crictl", c.env["CONTROLPLANE_BIN"]);
    let n = Node { c, sim, helm, crictl };

    n.install(&mut f);
    n.pods_are_hardened_as_the_chart_says();
    n.identity_is_the_service_account_token_and_rights_match_the_chart();
    n.segment_lifecycle(&mut f);
    n.readiness_follows_the_probe(&mut f);
    n.leader_pod_deleted_during_a_delete_storm(&mut f);
    n.upgrade_during_a_delete_storm(&mut f);
    n.uninstall_keeps_crd_and_objects(&mut f);
    n.quick_start_as_the_readme_says(&mut f);

    println!("\nnode suite figures:");
    for (what, value) in &f.rows {
        println!("  {what:<58} {value}");
    }
    assert!(n.c.down(), "cluster.sh down failed");
    leftovers_are_gone(&n.c.dir);
    a_node_left_by_a_dead_run_is_torn_down_by_the_next(&mut f);
    println!("node suite: all steps passed");
}

/// deploy/build-image.sh with buildah, its storage in the project's cache.
fn build_image(f: &mut Figures) -> String {
    let archive = repo("target/image/eipsegment-operator.tar");
    let storage = format!(
        "{}/.cache/eipsegment-operator/image-storage",
        std::env::var("HOME").unwrap_or_else(|_| "/root".into())
    );
    let started = Instant::now();
    let mut args = vec!["--builder".to_string(), "buildah".into(), "--archive".into(), archive.clone()];
    // The test build's own binary where it is static (`make test` builds it so): one build fewer.
    let operator = env!("CARGO_BIN_EXE_eipsegment-operator");
    let dynamic = must("readelf", &["-d", operator]).contains("(NEEDED)");
    if !dynamic {
        args.extend(["--binary".into(), operator.into()]);
    }
    f.add("image binary", if dynamic { "release build" } else { "the test build's (static)" }.to_string());
    let out = Command::new(repo("deploy/build-image.sh"))
        .args(&args)
        .env("IMAGE_STORAGE_DIR", storage)
        .output()
        .expect("deploy/build-image.sh");
    assert!(out.status.success(), "building the image failed: {}", String::from_utf8_lossy(&out.stderr));
    f.add("image build (binary + image)", format!("{:.1} s", started.elapsed().as_secs_f64()));
    let size = std::fs::metadata(&archive).expect("the archive").len();
    f.add("image archive size", format!("{:.1} MiB", size as f64 / 1048576.0));
    // What the image says of itself: non-root, the operator as entrypoint, one layer.
    let manifest = json(&must("tar", &["-xOf", &archive, "manifest.json"]));
    assert_eq!(manifest[0]["Layers"].as_array().map(Vec::len), Some(1), "layers: {manifest}");
    let config_name = manifest[0]["Config"].as_str().expect("config in manifest");
    let config = json(&must("tar", &["-xOf", &archive, config_name]));
    assert_eq!(config["config"]["User"], "65532:65532", "image user: {config}");
    assert_eq!(config["config"]["Entrypoint"][0], "/eipsegment-operator");
    assert_eq!(manifest[0]["RepoTags"][0], format!("{IMAGE}:{}", env!("CARGO_PKG_VERSION")));
    archive
}

impl Node {
    fn kubectl(&self, args: &[&str]) -> String {
        self.c.kubectl(args)
    }

    fn kubectl_json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        json(&self.kubectl(&a))
    }

    fn helm(&self, args: &[&str]) -> (bool, String, String) {
        captured(Command::new(&self.helm).args(args).env("KUBECONFIG", self.c.admin_kubeconfig()))
    }

    /// `helm install` or `upgrade` of the release (`head`: the verb and what differs), with the
    /// values every step shares; fails the suite when helm does.
    fn helm_release(&self, head: &[&str]) -> String {
        let sim = &self.sim.url;
        // The simulator speaks plain http; the chart's endpoint values take https only.
        let extra_args =
            format!(r#"extraArgs=["--vpc-endpoint={sim}","--sts-endpoint={sim}","--allow-insecure-endpoint"]"#);
        let mut args = head.to_vec();
        args.extend([RELEASE, CHART, "-n", NS]);
        // The image is imported into the node's containerd under the placeholder name.
        args.extend(["--set", "image.pullPolicy=Never", "--set", "image.allowPlaceholder=true"]);
        args.extend(["--set", "credentials.secretName=alibaba-credentials"]);
        args.extend(["--set-json", &extra_args]);
        let (ok, out, err) = self.helm(&args);
        assert!(ok, "helm {head:?} failed: {err}{out}");
        err
    }

    fn crictl(&self, args: &[&str]) -> String {
        let endpoint = format!("unix://{}", self.c.env["CONTAINERD_ADDRESS"]);
        let mut all = vec!["--runtime-endpoint", &endpoint];
        all.extend(args);
        must(&self.crictl, &all)
    }

    /// The operator's Pods (not the ones terminating), as JSON.
    fn pods(&self) -> Vec<Value> {
        let v = self.kubectl_json(&["get", "pods", "-n", NS, "-l", "app.kubernetes.io/name=eipsegment-operator"]);
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .cloned()
            .collect()
    }

    fn ready(p: &Value) -> bool {
        p["status"]["conditions"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
    }

    fn name(p: &Value) -> String {
        p["metadata"]["name"].as_str().unwrap().to_string()
    }

    /// The operator's Pod of that name, unless it is gone or terminating.
    fn pod(&self, name: &str) -> Option<Value> {
        self.pods().into_iter().find(|p| Self::name(p) == name)
    }

    /// That Pod as the apiserver has it, terminating or not; None once it is gone.
    fn pod_as_stored(&self, name: &str) -> Option<Value> {
        let (ok, out, _) =
            self.c.kubectl_as(self.c.admin_kubeconfig(), &["get", "pod", name, "-n", NS, "-o", "json"], None);
        ok.then(|| json(&out))
    }

    fn lease(&self) -> Option<Value> {
        let (ok, out, _) =
            self.c.kubectl_as(self.c.admin_kubeconfig(), &["get", "lease", FULLNAME, "-n", NS, "-o", "json"], None);
        ok.then(|| json(&out))
    }

    fn leader(&self) -> Option<String> {
        self.lease()?["spec"]["holderIdentity"].as_str().filter(|h| !h.is_empty()).map(String::from)
    }

    fn wait_two_ready(&self, what: &str) -> Vec<Value> {
        eventually(what, Duration::from_secs(120), || {
            let pods = self.pods();
            (pods.len() == 2 && pods.iter().all(Self::ready)).then_some(pods)
        })
    }

    /// The release namespace enforces `restricted`; the install must bring two Ready Pods.
    fn install(&self, f: &mut Figures) {
        self.kubectl(&["create", "namespace", NS]);
        for mode in ["enforce", "warn", "audit"] {
            self.kubectl(&["label", "namespace", NS, &format!("pod-security.kubernetes.io/{mode}=restricted")]);
        }
        self.kubectl(&[
            "create",
            "secret",
            "generic",
            "alibaba-credentials",
            "-n",
            NS,
            &format!("--from-literal=ALIBABA_CLOUD_ACCESS_KEY_ID={ACCESS_KEY_ID}"),
            &format!("--from-literal=ALIBABA_CLOUD_ACCESS_KEY_SECRET={ACCESS_KEY_SECRET}"),
        ]);
        let started = Instant::now();
        let err = self.helm_release(&["install", "--wait", "--timeout", "120s"]);
        assert!(!err.contains("PodSecurity") && !err.contains("would violate"), "PodSecurity warnings: {err}");
        let pods = self.wait_two_ready("both operator Pods Ready after helm install");
        f.add("helm install --wait to two Pods Ready", format!("{:.1} s", started.elapsed().as_secs_f64()));
        for p in &pods {
            let image = p["spec"]["containers"][0]["image"].as_str().unwrap();
            assert_eq!(
                image,
                format!("eipsegment-operator:{}", env!("CARGO_PKG_VERSION")),
                "the chart's default image"
            );
        }
        eventually("a leader", Duration::from_secs(30), || self.leader());
    }

    /// The operator's process in a Pod, as the node runs it.
    fn process_of(&self, pod: &str) -> u32 {
        let sandboxes = self.crictl(&["pods", "-q", "--name", pod, "--state", "ready"]);
        let sandbox = sandboxes.lines().next().unwrap_or_else(|| panic!("no sandbox for {pod}"));
        let ids = self.crictl(&["ps", "-q", "--pod", sandbox, "--name", "operator"]);
        let id = ids.lines().next().unwrap_or_else(|| panic!("no running operator container in {pod}"));
        let inspect = json(&self.crictl(&["inspect", id]));
        inspect["info"]["pid"].as_u64().expect("the container's pid") as u32
    }

    /// What the kernel applies to each operator process: non-root, no capabilities, no new
    /// privileges, seccomp, and a read-only root filesystem (the operator writes nothing at all).
    fn pods_are_hardened_as_the_chart_says(&self) {
        for p in self.pods() {
            let pod = Self::name(&p);
            let pid = self.process_of(&pod);
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
            let field = |k: &str| {
                status.lines().find_map(|l| l.strip_prefix(&format!("{k}:"))).map(str::trim).unwrap_or("").to_string()
            };
            assert!(field("Uid").split_whitespace().all(|u| u == "65532"), "{pod}: Uid {}", field("Uid"));
            assert!(field("Gid").split_whitespace().all(|g| g == "65532"), "{pod}: Gid {}", field("Gid"));
            assert_eq!(field("CapEff"), "0000000000000000", "{pod}: effective capabilities");
            assert_eq!(field("CapBnd"), "0000000000000000", "{pod}: bounding capabilities");
            assert_eq!(field("NoNewPrivs"), "1", "{pod}: no_new_privs");
            assert_eq!(field("Seccomp"), "2", "{pod}: seccomp filter mode");
            let mounts = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
            let root = mounts
                .lines()
                .find(|l| l.split_whitespace().nth(4) == Some("/"))
                .unwrap_or_else(|| panic!("{pod}: no root mount in {mounts}"));
            let options = root.split_whitespace().nth(5).unwrap();
            assert!(options.split(',').any(|o| o == "ro"), "{pod}: root filesystem mounted {options}");
            let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
            let environ = String::from_utf8_lossy(&environ);
            assert!(!environ.contains("KUBECONFIG="), "{pod}: a KUBECONFIG in the environment");
        }
    }

    /// The operator talks to the apiserver only as its ServiceAccount, with the token the kubelet
    /// projected into its Pod (the audit log names the Pod each request's token is bound to); and
    /// what that identity may do is exactly what the chart grants.
    fn identity_is_the_service_account_token_and_rights_match_the_chart(&self) {
        self.audit_shows_only_pod_bound_tokens();
        self.rights_match_the_chart();
    }

    fn audit_shows_only_pod_bound_tokens(&self) {
        let pods: Vec<String> = self.pods().iter().map(Self::name).collect();
        let audit = std::fs::read_to_string(&self.c.env["AUDIT_LOG"]).expect("audit log");
        let mut by_operator = 0;
        for line in audit.lines() {
            let e = json(line);
            // The tests and the control plane act as the admin; the apiserver, the kubelet and
            // kube-proxy as themselves.
            let user = e["user"]["username"].as_str().unwrap_or("");
            if user == "eipsegment-admin"
                || (user.starts_with("system:") && !user.starts_with("system:serviceaccount:"))
            {
                continue;
            }
            by_operator += 1;
            assert_eq!(user, SA_USER, "a request not as the operator's ServiceAccount: {line}");
            let extra = &e["user"]["extra"];
            let pod = extra["authentication.kubernetes.io/pod-name"][0].as_str().unwrap_or("");
            assert!(
                pods.iter().any(|p| p == pod) || pod.starts_with(FULLNAME),
                "a request with a token not bound to an operator Pod: {line}"
            );
            let jti = extra["authentication.kubernetes.io/credential-id"][0].as_str();
            assert!(jti.is_some_and(|j| j.starts_with("JTI=")), "a request without a projected token's ID: {line}");
        }
        assert!(by_operator > 0, "no request of the operator in the audit log");
    }

    /// Each rule of the installed chart, one verb on one resource (`name.group/subresource`).
    fn rendered_grants(&self) -> Vec<Grant> {
        let (ok, rendered, err) = self.helm(&["get", "manifest", RELEASE, "-n", NS]);
        assert!(ok, "helm get manifest: {err}");
        let mut granted = Vec::new();
        for doc in rendered.split("\n---") {
            let Ok(v) = serde_yaml::from_str::<Value>(doc) else { continue };
            // The roles for people (aggregated into view, edit and admin) grant the operator nothing.
            let for_people = v["metadata"]["labels"]
                .as_object()
                .is_some_and(|labels| labels.keys().any(|k| k.contains("/aggregate-to-")));
            let namespace = match v["kind"].as_str() {
                Some("Role") => v["metadata"]["namespace"].as_str().unwrap_or(NS).to_string(),
                Some("ClusterRole") if !for_people => String::new(),
                _ => continue,
            };
            let strings = |v: &Value| -> Vec<String> {
                v.as_array()
                    .map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect())
                    .unwrap_or_default()
            };
            for rule in v["rules"].as_array().unwrap() {
                let names: Vec<Option<String>> = match rule["resourceNames"].as_array() {
                    Some(_) => strings(&rule["resourceNames"]).into_iter().map(Some).collect(),
                    None => vec![None],
                };
                for group in strings(&rule["apiGroups"]) {
                    for res in strings(&rule["resources"]) {
                        let (r, sub) = res.split_once('/').map_or((res.as_str(), None), |(r, s)| (r, Some(s)));
                        let base = if group.is_empty() { r.to_string() } else { format!("{r}.{group}") };
                        let resource = sub.map_or(base.clone(), |s| format!("{base}/{s}"));
                        for verb in strings(&rule["verbs"]) {
                            for name in &names {
                                granted.push(Grant {
                                    verb: verb.clone(),
                                    resource: resource.clone(),
                                    namespace: namespace.clone(),
                                    name: name.clone(),
                                });
                            }
                        }
                    }
                }
            }
        }
        assert!(!granted.is_empty(), "no rules in the rendered chart");
        granted
    }

    /// `kubectl auth can-i` for the operator's identity; an empty namespace means every namespace.
    fn can_i(&self, verb: &str, resource: &str, namespace: &str, name: Option<&str>) -> bool {
        let (base, sub) = resource.split_once('/').map_or((resource, None), |(r, s)| (r, Some(s)));
        let target = name.map_or(base.to_string(), |n| format!("{base}/{n}"));
        let mut args = vec!["auth".to_string(), "can-i".into(), verb.into(), target, "--as".into(), SA_USER.into()];
        args.extend(sub.map(|s| format!("--subresource={s}")));
        match (namespace, name) {
            ("", None) => args.push("--all-namespaces".into()),
            ("", Some(_)) => args.extend(["-n".into(), "default".into()]),
            (ns, _) => args.extend(["-n".into(), ns.into()]),
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (_, out, _) = self.c.kubectl_as(self.c.admin_kubeconfig(), &args, None);
        out.trim() == "yes"
    }

    fn rights_match_the_chart(&self) {
        let granted = self.rendered_grants();
        for g in &granted {
            assert!(
                self.can_i(&g.verb, &g.resource, &g.namespace, g.name.as_deref()),
                "the chart grants {g:?}, can-i says no"
            );
        }
        // Nothing beyond: every verb the chart does not grant on its own resources, and the usual
        // escalations, are refused.
        let all_verbs = ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"];
        let unnamed: std::collections::BTreeSet<(&str, &str)> =
            granted.iter().filter(|g| g.name.is_none()).map(|g| (g.resource.as_str(), g.namespace.as_str())).collect();
        for (resource, ns) in unnamed {
            for verb in all_verbs {
                let in_chart = granted
                    .iter()
                    .any(|g| g.verb == verb && g.resource == resource && g.namespace == ns && g.name.is_none());
                assert!(
                    in_chart || !self.can_i(verb, resource, ns, None),
                    "{verb} {resource} (namespace {ns:?}) allowed beyond the chart"
                );
            }
        }
        for (verb, resource) in [
            ("get", "secrets"),
            ("list", "pods"),
            ("create", "pods"),
            ("create", "pods/exec"),
            ("escalate", "clusterroles.rbac.authorization.k8s.io"),
            ("bind", "clusterroles.rbac.authorization.k8s.io"),
            ("impersonate", "users"),
            ("create", "serviceaccounts/token"),
        ] {
            assert!(!self.can_i(verb, resource, "", None), "the operator may {verb} {resource}, beyond the chart");
        }
        assert!(
            !self.can_i("get", "leases.coordination.k8s.io", "default", None),
            "Lease rights outside its namespace"
        );
    }

    fn apply_segments(&self, ns: &str, names: &[String]) {
        let docs: Vec<String> =
            names.iter().map(|n| support::segment_yaml(ns, n, "  regionId: cn-hangzhou\n  eipMask: 28")).collect();
        self.c.apply(&docs.join("\n---\n")).expect("apply EipSegments");
    }

    fn all_ready(&self, ns: &str, count: usize) {
        eventually(&format!("{count} EipSegments Ready in {ns}"), Duration::from_secs(120), || {
            let v = self.kubectl_json(&["get", "eipsegments", "-n", ns]);
            let items = v["items"].as_array().unwrap();
            (items.len() == count && items.iter().all(support::is_ready)).then_some(())
        });
    }

    /// A segment Ready, then `kubectl delete` returns once the cloud has confirmed the release.
    fn segment_lifecycle(&self, f: &mut Figures) {
        let ns = self.c.namespace("lifecycle");
        self.apply_segments(&ns, &["web".to_string()]);
        let started = Instant::now();
        self.all_ready(&ns, 1);
        f.add("EipSegment Ready after apply", format!("{:.1} s", started.elapsed().as_secs_f64()));
        let id = support::segment_id(&self.c.get(&ns, "web").unwrap());
        let started = Instant::now();
        self.kubectl(&["delete", "eipsegment", "web", "-n", &ns, "--timeout=60s"]);
        let took = started.elapsed().as_secs_f64();
        let seg = self.history(&id);
        assert!(seg["goneAtMs"].is_u64(), "kubectl delete returned while the segment exists: {seg}");
        f.add("kubectl delete until the release is confirmed", format!("{took:.1} s"));
    }

    fn history(&self, id: &str) -> Value {
        let h = self.sim.admin("GET", "history", Value::Null);
        h["segments"].as_array().unwrap().iter().find(|s| s["instanceId"] == id).cloned().unwrap_or(Value::Null)
    }

    /// The kubelet's readiness probe reports what /readyz means: a standby is Ready (it can take
    /// over), a leader is Ready once its watch has synced. A leader that cannot list EipSegments
    /// goes NotReady through the probe, without a restart, and Ready again once it can.
    fn readiness_follows_the_probe(&self, f: &mut Figures) {
        let binding = self.kubectl_json(&["get", "clusterrolebinding", FULLNAME]);
        self.kubectl(&["delete", "clusterrolebinding", FULLNAME]);
        let leader = self.leader().expect("a leader");
        self.kubectl(&["delete", "pod", &leader, "-n", NS, "--wait=false"]);
        let started = Instant::now();
        // The standby, or the Pod that replaces the deleted one: whichever asks first after the release.
        let heir = eventually("a new leader", Duration::from_secs(60), || self.leader().filter(|l| *l != leader));
        eventually("the new leader NotReady through its probe", Duration::from_secs(60), || {
            self.pod(&heir).filter(|p| !Self::ready(p))
        });
        f.add("leader without list rights: NotReady after", format!("{:.1} s", started.elapsed().as_secs_f64()));
        let mut restored = binding.clone();
        for k in ["resourceVersion", "uid", "creationTimestamp", "managedFields"] {
            restored["metadata"].as_object_mut().unwrap().remove(k);
        }
        self.c.apply(&restored.to_string()).expect("restore the ClusterRoleBinding");
        let started = Instant::now();
        eventually("the leader Ready again", Duration::from_secs(90), || self.pod(&heir).filter(Self::ready));
        f.add("rights back: leader Ready again after", format!("{:.1} s", started.elapsed().as_secs_f64()));
        let p = self.pod(&heir).expect("the leader");
        assert_eq!(p["status"]["containerStatuses"][0]["restartCount"], 0, "the probe cycle restarted the leader");
        self.wait_two_ready("two Pods Ready after the readiness check");
    }

    /// Objects ready in a namespace of their own; then all deleted at once.
    fn storm(&self, name: &str) -> (String, Vec<String>) {
        let ns = self.c.namespace(name);
        let names: Vec<String> = (0..STORM).map(|i| format!("s{i:02}")).collect();
        self.apply_segments(&ns, &names);
        self.all_ready(&ns, STORM);
        let ids = self.kubectl_json(&["get", "eipsegments", "-n", &ns])["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(support::segment_id)
            .collect();
        self.kubectl(&["delete", "eipsegments", "--all", "-n", &ns, "--wait=false"]);
        (ns, ids)
    }

    /// Every object gone, every segment released exactly once (one accepted release each).
    fn storm_done(&self, ns: &str, ids: &[String], what: &str) -> f64 {
        let started = Instant::now();
        eventually(&format!("every EipSegment of {what} gone"), Duration::from_secs(180), || {
            let v = self.kubectl_json(&["get", "eipsegments", "-n", ns]);
            v["items"].as_array().unwrap().is_empty().then_some(())
        });
        for id in ids {
            let seg = self.history(id);
            let releases = seg["releaseAcceptedAtMs"].as_array().map_or(0, Vec::len);
            assert_eq!(releases, 1, "{what}: segment {id} had {releases} accepted releases: {seg}");
            assert!(seg["goneAtMs"].is_u64(), "{what}: segment {id} still exists: {seg}");
        }
        started.elapsed().as_secs_f64()
    }

    /// Watches the Lease from the old leader's termination until it has a new holder. Returns the
    /// seconds that took, and asserts that the old leader gave the Lease up: it was seen free, or the
    /// new holder was seen before the old holder's last renewal plus the lease duration, when an
    /// expiry could first have let anyone take it.
    fn hand_over(&self, old: &str, before: &Value) -> f64 {
        // The old leader's log to its end, kept beside the test for when the hand-over fails.
        let log_path = repo(&format!("target/node/{old}.log"));
        let mut follow = Command::new(&self.c.env["KUBECTL"])
            .args(["logs", "-f", old, "-n", NS, "--kubeconfig", self.c.admin_kubeconfig()])
            .stdout(std::fs::File::create(&log_path).expect("log file"))
            .spawn()
            .expect("kubectl logs -f");
        let took = self.await_new_holder(old, before, &log_path);
        let _ = follow.kill();
        let _ = follow.wait();
        took
    }

    fn await_new_holder(&self, old: &str, before: &Value, log_path: &str) -> f64 {
        let mut last_renew: Option<chrono::DateTime<chrono::Utc>> =
            before["spec"]["renewTime"].as_str().and_then(|t| t.parse().ok());
        let mut asked: Option<Instant> = None;
        let mut given_up = false;
        let deadline = Instant::now() + Duration::from_secs(GRACE_SECONDS as u64 + 30);
        loop {
            assert!(Instant::now() < deadline, "no new Lease holder after the old leader {old} was asked to stop");
            let terminating = || self.pod_as_stored(old).is_none_or(|p| p["metadata"]["deletionTimestamp"].is_string());
            if asked.is_none() && terminating() {
                asked = Some(Instant::now());
            }
            let lease = self.lease().expect("the Lease");
            let holder = lease["spec"]["holderIdentity"].as_str().unwrap_or("");
            if holder == old {
                last_renew = lease["spec"]["renewTime"].as_str().and_then(|t| t.parse().ok()).or(last_renew);
            } else if holder.is_empty() {
                given_up = true;
            } else {
                let seen = chrono::Utc::now();
                let renew = last_renew.expect("the old leader's renewal was seen");
                let expiry = renew + chrono::Duration::milliseconds((LEASE_SECONDS * 1000.0) as i64);
                assert!(
                    given_up || seen < expiry,
                    "{holder} took the Lease at {seen}, after it expired ({expiry}), and it was never seen free: \
                     not handed over (the old leader's log: {log_path})"
                );
                // Handed over between the two looks of this round: within one round.
                if asked.is_none() {
                    assert!(terminating(), "{holder} holds the Lease while the old leader {old} is not terminating");
                    return 0.0;
                }
                return asked.unwrap().elapsed().as_secs_f64();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn leader_pod_deleted_during_a_delete_storm(&self, f: &mut Figures) {
        let (ns, ids) = self.storm("leader-kill");
        let leader = self.leader().expect("a leader");
        std::thread::sleep(Duration::from_secs(2));
        let before = self.lease().expect("the Lease");
        self.kubectl(&["delete", "pod", &leader, "-n", NS, "--wait=false"]);
        let took = self.hand_over(&leader, &before);
        // The standby watches the Lease: it asks as soon as the holder gives it up.
        assert!(took < LEASE_SECONDS / 2.0, "hand-over took {took:.1} s");
        f.add("leader Pod deleted: new Lease holder after", format!("{took:.1} s"));
        let done = self.storm_done(&ns, &ids, "the storm with a leader deleted");
        f.add(&format!("storm of {STORM} with the leader deleted: all gone after"), format!("{done:.1} s"));
        self.wait_two_ready("two Pods Ready after the leader was replaced");
    }

    /// `helm upgrade` with a changed flag and a new image tag while objects are being deleted: a
    /// rolling update, the Lease handed over on SIGTERM, no release twice, nothing stuck.
    fn upgrade_during_a_delete_storm(&self, f: &mut Figures) {
        let version = env!("CARGO_PKG_VERSION");
        let next = format!("{version}-next");
        must(
            "ctr",
            &[
                "--address",
                &self.c.env["CONTAINERD_ADDRESS"],
                "-n",
                "k8s.io",
                "images",
                "tag",
                "--force",
                &format!("{IMAGE}:{version}"),
                &format!("{IMAGE}:{next}"),
            ],
        );
        let (ns, ids) = self.storm("upgrade");
        let leader = self.leader().expect("a leader");
        std::thread::sleep(Duration::from_secs(2));
        let started = Instant::now();
        let before = self.lease().expect("the Lease");
        self.helm_release(&["upgrade", "--set", &format!("image.tag={next}"), "--set", "logLevel=debug"]);
        let took = self.hand_over(&leader, &before);
        assert!(took < LEASE_SECONDS / 2.0, "upgrade hand-over took {took:.1} s");
        f.add("helm upgrade: new Lease holder after the leader's SIGTERM", format!("{took:.1} s"));
        let gone = eventually("the old leader Pod gone", Duration::from_secs(GRACE_SECONDS as u64 + 30), || {
            self.pod_as_stored(&leader).is_none().then(|| started.elapsed().as_secs_f64())
        });
        assert!(gone < GRACE_SECONDS + 10.0, "the old leader took {gone:.1} s to stop");
        let done = self.storm_done(&ns, &ids, "the storm during helm upgrade");
        f.add(&format!("storm of {STORM} during helm upgrade: all gone after"), format!("{done:.1} s"));
        let pods = self.wait_two_ready("two upgraded Pods Ready");
        for p in &pods {
            assert_eq!(p["spec"]["containers"][0]["image"], format!("eipsegment-operator:{next}"));
            let args = p["spec"]["containers"][0]["args"].as_array().unwrap();
            assert!(args.iter().any(|a| a == "--log-level=debug"), "the changed flag: {args:?}");
        }
        f.add("helm upgrade to two new Pods Ready", format!("{:.1} s", started.elapsed().as_secs_f64()));
    }

    /// `helm uninstall` leaves the CRD (Helm never deletes crds/) and the EipSegments; a deletion
    /// then waits with its finalizer, segment kept, until the operator is installed again.
    fn uninstall_keeps_crd_and_objects(&self, f: &mut Figures) {
        let ns = self.c.namespace("uninstall");
        self.apply_segments(&ns, &["kept".to_string()]);
        self.all_ready(&ns, 1);
        let id = support::segment_id(&self.c.get(&ns, "kept").unwrap());
        let (ok, out, err) = self.helm(&["uninstall", RELEASE, "-n", NS, "--wait", "--timeout", "120s"]);
        assert!(ok, "helm uninstall: {err}{out}");
        eventually("the operator Pods gone", Duration::from_secs(120), || self.pods().is_empty().then_some(()));
        self.kubectl(&["get", "crd", "eipsegments.eipsegment.io"]);
        self.kubectl(&["delete", "eipsegment", "kept", "-n", &ns, "--wait=false"]);
        std::thread::sleep(Duration::from_secs(10));
        let obj = self.c.get(&ns, "kept").expect("the object waits with its finalizer");
        assert!(obj["metadata"]["deletionTimestamp"].is_string());
        assert!(
            self.history(&id)["releaseAcceptedAtMs"].as_array().is_none_or(Vec::is_empty),
            "released with no operator"
        );
        let started = Instant::now();
        self.helm_release(&["install", "--wait", "--timeout", "120s"]);
        eventually("the waiting deletion done", Duration::from_secs(90), || {
            self.c.get(&ns, "kept").is_none().then_some(())
        });
        assert!(self.history(&id)["goneAtMs"].is_u64(), "the segment of the waiting deletion was not released");
        f.add("installed again: the waiting deletion done after", format!("{:.1} s", started.elapsed().as_secs_f64()));
    }
}

/// A run that died with its node up (every process SIGKILLed, a Pod's shim and sandbox included)
/// does not break the next: its `up` tears the dead node down, and the next `down` leaves nothing.
fn a_node_left_by_a_dead_run_is_torn_down_by_the_next(f: &mut Figures) {
    let dead = Cluster::up(std::path::PathBuf::from(repo("target/node/dead-run")), &["--with-node"]);
    let pod = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"sleeper","namespace":"default"},
        "spec":{"containers":[{"name":"c","image":"localhost/eipsegment-pause:1","imagePullPolicy":"Never"}]}}"#;
    dead.apply(pod).expect("a Pod on the node");
    eventually("the Pod running", Duration::from_secs(60), || {
        let phase = dead.kubectl(&["get", "pod", "sleeper", "-o", "jsonpath={.status.phase}"]);
        (phase == "Running").then_some(())
    });
    for entry in std::fs::read_dir(&dead.dir).unwrap().flatten() {
        if entry.path().extension().is_some_and(|e| e == "pid") {
            let pid = std::fs::read_to_string(entry.path()).unwrap();
            let _ = run("kill", &["-KILL", pid.trim()]);
        }
    }
    let started = Instant::now();
    let next = Cluster::up(std::path::PathBuf::from(repo("target/node/next-run")), &["--with-node"]);
    f.add("up after a dead run (its node torn down first)", format!("{:.1} s", started.elapsed().as_secs_f64()));
    assert!(!dead.dir.exists(), "the dead run's directory is still there");
    assert!(next.down(), "cluster.sh down failed");
    leftovers_are_gone(&dead.dir);
    leftovers_are_gone(&next.dir);
}

/// What teardown must leave: no process, mount, cgroup, rule or bridge of the node.
fn leftovers_are_gone(dir: &std::path::Path) {
    let root = dir;
    let dir = dir.display().to_string();
    let (_, ps, _) = run("pgrep", &["-af", "containerd|kubelet|kube-proxy|kube-scheduler"]);
    let ours: Vec<&str> = ps.lines().filter(|l| l.contains(&dir) || l.contains("/run/eipsegment-node")).collect();
    assert!(ours.is_empty(), "node processes left: {ours:?}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&dir), "mounts left under {dir}");
    assert!(
        std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten().all(|h| !h.path().join("eipsegment-node").exists()),
        "cgroups left"
    );
    for ipt in ["iptables-save", "ip6tables-save"] {
        let (_, rules, _) = run(ipt, &[]);
        assert!(!rules.contains("KUBE-"), "{ipt}: rules left: {rules}");
    }
    let logs = std::fs::read_dir("/var/log/containers").into_iter().flatten().flatten();
    let ours: Vec<_> =
        logs.filter(|l| std::fs::read_link(l.path()).is_ok_and(|t| t.starts_with(root))).map(|l| l.path()).collect();
    assert!(ours.is_empty(), "container log links left: {ours:?}");
    let (_, links, _) = run("ip", &["link", "show"]);
    assert!(!links.contains("eipseg0"), "the node's bridge is left");
}
