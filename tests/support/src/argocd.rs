//! A real Argo CD beside the control plane: the application controller and the repo server
//! (`tests/tools/build-argocd.sh`), Redis, and a git repository served by `git daemon`, all on
//! loopback (one repository per test, so that tests running side by side never see each other's
//! commits). The controller manages the control plane it runs beside as Argo CD's in-cluster
//! destination (its own development mode, `ARGOCD_FAKE_IN_CLUSTER`), with the EipSegment health
//! check installed in `argocd-cm` from `deploy/argocd/argocd-cm-patch.yaml`, as a user installs it.
//! No argocd-server, Dex or UI: the suites read what Argo CD reports from its Application objects,
//! whose resource health the controller persists there (`--persist-resource-health`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

use crate::{Cluster, eventually, repo, tool};

/// Argo CD's namespace, where its Applications, ConfigMaps and AppProject live.
pub const NAMESPACE: &str = "argocd";

/// The cached Argo CD: the multi-call binary, the repo server's wrapper scripts, the CRDs.
pub fn argocd_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| PathBuf::from(tool("build-argocd.sh")))
}

/// Runs the Argo CD binary as `name` (its multi-call name, e.g. `argocd`).
pub fn argocd_command(name: &str) -> Command {
    let dir = argocd_dir();
    let mut cmd = Command::new(dir.join("argocd"));
    let path = format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default());
    cmd.env("ARGOCD_BINARY_NAME", name).env("PATH", path).env("ARGOCD_GPG_ENABLED", "false");
    cmd
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(out.status.success(), "{what} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A git repository the test writes and Argo CD reads through `git daemon` on loopback.
pub struct GitRepo {
    work: PathBuf,
    pub url: String,
}

impl GitRepo {
    fn git(&self, args: &[&str]) -> String {
        run(
            Command::new("git")
                .args(["-c", "user.name=eipsegment-tests", "-c", "user.email=tests@eipsegment.invalid"])
                .args(args)
                .current_dir(&self.work),
            &format!("git {args:?}"),
        )
    }

    /// Writes `path` (relative to the repository's root) in the working copy.
    pub fn write(&self, path: &str, content: &str) {
        let file = self.work.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, content).unwrap();
    }

    pub fn remove(&self, path: &str) {
        let file = self.work.join(path);
        if file.is_dir() { std::fs::remove_dir_all(file) } else { std::fs::remove_file(file) }.unwrap();
    }

    /// Commits everything and pushes it to the served repository; returns the commit.
    pub fn commit(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
        self.git(&["push", "-q", "origin", "HEAD:main"]);
        self.git(&["rev-parse", "HEAD"]).trim().to_string()
    }
}

/// Argo CD's processes, stopped when dropped.
pub struct ArgoCd {
    processes: Vec<Child>,
    cluster: &'static Cluster,
    git_port: u16,
    pub dir: PathBuf,
}

