//! End to end, the ways a segment could leak or be released wrongly: credentials of another
//! account, a credentials Secret or the operator's rights going away with a namespace, answers that
//! look like absence and are not, allocations whose answer was lost, Retain at the wrong moment, two
//! objects naming one segment, a status the operator does not know, and an object restored from its
//! manifest. Each runs the real operator binary (EIPSEG_OPERATOR_BIN may name another build) against
//! a real control plane, the VPC simulator and kubectl, and counts what the simulator's history says.

use eipsegment_test_support as support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::*;

const T: Duration = WAIT;
const ACCOUNT: &str = "1234567890123456";
const OTHER_ACCOUNT: &str = "6543210987654321";
const OTHER_KEY_ID: &str = "LTAI5tSimulatorOtherKey";
const OTHER_KEY_SECRET: &str = "SimulatorOtherSecretNotForProduction";
const ALLOCATE: &str = "AllocateEipSegmentAddress";
const RELEASE: &str = "ReleaseEipSegmentAddress";
const DESCRIBE: &str = "DescribeEipSegment";
const SPEC: &str = "  regionId: cn-hangzhou\n  eipMask: 28\n";

// ---- the cluster side ----

/// What the chart grants in a namespace with Secret-referenced credentials: get, and patch for the
/// finalizer that keeps a Secret while segments depend on it.
fn grant_secrets(c: &Cluster, ns: &str) {
    c.apply(&format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {{name: eipsegment-operator-secrets, namespace: {ns}}}\nrules:\n- {{apiGroups: [\"\"], resources: [secrets], verbs: [get, patch]}}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: eipsegment-operator-secrets, namespace: {ns}}}\nroleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: eipsegment-operator-secrets}}\nsubjects:\n- {{kind: ServiceAccount, name: eipsegment-operator, namespace: eipsegment-system}}\n"
    ))
    .unwrap();
}

fn put_secret(c: &Cluster, ns: &str, name: &str, key_id: &str, key_secret: &str) {
    c.apply(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {ns}}}\nstringData:\n  ALIBABA_CLOUD_ACCESS_KEY_ID: {key_id}\n  ALIBABA_CLOUD_ACCESS_KEY_SECRET: {key_secret}\n"
    ))
    .unwrap();
}

/// The Secret as JSON, or None when it does not exist.
fn secret(c: &Cluster, ns: &str, name: &str) -> Option<Value> {
    let (ok, out, err) = c.kubectl_as(c.admin_kubeconfig(), &["get", "secret", name, "-n", ns, "-o", "json"], None);
    if ok {
        Some(serde_json::from_str(&out).unwrap())
    } else {
        assert!(err.contains("NotFound"), "kubectl get secret failed: {err}");
        None
    }
}

fn finalizers(obj: &Value) -> Vec<String> {
    obj["metadata"]["finalizers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f.as_str().map(String::from))
        .collect()
}

fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj["metadata"]["annotations"][key].as_str()
}

fn uid(obj: &Value) -> String {
    obj["metadata"]["uid"].as_str().unwrap().to_string()
}

/// What a Ready object records of its segment's identity, in status and in annotations. Tests
/// check it after the behaviour it serves, so that an operator without it fails on the behaviour.
fn assert_identity(obj: &Value, account: &str, source: &str) {
    let id = segment_id(obj);
    assert_eq!(obj["status"]["accountId"], account, "status.accountId");
    assert_eq!(obj["status"]["credentialsSource"], source, "status.credentialsSource");
    for (key, want) in [
        ("eipsegment.io/account-id", account.to_string()),
        ("eipsegment.io/credentials-source", source.to_string()),
        ("eipsegment.io/allocation-token", format!("alloc-{}", uid(obj))),
        ("eipsegment.io/segment-id", id),
    ] {
        assert_eq!(annotation(obj, key), Some(want.as_str()), "annotation {key}");
    }
}

