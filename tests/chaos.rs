//! The chaos run, on the real stack: a control plane of its own (with kube-controller-manager's
//! garbage collector and namespace controller), the `vpc-simulator` binary and the
//! `eipsegment-operator` binary under its shipped RBAC, driven with kubectl.
//!
//! EipSegments spread over a few namespaces, which one operator watches (`--namespace` each, with
//! Secret-referenced credentials on), are created and deleted in waves (some deleted while still
//! allocating, some names reused once their object is gone, a few with `deletionPolicy: Retain`).
//! Each namespace has two credentials Secrets, `keys-a` (the default account's keys) and `keys-b`
//! (the other account's); the second namespace's default credentials Secret holds the other
//! account's keys too; objects name one of the two in `credentialsSecretRef` or take the default
//! (that Secret, else the operator's own keys), so segments live in both accounts. The operator's
//! Secret rights come from a RoleBinding per namespace that carries a finalizer, which the operator
//! removes once no EipSegment is left in a namespace being deleted (`--rbac-guard-rolebinding`).
//! Meanwhile:
//! - the operator is SIGKILLed at random moments and started again after a random pause;
//! - the simulated cloud answers 10% of calls with 5xx, drops 5% of connections (half before, half
//!   after the action ran), delays 20% (some past the operator's call timeout), throttles 5%, and
//!   replaces 5% of its successful answers with a malformed HTTP 200 (every shape), and half of them
//!   for 3 s after the second wave's deletions;
//! - the kube-apiserver is restarted once;
//! - credentials change: `keys-a` of a namespace gets the other account's keys (once every user not
//!   being deleted has recorded its account), or a wrong secret key, while one of its users (one
//!   with a segment in the cloud, if any) is being deleted, and its own keys back a few seconds later;
//! - the most used credentials Secret of a namespace is deleted by hand, and whole namespaces (with
//!   their objects and Secrets) are deleted;
//! - objects adopt (`spec.segmentInstanceId`, half with `deletionPolicy: Delete`, some from another
//!   namespace) a segment another live object holds, and half of those holders are deleted at the
//!   next wave;
//! - objects are removed behind the operator's back (the finalizer taken off, then the object
//!   deleted, with preconditions so the operator never sees the deletion) and re-applied from the
//!   manifest saved just before (spec, labels, identity annotations, with or without the
//!   finalizer, no status), as a backup restore does; a quarter of them in another namespace (a
//!   move), and half of them, when there is one, a holder whose segment a live adopter names.
//!
//! Then the faults stop, every remaining object is deleted, and the run holds the cloud's history
//! in both accounts (`GET /__admin/history?account=`, `GET /__admin/state?account=`) against what it
//! did. A segment is named by the object whose allocation token created it (tokens of every
//! incarnation: a restored object keeps the token of its annotations) and by each object adopting
//! it. Each check must be 0:
//! - leaked segments: in the cloud at the end while every object that named it is gone and none of
//!   them had Retain, or allocated with a ClientToken that names no object of the run;
//! - premature releases: a release accepted while an object that named the segment had not been
//!   asked to go (its holder, through a restore too, or an adopter), or when no object with the
//!   Delete policy that named it had been asked to go (Retain);
//! - second allocations: more than one segment per object across its incarnations, a segment with
//!   an adopter's token, a segment created after its object was seen gone, a released segment whose
//!   token names no object, a status naming a segment not allocated with one of the object's own
//!   tokens (or, for an adopter, not its target), an allocation token in status or annotations that
//!   is none of the object's;
//! - segments outside their object's account: a segment in another account than the one its object
//!   recorded, an object that recorded two accounts, or a segment of a third account;
//! - restored objects refused their own segment: an object whose earlier incarnation held a segment,
//!   re-applied with it in its identity annotations, that then reports SegmentInUse for it though no
//!   other object had taken it over by the re-application;
//! - credentials Secrets gone while in use: an object not being deleted still there after its
//!   credentials Secret was seen gone, or an object told its Secret does not exist while its status
//!   names a live segment or a pending allocation (except an object that took its segment on while
//!   its Secret was already being deleted by hand, which cannot hold it: it asks for the Secret
//!   again once it is gone, and the run creates it again, as a user would);
//! - stuck: objects, Secrets deleted by hand and deleted namespaces still there 2 minutes after the
//!   faults stop (with the finalizers that hold them, and whom they stand for);
//! - operator panics, and operator exits the run did not cause (it must ride out the apiserver restart);
//! - secret hygiene: both accounts' AccessKeySecrets and the wrong one (plain or base64), and the
//!   operator's Kubernetes token, never in any operator log (at trace level), event, object status
//!   or /metrics scrape;
//! - chaos not delivered: fewer kills than planned, no apiserver restart, no 5xx, drop, throttle or
//!   malformed answer, or a fault kind planned that never happened.
//!
//! `CHAOS_PROFILE=short` (the default, part of `make test`) or `long` (`make chaos`: 200 objects, at
//! least 50 kills). `CHAOS_SEED` (default 1) fixes the schedule: waves, namespaces and credentials
//! of the objects, which are deleted when, kill moments and pauses, the apiserver's downtime, the
//! moments of the other faults and the choices they make, and the simulator's fault rolls (`--seed`).
//! What the operator happens to be doing at each of those moments depends on timing. The report
//! (with what each fault kind met) is printed and written to `target/chaos/<profile>-seed<seed>.json`.
//! `CHAOS_PLAN_ONLY=1` prints the schedule of a profile and seed without running it.

