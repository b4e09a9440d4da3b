//! The chaos run, on the real stack: a control plane of its own (with kube-controller-manager's
//! garbage collector and namespace controller), the `vpc-simulator` binary and the
//! `eipsegment-operator` binary under its shipped RBAC, driven with kubectl.
//!
//! EipSegments spread over a few victims' namespaces, which one operator watches (`--namespace`
//! each, with Secret-referenced credentials and a tenancy policy on), are created and deleted in waves (some deleted while still
//! allocating, some names reused once their object is gone, a few with `deletionPolicy: Retain`).
//! Each namespace has two credentials Secrets, `keys-a` (the default account's keys) and `keys-b`
//! (the other account's); the second namespace's default credentials Secret holds the other
//! account's keys too; objects name one of the two in `credentialsSecretRef` or take the default
//! (that Secret, else the operator's own keys), so segments live in both accounts. The operator's
//! Secret rights come from a RoleBinding per namespace that carries a finalizer, which the operator
//! removes once no EipSegment is left in a namespace being deleted (`--rbac-guard-rolebinding`).
//! The tenancy policy (`--tenancy-policy`) is the shared profile, with a rule that lets the victims'
//! namespaces do everything and one that lets a hostile tenant's namespace adopt, with Delete: it
//! has its own `keys-a` and `keys-b` (the cloud accounts are shared) but not the operator's keys,
//! and allocates at most a /28. Meanwhile:
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
//!   manifest saved just before (spec, labels, identity annotations and their proof, with or
//!   without the finalizer, no status), as a backup restore does, in their own namespace (the proof
//!   holds for it alone: a copy elsewhere is what the hostile tenant does); half of them, when there
//!   is one, a holder whose segment a live adopter names;
//! - the hostile tenant aims at a live victim holding a segment under Delete: it copies the victim's
//!   identity annotations and proof onto an object of the victim's name in its namespace, forges
//!   them (the victim's segment ID, account and `alloc-<victim UID>`, credentials source Operator,
//!   a proof of the right shape; with keys of the victim's account or none), adopts the victim's
//!   segment with `deletionPolicy: Delete`, or claims it where it can never be established (the
//!   other account's keys, a Secret that does not exist); it deletes each object a wave or two
//!   later, once the operator has looked at it, and half of the claims' victims go meanwhile.
//!
//! Then the faults stop, every remaining object is deleted, and the run holds the cloud's history
//! in both accounts (`GET /__admin/history?account=`, `GET /__admin/state?account=`) against what it
//! did. A segment is named by the object whose allocation token created it (tokens of every
//! incarnation: a restored object keeps the token of its annotations) and by each object adopting
//! it; its keepers are its allocator and the victims' adopters of the same namespace or that took it
//! over (another namespace's adopter holds no release back, and the hostile tenant keeps nothing).
//! Each check must be 0, and those about segments and tenants are also shown per namespace:
//! - leaked segments: in the cloud at the end while every keeper is gone and none had Retain, or
//!   allocated with a ClientToken that names no object of the run;
//! - premature releases: a release accepted while a keeper had not been asked to go (its holder,
//!   through a restore too, or an adopter), or when no keeper with the Delete policy had (Retain);
//! - segments released more than once (with no leak, a deleted object's segment is released exactly
//!   once);
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
//! - victim segments the hostile tenant held: a status of its objects naming a segment or an
//!   allocation token that is not the object's own;
//! - hostile objects acting with others' keys: the operator's credentials (its policy denies them),
//!   or an account its own keys are not of (none, for an object given none);
//! - releases held back by another namespace: a deletion that waited for an object of another
//!   namespace naming its segment;
//! - identity annotations misjudged: an object of the hostile tenant with copied or forged
//!   annotations that the operator looked at but never reported unproven (IdentityProven=False or
//!   an UnprovenIdentity event), or any other object reported so;
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
#[path = "chaos/delivery.rs"]
mod delivery;
#[path = "chaos/evidence.rs"]
mod evidence;
#[path = "chaos/hostile.rs"]
mod hostile;
#[path = "chaos/hygiene.rs"]
mod hygiene;
#[path = "chaos/plan.rs"]
mod plan;
#[path = "chaos/report.rs"]
mod report;
#[path = "chaos/run.rs"]
mod run;
#[path = "chaos/supervisor.rs"]
mod supervisor;
#[path = "chaos/tenants.rs"]
mod tenants;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::{Value, json};
use support::*;

