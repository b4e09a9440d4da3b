//! End to end: the real operator binary (under the RBAC the project ships), a real kube-apiserver
//! and etcd, the VPC simulator, and kubectl, as a platform team would run them.

use eipsegment_test_support as support;

use std::process::Command;
use std::time::Duration;

use serde_json::json;
use support::*;

const T: Duration = Duration::from_secs(60);

#[test]
fn delete_blocks_until_the_cloud_confirms_the_release() {
    let c = Cluster::shared();
    let ns = c.namespace("lifecycle");
    let sim = Simulator::start(&["--release-seconds", "4"]);
    let op = Operator::start(c, &sim, &ns, &[]);

    c.apply(&segment_yaml(&ns, "web", "  regionId: cn-hangzhou\n  eipMask: 27\n  bandwidth: 10\n")).unwrap();
    let obj = wait_ready(c, &ns, "web");
    let id = segment_id(&obj);
    assert_eq!(obj["status"]["ipCount"], 32);
    assert!(obj["status"]["segment"].as_str().unwrap().ends_with("/27"));
    assert_eq!(obj["status"]["deletionPolicy"], "Delete");
    assert_eq!(obj["status"]["allocationToken"], format!("alloc-{}", obj["metadata"]["uid"].as_str().unwrap()));
    assert!(obj["metadata"]["finalizers"].as_array().unwrap().iter().any(|f| f == "eipsegment.io/release"));
    assert_eq!(sim.segment(&id).unwrap()["bandwidth"], 10);
    assert_the_columns_fit_and_wide_shows_the_rest(c, &ns, &obj);

    // `kubectl delete` waits; while it does, the object stays and the cloud is Releasing.
    let started = std::time::Instant::now();
    let cluster = c;
    let ns2 = ns.clone();
    let deleter =
        std::thread::spawn(move || cluster.kubectl(&["delete", "eipsegment", "web", "-n", &ns2, "--timeout=60s"]));
    let releasing = eventually("cloud Releasing", T, || sim.segment(&id).filter(|s| s["status"] == "Releasing"));
    assert_eq!(releasing["releasesAccepted"], 1);
    let during = c.get(&ns, "web").expect("object still present while releasing");
    assert!(during["metadata"]["deletionTimestamp"].is_string());
    let deleting = row(&c.kubectl(&["get", "eipseg", "-n", &ns]), &["web"], "DELETING");
    assert!(deleting.ends_with('s') || deleting.ends_with('m'), "a deleting object says so: {deleting:?}");
    deleter.join().unwrap();
    assert!(started.elapsed() >= Duration::from_secs(3), "delete returned before the release could complete");
    // When kubectl returns, the cloud no longer has the segment.
    assert!(sim.segment(&id).is_none());
    assert_eq!(sim.count("ReleaseEipSegmentAddress", "Success"), 1);
    assert_eq!(sim.count("AllocateEipSegmentAddress", "Success"), 1);
    let reasons: Vec<String> = c.events(&ns, "web").into_iter().map(|(_, r, _)| r).collect();
    for want in ["AllocationRequested", "Allocated", "ReleaseRequested", "Released"] {
        assert!(reasons.iter().any(|r| r == want), "missing event {want} in {reasons:?}");
    }

    // Probes and metrics agree with the simulator's counters.
    assert_eq!(op.scrape("/healthz").0, 200);
    assert_eq!(op.scrape("/readyz").0, 200);
    let (status, metrics) = op.scrape("/metrics");
    assert_eq!(status, 200);
    for line in [
        r#"eipsegment_cloud_calls_total{action="ReleaseEipSegmentAddress",outcome="Success"} 1"#,
        r#"eipsegment_cloud_calls_total{action="AllocateEipSegmentAddress",outcome="Success"} 1"#,
    ] {
        assert!(metrics.lines().any(|l| l == line), "missing {line} in\n{metrics}");
    }
    assert!(!metrics.contains("web"), "no object names in metric labels");
}

#[test]
fn retain_keeps_the_segment_and_adoption_never_allocates() {
    let c = Cluster::shared();
    let ns = c.namespace("retain");
    let sim = Simulator::start(&[]);
    let _op = Operator::start(c, &sim, &ns, &[]);

    c.apply(&segment_yaml(&ns, "kept", "  regionId: cn-hangzhou\n  eipMask: 28\n  deletionPolicy: Retain\n")).unwrap();
    let id = segment_id(&wait_ready(c, &ns, "kept"));
    c.kubectl(&["delete", "eipsegment", "kept", "-n", &ns, "--timeout=30s"]);
    assert!(sim.segment(&id).is_some(), "Retain must keep the segment");
    assert!(c.has_event(&ns, "kept", "Retained"));

    // Adopt the kept segment: no allocation, and the default for adopted segments is Retain.
    let before = sim.count("AllocateEipSegmentAddress", "Success");
    c.apply(&segment_yaml(&ns, "adopted", &format!("  regionId: cn-hangzhou\n  segmentInstanceId: {id}\n"))).unwrap();
    let obj = wait_ready(c, &ns, "adopted");
    assert_eq!(segment_id(&obj), id);
    assert_eq!(obj["status"]["deletionPolicy"], "Retain");
    assert_eq!(condition(&obj, "Ready").unwrap()["reason"], "Adopted");
    c.kubectl(&["delete", "eipsegment", "adopted", "-n", &ns, "--timeout=30s"]);
    assert!(sim.segment(&id).is_some());
    assert_eq!(sim.count("AllocateEipSegmentAddress", "Success"), before);
    assert_eq!(sim.count("ReleaseEipSegmentAddress", "Success"), 0);

    // Adopted with an explicit Delete: released on deletion.
    c.apply(&segment_yaml(
        &ns,
        "adopted-delete",
        &format!("  regionId: cn-hangzhou\n  segmentInstanceId: {id}\n  deletionPolicy: Delete\n"),
    ))
    .unwrap();
    wait_ready(c, &ns, "adopted-delete");
    c.kubectl(&["delete", "eipsegment", "adopted-delete", "-n", &ns, "--timeout=30s"]);
    assert!(sim.segment(&id).is_none());

    // A segment that does not exist cannot be adopted: a clear condition, no allocation.
    c.apply(&segment_yaml(&ns, "ghost", "  regionId: cn-hangzhou\n  segmentInstanceId: eipsg-doesnotexist0000\n"))
        .unwrap();
    let obj = eventually("adoption failure", T, || {
        c.get(&ns, "ghost").filter(|o| condition(o, "Ready").is_some_and(|r| r["reason"] == "AdoptionTargetNotFound"))
    });
    assert!(condition(&obj, "Ready").unwrap()["message"].as_str().unwrap().contains("eipsg-doesnotexist0000"));
    assert!(c.has_event(&ns, "ghost", "AdoptionFailed"));
    c.kubectl(&["delete", "eipsegment", "ghost", "-n", &ns, "--timeout=30s"]);
    assert_eq!(sim.count("AllocateEipSegmentAddress", "Success"), before);
}

/// The cell of `column` in the row holding the words of `key` (a name, and its namespace with -A) of a `kubectl get` table ("" when empty; cells are
/// found by the header's offsets, as kubectl pads them).
fn row(table: &str, key: &[&str], column: &str) -> String {
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    let at = header.find(column).unwrap_or_else(|| panic!("no column {column} in {header:?}"));
    let after = at + column.len();
    let next = header[after..].find(|c: char| c != ' ').map_or(usize::MAX, |n| after + n);
    let has_key = |l: &&str| key.iter().all(|k| l.split_whitespace().any(|w| w == *k));
    let line = lines.find(has_key).unwrap_or_else(|| panic!("{key:?}: {table}"));
    line.get(at..next.min(line.len())).unwrap_or("").trim().to_string()
}

