//! The chaos run, on the real stack: a control plane of its own, the `vpc-simulator` binary and the
//! `eipsegment-operator` binary under its shipped RBAC, driven with kubectl.
//!
//! EipSegments are created and deleted in waves (some deleted while still allocating, some names
//! reused once their object is gone, a few with `deletionPolicy: Retain`) while the operator is
//! SIGKILLed at random moments and started again after a random pause, the simulated cloud answers
//! 10% of calls with 5xx, drops 5% of connections (half before, half after the action ran), delays
//! 20% (some past the operator's call timeout) and throttles 5%, and the kube-apiserver is restarted
//! once. Then the faults stop, every remaining object is deleted, and the run holds the cloud's
//! history (`GET /__admin/history`) against what it did. Each check must be 0:
//! - leaked segments: in the cloud at the end with no object (Delete policy), or allocated with a
//!   ClientToken that names no object of the run;
//! - premature releases: a release the cloud accepted before the run asked for the object's deletion
//!   (or ever, for Retain);
//! - second allocations: more than one segment per object UID, a segment created after its object was
//!   seen gone, a released segment whose token names no object, or a status naming a segment that
//!   was not allocated with the object's own token;
//! - objects still present 2 minutes after the faults stop;
//! - operator panics, and operator exits the run did not cause (it must ride out the apiserver restart);
//! - secret hygiene: the AccessKeySecret (plain or base64) and the operator's Kubernetes token never
//!   in any operator log (at trace level), event, object status or /metrics scrape.
//!
//! `CHAOS_PROFILE=short` (the default, part of `make test`) or `long` (`make chaos`: 200 objects, at
//! least 50 kills). `CHAOS_SEED` (default 1) fixes the schedule: waves, which objects are deleted
//! when, kill moments and pauses, the apiserver's downtime, and the simulator's fault rolls
//! (`--seed`). What the operator happens to be doing at each of those moments depends on timing.
//! The report is printed and written to `target/chaos/<profile>-seed<seed>.json`.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use support::*;

const DEFAULT_SEED: u64 = 1;
/// How long objects may take to go once the cloud is healthy again.
const DRAIN_LIMIT: Duration = Duration::from_secs(120);

#[derive(Clone, Copy, Debug, serde::Serialize)]
struct Profile {
    name: &'static str,
    objects: usize,
    /// How many of them have `deletionPolicy: Retain`.
    retain: usize,
    /// Objects per wave (inclusive range).
    wave: (usize, usize),
    /// From a wave's creation to its deletions.
    delete_pause_ms: (u64, u64),
    /// From a wave's deletions to the next wave.
    wave_gap_ms: (u64, u64),
    /// Chance, at each wave, that each live object of an earlier wave is deleted.
    delete_earlier: f64,
    /// Chance that an object of the wave just created is deleted at once (mid-allocation).
    delete_new: f64,
    /// Chance that a new object takes the name of one already gone.
    reuse_name: f64,
    kills: usize,
    /// Running time before each kill.
    kill_gap_ms: (u64, u64),
    /// Time dead after each kill.
    kill_pause_ms: (u64, u64),
    apiserver_down_s: (u64, u64),
    allocate_seconds: f64,
    release_seconds: f64,
}

const SHORT: Profile = Profile {
    name: "short",
    objects: 40,
    retain: 2,
    wave: (4, 8),
    delete_pause_ms: (0, 2500),
    wave_gap_ms: (2000, 6000),
    delete_earlier: 0.3,
    delete_new: 0.2,
    reuse_name: 0.1,
    kills: 10,
    kill_gap_ms: (2500, 7000),
    kill_pause_ms: (100, 2500),
    apiserver_down_s: (1, 3),
    allocate_seconds: 2.0,
    release_seconds: 2.0,
};

const LONG: Profile = Profile {
    name: "long",
    objects: 200,
    retain: 8,
    wave: (6, 16),
    delete_pause_ms: (0, 4000),
    wave_gap_ms: (6000, 20000),
    delete_earlier: 0.25,
    delete_new: 0.15,
    reuse_name: 0.1,
    kills: 55,
    kill_gap_ms: (2000, 7000),
    kill_pause_ms: (100, 3000),
    apiserver_down_s: (2, 6),
    allocate_seconds: 2.0,
    release_seconds: 3.0,
};

