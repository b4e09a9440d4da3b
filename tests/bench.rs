//! The delete-storm benchmark (`make bench`): the real operator binary, a real kube-apiserver and the
//! VPC simulator with Alibaba's documented release limit, N EipSegments deleted in one stroke.
//!
//! Phases: set up N Ready objects with a fast setup-only allocation rate; restart the operator on its
//! defaults and measure what reconciling N Allocated segments costs; delete every object at once and
//! measure the time to all gone against the lower bound N / release-rate + release duration, the
//! cloud calls per segment, the confirmation latency, throttling, and the operator's RSS and CPU.
//! It prints a table and each target of the issue with PASS or FAIL, and writes the same figures
//! to `target/bench/bench-<N>.json`.
//!
//! Knobs (environment; `make bench` maps N, RELEASE_RATE, … onto them):
//! - `BENCH_N`: objects (unset: the smoke run below);
//! - `BENCH_RELEASE_RATE`: the cloud's ReleaseEipSegmentAddress limit per second (default 1, Alibaba's
//!   60 per 60 s); the operator's client-side rate stays at 95 % of it, as its default 0.95/s is of 1/s;
//! - `BENCH_RELEASE_SECONDS` (default 5), `BENCH_ALLOCATE_SECONDS` (default 2): cloud durations;
//! - `BENCH_SETTLE_SECONDS` (default 30): how long the restart phase waits when the operator has no
//!   `eipsegment_objects_ready` gauge;
//! - `BENCH_STRICT=1`: exit non-zero when a target fails.
//!
//! Without `BENCH_N` (as in `cargo test --all-targets`) it runs a smoke version: N = 30, a release
//! limit of 10/s, 2 s releases, and it asserts only the counts that cannot flake: every object gone,
//! exactly one ReleaseEipSegmentAddress per segment, no throttling, no mutating call on restart.

mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use eipsegment_operator::crd::EipSegment;
use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, ApiResource, DynamicObject, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde_json::{Value, json};
use support::*;

/// The operator's default client-side release rate as a share of the cloud's limit (0.95/s of 60/60 s).
const CLIENT_SHARE: f64 = 0.95;
const READY_GAUGE: &str = "eipsegment_objects_ready";
const MUTATING: &[&str] = &["AllocateEipSegmentAddress", "ReleaseEipSegmentAddress"];

