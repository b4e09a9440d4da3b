//! The real stack for end-to-end tests: a control plane from `tests/controlplane/cluster.sh`, the
//! `vpc-simulator` and `eipsegment-operator` binaries, and the real kubectl.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use eipsegment_operator::cloud::credentials::{Credentials, Secret, StaticCredentials};
use eipsegment_operator::cloud::{ClientConfig, VpcClient};
use eipsegment_operator::crd::EipSegment;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::{Value, json};

pub const REGION: &str = "cn-hangzhou";
pub const ACCESS_KEY_ID: &str = "LTAI5tSimulatorDefaultKey";
pub const ACCESS_KEY_SECRET: &str = "SimulatorDefaultSecretNotForProduction";

pub mod argocd;
pub mod in_process;
pub mod proxy;

/// The repository's root (this crate is `tests/support`).
pub fn repo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// A tool of the test beds, built once and cached by its `tests/tools/` script (which waits for a
/// build another test started); the path the script prints.
pub fn tool(script: &str) -> String {
    let out =
        Command::new(repo().join("tests/tools").join(script)).output().unwrap_or_else(|e| panic!("{script}: {e}"));
    assert!(out.status.success(), "{script} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// The chart rendered by `helm template RELEASE` into `namespace`, with `args` (`--set`, `--values`,
/// `--show-only`…).
pub fn helm_template(release: &str, namespace: &str, args: &[&str]) -> String {
    let chart = repo().join("charts/eipsegment-operator");
    let out = Command::new(tool("build-helm.sh"))
        .args(["template", release, chart.to_str().unwrap(), "--namespace", namespace])
        .args(args)
        .output()
        .expect("helm template");
    assert!(out.status.success(), "helm template: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// A binary of the workspace, built beside the running test (`target/<profile>/`); the test
/// command builds every member's binaries first (`cargo build --workspace --all-targets`).
pub fn workspace_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    // A test runs from target/<profile>/deps/.
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>/deps");
    let binary = profile_dir.join(name);
    assert!(binary.exists(), "{} is not built: run `cargo build --workspace --bins` first", binary.display());
    binary
}

/// The operator's cloud client with these static keys, against `url` (a simulator, or a test's own
/// endpoint) for both the VPC API and STS.
pub fn vpc_client(url: &str, access_key_id: &str, access_key_secret: &str, timeout: Duration) -> VpcClient {
    let credentials = Credentials {
        access_key_id: access_key_id.into(),
        access_key_secret: Secret::new(access_key_secret),
        security_token: None,
    };
    let config = ClientConfig {
        endpoint_override: Some(url.to_string()),
        sts_endpoint: Some(url.to_string()),
        allow_insecure_endpoint: true,
        timeout,
    };
    VpcClient::new(config, std::sync::Arc::new(StaticCredentials(credentials))).expect("a client")
}

/// The VPC simulator's binary (`tests/simulator`).
pub fn simulator_binary() -> PathBuf {
    workspace_binary("vpc-simulator")
}

pub struct Cluster {
    pub dir: PathBuf,
    pub env: HashMap<String, String>,
}

impl Cluster {
    /// One control plane (etcd, kube-apiserver, kube-controller-manager) per test binary, shared by
    /// its tests (each uses its own namespace). It goes down when the test process exits.
    pub fn shared() -> &'static Cluster {
        static CLUSTER: OnceLock<Cluster> = OnceLock::new();
        CLUSTER.get_or_init(|| {
            let dir = repo().join("target").join("e2e").join(format!("cluster-{}", std::process::id()));
            // The garbage collector and namespace controller, so foreground and namespace
            // deletions complete as on a real cluster.
            Cluster::up(dir, &["--with-controller-manager"])
        })
    }

    /// A cluster in `dir` with `cluster.sh up` flags; it goes down when the test process exits.
    pub fn up(dir: PathBuf, flags: &[&str]) -> Cluster {
        let _ = std::fs::remove_dir_all(&dir);
        let out = Command::new(repo().join("tests/controlplane/cluster.sh"))
            .arg("up")
            .arg(&dir)
            .args(flags)
            .env("CLUSTER_OWNER_PID", std::process::id().to_string())
            .stderr(Stdio::inherit())
            .output()
            .expect("run cluster.sh");
        assert!(out.status.success(), "cluster.sh up failed (see its output above)");
        let env = std::fs::read_to_string(dir.join("cluster.env"))
            .expect("cluster.env")
            .lines()
            .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
            .collect();
        Cluster { dir, env }
    }

    /// Stops the cluster and removes its directory (a node's too).
    pub fn down(&self) -> bool {
        Command::new(repo().join("tests/controlplane/cluster.sh"))
            .arg("down")
            .arg(&self.dir)
            .stderr(Stdio::inherit())
            .status()
            .is_ok_and(|s| s.success())
    }

    pub fn admin_kubeconfig(&self) -> &str {
        &self.env["KUBECONFIG"]
    }

    pub fn operator_kubeconfig(&self) -> &str {
        &self.env["OPERATOR_KUBECONFIG"]
    }

    /// The second operator identity, with no rights until a test grants them (per-namespace mode).
    pub fn scoped_operator_kubeconfig(&self) -> &str {
        &self.env["SCOPED_OPERATOR_KUBECONFIG"]
    }

    /// A kubeconfig (written beside the cluster's) that authenticates with a fresh token of the
    /// ServiceAccount `namespace/sa`, with `default_namespace` as its namespace.
    pub fn service_account_kubeconfig(&self, namespace: &str, sa: &str, default_namespace: &str) -> String {
        let token = self.kubectl(&["create", "token", sa, "-n", namespace, "--duration=2h"]);
        let kubeconfig = self.dir.join(format!("{sa}.kubeconfig"));
        let yaml = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: '{}', certificate-authority: '{}'}}\n\
             users:\n- name: u\n  user: {{token: '{}'}}\ncontexts:\n- name: x\n  context: {{cluster: c, user: u, namespace: {default_namespace}}}\n\
             current-context: x\n",
            self.env["APISERVER_URL"],
            self.env["CA_CERT"],
            token.trim()
        );
        std::fs::write(&kubeconfig, yaml).expect("write the kubeconfig");
        kubeconfig.to_str().unwrap().to_string()
    }

    /// Runs kubectl as the admin; returns (success, stdout, stderr).
    pub fn kubectl_as(&self, kubeconfig: &str, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
        let mut cmd = Command::new(&self.env["KUBECTL"]);
        cmd.args(args).env("KUBECONFIG", kubeconfig).stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        let mut child = cmd.spawn().expect("spawn kubectl");
        if let Some(input) = stdin {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        }
        let out = child.wait_with_output().expect("kubectl");
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
    }

    pub fn kubectl(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.kubectl_as(self.admin_kubeconfig(), args, None);
        assert!(ok, "kubectl {args:?} failed: {err}");
        out
    }

    /// Merge-patches the EipSegment as the admin.
    pub fn patch(&self, ns: &str, name: &str, patch: &str) -> String {
        self.kubectl(&["patch", "eipsegment", name, "-n", ns, "--type=merge", "-p", patch])
    }

    /// Merge-patches the EipSegment's status as the admin (a test standing in for the operator).
    pub fn patch_status(&self, ns: &str, name: &str, patch: &str) -> String {
        self.kubectl(&["patch", "eipsegment", name, "-n", ns, "--subresource=status", "--type=merge", "-p", patch])
    }

    /// Strips the EipSegment's finalizers, as a person does by hand: it goes without the operator.
    pub fn strip_finalizers(&self, ns: &str, name: &str) -> String {
        self.patch(ns, name, r#"{"metadata":{"finalizers":null}}"#)
    }

    pub fn apply(&self, yaml: &str) -> Result<String, String> {
        let (ok, out, err) = self.kubectl_as(self.admin_kubeconfig(), &["apply", "-f", "-"], Some(yaml));
        if ok { Ok(out) } else { Err(err) }
    }

    pub fn namespace(&self, name: &str) -> String {
        let ns = format!("{name}-{}", std::process::id());
        self.kubectl(&["create", "namespace", &ns]);
        ns
    }

    /// The object as JSON, or None when it does not exist.
    pub fn get(&self, ns: &str, name: &str) -> Option<Value> {
        let (ok, out, err) =
            self.kubectl_as(self.admin_kubeconfig(), &["get", "eipsegment", name, "-n", ns, "-o", "json"], None);
        if ok {
            Some(serde_json::from_str(&out).unwrap())
        } else {
            assert!(err.contains("NotFound"), "kubectl get failed: {err}");
            None
        }
    }

    pub fn events(&self, ns: &str, name: &str) -> Vec<(String, String, String)> {
        let out = self.kubectl(&["get", "events.events.k8s.io", "-n", ns, "-o", "json"]);
        let v: Value = serde_json::from_str(&out).unwrap();
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["regarding"]["name"] == name)
            .map(|e| {
                (
                    e["type"].as_str().unwrap_or("").into(),
                    e["reason"].as_str().unwrap_or("").into(),
                    e["note"].as_str().unwrap_or("").into(),
                )
            })
            .collect()
    }

    pub fn has_event(&self, ns: &str, name: &str, reason: &str) -> bool {
        self.events(ns, name).iter().any(|(_, r, _)| r == reason)
    }

    /// Stops kube-apiserver, keeps it down for `down`, starts it again (etcd keeps the data).
    pub fn restart_apiserver(&self, down: Duration) {
        let status = Command::new(repo().join("tests/controlplane/cluster.sh"))
            .arg("restart-apiserver")
            .arg(&self.dir)
            .args(["--down-seconds".to_string(), down.as_secs_f64().to_string()])
            .stderr(Stdio::inherit())
            .status()
            .expect("run cluster.sh");
        assert!(status.success(), "cluster.sh restart-apiserver failed (see its output above)");
    }
}