impl ArgoCd {
    /// Installs Argo CD's CRDs, settings and default project on `c`, and starts its processes.
    pub fn start(c: &'static Cluster) -> ArgoCd {
        let dir = c.dir.join("argocd");
        std::fs::create_dir_all(&dir).unwrap();
        let bin = argocd_dir();
        c.apply(&format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {NAMESPACE}\n")).unwrap();
        let crds = bin.join("crds");
        c.kubectl(&["apply", "--server-side", "-f", crds.to_str().unwrap()]);
        // `kubectl wait` fails outright while a new CRD has no conditions yet.
        let established =
            ["wait", "--for=condition=Established", "crd/applications.argoproj.io", "crd/appprojects.argoproj.io"];
        eventually("Argo CD's CRDs established", Duration::from_secs(30), || {
            c.kubectl_as(c.admin_kubeconfig(), &established, None).0.then_some(())
        });
        c.apply(SETTINGS).unwrap();
        // The health check, patched into argocd-cm the way the README tells users to.
        let patch = repo().join("deploy/argocd/argocd-cm-patch.yaml");
        c.kubectl(&["patch", "configmap", "argocd-cm", "-n", NAMESPACE, "--patch-file", patch.to_str().unwrap()]);
        std::fs::create_dir_all(dir.join("git")).unwrap();
        let mut argocd = ArgoCd { processes: Vec::new(), cluster: c, git_port: free_port(), dir };
        argocd.start_processes();
        argocd
    }

    fn spawn(&mut self, name: &str, mut cmd: Command) {
        let log = std::fs::File::create(self.dir.join(format!("{name}.log"))).unwrap();
        let child = cmd.stdout(log.try_clone().unwrap()).stderr(log).spawn().unwrap_or_else(|e| panic!("{name}: {e}"));
        stop_with_this_process(child.id());
        self.processes.push(child);
    }

    fn start_processes(&mut self) {
        let (redis, repo_server, repo_metrics, controller_metrics) =
            (free_port(), free_port(), free_port(), free_port());
        let mut daemon = Command::new("git");
        daemon.args(["daemon", "--reuseaddr", "--export-all", "--listen=127.0.0.1"]).args([
            format!("--port={}", self.git_port),
            format!("--base-path={}", self.dir.join("git").display()),
            self.dir.join("git").display().to_string(),
        ]);
        self.spawn("git-daemon", daemon);
        let mut redis_server = Command::new("redis-server");
        redis_server.args(["--bind", "127.0.0.1", "--port", &redis.to_string(), "--save", "", "--appendonly", "no"]);
        redis_server.current_dir(&self.dir);
        self.spawn("redis", redis_server);
        let redis = format!("127.0.0.1:{redis}");

        let mut repo = argocd_command("argocd-repo-server");
        repo.args([
            "--address",
            "127.0.0.1",
            "--port",
            &repo_server.to_string(),
            "--disable-tls",
            "--client-ca-path",
            "",
        ])
        .args(["--metrics-address", "127.0.0.1", "--metrics-port", &repo_metrics.to_string()])
        .args(["--redis", &redis, "--loglevel", "info"])
        .env("ARGOCD_FAKE_IN_CLUSTER", "true")
        .env("KUBECONFIG", self.cluster.admin_kubeconfig())
        .current_dir(&self.dir);
        self.spawn("repo-server", repo);

        let mut controller = argocd_command("argocd-application-controller");
        controller
            .args(["--namespace", NAMESPACE, "--redis", &redis])
            .args(["--repo-server", &format!("127.0.0.1:{repo_server}"), "--repo-server-plaintext"])
            .args(["--metrics-port", &controller_metrics.to_string(), "--persist-resource-health"])
            .args(["--app-resync", "10", "--app-resync-jitter", "0", "--loglevel", "info"])
            .env("ARGOCD_FAKE_IN_CLUSTER", "true")
            .env("KUBECONFIG", self.cluster.admin_kubeconfig())
            .current_dir(&self.dir);
        self.spawn("application-controller", controller);
        // Ready when the controller serves its metrics and the repo server its gRPC port.
        eventually("Argo CD's processes listening", Duration::from_secs(60), || {
            for (i, child) in self.processes.iter_mut().enumerate() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("an Argo CD process (#{i}) exited with {status}; logs in {}", self.dir.display());
                }
            }
            [repo_server, controller_metrics]
                .iter()
                .all(|p| std::net::TcpStream::connect(("127.0.0.1", *p)).is_ok())
                .then_some(())
        });
    }

    fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
        self.cluster.kubectl_as(self.cluster.admin_kubeconfig(), args, stdin)
    }

    /// A new repository named `name`, served to Argo CD.
    pub fn repository(&self, name: &str) -> GitRepo {
        let served = self.dir.join(format!("git/{name}.git"));
        run(Command::new("git").args(["init", "-q", "--bare", "-b", "main"]).arg(&served), "git init --bare");
        let work = self.dir.join(format!("work/{name}"));
        run(Command::new("git").args(["init", "-q", "-b", "main"]).arg(&work), "git init");
        let repo = GitRepo { work, url: format!("git://127.0.0.1:{}/{name}.git", self.git_port) };
        repo.git(&["remote", "add", "origin", served.to_str().unwrap()]);
        repo
    }

    /// Creates an Application from `deploy/argocd/examples/application.yaml`, as a user would, named
    /// `name`, syncing `path` of `repo` into `namespace`, with `finalizer` (Argo CD's resources
    /// finalizer, in one of its forms) or none.
    pub fn create_application(&self, name: &str, repo: &GitRepo, path: &str, namespace: &str, finalizer: Option<&str>) {
        let example = std::fs::read_to_string(crate::repo().join("deploy/argocd/examples/application.yaml")).unwrap();
        let mut app: serde_yaml::Value = serde_yaml::from_str(&example).unwrap();
        app["metadata"]["name"] = name.into();
        app["metadata"]["finalizers"] = finalizer.map(|f| vec![f]).unwrap_or_default().into();
        app["spec"]["source"]["repoURL"] = repo.url.as_str().into();
        app["spec"]["source"]["path"] = path.into();
        app["spec"]["destination"]["namespace"] = namespace.into();
        let (ok, _, err) = self.kubectl(&["apply", "-f", "-"], Some(&serde_yaml::to_string(&app).unwrap()));
        assert!(ok, "creating Application {name}: {err}");
    }

    /// The Application as JSON, or None when it is gone.
    pub fn application(&self, name: &str) -> Option<Value> {
        let (ok, out, err) = self.kubectl(&["get", "application", name, "-n", NAMESPACE, "-o", "json"], None);
        if ok {
            Some(serde_json::from_str(&out).unwrap())
        } else {
            assert!(err.contains("NotFound"), "kubectl get application failed: {err}");
            None
        }
    }

    /// Asks Argo CD to look at the repository again now rather than at its next resync.
    pub fn refresh(&self, name: &str) {
        let (ok, _, err) = self.kubectl(
            &["annotate", "application", name, "-n", NAMESPACE, "argocd.argoproj.io/refresh=normal", "--overwrite"],
            None,
        );
        assert!(ok, "refreshing {name}: {err}");
    }

    pub fn delete_application(&self, name: &str) {
        let (ok, _, err) = self.kubectl(&["delete", "application", name, "-n", NAMESPACE, "--wait=false"], None);
        assert!(ok, "deleting {name}: {err}");
    }

    /// The log of one of Argo CD's processes, for a failure's message.
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default()
    }
}

