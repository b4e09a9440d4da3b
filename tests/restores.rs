//! Restore-style re-creations on the real stack, reduced from what the chaos run met: an object is
//! removed behind the operator's back (finalizer taken off, then deleted, with preconditions so the
//! operator never sees a deletion) and re-applied from its saved manifest: spec and identity
//! annotations, no status. It comes back with a new UID and adopts its own segment.

use eipsegment_test_support as support;

use std::time::Duration;

use support::*;

const T: Duration = WAIT;

/// The finalizers the operator put on a Secret, one per object whose segment uses it.
fn holds(c: &Cluster, ns: &str, secret: &str) -> Option<Vec<String>> {
    let (ok, out, err) = c.kubectl_as(
        c.admin_kubeconfig(),
        &["get", "secret", secret, "-n", ns, "-o", "jsonpath={.metadata.finalizers}"],
        None,
    );
    if !ok {
        assert!(err.contains("NotFound"), "kubectl get secret: {err}");
        return None;
    }
    let finalizers: Vec<String> = serde_json::from_str(if out.is_empty() { "[]" } else { &out }).unwrap();
    Some(finalizers.into_iter().filter(|f| f.starts_with("eipsegment.io/in-use-by-")).collect())
}

/// One object with its credentials in a Secret, restored once, then deleted: the Secret must be
/// free to go once the object is gone. The restored object has a new UID; the Secret's hold is in
/// the object's name, so the restored object lets go of the very finalizer its first incarnation
/// put there (one kept in the UID would stay for good, and the Secret, once deleted, Terminating,
/// with its namespace on a namespace deletion).
#[test]
fn a_restored_object_lets_go_of_the_secret_its_first_incarnation_held() {
    let c = Cluster::shared();
    let ns = c.namespace("restore-secret");
    c.apply(&format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {{name: eipsegment-operator-secrets, namespace: {ns}}}\nrules:\n- {{apiGroups: [\"\"], resources: [secrets], verbs: [get, patch]}}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: eipsegment-operator-secrets, namespace: {ns}}}\nroleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: eipsegment-operator-secrets}}\nsubjects:\n- {{kind: ServiceAccount, name: eipsegment-operator, namespace: eipsegment-system}}\n"
    ))
    .unwrap();
    use base64::Engine;
    let b64 = |v: &str| base64::engine::general_purpose::STANDARD.encode(v);
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: keys, namespace: {ns}}}\ndata:\n  ALIBABA_CLOUD_ACCESS_KEY_ID: {}\n  ALIBABA_CLOUD_ACCESS_KEY_SECRET: {}\n",
        b64(ACCESS_KEY_ID),
        b64(ACCESS_KEY_SECRET)
    );
    let (ok, _, err) = c.kubectl_as(c.admin_kubeconfig(), &["create", "-f", "-"], Some(&secret));
    assert!(ok, "{err}");
    let sim = Simulator::start(&[]);
    let _op = Operator::start(c, &sim, &ns, &["--secret-credentials"]);

    c.apply(&segment_yaml(
        &ns,
        "seg",
        "  regionId: cn-hangzhou\n  eipMask: 28\n  credentialsSecretRef: {name: keys}\n",
    ))
    .unwrap();
    let first = wait_ready(c, &ns, "seg");
    let (id, first_uid) = (segment_id(&first), first["metadata"]["uid"].as_str().unwrap().to_string());
    let held = eventually("the Secret held", T, || holds(c, &ns, "keys").filter(|h| !h.is_empty()));
    assert_eq!(held, ["eipsegment.io/in-use-by-seg"], "held in the object's name, which a restore keeps");

    let (saved, _) = Kube::new(c).remove_behind_operator(&ns, "seg").expect("removed");
    c.apply(&restore_manifest(&saved, false).to_string()).unwrap();
    let second = wait_ready(c, &ns, "seg");
    assert_ne!(second["metadata"]["uid"], first["metadata"]["uid"], "a new incarnation");
    assert_eq!(segment_id(&second), id, "the restored object adopts its own segment");
    assert_eq!(sim.count("AllocateEipSegmentAddress", "Success"), 1, "no second allocation");

    c.kubectl(&["delete", "eipsegment", "seg", "-n", &ns, "--wait=false"]);
    wait_gone(c, &ns, "seg");
    assert!(sim.segment(&id).is_none(), "released");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut left = holds(c, &ns, "keys").expect("the Secret");
    while !left.is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        left = holds(c, &ns, "keys").expect("the Secret");
    }
    assert!(
        left.is_empty(),
        "the object is gone, yet the Secret is held by {left:?} (the object's first incarnation was UID {first_uid})"
    );
    c.kubectl(&["delete", "secret", "keys", "-n", &ns, "--timeout=30s"]);
}

