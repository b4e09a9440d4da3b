//! The benchmark (`make bench`): the real operator binary, a real kube-apiserver and the VPC
//! simulator limiting AllocateEipSegmentAddress and ReleaseEipSegmentAddress to a quota, under a
//! fixed window or a token bucket. Every phase in one run:
//!
//! 1. creation storm: N objects exist, the operator starts on its defaults, until all are Ready;
//! 2. restart: a new operator process with N Allocated, until its ready gauge counts N;
//! 3. steady state: that operator's drift checks over a few resync rounds (sped up, see below);
//! 4. delete storm: one `kubectl delete --all`, until every object is gone.
//!
//! Storms are measured against the cloud's floor for the limiter shape in force: for a fixed
//! window of Q calls per W s, (⌈N/Q⌉ − 1) × W + the change's duration; for a token bucket of
//! capacity Q refilled at Q/W per second, max(0, N − Q) × W/Q + the duration. It prints a table and
//! each target with PASS or FAIL, and writes the same figures to `target/bench/<run>.json`.
//!
//! Knobs (environment; `make bench` maps N, LIMITER, … onto them):
//! - `BENCH_N`: objects (unset: the smoke run below);
//! - `BENCH_LIMITER`: `window` (default) or `bucket`;
//! - `BENCH_QUOTA`: the cloud's quota of both mutating actions, CALLS/SECONDS (default 60/60,
//!   Alibaba's documented release limit); the operator is told the same quota, never the shape;
//! - `BENCH_READ_QUOTA`: the operator's quota of each Describe action, CALLS/SECONDS (unset: its
//!   defaults, 20/1 and 600/60), raised with the mutating quota for runs of thousands;
//! - `BENCH_RELEASE_SECONDS` (default 5), `BENCH_ALLOCATE_SECONDS` (default 2): cloud durations;
//! - `BENCH_RESYNC_SECONDS` (default 20), `BENCH_ROUNDS` (default 3): the steady state's sped-up
//!   drift interval and the rounds measured; CPU per hour between rounds is scaled to the default
//!   600 s interval both per interval and per second, and the larger figure is reported;
//! - `BENCH_STRICT=1`: exit non-zero when a target fails; `BENCH_RUST_LOG`: the operators' `RUST_LOG`;
//! - `BENCH_HEAP_PROFILE=1` (`make bench HEAP_PROFILE=1`): each operator under heaptrack (Debian's
//!   `heaptrack`), its profile in `target/bench/<run>-<phase>.heaptrack.gz`. It needs the
//!   `system-allocator` feature (heaptrack hooks malloc, which jemalloc bypasses), so RSS, CPU and
//!   times are then those of the C library's allocator under heaptrack, not the operator's own.
//!
//! Without `BENCH_N` (as in `cargo test --all-targets`) it runs a smoke version: N = 30, a quota of
//! 10 per 2 s, 1 s allocations, 2 s releases, rounds of 4 s. It asserts only counts: every object
//! Ready and gone, exactly one accepted call per segment, no throttling, no mutating call on
//! restart, and calls per phase within the checked-in baseline `tests/bench-baseline.json`
//! (`BENCH_WRITE_BASELINE=1` rewrites it from the run).

use eipsegment_test_support as support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use eipsegment_operator::crd::EipSegment;
use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde_json::{Value, json};
use support::*;

const READY_GAUGE: &str = "eipsegment_objects_ready";
const ALLOCATE: &str = "AllocateEipSegmentAddress";
const RELEASE: &str = "ReleaseEipSegmentAddress";
const DESCRIBE: &str = "DescribeEipSegment";
const MUTATING: &[&str] = &[ALLOCATE, RELEASE];
/// The operator's default drift interval, to which the steady state's CPU is scaled.
const DEFAULT_RESYNC_SECONDS: f64 = 600.0;

#[derive(Clone, Copy, PartialEq)]
enum Shape {
    Window,
    Bucket,
}

struct Config {
    n: usize,
    smoke: bool,
    shape: Shape,
    quota_calls: u32,
    quota_seconds: f64,
    read_quota: Option<String>,
    release_seconds: f64,
    allocate_seconds: f64,
    resync_seconds: f64,
    rounds: u32,
    strict: bool,
}

fn env_f64(name: &str, default: f64) -> f64 {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v.trim().parse().unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        _ => default,
    }
}

impl Config {
    fn from_env() -> Config {
        let n = std::env::var("BENCH_N").ok().filter(|v| !v.trim().is_empty());
        let smoke = n.is_none();
        let n = n.map_or(30, |v| v.trim().parse().unwrap_or_else(|_| panic!("BENCH_N={v:?} is not a count")));
        assert!(n > 0, "BENCH_N must be positive");
        let shape = match std::env::var("BENCH_LIMITER").as_deref().map(str::trim) {
            Err(_) | Ok("") | Ok("window") => Shape::Window,
            Ok("bucket") => Shape::Bucket,
            Ok(other) => panic!("BENCH_LIMITER={other:?}: window or bucket"),
        };
        let quota = std::env::var("BENCH_QUOTA").ok().filter(|v| !v.trim().is_empty());
        let quota = quota.unwrap_or_else(|| if smoke { "10/2" } else { "60/60" }.to_string());
        let (calls, seconds) = quota.split_once('/').unwrap_or_else(|| panic!("BENCH_QUOTA={quota:?}: CALLS/SECONDS"));
        Config {
            n,
            smoke,
            shape,
            quota_calls: calls.trim().parse().expect("BENCH_QUOTA calls"),
            quota_seconds: seconds.trim().parse().expect("BENCH_QUOTA seconds"),
            read_quota: std::env::var("BENCH_READ_QUOTA").ok().map(|q| q.trim().to_string()).filter(|q| !q.is_empty()),
            release_seconds: env_f64("BENCH_RELEASE_SECONDS", if smoke { 2.0 } else { 5.0 }),
            allocate_seconds: env_f64("BENCH_ALLOCATE_SECONDS", if smoke { 1.0 } else { 2.0 }),
            resync_seconds: env_f64("BENCH_RESYNC_SECONDS", if smoke { 4.0 } else { 20.0 }),
            rounds: env_f64("BENCH_ROUNDS", if smoke { 2.0 } else { 3.0 }) as u32,
            strict: std::env::var("BENCH_STRICT").is_ok_and(|v| v == "1"),
        }
    }

