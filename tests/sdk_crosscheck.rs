//! Alibaba's OFFICIAL Python SDKs against the simulator binary: tests/sdk/drive_simulator.py runs the
//! segment lifecycle, the other account's isolation, the auth/prepaid errors and STS GetCallerIdentity
//! (for both accounts' keys and for AssumeRoleWithOIDC credentials) with the Darabonba clients (V3 and
//! v2 signatures) and the legacy aliyunsdkcore client; the simulator's counters must show the calls it
//! expects.
//!
//! Needs `python3` (with `venv`) and a way to install tests/sdk/requirements.txt (PyPI or
//! PIP_FIND_LINKS). The venv is cached at `$EIPSEG_CACHE` (default `$HOME/.cache/eipsegment-operator`)
//! `/sdk-venv-<sha256(requirements.txt)[..12]>`. A missing Python or a failed install FAILS the test.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};

const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");
/// Written into the venv once `pip install` succeeded; holds the requirements hash.
const MARKER: &str = ".eipseg-requirements-sha256";
const DRIVER_TIMEOUT: Duration = Duration::from_secs(180);
const INSTALL_TIMEOUT: Duration = Duration::from_secs(900);

fn requirements() -> PathBuf {
    Path::new(MANIFEST_DIR).join("tests/sdk/requirements.txt")
}

fn cache_root() -> PathBuf {
    if let Some(root) = std::env::var_os("EIPSEG_CACHE").filter(|v| !v.is_empty()) {
        return PathBuf::from(root);
    }
    let home = std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .expect("neither EIPSEG_CACHE nor HOME is set: no place for the SDK venv");
    PathBuf::from(home).join(".cache/eipsegment-operator")
}

/// Runs a command to completion with a deadline; returns (success, stdout, stderr).
fn run_bounded(cmd: &mut Command, timeout: Duration, what: &str) -> (bool, String, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot start {cmd:?}: {e}"));
    let drain = |mut r: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut s = Vec::new();
            let _ = r.read_to_end(&mut s);
            String::from_utf8_lossy(&s).into_owned()
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("{what}: waiting for {cmd:?}: {e}"),
        }
    };
    let (stdout, stderr) = (out.join().unwrap_or_default(), err.join().unwrap_or_default());
    match status {
        Some(s) => (
            s.success(),
            stdout,
            format!("{stderr}{}", if s.success() { String::new() } else { format!("\n[{what}: {s}]") }),
        ),
        None => (false, stdout, format!("{stderr}\n[{what}: killed after {timeout:?}]")),
    }
}

/// The venv's python, creating the venv (python3 -m venv + pip install -r) when it is missing.
fn sdk_python() -> PathBuf {
    let reqs = requirements();
    let bytes = std::fs::read(&reqs).unwrap_or_else(|e| panic!("cannot read {}: {e}", reqs.display()));
    let digest = hex::encode(Sha256::digest(&bytes));
    let root = cache_root();
    std::fs::create_dir_all(&root).unwrap_or_else(|e| panic!("cannot create the cache root {}: {e}", root.display()));
    let venv = root.join(format!("sdk-venv-{}", &digest[..12]));
    let python = venv.join("bin/python");
    let marker = venv.join(MARKER);

    // Serialise concurrent creators (two test processes) on a lock file beside the venv.
    let lock_path = root.join(format!("sdk-venv-{}.lock", &digest[..12]));
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", lock_path.display()));
    lock.lock().unwrap_or_else(|e| panic!("cannot lock {}: {e}", lock_path.display()));

    if python.exists() && std::fs::read_to_string(&marker).is_ok_and(|m| m.trim() == digest) {
        return python;
    }
    // Absent, or left half-made by an interrupted install: start afresh.
    if venv.exists() {
        std::fs::remove_dir_all(&venv)
            .unwrap_or_else(|e| panic!("cannot remove the incomplete venv {}: {e}", venv.display()));
    }
    let interpreter = std::env::var("EIPSEG_PYTHON").unwrap_or_else(|_| "python3".into());
    eprintln!(
        "sdk_crosscheck: creating {} with {interpreter} -m venv and pip install -r {}",
        venv.display(),
        reqs.display()
    );
    let (ok, out, err) = run_bounded(
        Command::new(&interpreter).arg("-m").arg("venv").arg(&venv),
        Duration::from_secs(300),
        "python3 -m venv",
    );
    assert!(ok, "creating the SDK venv failed ({interpreter} -m venv {}):\n{out}\n{err}", venv.display());
    let (ok, out, err) = run_bounded(
        Command::new(&python).args(["-m", "pip", "install", "--no-input", "-r"]).arg(&reqs),
        INSTALL_TIMEOUT,
        "pip install",
    );
    assert!(ok, "pip install -r {} into {} failed:\n{out}\n{err}", reqs.display(), venv.display());
    std::fs::write(&marker, &digest).unwrap_or_else(|e| panic!("cannot write {}: {e}", marker.display()));
    python
}

