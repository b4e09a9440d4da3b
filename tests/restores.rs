//! Restore-style re-creations on the real stack, reduced from what the chaos run met: an object is
//! removed behind the operator's back (finalizer taken off, then deleted, with preconditions so the
//! operator never sees a deletion) and re-applied from its saved manifest: spec and identity
//! annotations, no status. It comes back with a new UID and adopts its own segment.

mod support;

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
/// free to go once the object is gone. The operator holds the Secret with
/// `eipsegment.io/in-use-by-<uid>` and lets go, when the object finishes, of the finalizer of the
/// object's current UID only; the restored object has a new UID, so the finalizer of its first
/// incarnation (whose allocation token the restored object carries) stays for good, and the Secret,
/// once deleted, stays Terminating (and its namespace with it, on a namespace deletion).
#[test]
#[ignore = "fails: the Secret keeps the finalizer of the object's first incarnation after a restore"]
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
    assert_eq!(held, [format!("eipsegment.io/in-use-by-{first_uid}")]);

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