    fn quota(&self) -> String {
        format!("{}/{}", self.quota_calls, self.quota_seconds)
    }

    fn shape_name(&self) -> &'static str {
        match self.shape {
            Shape::Window => "fixed window",
            Shape::Bucket => "token bucket",
        }
    }

    /// The simulator's limit of both mutating actions, in the shape chosen.
    fn cloud_limit_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        for action in MUTATING {
            match self.shape {
                Shape::Window => args.extend(["--rate-limit".into(), format!("{action}={}", self.quota())]),
                Shape::Bucket => {
                    let refill = f64::from(self.quota_calls) / self.quota_seconds;
                    args.extend(["--token-bucket".into(), format!("{action}={}/{refill}", self.quota_calls)])
                }
            }
        }
        args
    }

    /// The operator is told the quota (its default when it is Alibaba's), never the shape.
    fn operator_quota_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if !(self.quota_calls == 60 && self.quota_seconds == 60.0) {
            args.extend(["--release-quota".into(), self.quota(), "--allocate-quota".into(), self.quota()]);
        }
        if let Some(read) = &self.read_quota {
            args.extend(["--describe-quota".into(), read.clone(), "--describe-addresses-quota".into(), read.clone()]);
        }
        args
    }

    /// The least time the cloud allows for N calls, then one change's duration.
    fn floor(&self, duration: f64) -> f64 {
        let (n, q, w) = (self.n as f64, f64::from(self.quota_calls), self.quota_seconds);
        duration
            + match self.shape {
                Shape::Window => ((n / q).ceil() - 1.0) * w,
                Shape::Bucket => (n - q).max(0.0) * w / q,
            }
    }

    fn floor_formula(&self) -> &'static str {
        match self.shape {
            Shape::Window => "(ceil(N/Q) - 1) x W + duration",
            Shape::Bucket => "max(0, N - Q) x W/Q + duration",
        }
    }

    /// The Describe calls a restart or a drift round may make: ceil(N/50).
    fn describe_budget(&self) -> u64 {
        self.n.div_ceil(50) as u64
    }

    fn run_name(&self) -> String {
        let shape = if self.shape == Shape::Window { "window" } else { "bucket" };
        if self.smoke { format!("smoke-{}", self.n) } else { format!("bench-{}-{shape}", self.n) }
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn progress(start: Instant, what: &str) {
    eprintln!("bench [{:>7.1}s] {what}", start.elapsed().as_secs_f64());
}

/// Calls per action and outcome.
type Counters = BTreeMap<String, BTreeMap<String, u64>>;

fn counters(sim: &Simulator) -> Counters {
    serde_json::from_value(sim.admin("GET", "counters", Value::Null)).expect("counters shape")
}

fn delta(before: &Counters, after: &Counters) -> Counters {
    let mut out = Counters::new();
    for (action, outcomes) in after {
        for (outcome, n) in outcomes {
            let was = before.get(action).and_then(|o| o.get(outcome)).copied().unwrap_or(0);
            if *n > was {
                out.entry(action.clone()).or_default().insert(outcome.clone(), n - was);
            }
        }
    }
    out
}

/// `Action/Outcome=n, …`, for the table.
fn describe_counters(c: &Counters) -> String {
    let parts: Vec<String> = c.iter().flat_map(|(a, o)| o.iter().map(move |(k, v)| format!("{a}/{k}={v}"))).collect();
    if parts.is_empty() { "none".into() } else { parts.join(", ") }
}

fn calls(c: &Counters, action: &str) -> u64 {
    c.get(action).map_or(0, |o| o.values().sum())
}

fn accepted(c: &Counters, action: &str) -> u64 {
    c.get(action).and_then(|o| o.get("Success")).copied().unwrap_or(0)
}

fn throttled(c: &Counters) -> u64 {
    c.values().flat_map(|o| o.iter()).filter(|(outcome, _)| outcome.starts_with("Throttling")).map(|(_, n)| n).sum()
}

/// Calls per action, all outcomes.
fn sent_by_action(c: &Counters) -> BTreeMap<String, u64> {
    c.keys().map(|a| (a.clone(), calls(c, a))).collect()
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// (peak RSS in MiB, CPU seconds) of a process, from /proc.
fn process_usage(pid: u32) -> (Option<f64>, Option<f64>) {
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status")).ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("VmHWM:")?.trim().strip_suffix("kB")?.trim().parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
    });
    let cpu = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok().and_then(|s| {
        // Fields after the command name, which may hold spaces: state is field 3, utime 14, stime 15.
        let rest = &s[s.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let utime: f64 = fields.get(11)?.parse().ok()?;
        let stime: f64 = fields.get(12)?.parse().ok()?;
        Some((utime + stime) / clock_ticks())
    });
    (rss, cpu)
}

fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn median(sorted: &[f64]) -> Option<f64> {
    match sorted.len() {
        0 => None,
        n if n % 2 == 1 => Some(sorted[n / 2]),
        n => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// What the watcher saw: objects present, when each first showed Ready with its segment, and when
/// each disappeared (wall clock, ms).
#[derive(Default)]
struct Watched {
    present: HashSet<String>,
    relist: HashSet<String>,
    ready: HashMap<String, (u64, String)>,
    /// Objects whose status lists their member addresses.
    members: HashSet<String>,
    gone: HashMap<String, u64>,
    synced: bool,
}

impl Watched {
    fn saw(&mut self, o: &DynamicObject, at: u64) -> String {
        let name = o.metadata.name.clone().unwrap_or_default();
        if let Some(segment) = ready_segment(o) {
            self.ready.entry(name.clone()).or_insert((at, segment));
        }
        if o.data["status"]["firstAddress"].is_string() {
            self.members.insert(name.clone());
        }
        name
    }
}

/// Records readiness and disappearance from watch events; an object missing from a re-list (after
/// a watch that could not resume) counts as gone when the re-list completes.
fn watch_objects(rt: &tokio::runtime::Runtime, api: Api<DynamicObject>) -> Arc<Mutex<Watched>> {
    let state = Arc::new(Mutex::new(Watched::default()));
    let shared = state.clone();
    rt.spawn(async move {
        let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            let at = now_ms();
            let mut w = shared.lock().unwrap();
            match event {
                Ok(Event::Apply(o)) => {
                    let name = w.saw(&o, at);
                    w.present.insert(name);
                }
                Ok(Event::Delete(o)) => {
                    let name = o.metadata.name.unwrap_or_default();
                    w.present.remove(&name);
                    w.gone.entry(name).or_insert(at);
                }
                Ok(Event::Init) => w.relist.clear(),
                Ok(Event::InitApply(o)) => {
                    let name = w.saw(&o, at);
                    w.relist.insert(name);
                }
                Ok(Event::InitDone) => {
                    let relist = std::mem::take(&mut w.relist);
                    let vanished: Vec<String> = w.present.difference(&relist).cloned().collect();
                    for name in vanished {
                        w.gone.entry(name).or_insert(at);
                    }
                    w.present = relist;
                    w.synced = true;
                }
                Err(e) => eprintln!("bench: watch error (retrying): {e}"),
            }
        }
    });
    state
}

fn ready_segment(o: &DynamicObject) -> Option<String> {
    let status = o.data.get("status")?;
    let ready = status["conditions"].as_array()?.iter().any(|c| c["type"] == "Ready" && c["status"] == "True");
    ready.then(|| status["segmentInstanceId"].as_str().map(str::to_string)).flatten()
}

struct Target {
    name: String,
    measured: String,
    pass: bool,
}

fn target(name: impl Into<String>, measured: impl Into<String>, pass: bool) -> Target {
    Target { name: name.into(), measured: measured.into(), pass }
}

fn fmt(v: Option<f64>, unit: &str) -> String {
    v.map_or("n/a".to_string(), |v| format!("{v:.2}{unit}"))
}

/// One storm's figures, against the cloud's floor for its action.
struct Storm {
    action: &'static str,
    completion: Option<f64>,
    floor: f64,
    calls: Counters,
    latencies: Vec<f64>,
    unconfirmed: usize,
    exactly_once: usize,
    /// Creation only: seconds until every object's status listed its member addresses (read after
    /// Ready, within their own quota).
    members_read: Option<f64>,
}

impl Storm {
    fn ratio(&self) -> Option<f64> {
        self.completion.map(|t| t / self.floor)
    }

    fn latency_median(&self) -> Option<f64> {
        median(&self.latencies)
    }

    fn rows(&self, cfg: &Config, rows: &mut Vec<(String, String)>) {
        let n = cfg.n as f64;
        let p = |what: &str| format!("{} storm: {what}", if self.action == ALLOCATE { "creation" } else { "delete" });
        rows.push((p("completion"), fmt(self.completion, " s")));
        rows.push((p(&format!("floor {}", cfg.floor_formula())), format!("{:.2} s", self.floor)));
        rows.push((p("completion / floor"), fmt(self.ratio(), "")));
        for (action, sent) in sent_by_action(&self.calls) {
            let ok = accepted(&self.calls, &action);
            rows.push((
                p(&format!("{action} sent / accepted per segment")),
                format!("{:.2} / {:.2} ({sent} / {ok})", sent as f64 / n, ok as f64 / n),
            ));
        }
        rows.push((p("throttling answers"), throttled(&self.calls).to_string()));
        rows.push((p("segments with exactly one accepted call"), format!("{} of {}", self.exactly_once, cfg.n)));
        rows.push((
            p("confirmation latency median / p99"),
            format!("{} / {}", fmt(self.latency_median(), " s"), fmt(percentile(&self.latencies, 99.0), " s")),
        ));
        rows.push((p("objects without a cloud time"), self.unconfirmed.to_string()));
        if self.action == ALLOCATE {
            rows.push((p("every member list read after"), fmt(self.members_read, " s")));
        }
    }

    fn targets(&self, cfg: &Config, targets: &mut Vec<Target>) {
        let n = cfg.n as f64;
        let what = if self.action == ALLOCATE { "creation" } else { "delete" };
        let (sent, ok) = (calls(&self.calls, self.action), accepted(&self.calls, self.action));
        targets.push(target(
            format!("{what} storm: completion <= 1.05 x floor"),
            fmt(self.ratio(), " x"),
            self.ratio().is_some_and(|r| r <= 1.05),
        ));
        targets.push(target(
            format!("{what} storm: accepted {} per segment = 1.00", self.action),
            format!("{:.2}", ok as f64 / n),
            ok == cfg.n as u64 && self.exactly_once == cfg.n,
        ));
        targets.push(target(
            format!("{what} storm: sent {} per segment <= 1.02", self.action),
            format!("{:.2}", sent as f64 / n),
            sent as f64 <= 1.02 * n,
        ));
        let describes = calls(&self.calls, DESCRIBE) as f64;
        targets.push(target(
            format!("{what} storm: {DESCRIBE} per segment <= 1.0"),
            format!("{:.2}", describes / n),
            describes <= n,
        ));
        targets.push(target(
            format!("{what} storm: confirmation latency median <= 1 s"),
            fmt(self.latency_median(), " s"),
            self.latency_median().is_some_and(|m| m <= 1.0) && self.unconfirmed == 0,
        ));
    }

    fn json(&self) -> Value {
        json!({
            "completionSeconds": self.completion,
            "floorSeconds": self.floor,
            "ratio": self.ratio(),
            "callsByAction": self.calls,
            "throttlingAnswers": throttled(&self.calls),
            "segmentsWithExactlyOneAcceptedCall": self.exactly_once,
            "confirmationLatencySeconds": {"median": self.latency_median(), "p99": percentile(&self.latencies, 99.0), "samples": self.latencies.len(), "withoutCloudTime": self.unconfirmed},
            "memberListsReadSeconds": self.members_read,
        })
    }
}

/// A running operator's peak RSS and CPU, kept when it stops.
#[derive(Default)]
struct Usage {
    peak_rss_mib: f64,
    /// Each process's own peak: the creation storm's, then the restarted one's.
    peaks_mib: Vec<f64>,
    cpu_seconds: f64,
}

impl Usage {
    fn add(&mut self, op: &Operator) {
        let (rss, cpu) = op.pid().map(process_usage).unwrap_or_default();
        self.peak_rss_mib = self.peak_rss_mib.max(rss.unwrap_or(0.0));
        self.peaks_mib.push(rss.unwrap_or(0.0));
        self.cpu_seconds += cpu.unwrap_or(0.0);
    }

    fn peaks(&self) -> String {
        self.peaks_mib.iter().map(|p| format!("{p:.1} MiB")).collect::<Vec<_>>().join(" / ")
    }

    fn rows(&self, rows: &mut Vec<(String, String)>) {
        rows.extend([
            ("operator peak RSS (all phases)".into(), format!("{:.1} MiB", self.peak_rss_mib)),
            ("operator peak RSS: creation storm / restart to delete storm".into(), self.peaks()),
            ("operator CPU (all phases)".into(), format!("{:.1} s", self.cpu_seconds)),
        ]);
    }

    fn targets(&self, targets: &mut Vec<Target>) {
        targets.push(target("peak RSS <= 48 MiB", format!("{:.1} MiB", self.peak_rss_mib), self.peak_rss_mib <= 48.0));
    }
}

/// CPU nanoseconds of each of the operator's threads, as the scheduler counts them (the ticks of
/// `/proc/PID/stat` are 10 ms, too coarse for a quiet half-second).
fn thread_cpu(op: &Operator) -> BTreeMap<u32, u64> {
    let Some(pid) = op.pid() else { return BTreeMap::new() };
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return BTreeMap::new() };
    tasks
        .flatten()
        .filter_map(|t| {
            let tid = t.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(t.path().join("schedstat")).ok()?;
            Some((tid, stat.split_whitespace().next()?.parse().ok()?))
        })
        .collect()
}

/// CPU seconds between two samples, over the threads alive at both (a thread that ended took its
/// count with it; one that began had nothing before).
fn cpu_between(before: &BTreeMap<u32, u64>, after: &BTreeMap<u32, u64>) -> f64 {
    let ns: u64 = after.iter().filter_map(|(tid, a)| Some(a.saturating_sub(*before.get(tid)?))).sum();
    ns as f64 / 1e9
}

struct Bench<'a> {
    cfg: &'a Config,
    start: Instant,
    c: &'static Cluster,
    sim: Simulator,
    ns: String,
    watched: Arc<Mutex<Watched>>,
    usage: Usage,
}