/// Polls until `f` gives Some, or panics with `what` after the timeout.
pub fn eventually<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The test defaults for the simulator, each overridable by `extra`.
fn with_defaults(extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    for (flag, value) in [
        ("--listen", "127.0.0.1:0"),
        ("--allocate-seconds", "1"),
        ("--release-seconds", "2"),
        ("--release-cooldown-seconds", "0.5"),
    ] {
        if !extra.contains(&flag) {
            args.extend([flag.to_string(), value.to_string()]);
        }
    }
    args
}

pub struct Simulator {
    child: Child,
    pub url: String,
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
}

impl Simulator {
    pub fn start(extra: &[&str]) -> Simulator {
        eipsegment_operator::cloud::client::install_crypto_provider();
        let http = reqwest::Client::new();
        let mut child = Command::new(simulator_binary())
            .args(with_defaults(extra))
            .env_remove("ALIBABA_CLOUD_ACCESS_KEY_ID")
            .env_remove("ALIBABA_CLOUD_ACCESS_KEY_SECRET")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn vpc-simulator");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line.trim().rsplit(' ').next().unwrap().to_string();
        assert!(url.starts_with("http://"), "unexpected simulator banner {line:?}");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        Simulator { child, url, rt, http }
    }

    pub fn admin(&self, method: &str, path: &str, body: Value) -> Value {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        self.rt.block_on(async {
            let resp =
                self.http.request(method, format!("{}/__admin/{path}", self.url)).json(&body).send().await.unwrap();
            assert!(resp.status().is_success(), "simulator admin {path}: {}", resp.status());
            resp.json().await.unwrap()
        })
    }