use delivery::Delivery;
use evidence::Evidence;
use hygiene::Needles;
use plan::{LONG, Plan, PlannedFault, Profile, SHORT, Wave, faults};
use report::Report;
use run::{Run, SECRETS_BINDING};
use supervisor::{Http, Supervising, Supervisor};

const DEFAULT_SEED: u64 = 1;
/// The wave after whose deletions a burst of malformed answers comes, and how long it lasts.
const MALFORMED_BURST_WAVE: usize = 1;
const MALFORMED_BURST: Duration = Duration::from_secs(3);
/// How long faults still carried after the last wave may wait for something to act on.
const CARRY_LIMIT: Duration = Duration::from_secs(20);
/// How long objects, Secrets and namespaces may take to go once the cloud is healthy again.
const DRAIN_LIMIT: Duration = Duration::from_secs(120);

fn main() {
    if !selected() {
        return;
    }
    let (profile, seed) = profile_and_seed();
    let plan = Plan::new(&profile, seed);
    print_schedule(&profile, seed, &plan);
    if std::env::var_os("CHAOS_PLAN_ONLY").is_some() {
        println!("chaos: CHAOS_PLAN_ONLY is set: the schedule only\n{}", serde_json::to_string_pretty(&plan).unwrap());
        return;
    }
    let t0 = Instant::now();
    let t0_ms = now_ms();

    // The stack: cluster, simulator, the run's namespaces and Secrets, the operator and its supervisor.
    let c = Cluster::shared();
    let needles = Arc::new(Needles::new(c));
    let sim = start_simulator(&profile, seed);
    let http = Http::new();
    http.admin(&sim, "PUT", "faults", Some(faults(&profile)));
    let mut run = Run::new(c, profile, needles.clone(), StdRng::seed_from_u64(seed.wrapping_add(3)));
    run.set_up();
    let op = start_operator(c, &sim, &run);
    let log_path = op.lock().unwrap().log.clone();
    let supervisor = Supervisor::spawn(&op, &needles, plan.kills.clone());

    // The chaos, then the end of it.
    let stage = Stage { c, sim: &sim, http: &http, profile: &profile, plan: &plan, t0_ms };
    let chaos = stage.chaos(&mut run, &supervisor);
    let drain = stage.drain(&mut run);
    let sup = supervisor.finish();

    // What the run holds against what it did.
    let evidence = Evidence::gather(c, &http, &sim, &needles, &log_path, &run, &sup);
    let total_seconds = t0.elapsed().as_secs_f64();
    let mut findings = checks::all(&run, &evidence, &sup, t0_ms);
    let delivery = Delivery::count(&run, &plan, &profile, &evidence, findings.taken_in_the_gap);
    findings.violations.extend(delivery.undelivered(&sup, &plan, !chaos.apiserver.is_null()));

    let report = Report {
        profile: &profile,
        seed,
        plan: &plan,
        t0_ms,
        total_seconds,
        run: &run,
        sup: &sup,
        chaos: &chaos,
        drain: &drain,
        evidence: &evidence,
        findings: &findings,
        delivery: &delivery,
        log_path: &log_path,
    };
    let table = report.publish();
    if !findings.violations.is_empty() {
        drop(op);
        // Last, so that a log cut to its tail still names what failed.
        let headlines: String = findings.violations.iter().map(|v| format!("\n  [{}] {}", v.check, v.what)).collect();
        panic!("chaos run failed: {} violation(s)\n{table}\nviolations:{headlines}", findings.violations.len());
    }
}

// ---- Before the run ----

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

/// `CHAOS_PROFILE` and `CHAOS_SEED`.
fn profile_and_seed() -> (Profile, u64) {
    let profile = match std::env::var("CHAOS_PROFILE").as_deref() {
        Ok("long") => LONG,
        Ok("short") | Err(_) => SHORT,
        Ok(other) => panic!("CHAOS_PROFILE must be short or long, not {other:?}"),
    };
    let seed: u64 = std::env::var("CHAOS_SEED")
        .ok()
        .map(|s| s.parse().expect("CHAOS_SEED must be an integer"))
        .unwrap_or(DEFAULT_SEED);
    (profile, seed)
}

fn print_schedule(profile: &Profile, seed: u64, plan: &Plan) {
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
    println!("chaos: faults until the end of the waves: {} (operator call timeout 3 s)", faults(profile));
}