/// The simulator process; killed when dropped, also when an assertion panics.
struct Simulator {
    child: Child,
    endpoint: String,
    stderr_log: tempfile::NamedTempFile,
}

impl Simulator {
    fn start() -> Simulator {
        let stderr_log = tempfile::NamedTempFile::new().expect("temp file for the simulator's stderr");
        let mut child = Command::new(eipsegment_test_support::simulator_binary())
            .args(["--listen", "127.0.0.1:0", "--allocate-seconds", "1", "--release-seconds", "1"])
            .env_remove("ALIBABA_CLOUD_ACCESS_KEY_ID")
            .env_remove("ALIBABA_CLOUD_ACCESS_KEY_SECRET")
            .env_remove("VPC_SIMULATOR_LISTEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr_log.reopen().expect("reopen the stderr log"))
            .spawn()
            .expect("cannot start the vpc-simulator binary");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next());
            // Keep the pipe drained so the simulator never blocks on a full pipe.
            for _ in lines {}
        });
        let mut sim = Simulator { child, endpoint: String::new(), stderr_log };
        let first = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Some(Ok(line))) => line,
            other => panic!("the simulator printed no first line within 30 s ({other:?}); stderr:\n{}", sim.stderr()),
        };
        let url = first
            .strip_prefix("vpc-simulator listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line from the simulator: {first:?}"));
        sim.endpoint = url.trim().to_string();
        sim
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.stderr_log.path()).unwrap_or_default()
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn admin(rt: &tokio::runtime::Runtime, sim: &Simulator, method: reqwest::Method, path: &str) -> Value {
    rt.block_on(async {
        let url = format!("http://{}/__admin/{path}", sim.endpoint);
        let resp = reqwest::Client::new()
            .request(method, &url)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .unwrap_or_else(|e| panic!("admin {url}: {e}"));
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or_else(|e| panic!("admin {url}: bad JSON: {e}"));
        assert!(status.is_success(), "admin {url}: HTTP {status}: {body}");
        body
    })
}

/// What one driver run must leave in the simulator's counters: (action, outcome) -> allowed counts.
/// Any outcome not listed is a failure.
fn expected_counters() -> BTreeMap<(&'static str, &'static str), std::ops::RangeInclusive<u64>> {
    BTreeMap::from([
        // The first allocate and its idempotent repeat.
        (("AllocateEipSegmentAddress", "Success"), 2..=2),
        // Allocating, >= 1 poll to Allocated, Releasing, >= 1 poll to gone (polls are bounded).
        (("DescribeEipSegment", "Success"), 4..=2000),
        (("DescribeEipSegment", "SignatureDoesNotMatch"), 1..=1),
        (("DescribeEipSegment", "InvalidAccessKeyId.NotFound"), 1..=1),
        (("DescribeEipAddresses", "Success"), 1..=1),
        (("ReleaseEipSegmentAddress", "Success"), 1..=1),
        (("ReleaseEipSegmentAddress", "Forbidden.ChargeTypeIsPrepaid"), 1..=1),
        // The other account's client trying to release the first account's segment.
        (("ReleaseEipSegmentAddress", "Forbidden"), 1..=1),
        // Both accounts' keys and the assumed role's credentials, then an unknown key.
        (("GetCallerIdentity", "Success"), 3..=3),
        (("GetCallerIdentity", "InvalidAccessKeyId.NotFound"), 1..=1),
        (("AssumeRoleWithOIDC", "Success"), 1..=1),
    ])
}

/// The checks every driver run must report (each with `"ok": true`).
const DRIVER_CHECKS: &[&str] = &[
    "allocate",
    "describe-allocating",
    "poll-allocated",
    "allocate-idempotent-repeat",
    "other-account-isolated",
    "describe-members",
    "release",
    "describe-releasing",
    "poll-gone",
    "tampered-secret",
    "unknown-access-key",
    "release-prepaid",
    "caller-identity-default",
    "caller-identity-other",
    "caller-identity-unknown-key",
    "caller-identity-assumed-role",
    "all",
];