impl Drop for ArgoCd {
    fn drop(&mut self) {
        for child in &mut self.processes {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Argo CD's processes outlive a test process that ends without dropping them (a static's drop
/// never runs): a watcher stops each once this process is gone.
fn stop_with_this_process(pid: u32) {
    let watcher = "while kill -0 \"$1\" 2>/dev/null; do sleep 1; done; kill \"$2\" 2>/dev/null";
    let _ = Command::new("sh")
        .args(["-c", watcher, "_", &std::process::id().to_string(), &pid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}

/// What Argo CD needs besides its CRDs: its settings (the health check is patched in after, as a
/// user would) and the default project, which argocd-server would otherwise create.
const SETTINGS: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: argocd-cm
  namespace: argocd
  labels: {app.kubernetes.io/part-of: argocd}
data:
  timeout.reconciliation: 10s
---
apiVersion: v1
kind: Secret
metadata:
  name: argocd-secret
  namespace: argocd
  labels: {app.kubernetes.io/part-of: argocd}
stringData:
  server.secretkey: test-bed-only
---
apiVersion: argoproj.io/v1alpha1
kind: AppProject
metadata:
  name: default
  namespace: argocd
spec:
  sourceRepos: ['*']
  destinations: [{namespace: '*', server: '*'}]
  clusterResourceWhitelist: [{group: '*', kind: '*'}]
"#;