    pub fn segments(&self) -> Vec<Value> {
        self.admin("GET", "state", Value::Null)["segments"].as_array().unwrap().clone()
    }

    pub fn segment(&self, id: &str) -> Option<Value> {
        self.segments().into_iter().find(|s| s["instanceId"] == id)
    }

    pub fn count(&self, action: &str, outcome: &str) -> u64 {
        self.admin("GET", "counters", Value::Null)[action][outcome].as_u64().unwrap_or(0)
    }

    pub fn seed(&self, body: Value) -> String {
        self.admin("POST", "segments", body)["instanceId"].as_str().unwrap().to_string()
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The operator binary under test: this tree's, or another build named by EIPSEG_OPERATOR_BIN (to
/// show that a test fails on an older operator).
pub fn operator_binary() -> String {
    std::env::var("EIPSEG_OPERATOR_BIN")
        .unwrap_or_else(|_| workspace_binary("eipsegment-operator").to_string_lossy().into_owned())
}

/// STS (GetCallerIdentity, AssumeRoleWithOIDC) at the simulator, unless `extra` names another.
fn sts_at(sim: &Simulator, extra: &[&str]) -> Vec<String> {
    if extra.contains(&"--sts-endpoint") { Vec::new() } else { vec!["--sts-endpoint".into(), sim.url.clone()] }
}

pub struct Operator {
    child: Option<Child>,
    /// Where its /metrics, /healthz and /readyz are served.
    pub metrics_url: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    kubeconfig: String,
    pub log: PathBuf,
}

impl Operator {
    /// The real operator binary under the operator's own identity, scoped to one namespace.
    pub fn start(cluster: &Cluster, sim: &Simulator, namespace: &str, extra: &[&str]) -> Operator {
        Operator::start_with_env(cluster, sim, namespace, extra, &[])
    }

    pub fn start_with_env(
        cluster: &Cluster,
        sim: &Simulator,
        namespace: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Operator {
        Operator::start_as(cluster, cluster.operator_kubeconfig(), sim, namespace, extra, env)
    }

    /// As [`Operator::start_with_env`], authenticated by `kubeconfig` instead of the operator's own.
    pub fn start_as(
        cluster: &Cluster,
        kubeconfig: &str,
        sim: &Simulator,
        namespace: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Operator {
        let mut args: Vec<String> = [
            "run",
            "--vpc-endpoint",
            &sim.url,
            "--allow-insecure-endpoint",
            "--namespace",
            namespace,
            "--poll-seconds",
            "0.5",
            "--blocked-retry-seconds",
            "2",
            "--terminal-retry-seconds",
            "3",
            "--call-timeout-seconds",
            "3",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        args.extend(["--metrics-addr".to_string(), format!("127.0.0.1:{port}")]);
        args.extend(sts_at(sim, extra));
        args.extend(extra.iter().map(|s| s.to_string()));
        let suffix = env.iter().find(|(k, _)| *k == "POD_NAME").map(|(_, v)| format!("-{v}")).unwrap_or_default();
        let log = cluster.dir.join(format!("operator-{namespace}{suffix}.log"));
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let metrics_url = format!("http://127.0.0.1:{port}");
        let mut op = Operator { child: None, metrics_url, args, env, kubeconfig: kubeconfig.to_string(), log };
        op.spawn();
        op
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let child = Command::new(operator_binary())
            .args(&self.args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("ALIBABA_CLOUD_ACCESS_KEY_ID", ACCESS_KEY_ID)
            .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", ACCESS_KEY_SECRET)
            .env("RUST_LOG", "info,eipsegment_operator=debug")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn eipsegment-operator");
        self.child = Some(child);
    }

    /// Fails at once, with the log's last lines, when the operator did not start (an unknown flag, a
    /// policy it cannot read).
    pub fn assert_running(&mut self) {
        std::thread::sleep(Duration::from_secs(1));
        if let Some(status) = self.exited() {
            let log = self.log_text();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            panic!("the operator exited ({status}): {}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
        }
    }

    /// SIGKILL: no chance to clean up, as when a node dies.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The operator binary on its own defaults: only the simulator endpoint, the namespace and a
    /// free metrics port are given, then `extra` (for benchmarks, which measure the defaults).
    pub fn start_with_defaults(
        cluster: &Cluster,
        sim: &Simulator,
        namespace: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Operator {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut args: Vec<String> =
            ["run", "--vpc-endpoint", &sim.url, "--allow-insecure-endpoint", "--namespace", namespace]
                .map(String::from)
                .to_vec();
        args.extend(["--metrics-addr".to_string(), format!("127.0.0.1:{port}")]);
        args.extend(sts_at(sim, extra));
        args.extend(extra.iter().map(|s| s.to_string()));
        let log = cluster.dir.join(format!("operator-{namespace}.log"));
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let metrics_url = format!("http://127.0.0.1:{port}");
        let mut op = Operator {
            child: None,
            metrics_url,
            args,
            env,
            kubeconfig: cluster.operator_kubeconfig().to_string(),
            log,
        };
        op.spawn();
        op
    }

    /// SIGTERM, as when the kubelet stops the pod; waits up to `timeout` for the exit (true if it exited).
    pub fn terminate(&mut self, timeout: Duration) -> bool {
        let Some(mut c) = self.child.take() else { return true };
        let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(Some(_)) = c.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
        false
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// How it ended, if it ended on its own (not by `kill`); `kill` then `start_again` restart it.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// Starts it again after `kill`.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "already running");
        self.spawn();
    }

    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// (HTTP status, body) of one of its telemetry paths.
    pub fn scrape(&self, path: &str) -> (u16, String) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            match reqwest::get(format!("{}{path}", self.metrics_url)).await {
                Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
                Err(_) => (0, String::new()),
            }
        })
    }

    /// The value of a series, named as served (with its labels, if any), when present.
    pub fn metric(&self, name: &str) -> Option<f64> {
        let (_, text) = self.scrape("/metrics");
        text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
        // EIPSEG_TEST_LOGS=<dir> keeps every operator log, which go with the cluster directory.
        if let Some(dir) = std::env::var_os("EIPSEG_TEST_LOGS") {
            let _ = std::fs::create_dir_all(&dir);
            let _ = std::fs::copy(&self.log, std::path::Path::new(&dir).join(self.log.file_name().unwrap_or_default()));
        }
        // The cluster directory goes with the test process: show a failing test's operator log now.
        if std::thread::panicking() {
            let log = self.log_text();
            let tail: Vec<&str> = log.lines().rev().take(80).collect();
            eprintln!("---- last lines of {} ----", self.log.display());
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

pub fn segment_yaml(ns: &str, name: &str, spec: &str) -> String {
    format!(
        "apiVersion: eipsegment.io/v1alpha1\nkind: EipSegment\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n{spec}"
    )
}

pub fn condition(obj: &Value, type_: &str) -> Option<Value> {
    obj["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == type_).cloned()
}

pub fn is_ready(obj: &Value) -> bool {
    condition(obj, "Ready").is_some_and(|c| c["status"] == "True")
}

/// How long an end-to-end wait may take on a loaded 2-core machine.
pub const WAIT: Duration = Duration::from_secs(90);

pub fn wait_ready(c: &Cluster, ns: &str, name: &str) -> Value {
    eventually(&format!("{ns}/{name} Ready"), WAIT, || c.get(ns, name).filter(is_ready))
}

pub fn wait_gone(c: &Cluster, ns: &str, name: &str) {
    eventually(&format!("{ns}/{name} gone"), WAIT, || c.get(ns, name).is_none().then_some(()))
}

pub fn segment_id(obj: &Value) -> String {
    obj["status"]["segmentInstanceId"].as_str().expect("segment ID in status").to_string()
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// A Kubernetes client as the admin, for what kubectl cannot do: writes with preconditions.
pub struct Kube {
    rt: tokio::runtime::Runtime,
    client: kube::Client,
    resource: ApiResource,
}

impl Kube {
    pub fn new(c: &Cluster) -> Kube {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let kubeconfig = Kubeconfig::read_from(c.admin_kubeconfig()).expect("admin kubeconfig");
        let client = rt.block_on(async {
            let mut config =
                kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.expect("config");
            config.connect_timeout = Some(Duration::from_secs(5));
            config.read_timeout = Some(Duration::from_secs(10));
            config.write_timeout = Some(Duration::from_secs(10));
            kube::Client::try_from(config).expect("kube client")
        });
        Kube { rt, client, resource: ApiResource::erase::<EipSegment>(&()) }
    }

    /// Deletes the object with this propagation ("Foreground", "Background"), as kubectl's
    /// `--cascade` does, and returns the apiserver's answer: the object as the deletion left it
    /// (finalizers included), or None when it went at once.
    pub fn delete(&self, ns: &str, name: &str, propagation: &str) -> Option<Value> {
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), ns, &self.resource);
        let params = match propagation {
            "Foreground" => DeleteParams::foreground(),
            "Background" => DeleteParams::background(),
            other => panic!("no propagation {other}"),
        };
        let answer = self.rt.block_on(api.delete(name, &params)).expect("delete");
        answer.left().map(|obj| serde_json::to_value(obj).unwrap())
    }

    /// Removes the object without its operator, as one who takes the finalizer off by hand and
    /// deletes the object: the finalizers go by a patch that holds the read's resourceVersion, then
    /// a delete that holds the patch's. When the operator puts its finalizer back in between, the
    /// delete fails and all is tried again from a new read, so the object never meets the operator
    /// with a deletion requested. Returns the object as last read (its manifest is what a backup
    /// taken just before would hold) and the number of tries.
    pub fn remove_behind_operator(&self, ns: &str, name: &str) -> Result<(Value, usize), String> {
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), ns, &self.resource);
        self.rt.block_on(async {
            let mut last_error = String::new();
            // The read before a delete whose answer was lost: the object may be gone by it.
            let mut sent: Option<Value> = None;
            for attempt in 1..=40 {
                let obj = match api.get_opt(name).await {
                    Ok(Some(obj)) => obj,
                    Ok(None) => return sent.map(|s| (s, attempt)).ok_or(format!("{ns}/{name} is not there")),
                    Err(e) => {
                        last_error = e.to_string();
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                };
                if obj.metadata.deletion_timestamp.is_some() {
                    return Err(format!("{ns}/{name} is being deleted"));
                }
                let saved = serde_json::to_value(&obj).unwrap();
                let uid = obj.metadata.uid.clone();
                let patch = json!({"metadata": {"finalizers": null, "resourceVersion": obj.metadata.resource_version}});
                let patched = match api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                    Ok(patched) => patched,
                    Err(e) => {
                        if !is_conflict(&e) {
                            tokio::time::sleep(Duration::from_millis(300)).await;
                        }
                        last_error = e.to_string();
                        continue;
                    }
                };
                let preconditions = Preconditions { uid, resource_version: patched.metadata.resource_version.clone() };
                let params = DeleteParams { preconditions: Some(preconditions), ..Default::default() };
                sent = None;
                match api.delete(name, &params).await {
                    Ok(answer) if answer.is_right() => return Ok((saved, attempt)),
                    Ok(_) => return Err(format!("{ns}/{name} was deleted with finalizers on")),
                    Err(e) if is_not_found(&e) => return Ok((saved, attempt)),
                    Err(e) => {
                        if !is_conflict(&e) {
                            sent = Some(saved);
                            tokio::time::sleep(Duration::from_millis(300)).await;
                        }
                        last_error = e.to_string();
                    }
                }
            }
            Err(format!("{ns}/{name} not removed in 40 tries: {last_error}"))
        })
    }
}

/// What a backup of the object holds, as re-applied: spec, labels and the operator's identity
/// annotations; the finalizers it had when `keep_finalizer`; never status.
pub fn restore_manifest(saved: &Value, keep_finalizer: bool) -> Value {
    let meta = &saved["metadata"];
    let annotations: serde_json::Map<String, Value> = meta["annotations"]
        .as_object()
        .map(|a| {
            a.iter().filter(|(k, _)| k.starts_with("eipsegment.io/")).map(|(k, v)| (k.clone(), v.clone())).collect()
        })
        .unwrap_or_default();
    let mut metadata = json!({
        "name": meta["name"], "namespace": meta["namespace"], "labels": meta["labels"], "annotations": annotations,
    });
    if keep_finalizer && meta["finalizers"].is_array() {
        metadata["finalizers"] = meta["finalizers"].clone();
    }
    json!({"apiVersion": saved["apiVersion"], "kind": saved["kind"], "metadata": metadata, "spec": saved["spec"]})
}
