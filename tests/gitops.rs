//! Removals the way GitOps tools make them, on a control plane with kube-controller-manager (garbage
//! collector, namespace controller): foreground and background propagation, namespace deletion,
//! `kubectl apply --prune`, and an operator that is down while deletions are requested. Removals
//! through a real Argo CD are the `argocd` suite's.

use eipsegment_test_support as support;

use std::time::{Duration, Instant};

use support::*;

fn create(c: &Cluster, ns: &str, name: &str) -> String {
    c.apply(&segment_yaml(ns, name, "  regionId: cn-hangzhou\n  eipMask: 28\n")).unwrap();
    segment_id(&wait_ready(c, ns, name))
}

#[test]
fn foreground_and_background_deletes_release_exactly_once() {
    let c = Cluster::shared();
    let ns = c.namespace("propagation");
    let sim = Simulator::start(&["--release-seconds", "3"]);
    let _op = Operator::start(c, &sim, &ns, &[]);
    let kube = Kube::new(c);
    for (name, cascade) in [("fg", "Foreground"), ("bg", "Background")] {
        let id = create(c, &ns, name);
        // The apiserver's answer to the delete shows the propagation it took: the garbage
        // collector may drop `foregroundDeletion` (no dependents) before any later read.
        let answer = kube.delete(&ns, name, cascade).expect("kept by the operator's finalizer");
        let finalizers = answer["metadata"]["finalizers"].to_string();
        assert!(finalizers.contains("eipsegment.io/release"), "{finalizers}");
        assert_eq!(finalizers.contains("foregroundDeletion"), cascade == "Foreground", "{finalizers}");
        eventually("Releasing", WAIT, || sim.segment(&id).filter(|s| s["status"] == "Releasing"));
        assert!(c.get(&ns, name).is_some(), "{cascade}: the object went before the release was confirmed");
        wait_gone(c, &ns, name);
        assert!(sim.segment(&id).is_none(), "{cascade}: the object went but the segment stayed");
    }
    assert_eq!(sim.count("ReleaseEipSegmentAddress", "Success"), 2);
}

#[test]
fn deleting_a_namespace_waits_for_every_release() {
    let c = Cluster::shared();
    let ns = c.namespace("nsdelete");
    let sim = Simulator::start(&["--release-seconds", "3"]);
    let _op = Operator::start(c, &sim, &ns, &[]);
    let names = ["n1", "n2", "n3"];
    let ids: Vec<String> = names.iter().map(|n| create(c, &ns, n)).collect();
    let started = Instant::now();
    c.kubectl(&["delete", "namespace", &ns, "--wait=false"]);
    eventually("segments releasing", WAIT, || {
        ids.iter().all(|id| sim.segment(id).is_some_and(|s| s["status"] == "Releasing")).then_some(())
    });
    let phase = c.kubectl(&["get", "namespace", &ns, "-o", "jsonpath={.status.phase}"]);
    assert_eq!(phase, "Terminating");
    eventually("namespace gone", WAIT, || {
        let (ok, _, _) = c.kubectl_as(c.admin_kubeconfig(), &["get", "namespace", &ns], None);
        (!ok).then_some(())
    });
    let took = started.elapsed();
    assert!(ids.iter().all(|id| sim.segment(id).is_none()), "the namespace went but segments stayed");
    assert_eq!(sim.count("ReleaseEipSegmentAddress", "Success"), 3);
    eprintln!("namespace deletion of {} segments took {took:?} (release takes 3 s in the simulator)", names.len());
}

#[test]
fn pruning_a_removed_manifest_releases_only_that_segment() {
    let c = Cluster::shared();
    let ns = c.namespace("prune");
    let sim = Simulator::start(&[]);
    let _op = Operator::start(c, &sim, &ns, &[]);
    let dir = tempfile::tempdir().unwrap();
    for name in ["keep-a", "keep-b", "drop"] {
        let manifest = format!(
            "apiVersion: eipsegment.io/v1alpha1\nkind: EipSegment\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels: {{app.kubernetes.io/part-of: prune-test}}\nspec:\n  regionId: cn-hangzhou\n  eipMask: 28\n"
        );
        std::fs::write(dir.path().join(format!("{name}.yaml")), manifest).unwrap();
    }
    // Custom resources are pruned only when allowed by name, as GitOps pruners scope them too.
    let apply = || {
        c.kubectl(&[
            "apply",
            "--prune",
            "-l",
            "app.kubernetes.io/part-of=prune-test",
            "--prune-allowlist=eipsegment.io/v1alpha1/EipSegment",
            "-n",
            &ns,
            "-f",
            dir.path().to_str().unwrap(),
        ])
    };
    apply();
    let ids: Vec<String> = ["keep-a", "keep-b", "drop"].iter().map(|n| segment_id(&wait_ready(c, &ns, n))).collect();
    std::fs::remove_file(dir.path().join("drop.yaml")).unwrap();
    let out = apply();
    assert!(out.contains("eipsegment.eipsegment.io/drop pruned"), "{out}");
    wait_gone(c, &ns, "drop");
    assert!(sim.segment(&ids[2]).is_none());
    assert!(sim.segment(&ids[0]).is_some() && sim.segment(&ids[1]).is_some(), "pruning touched the others");
    assert!(is_ready(&c.get(&ns, "keep-a").unwrap()) && is_ready(&c.get(&ns, "keep-b").unwrap()));
    assert_eq!(sim.count("ReleaseEipSegmentAddress", "Success"), 1);
    for n in ["keep-a", "keep-b"] {
        c.kubectl(&["delete", "eipsegment", n, "-n", &ns, "--timeout=60s"]);
    }
}