#[test]
fn official_sdks_drive_the_simulator() {
    let python = sdk_python();
    let driver = Path::new(MANIFEST_DIR).join("tests/sdk/drive_simulator.py");
    let sim = Simulator::start();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    // reqwest is built without a default TLS provider; the crate installs its own (even plain-http
    // admin calls need one for Client::new()).
    eipsegment_operator::cloud::client::install_crypto_provider();

    for sdk in ["v3", "v2", "legacy"] {
        admin(&rt, &sim, reqwest::Method::DELETE, "counters");
        let (ok, out, err) = run_driver(&python, &driver, &sim, sdk);
        let context =
            || format!("--- stdout ---\n{out}\n--- stderr ---\n{err}\n--- simulator stderr ---\n{}", sim.stderr());
        assert!(ok, "the {sdk} SDK driver failed:\n{}", context());
        check_driver_lines(sdk, &out, &context);
        let counters = admin(&rt, &sim, reqwest::Method::GET, "counters");
        check_counters(sdk, &counters, &context);
        eprintln!("sdk_crosscheck: {sdk} ok, counters {counters}");
    }
}

/// Runs tests/sdk/drive_simulator.py with one SDK against the simulator; returns (success, stdout,
/// stderr).
fn run_driver(python: &Path, driver: &Path, sim: &Simulator, sdk: &str) -> (bool, String, String) {
    let mut cmd = Command::new(python);
    cmd.arg(driver)
        .args(["--endpoint", &sim.endpoint, "--sdk", sdk, "--timeout", "30"])
        // The SDKs' credential chains and proxies must not interfere with a loopback simulator.
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .env_remove("ALIBABA_CLOUD_ACCESS_KEY_ID")
        .env_remove("ALIBABA_CLOUD_ACCESS_KEY_SECRET")
        .env_remove("ALIBABA_CLOUD_SECURITY_TOKEN")
        .env("PYTHONDONTWRITEBYTECODE", "1");
    run_bounded(&mut cmd, DRIVER_TIMEOUT, &format!("drive_simulator.py --sdk {sdk}"))
}

/// The driver prints one JSON line per check: every one passed, every expected check is there, and
/// each names the SDK that ran.
fn check_driver_lines(sdk: &str, out: &str, context: &dyn Fn() -> String) {
    let lines: Vec<Value> = out
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{sdk}: driver line is not JSON ({e}): {l}\n{}", context()))
        })
        .collect();
    let failed: Vec<&Value> = lines.iter().filter(|l| l["ok"] != Value::Bool(true)).collect();
    assert!(failed.is_empty(), "{sdk}: failed checks {failed:?}\n{}", context());
    let checks: Vec<&str> = lines.iter().filter_map(|l| l["check"].as_str()).collect();
    for want in DRIVER_CHECKS {
        assert!(checks.contains(want), "{sdk}: check {want:?} missing from the driver's output\n{}", context());
    }
    assert!(lines.iter().all(|l| l["sdk"] == sdk), "{sdk}: a line names another SDK\n{}", context());
}

/// The simulator's counters after one driver run: each expected outcome within its range, no other.
fn check_counters(sdk: &str, counters: &Value, context: &dyn Fn() -> String) {
    let expected = expected_counters();
    let mut seen = BTreeMap::new();
    for (action, outcomes) in counters.as_object().expect("counters is an object") {
        for (outcome, n) in outcomes.as_object().expect("outcomes is an object") {
            seen.insert((action.clone(), outcome.clone()), n.as_u64().expect("a count"));
        }
    }
    for ((action, outcome), range) in &expected {
        let n = seen.get(&(action.to_string(), outcome.to_string())).copied().unwrap_or(0);
        assert!(
            range.contains(&n),
            "{sdk}: simulator counted {n} {action}/{outcome}, want {range:?}; counters {counters}\n{}",
            context()
        );
    }
    let unexpected: Vec<_> =
        seen.iter().filter(|((a, o), _)| !expected.contains_key(&(a.as_str(), o.as_str()))).collect();
    assert!(
        unexpected.is_empty(),
        "{sdk}: unexpected simulator outcomes {unexpected:?}; counters {counters}\n{}",
        context()
    );
}