fn start_simulator(profile: &Profile, seed: u64) -> Simulator {
    Simulator::start(&[
        "--seed",
        &seed.wrapping_add(2).to_string(),
        "--allocate-seconds",
        &profile.allocate_seconds.to_string(),
        "--release-seconds",
        &profile.release_seconds.to_string(),
        "--release-cooldown-seconds",
        "0.5",
    ])
}

/// One operator for all the run's namespaces, with Secret-referenced credentials, the guard of its
/// Secret rights and the run's tenancy policy on.
fn start_operator(c: &Cluster, sim: &Simulator, run: &Run) -> Arc<Mutex<Operator>> {
    let names = run.namespace_names();
    let victims: Vec<String> = run.namespaces.iter().map(|n| n.name.clone()).collect();
    let policy = c.dir.join("tenancy-policy.yaml");
    std::fs::write(&policy, hostile::tenancy_policy(&victims, &run.hostile.namespace)).unwrap();
    // The most verbose logging there is, for the secret check.
    let mut extra: Vec<String> =
        ["--log-level", "trace", "--secret-credentials", "--rbac-guard-rolebinding", SECRETS_BINDING]
            .map(String::from)
            .to_vec();
    extra.extend(["--tenancy-policy".to_string(), policy.display().to_string()]);
    for ns in &names[1..] {
        extra.extend(["--namespace".to_string(), ns.clone()]);
    }
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let op = Arc::new(Mutex::new(Operator::start(c, sim, &names[0], &extra)));
    println!(
        "chaos: cluster {}, simulator {}, namespaces {names:?}, operator log {}",
        c.dir.display(),
        sim.url,
        op.lock().unwrap().log.display()
    );
    op
}

// ---- The run ----

/// What the phases of the run share.
struct Stage<'s> {
    c: &'s Cluster,
    sim: &'s Simulator,
    http: &'s Http,
    profile: &'s Profile,
    plan: &'s Plan,
    t0_ms: u64,
}

/// What the chaos did that the report tells.
pub struct Chaos {
    /// When the kube-apiserver was stopped and ready again (null if it was not restarted).
    pub apiserver: Value,
    pub deleted_during_chaos: usize,
    /// When the waves, the faults carried after them and the kills were all done.
    pub end_ms: u64,
}

/// The end of the run: the cloud healthy again and every remaining object deleted.
pub struct Drain {
    pub faults_stopped_ms: u64,
    /// Deletions asked once the faults stopped.
    pub remaining: usize,
    /// Seconds from the faults stopping to every object gone, and to every object, Secret and
    /// namespace gone (None: not within the drain limit).
    pub objects_drain: Option<f64>,
    pub all_drain: Option<f64>,
}

/// Faults, adoptions and restores with nothing to do them on yet go to the next wave.
#[derive(Default)]
struct Carried {
    faults: Vec<PlannedFault>,
    adoptions: usize,
    restores: usize,
}