/// An operator with no credentials of its own unless `own` gives some: what objects act with comes
/// from Secrets in their namespace.
fn secret_operator(c: &Cluster, sim: &Simulator, ns: &str, extra: &[&str], own: Option<(&str, &str)>) -> Operator {
    let (id, key) = own.unwrap_or(("", ""));
    let mut args = vec!["--secret-credentials"];
    args.extend_from_slice(extra);
    Operator::start_with_env(
        c,
        sim,
        ns,
        &args,
        &[("ALIBABA_CLOUD_ACCESS_KEY_ID", id), ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", key)],
    )
}

fn delete_now(c: &Cluster, ns: &str, name: &str) {
    c.kubectl(&["delete", "eipsegment", name, "-n", ns, "--wait=false"]);
}

/// The object is still there, looked at every 300 ms for `how_long`; the last reading.
fn stays(c: &Cluster, ns: &str, name: &str, how_long: Duration) -> Value {
    let start = Instant::now();
    loop {
        let obj = c.get(ns, name).unwrap_or_else(|| panic!("{ns}/{name} went after {:?}", start.elapsed()));
        if start.elapsed() >= how_long {
            return obj;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn with_error(c: &Cluster, ns: &str, name: &str, code: &str) -> Value {
    eventually(&format!("{ns}/{name} lastError {code}"), T, || {
        c.get(ns, name).filter(|o| o["status"]["lastError"]["code"] == code)
    })
}

fn with_ready_reason(c: &Cluster, ns: &str, name: &str, reason: &str) -> Value {
    eventually(&format!("{ns}/{name} Ready reason {reason}"), T, || {
        c.get(ns, name).filter(|o| condition(o, "Ready").is_some_and(|r| r["reason"] == reason))
    })
}

/// The notes of the object's events with this reason, with whether each is a Warning.
fn events_of(c: &Cluster, ns: &str, name: &str, reason: &str) -> Vec<(bool, String)> {
    c.events(ns, name).into_iter().filter(|(_, r, _)| r == reason).map(|(t, _, note)| (t == "Warning", note)).collect()
}

fn wait_event(c: &Cluster, ns: &str, name: &str, reason: &str) -> (bool, String) {
    eventually(&format!("{ns}/{name} event {reason}"), T, || events_of(c, ns, name, reason).into_iter().next())
}

fn namespace_gone(c: &Cluster, ns: &str) -> bool {
    let (ok, _, err) = c.kubectl_as(c.admin_kubeconfig(), &["get", "namespace", ns], None);
    assert!(ok || err.contains("NotFound"), "kubectl get namespace failed: {err}");
    !ok
}

// ---- the cloud side ----

/// The segments an account holds now.
fn segments_in(sim: &Simulator, account: &str) -> Vec<Value> {
    sim.admin("GET", &format!("state?account={account}"), Value::Null)["segments"].as_array().unwrap().clone()
}

/// Every segment the simulator ever held, oldest first.
fn history(sim: &Simulator) -> Vec<Value> {
    sim.admin("GET", "history", Value::Null)["segments"].as_array().unwrap().clone()
}

fn history_of(sim: &Simulator, id: &str) -> Value {
    history(sim).into_iter().find(|h| h["instanceId"] == id).unwrap_or_else(|| panic!("{id} not in the history"))
}

/// Segments created by an accepted AllocateEipSegmentAddress (seeded ones have no token).
fn allocations(sim: &Simulator) -> Vec<Value> {
    history(sim).into_iter().filter(|h| h["allocationToken"].is_string()).collect()
}

fn releases_accepted(sim: &Simulator, id: &str) -> usize {
    history_of(sim, id)["releaseAcceptedAtMs"].as_array().unwrap().len()
}

/// Every answer to the action, whatever its outcome.
fn calls(sim: &Simulator, action: &str) -> u64 {
    let counters = sim.admin("GET", "counters", Value::Null);
    counters[action].as_object().map_or(0, |outcomes| outcomes.values().filter_map(Value::as_u64).sum())
}

fn faults(sim: &Simulator, body: Value) {
    sim.admin("PUT", "faults", body);
}

/// An allocation that the cloud takes 2.5 s to answer; the operator is killed while it waits, the
/// cloud finishes it anyway. Returns the segment the cloud created, which the object does not know.
fn lose_the_allocation_answer(c: &Cluster, sim: &Simulator, op: &mut Operator, ns: &str, name: &str) -> String {
    faults(sim, json!({"delayRate": 1.0, "delayMsMin": 2500, "delayMsMax": 2500, "actions": [ALLOCATE]}));
    eventually("allocation pending marker", T, || {
        c.get(ns, name).filter(|o| o["status"]["allocationRequestedAt"].is_string())
    });
    std::thread::sleep(Duration::from_millis(500));
    op.kill();
    std::thread::sleep(Duration::from_secs(3));
    faults(sim, json!({}));
    let obj = c.get(ns, name).unwrap();
    assert!(obj["status"]["segmentInstanceId"].is_null(), "the answer was not lost: {}", obj["status"]);
    let created = allocations(sim);
    assert_eq!(created.len(), 1, "the cloud finished the request the operator never heard back from");
    created[0]["instanceId"].as_str().unwrap().to_string()
}

// ---- 1. whose account ----

#[test]
fn keys_of_another_account_in_the_secret_neither_release_nor_prove_absence() {
    let c = Cluster::shared();
    let ns = c.namespace("mismatch");
    grant_secrets(c, &ns);
    let sim = Simulator::start(&[]);
    // A resync every 2 s: the change of keys is noticed without any change to the object.
    let _op = secret_operator(c, &sim, &ns, &["--resync-seconds", "2"], None);
    put_secret(c, &ns, "keys", ACCESS_KEY_ID, ACCESS_KEY_SECRET);
    c.apply(&segment_yaml(&ns, "web", &format!("{SPEC}  credentialsSecretRef: {{name: keys}}\n"))).unwrap();
    let ready = wait_ready(c, &ns, "web");
    let id = segment_id(&ready);
    let held_by = format!("eipsegment.io/in-use-by-{}", ready["metadata"]["name"].as_str().unwrap());

    put_secret(c, &ns, "keys", OTHER_KEY_ID, OTHER_KEY_SECRET);
    std::thread::sleep(Duration::from_secs(3));
    // The other account does not see the segment: that is no proof it is gone.
    delete_now(c, &ns, "web");
    let obj = stays(c, &ns, "web", Duration::from_secs(8));
    assert_eq!(calls(&sim, RELEASE), 0, "a release was attempted with the other account's keys");
    let held: Vec<Value> = segments_in(&sim, ACCOUNT);
    assert!(held.len() == 1 && held[0]["instanceId"] == id && held[0]["status"] == "Allocated", "{held:?}");
    assert!(segments_in(&sim, OTHER_ACCOUNT).is_empty());
    assert_eq!(obj["status"]["lastError"]["code"], "AccountMismatch", "{}", obj["status"]);
    let synced = condition(&obj, "Synced").unwrap();
    assert_eq!((synced["status"].as_str(), synced["reason"].as_str()), (Some("False"), Some("Terminal")));
    let message = synced["message"].as_str().unwrap();
    assert!(message.contains(ACCOUNT) && message.contains(OTHER_ACCOUNT), "{message}");
    let (warning, _) = wait_event(c, &ns, "web", "AccountMismatch");
    assert!(warning, "AccountMismatch is a Warning");
    assert_identity(&ready, ACCOUNT, "Secret/keys");
    assert!(finalizers(&secret(c, &ns, "keys").unwrap()).contains(&held_by), "the Secret is not held");

    put_secret(c, &ns, "keys", ACCESS_KEY_ID, ACCESS_KEY_SECRET);
    wait_gone(c, &ns, "web");
    assert!(sim.segment(&id).is_none());
    assert_eq!(releases_accepted(&sim, &id), 1);
    assert!(c.has_event(&ns, "web", "Released"));
    eventually("the Secret let go", T, || {
        (!finalizers(&secret(c, &ns, "keys").unwrap()).contains(&held_by)).then_some(())
    });
}

#[test]
fn a_deleted_default_secret_stays_while_its_object_holds_a_segment() {
    let c = Cluster::shared();
    let ns = c.namespace("secretgone");
    grant_secrets(c, &ns);
    let sim = Simulator::start(&[]);
    // The operator's own keys act for the other account: falling back to them would see nothing.
    let _op = secret_operator(c, &sim, &ns, &["--resync-seconds", "2"], Some((OTHER_KEY_ID, OTHER_KEY_SECRET)));
    put_secret(c, &ns, "eipsegment-credentials", ACCESS_KEY_ID, ACCESS_KEY_SECRET);
    c.apply(&segment_yaml(&ns, "web", SPEC)).unwrap();
    let ready = wait_ready(c, &ns, "web");
    let id = segment_id(&ready);
    let held_by = format!("eipsegment.io/in-use-by-{}", ready["metadata"]["name"].as_str().unwrap());

    c.kubectl(&["delete", "secret", "eipsegment-credentials", "-n", &ns, "--wait=false"]);
    std::thread::sleep(Duration::from_secs(4));
    let s = secret(c, &ns, "eipsegment-credentials").expect("the Secret went while a segment depends on it");
    assert!(s["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(finalizers(&s), vec![held_by.clone()]);
    // The object keeps working with it (two resyncs went by).
    let obj = c.get(&ns, "web").unwrap();
    assert!(is_ready(&obj), "{}", obj["status"]);
    assert_eq!(condition(&obj, "Synced").unwrap()["status"], "True", "{}", obj["status"]);
    // No new segment is allocated with a Secret being deleted.
    c.apply(&segment_yaml(&ns, "late", SPEC)).unwrap();
    let late = with_error(c, &ns, "late", "SecretTerminating");
    assert!(late["status"]["segmentInstanceId"].is_null());
    assert_eq!(allocations(&sim).len(), 1);

    for name in ["web", "late"] {
        delete_now(c, &ns, name);
    }
    wait_gone(c, &ns, "late");
    assert!(c.has_event(&ns, "late", "NothingAllocated"));
    wait_gone(c, &ns, "web");
    assert!(sim.segment(&id).is_none(), "the object went, its segment stayed");
    assert_eq!(releases_accepted(&sim, &id), 1);
    eventually("the Secret gone", T, || secret(c, &ns, "eipsegment-credentials").is_none().then_some(()));
    assert!(segments_in(&sim, ACCOUNT).is_empty() && segments_in(&sim, OTHER_ACCOUNT).is_empty());
    assert_identity(&ready, ACCOUNT, "Secret/eipsegment-credentials");
}

/// Three segments in two accounts (the namespace's default Secret, and a Secret of the other
/// account), then `kubectl delete namespace`: each released exactly once, the namespace gone.
fn namespace_deletion(c: &Cluster, sim: &Simulator, ns: &str, watch_rbac: impl Fn()) {
    put_secret(c, ns, "eipsegment-credentials", ACCESS_KEY_ID, ACCESS_KEY_SECRET);
    put_secret(c, ns, "other-account", OTHER_KEY_ID, OTHER_KEY_SECRET);
    c.apply(&segment_yaml(ns, "a", SPEC)).unwrap();
    c.apply(&segment_yaml(ns, "b", SPEC)).unwrap();
    c.apply(&segment_yaml(ns, "c", &format!("{SPEC}  credentialsSecretRef: {{name: other-account}}\n"))).unwrap();
    let ready: Vec<Value> = ["a", "b", "c"].iter().map(|name| wait_ready(c, ns, name)).collect();
    let ids: Vec<String> = ready.iter().map(segment_id).collect();
    assert_eq!((segments_in(sim, ACCOUNT).len(), segments_in(sim, OTHER_ACCOUNT).len()), (2, 1));

    c.kubectl(&["delete", "namespace", ns, "--wait=false"]);
    watch_rbac();
    eventually("namespace gone", T * 2, || namespace_gone(c, ns).then_some(()));
    for id in &ids {
        let h = history_of(sim, id);
        assert_eq!(h["releaseAcceptedAtMs"].as_array().unwrap().len(), 1, "{id}: {h}");
        assert!(h["goneAtMs"].is_u64() && h["removedOutOfBand"] == false, "{id}: {h}");
    }
    assert!(segments_in(sim, ACCOUNT).is_empty(), "left in {ACCOUNT}: {:?}", segments_in(sim, ACCOUNT));
    assert!(
        segments_in(sim, OTHER_ACCOUNT).is_empty(),
        "left in {OTHER_ACCOUNT}: {:?}",
        segments_in(sim, OTHER_ACCOUNT)
    );
    assert_eq!(allocations(sim).len(), 3);
    for (obj, (account, source)) in ready.iter().zip([
        (ACCOUNT, "Secret/eipsegment-credentials"),
        (ACCOUNT, "Secret/eipsegment-credentials"),
        (OTHER_ACCOUNT, "Secret/other-account"),
    ]) {
        assert_identity(obj, account, source);
    }
}

#[test]
fn deleting_a_namespace_releases_each_segment_once_with_cluster_wide_rights() {
    let c = Cluster::shared();
    let ns = c.namespace("nsgone-cluster");
    // Cluster-wide mode: the Secret rights come with the ClusterRole, as the chart grants them
    // there, so the namespace's deletion cannot take them away.
    let grant = format!("eipsegment-operator-secrets-{ns}");
    c.apply(&format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {{name: {grant}}}\nrules:\n- {{apiGroups: [\"\"], resources: [secrets], verbs: [get, patch]}}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {{name: {grant}}}\nroleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {grant}}}\nsubjects:\n- {{kind: ServiceAccount, name: eipsegment-operator, namespace: eipsegment-system}}\n"
    ))
    .unwrap();
    let sim = Simulator::start(&["--release-seconds", "3"]);
    // Its own keys act for the other account: a fallback to them would see nothing of account 1.
    let _op = secret_operator(c, &sim, &ns, &[], Some((OTHER_KEY_ID, OTHER_KEY_SECRET)));
    namespace_deletion(c, &sim, &ns, || {});
    c.kubectl(&["delete", "clusterrolebinding,clusterrole", &grant]);
}

#[test]
fn deleting_a_namespace_releases_each_segment_once_with_rights_from_its_own_rolebinding() {
    let c = Cluster::shared();
    let ns = c.namespace("nsgone-scoped");
    let role = format!("eipsegment-operator-scoped-{ns}");
    c.apply(&format!(
        r#"apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: {role}}}
rules:
- {{apiGroups: [eipsegment.io], resources: [eipsegments], verbs: [get, list, watch, patch]}}
- {{apiGroups: [eipsegment.io], resources: [eipsegments/status], verbs: [get, patch]}}
- {{apiGroups: [eipsegment.io], resources: [eipsegments/finalizers], verbs: [update]}}
- {{apiGroups: [events.k8s.io], resources: [events], verbs: [create, patch]}}
- {{apiGroups: [""], resources: [secrets], verbs: [get, patch]}}
- {{apiGroups: [rbac.authorization.k8s.io], resources: [rolebindings], resourceNames: [eipsegment-operator], verbs: [get, patch]}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: eipsegment-operator
  namespace: {ns}
  finalizers: [eipsegment.io/rights-while-eipsegments-remain]
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {role}}}
subjects:
- {{kind: ServiceAccount, name: eipsegment-operator-scoped, namespace: eipsegment-system}}
"#
    ))
    .unwrap();
    let scoped = c.scoped_operator_kubeconfig();
    for (args, expect) in [
        (vec!["auth", "can-i", "list", "eipsegments.eipsegment.io", "-n", &ns], "yes"),
        (vec!["auth", "can-i", "list", "eipsegments.eipsegment.io", "--all-namespaces"], "no"),
        (vec!["auth", "can-i", "get", "secrets", "-n", "default"], "no"),
    ] {
        let (_, out, err) = c.kubectl_as(scoped, &args, None);
        assert_eq!(out.trim(), expect, "{args:?}: {out} {err}");
    }
    let sim = Simulator::start(&["--release-seconds", "4"]);
    let mut op = Operator::start_as(
        c,
        scoped,
        &sim,
        &ns,
        &["--secret-credentials", "--rbac-guard-rolebinding", "eipsegment-operator"],
        &[("ALIBABA_CLOUD_ACCESS_KEY_ID", OTHER_KEY_ID), ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", OTHER_KEY_SECRET)],
    );
    op.assert_running();
    namespace_deletion(c, &sim, &ns, || {
        // The namespace controller deletes the RoleBinding with everything else; its finalizer
        // keeps the operator's rights while EipSegments remain.
        eventually("the RoleBinding Terminating while EipSegments remain", T, || {
            let (ok, out, _) = c.kubectl_as(
                c.admin_kubeconfig(),
                &["get", "rolebinding", "eipsegment-operator", "-n", &ns, "-o", "json"],
                None,
            );
            let rb: Value = if ok { serde_json::from_str(&out).unwrap() } else { return None };
            let left = c.kubectl(&["get", "eipsegments", "-n", &ns, "-o", "name"]);
            (rb["metadata"]["deletionTimestamp"].is_string() && !left.trim().is_empty()).then_some(())
        });
    });
    c.kubectl(&["delete", "clusterrole", &role]);
}

#[test]
fn the_apiserver_refuses_another_credentials_secret_once_the_account_is_recorded() {
    let c = Cluster::shared();
    let ns = c.namespace("pinned");
    grant_secrets(c, &ns);
    let sim = Simulator::start(&[]);
    let _op = secret_operator(c, &sim, &ns, &[], None);
    put_secret(c, &ns, "keys", ACCESS_KEY_ID, ACCESS_KEY_SECRET);
    put_secret(c, &ns, "other", OTHER_KEY_ID, OTHER_KEY_SECRET);
    c.apply(&segment_yaml(&ns, "web", &format!("{SPEC}  credentialsSecretRef: {{name: keys}}\n"))).unwrap();
    let ready = wait_ready(c, &ns, "web");
    for (kind, change) in [
        ("merge", r#"{"spec":{"credentialsSecretRef":{"name":"other"}}}"#),
        ("json", r#"[{"op":"remove","path":"/spec/credentialsSecretRef"}]"#),
    ] {
        let (ok, _, err) = c.kubectl_as(
            c.admin_kubeconfig(),
            &["patch", "eipsegment", "web", "-n", &ns, &format!("--type={kind}"), "-p", change],
            None,
        );
        assert!(!ok && err.contains("credentialsSecretRef cannot change"), "{change}: accepted ({err})");
    }
    assert_eq!(ready["status"]["accountId"], ACCOUNT);
    // Before any account is recorded, the reference may still be fixed.
    c.apply(&segment_yaml(&ns, "fresh", &format!("{SPEC}  credentialsSecretRef: {{name: missing}}\n"))).unwrap();
    let obj = with_error(c, &ns, "fresh", "NoCredentials");
    assert!(obj["status"]["accountId"].is_null());
    c.patch(&ns, "fresh", r#"{"spec":{"credentialsSecretRef":{"name":"other"}}}"#);
    assert_eq!(wait_ready(c, &ns, "fresh")["status"]["accountId"], OTHER_ACCOUNT);
    for name in ["web", "fresh"] {
        delete_now(c, &ns, name);
    }
    wait_gone(c, &ns, "web");
    wait_gone(c, &ns, "fresh");
    assert!(segments_in(&sim, ACCOUNT).is_empty() && segments_in(&sim, OTHER_ACCOUNT).is_empty());
}

#[test]
fn a_pending_allocation_is_never_replayed_in_another_account() {
    let c = Cluster::shared();
    let ns = c.namespace("pendingswitch");
    grant_secrets(c, &ns);
    let sim = Simulator::start(&[]);
    let mut op = secret_operator(c, &sim, &ns, &[], None);
    put_secret(c, &ns, "keys", ACCESS_KEY_ID, ACCESS_KEY_SECRET);
    c.apply(&segment_yaml(&ns, "web", &format!("{SPEC}  credentialsSecretRef: {{name: keys}}\n"))).unwrap();
    let held = lose_the_allocation_answer(c, &sim, &mut op, &ns, "web");
    let pending = c.get(&ns, "web").unwrap();

    put_secret(c, &ns, "keys", OTHER_KEY_ID, OTHER_KEY_SECRET);
    op.start_again();
    let obj = stays(c, &ns, "web", Duration::from_secs(8));
    assert!(segments_in(&sim, OTHER_ACCOUNT).is_empty(), "allocated in the other account: {:?}", history(&sim));
    assert_eq!(allocations(&sim).len(), 1);
    assert!(obj["status"]["allocationRequestedAt"].is_string(), "the pending marker went: {}", obj["status"]);
    assert_eq!(obj["status"]["lastError"]["code"], "AccountMismatch", "{}", obj["status"]);
    // Recorded before the call: the account and the token.
    let token = format!("alloc-{}", uid(&pending));
    assert_eq!(pending["status"]["accountId"], ACCOUNT);
    assert_eq!(pending["status"]["allocationToken"], token.as_str());
    assert_eq!(annotation(&pending, "eipsegment.io/account-id"), Some(ACCOUNT));
    assert_eq!(annotation(&pending, "eipsegment.io/allocation-token"), Some(token.as_str()));

    put_secret(c, &ns, "keys", ACCESS_KEY_ID, ACCESS_KEY_SECRET);
    let obj = wait_ready(c, &ns, "web");
    assert_eq!(segment_id(&obj), held, "the pending allocation's segment is learned");
    assert!(obj["status"]["allocationRequestedAt"].is_null());
    assert_eq!(allocations(&sim).len(), 1, "one allocation in total: {:?}", history(&sim));
    delete_now(c, &ns, "web");
    wait_gone(c, &ns, "web");
    assert_eq!(releases_accepted(&sim, &held), 1);
    assert!(segments_in(&sim, ACCOUNT).is_empty() && segments_in(&sim, OTHER_ACCOUNT).is_empty());
}

/// A pending allocation's replay sent to another endpoint (another region's, or a private one) is
/// refused there as invalid: that refusal answers another request than the one that created the
/// segment. The object stays and says why; once the operator reaches the first endpoint again, the
/// replay learns the segment and releases it.
#[test]
fn a_replay_refused_at_another_endpoint_proves_nothing() {
    let c = Cluster::shared();
    let ns = c.namespace("replayelsewhere");
    let sim = Simulator::start(&[]);
    let elsewhere = Simulator::start(&["--regions", "cn-beijing"]);
    let mut op = Operator::start(c, &sim, &ns, &[]);
    c.apply(&segment_yaml(&ns, "web", SPEC)).unwrap();
    let held = lose_the_allocation_answer(c, &sim, &mut op, &ns, "web");
    let first = c.get(&ns, "web").unwrap()["status"]["allocationRequest"].clone();
    assert!(first.as_str().is_some_and(|r| r.contains(&sim.url)), "the first request is on record: {first}");
    delete_now(c, &ns, "web");

    let mut astray = Operator::start(c, &elsewhere, &ns, &[]);
    let refused = with_error(c, &ns, "web", "InvalidRegion.NotSupport");
    let message = refused["status"]["lastError"]["message"].as_str().unwrap().to_string();
    assert!(message.contains("is not the first request") && message.contains("release it by hand"), "{message}");
    let obj = stays(c, &ns, "web", Duration::from_secs(3));
    assert!(obj["status"]["allocationRequestedAt"].is_string(), "the pending marker went: {}", obj["status"]);
    assert_eq!(obj["status"]["allocationRequest"], first, "the first request stays on record");
    assert!(allocations(&elsewhere).is_empty());

    astray.kill();
    op.start_again();
    wait_gone(c, &ns, "web");
    assert_eq!(releases_accepted(&sim, &held), 1, "the first request's segment is released");
    assert!(segments_in(&sim, ACCOUNT).is_empty());
}

/// An admission policy that refuses every status write to the existing object `ns/name`: the first
/// of a pass's two writes fails, as if the operator crashed between them. Returned once the
/// apiserver enforces it (policies take effect a moment after they are created); removed when
/// dropped.
struct StatusRefused<'c> {
    c: &'c Cluster,
    name: String,
}

impl<'c> StatusRefused<'c> {
    fn on(c: &'c Cluster, ns: &str, name: &str) -> StatusRefused<'c> {
        let policy = format!("refuse-status-{ns}");
        c.apply(&format!(
            "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicy\nmetadata: {{name: {policy}}}\n\
             spec:\n  failurePolicy: Fail\n  matchConstraints:\n    resourceRules:\n    - {{apiGroups: [eipsegment.io], \
             apiVersions: ['*'], operations: [UPDATE], resources: [eipsegments/status]}}\n  validations:\n  \
             - {{expression: \"object.metadata.namespace != '{ns}' || object.metadata.name != '{name}'\", \
             message: status writes refused by the test}}\n---\napiVersion: admissionregistration.k8s.io/v1\n\
             kind: ValidatingAdmissionPolicyBinding\nmetadata: {{name: {policy}}}\nspec: {{policyName: {policy}, \
             validationActions: [Deny]}}\n"
        ))
        .unwrap();
        let probe = ["patch", "eipsegment", name, "-n", ns, "--subresource=status", "--type=merge", "-p"];
        let probe: Vec<&str> = probe.into_iter().chain([r#"{"status":{}}"#]).collect();
        eventually("the policy in force", T, || {
            let (ok, _, err) = c.kubectl_as(c.admin_kubeconfig(), &probe, None);
            (!ok && err.contains("status writes refused by the test")).then_some(())
        });
        StatusRefused { c, name: policy }
    }
}

impl Drop for StatusRefused<'_> {
    fn drop(&mut self) {
        for kind in ["validatingadmissionpolicybinding", "validatingadmissionpolicy"] {
            self.c.kubectl(&["delete", kind, &self.name, "--ignore-not-found"]);
        }
    }
}

/// A pass's writes are split: status goes first, then the identity annotations. When the status
/// write fails (or the operator dies before it lands), no annotation is ahead of status, so
/// nothing reads as a restored pending allocation: the object, deleted before any call went out,
/// goes without the cloud ever being asked to allocate.
#[test]
fn a_write_cut_before_the_status_leaves_nothing_that_allocates_on_deletion() {
    let c = Cluster::shared();
    let ns = c.namespace("splitwrite");
    let sim = Simulator::start(&[]);
    c.apply(&segment_yaml(&ns, "web", SPEC)).unwrap();
    let refused = StatusRefused::on(c, &ns, "web");
    let _op = Operator::start(c, &sim, &ns, &[]);
    // Passes come and fail at their first write; none goes further.
    eventually("the finalizer", T, || c.get(&ns, "web").filter(|o| !finalizers(o).is_empty()));
    let obj = stays(c, &ns, "web", Duration::from_secs(4));
    assert_eq!(annotation(&obj, "eipsegment.io/allocation-token"), None, "annotations ahead of status");
    delete_now(c, &ns, "web");
    std::thread::sleep(Duration::from_secs(1));
    drop(refused);
    wait_gone(c, &ns, "web");
    assert_eq!(calls(&sim, ALLOCATE), 0, "a deleted object that never sent a call allocated: {:?}", history(&sim));
    assert!(segments_in(&sim, ACCOUNT).is_empty());
}

// ---- 2. absence proven ----

#[test]
fn malformed_describe_answers_never_prove_a_segment_gone() {
    let c = Cluster::shared();
    let ns = c.namespace("malformed");
    let sim = Simulator::start(&[]);
    let mut op = Operator::start(c, &sim, &ns, &["--transient-retry-max-seconds", "2"]);
    let shapes = ["noSegments", "noTotalCount", "wrongTotalCount", "emptyObject", "noSegmentList", "notJson"];
    let names: Vec<String> = (0..shapes.len()).map(|i| format!("m{i}")).collect();
    for name in &names {
        c.apply(&segment_yaml(&ns, name, SPEC)).unwrap();
    }
    let ids: Vec<String> = names.iter().map(|n| segment_id(&wait_ready(c, &ns, n))).collect();
    // Restarted, the operator has seen nothing of the segments: its first looks meet the faults.
    op.kill();
    for (i, shape) in shapes.iter().enumerate() {
        faults(&sim, json!({"malformedRate": 1.0, "malformedShapes": [shape], "actions": [DESCRIBE]}));
        let before = sim.count(DESCRIBE, "Malformed");
        delete_now(c, &ns, &names[i]);
        if i == 0 {
            op.start_again();
        }
        eventually(&format!("{shape} answers"), T, || (sim.count(DESCRIBE, "Malformed") >= before + 3).then_some(()));
        for (name, id) in names.iter().zip(&ids).take(i + 1) {
            let obj = c.get(&ns, name).unwrap_or_else(|| panic!("{name} went on {shape} answers"));
            assert!(obj["metadata"]["deletionTimestamp"].is_string());
            assert_eq!(sim.segment(id).unwrap()["status"], "Allocated", "{name}");
        }
        let obj = with_error(c, &ns, &names[i], "MalformedResponse");
        assert_eq!(obj["status"]["lastError"]["class"], "Transient", "{shape}");
    }
    faults(&sim, json!({}));
    for name in &names {
        wait_gone(c, &ns, name);
    }
    for id in &ids {
        assert_eq!(releases_accepted(&sim, id), 1, "{id}");
    }
    assert!(segments_in(&sim, ACCOUNT).is_empty());
}

#[test]
fn a_segment_not_yet_visible_is_released_once_it_appears() {
    let c = Cluster::shared();
    let ns = c.namespace("lag");
    let lag_ms = 8000;
    let sim = Simulator::start(&["--visibility-lag-seconds", "8"]);
    let _op = Operator::start(c, &sim, &ns, &[]);
    c.apply(&segment_yaml(&ns, "web", SPEC)).unwrap();
    let obj = eventually("the allocation accepted", T, || {
        c.get(&ns, "web").filter(|o| o["status"]["segmentInstanceId"].is_string())
    });
    let id = segment_id(&obj);
    delete_now(c, &ns, "web");
    let visible_at = history_of(&sim, &id)["createdAtMs"].as_u64().unwrap() + lag_ms;
    let now_ms = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    assert!(now_ms() + 3000 < visible_at, "too slow to test within the lag");
    // All the while, Ready=False Allocating: the allocation's own message ("being allocated"), or
    // the deletion's ("not yet visible") once it has read a look that did not find the segment.
    while now_ms() + 500 < visible_at {
        let obj = c.get(&ns, "web").expect("the object went before its segment became visible");
        // Never a status from before the allocation's answer: a pass on a stale read writes nothing.
        assert_eq!(obj["status"]["segmentInstanceId"], id.as_str(), "the recorded segment was put back: {obj}");
        let ready = condition(&obj, "Ready").unwrap_or_else(|| panic!("no Ready condition: {obj}"));
        assert_eq!(
            (ready["status"].as_str(), ready["reason"].as_str()),
            (Some("False"), Some("Allocating")),
            "{ready}"
        );
        assert!(ready["message"].as_str().unwrap().contains(&id), "{ready}");
        std::thread::sleep(Duration::from_millis(300));
    }
    wait_gone(c, &ns, "web");
    let h = history_of(&sim, &id);
    let released = h["releaseAcceptedAtMs"].as_array().unwrap();
    assert_eq!(released.len(), 1, "{h}");
    assert!(released[0].as_u64().unwrap() >= visible_at, "{h}");
    assert!(segments_in(&sim, ACCOUNT).is_empty(), "leaked: {:?}", segments_in(&sim, ACCOUNT));
}

#[test]
fn malformed_answers_to_allocate_and_release_neither_repeat_nor_lose_them() {
    let c = Cluster::shared();
    let ns = c.namespace("malformedcalls");
    let sim = Simulator::start(&[]);
    let _op = Operator::start(c, &sim, &ns, &["--transient-retry-max-seconds", "2"]);
    // The cloud does the work and answers with a page that is no answer: like a lost answer.
    faults(&sim, json!({"malformedRate": 1.0, "malformedShapes": ["emptyObject", "notJson"], "actions": [ALLOCATE]}));
    c.apply(&segment_yaml(&ns, "web", SPEC)).unwrap();
    let obj = with_error(c, &ns, "web", "MalformedResponse");
    assert!(obj["status"]["allocationRequestedAt"].is_string(), "the pending marker went: {}", obj["status"]);
    assert!(obj["status"]["segmentInstanceId"].is_null());
    eventually("a replay answered malformed too", T, || (sim.count(ALLOCATE, "Malformed") >= 2).then_some(()));
    assert_eq!(allocations(&sim).len(), 1, "a replay allocated again: {:?}", history(&sim));
    faults(&sim, json!({"malformedRate": 1.0, "malformedShapes": ["emptyObject", "notJson"], "actions": [RELEASE]}));
    let id = segment_id(&wait_ready(c, &ns, "web"));
    assert_eq!(allocations(&sim).len(), 1);
    assert_eq!(allocations(&sim)[0]["instanceId"], id.as_str());

    delete_now(c, &ns, "web");
    eventually("a malformed answer to the release", T, || (sim.count(RELEASE, "Malformed") >= 1).then_some(()));
    // The malformed answer is no proof either way: the object stays, and a fresh look decides the
    // next step (the cloud shows the release under way, so it is not sent again).
    let obj = c.get(&ns, "web").expect("the object went on a malformed answer to its release");
    assert!(obj["metadata"]["deletionTimestamp"].is_string(), "{}", obj["metadata"]);
    // The replay with the same token is answered well-formed: the release it learns is the first.
    faults(&sim, json!({}));
    wait_gone(c, &ns, "web");
    assert!(sim.segment(&id).is_none());
    assert_eq!(releases_accepted(&sim, &id), 1);
}

#[test]
fn a_segment_not_yet_visible_is_released_once_it_appears_even_across_a_restart() {
    let c = Cluster::shared();
    let ns = c.namespace("lagrestart");
    let lag_ms = 8000;
    let sim = Simulator::start(&["--visibility-lag-seconds", "8"]);
    let mut op = Operator::start(c, &sim, &ns, &[]);
    c.apply(&segment_yaml(&ns, "web", SPEC)).unwrap();
    let obj = eventually("the allocation accepted", T, || {
        c.get(&ns, "web").filter(|o| o["status"]["segmentInstanceId"].is_string())
    });
    let id = segment_id(&obj);
    delete_now(c, &ns, "web");
    // A new process knows nothing of the allocation but what the object recorded.
    op.restart();
    let visible_at = history_of(&sim, &id)["createdAtMs"].as_u64().unwrap() + lag_ms;
    let now_ms = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    assert!(now_ms() + 3000 < visible_at, "too slow to test within the lag");
    // All the while, Ready=False Allocating: the allocation's own message ("being allocated"), or
    // the deletion's ("not yet visible") once it has read a look that did not find the segment.
    while now_ms() + 500 < visible_at {
        let obj = c.get(&ns, "web").expect("the object went before its segment became visible");
        // Never a status from before the allocation's answer: a pass on a stale read writes nothing.
        assert_eq!(obj["status"]["segmentInstanceId"], id.as_str(), "the recorded segment was put back: {obj}");
        let ready = condition(&obj, "Ready").unwrap_or_else(|| panic!("no Ready condition: {obj}"));
        assert_eq!(
            (ready["status"].as_str(), ready["reason"].as_str()),
            (Some("False"), Some("Allocating")),
            "{ready}"
        );
        assert!(ready["message"].as_str().unwrap().contains(&id), "{ready}");
        std::thread::sleep(Duration::from_millis(300));
    }
    wait_gone(c, &ns, "web");
    let h = history_of(&sim, &id);
    let released = h["releaseAcceptedAtMs"].as_array().unwrap();
    assert_eq!(released.len(), 1, "{h}");
    assert!(released[0].as_u64().unwrap() >= visible_at, "{h}");
    assert!(segments_in(&sim, ACCOUNT).is_empty(), "leaked: {:?}", segments_in(&sim, ACCOUNT));
}

// ---- 3. the pending marker ----

#[test]
fn a_lost_allocation_answer_keeps_the_object_until_a_good_key_learns_and_releases_its_segment() {
    let c = Cluster::shared();
    let ns = c.namespace("pendingkey");
    grant_secrets(c, &ns);
    let sim = Simulator::start(&[]);
    let mut op = secret_operator(c, &sim, &ns, &[], None);
    put_secret(c, &ns, "keys", ACCESS_KEY_ID, ACCESS_KEY_SECRET);
    c.apply(&segment_yaml(&ns, "web", &format!("{SPEC}  credentialsSecretRef: {{name: keys}}\n"))).unwrap();
    let held = lose_the_allocation_answer(c, &sim, &mut op, &ns, "web");

    put_secret(c, &ns, "keys", ACCESS_KEY_ID, "NotTheSecretOfThisKey");
    delete_now(c, &ns, "web");
    op.start_again();
    with_error(c, &ns, "web", "SignatureDoesNotMatch");
    let obj = stays(c, &ns, "web", Duration::from_secs(6));
    assert!(obj["status"]["allocationRequestedAt"].is_string(), "the pending marker went: {}", obj["status"]);
    let synced = condition(&obj, "Synced").unwrap();
    assert_eq!(synced["status"], "False");
    assert!(synced["message"].as_str().unwrap().contains("SignatureDoesNotMatch"), "{synced}");

    put_secret(c, &ns, "keys", ACCESS_KEY_ID, ACCESS_KEY_SECRET);
    wait_gone(c, &ns, "web");
    let (_, note) = wait_event(c, &ns, "web", "Released");
    assert!(note.contains(&held), "{note}");
    assert_eq!(allocations(&sim).len(), 1, "{:?}", history(&sim));
    assert_eq!(releases_accepted(&sim, &held), 1);
    assert!(segments_in(&sim, ACCOUNT).is_empty());
}

#[test]
fn a_deletion_during_an_allocation_that_timed_out_releases_the_segment_it_made() {
    let c = Cluster::shared();
    let ns = c.namespace("pendingtimeout");
    let sim = Simulator::start(&[]);
    // Each cloud call times out after 3 s; the allocation takes 8 s to answer.
    let _op = Operator::start(c, &sim, &ns, &["--transient-retry-max-seconds", "2"]);
    faults(&sim, json!({"delayRate": 1.0, "delayMsMin": 8000, "delayMsMax": 8000, "actions": [ALLOCATE]}));
    c.apply(&segment_yaml(&ns, "web", SPEC)).unwrap();
    eventually("allocation pending marker", T, || {
        c.get(&ns, "web").filter(|o| o["status"]["allocationRequestedAt"].is_string())
    });
    delete_now(c, &ns, "web");
    // The first answer times out; while that request is in flight, its replays are told so. The
    // object waits, says why, and keeps its marker.
    eventually("a replay told the request is in flight", T, || {
        (sim.count(ALLOCATE, "OperationFailed.LastTokenProcessing") >= 1).then_some(())
    });
    let obj = eventually("the wait explained", T, || {
        c.get(&ns, "web").filter(|o| o["status"]["lastError"]["code"].is_string())
    });
    let code = obj["status"]["lastError"]["code"].as_str().unwrap();
    assert!(["Timeout", "OperationFailed.LastTokenProcessing"].contains(&code), "{}", obj["status"]);
    assert!(obj["status"]["allocationRequestedAt"].is_string(), "the marker went: {}", obj["status"]);
    assert_eq!(condition(&obj, "Synced").unwrap()["status"], "False");
    wait_gone(c, &ns, "web");
    let created = allocations(&sim);
    assert_eq!(created.len(), 1, "{created:?}");
    let id = created[0]["instanceId"].as_str().unwrap();
    assert_eq!(releases_accepted(&sim, id), 1, "the segment the timed-out request made was not released");
    assert!(segments_in(&sim, ACCOUNT).is_empty());
    faults(&sim, json!({}));
}

// ---- 4. Retain ----

#[test]
fn retain_with_a_pending_allocation_names_the_segment_it_keeps() {
    let c = Cluster::shared();
    let ns = c.namespace("retainpending");
    let sim = Simulator::start(&[]);
    let mut op = Operator::start(c, &sim, &ns, &[]);
    c.apply(&segment_yaml(&ns, "web", SPEC)).unwrap();
    let held = lose_the_allocation_answer(c, &sim, &mut op, &ns, "web");
    c.patch(&ns, "web", r#"{"spec":{"deletionPolicy":"Retain"}}"#);
    delete_now(c, &ns, "web");
    op.start_again();
    wait_gone(c, &ns, "web");
    let (_, note) = wait_event(c, &ns, "web", "Retained");
    assert!(note.contains(&held), "the Retained event does not name the kept segment {held}: {note}");
    assert_eq!(sim.segment(&held).expect("Retain keeps the segment")["status"], "Allocated");
    assert_eq!(allocations(&sim).len(), 1);
    assert_eq!(calls(&sim, RELEASE), 0);
}

#[test]
fn retain_after_the_release_was_accepted_says_the_release_is_under_way() {
    let c = Cluster::shared();
    let ns = c.namespace("retainlate");
    let sim = Simulator::start(&["--release-seconds", "10"]);
    let _op = Operator::start(c, &sim, &ns, &[]);
    c.apply(&segment_yaml(&ns, "web", SPEC)).unwrap();
    let id = segment_id(&wait_ready(c, &ns, "web"));
    delete_now(c, &ns, "web");
    eventually("Releasing", T, || sim.segment(&id).filter(|s| s["status"] == "Releasing"));
    // The pass that made the call records its answer right away.
    std::thread::sleep(Duration::from_secs(1));
    let accepted = c.get(&ns, "web").unwrap();
    c.patch(&ns, "web", r#"{"spec":{"deletionPolicy":"Retain"}}"#);
    wait_gone(c, &ns, "web");
    assert!(sim.segment(&id).is_some_and(|s| s["status"] == "Releasing"), "the object waited for the release");
    assert!(
        events_of(c, &ns, "web", "Retained").is_empty(),
        "a Retained event for a segment being released: {:?}",
        c.events(&ns, "web")
    );
    let (warning, note) = wait_event(c, &ns, "web", "ReleaseUnderWay");
    assert!(warning && note.contains("cannot be undone") && note.contains(&id), "{note}");
    eventually("the segment gone", T, || sim.segment(&id).is_none().then_some(()));
    assert_eq!(releases_accepted(&sim, &id), 1);
    assert!(accepted["status"]["releaseAcceptedAt"].is_string(), "{}", accepted["status"]);
    let token = format!("release-{}", uid(&accepted));
    assert_eq!(annotation(&accepted, "eipsegment.io/release-token"), Some(token.as_str()));
}

#[test]
fn retain_after_a_release_whose_answer_was_lost_does_not_claim_to_keep_the_segment() {
    let c = Cluster::shared();
    let ns = c.namespace("retainlost");
    let sim = Simulator::start(&["--release-seconds", "10"]);
    let mut op = Operator::start(c, &sim, &ns, &[]);
    c.apply(&segment_yaml(&ns, "web", SPEC)).unwrap();
    let id = segment_id(&wait_ready(c, &ns, "web"));
    // The cloud accepts the release; the operator dies before its answer arrives.
    faults(&sim, json!({"delayRate": 1.0, "delayMsMin": 2500, "delayMsMax": 2500, "actions": [RELEASE]}));
    delete_now(c, &ns, "web");
    eventually("the release requested", T, || {
        c.get(&ns, "web").filter(|o| o["status"]["releaseRequestedAt"].is_string())
    });
    std::thread::sleep(Duration::from_millis(500));
    op.kill();
    std::thread::sleep(Duration::from_secs(3));
    faults(&sim, json!({}));
    assert_eq!(sim.segment(&id).unwrap()["status"], "Releasing");
    assert!(c.get(&ns, "web").unwrap()["status"]["releaseAcceptedAt"].is_null(), "the answer was not lost");
    c.patch(&ns, "web", r#"{"spec":{"deletionPolicy":"Retain"}}"#);
    op.start_again();
    wait_gone(c, &ns, "web");
    let retained = events_of(c, &ns, "web", "Retained");
    assert!(retained.is_empty(), "told the segment is kept while the cloud releases it: {retained:?}");
    assert!(c.has_event(&ns, "web", "ReleaseUnderWay"), "{:?}", c.events(&ns, "web"));
    eventually("the segment gone", T, || sim.segment(&id).is_none().then_some(()));
    assert_eq!(releases_accepted(&sim, &id), 1);
}

// ---- 5. one owner ----

/// The object that names a held segment, once the operator has answered it: refused, or (an
/// operator without the one-owner rule) adopted.
fn settled_claim(c: &Cluster, ns: &str, name: &str) -> Value {
    eventually(&format!("{ns}/{name} answered"), T, || {
        c.get(ns, name).filter(|o| {
            condition(o, "Ready").is_some_and(|r| r["reason"] == "SegmentInUse" || r["reason"] == "Adopted")
        })
    })
}

#[test]
fn an_object_naming_a_held_segment_is_refused_and_its_deletion_releases_nothing() {
    let c = Cluster::shared();
    let ns = c.namespace("claims");
    let sim = Simulator::start(&[]);
    let _op = Operator::start(c, &sim, &ns, &[]);
    c.apply(&segment_yaml(&ns, "holder", SPEC)).unwrap();
    let id = segment_id(&wait_ready(c, &ns, "holder"));
    c.apply(&segment_yaml(
        &ns,
        "second",
        &format!("  regionId: cn-hangzhou\n  segmentInstanceId: {id}\n  deletionPolicy: Delete\n"),
    ))
    .unwrap();
    let obj = settled_claim(c, &ns, "second");
    let refused = events_of(c, &ns, "second", "ClaimRefused");

    delete_now(c, &ns, "second");
    wait_gone(c, &ns, "second");
    assert_eq!(calls(&sim, RELEASE), 0, "the refused object's deletion released the segment");
    assert_eq!(sim.segment(&id).unwrap()["status"], "Allocated");
    assert!(is_ready(&c.get(&ns, "holder").unwrap()));
    let ready = condition(&obj, "Ready").unwrap();
    assert_eq!(ready["reason"], "SegmentInUse", "{ready}");
    assert!(ready["message"].as_str().unwrap().contains(&format!("{ns}/holder")), "{ready}");
    assert!(refused.first().is_some_and(|(warning, _)| *warning), "no ClaimRefused warning: {refused:?}");
    assert!(obj["status"]["segmentInstanceId"].is_null(), "the refused object recorded the segment");
    let finished: Vec<String> = c
        .events(&ns, "second")
        .into_iter()
        .map(|(_, r, _)| r)
        .filter(|r| r == "NotOwner" || r == "HandedOver" || r == "NothingToRelease")
        .collect();
    assert!(!finished.is_empty(), "{:?}", c.events(&ns, "second"));

    // The holder is still woken by the poller: its release completes at the cloud's pace.
    let started = Instant::now();
    delete_now(c, &ns, "holder");
    wait_gone(c, &ns, "holder");
    assert!(started.elapsed() < Duration::from_secs(30), "the holder was not woken: {:?}", started.elapsed());
    assert!(sim.segment(&id).is_none());
    assert_eq!(releases_accepted(&sim, &id), 1);
}

/// A Ready `holder`, and an `heir` of its namespace that adopts its segment with the Delete policy,
/// as it answers (waiting for the holder): the segment's ID and the heir.
fn holder_and_heir(c: &Cluster, ns: &str) -> (String, Value) {
    c.apply(&segment_yaml(ns, "holder", SPEC)).unwrap();
    let id = segment_id(&wait_ready(c, ns, "holder"));
    let adopts = format!("  regionId: cn-hangzhou\n  segmentInstanceId: {id}\n  deletionPolicy: Delete\n");
    c.apply(&segment_yaml(ns, "heir", &adopts)).unwrap();
    (id, settled_claim(c, ns, "heir"))
}

#[test]
fn deleting_the_holder_hands_the_segment_over_to_the_object_that_names_it() {
    let c = Cluster::shared();
    let ns = c.namespace("handover");
    let sim = Simulator::start(&[]);
    let _op = Operator::start(c, &sim, &ns, &[]);
    let (id, waiting) = holder_and_heir(c, &ns);
    delete_now(c, &ns, "holder");
    wait_gone(c, &ns, "holder");
    assert_eq!(calls(&sim, RELEASE), 0, "a segment another object names was released");
    assert_eq!(sim.segment(&id).unwrap()["status"], "Allocated");
    assert_eq!(condition(&waiting, "Ready").unwrap()["reason"], "SegmentInUse");
    let (_, note) = wait_event(c, &ns, "holder", "HandedOver");
    assert!(note.contains(&format!("{ns}/heir")), "{note}");

    let obj = wait_ready(c, &ns, "heir");
    assert_eq!(segment_id(&obj), id);
    assert_eq!(condition(&obj, "Ready").unwrap()["reason"], "Adopted");
    delete_now(c, &ns, "heir");
    wait_gone(c, &ns, "heir");
    assert!(sim.segment(&id).is_none());
    assert_eq!(releases_accepted(&sim, &id), 1);
    assert_eq!(allocations(&sim).len(), 1);
}

/// Neither waits for its next retry (a minute here): the holder's deletion wakes the heir, and the
/// heir's taking the segment over wakes the holder.
#[test]
fn a_hand_over_goes_on_as_each_side_changes_not_at_the_next_retry() {
    let c = Cluster::shared();
    let ns = c.namespace("handover-woken");
    let sim = Simulator::start(&[]);
    let _op = Operator::start(c, &sim, &ns, &["--transient-retry-seconds", "60"]);
    let (id, waiting) = holder_and_heir(c, &ns);
    assert_eq!(condition(&waiting, "Ready").unwrap()["reason"], "SegmentInUse");
    let started = Instant::now();
    delete_now(c, &ns, "holder");
    wait_gone(c, &ns, "holder");
    let handed_over = started.elapsed();
    assert!(handed_over < Duration::from_secs(30), "the hand-over waited for a retry: {handed_over:?}");
    wait_event(c, &ns, "holder", "HandedOver");
    assert_eq!(segment_id(&wait_ready(c, &ns, "heir")), id);
    assert_eq!(calls(&sim, RELEASE), 0);
}

// ---- 6. a status the operator does not know ----

#[test]
fn a_segment_in_an_unknown_status_seen_while_deleting_keeps_being_looked_at() {
    let c = Cluster::shared();
    let ns = c.namespace("unknown");
    let sim = Simulator::start(&[]);
    let mut op = Operator::start(c, &sim, &ns, &[]);
    c.apply(&segment_yaml(&ns, "web", SPEC)).unwrap();
    let id = segment_id(&wait_ready(c, &ns, "web"));
    // The operator comes back to a deletion and a segment in a status it does not know: its first
    // look at the segment sees that status.
    op.kill();
    sim.admin("PATCH", &format!("segments/{id}"), json!({"reportedStatus": "Maintaining"}));
    delete_now(c, &ns, "web");
    op.start_again();
    let obj = with_ready_reason(c, &ns, "web", "Maintaining");
    assert!(condition(&obj, "Ready").unwrap()["message"].as_str().unwrap().contains(&id));
    let first = sim.count(DESCRIBE, "Success");
    let obj = stays(c, &ns, "web", Duration::from_secs(4));
    let second = sim.count(DESCRIBE, "Success");
    assert!(second >= first + 2, "the poller stopped looking: {first} then {second} DescribeEipSegment answers");
    assert_eq!(condition(&obj, "Ready").unwrap()["reason"], "Maintaining");
    assert_eq!(calls(&sim, RELEASE), 0, "a release was sent for a segment in a status the operator does not know");

    sim.admin("PATCH", &format!("segments/{id}"), json!({"reportedStatus": null}));
    wait_gone(c, &ns, "web");
    assert!(sim.segment(&id).is_none());
    assert_eq!(releases_accepted(&sim, &id), 1);
}

#[test]
fn a_release_refused_for_the_segments_status_is_followed_by_a_fresh_look() {
    let c = Cluster::shared();
    let ns = c.namespace("unknownlive");
    let sim = Simulator::start(&[]);
    let _op = Operator::start(c, &sim, &ns, &[]);
    c.apply(&segment_yaml(&ns, "web", SPEC)).unwrap();
    let id = segment_id(&wait_ready(c, &ns, "web"));
    // The segment changes to a status the operator does not know while it is settled; the
    // operator's last look (Allocated) is from before. The refusal of the release says that look
    // is out of date.
    sim.admin("PATCH", &format!("segments/{id}"), json!({"reportedStatus": "Maintaining"}));
    let describes = sim.count(DESCRIBE, "Success");
    delete_now(c, &ns, "web");
    eventually("the first release refused", T, || (sim.count(RELEASE, "IncorrectEipStatus") >= 1).then_some(()));
    let seen = eventually("a fresh look that sees Maintaining", Duration::from_secs(30), || {
        c.get(&ns, "web").filter(|o| condition(o, "Ready").is_some_and(|r| r["reason"] == "Maintaining"))
    });
    assert!(sim.count(DESCRIBE, "Success") > describes);
    assert!(seen["metadata"]["deletionTimestamp"].is_string());
    let refused = sim.count(RELEASE, "IncorrectEipStatus");
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(sim.count(RELEASE, "IncorrectEipStatus"), refused, "releases kept being sent on the old look");

    sim.admin("PATCH", &format!("segments/{id}"), json!({"reportedStatus": null}));
    wait_gone(c, &ns, "web");
    assert_eq!(releases_accepted(&sim, &id), 1);
}

// ---- 7. restore ----

/// The object as a backup keeps it: name, namespace, annotations and spec; no status, UID,
/// resourceVersion, creationTimestamp, finalizers or managedFields.
fn manifest(obj: &Value) -> String {
    let mut annotations = obj["metadata"]["annotations"].clone();
    if let Some(a) = annotations.as_object_mut() {
        a.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
    json!({
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "metadata": {"name": obj["metadata"]["name"], "namespace": obj["metadata"]["namespace"], "annotations": annotations},
        "spec": obj["spec"],
    })
    .to_string()
}

/// Removes the object with the operator stopped, as a lost cluster would: the segment stays.
fn lose(c: &Cluster, ns: &str, name: &str) {
    c.strip_finalizers(ns, name);
    c.kubectl(&["delete", "eipsegment", name, "-n", ns, "--timeout=30s"]);
}

#[test]
fn an_object_restored_from_its_manifest_adopts_its_own_segment_and_releases_it_once() {
    let c = Cluster::shared();
    let ns = c.namespace("restore");
    let sim = Simulator::start(&[]);
    let mut op = Operator::start(c, &sim, &ns, &[]);
    c.apply(&segment_yaml(&ns, "web", SPEC)).unwrap();
    let obj = wait_ready(c, &ns, "web");
    let id = segment_id(&obj);
    let saved = manifest(&obj);
    op.kill();
    lose(c, &ns, "web");
    assert_eq!(sim.segment(&id).unwrap()["status"], "Allocated");

    op.start_again();
    c.apply(&saved).unwrap();
    let restored = wait_ready(c, &ns, "web");
    assert_ne!(uid(&restored), uid(&obj));
    assert_eq!(segment_id(&restored), id, "the restored object has another segment");
    assert!(saved.contains(&id), "the manifest does not name the segment: {saved}");
    assert_eq!(allocations(&sim).len(), 1, "a second allocation: {:?}", history(&sim));
    delete_now(c, &ns, "web");
    wait_gone(c, &ns, "web");
    assert!(sim.segment(&id).is_none());
    assert_eq!(releases_accepted(&sim, &id), 1);
    assert!(segments_in(&sim, ACCOUNT).is_empty());
}

#[test]
fn an_object_restored_while_its_allocation_was_pending_gets_that_segment_and_no_second_one() {
    let c = Cluster::shared();
    let ns = c.namespace("restorepending");
    let sim = Simulator::start(&[]);
    let mut op = Operator::start(c, &sim, &ns, &[]);
    faults(&sim, json!({"delayRate": 1.0, "delayMsMin": 2500, "delayMsMax": 2500, "actions": [ALLOCATE]}));
    c.apply(&segment_yaml(&ns, "web", SPEC)).unwrap();
    // Saved while the allocation is pending: the identity annotations are written before status.
    let obj = eventually("allocation pending marker", T, || {
        c.get(&ns, "web").filter(|o| o["status"]["allocationRequestedAt"].is_string())
    });
    let saved = manifest(&obj);
    std::thread::sleep(Duration::from_millis(500));
    op.kill();
    std::thread::sleep(Duration::from_secs(3));
    faults(&sim, json!({}));
    lose(c, &ns, "web");
    let created = allocations(&sim);
    assert_eq!(created.len(), 1);
    let held = created[0]["instanceId"].as_str().unwrap().to_string();

    op.start_again();
    c.apply(&saved).unwrap();
    let restored = wait_ready(c, &ns, "web");
    assert_eq!(segment_id(&restored), held, "the restored object has another segment");
    assert_eq!(allocations(&sim).len(), 1, "a second allocation: {:?}", history(&sim));
    delete_now(c, &ns, "web");
    wait_gone(c, &ns, "web");
    assert_eq!(releases_accepted(&sim, &held), 1);
    assert!(segments_in(&sim, ACCOUNT).is_empty());
    assert_eq!(annotation(&obj, "eipsegment.io/allocation-token"), Some(format!("alloc-{}", uid(&obj)).as_str()));
    assert!(annotation(&obj, "eipsegment.io/segment-id").is_none(), "saved after the answer: {saved}");
}