/// A segment held by one object and named by an adopter made after it, which is refused; then the
/// holder is restored, so that the adopter is now the older object. The restored holder carries the
/// segment in its identity annotations (its allocation token created it) and adopts it again; the
/// adopter, which never held it, must stay refused, and deleting both must release the segment
/// (the holder's deletion policy is Delete).
#[test]
fn a_restored_holder_keeps_its_segment_from_an_older_refused_adopter() {
    let c = Cluster::shared();
    let ns = c.namespace("restore-holder");
    let sim = Simulator::start(&[]);
    let _op = Operator::start(c, &sim, &ns, &[]);
    c.apply(&segment_yaml(&ns, "holder", "  regionId: cn-hangzhou\n  eipMask: 28\n")).unwrap();
    let id = segment_id(&wait_ready(c, &ns, "holder"));
    c.apply(&segment_yaml(&ns, "adopter", &format!("  regionId: cn-hangzhou\n  segmentInstanceId: {id}\n"))).unwrap();
    eventually("the adopter refused", T, || {
        c.get(&ns, "adopter").filter(|o| condition(o, "Ready").is_some_and(|r| r["reason"] == "SegmentInUse"))
    });

    // A backup is restored later than the adopter was made: creation timestamps have whole seconds,
    // and within one second the order of two claims falls to their UIDs.
    std::thread::sleep(Duration::from_millis(1100));
    let (saved, _) = Kube::new(c).remove_behind_operator(&ns, "holder").expect("removed");
    c.apply(&restore_manifest(&saved, true).to_string()).unwrap();
    let restored = eventually("the restored holder Ready or refused", T, || {
        c.get(&ns, "holder")
            .filter(|o| is_ready(o) || condition(o, "Ready").is_some_and(|r| r["reason"] == "SegmentInUse"))
    });
    assert!(
        is_ready(&restored),
        "the restored holder is refused its own segment: {}",
        condition(&restored, "Ready").map(|r| r["message"].clone()).unwrap_or_default()
    );
    assert_eq!(segment_id(&restored), id, "the restored holder adopts its own segment");
    // Long enough for the adopter's next passes (its backoff starts at 2 s).
    std::thread::sleep(Duration::from_secs(8));
    let holder = c.get(&ns, "holder").unwrap();
    let adopter = c.get(&ns, "adopter").unwrap();
    let reason = |o: &serde_json::Value| condition(o, "Ready").map(|r| r["reason"].clone());
    assert!(
        is_ready(&holder) && !is_ready(&adopter),
        "after the restore the holder says {:?} ({}) and the adopter {:?} ({})",
        reason(&holder),
        condition(&holder, "Ready").map(|r| r["message"].clone()).unwrap_or_default(),
        reason(&adopter),
        condition(&adopter, "Ready").map(|r| r["message"].clone()).unwrap_or_default()
    );
    for name in ["adopter", "holder"] {
        c.kubectl(&["delete", "eipsegment", name, "-n", &ns, "--wait=false"]);
    }
    wait_gone(c, &ns, "adopter");
    wait_gone(c, &ns, "holder");
    assert!(sim.segment(&id).is_none(), "the holder's Delete policy releases the segment");
}