impl Stage<'_> {
    /// The waves with their faults, the faults carried past the last one, and the end of the kills.
    fn chaos(&self, run: &mut Run, supervisor: &Supervising) -> Chaos {
        let mut chaos = Chaos { apiserver: json!(null), deleted_during_chaos: 0, end_ms: 0 };
        let mut carried = Carried::default();
        for (w, wave) in self.plan.waves.iter().enumerate() {
            self.wave(run, w, wave, &mut carried, &mut chaos);
        }
        // What had nothing to act on until the last wave gets a little longer.
        let deadline = Instant::now() + CARRY_LIMIT;
        while !carried.faults.is_empty() && Instant::now() < deadline {
            run.wait(Duration::from_secs(1));
            carried.faults.retain(|f| !run.fault(self.plan.waves.len(), f));
        }
        run.revert_due(true);
        while !supervisor.kills_done() {
            run.wait(Duration::from_secs(1));
        }
        chaos.end_ms = now_ms();
        chaos
    }

    /// One wave: its creations, restores and adoptions, its faults (namespace deletions after the
    /// wave's deletions), the malformed burst and the apiserver restart when they are due.
    fn wave(&self, run: &mut Run, w: usize, wave: &Wave, carried: &mut Carried, chaos: &mut Chaos) {
        run.create_wave(w, &wave.creates);
        carried.restores += wave.restores;
        carried.restores -= (0..carried.restores).filter(|_| run.restore(w)).count();
        carried.adoptions += wave.adoptions;
        carried.adoptions -= (0..carried.adoptions).filter(|_| run.adopt(w)).count();
        let (before, after): (Vec<PlannedFault>, Vec<PlannedFault>) = std::mem::take(&mut carried.faults)
            .into_iter()
            .chain(wave.faults.iter().cloned())
            .partition(|f| !matches!(f, PlannedFault::DeleteNamespace { .. }));
        do_or_carry(run, w, before, &mut carried.faults);
        run.wait(Duration::from_millis(wave.pause_ms));
        let ks = run.wave_deletions(w, &wave.deletes);
        run.delete(&ks, "wave");
        chaos.deleted_during_chaos += ks.len();
        if w == MALFORMED_BURST_WAVE {
            self.malformed_burst(run);
        }
        do_or_carry(run, w, after, &mut carried.faults);
        if w == self.plan.restart_after_wave {
            chaos.apiserver = self.restart_apiserver();
        }
        run.wait(Duration::from_millis(wave.gap_ms));
        println!(
            "chaos: wave {}/{} at {}: {} created, {} deletions asked, {} objects listed",
            w + 1,
            self.plan.waves.len(),
            fmt_ms(self.t0_ms, now_ms()),
            wave.creates.len(),
            ks.len(),
            run.present.as_ref().map_or(0, HashSet::len)
        );
    }

    /// Half the answers malformed for a few seconds, so that every run meets some, whatever the
    /// draws of the rate alone.
    fn malformed_burst(&self, run: &mut Run) {
        let mut burst = faults(self.profile);
        burst["malformedRate"] = json!(0.5);
        self.http.admin(self.sim, "PUT", "faults", Some(burst));
        run.wait(MALFORMED_BURST);
        self.http.admin(self.sim, "PUT", "faults", Some(faults(self.profile)));
    }

    /// Stops the kube-apiserver for the planned downtime; returns when it was down and back.
    fn restart_apiserver(&self) -> Value {
        let at = now_ms();
        self.c.restart_apiserver(Duration::from_secs(self.plan.apiserver_down_s));
        let back = now_ms();
        println!(
            "chaos: kube-apiserver restarted at {} (back after {:.1}s)",
            fmt_ms(self.t0_ms, at),
            (back - at) as f64 / 1000.0
        );
        json!({"stoppedAtMs": at, "readyAtMs": back, "downSeconds": self.plan.apiserver_down_s})
    }

    /// The cloud is healthy again: everything left goes, and the run waits for it to be gone.
    fn drain(&self, run: &mut Run) -> Drain {
        self.http.admin(self.sim, "PUT", "faults", Some(json!({})));
        let faults_stopped = Instant::now();
        let faults_stopped_ms = now_ms();
        println!("chaos: faults stopped at {}; deleting the remaining objects", fmt_ms(self.t0_ms, faults_stopped_ms));
        let remaining = run.delete_remaining();
        let (objects_gone_ms, all_gone_ms) = wait_until_gone(run, faults_stopped);
        if all_gone_ms.is_none() {
            run.observe();
        }
        let drain = |at: Option<u64>| at.map(|t| (t - faults_stopped_ms) as f64 / 1000.0);
        // Late answers (delays, retries) land within a few seconds; then the cloud's view is final.
        std::thread::sleep(Duration::from_secs(5));
        Drain { faults_stopped_ms, remaining, objects_drain: drain(objects_gone_ms), all_drain: drain(all_gone_ms) }
    }
}

/// Does these faults now, and carries those with nothing to act on yet.
fn do_or_carry(run: &mut Run, w: usize, faults: Vec<PlannedFault>, carried: &mut Vec<PlannedFault>) {
    for f in faults {
        if !run.fault(w, &f) {
            carried.push(f);
        }
    }
}

/// Observes until every object is gone and then every Secret and namespace whose deletion was asked,
/// within the drain limit; returns when each was seen (epoch ms).
fn wait_until_gone(run: &mut Run, faults_stopped: Instant) -> (Option<u64>, Option<u64>) {
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
    (objects_gone_ms, all_gone_ms)
}

// ---- Clocks ----

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

fn fmt_ms(t0_ms: u64, ms: u64) -> String {
    let at = chrono::DateTime::from_timestamp_millis(ms as i64)
        .map(|d| d.format("%H:%M:%S%.3f").to_string())
        .unwrap_or_default();
    format!("t+{:.3}s ({at}Z)", (ms as f64 - t0_ms as f64) / 1000.0)
}