struct Config {
    n: usize,
    smoke: bool,
    /// The cloud's release limit, calls per second.
    release_rate: f64,
    release_seconds: f64,
    allocate_seconds: f64,
    settle: Duration,
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
        Config {
            n,
            smoke,
            release_rate: env_f64("BENCH_RELEASE_RATE", if smoke { 10.0 } else { 1.0 }),
            release_seconds: env_f64("BENCH_RELEASE_SECONDS", if smoke { 2.0 } else { 5.0 }),
            allocate_seconds: env_f64("BENCH_ALLOCATE_SECONDS", if smoke { 1.0 } else { 2.0 }),
            settle: Duration::from_secs_f64(env_f64("BENCH_SETTLE_SECONDS", if smoke { 10.0 } else { 30.0 })),
            strict: std::env::var("BENCH_STRICT").is_ok_and(|v| v == "1"),
        }
    }

    /// The simulator's fixed window: calls per 60 s.
    fn cloud_calls_per_minute(&self) -> u32 {
        (self.release_rate * 60.0).round().max(1.0) as u32
    }

    /// The operator's flag, when the limit is not Alibaba's (there the operator's default holds).
    fn operator_release_flag(&self) -> Vec<String> {
        if self.cloud_calls_per_minute() == 60 {
            Vec::new()
        } else {
            vec!["--release-rate-per-second".into(), format!("{}", self.client_release_rate())]
        }
    }

    fn client_release_rate(&self) -> f64 {
        f64::from(self.cloud_calls_per_minute()) / 60.0 * CLIENT_SHARE
    }

    /// The least time the cloud allows: N releases at its rate, then one release duration.
    fn lower_bound(&self) -> f64 {
        self.n as f64 / (f64::from(self.cloud_calls_per_minute()) / 60.0) + self.release_seconds
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

fn throttled(c: &Counters) -> u64 {
    c.values().flat_map(|o| o.iter()).filter(|(outcome, _)| outcome.starts_with("Throttling")).map(|(_, n)| n).sum()
}

/// (peak RSS in MiB, CPU seconds) of a process, from /proc.
fn process_usage(pid: u32) -> (Option<f64>, Option<f64>) {
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status")).ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("VmHWM:")?.trim().strip_suffix("kB")?.trim().parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
    });
    let ticks: f64 = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0);
    let cpu = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok().and_then(|s| {
        // Fields after the command name, which may hold spaces: state is field 3, utime 14, stime 15.
        let rest = &s[s.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let utime: f64 = fields.get(11)?.parse().ok()?;
        let stime: f64 = fields.get(12)?.parse().ok()?;
        Some((utime + stime) / ticks)
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

/// What the watcher saw: objects present and when each disappeared (wall clock, ms).
#[derive(Default)]
struct Watched {
    present: HashSet<String>,
    relist: HashSet<String>,
    gone: HashMap<String, u64>,
    synced: bool,
}

/// Records each object's disappearance from Deleted events; an object missing from a re-list (after
/// a watch that could not resume) counts as gone when the re-list completes.
fn watch_deletions(rt: &tokio::runtime::Runtime, api: Api<DynamicObject>) -> Arc<Mutex<Watched>> {
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
                    w.present.insert(o.metadata.name.unwrap_or_default());
                }
                Ok(Event::Delete(o)) => {
                    let name = o.metadata.name.unwrap_or_default();
                    w.present.remove(&name);
                    w.gone.entry(name).or_insert(at);
                }
                Ok(Event::Init) => w.relist.clear(),
                Ok(Event::InitApply(o)) => {
                    w.relist.insert(o.metadata.name.unwrap_or_default());
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

fn is_ready_object(o: &DynamicObject) -> Option<String> {
    let status = o.data.get("status")?;
    let ready = status["conditions"].as_array()?.iter().any(|c| c["type"] == "Ready" && c["status"] == "True");
    ready.then(|| status["segmentInstanceId"].as_str().map(str::to_string)).flatten()
}

struct Target {
    name: String,
    measured: String,
    pass: bool,
    note: String,
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
    let per_minute = cfg.cloud_calls_per_minute();
    eprintln!(
        "bench: {} N = {}, cloud release limit {per_minute}/60 s, operator {:.2}/s, release {} s, allocate {} s",
        if cfg.smoke { "smoke," } else { "" },
        cfg.n,
        cfg.client_release_rate(),
        cfg.release_seconds,
        cfg.allocate_seconds
    );

    // ---- 1. Setup ---------------------------------------------------------------------------
    let c = Cluster::shared();
    let ns = c.namespace("bench");
    progress(start, &format!("control plane up; namespace {ns}"));
    let release_limit = format!("ReleaseEipSegmentAddress={per_minute}/60");
    let (release_seconds, allocate_seconds) = (cfg.release_seconds.to_string(), cfg.allocate_seconds.to_string());
    let sim = Simulator::start(&[
        "--rate-limit",
        &release_limit,
        "--release-seconds",
        &release_seconds,
        "--allocate-seconds",
        &allocate_seconds,
    ]);
    let kubeconfig = Kubeconfig::read_from(c.admin_kubeconfig()).expect("admin kubeconfig");
    let client: kube::Client = rt.block_on(async {
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.expect("kube config");
        kube::Client::try_from(config).expect("kube client")
    });
    let resource = ApiResource::erase::<EipSegment>(&());
    let api: Api<DynamicObject> = Api::namespaced_with(client, &ns, &resource);
    let names: Vec<String> = (0..cfg.n).map(|i| format!("seg-{i:05}")).collect();
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
    progress(start, &format!("{} EipSegments created", cfg.n));

    let mut setup_args = vec!["--allocate-rate-per-second".to_string(), "200".to_string()];
    setup_args.extend(cfg.operator_release_flag());
    let setup_args: Vec<&str> = setup_args.iter().map(String::as_str).collect();
    let quiet = [("RUST_LOG", "info")];
    let mut setup_op = Operator::start_with_defaults(c, &sim, &ns, &setup_args, &quiet);
    let setup_timeout = Duration::from_secs_f64(120.0 + cfg.n as f64 / 20.0 + cfg.allocate_seconds);
    let segment_of: HashMap<String, String> = eventually("every EipSegment Ready", setup_timeout, || {
        std::thread::sleep(Duration::from_secs(1));
        let list = rt.block_on(api.list(&ListParams::default())).ok()?;
        let ready: HashMap<String, String> =
            list.items.iter().filter_map(|o| Some((o.metadata.name.clone()?, is_ready_object(o)?))).collect();
        (ready.len() == cfg.n).then_some(ready)
    });
    progress(start, &format!("all {} Ready; stopping the setup operator with SIGTERM", cfg.n));
    assert!(setup_op.terminate(Duration::from_secs(30)), "the setup operator did not exit within 30 s of SIGTERM");

    // ---- 2. Restart on the defaults ------------------------------------------------------------
    let before_restart = counters(&sim);
    let restart_args = cfg.operator_release_flag();
    let restart_args: Vec<&str> = restart_args.iter().map(String::as_str).collect();
    let restart_started = Instant::now();
    let op = Operator::start_with_defaults(c, &sim, &ns, &restart_args, &quiet);
    let restart_timeout =
        if cfg.smoke { Duration::from_secs(30) } else { Duration::from_secs_f64(60.0 + cfg.n as f64 / 50.0) };
    let mut gauge_seen = false;
    let mut last_gauge = None;
    let restart_time: Option<f64> = loop {
        let (status, text) = op.scrape("/metrics");
        let value =
            text.lines().find_map(|l| l.strip_prefix(READY_GAUGE)?.strip_prefix(' ')?.trim().parse::<f64>().ok());
        gauge_seen |= value.is_some();
        last_gauge = value.or(last_gauge);
        if value.is_some_and(|v| v >= cfg.n as f64) {
            break Some(restart_started.elapsed().as_secs_f64());
        }
        let waited = restart_started.elapsed();
        if status == 200 && !gauge_seen && waited >= cfg.settle {
            progress(start, &format!("no {READY_GAUGE} gauge; counting the calls after {:?}", cfg.settle));
            break None;
        }
        if waited >= restart_timeout {
            progress(start, &format!("{READY_GAUGE} at {last_gauge:?} of {} after {waited:?}", cfg.n));
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let restart_cost = delta(&before_restart, &counters(&sim));
    progress(start, &format!("restart: reconciled in {restart_time:?} s; calls: {}", describe_counters(&restart_cost)));
    // Anything mutating the restart set off shows up within a moment.
    std::thread::sleep(Duration::from_secs(2));

    // ---- 3. Delete storm ------------------------------------------------------------------------
    let watched = watch_deletions(&rt, api.clone());
    eventually("the watcher's initial list", Duration::from_secs(60), || watched.lock().unwrap().synced.then_some(()));
    assert_eq!(watched.lock().unwrap().present.len(), cfg.n, "the watcher sees every object before the storm");
    let before_storm = counters(&sim);
    let restart_mutating: u64 = MUTATING.iter().map(|a| calls(&delta(&before_restart, &before_storm), a)).sum();
    let storm_started_ms = now_ms();
    let storm_started = Instant::now();
    progress(start, "kubectl delete eipsegments --all --wait=false");
    c.kubectl(&["delete", "eipsegments", "--all", "-n", &ns, "--wait=false"]);
    let issued_in = storm_started.elapsed().as_secs_f64();
    progress(start, &format!("deletions issued in {issued_in:.1} s; waiting for all to go"));
    let lower_bound = cfg.lower_bound();
    let storm_timeout = Duration::from_secs_f64(3.0 * lower_bound + 60.0);
    let mut reported = 0;
    loop {
        let gone = watched.lock().unwrap().gone.len();
        if gone >= cfg.n || storm_started.elapsed() > storm_timeout {
            break;
        }
        if gone >= reported + cfg.n.div_ceil(10).max(1) {
            progress(start, &format!("{gone} of {} gone", cfg.n));
            reported = gone;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let pid = op.pid().expect("operator running");
    let (peak_rss_mib, cpu_seconds) = process_usage(pid);
    let after_storm = counters(&sim);
    let storm = delta(&before_storm, &after_storm);
    let gone: HashMap<String, u64> = watched.lock().unwrap().gone.clone();
    let all_gone = gone.len() >= cfg.n;
    progress(start, &format!("storm over: {} of {} gone", gone.len(), cfg.n));

    // ---- Figures ----------------------------------------------------------------------------------
    let history = sim.admin("GET", "history", Value::Null);
    let by_id: HashMap<&str, &Value> = history["segments"]
        .as_array()
        .expect("history")
        .iter()
        .filter_map(|h| Some((h["instanceId"].as_str()?, h)))
        .collect();
    let completion =
        gone.values().max().map(|last| (*last as f64 - storm_started_ms as f64) / 1000.0).filter(|_| all_gone);
    let mut latencies = Vec::new();
    let mut unconfirmed = Vec::new();
    for (name, gone_ms) in &gone {
        let cloud_gone =
            segment_of.get(name).and_then(|id| by_id.get(id.as_str())).and_then(|h| h["goneAtMs"].as_u64());
        match cloud_gone {
            Some(cloud_ms) => latencies.push((*gone_ms as f64 - cloud_ms as f64) / 1000.0),
            None => unconfirmed.push(name.clone()),
        }
    }
    latencies.sort_by(f64::total_cmp);
    let (latency_median, latency_p99) = (median(&latencies), percentile(&latencies, 99.0));
    let releases_accepted: Vec<usize> = segment_of
        .values()
        .map(|id| by_id.get(id.as_str()).and_then(|h| h["releaseAcceptedAtMs"].as_array()).map_or(0, Vec::len))
        .collect();
    let segments_released_once = releases_accepted.iter().filter(|n| **n == 1).count();
    // When the cloud accepted the releases, from the start of the storm: pacing apart from confirmation.
    let mut accepted_at: Vec<f64> = segment_of
        .values()
        .filter_map(|id| by_id.get(id.as_str())?["releaseAcceptedAtMs"].as_array()?.first()?.as_u64())
        .map(|ms| (ms as f64 - storm_started_ms as f64) / 1000.0)
        .collect();
    accepted_at.sort_by(f64::total_cmp);
    let (first_release, last_release) = (accepted_at.first().copied(), accepted_at.last().copied());
    let achieved_rate = match (first_release, last_release) {
        (Some(a), Some(b)) if b > a => Some((accepted_at.len() - 1) as f64 / (b - a)),
        _ => None,
    };
    let n = cfg.n as f64;
    let release_calls = calls(&storm, "ReleaseEipSegmentAddress");
    let describe_calls = calls(&storm, "DescribeEipSegment");
    let other_actions: BTreeMap<String, u64> = storm
        .keys()
        .filter(|a| *a != "ReleaseEipSegmentAddress" && *a != "DescribeEipSegment")
        .map(|a| (a.clone(), calls(&storm, a)))
        .collect();
    let throttling_total = throttled(&after_storm);
    let restart_describes = calls(&restart_cost, "DescribeEipSegment");
    let restart_budget = cfg.n.div_ceil(50) as u64;
    let ratio = completion.map(|t| t / lower_bound);
    let client_bound = n / cfg.client_release_rate() + cfg.release_seconds;

    let fmt = |v: Option<f64>, unit: &str| v.map_or("n/a".to_string(), |v| format!("{v:.2}{unit}"));
    let mut rows: Vec<(String, String)> = vec![
        ("N".into(), cfg.n.to_string()),
        (
            "cloud release limit / operator rate".into(),
            format!("{per_minute}/60 s / {:.2}/s", cfg.client_release_rate()),
        ),
        ("release / allocate duration".into(), format!("{} s / {} s", cfg.release_seconds, cfg.allocate_seconds)),
        ("delete storm: completion".into(), fmt(completion, " s")),
        ("delete storm: lower bound N/rate + release".into(), format!("{lower_bound:.2} s")),
        ("delete storm: completion / lower bound".into(), fmt(ratio, "")),
        (
            "  (bound at the operator's own rate, ratio)".into(),
            format!("{client_bound:.2} s, {}", fmt(completion.map(|t| t / client_bound), "")),
        ),
        ("  (kubectl delete issuing time)".into(), format!("{issued_in:.2} s")),
        (
            "  (releases accepted: first, last, rate)".into(),
            format!("{}, {}, {}", fmt(first_release, " s"), fmt(last_release, " s"), fmt(achieved_rate, "/s")),
        ),
        ("objects gone".into(), format!("{} of {}", gone.len(), cfg.n)),
        (
            "storm calls/segment ReleaseEipSegmentAddress".into(),
            format!("{:.2} ({release_calls})", release_calls as f64 / n),
        ),
        (
            "storm calls/segment DescribeEipSegment".into(),
            format!("{:.2} ({describe_calls})", describe_calls as f64 / n),
        ),
    ];
    for (action, count) in &other_actions {
        rows.push((format!("storm calls/segment {action}"), format!("{:.2} ({count})", *count as f64 / n)));
    }
    if other_actions.is_empty() {
        rows.push(("storm calls/segment other actions".into(), "0.00 (0)".into()));
    }
    let storm_errors: Counters = storm
        .iter()
        .map(|(a, o)| (a.clone(), o.iter().filter(|(k, _)| *k != "Success").map(|(k, v)| (k.clone(), *v)).collect()))
        .collect();
    rows.extend([
        ("storm non-Success answers".into(), describe_counters(&storm_errors)),
        ("segments released exactly once (history)".into(), format!("{segments_released_once} of {}", cfg.n)),
        ("confirmation latency median".into(), fmt(latency_median, " s")),
        ("confirmation latency p99".into(), fmt(latency_p99, " s")),
        ("objects gone without a cloud goneAtMs".into(), unconfirmed.len().to_string()),
        ("throttling answers (all phases)".into(), throttling_total.to_string()),
        ("operator peak RSS (restart + storm)".into(), fmt(peak_rss_mib, " MiB")),
        ("operator CPU seconds (restart + storm)".into(), fmt(cpu_seconds, " s")),
        ("restart: time to all reconciled".into(), fmt(restart_time, " s")),
        ("restart: DescribeEipSegment calls".into(), restart_describes.to_string()),
        ("restart: mutating calls".into(), restart_mutating.to_string()),
        ("restart: all calls".into(), describe_counters(&restart_cost)),
    ]);

    let targets = vec![
        Target {
            name: "ReleaseEipSegmentAddress calls per segment = 1.00".into(),
            measured: format!("{:.2}", release_calls as f64 / n),
            pass: release_calls == cfg.n as u64 && segments_released_once == cfg.n,
            note: String::new(),
        },
        Target {
            name: "DescribeEipSegment calls per released segment <= 1.0".into(),
            measured: format!("{:.2}", describe_calls as f64 / n),
            pass: describe_calls as f64 <= n,
            note: String::new(),
        },
        Target {
            name: "confirmation latency median <= 2 s".into(),
            measured: fmt(latency_median, " s"),
            pass: latency_median.is_some_and(|m| m <= 2.0) && unconfirmed.is_empty(),
            note: String::new(),
        },
        Target {
            name: "delete-storm completion <= 1.1 x lower bound".into(),
            measured: fmt(ratio, " x"),
            pass: ratio.is_some_and(|r| r <= 1.1),
            note: String::new(),
        },
        Target {
            name: "throttling errors received = 0".into(),
            measured: throttling_total.to_string(),
            pass: throttling_total == 0,
            note: if per_minute == 60 { String::new() } else { format!("limit raised to {per_minute}/60 s") },
        },
        Target {
            name: "peak RSS <= 64 MiB".into(),
            measured: fmt(peak_rss_mib, " MiB"),
            pass: peak_rss_mib.is_some_and(|m| m <= 64.0),
            note: if cfg.n >= 10_000 { String::new() } else { "target is stated at N = 10,000".into() },
        },
        Target {
            name: format!("restart: <= ceil(N/50) = {restart_budget} DescribeEipSegment, no mutating call"),
            measured: format!("{restart_describes} Describe, {restart_mutating} mutating"),
            pass: restart_describes <= restart_budget && restart_mutating == 0,
            note: String::new(),
        },
    ];

    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    println!();
    println!("delete-storm benchmark{}", if cfg.smoke { " (smoke)" } else { "" });
    println!("{}", "-".repeat(width + 40));
    for (k, v) in &rows {
        println!("{k:<width$}  {v}");
    }
    let twidth = targets.iter().map(|t| t.name.len()).max().unwrap_or(0);
    println!();
    println!("{:<twidth$}  {:<22}  result", "target", "measured");
    println!("{}", "-".repeat(twidth + 40));
    for t in &targets {
        let note = if t.note.is_empty() { String::new() } else { format!("  ({})", t.note) };
        println!("{:<twidth$}  {:<22}  {}{note}", t.name, t.measured, if t.pass { "PASS" } else { "FAIL" });
    }
    println!();

    let report = json!({
        "smoke": cfg.smoke,
        "n": cfg.n,
        "cloudReleaseLimit": {"calls": per_minute, "perSeconds": 60},
        "operatorReleaseRatePerSecond": cfg.client_release_rate(),
        "releaseSeconds": cfg.release_seconds,
        "allocateSeconds": cfg.allocate_seconds,
        "deleteStorm": {
            "completionSeconds": completion,
            "lowerBoundSeconds": lower_bound,
            "ratio": ratio,
            "lowerBoundAtOperatorRateSeconds": client_bound,
            "ratioAtOperatorRate": completion.map(|t| t / client_bound),
            "releasesAccepted": {"firstSeconds": first_release, "lastSeconds": last_release, "ratePerSecond": achieved_rate},
            "kubectlDeleteSeconds": issued_in,
            "objectsGone": gone.len(),
            "callsByAction": storm,
            "callsPerSegment": storm.keys().map(|a| (a.clone(), calls(&storm, a) as f64 / n)).collect::<BTreeMap<_, _>>(),
            "segmentsReleasedExactlyOnce": segments_released_once,
            "confirmationLatencySeconds": {"median": latency_median, "p99": latency_p99, "samples": latencies.len(), "withoutCloudGoneTime": unconfirmed.len()},
        },
        "throttlingAnswers": throttling_total,
        "operator": {"peakRssMiB": peak_rss_mib, "cpuSeconds": cpu_seconds},
        "restart": {
            "secondsToAllReconciled": restart_time,
            "readyGaugePresent": gauge_seen,
            "describeCalls": restart_describes,
            "mutatingCalls": restart_mutating,
            "callsByAction": restart_cost,
        },
        "targets": targets.iter().map(|t| json!({"target": t.name, "measured": t.measured, "pass": t.pass, "note": t.note})).collect::<Vec<_>>(),
    });
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target").join("bench");
    std::fs::create_dir_all(&dir).expect("target/bench");
    let stem = if cfg.smoke { format!("smoke-{}", cfg.n) } else { format!("bench-{}", cfg.n) };
    let path = dir.join(format!("{stem}.json"));
    std::fs::write(&path, serde_json::to_string_pretty(&report).unwrap()).expect("write the report");
    let _ = std::fs::copy(&op.log, dir.join(format!("{stem}-operator.log")));
    println!("figures written to {}", path.display());
    progress(start, "done");

    if cfg.smoke {
        // Counts only: timing and Describe figures depend on the machine and on the polling design.
        assert!(all_gone, "every object is gone: {} of {}", gone.len(), cfg.n);
        assert_eq!(release_calls, cfg.n as u64, "one ReleaseEipSegmentAddress call per segment: {storm:?}");
        assert_eq!(segments_released_once, cfg.n, "each segment accepted exactly one release: {releases_accepted:?}");
        assert_eq!(throttling_total, 0, "no throttling answer: {after_storm:?}");
        assert_eq!(restart_mutating, 0, "no mutating call on restart: {restart_cost:?}");
    } else if !all_gone || (cfg.strict && targets.iter().any(|t| !t.pass)) {
        std::process::exit(1);
    }
}