fn faults() -> Value {
    json!({"internalErrorRate": 0.10, "dropRate": 0.05, "delayRate": 0.20, "delayMsMin": 100, "delayMsMax": 4000, "throttleRate": 0.05})
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

fn between(rng: &mut StdRng, (lo, hi): (u64, u64)) -> u64 {
    rng.random_range(lo..=hi)
}

// ---- The schedule, a function of the seed alone -------------------------------------------------

#[derive(Clone, Debug, serde::Serialize)]
struct NewObject {
    index: usize,
    retain: bool,
    /// `deletionPolicy: Delete` written out rather than left to the default.
    explicit_delete: bool,
    mask: u8,
    bandwidth: u32,
    reuse_name: bool,
}

#[derive(Clone, Debug, serde::Serialize)]
struct Wave {
    creates: Vec<NewObject>,
    pause_ms: u64,
    /// Objects (by creation index) whose deletion is requested in this wave.
    deletes: Vec<usize>,
    gap_ms: u64,
}

#[derive(Debug, serde::Serialize)]
struct Plan {
    waves: Vec<Wave>,
    /// The apiserver restarts after this wave's deletions.
    restart_after_wave: usize,
    apiserver_down_s: u64,
    /// (running time before the kill, time dead after it), in ms.
    kills: Vec<(u64, u64)>,
}

impl Plan {
    fn new(p: &Profile, seed: u64) -> Plan {
        let mut rng = StdRng::seed_from_u64(seed);
        let retained: HashSet<usize> = rand::seq::index::sample(&mut rng, p.objects, p.retain).into_iter().collect();
        let mut waves = Vec::new();
        let mut live: Vec<usize> = Vec::new();
        let mut next = 0;
        while next < p.objects {
            let size = rng.random_range(p.wave.0..=p.wave.1).min(p.objects - next);
            let creates: Vec<NewObject> = (next..next + size)
                .map(|index| NewObject {
                    index,
                    retain: retained.contains(&index),
                    explicit_delete: rng.random_bool(0.5),
                    mask: rng.random_range(27..=28),
                    bandwidth: rng.random_range(1..=50),
                    reuse_name: rng.random_bool(p.reuse_name),
                })
                .collect();
            next += size;
            let mut deletes = Vec::new();
            live.retain(|&i| {
                let delete = rng.random_bool(p.delete_earlier);
                if delete {
                    deletes.push(i);
                }
                !delete
            });
            for o in &creates {
                if rng.random_bool(p.delete_new) {
                    deletes.push(o.index);
                } else {
                    live.push(o.index);
                }
            }
            let pause_ms = between(&mut rng, p.delete_pause_ms);
            let gap_ms = between(&mut rng, p.wave_gap_ms);
            waves.push(Wave { creates, pause_ms, deletes, gap_ms });
        }
        // In the middle third of the run.
        let n = waves.len();
        let restart_after_wave = rng.random_range(n / 3..=(2 * n / 3).max(n / 3)).min(n - 1);
        let apiserver_down_s = between(&mut rng, p.apiserver_down_s);
        let mut kill_rng = StdRng::seed_from_u64(seed.wrapping_add(1));
        let kills = (0..p.kills)
            .map(|_| (between(&mut kill_rng, p.kill_gap_ms), between(&mut kill_rng, p.kill_pause_ms)))
            .collect();
        Plan { waves, restart_after_wave, apiserver_down_s, kills }
    }
}

// ---- Secrets the outputs must never hold --------------------------------------------------------

struct Needles(Vec<(&'static str, String)>);

impl Needles {
    fn new(c: &Cluster) -> Needles {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(ACCESS_KEY_SECRET);
        let token = std::fs::read_to_string(c.operator_kubeconfig())
            .unwrap()
            .lines()
            .find_map(|l| l.trim().strip_prefix("token:").map(|t| t.trim().to_string()))
            .expect("operator token in its kubeconfig");
        Needles(vec![
            ("AccessKeySecret", ACCESS_KEY_SECRET.to_string()),
            ("AccessKeySecret (base64)", b64),
            ("operator Kubernetes token", token),
        ])
    }

    /// One finding per secret found in `text`.
    fn scan(&self, place: &str, text: &str, findings: &mut Vec<String>) {
        for (what, value) in &self.0 {
            let n = text.matches(value.as_str()).count();
            if n > 0 {
                findings.push(format!("{what} appears {n} time(s) in {place}"));
            }
        }
    }
}

// ---- HTTP with timeouts (the simulator's history, /metrics of a process that may be dying) ----

struct Http {
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
}

impl Http {
    fn new() -> Http {
        eipsegment_operator::cloud::client::install_crypto_provider();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
        Http { rt, client }
    }

    fn call(&self, method: &str, url: &str, body: Option<Value>) -> Result<(u16, String), String> {
        self.rt.block_on(async {
            let mut req = self.client.request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), url);
            if let Some(b) = body {
                req = req.json(&b);
            }
            let resp = req.send().await.map_err(|e| e.to_string())?;
            let status = resp.status().as_u16();
            Ok((status, resp.text().await.map_err(|e| e.to_string())?))
        })
    }

    fn admin(&self, sim: &Simulator, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, text) = self
            .call(method, &format!("{}/__admin/{path}", sim.url), body)
            .unwrap_or_else(|e| panic!("simulator admin {path}: {e}"));
        assert!((200..300).contains(&status), "simulator admin {method} {path}: HTTP {status}: {text}");
        serde_json::from_str(&text).unwrap()
    }
}

// ---- The operator, killed and restarted by its own thread ----------------------------------------

#[derive(Default, serde::Serialize)]
struct KillRecord {
    at_ms: u64,
    pid: u32,
    dead_ms: u64,
}

#[derive(Default, serde::Serialize)]
struct ExitRecord {
    at_ms: u64,
    pid: u32,
    status: String,
}

#[derive(Default)]
struct SupervisorReport {
    kills: Vec<KillRecord>,
    unexpected_exits: Vec<ExitRecord>,
    starts: usize,
    scrapes: usize,
    secret_findings: Vec<String>,
}

struct Supervisor {
    op: Arc<Mutex<Operator>>,
    needles: Arc<Needles>,
    report: SupervisorReport,
    http: Http,
    stop: Arc<AtomicBool>,
}

impl Supervisor {
    fn mark(&self, op: &Operator, why: &str) {
        if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(&op.log) {
            let _ = writeln!(
                f,
                "---- chaos: operator start #{} ({why}) at {} ----",
                self.report.starts + 1,
                chrono::Utc::now().to_rfc3339()
            );
        }
    }

    /// Starts the operator again if it ended on its own (as a Deployment would); true if it had.
    fn check_exit(&mut self) -> bool {
        let mut op = self.op.lock().unwrap();
        let pid = op.pid().unwrap_or(0);
        let Some(status) = op.exited() else { return false };
        self.report.unexpected_exits.push(ExitRecord { at_ms: now_ms(), pid, status: status.to_string() });
        eprintln!("chaos: the operator (pid {pid}) exited on its own: {status}; starting it again in 1s");
        op.kill();
        drop(op);
        std::thread::sleep(Duration::from_secs(1));
        let mut op = self.op.lock().unwrap();
        self.mark(&op, "after an exit");
        op.start_again();
        self.report.starts += 1;
        true
    }

    fn sleep(&mut self, d: Duration) {
        let until = Instant::now() + d;
        while Instant::now() < until {
            self.check_exit();
            std::thread::sleep(Duration::from_millis(100).min(until.saturating_duration_since(Instant::now())));
        }
    }