use eipsegment_test_support as support;

#[path = "chaos/checks.rs"]
mod checks;
#[path = "chaos/hygiene.rs"]
mod hygiene;
#[path = "chaos/plan.rs"]
mod plan;
#[path = "chaos/run.rs"]
mod run;
#[path = "chaos/supervisor.rs"]
mod supervisor;

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::{Value, json};
use support::*;
use vpc_simulator::{DEFAULT_ACCOUNT, OTHER_ACCOUNT};

use checks::{Violation, *};
use hygiene::{Needles, scan_log};
use plan::{LONG, Plan, PlannedFault, SHORT, faults};
use run::{Run, SECRETS_BINDING, Tracked};
use supervisor::{Http, Supervisor, SupervisorReport};

const DEFAULT_SEED: u64 = 1;
/// The wave after whose deletions a burst of malformed answers comes, and how long it lasts.
const MALFORMED_BURST_WAVE: usize = 1;
const MALFORMED_BURST: Duration = Duration::from_secs(3);
/// How long faults still carried after the last wave may wait for something to act on.
const CARRY_LIMIT: Duration = Duration::from_secs(20);
/// How long objects, Secrets and namespaces may take to go once the cloud is healthy again.
const DRAIN_LIMIT: Duration = Duration::from_secs(120);

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

fn fmt_ms(t0_ms: u64, ms: u64) -> String {
    let at = chrono::DateTime::from_timestamp_millis(ms as i64)
        .map(|d| d.format("%H:%M:%S%.3f").to_string())
        .unwrap_or_default();
    format!("t+{:.3}s ({at}Z)", (ms as f64 - t0_ms as f64) / 1000.0)
}

/// The operator's own lines (not TRACE, nor the DEBUG lines of each fact gathered and each pass
/// ended) about this object or its segments within `window` (epoch ms), with the harness's restart
/// markers, for a timeline.
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
                about
                    && line.contains("eipsegment_operator")
                    && !line.contains(" TRACE ")
                    && !line.contains(": gathering object=")
                    && !line.contains("controller: reconciled object="),
            )
        };
        if wanted && ts.is_some_and(|t| t >= window.0 && t <= window.1) {
            out.push(line.chars().take(400).collect());
        }
    }
    if out.len() > limit { out.split_off(out.len() - limit) } else { out }
}

/// As libtest would: `--list`, name filters (`cargo test decide` runs no chaos), `--ignored`.
fn selected() -> bool {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        println!("chaos: test");
        return false;
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
    let chosen =
        filters.is_empty() || filters.iter().any(|f| if exact { *f == "chaos" } else { "chaos".contains(f.as_str()) });
    if !chosen || skips.iter().any(|s| "chaos".contains(s.as_str())) || args.iter().any(|a| a == "--ignored") {
        println!("chaos: filtered out");
        return false;
    }
    true
}

/// One row of the faults table: planned, happened, and what it met.
struct FaultRow {
    kind: &'static str,
    key: &'static str,
    planned: String,
    happened: usize,
    met: String,
    detail: Value,
}

