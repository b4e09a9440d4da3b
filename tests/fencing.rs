//! Fencing with two replicas, on the real stack: a replica acts on the cloud only while the
//! apiserver says it holds the Lease. A deposed leader that has not noticed sends nothing, and a
//! leader cut off from the apiserver in a storm hands over without a segment allocated or released
//! twice.

use eipsegment_test_support as support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::proxy::Proxy;
use support::*;

const T: Duration = Duration::from_secs(60);
const LEASE_NAMESPACE: &str = "eipsegment-system";
/// The lines the operator logs for each call the cloud accepted.
const ACCEPTED: [&str; 2] = ["allocation accepted", "release accepted"];

fn leader_flags(lease: &str, duration: &'static str, grace: &'static str) -> Vec<String> {
    ["--leader-elect", "--lease-name", lease, "--lease-namespace", LEASE_NAMESPACE]
        .into_iter()
        .chain(["--lease-duration-seconds", duration, "--lease-grace-seconds", grace])
        .map(String::from)
        .collect()
}

fn holder(c: &Cluster, lease: &str) -> Option<String> {
    let jsonpath = "jsonpath={.spec.holderIdentity}";
    let (ok, out, _) =
        c.kubectl_as(c.admin_kubeconfig(), &["get", "lease", lease, "-n", LEASE_NAMESPACE, "-o", jsonpath], None);
    ok.then_some(out).filter(|h| !h.is_empty())
}

fn segments_yaml(ns: &str, names: impl Iterator<Item = String>) -> String {
    names.map(|n| segment_yaml(ns, &n, "  regionId: cn-hangzhou\n  eipMask: 28\n")).collect::<Vec<_>>().join("\n---\n")
}

/// The operator's count of a series, 0 when it has none yet.
fn count(op: &Operator, series: &str) -> f64 {
    op.metric(series).unwrap_or(0.0)
}

/// The mean duration of the operator's fence proofs so far.
fn mean_proof(op: &Operator) -> Duration {
    let n = count(op, "eipsegment_fence_proof_duration_seconds_count").max(1.0);
    Duration::from_secs_f64(count(op, "eipsegment_fence_proof_duration_seconds_sum") / n)
}

fn accepted_lines(log: &str) -> usize {
    log.lines().filter(|l| ACCEPTED.iter().any(|a| l.contains(a))).count()
}

#[test]
fn a_deposed_leader_that_has_not_noticed_sends_no_call_and_stops() {
    let c = Cluster::shared();
    let ns = c.namespace("fence-deposed");
    let sim = Simulator::start(&[]);
    let lease = format!("eipseg-{ns}");
    // A long lease: replica-a renews only 55 s after taking it, and believes its own view till then.
    let flags = leader_flags(&lease, "60", "5");
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut a = Operator::start_with_env(c, &sim, &ns, &flags, &[("POD_NAME", "replica-a")]);
    assert_eq!(eventually("replica-a leads", T, || holder(c, &lease)), "replica-a");

    // While it holds the Lease, the fence lets its calls through.
    c.apply(&segments_yaml(&ns, ["before".to_string()].into_iter())).unwrap();
    wait_ready(c, &ns, "before");
    let proofs = count(&a, "eipsegment_fence_proofs_total");
    assert!(proofs >= 1.0, "the holder's allocation went out without a proof");

    // Another replica takes the Lease, as a standby whose clock runs fast would: replica-a's view
    // still says the Lease is its own for most of a minute.
    let taken = json!({"spec": {"holderIdentity": "replica-z", "leaseDurationSeconds": 3600,
        "renewTime": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()}});
    c.kubectl(&["patch", "lease", &lease, "-n", LEASE_NAMESPACE, "--type=merge", "-p", &taken.to_string()]);
    let deposed = Instant::now();
    c.apply(&segments_yaml(&ns, (1..=3).map(|i| format!("after-{i}")))).unwrap();

    let status = eventually("replica-a stops", T, || a.exited());
    let stopped = deposed.elapsed();
    let log = a.log_text();
    assert!(log.contains("the apiserver refused the fence"), "replica-a did not stop on the fence");
    assert!(!log.contains("lease lost"), "replica-a noticed by its own renewal, which proves nothing of the fence");
    assert_eq!(sim.count("AllocateEipSegmentAddress", "Success"), 1, "a deposed leader allocated");
    assert_eq!(sim.segments().len(), 1);
    assert_eq!(holder(c, &lease).as_deref(), Some("replica-z"), "the deposed replica cleared its successor's hold");
    for i in 1..=3 {
        let obj = c.get(&ns, &format!("after-{i}")).unwrap();
        assert!(obj["status"]["segmentInstanceId"].is_null(), "{obj}");
    }
    eprintln!(
        "deposed leader: stopped {stopped:?} after the Lease was taken ({status}); 0 calls sent; \
         {proofs} proof(s) while it held the Lease"
    );
}

/// The storm's objects, in waves.
struct Storm<'a> {
    c: &'a Cluster,
    ns: String,
}