    fn scrape(&mut self) {
        let url = format!("{}/metrics", self.op.lock().unwrap().metrics_url);
        if let Ok((200, text)) = self.http.call("GET", &url, None) {
            self.report.scrapes += 1;
            self.needles.scan(&format!("a /metrics scrape at {}", now_ms()), &text, &mut self.report.secret_findings);
        }
    }

    fn run(mut self, kills: Vec<(u64, u64)>, kills_done: Arc<AtomicBool>) -> SupervisorReport {
        for (gap, pause) in kills {
            self.sleep(Duration::from_millis(gap));
            self.scrape();
            let mut op = self.op.lock().unwrap();
            let pid = op.pid().unwrap_or(0);
            let at_ms = now_ms();
            op.kill();
            drop(op);
            std::thread::sleep(Duration::from_millis(pause));
            let mut op = self.op.lock().unwrap();
            self.mark(&op, "after SIGKILL");
            op.start_again();
            self.report.starts += 1;
            self.report.kills.push(KillRecord { at_ms, pid, dead_ms: pause });
        }
        kills_done.store(true, Ordering::SeqCst);
        while !self.stop.load(Ordering::SeqCst) {
            self.sleep(Duration::from_millis(500));
        }
        self.scrape();
        self.report
    }
}

// ---- The objects, as the run made them ------------------------------------------------------------

#[derive(Clone, Debug, serde::Serialize)]
struct Tracked {
    index: usize,
    name: String,
    uid: String,
    retain: bool,
    wave: usize,
    created_ms: u64,
    /// Taken just before the `kubectl delete` that asked for its deletion.
    delete_ms: Option<u64>,
    /// The end of the first list that no longer held it.
    gone_ms: Option<u64>,
    /// Every segment ID its status named.
    segments_seen: BTreeSet<String>,
}

struct Run<'a> {
    c: &'a Cluster,
    ns: String,
    objects: Vec<Tracked>,
    by_index: HashMap<usize, usize>,
    free_names: VecDeque<String>,
    names_reused: usize,
    needles: Arc<Needles>,
    secret_findings: Vec<String>,
    lists: usize,
    /// The objects present at the last successful list.
    present: Option<HashSet<String>>,
}

fn object_yaml(ns: &str, name: &str, o: &NewObject) -> String {
    let policy = if o.retain {
        "  deletionPolicy: Retain\n"
    } else if o.explicit_delete {
        "  deletionPolicy: Delete\n"
    } else {
        ""
    };
    segment_yaml(
        ns,
        name,
        &format!("  regionId: {REGION}\n  eipMask: {}\n  bandwidth: {}\n{policy}", o.mask, o.bandwidth),
    )
}