/// `kubectl get eipseg -A`: the columns a person scans, well under 120 characters; `-o wide` adds
/// the rest; the category `alibabacloud` lists the same objects; `kubectl explain` opens with what
/// an EipSegment is.
fn assert_the_columns_fit_and_wide_shows_the_rest(c: &Cluster, ns: &str, obj: &serde_json::Value) {
    let table = c.kubectl(&["get", "eipseg", "-A"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAMESPACE", "NAME", "CIDR", "IPS", "READY", "REASON", "DELETING", "AGE"], "{table}");
    let widest = table.lines().map(str::len).max().unwrap();
    assert!(widest < 100, "{widest} columns wide:\n{table}");
    let cidr = obj["status"]["segment"].as_str().unwrap();
    let cells: Vec<String> =
        ["CIDR", "IPS", "READY", "REASON", "DELETING"].map(|col| row(&table, &[ns, "web"], col)).into();
    assert_eq!(cells, [cidr, "32", "True", "Allocated", ""], "{table}");
    let wide = c.kubectl(&["get", "eipseg", "web", "-n", ns, "-o", "wide"]);
    let id = segment_id(obj);
    for (column, want) in [
        ("REGION", "cn-hangzhou"),
        ("SEGMENT ID", id.as_str()),
        ("STATUS", "Allocated"),
        ("SYNCED", "Succeeded"),
        ("POLICY", "Delete"),
    ] {
        assert_eq!(row(&wide, &["web"], column), want, "{column}:\n{wide}");
    }
    let by_category = c.kubectl(&["get", "alibabacloud", "-n", ns]);
    assert_eq!(row(&by_category, &["web"], "REASON"), "Allocated", "{by_category}");
    let explain = c.kubectl(&["explain", "eipsegment"]);
    assert!(explain.contains("An Alibaba Cloud EIP segment") && !explain.contains("Auto-generated"), "{explain}");
}

/// An adoption of segment `id` that releases it on deletion.
fn adopting_for_release(id: &str) -> String {
    format!("  regionId: cn-hangzhou\n  segmentInstanceId: {id}\n  deletionPolicy: Delete\n")
}

/// The way out of a release the cloud refuses: keep the segment.
fn set_retain(c: &Cluster, ns: &str, name: &str) {
    c.patch(ns, name, r#"{"spec":{"deletionPolicy":"Retain"}}"#);
}

/// A segment whose release the cloud refuses, as the simulator seeds it, with the error code, the
/// class and a word the condition must hold.
struct RefusedRelease {
    name: &'static str,
    seed: serde_json::Value,
    code: &'static str,
    class: &'static str,
    hint: &'static str,
}

fn refused_releases() -> [RefusedRelease; 4] {
    [
        RefusedRelease {
            name: "prepaid",
            seed: json!({"chargeType": "PrePaid"}),
            code: "Forbidden.ChargeTypeIsPrepaid",
            class: "Blocked",
            hint: "prepaid",
        },
        RefusedRelease {
            name: "protected",
            seed: json!({"deletionProtection": true}),
            code: "InvalidOperation.DeletionProtection",
            class: "Blocked",
            hint: "deletion protection",
        },
        RefusedRelease {
            name: "bwp",
            seed: json!({"members": [{"index": 1, "bandwidthPackageId": "cbwp-shared1"}]}),
            code: "OperationFailed.EipInBwp",
            class: "Blocked",
            hint: "cbwp-shared1",
        },
        RefusedRelease {
            name: "inuse",
            seed: json!({"members": [{"index": 2, "status": "InUse", "instanceId": "i-web01"}]}),
            code: "OperationFailed.EipStatusInvalid",
            class: "Blocked",
            hint: "i-web01",
        },
    ]
}

/// Deleting the adopted segment is refused: the condition and an event say why, the finalizer
/// holds, and Retain lets the object go with the segment kept.
fn check_refused_release_then_retain(c: &Cluster, sim: &Simulator, ns: &str, case: &RefusedRelease) {
    let RefusedRelease { name, seed, code, class, hint } = case;
    let id = sim.seed(seed.clone());
    c.apply(&segment_yaml(ns, name, &adopting_for_release(&id))).unwrap();
    wait_ready(c, ns, name);
    c.kubectl(&["delete", "eipsegment", name, "-n", ns, "--wait=false"]);
    let obj = eventually(&format!("{name}: {code}"), T, || {
        c.get(ns, name).filter(|o| o["status"]["lastError"]["code"] == *code)
    });
    let synced = condition(&obj, "Synced").unwrap();
    assert_eq!((synced["status"].as_str(), synced["reason"].as_str()), (Some("False"), Some(*class)), "{name}");
    let message = synced["message"].as_str().unwrap();
    assert!(message.contains(code) && message.contains(hint), "{name}: {message}");
    let reason = if *class == "Blocked" { "ReleaseBlocked" } else { "ReleaseFailed" };
    eventually(&format!("{name}: {reason} event"), T, || c.has_event(ns, name, reason).then_some(()));
    assert!(sim.segment(&id).is_some(), "{name}: a refused release leaves the segment");
    // Still blocked a while later: the finalizer holds.
    std::thread::sleep(Duration::from_secs(1));
    assert!(c.get(ns, name).is_some());
    set_retain(c, ns, name);
    wait_gone(c, ns, name);
    assert!(sim.segment(&id).is_some());
}

/// Another account's segment is invisible to this one: it cannot be adopted, and nothing is
/// released.
fn check_another_accounts_segment_is_not_released(c: &Cluster, sim: &Simulator, ns: &str) {
    let foreign = sim.seed(json!({"ownerAccount": "6543210987654321"}));
    c.apply(&segment_yaml(ns, "foreign", &adopting_for_release(&foreign))).unwrap();
    eventually("foreign: AdoptionTargetNotFound", T, || {
        c.get(ns, "foreign").filter(|o| condition(o, "Ready").is_some_and(|r| r["reason"] == "AdoptionTargetNotFound"))
    });
    c.kubectl(&["delete", "eipsegment", "foreign", "-n", ns, "--timeout=30s"]);
    assert!(sim.segment(&foreign).is_some(), "another account's segment stays");
    assert_eq!(sim.count("ReleaseEipSegmentAddress", "Forbidden"), 0);
}

/// Blocked retries are slow: far fewer attempts than seconds elapsed.
fn assert_blocked_retries_are_slow(sim: &Simulator) {
    let refused: u64 = ["Forbidden.ChargeTypeIsPrepaid", "InvalidOperation.DeletionProtection"]
        .iter()
        .map(|code| sim.count("ReleaseEipSegmentAddress", code))
        .sum();
    assert!(refused <= 6, "blocked releases were retried {refused} times");
}

/// Fixing the cause lets the release through without any change to the object.
fn check_fixing_the_cause_releases(c: &Cluster, sim: &Simulator, ns: &str) {
    let id = sim.seed(json!({"members": [{"index": 0, "status": "InUse", "instanceId": "i-db01"}]}));
    c.apply(&segment_yaml(ns, "fixed", &adopting_for_release(&id))).unwrap();
    wait_ready(c, ns, "fixed");
    c.kubectl(&["delete", "eipsegment", "fixed", "-n", ns, "--wait=false"]);
    eventually("blocked", T, || c.get(ns, "fixed").filter(|o| o["status"]["lastError"]["class"] == "Blocked"));
    sim.admin(
        "PATCH",
        &format!("segments/{id}"),
        json!({"members": [{"index": 0, "status": "Available", "instanceId": ""}]}),
    );
    wait_gone(c, ns, "fixed");
    assert!(sim.segment(&id).is_none());
}

#[test]
fn blocked_and_terminal_releases_say_why_and_retain_lets_go() {
    let c = Cluster::shared();
    let ns = c.namespace("blocked");
    let sim = Simulator::start(&[]);
    let _op = Operator::start(c, &sim, &ns, &[]);
    for case in &refused_releases() {
        check_refused_release_then_retain(c, &sim, &ns, case);
    }
    check_another_accounts_segment_is_not_released(c, &sim, &ns);
    assert_blocked_retries_are_slow(&sim);
    check_fixing_the_cause_releases(c, &sim, &ns);
}

#[test]
fn terminal_allocation_errors_do_not_loop() {
    let c = Cluster::shared();
    let ns = c.namespace("terminal");
    let sim = Simulator::start(&[]);
    let _op = Operator::start(c, &sim, &ns, &[]);
    c.apply(&segment_yaml(&ns, "nowhere", "  regionId: xx-nowhere-1\n  eipMask: 28\n")).unwrap();
    // A refused allocation leaves nothing pending (a later retry marks its own call pending again,
    // so the refusal is looked for with the marker cleared, not on any one read).
    let obj = eventually("terminal condition, nothing pending", T, || {
        c.get(&ns, "nowhere").filter(|o| {
            o["status"]["lastError"]["code"] == "InvalidRegion.NotSupport"
                && o["status"]["allocationRequestedAt"].is_null()
        })
    });
    assert_eq!(condition(&obj, "Synced").unwrap()["reason"], "Terminal");
    eventually("AllocationFailed event", T, || c.has_event(&ns, "nowhere", "AllocationFailed").then_some(()));
    std::thread::sleep(Duration::from_secs(4));
    let attempts = sim.count("AllocateEipSegmentAddress", "InvalidRegion.NotSupport");
    assert!(attempts <= 3, "terminal error retried {attempts} times in a few seconds");
    // Nothing was allocated, so the delete completes at once, and says so.
    c.kubectl(&["delete", "eipsegment", "nowhere", "-n", &ns, "--timeout=20s"]);
    assert!(c.has_event(&ns, "nowhere", "NothingAllocated"));
    assert!(!c.has_event(&ns, "nowhere", "Released"), "Released is never the event when nothing was allocated");
}

#[test]
fn faults_and_throttling_are_ridden_through() {
    let c = Cluster::shared();
    let ns = c.namespace("faults");
    let sim = Simulator::start(&[
        "--seed",
        "7",
        "--fault-internal-error-rate",
        "0.2",
        "--fault-drop-rate",
        "0.1",
        "--fault-throttle-rate",
        "0.1",
        "--fault-delay-rate",
        "0.1",
        "--fault-delay-ms",
        "500",
    ]);
    // A pass looks, then acts: with four faults in ten answers, runs of failed passes are common, so
    // the backoff is capped low enough for a test of a minute.
    let _op = Operator::start(c, &sim, &ns, &["--transient-retry-max-seconds", "4"]);
    let names = ["f1", "f2", "f3", "f4"];
    for n in names {
        c.apply(&segment_yaml(&ns, n, "  regionId: cn-hangzhou\n  eipMask: 28\n")).unwrap();
    }
    let ids: Vec<String> = names.iter().map(|n| segment_id(&wait_ready(c, &ns, n))).collect();
    for n in names {
        c.kubectl(&["delete", "eipsegment", n, "-n", &ns, "--wait=false"]);
    }
    for n in names {
        wait_gone(c, &ns, n);
    }
    for id in &ids {
        assert!(sim.segment(id).is_none(), "{id} leaked");
    }
    assert!(sim.segments().is_empty(), "no second allocation may survive: {:?}", sim.segments());
    let faults = sim.count("DescribeEipSegment", "InternalError")
        + sim.count("DescribeEipSegment", "Dropped")
        + sim.count("ReleaseEipSegmentAddress", "InternalError");
    assert!(faults > 0, "the run met no fault, so it proves nothing");
}

#[test]
fn releases_beyond_the_client_quota_wait_their_turn_and_say_so() {
    let c = Cluster::shared();
    let ns = c.namespace("queued");
    let sim = Simulator::start(&["--release-seconds", "1"]);
    // Two releases per 4 s: four deletions queue two of them for a window.
    let _op = Operator::start(c, &sim, &ns, &["--release-quota", "2/4"]);
    let names = ["q1", "q2", "q3", "q4"];
    for n in names {
        c.apply(&segment_yaml(&ns, n, "  regionId: cn-hangzhou\n  eipMask: 28\n")).unwrap();
    }
    for n in names {
        wait_ready(c, &ns, n);
    }
    for n in names {
        c.kubectl(&["delete", "eipsegment", n, "-n", &ns, "--wait=false"]);
    }
    let queued = eventually("an object waiting for the client-side quota", T, || {
        names
            .iter()
            .filter_map(|n| c.get(&ns, n))
            .find(|o| condition(o, "Ready").is_some_and(|r| r["reason"] == "ReleaseQueued"))
    });
    let message = condition(&queued, "Ready").unwrap()["message"].as_str().unwrap().to_string();
    assert!(message.contains("ReleaseEipSegmentAddress") && message.contains("2 calls per 4 s"), "{message}");
    for n in names {
        wait_gone(c, &ns, n);
    }
    assert!(sim.segments().is_empty());
    assert_eq!(sim.count("ReleaseEipSegmentAddress", "Success"), 4, "one release each, queued or not");
}

#[test]
fn sigkill_mid_allocation_and_mid_release_neither_leaks_nor_repeats() {
    let c = Cluster::shared();
    let ns = c.namespace("sigkill");
    let sim = Simulator::start(&["--release-seconds", "3"]);
    let mut op = Operator::start(c, &sim, &ns, &[]);

    // The allocation is slow to answer; the operator dies while waiting for it.
    sim.admin(
        "PUT",
        "faults",
        json!({"delayRate": 1.0, "delayMsMin": 2500, "delayMsMax": 2500, "actions": ["AllocateEipSegmentAddress"]}),
    );
    c.apply(&segment_yaml(&ns, "crashy", "  regionId: cn-hangzhou\n  eipMask: 28\n")).unwrap();
    eventually("allocation pending marker", T, || {
        c.get(&ns, "crashy").filter(|o| o["status"]["allocationRequestedAt"].is_string())
    });
    std::thread::sleep(Duration::from_millis(500));
    op.kill();
    assert!(c.get(&ns, "crashy").unwrap()["status"]["segmentInstanceId"].is_null());
    std::thread::sleep(Duration::from_secs(3));
    sim.admin("PUT", "faults", json!({}));
    assert_eq!(sim.segments().len(), 1, "the cloud finished the request the operator never heard back from");
    op.restart();
    let obj = wait_ready(c, &ns, "crashy");
    assert_eq!(sim.segments().len(), 1, "the restart must not allocate a second segment");
    let id = segment_id(&obj);
    assert_eq!(sim.segments()[0]["instanceId"], id);

    // Dies right after the release was accepted.
    c.kubectl(&["delete", "eipsegment", "crashy", "-n", &ns, "--wait=false"]);
    eventually("Releasing", T, || sim.segment(&id).filter(|s| s["status"] == "Releasing"));
    op.kill();
    op.restart();
    wait_gone(c, &ns, "crashy");
    assert!(sim.segment(&id).is_none());
    assert_eq!(sim.count("ReleaseEipSegmentAddress", "Success"), 1, "exactly one release");
    assert_eq!(sim.count("ReleaseEipSegmentAddress", "IncorrectEipStatus"), 0, "no release attempt while Releasing");
}

#[test]
fn drift_is_reported_not_recreated() {
    let c = Cluster::shared();
    let ns = c.namespace("drift");
    let sim = Simulator::start(&[]);
    let op = Operator::start(c, &sim, &ns, &["--resync-seconds", "1"]);
    c.apply(&segment_yaml(&ns, "drifty", "  regionId: cn-hangzhou\n  eipMask: 28\n")).unwrap();
    let id = segment_id(&wait_ready(c, &ns, "drifty"));
    eventually("member list read", T, || c.get(&ns, "drifty").filter(|o| o["status"]["firstAddress"].is_string()));
    // Settled, the object rests: the poller checks its segment every second and nothing else runs.
    std::thread::sleep(Duration::from_secs(2));
    let passes = || op.metric("eipsegment_reconcile_duration_seconds_count").unwrap();
    let (before, describes) = (passes(), sim.count("DescribeEipSegment", "Success"));
    std::thread::sleep(Duration::from_secs(4));
    assert!(sim.count("DescribeEipSegment", "Success") >= describes + 3, "drift checks go on");
    assert_eq!(passes(), before, "no pass of a settled object without a change");
    sim.admin("DELETE", &format!("segments/{id}"), serde_json::Value::Null);
    let obj = eventually("drift reported", T, || {
        c.get(&ns, "drifty").filter(|o| condition(o, "Ready").is_some_and(|r| r["reason"] == "SegmentMissing"))
    });
    assert!(condition(&obj, "Ready").unwrap()["message"].as_str().unwrap().contains(&id));
    assert!(c.has_event(&ns, "drifty", "Drifted"));
    std::thread::sleep(Duration::from_secs(2));
    assert!(sim.segments().is_empty(), "a drifted segment is not re-created");
    assert_eq!(sim.count("AllocateEipSegmentAddress", "Success"), 1);
    c.kubectl(&["delete", "eipsegment", "drifty", "-n", &ns, "--timeout=20s"]);
}

#[test]
fn the_apiserver_rejects_invalid_specs_and_immutable_changes() {
    let c = Cluster::shared();
    let ns = c.namespace("invalid");
    let rejected = [
        ("  regionId: cn-hangzhou\n  eipMask: 30\n", "eipMask"),
        ("  regionId: cn-hangzhou\n", "set eipMask to allocate"),
        ("  regionId: cn-hangzhou\n  eipMask: 28\n  segmentInstanceId: eipsg-abc\n", "not both"),
        ("  regionId: Not A Region\n  eipMask: 28\n", "regionId"),
        (
            "  regionId: cn-hangzhou\n  eipMask: 28\n  bandwidth: 300\n  internetChargeType: PayByTraffic\n",
            "at most 200",
        ),
        ("  regionId: cn-hangzhou\n  eipMask: 28\n  isp: Pigeon\n", "isp"),
        ("  regionId: cn-hangzhou\n  eipMask: 28\n  deletionPolicy: Orphan\n", "deletionPolicy"),
        ("  regionId: cn-hangzhou\n  eipMask: 28\n  bandwidth: 100000\n", "bandwidth"),
    ];
    for (spec, expect) in rejected {
        let err = c.apply(&segment_yaml(&ns, "bad", spec)).expect_err(spec);
        assert!(err.contains(expect), "{spec:?}: {err}");
    }
    c.apply(&segment_yaml(&ns, "good", "  regionId: cn-hangzhou\n  eipMask: 28\n")).unwrap();
    for (patch, expect) in [
        (r#"{"spec":{"eipMask":27}}"#, "eipMask is immutable"),
        (r#"{"spec":{"regionId":"cn-beijing"}}"#, "regionId is immutable"),
        (r#"{"spec":{"bandwidth":20}}"#, "bandwidth is immutable"),
    ] {
        let (ok, _, err) = c.kubectl_as(
            c.admin_kubeconfig(),
            &["patch", "eipsegment", "good", "-n", &ns, "--type=merge", "-p", patch],
            None,
        );
        assert!(!ok && err.contains(expect), "{patch}: {err}");
    }
    // deletionPolicy stays changeable.
    c.patch(&ns, "good", r#"{"spec":{"deletionPolicy":"Retain"}}"#);
    // `kubectl explain` shows the descriptions.
    let explain = c.kubectl(&["explain", "eipsegment.spec.deletionPolicy"]);
    assert!(explain.contains("Retain"), "{explain}");
    c.kubectl(&["delete", "eipsegment", "good", "-n", &ns, "--wait=false"]);
    // No operator runs here: the finalizer was never added, so the object goes at once.
    wait_gone(c, &ns, "good");
}

#[test]
fn the_operator_identity_can_do_nothing_more() {
    let c = Cluster::shared();
    let op = c.operator_kubeconfig();
    for (verb, resource, expect) in [
        ("watch", "eipsegments.eipsegment.io", "yes"),
        ("patch", "eipsegments.eipsegment.io/status", "yes"),
        ("create", "events.events.k8s.io", "yes"),
        ("create", "eipsegments.eipsegment.io", "no"),
        ("delete", "eipsegments.eipsegment.io", "no"),
        ("list", "secrets", "no"),
        ("get", "secrets", "no"),
        ("create", "customresourcedefinitions.apiextensions.k8s.io", "no"),
        ("update", "customresourcedefinitions.apiextensions.k8s.io", "no"),
        ("list", "pods", "no"),
    ] {
        let (_, out, err) = c.kubectl_as(op, &["auth", "can-i", verb, resource, "--all-namespaces"], None);
        assert_eq!(out.trim(), expect, "can-i {verb} {resource}: {out} {err}");
    }
    // Leases for leader election: in its own namespace only.
    for (namespace, expect) in [("eipsegment-system", "yes"), ("default", "no")] {
        let (_, out, _) =
            c.kubectl_as(op, &["auth", "can-i", "patch", "leases.coordination.k8s.io", "-n", namespace], None);
        assert_eq!(out.trim(), expect, "leases in {namespace}");
    }
}

#[test]
fn checked_in_crd_matches_the_types() {
    let generated = eipsegment_operator::crd::crd_yaml();
    let checked_in =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/crds/eipsegment.io_eipsegments.yaml")).unwrap();
    assert!(generated == checked_in, "crds/ is stale: run `cargo run -- crd > crds/eipsegment.io_eipsegments.yaml`");
}

/// A matrix run (`K8S_MINOR=1.33`, `1.37`; unset: tests/controlplane/go.mod's) proves the version it ran on.
#[test]
fn the_apiserver_is_the_kubernetes_version_asked_for() {
    let c = Cluster::shared();
    let out = c.kubectl(&["version", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let server = v["serverVersion"]["gitVersion"].as_str().unwrap_or_else(|| panic!("no serverVersion in {out}"));
    assert_eq!(server, c.env["K8S_VERSION"], "the apiserver is not the version cluster.env records");
    assert_eq!(v["clientVersion"]["gitVersion"], server, "kubectl is not from the apiserver's release");
    if let Ok(minor) = std::env::var("K8S_MINOR")
        && !minor.is_empty()
    {
        assert!(server.starts_with(&format!("v{minor}.")), "K8S_MINOR={minor}, but the apiserver is {server}");
    }
    eprintln!("kube-apiserver {server}");
}

#[test]
fn only_the_leader_reconciles_and_a_killed_leader_hands_over_without_a_second_release() {
    let c = Cluster::shared();
    let ns = c.namespace("leader");
    let sim = Simulator::start(&["--release-seconds", "6"]);
    let lease = format!("eipseg-{ns}");
    let flags = [
        "--leader-elect",
        "--lease-name",
        &lease,
        "--lease-namespace",
        "eipsegment-system",
        "--lease-duration-seconds",
        "6",
        "--lease-grace-seconds",
        "2",
    ];
    let mut a = Operator::start_with_env(c, &sim, &ns, &flags, &[("POD_NAME", "replica-a")]);
    let holder = || {
        let (ok, out, _) = c.kubectl_as(
            c.admin_kubeconfig(),
            &["get", "lease", &lease, "-n", "eipsegment-system", "-o", "jsonpath={.spec.holderIdentity}"],
            None,
        );
        ok.then_some(out).filter(|h| !h.is_empty())
    };
    assert_eq!(eventually("replica-a leads", T, holder), "replica-a");
    let b = Operator::start_with_env(c, &sim, &ns, &flags, &[("POD_NAME", "replica-b")]);
    eventually("replica-b serves probes", T, || (b.scrape("/readyz").0 == 200).then_some(()));
    assert_eq!(b.metric("eipsegment_leader"), Some(0.0));
    assert_eq!(a.metric("eipsegment_leader"), Some(1.0));

    c.apply(&segment_yaml(&ns, "ha", "  regionId: cn-hangzhou\n  eipMask: 28\n")).unwrap();
    let id = segment_id(&wait_ready(c, &ns, "ha"));
    assert!(b.metric("eipsegment_reconcile_duration_seconds_count").unwrap_or(0.0) == 0.0, "the standby reconciled");
    assert!(a.metric("eipsegment_reconcile_duration_seconds_count").unwrap_or(0.0) > 0.0);

    // The leader dies right after the release was accepted; the standby finishes the job.
    c.kubectl(&["delete", "eipsegment", "ha", "-n", &ns, "--wait=false"]);
    eventually("Releasing", T, || sim.segment(&id).filter(|s| s["status"] == "Releasing"));
    a.kill();
    let killed = std::time::Instant::now();
    assert_eq!(eventually("replica-b takes over", T, || holder().filter(|h| h == "replica-b")), "replica-b");
    let handover = killed.elapsed();
    assert!(handover <= Duration::from_secs(6 + 3), "hand-over took {handover:?}, lease duration is 6 s");
    wait_gone(c, &ns, "ha");
    assert!(sim.segment(&id).is_none());
    assert_eq!(sim.count("ReleaseEipSegmentAddress", "Success"), 1, "one release across the hand-over");
    assert_eq!(sim.count("ReleaseEipSegmentAddress", "IncorrectEipStatus"), 0);
    assert_eq!(b.metric("eipsegment_leader"), Some(1.0));

    // SIGTERM: the leader gives the lease up at once rather than letting it expire.
    let pid = b.pid().expect("running");
    Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    let stopped = std::time::Instant::now();
    a.restart();
    assert_eq!(eventually("replica-a leads again", T, || holder().filter(|h| h == "replica-a")), "replica-a");
    assert!(stopped.elapsed() < Duration::from_secs(6), "a released lease is taken before it would expire");
}

/// A secret value the test hands the operator; it must never show in any of its outputs.
const WRONG_SECRET: &str = "WrongSecretValue-must-never-leak";

/// What the chart grants with Secret-referenced credentials on: get and patch (for the finalizer
/// that keeps a Secret while segments depend on it), in the served namespace only.
fn grant_secret_rights(c: &Cluster, ns: &str) {
    c.apply(&format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {{name: eipsegment-operator-secrets, namespace: {ns}}}\nrules:\n- {{apiGroups: [\"\"], resources: [secrets], verbs: [get, patch]}}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: eipsegment-operator-secrets, namespace: {ns}}}\nroleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: eipsegment-operator-secrets}}\nsubjects:\n- {{kind: ServiceAccount, name: eipsegment-operator, namespace: eipsegment-system}}\n"
    ))
    .unwrap();
}

/// No credentials of its own: everything comes from Secrets. The most verbose logging there is:
/// nothing secret may reach it even so.
fn start_with_secret_credentials_only(c: &Cluster, sim: &Simulator, ns: &str) -> Operator {
    Operator::start_with_env(
        c,
        sim,
        ns,
        &["--secret-credentials"],
        &[("ALIBABA_CLOUD_ACCESS_KEY_ID", ""), ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", ""), ("RUST_LOG", "trace")],
    )
}

fn credentials_secret(ns: &str, name: &str, id: &str, key: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {ns}}}\nstringData:\n  ALIBABA_CLOUD_ACCESS_KEY_ID: {id}\n  ALIBABA_CLOUD_ACCESS_KEY_SECRET: {key}\n"
    )
}

/// Without a Secret the object is terminal and says which credentials are missing; the
/// namespace's default Secret appearing lets it proceed. Returns the segment's ID.
fn check_the_default_secret_unblocks(c: &Cluster, ns: &str) -> String {
    c.apply(&segment_yaml(ns, "plain", "  regionId: cn-hangzhou\n  eipMask: 28\n")).unwrap();
    let obj = eventually("no credentials", T, || {
        c.get(ns, "plain").filter(|o| o["status"]["lastError"]["code"] == "NoCredentials")
    });
    assert_eq!(condition(&obj, "Synced").unwrap()["reason"], "Terminal");
    assert!(obj["status"]["lastError"]["message"].as_str().unwrap().contains("ALIBABA_CLOUD_ACCESS_KEY_ID"), "{obj}");
    eventually("CredentialsUnavailable event", T, || c.has_event(ns, "plain", "CredentialsUnavailable").then_some(()));
    c.apply(&credentials_secret(ns, "eipsegment-credentials", ACCESS_KEY_ID, ACCESS_KEY_SECRET)).unwrap();
    segment_id(&wait_ready(c, ns, "plain"))
}

/// A referenced Secret with the wrong key is a terminal signature error.
fn check_a_wrong_key_is_terminal(c: &Cluster, ns: &str) {
    c.apply(&credentials_secret(ns, "wrong", ACCESS_KEY_ID, WRONG_SECRET)).unwrap();
    c.apply(&segment_yaml(
        ns,
        "wrongkey",
        "  regionId: cn-hangzhou\n  eipMask: 28\n  credentialsSecretRef: {name: wrong}\n",
    ))
    .unwrap();
    let obj = eventually("bad signature", T, || {
        c.get(ns, "wrongkey").filter(|o| o["status"]["lastError"]["code"] == "SignatureDoesNotMatch")
    });
    assert_eq!(condition(&obj, "Synced").unwrap()["reason"], "Terminal");
}

/// A referenced Secret that does not exist: no credentials, and the message says so.
fn check_a_missing_secret_is_reported(c: &Cluster, ns: &str) {
    c.apply(&segment_yaml(
        ns,
        "missing",
        "  regionId: cn-hangzhou\n  eipMask: 28\n  credentialsSecretRef: {name: nope}\n",
    ))
    .unwrap();
    let obj = eventually("missing Secret", T, || {
        c.get(ns, "missing").filter(|o| o["status"]["lastError"]["code"] == "NoCredentials")
    });
    assert!(obj["status"]["lastError"]["message"].as_str().unwrap().contains("does not exist"));
    eventually("CredentialsUnavailable event", T, || {
        c.has_event(ns, "missing", "CredentialsUnavailable").then_some(())
    });
}

/// Every object goes; nothing was ever allocated for the ones without good credentials, so their
/// deletion needs no cloud call.
fn delete_all_and_release(c: &Cluster, sim: &Simulator, ns: &str, plain_id: &str) {
    for name in ["plain", "wrongkey", "missing"] {
        c.kubectl(&["delete", "eipsegment", name, "-n", ns, "--wait=false"]);
    }
    wait_gone(c, ns, "plain");
    assert!(sim.segment(plain_id).is_none());
    wait_gone(c, ns, "wrongkey");
    wait_gone(c, ns, "missing");
}

/// Neither secret, in plain text or base64 (as a Secret's data), reached a log line, an event, a
/// status or a metric; nor did the operator's Kubernetes token.
fn assert_no_secret_in_outputs(c: &Cluster, op: &Operator, ns: &str) {
    let events = c.kubectl(&["get", "events.events.k8s.io", "-n", ns, "-o", "json"]);
    let (_, metrics) = op.scrape("/metrics");
    let log = op.log_text();
    assert!(log.lines().count() > 100, "trace logging was not on");
    let kube_token = std::fs::read_to_string(c.operator_kubeconfig())
        .unwrap()
        .lines()
        .find_map(|l| l.trim().strip_prefix("token:").map(|t| t.trim().to_string()))
        .expect("operator token");
    use base64::Engine;
    let b64 = |v: &str| base64::engine::general_purpose::STANDARD.encode(v);
    for (what, text) in [("log", log), ("events", events), ("metrics", metrics)] {
        assert!(!text.contains(&kube_token), "the Kubernetes token appears in the operator's {what}");
        for value in
            [ACCESS_KEY_SECRET.to_string(), WRONG_SECRET.to_string(), b64(ACCESS_KEY_SECRET), b64(WRONG_SECRET)]
        {
            assert!(!text.contains(&value), "a secret value appears in the operator's {what}");
        }
    }
}

#[test]
fn credentials_from_secrets_in_the_objects_namespace_and_never_in_outputs() {
    let c = Cluster::shared();
    let ns = c.namespace("secretcreds");
    grant_secret_rights(c, &ns);
    let sim = Simulator::start(&[]);
    let op = start_with_secret_credentials_only(c, &sim, &ns);
    let plain_id = check_the_default_secret_unblocks(c, &ns);
    check_a_wrong_key_is_terminal(c, &ns);
    check_a_missing_secret_is_reported(c, &ns);
    delete_all_and_release(c, &sim, &ns, &plain_id);
    assert_no_secret_in_outputs(c, &op, &ns);
}

#[test]
fn one_operator_serves_a_list_of_namespaces_and_nothing_else() {
    let c = Cluster::shared();
    let (first, second, outside) = (c.namespace("multi-a"), c.namespace("multi-b"), c.namespace("multi-out"));
    let sim = Simulator::start(&[]);
    let op = Operator::start(c, &sim, &first, &["--namespace", &second]);
    for ns in [&first, &second, &outside] {
        c.apply(&segment_yaml(ns, "seg", "  regionId: cn-hangzhou\n  eipMask: 28\n")).unwrap();
    }
    wait_ready(c, &first, "seg");
    wait_ready(c, &second, "seg");
    eventually("ready once both watches synced", T, || (op.scrape("/readyz").0 == 200).then_some(()));
    std::thread::sleep(Duration::from_secs(1));
    let untouched = c.get(&outside, "seg").unwrap();
    assert!(
        untouched["status"].is_null() && untouched["metadata"]["finalizers"].is_null(),
        "an unserved namespace was reconciled"
    );
    assert_eq!(sim.count("AllocateEipSegmentAddress", "Success"), 2);
    for ns in [&first, &second, &outside] {
        c.kubectl(&["delete", "eipsegment", "seg", "-n", ns, "--timeout=60s"]);
    }
    assert!(sim.segments().is_empty());
}

/// A JWT-shaped OIDC token as ACK projects it (the simulator checks claims, not signatures).
fn oidc_token(issued_at: i64, expires_at: i64) -> String {
    use base64::Engine;
    let b64 = |v: serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let claims = json!({
        "iss": "https://oidc-ack.cn-hangzhou.aliyuncs.com/simulator",
        "aud": ["sts.aliyuncs.com"],
        "sub": "system:serviceaccount:eipsegment-system:eipsegment-operator",
        "iat": issued_at,
        "exp": expires_at,
    });
    format!("{}.{}.c2ln", b64(json!({"alg": "RS256", "typ": "JWT"})), b64(claims))
}

#[test]
fn rrsa_credentials_are_refreshed_from_a_rotated_token_file() {
    let c = Cluster::shared();
    let ns = c.namespace("rrsa");
    let sim = Simulator::start(&[]);
    sim.admin("PUT", "sts", json!({"credentialSeconds": 4}));
    let now = chrono::Utc::now().timestamp();
    let token_file = c.dir.join(format!("oidc-token-{ns}"));
    std::fs::write(&token_file, oidc_token(now - 10, now + 3600)).unwrap();
    let op = Operator::start_with_env(
        c,
        &sim,
        &ns,
        &["--sts-endpoint", &sim.url, "--sts-refresh-before-seconds", "2"],
        &[
            ("ALIBABA_CLOUD_ACCESS_KEY_ID", ""),
            ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", ""),
            ("ALIBABA_CLOUD_ROLE_ARN", "acs:ram::1234567890123456:role/eipsegment-operator"),
            ("ALIBABA_CLOUD_OIDC_PROVIDER_ARN", "acs:ram::1234567890123456:oidc-provider/ack-rrsa-simulator"),
            ("ALIBABA_CLOUD_OIDC_TOKEN_FILE", token_file.to_str().unwrap()),
        ],
    );
    c.apply(&segment_yaml(&ns, "rrsa", "  regionId: cn-hangzhou\n  eipMask: 28\n")).unwrap();
    let id = segment_id(&wait_ready(c, &ns, "rrsa"));

    // The kubelet rotates the projected token; the old one is revoked. The next refresh must read
    // the file again.
    std::fs::write(&token_file, oidc_token(now + 1, now + 3600)).unwrap();
    sim.admin("PUT", "sts", json!({"credentialSeconds": 4, "rejectTokensIssuedBefore": now + 1}));
    std::thread::sleep(Duration::from_secs(5));
    c.kubectl(&["delete", "eipsegment", "rrsa", "-n", &ns, "--timeout=60s"]);
    assert!(sim.segment(&id).is_none());
    assert!(sim.count("AssumeRoleWithOIDC", "Success") >= 2, "credentials were not refreshed");
    assert_eq!(
        sim.count("AssumeRoleWithOIDC", "AuthenticationFail.OIDCToken.Invalid"),
        0,
        "the rotated file was not re-read"
    );
    for action in ["AllocateEipSegmentAddress", "DescribeEipSegment", "ReleaseEipSegmentAddress"] {
        assert_eq!(sim.count(action, "InvalidSecurityToken.Expired"), 0, "{action} was sent with expired credentials");
    }

    // An expired token: a terminal condition that says so.
    std::fs::write(&token_file, oidc_token(now - 7200, now - 3600)).unwrap();
    std::thread::sleep(Duration::from_secs(4));
    c.apply(&segment_yaml(&ns, "expired", "  regionId: cn-hangzhou\n  eipMask: 28\n")).unwrap();
    let obj = eventually("expired token reported", T, || {
        c.get(&ns, "expired").filter(|o| o["status"]["lastError"]["code"] == "AuthenticationFail.OIDCToken.Expired")
    });
    assert_eq!(condition(&obj, "Synced").unwrap()["reason"], "Terminal");
    c.kubectl(&["delete", "eipsegment", "expired", "-n", &ns, "--timeout=30s"]);
    // Temporary secrets and tokens stay out of the log.
    let log = op.log_text();
    assert!(!log.contains("CAIS"), "a security token reached the log");
    assert!(!log.contains(&std::fs::read_to_string(&token_file).unwrap()), "the OIDC token reached the log");
}

/// `kubectl get` of one object, `-o wide` or not.
fn table(c: &Cluster, ns: &str, name: &str, wide: bool) -> String {
    let mut args = vec!["get", "eipseg", name, "-n", ns];
    if wide {
        args.extend(["-o", "wide"]);
    }
    c.kubectl(&args)
}

/// The region label of every per-region metric in these tests.
const REGION_LABEL: &str = r#"region="cn-hangzhou""#;

/// (allocationId, ipAddress) of each address in a list of EIPs, in the list's order.
fn address_pairs(list: &serde_json::Value) -> Vec<(String, String)> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|m| (m["allocationId"].as_str().unwrap().into(), m["ipAddress"].as_str().unwrap().into()))
        .collect()
}

/// Ready: the member EIPs of `web` are recorded, in address order, as the cloud has them. Returns
/// the object and the addresses.
fn check_addresses_recorded(c: &Cluster, sim: &Simulator, ns: &str, id: &str) -> (serde_json::Value, Vec<String>) {
    let obj =
        eventually("addresses recorded", T, || c.get(ns, "web").filter(|o| o["status"]["lastAddress"].is_string()));
    let mut want = address_pairs(&sim.segment(id).unwrap()["members"]);
    want.sort_by_key(|(_, ip)| ip.parse::<std::net::Ipv4Addr>().unwrap());
    let got = address_pairs(&obj["status"]["addresses"]);
    assert_eq!((got.len(), &got), (16, &want));
    assert_eq!(obj["status"]["firstAddress"].as_str(), Some(want[0].1.as_str()));
    assert_eq!(obj["status"]["lastAddress"].as_str(), Some(want[15].1.as_str()));
    (obj, want.into_iter().map(|(_, ip)| ip).collect())
}

/// `kubectl get` shows the settled segment as Ready, and `-o wide` its first and last address,
/// its sync and its account.
fn check_ready_row(c: &Cluster, ns: &str, obj: &serde_json::Value, addresses: &[String]) {
    let default = table(c, ns, "web", false);
    assert_eq!(row(&default, &["web"], "READY"), "True", "{default}");
    assert_eq!(row(&default, &["web"], "REASON"), "Allocated");
    let wide = table(c, ns, "web", true);
    assert_eq!(row(&wide, &["web"], "FIRST"), addresses[0], "{wide}");
    assert_eq!(row(&wide, &["web"], "LAST"), addresses[15]);
    assert_eq!(row(&wide, &["web"], "SYNCED"), "Succeeded");
    assert_eq!(Some(row(&wide, &["web"], "ACCOUNT").as_str()), obj["status"]["accountId"].as_str());
}

/// A release blocked by a bound member EIP; `kubectl get` keeps the cloud status as the cloud has
/// it and says why the object is not Ready.
fn block_a_release(c: &Cluster, sim: &Simulator, ns: &str) {
    let bound = sim.seed(json!({"members": [{"index": 3, "status": "InUse", "instanceId": "i-web01"}]}));
    let spec = format!("  regionId: cn-hangzhou\n  segmentInstanceId: {bound}\n  deletionPolicy: Delete\n");
    c.apply(&segment_yaml(ns, "bound", &spec)).unwrap();
    wait_ready(c, ns, "bound");
    c.kubectl(&["delete", "eipsegment", "bound", "-n", ns, "--wait=false"]);
    eventually("Ready False ReleaseBlocked", T, || {
        c.get(ns, "bound").filter(|o| condition(o, "Ready").is_some_and(|r| r["reason"] == "ReleaseBlocked"))
    });
    println!("kubectl get eipseg during a blocked release:\n{}", c.kubectl(&["get", "eipseg", "-n", ns]));
    let default = table(c, ns, "bound", false);
    assert_eq!(row(&default, &["bound"], "READY"), "False", "{default}");
    assert_eq!(row(&default, &["bound"], "REASON"), "ReleaseBlocked");
    assert!(!row(&default, &["bound"], "DELETING").is_empty(), "{default}");
    let wide = table(c, ns, "bound", true);
    assert_eq!(row(&wide, &["bound"], "STATUS"), "Allocated", "{wide}");
    assert_eq!(row(&wide, &["bound"], "SYNCED"), "Blocked", "{wide}");
}

/// The metrics an alert needs, with no object name in them.
fn check_blocked_release_metrics(op: &Operator) {
    let region = REGION_LABEL;
    eventually("objects gauge", T, || {
        (op.metric(&format!(r#"eipsegment_objects{{{region},ready="False",reason="ReleaseBlocked"}}"#)) == Some(1.0))
            .then_some(())
    });
    assert_eq!(op.metric(&format!(r#"eipsegment_objects{{{region},ready="True",reason="Allocated"}}"#)), Some(4.0));
    assert_eq!(op.metric(&format!("eipsegment_pending_deletions{{{region}}}")), Some(1.0));
    let first = op.metric(&format!("eipsegment_oldest_pending_deletion_seconds{{{region}}}")).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let later = op.metric(&format!("eipsegment_oldest_pending_deletion_seconds{{{region}}}")).unwrap();
    assert!(first > 0.0 && later >= first + 1.5, "the age grows: {first} then {later}");
    let blocked = op.metric(&format!(r#"eipsegment_objects_synced{{{region},class="Blocked"}}"#));
    let ok = op.metric(&format!(r#"eipsegment_objects_synced{{{region},class="Succeeded"}}"#));
    assert_eq!(blocked.unwrap_or(0.0) + ok.unwrap_or(0.0), 5.0, "blocked {blocked:?}, succeeded {ok:?}");
    assert!(!op.scrape("/metrics").1.contains("bound"), "no object names in metric labels");
}

/// Waits until the region's unowned gauge reads `want`.
fn wait_unowned(op: &Operator, what: &str, want: f64) {
    eventually(what, T, || {
        (op.metric(&format!("eipsegment_unowned_segments{{{REGION_LABEL}}}")) == Some(want)).then_some(())
    });
}

/// Two segments no object names: the drift checks' region scan counts them, at no extra call.
fn check_strays_counted(op: &Operator, sim: &Simulator) {
    let strays = [sim.seed(json!({})), sim.seed(json!({}))];
    wait_unowned(op, "unowned segments", 2.0);
    assert_ne!(op.metric(&format!("eipsegment_unowned_segments{{{REGION_LABEL}}}")), Some(3.0), "{strays:?}");
}

/// Retain lets the blocked object go; the deletion gauges follow, and the kept segment is now one
/// that no object names.
fn retain_and_watch_the_gauges(c: &Cluster, op: &Operator, ns: &str) {
    set_retain(c, ns, "bound");
    wait_gone(c, ns, "bound");
    eventually("no pending deletion", T, || {
        (op.metric(&format!("eipsegment_pending_deletions{{{REGION_LABEL}}}")) == Some(0.0)).then_some(())
    });
    wait_unowned(op, "three unowned", 3.0);
}

#[test]
fn a_blocked_release_is_plain_in_kubectl_get_status_and_metrics() {
    let c = Cluster::shared();
    let ns = c.namespace("daytwo");
    let sim = Simulator::start(&[]);
    // Drift checks every 4 s; allocations at once, so that the settled segments' checks fall due
    // together and are made as one scan of the region's page (which the unowned gauge reads).
    let op = Operator::start(c, &sim, &ns, &["--resync-seconds", "4", "--allocate-quota", "20/1"]);
    let names = ["web", "api-0", "api-1", "api-2"];
    let manifests: Vec<String> =
        names.iter().map(|n| segment_yaml(&ns, n, "  regionId: cn-hangzhou\n  eipMask: 28\n")).collect();
    c.apply(&manifests.join("---\n")).unwrap();
    let id = segment_id(&wait_ready(c, &ns, "web"));
    names.iter().for_each(|n| drop(wait_ready(c, &ns, n)));
    let (obj, addresses) = check_addresses_recorded(c, &sim, &ns, &id);
    // Drift checks do not read them again.
    std::thread::sleep(Duration::from_secs(9));
    assert_eq!(sim.count("DescribeEipAddresses", "Success"), 4, "read once each (16 EIPs are one page)");
    check_ready_row(c, &ns, &obj, &addresses);

    block_a_release(c, &sim, &ns);
    check_blocked_release_metrics(&op);
    check_strays_counted(&op, &sim);
    retain_and_watch_the_gauges(c, &op, &ns);
    // With one settled segment left, drift checks look by ID: no scan, so after two drift
    // intervals the region's figure is no longer reported rather than left stale.
    c.kubectl(&["delete", "eipsegment", "api-0", "api-1", "api-2", "-n", &ns]);
    eventually("no stale figure", T, || {
        op.metric(&format!("eipsegment_unowned_segments{{{REGION_LABEL}}}")).is_none().then_some(())
    });
}

#[test]
fn kubectl_explain_describes_every_enum_value() {
    let c = Cluster::shared();
    for (field, words) in [
        ("eipsegment.spec.isp", &["BGP_PRO", "premium", "BGP_FinanceCloud", "ChinaMobile_L2"][..]),
        ("eipsegment.spec.internetChargeType", &["PayByTraffic", "outbound data", "PayByBandwidth"][..]),
        ("eipsegment.spec.deletionPolicy", &["Retain", "keeps billing", "Delete"][..]),
        ("eipsegment.status.cloudStatus", &["Missing", "Releasing", "Allocating"][..]),
        ("eipsegment.status.lastError.class", &["Transient", "Blocked", "Terminal"][..]),
        ("eipsegment.status.addresses", &["allocationId", "ipAddress", "DescribeEipAddresses"][..]),
    ] {
        let text = c.kubectl(&["explain", field]);
        for word in words {
            assert!(text.contains(word), "{field}: {word:?} not in\n{text}");
        }
    }
}

#[test]
fn a_storm_shows_in_the_deletion_gauges_until_the_last_release_is_confirmed() {
    let c = Cluster::shared();
    let ns = c.namespace("stormgauges");
    let sim = Simulator::start(&["--release-seconds", "3"]);
    let op = Operator::start(c, &sim, &ns, &[]);
    let names: Vec<String> = (0..12).map(|i| format!("s{i}")).collect();
    for n in &names {
        c.apply(&segment_yaml(&ns, n, "  regionId: cn-hangzhou\n  eipMask: 28\n")).unwrap();
    }
    for n in &names {
        wait_ready(c, &ns, n);
    }
    let region = r#"region="cn-hangzhou""#;
    assert_eq!(op.metric(&format!(r#"eipsegment_objects{{{region},ready="True",reason="Allocated"}}"#)), Some(12.0));
    let mut args = vec!["delete", "eipsegment", "-n", &ns, "--wait=false"];
    args.extend(names.iter().map(String::as_str));
    c.kubectl(&args);
    let mut most_pending = 0.0f64;
    let mut releasing_seen = 0.0f64;
    eventually("all released", Duration::from_secs(120), || {
        most_pending = most_pending.max(op.metric(&format!("eipsegment_pending_deletions{{{region}}}")).unwrap_or(0.0));
        let releasing = op.metric(&format!(r#"eipsegment_objects{{{region},ready="False",reason="Releasing"}}"#));
        releasing_seen = releasing_seen.max(releasing.unwrap_or(0.0));
        names.iter().all(|n| c.get(&ns, n).is_none()).then_some(())
    });
    assert!(most_pending >= 6.0, "the gauge saw the storm: at most {most_pending} pending");
    assert!(releasing_seen >= 1.0, "objects were seen Releasing");
    eventually("the gauges settle", T, || {
        let pending = op.metric(&format!("eipsegment_pending_deletions{{{region}}}"));
        let objects = op.metric(&format!(r#"eipsegment_objects{{{region},ready="True",reason="Allocated"}}"#));
        // No object left in the region: no series for it.
        (pending.is_none() && objects.is_none()).then_some(())
    });
    assert!(sim.segments().is_empty());
    assert_eq!(sim.count("ReleaseEipSegmentAddress", "Success"), 12);
}

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/examples");

/// The example `file` as a reader applies it, moved into `ns`, the adopted segment's ID replaced by
/// `adopt` and the Secrets' placeholder keys by the simulator's.
fn example(file: &str, ns: &str, adopt: &str) -> String {
    let text = std::fs::read_to_string(format!("{EXAMPLES}/{file}")).unwrap();
    let mut docs = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let mut doc = <serde_yaml::Value as serde::Deserialize>::deserialize(doc).unwrap();
        if doc.is_null() {
            continue;
        }
        doc["metadata"]["namespace"] = ns.into();
        if doc["spec"]["segmentInstanceId"].is_string() {
            doc["spec"]["segmentInstanceId"] = adopt.into();
        }
        if doc["kind"] == "Secret" {
            doc["stringData"]["ALIBABA_CLOUD_ACCESS_KEY_ID"] = ACCESS_KEY_ID.into();
            doc["stringData"]["ALIBABA_CLOUD_ACCESS_KEY_SECRET"] = ACCESS_KEY_SECRET.into();
        }
        docs.push(format!("---\n{}", serde_yaml::to_string(&doc).unwrap()));
    }
    docs.concat()
}

fn secret_finalizers(c: &Cluster, ns: &str, name: &str) -> String {
    c.kubectl(&["get", "secret", name, "-n", ns, "-o", "jsonpath={.metadata.finalizers}"])
}

/// Every EipSegment example of deploy/examples/, applied to the real control plane with the
/// operator and the simulator: each turns Ready in its mode, and its deletion does what it says.
#[test]
fn every_example_manifest_turns_ready_and_goes_as_it_says() {
    let c = Cluster::shared();
    let (ns, team) = (c.namespace("examples"), c.namespace("examples-team"));
    grant_secret_rights(c, &ns);
    grant_secret_rights(c, &team);
    let sim = Simulator::start(&[]);
    let _op = Operator::start(c, &sim, &format!("{ns},{team}"), &["--secret-credentials"]);
    let legacy = sim.seed(json!({"regionId": "cn-hangzhou", "eipMask": 28}));
    for file in ["eipsegment.yaml", "retain.yaml", "adopt.yaml"] {
        c.apply(&example(file, &ns, &legacy)).unwrap();
    }
    c.apply(&example("secret-credentials.yaml", &team, &legacy)).unwrap();

    let ready = |ns: &str, name: &str| -> (String, serde_json::Value) {
        let obj = wait_ready(c, ns, name);
        (condition(&obj, "Ready").unwrap()["reason"].as_str().unwrap().to_string(), obj["status"].clone())
    };
    let (reason, web) = ready(&ns, "web-frontend");
    assert_eq!((reason.as_str(), &web["ipCount"], &web["deletionPolicy"]), ("Allocated", &json!(16), &json!("Delete")));
    let (reason, kept) = ready(&ns, "egress-retained");
    assert_eq!(
        (reason.as_str(), &kept["ipCount"], &kept["deletionPolicy"]),
        ("Allocated", &json!(32), &json!("Retain"))
    );
    let (reason, adopted) = ready(&ns, "legacy-frontend");
    assert_eq!(
        (reason.as_str(), &adopted["segmentInstanceId"], &adopted["deletionPolicy"]),
        ("Adopted", &json!(legacy), &json!("Retain"))
    );
    let (_, by_default) = ready(&team, "team-a-egress");
    assert_eq!(by_default["credentialsSource"], "Secret/eipsegment-credentials");
    let (_, by_ref) = ready(&team, "team-a-billing");
    assert_eq!(by_ref["credentialsSource"], "Secret/billing-account");
    assert!(secret_finalizers(c, &team, "billing-account").contains("eipsegment.io/in-use-by-team-a-billing"));

    // Delete releases; Retain and the adoption's default keep.
    let (web_id, kept_id) = (segment_id(&json!({"status": web})), segment_id(&json!({"status": kept})));
    for name in ["web-frontend", "egress-retained", "legacy-frontend"] {
        c.kubectl(&["delete", "eipsegment", name, "-n", &ns, "--timeout=60s"]);
    }
    assert!(sim.segment(&web_id).is_none(), "Delete releases the allocated segment");
    assert!(sim.segment(&kept_id).is_some() && c.has_event(&ns, "egress-retained", "Retained"));
    assert!(sim.segment(&legacy).is_some(), "an adoption keeps its segment by default");
    for name in ["team-a-egress", "team-a-billing"] {
        c.kubectl(&["delete", "eipsegment", name, "-n", &team, "--timeout=60s"]);
    }
    assert_eq!(secret_finalizers(c, &team, "billing-account"), "", "the Secret is let go once its segment is released");
    assert_eq!(sim.count("ReleaseEipSegmentAddress", "Success"), 3);
}