impl Storm<'_> {
    fn create(&self, from: usize, to: usize) {
        self.c.apply(&segments_yaml(&self.ns, (from..to).map(|i| format!("seg-{i:02}")))).unwrap();
    }

    fn delete(&self, from: usize, to: usize) {
        let names: Vec<String> = (from..to).map(|i| format!("seg-{i:02}")).collect();
        let mut args = vec!["delete", "eipsegment", "-n", &self.ns, "--wait=false"];
        args.extend(names.iter().map(String::as_str));
        self.c.kubectl(&args);
    }

    fn left(&self) -> usize {
        self.c.kubectl(&["get", "eipsegments", "-n", &self.ns, "-o", "name"]).lines().count()
    }
}

/// Every segment the simulator ever held: its allocation token and the releases it accepted.
fn history(sim: &Simulator) -> Vec<(String, usize)> {
    let history = sim.admin("GET", "history", Value::Null);
    history["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let token = s["allocationToken"].as_str().unwrap_or_default().to_string();
            (token, s["releaseAcceptedAtMs"].as_array().map_or(0, Vec::len))
        })
        .collect()
}

#[test]
fn a_leader_cut_off_mid_storm_hands_over_and_every_segment_is_allocated_and_released_once() {
    let c = Cluster::shared();
    let ns = c.namespace("fence-storm");
    let sim = Simulator::start(&[]);
    let lease = format!("eipseg-{ns}");
    let flags = leader_flags(&lease, "4", "1");
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let apiserver = format!("{}:{}", c.env["APISERVER_HOST"], c.env["APISERVER_PORT"]);
    let proxy = Proxy::start(apiserver.parse().unwrap());
    let through = proxy.kubeconfig(c.operator_kubeconfig(), &c.env["APISERVER_URL"], &format!("{ns}-a.kubeconfig"));
    let mut a = Operator::start_as(c, &through, &sim, &ns, &flags, &[("POD_NAME", "replica-a")]);
    assert_eq!(eventually("replica-a leads", T, || holder(c, &lease)), "replica-a");
    let b = Operator::start_with_env(c, &sim, &ns, &flags, &[("POD_NAME", "replica-b")]);
    eventually("replica-b stands by", T, || (b.scrape("/readyz").0 == 200).then_some(()));

    // The storm: 24 objects, a third of them deleted while being allocated; replica-a cut off
    // mid-storm, 12 more objects meanwhile.
    let storm = Storm { c, ns: ns.clone() };
    storm.create(0, 24);
    eventually("allocations under way", T, || (sim.count("AllocateEipSegmentAddress", "Success") >= 8).then_some(()));
    storm.delete(0, 8);
    std::thread::sleep(Duration::from_millis(500));
    let proofs_a = count(&a, "eipsegment_fence_proofs_total");
    proxy.cut();
    let cut = Instant::now();
    storm.create(24, 36);
    eventually("replica-b takes over", T, || holder(c, &lease).filter(|h| h == "replica-b"));
    let handover = cut.elapsed();
    let taken_over = a.log_text().len();
    std::thread::sleep(Duration::from_secs(2));
    let unconfirmed = count(&a, r#"eipsegment_fence_refusals_total{reason="unconfirmed"}"#);
    assert_eq!(a.metric("eipsegment_leader"), Some(1.0), "cut off, replica-a still believes it leads");
    proxy.mend();
    let mended = Instant::now();

    // Back in touch, replica-a learns from the apiserver that it no longer leads, and stops.
    eventually("replica-a stops", T, || a.exited());
    let a_stopped = mended.elapsed();
    let log_a = a.log_text();
    let late = accepted_lines(&log_a[taken_over..]);
    assert_eq!(late, 0, "replica-a had calls accepted after replica-b took over");
    storm.delete(8, 36);
    eventually("every object gone", T, || (storm.left() == 0).then_some(()));
    assert!(sim.segments().is_empty(), "segments leaked: {:?}", sim.segments());

    // Each object allocated one segment, and each segment was released once.
    let history = history(&sim);
    let mut per_token: HashMap<&str, usize> = HashMap::new();
    history.iter().for_each(|(token, _)| *per_token.entry(token).or_default() += 1);
    assert!(per_token.values().all(|n| *n == 1), "a token allocated twice: {per_token:?}");
    assert!(history.iter().all(|(_, released)| *released == 1), "releases per segment: {history:?}");
    assert!(history.len() >= 28, "only {} of 36 objects were allocated", history.len());
    let (proofs_b, refusals_b) =
        (count(&b, "eipsegment_fence_proofs_total"), b.metric("eipsegment_fence_refusals_total"));
    assert!(proofs_b >= 1.0 && refusals_b.is_none(), "replica-b: {proofs_b} proofs, refusals {refusals_b:?}");
    let calls = |action: &str| sim.count(action, "Success");
    let proof_b = mean_proof(&b);
    eprintln!(
        "storm of 36: {} segments; Allocate accepted {} times, Release {}; replica-a {proofs_a} proofs before the \
         cut, {unconfirmed} calls held back while cut off, 0 accepted after the hand-over, stopped {a_stopped:?} \
         after reconnecting ({}); replica-b {proofs_b} proofs ({proof_b:?} each on average), no refusal; hand-over {handover:?} after the cut",
        history.len(),
        calls("AllocateEipSegmentAddress"),
        calls("ReleaseEipSegmentAddress"),
        if log_a.contains("the apiserver refused the fence") { "fence refused" } else { "lease lost" },
    );
}