fn main() {
    if !selected() {
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
        "chaos: profile {}, seed {seed} (reproduce with CHAOS_PROFILE={} CHAOS_SEED={seed} cargo test --test chaos): {} objects in {} namespaces in {} waves, {} kills, apiserver restart after wave {} for {}s",
        profile.name,
        profile.name,
        profile.objects,
        profile.namespaces,
        plan.waves.len(),
        plan.kills.len(),
        plan.restart_after_wave + 1,
        plan.apiserver_down_s
    );
    for (w, wave) in plan.waves.iter().enumerate() {
        if !wave.faults.is_empty() || wave.adoptions + wave.restores > 0 {
            println!(
                "chaos: wave {}: {:?}, {} adoption(s), {} restore(s)",
                w + 1,
                wave.faults,
                wave.adoptions,
                wave.restores
            );
        }
    }
    println!("chaos: faults until the end of the waves: {} (operator call timeout 3 s)", faults(&profile));
    if std::env::var_os("CHAOS_PLAN_ONLY").is_some() {
        println!("chaos: CHAOS_PLAN_ONLY is set: the schedule only\n{}", serde_json::to_string_pretty(&plan).unwrap());
        return;
    }
    let t0 = Instant::now();
    let t0_ms = now_ms();

    let c = Cluster::shared();
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
    http.admin(&sim, "PUT", "faults", Some(faults(&profile)));
    let mut run = Run::new(c, profile, needles.clone(), StdRng::seed_from_u64(seed.wrapping_add(3)));
    run.set_up();
    let names = run.namespace_names();
    // The most verbose logging there is, for the secret check.
    let mut extra: Vec<String> =
        ["--log-level", "trace", "--secret-credentials", "--rbac-guard-rolebinding", SECRETS_BINDING]
            .map(String::from)
            .to_vec();
    for ns in &names[1..] {
        extra.extend(["--namespace".to_string(), ns.clone()]);
    }
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let op = Arc::new(Mutex::new(Operator::start(c, &sim, &names[0], &extra)));
    let log_path = op.lock().unwrap().log.clone();
    println!(
        "chaos: cluster {}, simulator {}, namespaces {names:?}, operator log {}",
        c.dir.display(),
        sim.url,
        log_path.display()
    );

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

    let mut apiserver = json!(null);
    let mut deleted_during_chaos = 0;
    // Faults, adoptions and restores with nothing to do them on yet go to the next wave.
    let mut carried: Vec<PlannedFault> = Vec::new();
    let (mut adoptions_due, mut restores_due) = (0, 0);
    for (w, wave) in plan.waves.iter().enumerate() {
        run.create_wave(w, &wave.creates);
        restores_due += wave.restores;
        restores_due -= (0..restores_due).filter(|_| run.restore(w)).count();
        adoptions_due += wave.adoptions;
        adoptions_due -= (0..adoptions_due).filter(|_| run.adopt(w)).count();
        let (before, after): (Vec<PlannedFault>, Vec<PlannedFault>) = std::mem::take(&mut carried)
            .into_iter()
            .chain(wave.faults.iter().cloned())
            .partition(|f| !matches!(f, PlannedFault::DeleteNamespace { .. }));
        for f in before {
            if !run.fault(w, &f) {
                carried.push(f);
            }
        }
        run.wait(Duration::from_millis(wave.pause_ms));
        let ks = run.wave_deletions(&wave.deletes);
        run.delete(&ks, "wave");
        deleted_during_chaos += ks.len();
        // Half the answers malformed for a few seconds, so that every run meets some, whatever
        // the draws of the rate alone.
        if w == MALFORMED_BURST_WAVE {
            let mut burst = faults(&profile);
            burst["malformedRate"] = json!(0.5);
            http.admin(&sim, "PUT", "faults", Some(burst));
            run.wait(MALFORMED_BURST);
            http.admin(&sim, "PUT", "faults", Some(faults(&profile)));
        }
        for f in after {
            if !run.fault(w, &f) {
                carried.push(f);
            }
        }
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
            ks.len(),
            run.present.as_ref().map_or(0, HashSet::len)
        );
    }
    // What had nothing to act on until the last wave gets a little longer.
    let deadline = Instant::now() + CARRY_LIMIT;
    while !carried.is_empty() && Instant::now() < deadline {
        run.wait(Duration::from_secs(1));
        carried.retain(|f| !run.fault(plan.waves.len(), f));
    }
    run.revert_due(true);
    while !kills_done.load(Ordering::SeqCst) {
        run.wait(Duration::from_secs(1));
    }
    let chaos_end_ms = now_ms();

    // The cloud is healthy again: everything left goes.
    http.admin(&sim, "PUT", "faults", Some(json!({})));
    let faults_stopped = Instant::now();
    let faults_stopped_ms = now_ms();
    println!("chaos: faults stopped at {}; deleting the remaining objects", fmt_ms(t0_ms, faults_stopped_ms));
    let remaining = run.delete_remaining();
    let (mut objects_gone_ms, mut all_gone_ms) = (None, None);
    while faults_stopped.elapsed() < DRAIN_LIMIT {
        if run.observe().is_some() {
            let objects = run.present.as_ref().map_or(usize::MAX, HashSet::len);
            if objects == 0 && objects_gone_ms.is_none() {
                objects_gone_ms = Some(now_ms());
            }
            let secrets = run.fates.iter().filter(|f| f.gone_ms.is_none()).count();
            let namespaces = run.namespaces.iter().filter(|n| n.delete_ms.is_some() && n.gone_ms.is_none()).count();
            if objects == 0 && secrets == 0 && namespaces == 0 {
                all_gone_ms = Some(now_ms());
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    if all_gone_ms.is_none() {
        run.observe();
    }
    let drain = |at: Option<u64>| at.map(|t| (t - faults_stopped_ms) as f64 / 1000.0);
    let (objects_drain, all_drain) = (drain(objects_gone_ms), drain(all_gone_ms));
    // Late answers (delays, retries) land within a few seconds; then the cloud's view is final.
    std::thread::sleep(Duration::from_secs(5));
    stop.store(true, Ordering::SeqCst);
    let sup = supervisor.join().expect("supervisor thread");

    // ---- The cloud, account by account ----
    let mut history: Vec<Value> = Vec::new();
    let mut present_ids: HashSet<String> = HashSet::new();
    let mut per_account = BTreeMap::new();
    for account in [DEFAULT_ACCOUNT, OTHER_ACCOUNT] {
        let h = http.admin(&sim, "GET", &format!("history?account={account}"), None)["segments"]
            .as_array()
            .cloned()
            .expect("history segments");
        let s = http.admin(&sim, "GET", &format!("state?account={account}"), None);
        let ids: Vec<String> = s["segments"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s["instanceId"].as_str().map(String::from))
            .collect();
        let released: usize = h.iter().map(|s| s["releaseAcceptedAtMs"].as_array().map_or(0, Vec::len)).sum();
        per_account
            .insert(account, json!({"allocated": h.len(), "releasesAccepted": released, "leftInCloud": ids.len()}));
        history.extend(h);
        present_ids.extend(ids);
    }
    let all_history = http.admin(&sim, "GET", "history", None)["segments"].as_array().cloned().unwrap_or_default();
    let counters = http.admin(&sim, "GET", "counters", None);
    let events_json = c.kubectl(&["get", "events", "-A", "-o", "json"]);
    let mut secret_findings = sup.secret_findings.clone();
    secret_findings.extend(run.secret_findings.iter().cloned());
    needles.scan("events (kubectl get events -A)", &events_json, &mut secret_findings);
    let log = scan_log(&log_path, &needles, &mut secret_findings);
    if log.trace == 0 {
        secret_findings.push(format!(
            "no TRACE line in {}: the check of the most verbose logging proves nothing",
            log_path.display()
        ));
    }
    secret_findings.sort();
    secret_findings.dedup();
    let events: Vec<Value> = serde_json::from_str::<Value>(&events_json)
        .ok()
        .and_then(|v| v["items"].as_array().cloned())
        .unwrap_or_default();
    let mut event_reasons: BTreeMap<String, u64> = BTreeMap::new();
    for e in &events {
        *event_reasons.entry(e["reason"].as_str().unwrap_or_default().to_string()).or_default() +=
            e["count"].as_u64().unwrap_or(1);
    }
    let total_seconds = t0.elapsed().as_secs_f64();

    // ---- The checks ----
    let final_objects = run.present.clone().unwrap_or_default();
    let cloud = Cloud { history: &history, present: &present_ids };
    let (mut violations, seg_figures) = checks::segments(&run, &cloud, &final_objects, t0_ms);
    if all_history.len() != history.len() {
        violations.push(Violation {
            check: ACCOUNTS,
            what: format!(
                "the cloud holds {} segments in all, {} of them in the run's two accounts",
                all_history.len(),
                history.len()
            ),
            ..Default::default()
        });
    }
    let segments_of = |o: &Tracked| -> Vec<Value> {
        let tokens = o.tokens();
        history
            .iter()
            .filter(|s| {
                s["allocationToken"].as_str().is_some_and(|t| tokens.contains(t))
                    || s["instanceId"]
                        .as_str()
                        .is_some_and(|id| o.segments_seen.contains(id) || o.adopts.as_deref() == Some(id))
            })
            .cloned()
            .collect()
    };
    violations.extend(checks::stuck(&run, &final_objects, &segments_of, t0_ms));
    let (refused_restores, taken_in_the_gap) = checks::restores(&run, t0_ms);
    for mut r in refused_restores {
        r.segments = r.object.as_ref().map(&segments_of).unwrap_or_default();
        violations.push(r);
    }
    for (what, k) in run.credentials_lost.values() {
        let o = &run.objects[*k];
        violations.push(Violation {
            check: CREDENTIALS_LOST,
            what: what.clone(),
            object: Some(o.clone()),
            segments: segments_of(o),
        });
    }
    for p in &log.panics {
        violations.push(Violation { check: PANICS, what: p.clone(), ..Default::default() });
    }
    for e in &sup.unexpected_exits {
        violations.push(Violation {
            check: EXITS,
            what: format!("pid {} exited at {}: {}", e.pid, fmt_ms(t0_ms, e.at_ms), e.status),
            ..Default::default()
        });
    }
    for f in &secret_findings {
        violations.push(Violation { check: HYGIENE, what: f.clone(), ..Default::default() });
    }

    // ---- What each fault met ----
    let sum_outcome = |outcome: &str| -> u64 {
        counters.as_object().unwrap().values().map(|o| o[outcome].as_u64().unwrap_or(0)).sum()
    };
    let injected = [
        ("5xx InternalError", sum_outcome("InternalError")),
        ("dropped connections", sum_outcome("Dropped")),
        ("throttling (Throttling.User)", sum_outcome("Throttling.User")),
    ];
    let malformed: BTreeMap<String, u64> = counters
        .as_object()
        .unwrap()
        .iter()
        .filter_map(|(action, o)| o["Malformed"].as_u64().map(|n| (action.clone(), n)))
        .collect();
    let rows = fault_rows(&run, &plan, &malformed, &event_reasons, &profile, taken_in_the_gap);
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
    for r in &rows {
        if r.planned != "0" && r.happened == 0 {
            undelivered.push(format!("{} planned ({}), none happened", r.kind, r.planned));
        }
    }
    for u in undelivered {
        violations.push(Violation { check: NOT_DELIVERED, what: u, ..Default::default() });
    }

    // ---- The report ----
    let check_values: Vec<(&str, usize)> =
        CHECKS.iter().map(|&k| (k, violations.iter().filter(|v| v.check == k).count())).collect();
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
    let restored = run.objects.iter().filter(|o| o.incarnations.len() > 1).count();

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

    // The faults: planned, happened, met.
    let kw = rows.iter().map(|r| r.kind.len()).max().unwrap_or(10).max(5);
    let pw = rows.iter().map(|r| r.planned.len()).max().unwrap_or(7).max(7);
    table += &format!("\n{:<kw$} | {:>pw$} | {:>8} | what it met\n", "fault", "planned", "happened");
    table += &format!("{}-+-{}-+-{}-+-{}\n", "-".repeat(kw), "-".repeat(pw), "-".repeat(8), "-".repeat(40));
    for r in &rows {
        table += &format!("{:<kw$} | {:>pw$} | {:>8} | {}\n", r.kind, r.planned, r.happened, r.met);
    }

    let account_figure = |a: &str| {
        let v = &per_account[a];
        format!("{} / {} / {}", v["allocated"], v["releasesAccepted"], v["leftInCloud"])
    };
    let mut figures: Vec<(String, String)> = vec![
        (
            "objects created (Retain), adopters among them".into(),
            format!(
                "{} ({}), {}",
                run.objects.len(),
                run.objects.iter().filter(|o| o.retain).count(),
                run.objects.iter().filter(|o| o.adopts.is_some()).count()
            ),
        ),
        ("objects with credentials from keys-a / keys-b / their own".into(), {
            let n = |c: plan::Cred| run.objects.iter().filter(|o| o.cred == c).count();
            format!("{} / {} / {}", n(plan::Cred::KeysA), n(plan::Cred::KeysB), n(plan::Cred::Own))
        }),
        (
            "objects restored (incarnations in all)".into(),
            format!("{restored} ({})", run.objects.iter().map(|o| o.incarnations.len()).sum::<usize>()),
        ),
        ("names reused after their object was gone".into(), run.names_reused.to_string()),
        ("deletions asked during chaos / after".into(), format!("{deleted_during_chaos} / {remaining}")),
        ("segments allocated / releases accepted".into(), format!("{segments_allocated} / {releases_accepted}")),
        (format!("account {DEFAULT_ACCOUNT}: allocated / releases / left"), account_figure(DEFAULT_ACCOUNT)),
        (format!("account {OTHER_ACCOUNT}: allocated / releases / left"), account_figure(OTHER_ACCOUNT)),
        ("objects deleted before any allocation".into(), seg_figures.deleted_before_allocation.to_string()),
        ("segments created after their deletion was asked".into(), seg_figures.allocated_after_delete.to_string()),
        ("segments released more than once".into(), seg_figures.released_twice.to_string()),
        (
            "Retain segments kept in the cloud (by a Retain adopter)".into(),
            format!("{} ({})", seg_figures.retained_kept, seg_figures.kept_by_adopter),
        ),
        (
            "releases while a refused adopter still named the segment".into(),
            seg_figures.released_under_refused_adopter.to_string(),
        ),
        ("segments removed out of band".into(), seg_figures.out_of_band.to_string()),
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
    let selected_events =
        ["HandedOver", "NotOwner", "ClaimRefused", "AccountMismatch", "Retained", "Adopted", "NothingToRelease"];
    figures.push((
        "events (namespaces that stayed): ".to_string() + &selected_events.join(", "),
        selected_events
            .iter()
            .map(|r| event_reasons.get(*r).copied().unwrap_or(0).to_string())
            .collect::<Vec<_>>()
            .join(", "),
    ));
    figures.extend([
        ("total duration".into(), format!("{total_seconds:.1} s")),
        ("start to faults stopping".into(), format!("{:.1} s", (faults_stopped_ms - t0_ms) as f64 / 1000.0)),
        (
            "faults stopped to all objects gone / and Secrets, namespaces".into(),
            format!(
                "{} / {}",
                objects_drain.map_or("not within 120 s".to_string(), |s| format!("{s:.1} s")),
                all_drain.map_or("not within 120 s".to_string(), |s| format!("{s:.1} s"))
            ),
        ),
        (
            "operator log lines (TRACE), size".into(),
            format!("{} ({}), {:.1} MB", log.lines, log.trace, log.bytes as f64 / 1e6),
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
                "  object {}/{} wave {} retain {} adopts {:?} credentials {:?}: created {}, delete asked {} ({}), seen gone {}; \
                 incarnations {:?}; status named {:?}; tokens {:?}; accounts {:?}; errors {:?}; Ready reasons {:?}\n",
                o.namespace,
                o.name,
                o.wave + 1,
                o.retain,
                o.adopts,
                o.cred,
                fmt_ms(t0_ms, o.created_ms),
                o.delete_ms.map_or("never".into(), |d| fmt_ms(t0_ms, d)),
                o.deleted_by.unwrap_or("-"),
                o.gone_ms.map_or("never".into(), |d| fmt_ms(t0_ms, d)),
                o.incarnations.iter().map(|i| (&i.uid, i.removed_ms.map(|r| fmt_ms(t0_ms, r)))).collect::<Vec<_>>(),
                o.segments_seen,
                o.tokens_seen,
                o.accounts_seen,
                o.errors_seen,
                o.reasons_seen
            );
        }
        for s in &v.segments {
            let rel: Vec<String> = s["releaseAcceptedAtMs"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_u64).map(|r| fmt_ms(t0_ms, r)).collect())
                .unwrap_or_default();
            details += &format!(
                "  segment {} account {} token {}: created {}, releases accepted {:?}, gone {}\n",
                s["instanceId"].as_str().unwrap_or("?"),
                s["ownerAccount"].as_str().unwrap_or("?"),
                s["allocationToken"],
                s["createdAtMs"].as_u64().map_or("?".into(), |c| fmt_ms(t0_ms, c)),
                rel,
                s["goneAtMs"].as_u64().map_or("never".into(), |g| fmt_ms(t0_ms, g))
            );
        }
        if let Some(o) = &v.object {
            let mut keys: Vec<String> = o.incarnations.iter().map(|i| i.uid.clone()).collect();
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
        "faults": faults(&profile),
        "checks": check_values.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "faultKinds": rows.iter().map(|r| (r.key.to_string(), json!({
            "kind": r.kind, "planned": r.planned, "happened": r.happened, "met": r.met, "detail": r.detail,
        }))).collect::<serde_json::Map<_, _>>(),
        "figures": {
            "objectsCreated": run.objects.len(),
            "retainObjects": run.objects.iter().filter(|o| o.retain).count(),
            "objectsRestored": restored,
            "namesReused": run.names_reused,
            "deletionsDuringChaos": deleted_during_chaos,
            "deletionsAfterFaults": remaining,
            "segmentsAllocated": segments_allocated,
            "releasesAccepted": releases_accepted,
            "accounts": per_account,
            "segments": seg_figures,
            "killsWithin2sOfAcceptedMutation": kills_near_calls,
            "kills": sup.kills.len(),
            "operatorStarts": sup.starts + 1,
            "faultsInjected": injected.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "malformedAnswers": malformed,
            "events": event_reasons,
            "cloudCalls": counters,
            "totalSeconds": total_seconds,
            "chaosSeconds": (chaos_end_ms - t0_ms) as f64 / 1000.0,
            "drainSeconds": objects_drain,
            "drainAllSeconds": all_drain,
            "operatorLogLines": log.lines,
            "operatorLogBytes": log.bytes,
            "operatorLogTraceLines": log.trace,
            "listsChecked": run.lists,
            "metricsScrapesChecked": sup.scrapes,
        },
        "apiserverRestart": apiserver,
        "startedAtMs": t0_ms,
        "faultsStoppedAtMs": faults_stopped_ms,
        "kills": sup.kills,
        "unexpectedExits": sup.unexpected_exits,
        "violations": violations,
        "namespaces": run.namespaces,
        "secrets": run.fates,
        "switches": run.switches,
        "adoptions": run.adoptions,
        "restores": run.restores,
        "postponed": run.postponed,
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

/// Per fault kind: how many were planned, how many happened, and what they met.
fn fault_rows(
    run: &Run,
    plan: &Plan,
    malformed: &BTreeMap<String, u64>,
    events: &BTreeMap<String, u64>,
    p: &plan::Profile,
    taken_in_the_gap: usize,
) -> Vec<FaultRow> {
    let mut rows = Vec::new();
    for wrong in [false, true] {
        let done: Vec<&run::SwitchRecord> = run.switches.iter().filter(|s| s.wrong == wrong).collect();
        let met: Vec<String> = done.iter().flat_map(|s| s.met.iter().map(|(n, c)| format!("{n} ({c})"))).collect();
        let deleted: usize = done.iter().map(|s| s.users_deleted.len()).sum();
        rows.push(FaultRow {
            kind: if wrong { "keys-a switched to a wrong secret key" } else { "keys-a switched to the other account" },
            key: if wrong { "credentialSwitchWrongKey" } else { "credentialSwitchOtherAccount" },
            planned: plan.planned(|f| matches!(f, PlannedFault::Switch { wrong: w, .. } if *w == wrong)).to_string(),
            happened: done.len(),
            met: format!(
                "{deleted} user(s) deleted during it; {} met it: {met:?}{}",
                met.len(),
                if !wrong && run.substituted > 0 {
                    format!("; {} new object(s) took their own credentials meanwhile", run.substituted)
                } else {
                    String::new()
                }
            ),
            detail: json!({"switches": done, "substituted": if wrong { 0 } else { run.substituted }}),
        });
    }
    let by_hand: Vec<&run::SecretFate> = run.fates.iter().filter(|f| f.by == "hand").collect();
    let holders: usize = by_hand.iter().map(|f| f.holders.len()).sum();
    rows.push(FaultRow {
        kind: "credentials Secret in use deleted by hand",
        key: "secretDeletion",
        planned: plan.planned(|f| *f == PlannedFault::DeleteSecret).to_string(),
        happened: by_hand.len(),
        met: format!(
            "{holders} holder(s) when deleted; seen Terminating: {}; gone by the end: {}; created again as an object \
             that took its segment on meanwhile asked: {:?}",
            by_hand.iter().filter(|f| f.terminating_seen).count(),
            by_hand.iter().filter(|f| f.gone_ms.is_some()).count(),
            run.recreated
        ),
        detail: json!({"fates": by_hand, "recreated": run.recreated}),
    });
    let deleted: Vec<&run::Namespace> = run.namespaces.iter().filter(|n| n.delete_ms.is_some()).collect();
    rows.push(FaultRow {
        kind: "namespace deleted",
        key: "namespaceDeletion",
        planned: plan.planned(|f| matches!(f, PlannedFault::DeleteNamespace { .. })).to_string(),
        happened: deleted.len(),
        met: format!(
            "{} object(s) and {} Secret(s) in them; gone by the end: {}",
            deleted.iter().map(|n| n.objects_deleted).sum::<usize>(),
            deleted.iter().map(|n| n.secrets_deleted).sum::<usize>(),
            deleted.iter().filter(|n| n.gone_ms.is_some()).count()
        ),
        detail: json!(deleted),
    });
    rows.push(FaultRow {
        kind: "malformed 2xx answer",
        key: "malformedAnswers",
        planned: if p.malformed_rate > 0.0 { format!("{:.0}%", p.malformed_rate * 100.0) } else { "0".into() },
        happened: malformed.values().sum::<u64>() as usize,
        met: format!("{malformed:?} (every shape may be drawn; the simulator counts them by action)"),
        detail: json!(malformed),
    });
    let adopter = |a: &run::AdoptionRecord| &run.objects[a.adopter_k];
    let refused = run.adoptions.iter().filter(|a| adopter(a).reasons_seen.contains("SegmentInUse")).count();
    let took = run.adoptions.iter().filter(|a| adopter(a).segments_seen.contains(&a.segment)).count();
    let handovers = run
        .adoptions
        .iter()
        .filter(|a| {
            let (ad, h) = (adopter(a), &run.objects[a.holder_k]);
            h.delete_ms.is_some_and(|d| ad.delete_ms.is_none_or(|ad| ad > d))
        })
        .count();
    rows.push(FaultRow {
        kind: "duplicate adoption",
        key: "duplicateAdoptions",
        planned: p.adoptions.to_string(),
        happened: run.adoptions.len(),
        met: format!(
            "{} with Delete, {} in another namespace than the holder; {refused} refused (SegmentInUse); {handovers} \
             holder(s) deleted while the adopter lived; {took} took the segment over; HandedOver events {}",
            run.adoptions.iter().filter(|a| a.delete_policy).count(),
            run.adoptions.iter().filter(|a| a.namespace != a.holder_namespace).count(),
            events.get("HandedOver").copied().unwrap_or(0)
        ),
        detail: json!(run.adoptions),
    });
    let back = run
        .restores
        .iter()
        .filter(|r| {
            let o = &run.objects[r.object];
            let inc = o.incarnations.iter().find(|i| i.uid == r.new_uid);
            r.segment.as_ref().is_some_and(|s| inc.is_some_and(|i| i.segments.contains(s)))
        })
        .count();
    let refused_own = run
        .restores
        .iter()
        .filter(|r| {
            let inc = run.objects[r.object].incarnations.iter().find(|i| i.uid == r.new_uid);
            inc.is_some_and(|i| i.reasons.contains("SegmentInUse"))
        })
        .count();
    rows.push(FaultRow {
        kind: "restore-style re-creation",
        key: "restores",
        planned: p.restores.to_string(),
        happened: run.restores.len(),
        met: format!(
            "{} kept the finalizer, {} were moves to another namespace; {} named a segment ({} one a live adopter \
             named), {back} came back to it, {refused_own} were refused it ({taken_in_the_gap} by an object that took it \
             over while they were gone); {} needed more than one removal try; failures {:?}",
            run.restores.iter().filter(|r| r.kept_finalizer).count(),
            run.restores.iter().filter(|r| r.moved_to.is_some()).count(),
            run.restores.iter().filter(|r| r.segment.is_some()).count(),
            run.restores.iter().filter(|r| r.contested).count(),
            run.restores.iter().filter(|r| r.tries > 1).count(),
            run.restore_failures
        ),
        detail: json!(run.restores),
    });
    rows
}