impl<'a> Bench<'a> {
    /// Setup: the simulator, and N objects created and watched; no operator yet.
    fn set_up(cfg: &'a Config, start: Instant, rt: &tokio::runtime::Runtime) -> Bench<'a> {
        let c = Cluster::shared();
        let ns = c.namespace("bench");
        progress(start, &format!("control plane up; namespace {ns}"));
        let sim = start_simulator(cfg);
        let api = eipsegments_api(rt, c, &ns);
        create_objects(rt, &api, &ns, cfg.n);
        let watched = watch_objects(rt, api);
        eventually("the watcher's initial list", Duration::from_secs(60), || {
            watched.lock().unwrap().synced.then_some(())
        });
        progress(start, &format!("{} EipSegments created", cfg.n));
        Bench { cfg, start, c, sim, ns, watched, usage: Usage::default() }
    }

    /// Phase 1, the creation storm; then its operator is stopped, its usage counted and its log kept.
    fn creation_phase(&mut self, dir: &std::path::Path) -> (Storm, Operator) {
        let (creation, mut first) = self.creation_storm();
        self.usage.add(&first);
        let _ = std::fs::copy(&first.log, dir.join(format!("{}-creation-operator.log", self.cfg.run_name())));
        assert!(first.terminate(Duration::from_secs(30)), "the first operator did not exit within 30 s of SIGTERM");
        (creation, first)
    }

    /// Phase 2, the restart: a new operator with every segment Allocated, until its ready gauge
    /// counts them all. It stays running for the steady state and the delete storm.
    fn restart_phase(&self) -> (Restart, Operator) {
        let before = counters(&self.sim);
        let started = Instant::now();
        let op = self.operator("restart", &["--resync-seconds".into(), self.cfg.resync_seconds.to_string()]);
        let restarted = restart(self, &op, &before, started);
        progress(
            self.start,
            &format!("restart: {:?} s; calls: {}", restarted.seconds, describe_counters(&restarted.calls)),
        );
        (restarted, op)
    }

    fn operator(&self, phase: &str, extra: &[String]) -> Operator {
        let mut args = self.cfg.operator_quota_args();
        args.extend(extra.iter().cloned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let log = std::env::var("BENCH_RUST_LOG").unwrap_or_else(|_| "info".into());
        let mut env = vec![("RUST_LOG".to_string(), log)];
        if std::env::var("BENCH_HEAP_PROFILE").is_ok_and(|v| v == "1") {
            env.extend(heap_profile(&format!("{}-{phase}", self.cfg.run_name())));
        }
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        Operator::start_with_defaults(self.c, &self.sim, &self.ns, &args, &env)
    }

    fn wait_until(&self, what: &str, timeout: Duration, done: impl Fn(&Watched) -> usize) -> bool {
        let started = Instant::now();
        let mut reported = 0;
        loop {
            let count = done(&self.watched.lock().unwrap());
            if count >= self.cfg.n {
                return true;
            }
            if started.elapsed() > timeout {
                progress(self.start, &format!("{what}: {count} of {} after {:?}", self.cfg.n, timeout));
                return false;
            }
            if count >= reported + self.cfg.n.div_ceil(10) {
                progress(self.start, &format!("{what}: {count} of {}", self.cfg.n));
                reported = count;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn history(&self) -> HashMap<String, Value> {
        let history = self.sim.admin("GET", "history", Value::Null);
        let segments = history["segments"].as_array().expect("history").iter();
        segments.filter_map(|h| Some((h["instanceId"].as_str()?.to_string(), h.clone()))).collect()
    }

    fn creation_storm(&mut self) -> (Storm, Operator) {
        let before = counters(&self.sim);
        let started_ms = now_ms();
        progress(self.start, "creation storm: the operator starts with every object waiting");
        let op = self.operator("creation", &[]);
        let floor = self.cfg.floor(self.cfg.allocate_seconds);
        let all_ready = self.wait_until("Ready", Duration::from_secs_f64(2.0 * floor + 120.0), |w| w.ready.len());
        // The member lists follow within their own quota; the restart starts with all of them read.
        let all_read = self
            .wait_until("member lists", Duration::from_secs_f64(60.0 + self.cfg.n as f64 / 5.0), |w| w.members.len());
        let members_read = all_read.then(|| (now_ms() - started_ms) as f64 / 1000.0);
        let calls = delta(&before, &counters(&self.sim));
        let history = self.history();
        let ready = self.watched.lock().unwrap().ready.clone();
        let completion = ready
            .values()
            .map(|(at, _)| *at)
            .max()
            .filter(|_| all_ready)
            .map(|last| (last - started_ms) as f64 / 1000.0);
        let mut latencies = Vec::new();
        let mut unconfirmed = 0;
        for (at, segment) in ready.values() {
            match history.get(segment).and_then(|h| h["createdAtMs"].as_u64()) {
                Some(created) => {
                    let allocated = created as f64 + self.cfg.allocate_seconds * 1000.0;
                    latencies.push((*at as f64 - allocated) / 1000.0);
                }
                None => unconfirmed += 1,
            }
        }
        latencies.sort_by(f64::total_cmp);
        let distinct: HashSet<&String> = ready.values().map(|(_, s)| s).collect();
        let exactly_once = if accepted(&calls, ALLOCATE) == distinct.len() as u64 { distinct.len() } else { 0 };
        (Storm { action: ALLOCATE, completion, floor, calls, latencies, unconfirmed, exactly_once, members_read }, op)
    }

    fn delete_storm(&mut self, op: &Operator) -> Storm {
        let before = counters(&self.sim);
        let started_ms = now_ms();
        progress(self.start, "delete storm: kubectl delete eipsegments --all --wait=false");
        self.c.kubectl(&["delete", "eipsegments", "--all", "-n", &self.ns, "--wait=false"]);
        let floor = self.cfg.floor(self.cfg.release_seconds);
        let all_gone = self.wait_until("gone", Duration::from_secs_f64(2.0 * floor + 120.0), |w| w.gone.len());
        self.usage.add(op);
        let calls = delta(&before, &counters(&self.sim));
        let history = self.history();
        let (ready, gone) = {
            let w = self.watched.lock().unwrap();
            (w.ready.clone(), w.gone.clone())
        };
        let completion =
            gone.values().max().filter(|_| all_gone).map(|last| (*last as f64 - started_ms as f64) / 1000.0);
        let mut latencies = Vec::new();
        let mut unconfirmed = 0;
        let mut exactly_once = 0;
        for (name, gone_ms) in &gone {
            let h = ready.get(name).and_then(|(_, segment)| history.get(segment));
            match h.and_then(|h| h["goneAtMs"].as_u64()) {
                Some(cloud_ms) => latencies.push((*gone_ms as f64 - cloud_ms as f64) / 1000.0),
                None => unconfirmed += 1,
            }
            if h.and_then(|h| h["releaseAcceptedAtMs"].as_array()).is_some_and(|a| a.len() == 1) {
                exactly_once += 1;
            }
        }
        latencies.sort_by(f64::total_cmp);
        Storm { action: RELEASE, completion, floor, calls, latencies, unconfirmed, exactly_once, members_read: None }
    }
}

/// The restart phase: time until the new operator's gauge counts every object, and its calls.
struct Restart {
    seconds: Option<f64>,
    calls: Counters,
}

impl Restart {
    fn rows(&self, rows: &mut Vec<(String, String)>) {
        rows.extend([
            ("restart: time to all reconciled".into(), fmt(self.seconds, " s")),
            ("restart: calls".into(), describe_counters(&self.calls)),
        ]);
    }

    fn targets(&self, cfg: &Config, targets: &mut Vec<Target>) {
        let budget = cfg.describe_budget();
        let describes = calls(&self.calls, DESCRIBE);
        let mutating: u64 = MUTATING.iter().map(|a| calls(&self.calls, a)).sum();
        targets.extend([
            target(
                "restart: all reconciled within 5 s",
                fmt(self.seconds, " s"),
                self.seconds.is_some_and(|s| s <= 5.0),
            ),
            target(
                format!("restart: <= 200 and <= ceil(N/50) = {budget} {DESCRIBE}, 0 mutating"),
                format!("{describes} Describe, {mutating} mutating"),
                describes <= budget.min(200) && mutating == 0,
            ),
        ]);
    }
}

fn restart(b: &Bench, op: &Operator, before: &Counters, started: Instant) -> Restart {
    let timeout = Duration::from_secs_f64(60.0 + b.cfg.n as f64 / 50.0);
    let seconds = loop {
        let (_, text) = op.scrape("/metrics");
        let value =
            text.lines().find_map(|l| l.strip_prefix(READY_GAUGE)?.strip_prefix(' ')?.trim().parse::<f64>().ok());
        if value.is_some_and(|v| v >= b.cfg.n as f64) {
            break Some(started.elapsed().as_secs_f64());
        }
        if started.elapsed() >= timeout {
            progress(b.start, &format!("restart: {READY_GAUGE} at {value:?} of {} after {timeout:?}", b.cfg.n));
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // Anything the restart set off shows up within a moment.
    std::thread::sleep(Duration::from_secs(2));
    Restart { seconds, calls: delta(before, &counters(&b.sim)) }
}

/// The steady state: calls per drift round and the operator's CPU, split into the rounds and the
/// quiet between them by whether a Describe call happened in each half-second.
struct Steady {
    calls: Counters,
    rounds: u32,
    round_cpu: f64,
    quiet_cpu: f64,
    quiet_seconds: f64,
}

impl Steady {
    fn describes_per_round(&self) -> f64 {
        calls(&self.calls, DESCRIBE) as f64 / f64::from(self.rounds)
    }

    fn other_calls(&self) -> u64 {
        self.calls.keys().filter(|a| *a != DESCRIBE).map(|a| calls(&self.calls, a)).sum()
    }

    /// CPU seconds per hour between rounds at the default drift interval, as an upper bound. What
    /// happens between the sped-up rounds happens either once per interval (a timer per interval),
    /// so that an hour at 600 s holds 6 intervals' worth, or all the time (leases, the watches'
    /// keep-alives), so that an hour holds 3,600 s of it: the figure is the larger scaling.
    fn cpu_per_hour_between_rounds(&self) -> f64 {
        let per_interval = 3600.0 / DEFAULT_RESYNC_SECONDS * self.quiet_cpu / f64::from(self.rounds);
        let per_second = if self.quiet_seconds > 0.0 { 3600.0 * self.quiet_cpu / self.quiet_seconds } else { 0.0 };
        per_interval.max(per_second)
    }

    /// The same for everything: the rounds (a scan per interval) and the quiet between them.
    fn cpu_per_hour(&self) -> f64 {
        3600.0 / DEFAULT_RESYNC_SECONDS * self.round_cpu / f64::from(self.rounds) + self.cpu_per_hour_between_rounds()
    }

    fn rows(&self, cfg: &Config, rows: &mut Vec<(String, String)>) {
        rows.extend([
            (
                format!("steady state: {DESCRIBE} per round ({} rounds of {} s)", cfg.rounds, cfg.resync_seconds),
                format!("{:.2}", self.describes_per_round()),
            ),
            ("steady state: other calls".into(), self.other_calls().to_string()),
            (
                "steady state: CPU per interval in rounds / between them".into(),
                format!(
                    "{:.3} s / {:.3} s",
                    self.round_cpu / f64::from(cfg.rounds),
                    self.quiet_cpu / f64::from(cfg.rounds)
                ),
            ),
            (
                "steady state: CPU per hour at 600 s, between rounds / all".into(),
                format!("{:.2} s / {:.2} s", self.cpu_per_hour_between_rounds(), self.cpu_per_hour()),
            ),
        ]);
    }

    fn targets(&self, cfg: &Config, targets: &mut Vec<Target>) {
        let budget = cfg.describe_budget();
        targets.extend([
            target(
                format!("steady state: <= ceil(N/50) = {budget} {DESCRIBE} per round, no other call"),
                format!("{:.2}, {} other", self.describes_per_round(), self.other_calls()),
                self.describes_per_round() <= budget as f64 && self.other_calls() == 0,
            ),
            target(
                "steady state: CPU between rounds <= 1 s per hour",
                format!("{:.2} s", self.cpu_per_hour_between_rounds()),
                self.cpu_per_hour_between_rounds() <= 1.0,
            ),
        ]);
    }
}

fn steady_state(b: &Bench, op: &Operator) -> Steady {
    // Rounds fall due every resync interval after the restart's own look; measuring from half an
    // interval on takes exactly `rounds` of them.
    let interval = Duration::from_secs_f64(b.cfg.resync_seconds);
    std::thread::sleep(interval / 2);
    progress(b.start, &format!("steady state: {} rounds of {} s", b.cfg.rounds, b.cfg.resync_seconds));
    let before = counters(&b.sim);
    let (mut round_cpu, mut quiet_cpu, mut quiet_seconds) = (0.0, 0.0, 0.0);
    let (mut cpu, mut describes) = (thread_cpu(op), calls(&before, DESCRIBE));
    let step = Duration::from_millis(500);
    let steps = (interval * b.cfg.rounds).as_millis() / step.as_millis();
    for _ in 0..steps {
        std::thread::sleep(step);
        let (now_cpu, now_describes) = (thread_cpu(op), calls(&counters(&b.sim), DESCRIBE));
        if now_describes > describes {
            round_cpu += cpu_between(&cpu, &now_cpu);
        } else {
            quiet_cpu += cpu_between(&cpu, &now_cpu);
            quiet_seconds += step.as_secs_f64();
        }
        (cpu, describes) = (now_cpu, now_describes);
    }
    Steady { calls: delta(&before, &counters(&b.sim)), rounds: b.cfg.rounds, round_cpu, quiet_cpu, quiet_seconds }
}

/// Calls per phase and action, the figure the baseline guards.
fn call_counts(creation: &Storm, restart: &Restart, steady: &Steady, delete: &Storm) -> Value {
    json!({
        "creationStorm": sent_by_action(&creation.calls),
        "restart": sent_by_action(&restart.calls),
        "steadyStatePerRound": steady.calls.keys().map(|a| (a.clone(), calls(&steady.calls, a).div_ceil(u64::from(steady.rounds)))).collect::<BTreeMap<_, _>>(),
        "deleteStorm": sent_by_action(&delete.calls),
    })
}

/// The environment that runs an operator under heaptrack's preload library, its record read as
/// it comes by heaptrack's interpreter into `target/bench/<name>.heaptrack.gz` (open it with
/// `heaptrack_print` or `heaptrack_gui`). heaptrack does what `heaptrack <program>` would, without
/// a shell between the bench and the operator, so that RSS and CPU stay the operator's own.
/// heaptrack hooks the C library's malloc, which jemalloc bypasses: the operator must be built
/// with the `system-allocator` feature (`make bench HEAP_PROFILE=1` does).
fn heap_profile(name: &str) -> Vec<(String, String)> {
    let system_allocator = cfg!(feature = "system-allocator");
    if !system_allocator {
        panic!(
            "BENCH_HEAP_PROFILE=1 needs the system-allocator feature (make bench HEAP_PROFILE=1): heaptrack sees nothing of jemalloc"
        );
    }
    let lib = std::env::var("BENCH_HEAPTRACK_LIB").unwrap_or_else(|_| "/usr/lib/heaptrack".into());
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&dir).expect("target/bench");
    let fifo = dir.join(format!("{name}.heaptrack.fifo"));
    let out = dir.join(format!("{name}.heaptrack.gz"));
    let _ = std::fs::remove_file(&fifo);
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success(), "mkfifo {}", fifo.display());
    let interpret = format!("'{lib}/libexec/heaptrack_interpret' < '{}' | gzip > '{}'", fifo.display(), out.display());
    let mut interpreter = Command::new("sh").args(["-c", &interpret]).spawn().expect("heaptrack_interpret");
    std::thread::spawn(move || interpreter.wait());
    eprintln!("bench: heap profile of the {name} operator: {}", out.display());
    vec![
        ("LD_PRELOAD".into(), format!("{lib}/libheaptrack_preload.so")),
        ("DUMP_HEAPTRACK_OUTPUT".into(), fifo.display().to_string()),
    ]
}

/// Each phase's calls of each action against the baseline: mutating calls exactly (none where the
/// baseline lists none), reads within half a call per segment more, since their timing varies
/// with the machine's load (a member list still unread when the first operator stops is read on
/// restart).
fn over_baseline(measured: &Value, baseline: &Value, n: u64) -> Vec<String> {
    let mut over = Vec::new();
    for (phase, actions) in measured.as_object().expect("phases") {
        for (action, count) in actions.as_object().expect("actions") {
            let count = count.as_u64().unwrap_or(0);
            let allowed = baseline[phase][action].as_u64().unwrap_or(0);
            let limit = if MUTATING.contains(&action.as_str()) { allowed } else { allowed + n / 2 };
            if count > limit {
                over.push(format!("{phase} {action}: {count} calls, baseline {allowed}"));
            }
        }
    }
    over
}

fn main() {
    // Test runners list a binary's tests first; this one has none to list.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let cfg = Config::from_env();
    let start = Instant::now();
    eipsegment_operator::cloud::client::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    announce(&cfg);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target").join("bench");
    std::fs::create_dir_all(&dir).expect("target/bench");

    let mut b = Bench::set_up(&cfg, start, &rt);
    // The stopped first operator is kept so that a later failure still prints its log's tail.
    let (creation, _first) = b.creation_phase(&dir);
    let (restarted, op) = b.restart_phase();
    let steady = steady_state(&b, &op);
    let delete = b.delete_storm(&op);
    progress(start, "storm over");

    let phases = Phases { creation, restarted, steady, delete };
    let targets = phases.targets(&cfg, &b.usage);
    print_figures(&cfg, &phases.rows(&cfg, &b.usage), &targets);
    let counts = call_counts(&phases.creation, &phases.restarted, &phases.steady, &phases.delete);
    let report = phases.report(&cfg, &b.usage, &counts, &targets);
    let path = dir.join(format!("{}.json", cfg.run_name()));
    std::fs::write(&path, serde_json::to_string_pretty(&report).unwrap()).expect("write the report");
    let _ = std::fs::copy(&op.log, dir.join(format!("{}-operator.log", cfg.run_name())));
    println!("figures written to {}", path.display());
    progress(start, "done");

    if cfg.smoke {
        smoke_checks(&cfg, &phases.creation, &phases.restarted, &phases.steady, &phases.delete, &counts);
    } else if phases.delete.completion.is_none() || (cfg.strict && targets.iter().any(|t| !t.pass)) {
        std::process::exit(1);
    }
}

fn announce(cfg: &Config) {
    eprintln!(
        "bench: {}N = {}, cloud quota {} s ({}) for Allocate and Release, allocate {} s, release {} s",
        if cfg.smoke { "smoke, " } else { "" },
        cfg.n,
        cfg.quota(),
        cfg.shape_name(),
        cfg.allocate_seconds,
        cfg.release_seconds
    );
}

/// The simulator started with the cloud's limits and durations.
fn start_simulator(cfg: &Config) -> Simulator {
    let mut sim_args = cfg.cloud_limit_args();
    sim_args.extend([
        "--release-seconds".into(),
        cfg.release_seconds.to_string(),
        "--allocate-seconds".into(),
        cfg.allocate_seconds.to_string(),
    ]);
    Simulator::start(&sim_args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// The namespace's EipSegments, through the control plane's admin kubeconfig.
fn eipsegments_api(rt: &tokio::runtime::Runtime, c: &Cluster, ns: &str) -> Api<DynamicObject> {
    let kubeconfig = Kubeconfig::read_from(c.admin_kubeconfig()).expect("admin kubeconfig");
    let client: kube::Client = rt.block_on(async {
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.expect("kube config");
        kube::Client::try_from(config).expect("kube client")
    });
    let resource = ApiResource::erase::<EipSegment>(&());
    Api::namespaced_with(client, ns, &resource)
}

/// Creates `n` EipSegments, `seg-00000` on, 16 requests at a time.
fn create_objects(rt: &tokio::runtime::Runtime, api: &Api<DynamicObject>, ns: &str, n: usize) {
    let names: Vec<String> = (0..n).map(|i| format!("seg-{i:05}")).collect();
    rt.block_on(async {
        futures::stream::iter(names.iter())
            .map(|name| {
                let api = api.clone();
                let obj: DynamicObject = serde_json::from_value(json!({
                    "apiVersion": "eipsegment.io/v1alpha1", "kind": "EipSegment",
                    "metadata": {"name": name, "namespace": ns},
                    "spec": {"regionId": REGION, "eipMask": 28, "deletionPolicy": "Delete"},
                }))
                .unwrap();
                async move { api.create(&PostParams::default(), &obj).await }
            })
            .buffer_unordered(16)
            .try_collect::<Vec<_>>()
            .await
            .expect("create EipSegments")
    });
}

/// Every phase's figures.
struct Phases {
    creation: Storm,
    restarted: Restart,
    steady: Steady,
    delete: Storm,
}

impl Phases {
    /// The table's rows: the run's settings, then each phase in the order it ran, then the operator.
    fn rows(&self, cfg: &Config, usage: &Usage) -> Vec<(String, String)> {
        let mut rows: Vec<(String, String)> = vec![
            ("N".into(), cfg.n.to_string()),
            ("cloud limiter / quota (Allocate, Release)".into(), format!("{} / {} s", cfg.shape_name(), cfg.quota())),
            ("allocate / release duration".into(), format!("{} s / {} s", cfg.allocate_seconds, cfg.release_seconds)),
        ];
        self.creation.rows(cfg, &mut rows);
        self.restarted.rows(&mut rows);
        self.steady.rows(cfg, &mut rows);
        self.delete.rows(cfg, &mut rows);
        usage.rows(&mut rows);
        rows
    }

    fn targets(&self, cfg: &Config, usage: &Usage) -> Vec<Target> {
        let mut targets = Vec::new();
        self.creation.targets(cfg, &mut targets);
        self.delete.targets(cfg, &mut targets);
        self.steady.targets(cfg, &mut targets);
        self.restarted.targets(cfg, &mut targets);
        usage.targets(&mut targets);
        targets
    }

    /// The figures as `target/bench/<run>.json` holds them.
    fn report(&self, cfg: &Config, usage: &Usage, counts: &Value, targets: &[Target]) -> Value {
        let Phases { creation, restarted, steady, delete } = self;
        json!({
            "smoke": cfg.smoke,
            "n": cfg.n,
            "cloudLimiter": {"shape": cfg.shape_name(), "calls": cfg.quota_calls, "seconds": cfg.quota_seconds, "actions": MUTATING},
            "allocateSeconds": cfg.allocate_seconds,
            "releaseSeconds": cfg.release_seconds,
            "creationStorm": creation.json(),
            "restart": {"secondsToAllReconciled": restarted.seconds, "callsByAction": restarted.calls},
            "steadyState": {
                "resyncSeconds": cfg.resync_seconds, "rounds": cfg.rounds, "callsByAction": steady.calls,
                "describePerRound": steady.describes_per_round(), "roundCpuSeconds": steady.round_cpu,
                "quietCpuSeconds": steady.quiet_cpu, "quietSeconds": steady.quiet_seconds,
                "cpuSecondsPerHourBetweenRoundsAtDefaultResync": steady.cpu_per_hour_between_rounds(),
                "cpuSecondsPerHourAtDefaultResync": steady.cpu_per_hour(),
            },
            "deleteStorm": delete.json(),
            "operator": {"peakRssMiB": usage.peak_rss_mib, "peakRssMiBByProcess": usage.peaks_mib, "cpuSeconds": usage.cpu_seconds},
            "callCounts": counts,
            "targets": targets.iter().map(|t| json!({"target": t.name, "measured": t.measured, "pass": t.pass})).collect::<Vec<_>>(),
        })
    }
}

/// The table of figures, then each target with PASS or FAIL.
fn print_figures(cfg: &Config, rows: &[(String, String)], targets: &[Target]) {
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    println!("\nbenchmark{}\n{}", if cfg.smoke { " (smoke)" } else { "" }, "-".repeat(width + 40));
    for (k, v) in rows {
        println!("{k:<width$}  {v}");
    }
    let twidth = targets.iter().map(|t| t.name.len()).max().unwrap_or(0);
    println!("\n{:<twidth$}  {:<24}  result\n{}", "target", "measured", "-".repeat(twidth + 40));
    for t in targets {
        println!("{:<twidth$}  {:<24}  {}", t.name, t.measured, if t.pass { "PASS" } else { "FAIL" });
    }
    if cfg.n < 1000 {
        println!("(the targets are stated at N = 1,000 and 10,000)");
    }
    println!();
}

/// Counts only: times depend on the machine.
fn smoke_checks(cfg: &Config, creation: &Storm, restart: &Restart, steady: &Steady, delete: &Storm, counts: &Value) {
    let n = cfg.n as u64;
    assert!(creation.completion.is_some(), "every object Ready");
    assert!(creation.members_read.is_some(), "every object's member list read");
    assert!(delete.completion.is_some(), "every object gone");
    for storm in [creation, delete] {
        assert_eq!(
            accepted(&storm.calls, storm.action),
            n,
            "one accepted {} per segment: {:?}",
            storm.action,
            storm.calls
        );
        assert_eq!(calls(&storm.calls, storm.action), n, "no {} re-sent: {:?}", storm.action, storm.calls);
        assert_eq!(storm.exactly_once, cfg.n, "each segment accepted exactly one {}", storm.action);
        assert_eq!(throttled(&storm.calls), 0, "no throttling answer: {:?}", storm.calls);
    }
    assert_eq!(MUTATING.iter().map(|a| calls(&restart.calls, a)).sum::<u64>(), 0, "no mutating call on restart");
    assert_eq!(steady.other_calls(), 0, "drift checks only: {:?}", steady.calls);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("bench-baseline.json");
    if std::env::var("BENCH_WRITE_BASELINE").is_ok_and(|v| v == "1") {
        std::fs::write(&path, serde_json::to_string_pretty(counts).unwrap() + "\n").expect("write the baseline");
        println!("baseline written to {}", path.display());
        return;
    }
    let baseline: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("tests/bench-baseline.json"))
        .expect("the baseline is JSON");
    let over = over_baseline(counts, &baseline, n);
    assert!(over.is_empty(), "calls beyond tests/bench-baseline.json:\n{}", over.join("\n"));
}