#[test]
fn deletions_requested_while_the_operator_is_down_complete_when_it_returns() {
    let c = Cluster::shared();
    let ns = c.namespace("opdown");
    let sim = Simulator::start(&[]);
    let mut op = Operator::start(c, &sim, &ns, &[]);
    let ids: Vec<String> = ["d1", "d2"].iter().map(|n| create(c, &ns, n)).collect();
    op.kill();
    for n in ["d1", "d2"] {
        c.kubectl(&["delete", "eipsegment", n, "-n", &ns, "--wait=false"]);
    }
    std::thread::sleep(Duration::from_secs(3));
    for n in ["d1", "d2"] {
        let obj = c.get(&ns, n).expect("waits with its finalizer while no operator runs");
        assert!(obj["metadata"]["deletionTimestamp"].is_string());
    }
    assert!(ids.iter().all(|id| sim.segment(id).is_some()));
    op.start_again();
    for n in ["d1", "d2"] {
        wait_gone(c, &ns, n);
    }
    assert!(ids.iter().all(|id| sim.segment(id).is_none()));
    assert_eq!(sim.count("ReleaseEipSegmentAddress", "Success"), 2);
}

/// A deleting object whose finalizer a person strips (as users do when a GitOps sync hangs) leaves
/// nothing behind in the operator: it is no longer counted as a release in flight, and the poller
/// stops looking at its segment, which the cloud is still releasing.
#[test]
fn an_object_removed_with_its_finalizer_stripped_is_forgotten() {
    let c = Cluster::shared();
    let ns = c.namespace("stripped");
    let sim = Simulator::start(&["--release-seconds", "60"]);
    let op = Operator::start(c, &sim, &ns, &[]);
    let id = create(c, &ns, "gone");
    c.kubectl(&["delete", "eipsegment", "gone", "-n", &ns, "--wait=false"]);
    eventually("the release in flight", WAIT, || {
        (op.metric("eipsegment_releases_in_flight") == Some(1.0)
            && sim.segment(&id).is_some_and(|s| s["status"] == "Releasing"))
        .then_some(())
    });
    c.strip_finalizers(&ns, "gone");
    wait_gone(c, &ns, "gone");
    eventually("the gauge back to 0", WAIT, || (op.metric("eipsegment_releases_in_flight") == Some(0.0)).then_some(()));
    // The poller's looks at a releasing segment come about every poll interval (0.5 s here).
    std::thread::sleep(Duration::from_secs(2));
    let looks = sim.count("DescribeEipSegment", "Success");
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(
        sim.count("DescribeEipSegment", "Success"),
        looks,
        "the poller still looks at the removed object's segment"
    );
    assert!(sim.segment(&id).is_some_and(|s| s["status"] == "Releasing"), "the cloud finishes the accepted release");
}

/// A throttling answer's TimeLeft can be anything; one of three hours must not stop the looks at a
/// region (and so the deletions waiting on them) for that long: once throttling stops, the deletion
/// finishes within the operator's longest wait for a hint (60 s).
#[test]
fn a_deletion_finishes_once_throttling_stops_whatever_time_left_the_cloud_gave() {
    let c = Cluster::shared();
    let ns = c.namespace("timeleft");
    let sim = Simulator::start(&["--release-seconds", "1"]);
    let _op = Operator::start(c, &sim, &ns, &[]);
    let id = create(c, &ns, "held");
    let throttle = serde_json::json!({
        "throttleRate": 1.0, "throttleTimeLeftMs": 3 * 3600 * 1000, "actions": ["DescribeEipSegment"]
    });
    sim.admin("PUT", "faults", throttle);
    c.kubectl(&["delete", "eipsegment", "held", "-n", &ns, "--wait=false"]);
    eventually("a look throttled", WAIT, || (sim.count("DescribeEipSegment", "Throttling.User") > 0).then_some(()));
    std::thread::sleep(Duration::from_secs(3));
    sim.admin("PUT", "faults", serde_json::json!({}));
    let stopped = Instant::now();
    wait_gone(c, &ns, "held");
    assert!(sim.segment(&id).is_none());
    let took = stopped.elapsed();
    assert!(took < Duration::from_secs(75), "the deletion waited {took:?} after throttling stopped");
    assert_eq!(sim.count("ReleaseEipSegmentAddress", "Success"), 1);
    eprintln!("the deletion finished {took:?} after throttling stopped (the cloud had asked for 3 h)");
}