impl Run<'_> {
    fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
        let (ok, out, err) = self.c.kubectl_as(self.c.admin_kubeconfig(), args, stdin);
        if ok { Ok(out) } else { Err(err) }
    }

    /// Lists the namespace: records statuses, objects seen gone and secrets found. None if the list failed.
    fn observe(&mut self) -> Option<usize> {
        let out = self.kubectl(&["get", "eipsegments", "-n", &self.ns, "-o", "json"], None).ok()?;
        let end = now_ms();
        self.lists += 1;
        self.needles.scan("a list of the objects (their status)", &out, &mut self.secret_findings);
        let list: Value = serde_json::from_str(&out).ok()?;
        let items = list["items"].as_array()?;
        let mut present = HashSet::new();
        let by_uid: HashMap<String, usize> = self.objects.iter().enumerate().map(|(i, o)| (o.uid.clone(), i)).collect();
        for item in items {
            let uid = item["metadata"]["uid"].as_str().unwrap_or_default().to_string();
            if let (Some(&i), Some(seg)) = (by_uid.get(&uid), item["status"]["segmentInstanceId"].as_str()) {
                self.objects[i].segments_seen.insert(seg.to_string());
            }
            present.insert(uid);
        }
        for o in &mut self.objects {
            if o.delete_ms.is_some() && o.gone_ms.is_none() && !present.contains(&o.uid) {
                o.gone_ms = Some(end);
                self.free_names.push_back(o.name.clone());
            }
        }
        let n = items.len();
        self.present = Some(present);
        Some(n)
    }

    /// Observes about once a second for `d`.
    fn wait(&mut self, d: Duration) {
        let until = Instant::now() + d;
        loop {
            let started = Instant::now();
            self.observe();
            if Instant::now() >= until {
                return;
            }
            let left = until.saturating_duration_since(Instant::now());
            std::thread::sleep(Duration::from_millis(1000).saturating_sub(started.elapsed()).min(left));
        }
    }

    fn create(&mut self, wave_no: usize, wave: &Wave) {
        let mut names = Vec::new();
        for o in &wave.creates {
            let reused = if o.reuse_name { self.free_names.pop_front() } else { None };
            if reused.is_some() {
                self.names_reused += 1;
            }
            names.push(reused.unwrap_or_else(|| format!("seg-{:03}", o.index)));
        }
        let mut pending: Vec<usize> = (0..names.len()).collect();
        for attempt in 0.. {
            let docs: Vec<String> =
                pending.iter().map(|&k| object_yaml(&self.ns, &names[k], &wave.creates[k])).collect();
            let started = now_ms();
            let result = self.kubectl(&["create", "-f", "-", "-o", "json"], Some(&docs.join("---\n")));
            // Whatever was created (all, or some before an error) is in the namespace now.
            let listed = self.kubectl(&["get", "eipsegments", "-n", &self.ns, "-o", "json"], None).ok();
            let Some(listed) = listed.and_then(|l| serde_json::from_str::<Value>(&l).ok()) else {
                assert!(attempt < 20, "cannot list objects after creating wave {wave_no}");
                std::thread::sleep(Duration::from_secs(1));
                continue;
            };
            let known: HashSet<&str> = self.objects.iter().map(|o| o.uid.as_str()).collect();
            let mut created = Vec::new();
            for item in listed["items"].as_array().unwrap() {
                let (name, uid) =
                    (item["metadata"]["name"].as_str().unwrap(), item["metadata"]["uid"].as_str().unwrap());
                if let Some(&k) = pending.iter().find(|&&k| names[k] == name)
                    && !known.contains(uid)
                {
                    created.push((k, uid.to_string()));
                }
            }
            for (k, uid) in created {
                let o = &wave.creates[k];
                self.by_index.insert(o.index, self.objects.len());
                self.objects.push(Tracked {
                    index: o.index,
                    name: names[k].clone(),
                    uid,
                    retain: o.retain,
                    wave: wave_no,
                    created_ms: started,
                    delete_ms: None,
                    gone_ms: None,
                    segments_seen: BTreeSet::new(),
                });
                pending.retain(|&p| p != k);
            }
            if pending.is_empty() {
                return;
            }
            assert!(
                attempt < 20,
                "wave {wave_no}: cannot create {:?}: {:?}",
                pending.iter().map(|&k| &names[k]).collect::<Vec<_>>(),
                result.err()
            );
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// Asks for the deletion of these objects (by creation index) without waiting for it.
    fn delete(&mut self, indexes: &[usize]) {
        let mut pending: Vec<usize> = indexes
            .iter()
            .filter_map(|i| self.by_index.get(i).copied())
            .filter(|&k| self.objects[k].delete_ms.is_none())
            .collect();
        for attempt in 0.. {
            if pending.is_empty() {
                return;
            }
            let mut args = vec![
                "delete".to_string(),
                "eipsegments".into(),
                "-n".into(),
                self.ns.clone(),
                "--wait=false".into(),
                "--ignore-not-found".into(),
            ];
            args.extend(pending.iter().map(|&k| self.objects[k].name.clone()));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let before = now_ms();
            let result = self.kubectl(&args, None);
            if result.is_ok() {
                for &k in &pending {
                    self.objects[k].delete_ms = Some(before);
                }
                return;
            }
            // Some may have been deleted before the error: those carry a deletionTimestamp now, or are gone.
            if let Ok(out) = self.kubectl(&["get", "eipsegments", "-n", &self.ns, "-o", "json"], None) {
                let list: Value = serde_json::from_str(&out).unwrap();
                let deleting: HashMap<&str, bool> = list["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| (i["metadata"]["uid"].as_str().unwrap(), i["metadata"]["deletionTimestamp"].is_string()))
                    .collect();
                pending.retain(|&k| {
                    let done = deleting.get(self.objects[k].uid.as_str()).is_none_or(|&d| d);
                    if done {
                        self.objects[k].delete_ms = Some(before);
                    }
                    !done
                });
            }
            assert!(attempt < 20, "cannot delete objects: {:?}", result.err());
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

// ---- Checks ----------------------------------------------------------------------------------------

#[derive(Default, serde::Serialize)]
struct Violation {
    check: &'static str,
    what: String,
    object: Option<Tracked>,
    segments: Vec<Value>,
}

fn fmt_ms(t0_ms: u64, ms: u64) -> String {
    let at = chrono::DateTime::from_timestamp_millis(ms as i64)
        .map(|d| d.format("%H:%M:%S%.3f").to_string())
        .unwrap_or_default();
    format!("t+{:.3}s ({at}Z)", (ms as f64 - t0_ms as f64) / 1000.0)
}

/// The operator's own lines (not TRACE) about this object or its segments within `window` (epoch
/// ms), with the harness's restart markers, for a timeline.
fn log_lines(log: &Path, name: &str, keys: &[String], window: (u64, u64), limit: usize) -> Vec<String> {
    let Ok(f) = std::fs::File::open(log) else { return vec![] };
    let at_ms = |ts: &str| chrono::DateTime::parse_from_rfc3339(ts.trim()).ok().map(|d| d.timestamp_millis() as u64);
    let object = format!("object={name}");
    let mut out = Vec::new();
    let mut buf = Vec::new();
    let mut reader = BufReader::new(f);
    while reader.read_until(b'\n', &mut buf).unwrap_or(0) > 0 {
        let line = String::from_utf8_lossy(&buf).trim_end().to_string();
        buf.clear();
        let (ts, wanted) = if let Some(marker) = line.strip_prefix("---- chaos:") {
            (marker.rsplit(" at ").next().and_then(|t| at_ms(t.trim_end_matches('-'))), true)
        } else {
            let about = line.split(' ').any(|w| w == object) || keys.iter().any(|k| line.contains(k.as_str()));
            (
                line.split(' ').next().and_then(at_ms),
                about && line.contains("eipsegment_operator") && !line.contains(" TRACE "),
            )
        };
        if wanted && ts.is_some_and(|t| t >= window.0 && t <= window.1) {
            out.push(line.chars().take(400).collect());
        }
    }
    if out.len() > limit { out.split_off(out.len() - limit) } else { out }
}

/// Lines that say "panicked", and secrets, in the operator log (read line by line: it can be large).
fn scan_log(log: &Path, needles: &Needles, findings: &mut Vec<String>) -> (Vec<String>, u64, u64, u64) {
    let f = std::fs::File::open(log).expect("operator log");
    let mut reader = BufReader::with_capacity(1 << 20, f);
    let (mut panics, mut lines, mut bytes, mut trace) = (Vec::new(), 0u64, 0u64, 0u64);
    let mut counts = vec![0u64; needles.0.len()];
    let mut buf = Vec::new();
    while reader.read_until(b'\n', &mut buf).unwrap_or(0) > 0 {
        lines += 1;
        bytes += buf.len() as u64;
        let line = String::from_utf8_lossy(&buf);
        if line.contains("panicked") {
            panics.push(line.trim_end().to_string());
        }
        if line.contains(" TRACE ") {
            trace += 1;
        }
        for (i, (_, v)) in needles.0.iter().enumerate() {
            if line.contains(v.as_str()) {
                counts[i] += 1;
            }
        }
        buf.clear();
    }
    for (i, n) in counts.into_iter().enumerate() {
        if n > 0 {
            findings.push(format!("{} appears on {n} line(s) of the operator log {}", needles.0[i].0, log.display()));
        }
    }
    (panics, lines, bytes, trace)
}

fn main() {
    // As libtest would: `--list`, name filters (`cargo test decide` runs no chaos), `--ignored`.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        println!("chaos: test");
        return;
    }
    let mut filters = Vec::new();
    let mut skips = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--skip" => skips.extend(it.next()),
            "--test-threads" | "--format" | "--color" | "--logfile" | "-Z" => {
                it.next();
            }
            _ if !a.starts_with('-') => filters.push(a),
            _ => {}
        }
    }
    let exact = args.iter().any(|a| a == "--exact");
    let selected =
        filters.is_empty() || filters.iter().any(|f| if exact { *f == "chaos" } else { "chaos".contains(f.as_str()) });
    if !selected || skips.iter().any(|s| "chaos".contains(s.as_str())) || args.iter().any(|a| a == "--ignored") {
        println!("chaos: filtered out");
        return;
    }
    let profile = match std::env::var("CHAOS_PROFILE").as_deref() {
        Ok("long") => LONG,
        Ok("short") | Err(_) => SHORT,
        Ok(other) => panic!("CHAOS_PROFILE must be short or long, not {other:?}"),
    };
    let seed: u64 = std::env::var("CHAOS_SEED")
        .ok()
        .map(|s| s.parse().expect("CHAOS_SEED must be an integer"))
        .unwrap_or(DEFAULT_SEED);
    let plan = Plan::new(&profile, seed);
    println!(
        "chaos: profile {}, seed {seed} (reproduce with CHAOS_PROFILE={} CHAOS_SEED={seed} cargo test --test chaos): {} objects in {} waves, {} kills, apiserver restart after wave {} for {}s",
        profile.name,
        profile.name,
        profile.objects,
        plan.waves.len(),
        plan.kills.len(),
        plan.restart_after_wave + 1,
        plan.apiserver_down_s
    );
    println!("chaos: faults until the end of the waves: {} (operator call timeout 3 s)", faults());
    let t0 = Instant::now();
    let t0_ms = now_ms();

    let c = Cluster::shared();
    let ns = c.namespace("chaos");
    let needles = Arc::new(Needles::new(c));
    let sim = Simulator::start(&[
        "--seed",
        &seed.wrapping_add(2).to_string(),
        "--allocate-seconds",
        &profile.allocate_seconds.to_string(),
        "--release-seconds",
        &profile.release_seconds.to_string(),
        "--release-cooldown-seconds",
        "0.5",
    ]);
    let http = Http::new();
    http.admin(&sim, "PUT", "faults", Some(faults()));
    // The most verbose logging there is, for the secret check.
    let op = Arc::new(Mutex::new(Operator::start(c, &sim, &ns, &["--log-level", "trace"])));
    let log_path = op.lock().unwrap().log.clone();
    println!("chaos: cluster {}, simulator {}, operator log {}", c.dir.display(), sim.url, log_path.display());

    let stop = Arc::new(AtomicBool::new(false));
    let kills_done = Arc::new(AtomicBool::new(false));
    let supervisor = {
        let s = Supervisor {
            op: op.clone(),
            needles: needles.clone(),
            report: SupervisorReport::default(),
            http: Http::new(),
            stop: stop.clone(),
        };
        let (kills, done) = (plan.kills.clone(), kills_done.clone());
        std::thread::spawn(move || s.run(kills, done))
    };

    let mut run = Run {
        c,
        ns: ns.clone(),
        objects: Vec::new(),
        by_index: HashMap::new(),
        free_names: VecDeque::new(),
        names_reused: 0,
        needles: needles.clone(),
        secret_findings: Vec::new(),
        lists: 0,
        present: None,
    };
    let mut apiserver = json!(null);
    let mut deleted_during_chaos = 0;
    for (w, wave) in plan.waves.iter().enumerate() {
        run.create(w, wave);
        run.wait(Duration::from_millis(wave.pause_ms));
        run.delete(&wave.deletes);
        deleted_during_chaos += wave.deletes.len();
        if w == plan.restart_after_wave {
            let at = now_ms();
            c.restart_apiserver(Duration::from_secs(plan.apiserver_down_s));
            let back = now_ms();
            println!(
                "chaos: kube-apiserver restarted at {} (back after {:.1}s)",
                fmt_ms(t0_ms, at),
                (back - at) as f64 / 1000.0
            );
            apiserver = json!({"stoppedAtMs": at, "readyAtMs": back, "downSeconds": plan.apiserver_down_s});
        }
        run.wait(Duration::from_millis(wave.gap_ms));
        println!(
            "chaos: wave {}/{} at {}: {} created, {} deletions asked, {} objects listed",
            w + 1,
            plan.waves.len(),
            fmt_ms(t0_ms, now_ms()),
            wave.creates.len(),
            wave.deletes.len(),
            run.present.as_ref().map_or(0, HashSet::len)
        );
    }
    while !kills_done.load(Ordering::SeqCst) {
        run.wait(Duration::from_secs(1));
    }
    let chaos_end_ms = now_ms();

    // The cloud is healthy again: everything left goes.
    http.admin(&sim, "PUT", "faults", Some(json!({})));
    let faults_stopped = Instant::now();
    let faults_stopped_ms = now_ms();
    println!("chaos: faults stopped at {}; deleting the remaining objects", fmt_ms(t0_ms, faults_stopped_ms));
    let remaining: Vec<usize> = run.objects.iter().filter(|o| o.delete_ms.is_none()).map(|o| o.index).collect();
    run.delete(&remaining);
    let mut still_present = usize::MAX;
    while faults_stopped.elapsed() < DRAIN_LIMIT {
        if let Some(n) = run.observe() {
            still_present = n;
            if n == 0 {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    if still_present != 0 {
        still_present = run.observe().unwrap_or(still_present);
    }
    let drained_ms = now_ms();
    let drain_seconds = (still_present == 0).then(|| (drained_ms - faults_stopped_ms) as f64 / 1000.0);
    // Late answers (delays, retries) land within a few seconds; then the cloud's view is final.
    std::thread::sleep(Duration::from_secs(5));
    stop.store(true, Ordering::SeqCst);
    let sup = supervisor.join().expect("supervisor thread");

    let history = http.admin(&sim, "GET", "history", None)["segments"].as_array().cloned().expect("history segments");
    let state = http.admin(&sim, "GET", "state", None);
    let counters = http.admin(&sim, "GET", "counters", None);
    let events = c.kubectl(&["get", "events", "-A", "-o", "yaml"]);
    let mut secret_findings = sup.secret_findings.clone();
    secret_findings.extend(run.secret_findings.iter().cloned());
    needles.scan("events (kubectl get events -A -o yaml)", &events, &mut secret_findings);
    let (panics, log_lines_total, log_bytes, trace_lines) = scan_log(&log_path, &needles, &mut secret_findings);
    if trace_lines == 0 {
        secret_findings.push(format!(
            "no TRACE line in {}: the check of the most verbose logging proves nothing",
            log_path.display()
        ));
    }
    secret_findings.sort();
    secret_findings.dedup();
    let total_seconds = t0.elapsed().as_secs_f64();

    // ---- The cloud's history against what the run did ----
    let present_ids: HashSet<&str> =
        state["segments"].as_array().unwrap().iter().filter_map(|s| s["instanceId"].as_str()).collect();
    let final_objects = run.present.clone().unwrap_or_default();
    let by_uid: HashMap<&str, &Tracked> = run.objects.iter().map(|o| (o.uid.as_str(), o)).collect();
    let by_segment: HashMap<&str, &Value> =
        history.iter().filter_map(|s| Some((s["instanceId"].as_str()?, s))).collect();
    let mut violations: Vec<Violation> = Vec::new();
    let mut per_uid: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
    let (mut released_twice, mut out_of_band, mut retained_kept) = (0, 0, 0);
    for seg in &history {
        let id = seg["instanceId"].as_str().unwrap_or_default();
        let present = present_ids.contains(id);
        let releases: Vec<u64> = seg["releaseAcceptedAtMs"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default();
        if releases.len() > 1 {
            released_twice += 1;
        }
        if seg["removedOutOfBand"].as_bool() == Some(true) {
            out_of_band += 1;
        }
        let token = seg["allocationToken"].as_str();
        let object = token.and_then(|t| t.strip_prefix("alloc-")).and_then(|u| by_uid.get(u).copied());
        let Some(o) = object else {
            let (check, what) = if present {
                (
                    "leaked segments",
                    format!("{id} is in the cloud with ClientToken {token:?}, which names no object of the run"),
                )
            } else {
                (
                    "second allocations",
                    format!("{id} was allocated with ClientToken {token:?}, which names no object of the run"),
                )
            };
            violations.push(Violation { check, what, object: None, segments: vec![seg.clone()] });
            continue;
        };
        per_uid.entry(o.uid.as_str()).or_default().push(seg);
        if present && o.retain {
            retained_kept += 1;
        }
        if present && !o.retain && !final_objects.contains(&o.uid) && seg["removedOutOfBand"].as_bool() != Some(true) {
            violations.push(Violation {
                check: "leaked segments",
                what: format!("{id} of {} (Delete) is still in the cloud; the object is gone", o.name),
                object: Some(o.clone()),
                segments: vec![seg.clone()],
            });
        }
        let created = seg["createdAtMs"].as_u64().unwrap_or(0);
        if let Some(gone) = o.gone_ms.filter(|&g| created > g) {
            violations.push(Violation {
                check: "second allocations",
                what: format!(
                    "{id} was created at {}, after {} was seen gone at {}",
                    fmt_ms(t0_ms, created),
                    o.name,
                    fmt_ms(t0_ms, gone)
                ),
                object: Some(o.clone()),
                segments: vec![seg.clone()],
            });
        }
        for r in releases {
            let why = if o.retain {
                Some("the object has deletionPolicy Retain".to_string())
            } else {
                match o.delete_ms {
                    None => Some("its deletion was never asked for".to_string()),
                    Some(d) if r < d => Some(format!("its deletion was asked for at {}", fmt_ms(t0_ms, d))),
                    Some(_) => None,
                }
            };
            if let Some(why) = why {
                violations.push(Violation {
                    check: "premature releases",
                    what: format!("release of {id} ({}) accepted at {}; {why}", o.name, fmt_ms(t0_ms, r)),
                    object: Some(o.clone()),
                    segments: vec![seg.clone()],
                });
            }
        }
    }
    for (uid, segs) in &per_uid {
        if segs.len() > 1 {
            let o = by_uid[uid];
            for _ in 1..segs.len() {
                violations.push(Violation {
                    check: "second allocations",
                    what: format!("{} (uid {uid}) has {} segments", o.name, segs.len()),
                    object: Some(o.clone()),
                    segments: segs.iter().map(|s| (*s).clone()).collect(),
                });
            }
        }
    }
    for o in &run.objects {
        for sid in &o.segments_seen {
            let token = by_segment.get(sid.as_str()).and_then(|s| s["allocationToken"].as_str());
            if token != Some(&format!("alloc-{}", o.uid)) {
                violations.push(Violation {
                    check: "second allocations",
                    what: format!("{}'s status named {sid}, allocated with ClientToken {token:?}", o.name),
                    object: Some(o.clone()),
                    segments: by_segment.get(sid.as_str()).map(|s| vec![(*s).clone()]).unwrap_or_default(),
                });
            }
        }
    }
    for o in run.objects.iter().filter(|o| final_objects.contains(&o.uid)) {
        let segs = per_uid.get(o.uid.as_str()).map(|v| v.iter().map(|s| (*s).clone()).collect()).unwrap_or_default();
        violations.push(Violation {
            check: "objects present 2 min after the faults stopped",
            what: format!("{} still exists", o.name),
            object: Some(o.clone()),
            segments: segs,
        });
    }
    for p in &panics {
        violations.push(Violation { check: "operator panics", what: p.clone(), ..Default::default() });
    }
    for e in &sup.unexpected_exits {
        violations.push(Violation {
            check: "operator exits the run did not cause",
            what: format!("pid {} exited at {}: {}", e.pid, fmt_ms(t0_ms, e.at_ms), e.status),
            ..Default::default()
        });
    }
    for f in &secret_findings {
        violations.push(Violation { check: "secret hygiene", what: f.clone(), ..Default::default() });
    }
    // A run that met no chaos proves nothing.
    let sum_outcome = |outcome: &str| -> u64 {
        counters.as_object().unwrap().values().map(|o| o[outcome].as_u64().unwrap_or(0)).sum()
    };
    let injected = [
        ("5xx InternalError", sum_outcome("InternalError")),
        ("dropped connections", sum_outcome("Dropped")),
        ("throttling (Throttling.User)", sum_outcome("Throttling.User")),
    ];
    let mut undelivered = Vec::new();
    if sup.kills.len() < plan.kills.len() {
        undelivered.push(format!("{} of {} kills done", sup.kills.len(), plan.kills.len()));
    }
    if apiserver.is_null() {
        undelivered.push("no kube-apiserver restart".to_string());
    }
    for (what, n) in &injected {
        if *n == 0 {
            undelivered.push(format!("no fault injected of the kind {what}"));
        }
    }
    for u in undelivered {
        violations.push(Violation { check: "chaos not delivered", what: u, ..Default::default() });
    }

    // ---- The report ----
    let checks = [
        "leaked segments",
        "premature releases",
        "second allocations",
        "objects present 2 min after the faults stopped",
        "operator panics",
        "operator exits the run did not cause",
        "secret hygiene",
        "chaos not delivered",
    ];
    let check_values: Vec<(&str, usize)> =
        checks.iter().map(|&k| (k, violations.iter().filter(|v| v.check == k).count())).collect();
    let calls: BTreeMap<String, (u64, String)> = counters
        .as_object()
        .unwrap()
        .iter()
        .map(|(action, outcomes)| {
            let o = outcomes.as_object().unwrap();
            let total = o.values().filter_map(Value::as_u64).sum();
            let detail = o.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ");
            (action.clone(), (total, detail))
        })
        .collect();
    let segments_allocated = history.iter().filter(|s| s["allocationToken"].is_string()).count();
    // How close the chaos came to the moments that matter.
    let token_object = |s: &Value| {
        s["allocationToken"].as_str().and_then(|t| t.strip_prefix("alloc-")).and_then(|u| by_uid.get(u).copied())
    };
    let allocated_after_delete = history
        .iter()
        .filter(|s| {
            token_object(s).and_then(|o| o.delete_ms).is_some_and(|d| s["createdAtMs"].as_u64().unwrap_or(0) > d)
        })
        .count();
    let deleted_before_allocation = run.objects.iter().filter(|o| !per_uid.contains_key(o.uid.as_str())).count();
    let accepted: Vec<u64> = history
        .iter()
        .flat_map(|s| {
            s["createdAtMs"]
                .as_u64()
                .into_iter()
                .chain(s["releaseAcceptedAtMs"].as_array().into_iter().flatten().filter_map(Value::as_u64))
        })
        .collect();
    let kills_near_calls =
        sup.kills.iter().filter(|k| accepted.iter().any(|&a| a <= k.at_ms && k.at_ms - a <= 2000)).count();
    let releases_accepted: usize =
        history.iter().map(|s| s["releaseAcceptedAtMs"].as_array().map_or(0, Vec::len)).sum();

    let mut table = String::new();
    let w = 48;
    let line = format!("+{}+{}+\n", "-".repeat(w + 2), "-".repeat(12));
    table += &format!("chaos run: profile {}, seed {seed}\n", profile.name);
    table += &line;
    table += &format!("| {:<w$} | {:>10} |\n", "check (each must be 0)", "value");
    table += &line;
    for (k, v) in &check_values {
        table += &format!("| {:<w$} | {:>10} |\n", k, v);
    }
    table += &line;
    let mut figures: Vec<(String, String)> = vec![
        (
            "objects created (Retain)".into(),
            format!("{} ({})", run.objects.len(), run.objects.iter().filter(|o| o.retain).count()),
        ),
        ("names reused after their object was gone".into(), run.names_reused.to_string()),
        ("deletions asked during chaos / after".into(), format!("{deleted_during_chaos} / {}", remaining.len())),
        ("segments allocated / releases accepted".into(), format!("{segments_allocated} / {releases_accepted}")),
        ("objects deleted before any allocation".into(), deleted_before_allocation.to_string()),
        ("segments created after their deletion was asked".into(), allocated_after_delete.to_string()),
        ("segments released more than once".into(), released_twice.to_string()),
        ("Retain segments kept in the cloud".into(), retained_kept.to_string()),
        ("segments removed out of band".into(), out_of_band.to_string()),
        ("operator SIGKILLs".into(), sup.kills.len().to_string()),
        ("SIGKILLs <= 2 s after the cloud accepted an allocation or release".into(), kills_near_calls.to_string()),
        ("operator starts".into(), (sup.starts + 1).to_string()),
        (
            "kube-apiserver restarts".into(),
            if apiserver.is_null() { "0".into() } else { format!("1 (down {}s)", plan.apiserver_down_s) },
        ),
    ];
    for (k, v) in &injected {
        figures.push((format!("faults injected: {k}"), v.to_string()));
    }
    figures.push(("faults injected: delays (20%, 100-4000 ms)".into(), "not counted".into()));
    for (action, (total, _)) in &calls {
        figures.push((format!("cloud calls answered: {action}"), total.to_string()));
    }
    figures.extend([
        ("total duration".into(), format!("{total_seconds:.1} s")),
        ("start to faults stopping".into(), format!("{:.1} s", (faults_stopped_ms - t0_ms) as f64 / 1000.0)),
        (
            "faults stopped to all objects gone".into(),
            drain_seconds.map_or("not within 120 s".to_string(), |s| format!("{s:.1} s")),
        ),
        (
            "operator log lines (TRACE), size".into(),
            format!("{log_lines_total} ({trace_lines}), {:.1} MB", log_bytes as f64 / 1e6),
        ),
        ("lists, /metrics scrapes checked for secrets".into(), format!("{}, {}", run.lists, sup.scrapes)),
    ]);
    let fw = figures.iter().map(|(k, _)| k.len()).max().unwrap_or(10).max(w);
    let vw = figures.iter().map(|(_, v)| v.len()).max().unwrap_or(10).max(10);
    let fline = format!("+{}+{}+\n", "-".repeat(fw + 2), "-".repeat(vw + 2));
    table += &format!("\n{fline}| {:<fw$} | {:>vw$} |\n{fline}", "figure", "value");
    for (k, v) in &figures {
        table += &format!("| {k:<fw$} | {v:>vw$} |\n");
    }
    table += &fline;
    table += "cloud calls by outcome:\n";
    for (action, (_, detail)) in &calls {
        table += &format!("  {action}: {detail}\n");
    }
    println!("\n{table}");

    // Timelines of what went wrong.
    let mut details = String::new();
    for v in &violations {
        details += &format!("\n[{}] {}\n", v.check, v.what);
        if let Some(o) = &v.object {
            details += &format!(
                "  object {} uid {} wave {} retain {}: created {}, delete asked {}, seen gone {}; status named {:?}\n",
                o.name,
                o.uid,
                o.wave + 1,
                o.retain,
                fmt_ms(t0_ms, o.created_ms),
                o.delete_ms.map_or("never".into(), |d| fmt_ms(t0_ms, d)),
                o.gone_ms.map_or("never".into(), |d| fmt_ms(t0_ms, d)),
                o.segments_seen
            );
        }
        for s in &v.segments {
            let rel: Vec<String> = s["releaseAcceptedAtMs"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_u64).map(|r| fmt_ms(t0_ms, r)).collect())
                .unwrap_or_default();
            details += &format!(
                "  segment {} token {}: created {}, releases accepted {:?}, gone {}\n",
                s["instanceId"].as_str().unwrap_or("?"),
                s["allocationToken"],
                s["createdAtMs"].as_u64().map_or("?".into(), |c| fmt_ms(t0_ms, c)),
                rel,
                s["goneAtMs"].as_u64().map_or("never".into(), |g| fmt_ms(t0_ms, g))
            );
        }
        if let Some(o) = &v.object {
            let mut keys = vec![o.uid.clone()];
            keys.extend(v.segments.iter().filter_map(|s| s["instanceId"].as_str().map(String::from)));
            let window = (o.created_ms.saturating_sub(1000), o.gone_ms.unwrap_or(u64::MAX).saturating_add(5000));
            for l in log_lines(&log_path, &o.name, &keys, window, 80) {
                details += &format!("    | {l}\n");
            }
        }
    }
    if !violations.is_empty() {
        println!("violations:{details}");
    }

    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target").join("chaos");
    std::fs::create_dir_all(&dir).unwrap();
    let stem = format!("{}-seed{seed}", profile.name);
    let report = json!({
        "profile": profile,
        "seed": seed,
        "faults": faults(),
        "checks": check_values.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "figures": {
            "objectsCreated": run.objects.len(),
            "retainObjects": run.objects.iter().filter(|o| o.retain).count(),
            "namesReused": run.names_reused,
            "deletionsDuringChaos": deleted_during_chaos,
            "deletionsAfterFaults": remaining.len(),
            "segmentsAllocated": segments_allocated,
            "releasesAccepted": releases_accepted,
            "segmentsReleasedMoreThanOnce": released_twice,
            "objectsDeletedBeforeAnyAllocation": deleted_before_allocation,
            "segmentsCreatedAfterDeletionAsked": allocated_after_delete,
            "killsWithin2sOfAcceptedMutation": kills_near_calls,
            "retainSegmentsKept": retained_kept,
            "kills": sup.kills.len(),
            "operatorStarts": sup.starts + 1,
            "faultsInjected": injected.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "cloudCalls": counters,
            "totalSeconds": total_seconds,
            "chaosSeconds": (chaos_end_ms - t0_ms) as f64 / 1000.0,
            "drainSeconds": drain_seconds,
            "operatorLogLines": log_lines_total,
            "operatorLogBytes": log_bytes,
            "operatorLogTraceLines": trace_lines,
            "listsChecked": run.lists,
            "metricsScrapesChecked": sup.scrapes,
        },
        "apiserverRestart": apiserver,
        "startedAtMs": t0_ms,
        "faultsStoppedAtMs": faults_stopped_ms,
        "kills": sup.kills,
        "unexpectedExits": sup.unexpected_exits,
        "violations": violations,
        "objects": run.objects,
        "plan": plan,
    });
    let json_path = dir.join(format!("{stem}.json"));
    std::fs::write(&json_path, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    std::fs::write(dir.join(format!("{stem}.history.json")), serde_json::to_string_pretty(&history).unwrap()).unwrap();
    std::fs::write(
        dir.join(format!("{stem}.txt")),
        format!("{table}{}", if violations.is_empty() { String::new() } else { format!("violations:{details}") }),
    )
    .unwrap();
    // The cluster directory goes with this process: keep the operator's log for the timelines.
    let kept = dir.join(format!("{stem}.operator.log"));
    let _ = std::fs::copy(&log_path, &kept);
    println!("chaos: report in {}, operator log in {}", json_path.display(), kept.display());
    if !violations.is_empty() {
        drop(op);
        panic!("chaos run failed: {} violation(s)\n{table}", violations.len());
    }
}
