//! `eipsegment-operator audit` as a person runs it: the real binary against a real kube-apiserver
//! and the VPC simulator, under an identity that may only read EipSegments and the identity key's
//! Secret. Every audit is checked to have made no cloud call but GetCallerIdentity and
//! DescribeEipSegment.
//!
//! A segment is owned only by an object that established it: one whose status names it (written by
//! the operator, or by the admin as the operator writes it), or one whose identity annotations the
//! operator proves it wrote (a restored object, which has no status). An adoption in spec that was
//! never established, a forged annotation and one copied from another object own nothing.

use eipsegment_test_support as support;

use std::collections::{BTreeMap, HashMap};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use base64::Engine;
use eipsegment_operator::cloud::model::AllocateRequest;
use eipsegment_operator::cloud::{Action, Admit};
use eipsegment_operator::lifecycle::identity::{ACCOUNT_ID, PROOF, SEGMENT_ID};
use eipsegment_operator::proof::IdentityKey;
use serde_json::{Value, json};
use support::*;
use vpc_simulator::{OTHER_ACCESS_KEY_ID, OTHER_ACCESS_KEY_SECRET, OTHER_ACCOUNT};

const DEFAULT_ACCOUNT: &str = "1234567890123456";
const DEFAULT_KEY: (&str, &str) = (ACCESS_KEY_ID, ACCESS_KEY_SECRET);
const OTHER_KEY: (&str, &str) = (OTHER_ACCESS_KEY_ID, OTHER_ACCESS_KEY_SECRET);
/// The only cloud calls an audit may make.
const READS: [&str; 2] = ["DescribeEipSegment", "GetCallerIdentity"];
/// Where the operator keeps its identity key, and where the audit reads it (both by default).
const OPERATOR_NS: &str = "eipsegment-system";
const KEY_SECRET: &str = "eipsegment-identity-key";

/// Each audit lists every EipSegment in the cluster: one test at a time, each starting from none.
fn start() -> (MutexGuard<'static, ()>, &'static Cluster) {
    static SERIAL: Mutex<()> = Mutex::new(());
    let serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let c = Cluster::shared();
    auditors(c);
    remove_every_object(c);
    (serial, c)
}

/// The audit's identities, ServiceAccounts of the operator's namespace, as kubeconfigs.
struct Auditors {
    /// May get and list EipSegments in every namespace and get the identity key's Secret, and
    /// nothing else: an audit that tried a Kubernetes write would be refused and could not exit 0
    /// or 1.
    reader: String,
    /// The same, but the Secret.
    keyless: String,
}

const AUDITOR_RBAC: &str = r#"
apiVersion: v1
kind: ServiceAccount
metadata: {name: eipsegment-auditor, namespace: eipsegment-system}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: eipsegment-auditor-keyless, namespace: eipsegment-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: eipsegment-auditor}
rules:
- {apiGroups: [eipsegment.io], resources: [eipsegments], verbs: [get, list]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: eipsegment-auditor}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: eipsegment-auditor}
subjects:
- {kind: ServiceAccount, name: eipsegment-auditor, namespace: eipsegment-system}
- {kind: ServiceAccount, name: eipsegment-auditor-keyless, namespace: eipsegment-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: eipsegment-auditor-identity-key, namespace: eipsegment-system}
rules:
- {apiGroups: [""], resources: [secrets], resourceNames: [eipsegment-identity-key], verbs: [get]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: eipsegment-auditor-identity-key, namespace: eipsegment-system}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: eipsegment-auditor-identity-key}
subjects:
- {kind: ServiceAccount, name: eipsegment-auditor, namespace: eipsegment-system}
"#;

fn auditors(c: &Cluster) -> &'static Auditors {
    static AUDITORS: OnceLock<Auditors> = OnceLock::new();
    AUDITORS.get_or_init(|| {
        c.apply(AUDITOR_RBAC).unwrap();
        let auditors = Auditors {
            reader: service_account_kubeconfig(c, "eipsegment-auditor"),
            keyless: service_account_kubeconfig(c, "eipsegment-auditor-keyless"),
        };
        check_auditor_rights(c, &auditors);
        auditors
    })
}

/// A kubeconfig with a token of the operator namespace's ServiceAccount `sa`.
fn service_account_kubeconfig(c: &Cluster, sa: &str) -> String {
    c.service_account_kubeconfig(OPERATOR_NS, sa, OPERATOR_NS)
}

/// What each identity may do, asked of the apiserver ("*": in every namespace).
fn check_auditor_rights(c: &Cluster, a: &Auditors) {
    let key = format!("secrets/{KEY_SECRET}");
    let (reader, keyless) = (a.reader.as_str(), a.keyless.as_str());
    for (who, verb, resource, ns, expect) in [
        (reader, "list", "eipsegments.eipsegment.io", "*", "yes"),
        (reader, "get", "eipsegments.eipsegment.io", "*", "yes"),
        (reader, "patch", "eipsegments.eipsegment.io", "*", "no"),
        (reader, "patch", "eipsegments.eipsegment.io/status", "*", "no"),
        (reader, "delete", "eipsegments.eipsegment.io", "*", "no"),
        (reader, "create", "events.events.k8s.io", "*", "no"),
        (reader, "get", key.as_str(), OPERATOR_NS, "yes"),
        (reader, "get", "secrets/another", OPERATOR_NS, "no"),
        (reader, "list", "secrets", OPERATOR_NS, "no"),
        (reader, "create", "secrets", OPERATOR_NS, "no"),
        (reader, "update", key.as_str(), OPERATOR_NS, "no"),
        (keyless, "list", "eipsegments.eipsegment.io", "*", "yes"),
        (keyless, "get", key.as_str(), OPERATOR_NS, "no"),
    ] {
        let scope = if ns == "*" { vec!["--all-namespaces"] } else { vec!["-n", ns] };
        let args = [&["auth", "can-i", verb, resource][..], &scope].concat();
        let (_, out, err) = c.kubectl_as(who, &args, None);
        assert_eq!(out.trim(), expect, "{who}: {args:?}: {err}");
    }
}

fn remove_every_object(c: &Cluster) {
    let listed = c.kubectl(&[
        "get",
        "eipsegments",
        "--all-namespaces",
        "-o",
        r#"jsonpath={range .items[*]}{.metadata.namespace}{" "}{.metadata.name}{"\n"}{end}"#,
    ]);
    for (ns, name) in listed.lines().filter_map(|l| l.split_once(' ')) {
        c.strip_finalizers(ns, name);
        c.kubectl(&["delete", "eipsegment", name, "-n", ns, "--ignore-not-found", "--timeout=30s"]);
    }
}

struct Audit {
    code: i32,
    stdout: String,
    stderr: String,
    /// The simulator's calls during the audit: action -> outcome -> count.
    calls: Value,
}

impl Audit {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.stdout))
    }

    /// The table row of the segment.
    fn row(&self, id: &str) -> &str {
        self.stdout.lines().find(|l| l.contains(id)).unwrap_or_else(|| panic!("no row for {id} in\n{}", self.stdout))
    }

    fn calls(&self, action: &str, outcome: &str) -> u64 {
        self.calls[action][outcome].as_u64().unwrap_or(0)
    }
}

/// Runs the audit binary under the read-only identity with `key`; asserts that the simulator saw
/// no call but the two reads meanwhile.
fn audit_as(sim: &Simulator, key: (&str, &str), kubeconfig: &str, args: &[&str]) -> Audit {
    sim.admin("DELETE", "counters", Value::Null);
    let out = Command::new(operator_binary())
        .args(["audit", "--vpc-endpoint", &sim.url, "--sts-endpoint", &sim.url, "--allow-insecure-endpoint"])
        .args(["--call-timeout-seconds", "5"])
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("ALIBABA_CLOUD_ACCESS_KEY_ID", key.0)
        .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", key.1)
        .env_remove("ALIBABA_CLOUD_SECURITY_TOKEN")
        .env_remove("ALIBABA_CLOUD_ROLE_ARN")
        .env_remove("RUST_LOG")
        .output()
        .expect("run eipsegment-operator audit");
    let calls = sim.admin("GET", "counters", Value::Null);
    let made: Vec<&String> = calls.as_object().unwrap().keys().collect();
    assert!(made.iter().all(|a| READS.contains(&a.as_str())), "the audit made {made:?} calls: {calls}");
    let audit = Audit {
        code: out.status.code().expect("an exit code"),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
        calls,
    };
    assert!(!audit.stderr.contains(key.1) && !audit.stdout.contains(key.1), "the secret was printed");
    audit
}

fn audit(c: &Cluster, sim: &Simulator, args: &[&str]) -> Audit {
    audit_as(sim, DEFAULT_KEY, &auditors(c).reader, args)
}

/// The JSON report's segments by ID.
fn segments(report: &Value) -> HashMap<String, Value> {
    report["regions"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["segments"].as_array().unwrap().clone())
        .map(|s| (s["segmentId"].as_str().unwrap().to_string(), s))
        .collect()
}

fn regions(report: &Value) -> Vec<String> {
    report["regions"].as_array().unwrap().iter().map(|r| r["region"].as_str().unwrap().to_string()).collect()
}

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|o| format!("{}/{}", o["namespace"].as_str().unwrap(), o["name"].as_str().unwrap()))
        .collect()
}

fn object_yaml(ns: &str, name: &str, annotations: &[(&str, &str)], spec: &str) -> String {
    let annotations: String = annotations.iter().map(|(k, v)| format!("    {k}: \"{v}\"\n")).collect();
    let annotations = if annotations.is_empty() { String::new() } else { format!("  annotations:\n{annotations}") };
    format!(
        "apiVersion: eipsegment.io/v1alpha1\nkind: EipSegment\nmetadata:\n  name: {name}\n  namespace: {ns}\n{annotations}spec:\n{spec}"
    )
}

fn adopting(id: &str, region: &str) -> String {
    format!("  regionId: {region}\n  segmentInstanceId: {id}\n")
}

fn allocating(region: &str) -> String {
    format!("  regionId: {region}\n  eipMask: 28\n")
}

/// Establishes `ns/name` on `id` as the operator records an adoption: status names the segment and
/// its account (written by the admin; status is the operator's alone, and no tenant may write it).
fn establish(c: &Cluster, ns: &str, name: &str, id: &str, account: &str, source: &str) {
    let status = json!({"status": {
        "segmentInstanceId": id, "accountId": account, "credentialsSource": source, "cloudStatus": "Allocated",
    }});
    c.patch_status(ns, name, &status.to_string());
}

/// The objects and segments of the cross-region scenario, by what an audit must make of them.
struct Fleet {
    /// The operator's namespace, and one it never served.
    served: String,
    other: String,
    /// Owned by allocation and by adoption, established through the real operator (status).
    allocated: String,
    adopted: String,
    /// Owned by its proven identity annotations alone: allocated by the operator, then restored
    /// without status while the operator is stopped.
    restored: String,
    /// Unowned: named by nobody, or only by an object recorded in another account.
    stray: String,
    misrecorded: String,
    /// Unowned: adopted in spec by an object the operator never served, so never established.
    unestablished: String,
    /// Unowned: named by an identity annotation anyone could write, without the operator's proof.
    forged: String,
    /// Unowned: allocated by the operator for an object removed since, whose annotations, proof
    /// included, were copied to another object (where the proof proves nothing).
    copied: String,
    /// The other account's own: one named for it, one not.
    theirs: String,
    their_stray: String,
    /// A region no object names, of more than one page.
    paged: Vec<String>,
}

/// Ready, with the identity annotations and the operator's proof of them.
fn wait_proven(c: &Cluster, ns: &str, name: &str) -> Value {
    eventually(&format!("{ns}/{name} Ready with its identity proven"), WAIT, || {
        c.get(ns, name).filter(|o| {
            let annotations = &o["metadata"]["annotations"];
            is_ready(o) && annotations[PROOF].is_string() && annotations[SEGMENT_ID] == o["status"]["segmentInstanceId"]
        })
    })
}

/// Through the real operator, which is then stopped: allocates `allocated` (cn-hangzhou), adopts
/// `adopted`, allocates `restored` and `copied` (cn-shanghai). Returns their segments in that order.
fn established_by_the_operator(c: &Cluster, sim: &Simulator, served: &str) -> [String; 4] {
    let mut op = Operator::start(c, sim, served, &[]);
    let adopted = sim.seed(json!({"regionId": "cn-hangzhou"}));
    let names = ["allocated", "adopted", "restored", "copied"];
    let specs = [
        allocating("cn-hangzhou"),
        adopting(&adopted, "cn-hangzhou"),
        allocating("cn-shanghai"),
        allocating("cn-shanghai"),
    ];
    for (name, spec) in names.iter().zip(&specs) {
        c.apply(&segment_yaml(served, name, spec)).unwrap();
    }
    let objects = names.map(|name| wait_proven(c, served, name));
    op.kill();
    assert!(objects.iter().all(|o| o["status"]["accountId"] == DEFAULT_ACCOUNT), "{objects:?}");
    assert_eq!(segment_id(&objects[1]), adopted);
    objects.map(|o| segment_id(&o))
}

/// Removes `ns/name` behind the (stopped) operator's back, then applies its backup as `to`: spec and
/// identity annotations, proof included, no status. Returns the object as applied.
fn restore_as(c: &Cluster, ns: &str, name: &str, to: (&str, &str)) -> Value {
    let (saved, _) = Kube::new(c).remove_behind_operator(ns, name).expect("removed");
    let mut manifest = restore_manifest(&saved, false);
    manifest["metadata"]["namespace"] = json!(to.0);
    manifest["metadata"]["name"] = json!(to.1);
    c.apply(&manifest.to_string()).unwrap();
    let back = c.get(to.0, to.1).expect("applied");
    assert!(back["status"].is_null(), "a backup holds no status: {back}");
    for key in [SEGMENT_ID, PROOF] {
        assert_eq!(back["metadata"]["annotations"][key], saved["metadata"]["annotations"][key], "{key}");
    }
    back
}

/// The operator's identity key, from its Secret.
fn operator_key(c: &Cluster) -> IdentityKey {
    let data = c.kubectl(&["get", "secret", KEY_SECRET, "-n", OPERATOR_NS, "-o", "jsonpath={.data.key}"]);
    IdentityKey::new(base64::engine::general_purpose::STANDARD.decode(data.trim()).unwrap()).unwrap()
}

/// The segment the object's annotations name, if the operator's key proves them on this object.
fn proven_segment(key: &IdentityKey, obj: &Value) -> Option<String> {
    let annotations: BTreeMap<String, String> = serde_json::from_value(obj["metadata"]["annotations"].clone()).unwrap();
    let meta = &obj["metadata"];
    key.read(meta["namespace"].as_str().unwrap(), meta["name"].as_str().unwrap(), &annotations, None)
        .identity
        .segment_id
}

/// Objects of `other`, a namespace the operator never served, that name segments without having
/// established them (an adoption in spec, a forged annotation), and two recorded in the other
/// account. Returns (misrecorded, theirs, unestablished, forged).
fn named_but_not_established(c: &Cluster, sim: &Simulator, other: &str) -> [String; 4] {
    let misrecorded = sim.seed(json!({"regionId": "cn-hangzhou"}));
    c.apply(&segment_yaml(other, "elsewhere", &adopting(&misrecorded, "cn-hangzhou"))).unwrap();
    establish(c, other, "elsewhere", &misrecorded, OTHER_ACCOUNT, "Secret/other-keys");
    let theirs = sim.seed(json!({"regionId": "cn-hangzhou", "ownerAccount": OTHER_ACCOUNT}));
    c.apply(&segment_yaml(other, "theirs", &adopting(&theirs, "cn-hangzhou"))).unwrap();
    establish(c, other, "theirs", &theirs, OTHER_ACCOUNT, "Secret/other-keys");
    let unestablished = sim.seed(json!({"regionId": "cn-hangzhou"}));
    c.apply(&segment_yaml(other, "adopting", &adopting(&unestablished, "cn-hangzhou"))).unwrap();
    let forged = sim.seed(json!({"regionId": "cn-hangzhou"}));
    let annotations = [(SEGMENT_ID, forged.as_str()), (ACCOUNT_ID, DEFAULT_ACCOUNT)];
    c.apply(&object_yaml(other, "forged", &annotations, &allocating("cn-hangzhou"))).unwrap();
    [misrecorded, theirs, unestablished, forged]
}

fn fleet_across_regions(c: &Cluster, sim: &Simulator) -> Fleet {
    let served = c.namespace("audit-served");
    let other = c.namespace("audit-other");
    let [allocated, adopted, restored, copied] = established_by_the_operator(c, sim, &served);
    let restored_obj = restore_as(c, &served, "restored", (&served, "restored"));
    let copy = restore_as(c, &served, "copied", (&other, "copy"));
    // The fixtures are what they say: the operator's key proves the restored object's annotations,
    // and the same annotations prove nothing on the copy.
    let key = operator_key(c);
    assert_eq!(proven_segment(&key, &restored_obj).as_ref(), Some(&restored), "{restored_obj}");
    assert_eq!(proven_segment(&key, &copy), None, "{copy}");
    let stray = sim.seed(json!({"regionId": "cn-shanghai"}));
    let [misrecorded, theirs, unestablished, forged] = named_but_not_established(c, sim, &other);
    let their_stray = sim.seed(json!({"regionId": "cn-shanghai", "ownerAccount": OTHER_ACCOUNT}));
    let paged: Vec<String> = (0..52).map(|_| sim.seed(json!({"regionId": "cn-beijing"}))).collect();
    Fleet {
        served,
        other,
        allocated,
        adopted,
        restored,
        stray,
        misrecorded,
        unestablished,
        forged,
        copied,
        theirs,
        their_stray,
        paged,
    }
}

/// The table: a row per segment of this account in the regions objects name, with its owner or
/// why it has none, and the totals; one page per region, and one question for the account.
fn check_table_report(c: &Cluster, sim: &Simulator, f: &Fleet) {
    let Fleet { served, other, allocated, .. } = f;
    let table = audit(c, sim, &[]);
    assert_eq!(table.code, 1, "some unowned: {}\n{}", table.stdout, table.stderr);
    assert!(table.stdout.starts_with("REGION"), "{}", table.stdout);
    let header: Vec<&str> =
        table.stdout.lines().next().unwrap().split("  ").map(str::trim).filter(|s| !s.is_empty()).collect();
    assert_eq!(header, ["REGION", "SEGMENT ID", "CIDR", "CREATED", "STATUS", "VERDICT/OWNER"]);
    let cidr = sim.segment(allocated).unwrap()["segment"].as_str().unwrap().to_string();
    let row = table.row(allocated);
    assert!(row.starts_with("cn-hangzhou") && row.contains(&cidr) && row.contains("Allocated"), "{row}");
    for (id, owner) in [(allocated, "allocated"), (&f.adopted, "adopted"), (&f.restored, "restored")] {
        assert!(table.row(id).ends_with(&format!("owned by {served}/{owner}")), "{owner}: {}", table.stdout);
    }
    assert!(table.row(&f.restored).starts_with("cn-shanghai"), "{}", table.stdout);
    for (id, what) in [
        (&f.stray, "named by nobody"),
        (&f.unestablished, "an adoption never established"),
        (&f.forged, "a forged annotation"),
        (&f.copied, "a copied annotation"),
    ] {
        assert!(table.row(id).ends_with("UNOWNED"), "{what}: {}", table.stdout);
    }
    let named_elsewhere = format!("UNOWNED (named only by {other}/elsewhere for account {OTHER_ACCOUNT})");
    assert!(table.row(&f.misrecorded).ends_with(&named_elsewhere), "{}", table.stdout);
    for hidden in [&f.theirs, &f.their_stray, &f.paged[0]] {
        assert!(
            !table.stdout.contains(hidden.as_str()),
            "{hidden} is not this account's or region's: {}",
            table.stdout
        );
    }
    assert!(
        table.stdout.contains(&format!("account {DEFAULT_ACCOUNT}: all 2 region(s) listed; 3 owned, 5 unowned")),
        "{}",
        table.stdout
    );
    assert_eq!((table.calls("DescribeEipSegment", "Success"), table.calls("GetCallerIdentity", "Success")), (2, 1));
}

/// The JSON report says the same, with each segment's details and owners.
fn check_json_report(c: &Cluster, sim: &Simulator, f: &Fleet) {
    let report = audit(c, sim, &["--output", "json"]);
    assert_eq!(report.code, 1, "{}", report.stderr);
    let v = report.json();
    assert_eq!(
        (&v["version"], &v["account"], &v["complete"], &v["unowned"]),
        (&json!(1), &json!(DEFAULT_ACCOUNT), &json!(true), &json!(5))
    );
    assert_eq!(regions(&v), ["cn-hangzhou", "cn-shanghai"]);
    assert!(v["regions"].as_array().unwrap().iter().all(|r| r["error"].is_null()));
    let by_id = segments(&v);
    assert_eq!(by_id.len(), 8, "{v}");
    let cidr = sim.segment(&f.allocated).unwrap()["segment"].as_str().unwrap().to_string();
    let owned = &by_id[&f.allocated];
    assert_eq!(
        (&owned["verdict"], &owned["status"], &owned["cidr"], &owned["ipCount"]),
        (&json!("owned"), &json!("Allocated"), &json!(cidr), &json!(16))
    );
    assert_eq!(owned["creationTime"], sim.segment(&f.allocated).unwrap()["creationTime"]);
    assert_eq!(names(&owned["owners"]), [format!("{}/allocated", f.served)]);
    assert_eq!(names(&by_id[&f.adopted]["owners"]), [format!("{}/adopted", f.served)]);
    assert_eq!(names(&by_id[&f.restored]["owners"]), [format!("{}/restored", f.served)]);
    for id in [&f.stray, &f.unestablished, &f.forged, &f.copied] {
        let s = &by_id[id];
        assert_eq!(
            (&s["verdict"], &s["owners"], &s["otherAccounts"]),
            (&json!("unowned"), &json!([]), &json!([])),
            "{s}"
        );
    }
    assert_eq!(by_id[&f.misrecorded]["verdict"], "unowned");
    assert_eq!(
        by_id[&f.misrecorded]["otherAccounts"],
        json!([{"namespace": f.other, "name": "elsewhere", "accountId": OTHER_ACCOUNT}])
    );
    for s in by_id.values() {
        assert!(s["pendingAllocations"].as_array().unwrap().is_empty(), "{s}");
    }
}

/// Without the key's Secret (no operator ever made one), nothing but status counts: the restored
/// object's annotations prove nothing, the objects with status still own theirs. The Secret is put
/// back as it was.
fn check_only_status_counts_without_the_key(c: &Cluster, sim: &Simulator, f: &Fleet) {
    let saved: Value =
        serde_json::from_str(&c.kubectl(&["get", "secret", KEY_SECRET, "-n", OPERATOR_NS, "-o", "json"])).unwrap();
    c.kubectl(&["delete", "secret", KEY_SECRET, "-n", OPERATOR_NS, "--timeout=30s"]);
    let keyless = audit(c, sim, &["--output", "json"]);
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret", "type": saved["type"], "data": saved["data"],
        "metadata": {"name": KEY_SECRET, "namespace": OPERATOR_NS},
    });
    c.apply(&secret.to_string()).unwrap();
    assert_eq!(keyless.code, 1, "{}\n{}", keyless.stdout, keyless.stderr);
    let v = keyless.json();
    assert_eq!(v["unowned"], 6, "{v}");
    let by_id = segments(&v);
    assert_eq!(by_id[&f.restored]["verdict"], "unowned", "{v}");
    for id in [&f.allocated, &f.adopted] {
        assert_eq!(by_id[id]["verdict"], "owned", "{v}");
    }
    let back = audit(c, sim, &[]);
    assert_eq!(back.code, 1, "{}", back.stderr);
    assert!(back.row(&f.restored).ends_with(&format!("owned by {}/restored", f.served)), "{}", back.stdout);
}

/// The other account's audit: its own segments only.
fn check_the_other_accounts_audit(c: &Cluster, sim: &Simulator, f: &Fleet) {
    let theirs_audit = audit_as(sim, OTHER_KEY, &auditors(c).reader, &["--output", "json"]);
    assert_eq!(theirs_audit.code, 1, "{}", theirs_audit.stderr);
    let v = theirs_audit.json();
    assert_eq!((&v["account"], &v["unowned"]), (&json!(OTHER_ACCOUNT), &json!(1)));
    let by_id = segments(&v);
    let mut ids: Vec<&String> = by_id.keys().collect();
    ids.sort();
    let mut want = vec![&f.theirs, &f.their_stray];
    want.sort();
    assert_eq!(ids, want);
    assert_eq!(names(&by_id[&f.theirs]["owners"]), [format!("{}/theirs", f.other)]);
    assert_eq!(by_id[&f.their_stray]["verdict"], "unowned");
}

/// Regions asked for, comma-separated or repeated; a region of two pages is listed whole.
fn check_regions_asked_for(c: &Cluster, sim: &Simulator, f: &Fleet) {
    let paged_audit =
        audit(c, sim, &["--region", "cn-beijing,cn-hangzhou", "--region", "cn-beijing", "--output", "json"]);
    assert_eq!(paged_audit.code, 1, "{}", paged_audit.stderr);
    let v = paged_audit.json();
    assert_eq!(regions(&v), ["cn-beijing", "cn-hangzhou"]);
    assert_eq!(v["regions"][0]["segments"].as_array().unwrap().len(), 52);
    assert_eq!(v["unowned"], 52 + 3, "cn-hangzhou: misrecorded, unestablished, forged");
    assert!(f.paged.iter().all(|id| segments(&v)[id]["verdict"] == "unowned"));
    assert_eq!(paged_audit.calls("DescribeEipSegment", "Success"), 2 + 1, "two pages and one");
}

#[test]
fn segments_owned_unowned_and_in_another_account_across_regions() {
    let (_serial, c) = start();
    let sim = Simulator::start(&[]);
    let fleet = fleet_across_regions(c, &sim);
    check_table_report(c, &sim, &fleet);
    check_json_report(c, &sim, &fleet);
    check_the_other_accounts_audit(c, &sim, &fleet);
    check_regions_asked_for(c, &sim, &fleet);
    check_only_status_counts_without_the_key(c, &sim, &fleet);
}

#[test]
fn none_unowned_exits_0_and_releasing_segments_are_listed_not_counted() {
    let (_serial, c) = start();
    let sim = Simulator::start(&["--release-seconds", "600"]);
    let ns = c.namespace("audit-clean");
    let kept = sim.seed(json!({}));
    c.apply(&segment_yaml(&ns, "kept", &adopting(&kept, REGION))).unwrap();
    let releasing = sim.seed(json!({"status": "Releasing"}));
    let released = sim.seed(json!({}));
    sim.admin("PATCH", &format!("segments/{released}"), json!({"reportedStatus": "Released"}));

    // Adopted in spec, but not established yet: not the object's.
    let unestablished = audit(c, &sim, &[]);
    assert_eq!(unestablished.code, 1, "{}\n{}", unestablished.stdout, unestablished.stderr);
    assert!(unestablished.row(&kept).ends_with("UNOWNED"), "{}", unestablished.stdout);
    establish(c, &ns, "kept", &kept, DEFAULT_ACCOUNT, "Operator");

    let clean = audit(c, &sim, &[]);
    assert_eq!(clean.code, 0, "{}\n{}", clean.stdout, clean.stderr);
    assert!(clean.row(&kept).ends_with(&format!("owned by {ns}/kept")), "{}", clean.stdout);
    for (id, status) in [(&releasing, "Releasing"), (&released, "Released")] {
        let row = clean.row(id);
        assert!(row.contains(status) && row.contains("releasing, named by no EipSegment (not counted"), "{row}");
    }
    assert!(
        clean.stdout.contains("1 owned, 0 unowned, 0 possibly pending allocations, 2 releasing"),
        "{}",
        clean.stdout
    );
    let v = audit(c, &sim, &["--output", "json"]).json();
    assert_eq!((&v["unowned"], &v["complete"]), (&json!(0), &json!(true)));
    assert_eq!(segments(&v)[&releasing]["verdict"], "releasing");
    assert_eq!(segments(&v)[&released]["status"], "Released");

    // The same audit turns to 1 once a live segment is named by nobody.
    let stray = sim.seed(json!({}));
    let dirty = audit(c, &sim, &[]);
    assert_eq!(dirty.code, 1, "{}", dirty.stdout);
    assert!(dirty.row(&stray).ends_with("UNOWNED"));
}

/// Allocates as the operator does once it has marked the object (its answer then lost).
fn allocate(sim: &Simulator, region: &str, token: &str) -> String {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let client = vpc_client(&sim.url, ACCESS_KEY_ID, ACCESS_KEY_SECRET, Duration::from_secs(5));
    let request =
        AllocateRequest { region_id: region.into(), eip_mask: 28, client_token: token.into(), ..Default::default() };
    rt.block_on(async {
        let Admit::Granted(admission) = client.admit(Action::AllocateEipSegmentAddress, region).await else {
            panic!("no place for an Allocate");
        };
        client.allocate(&request, admission).await.unwrap().eip_segment_instance_id
    })
}

/// `ns/pending`, marked as the operator marks an allocation before its call, and the segment the
/// cloud made for it (whose answer the object never recorded); the marker's time and the segment.
fn pending_allocation(c: &Cluster, sim: &Simulator, ns: &str) -> (String, String) {
    c.apply(&segment_yaml(ns, "pending", "  regionId: cn-hangzhou\n  eipMask: 28\n")).unwrap();
    let uid = c.get(ns, "pending").unwrap()["metadata"]["uid"].as_str().unwrap().to_string();
    let token = format!("alloc-{uid}");
    let requested_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let marker = json!({"status": {"allocationRequestedAt": requested_at, "allocationToken": token}}).to_string();
    c.patch_status(ns, "pending", &marker);
    let answer = allocate(sim, "cn-hangzhou", &token);
    (requested_at, answer)
}

#[test]
fn a_pending_allocations_segment_is_possibly_its_objects() {
    let (_serial, c) = start();
    let sim = Simulator::start(&[]);
    let ns = c.namespace("audit-pending");
    let (requested_at, answer) = pending_allocation(c, &sim, &ns);
    // Made long before the marker: not the allocation's.
    let old = sim.seed(json!({"regionId": "cn-hangzhou", "creationTime": "2020-01-01T00:00:00Z"}));
    // New, but in a region where nothing is pending.
    let named = sim.seed(json!({"regionId": "cn-shanghai"}));
    c.apply(&segment_yaml(&ns, "shanghai", &adopting(&named, "cn-shanghai"))).unwrap();
    establish(c, &ns, "shanghai", &named, DEFAULT_ACCOUNT, "Operator");
    let elsewhere = sim.seed(json!({"regionId": "cn-shanghai"}));

    let table = audit(c, &sim, &[]);
    assert_eq!(table.code, 1, "{}\n{}", table.stdout, table.stderr);
    let row = table.row(&answer);
    assert!(row.contains("Allocating") || row.contains("Allocated"), "{row}");
    assert!(
        row.ends_with(&format!(
            "possibly the pending allocation of {ns}/pending (requested {requested_at}) (not counted)"
        )),
        "{row}"
    );
    assert!(
        table.row(&old).contains("2020-01-01T00:00:00Z") && table.row(&old).ends_with("UNOWNED"),
        "{}",
        table.stdout
    );
    assert!(table.row(&elsewhere).ends_with("UNOWNED"), "{}", table.stdout);
    assert!(table.stdout.contains("1 owned, 2 unowned, 1 possibly pending allocations"), "{}", table.stdout);

    let v = audit(c, &sim, &["--output", "json"]).json();
    let found = &segments(&v)[&answer];
    assert_eq!(found["verdict"], "possiblyPending");
    assert_eq!(found["pendingAllocations"], json!([{"namespace": ns, "name": "pending", "requestedAt": requested_at}]));
    assert_eq!(v["unowned"], 2);

    // Without the strays, a pending allocation alone leaves nothing unowned.
    sim.admin("DELETE", &format!("segments/{old}"), Value::Null);
    sim.admin("DELETE", &format!("segments/{elsewhere}"), Value::Null);
    let clean = audit(c, &sim, &[]);
    assert_eq!(clean.code, 0, "{}", clean.stdout);
    assert!(clean.row(&answer).contains("possibly the pending allocation"), "{}", clean.stdout);
}

/// The cloud's clock ten minutes behind the cluster's: the segment a pending allocation created
/// carries a CreationTime well before its object's marker. The audit measures the two clocks (the
/// cloud's answers are dated) and still sees the segment as possibly that allocation's, never as
/// one to release.
#[test]
fn a_pending_allocations_segment_stays_its_objects_when_the_clouds_clock_runs_behind() {
    let (_serial, c) = start();
    let sim = Simulator::start(&["--clock-offset-seconds=-600"]);
    let ns = c.namespace("audit-skew");
    let (requested_at, answer) = pending_allocation(c, &sim, &ns);
    let created = sim.segment(&answer).unwrap()["creationTime"].as_str().unwrap().to_string();
    assert!(created < requested_at, "the cloud dates it {created}, before the marker {requested_at}");

    let table = audit(c, &sim, &[]);
    assert_eq!(table.code, 0, "{}\n{}", table.stdout, table.stderr);
    assert!(
        table.row(&answer).contains(&format!("possibly the pending allocation of {ns}/pending")),
        "{}",
        table.stdout
    );
}

/// No EipSegment names a region: nothing to audit.
fn assert_nothing_to_audit_is_2(c: &Cluster, sim: &Simulator) {
    let none = audit(c, sim, &[]);
    assert_eq!(none.code, 2, "{}", none.stdout);
    assert!(none.stderr.contains("no region to audit"), "{}", none.stderr);
    assert!(none.stdout.is_empty());
}

/// Every malformed shape of a listing leaves the audit unable to tell, in both outputs, and lists
/// nothing from it.
fn assert_malformed_listings_are_2(c: &Cluster, sim: &Simulator, stray: &str) {
    for shape in ["noSegments", "noTotalCount", "wrongTotalCount", "emptyObject", "noSegmentList", "notJson"] {
        sim.admin(
            "PUT",
            "faults",
            json!({"malformedRate": 1.0, "malformedShapes": [shape], "actions": ["DescribeEipSegment"]}),
        );
        for output in ["table", "json"] {
            let a = audit(c, sim, &["--output", output]);
            assert_eq!(a.code, 2, "{shape}: {}\n{}", a.stdout, a.stderr);
            assert!(
                a.stderr.contains("cn-hangzhou: could not tell: page 1 of DescribeEipSegment"),
                "{shape}: {}",
                a.stderr
            );
            assert!(!a.stdout.contains(stray), "{shape}: nothing is listed from an unproven answer");
            if output == "json" {
                let v = a.json();
                assert_eq!((&v["complete"], &v["unowned"]), (&json!(false), &Value::Null), "{shape}");
                assert!(v["regions"][0]["error"].as_str().unwrap().contains("DescribeEipSegment"), "{shape}: {v}");
            } else {
                assert!(a.stdout.contains("COULD NOT TELL whether any segment is unowned"), "{shape}: {}", a.stdout);
                assert!(!a.stdout.contains("0 unowned"), "{shape}: {}", a.stdout);
            }
        }
    }
}

/// A listing the cloud fails is 2, with the cloud's error code.
fn assert_a_failed_listing_is_2(c: &Cluster, sim: &Simulator) {
    sim.admin("PUT", "faults", json!({"internalErrorRate": 1.0, "actions": ["DescribeEipSegment"]}));
    let failed = audit(c, sim, &[]);
    assert_eq!(failed.code, 2, "{}", failed.stdout);
    assert!(failed.stderr.contains("InternalError"), "{}", failed.stderr);
    sim.admin("PUT", "faults", json!({}));
}

/// A region that fails keeps the audit at 2, even with an unowned segment proven elsewhere.
fn assert_a_failed_region_keeps_2(c: &Cluster, sim: &Simulator, stray: &str) {
    let partly = audit(c, sim, &["--region", "cn-hangzhou,xx-nowhere-1"]);
    assert_eq!(partly.code, 2, "{}", partly.stdout);
    assert!(partly.row(stray).ends_with("UNOWNED"), "{}", partly.stdout);
    assert!(partly.stdout.contains("xx-nowhere-1: could not tell"), "{}", partly.stdout);
    assert!(
        partly.stdout.contains("1 of 2 regions could not be listed; in the 1 listed: 0 owned, 1 unowned"),
        "{}",
        partly.stdout
    );
}

/// An identity refused the identity key's Secret cannot tell which annotations are the operator's:
/// 2, naming the Secret and the refusal, with no report and before any cloud call.
fn assert_an_unreadable_key_is_2(c: &Cluster, sim: &Simulator) {
    for output in ["table", "json"] {
        let refused = audit_as(sim, DEFAULT_KEY, &auditors(c).keyless, &["--output", output]);
        assert_eq!(refused.code, 2, "{output}: {}\n{}", refused.stdout, refused.stderr);
        assert!(refused.stdout.is_empty(), "{output}: {}", refused.stdout);
        let said = |what: &str| refused.stderr.contains(what);
        assert!(
            said("could not tell")
                && said(&format!("identity key Secret {OPERATOR_NS}/{KEY_SECRET}"))
                && said("forbidden"),
            "{output}: {}",
            refused.stderr
        );
        assert_eq!(refused.calls, json!({}), "{output}");
    }
}

/// No account, no audit.
fn assert_no_account_no_audit(c: &Cluster, sim: &Simulator) {
    sim.admin("PUT", "sts", json!({"unavailable": true}));
    let anonymous = audit(c, sim, &[]);
    assert_eq!(anonymous.code, 2, "{}", anonymous.stdout);
    assert!(anonymous.stderr.contains("cannot tell which account the credentials act for"), "{}", anonymous.stderr);
    assert_eq!(anonymous.calls("DescribeEipSegment", "Success"), 0);
    sim.admin("PUT", "sts", json!({"unavailable": false}));
}

/// No cluster, no audit: and not a single cloud call.
fn assert_no_cluster_no_audit(sim: &Simulator) {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-kubeconfig");
    let unreachable = audit_as(sim, DEFAULT_KEY, missing.to_str().unwrap(), &[]);
    assert_eq!(unreachable.code, 2, "{}", unreachable.stdout);
    assert!(unreachable.stderr.contains("could not tell"), "{}", unreachable.stderr);
    assert_eq!(unreachable.calls, json!({}));
}

/// A bad region is refused before anything is asked.
fn assert_a_bad_region_is_refused(c: &Cluster, sim: &Simulator) {
    let bad = audit(c, sim, &["--region", "Hangzhou"]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("is not a region ID"), "{}", bad.stderr);
    assert_eq!(bad.calls, json!({}));
}

#[test]
fn an_unproven_listing_or_nothing_to_audit_is_exit_2() {
    let (_serial, c) = start();
    let sim = Simulator::start(&[]);
    assert_nothing_to_audit_is_2(c, &sim);

    let ns = c.namespace("audit-unproven");
    let stray = sim.seed(json!({}));
    c.apply(&segment_yaml(&ns, "allocating", "  regionId: cn-hangzhou\n  eipMask: 28\n")).unwrap();
    assert_eq!(audit(c, &sim, &[]).code, 1, "the listing proves the stray unowned");
    assert_an_unreadable_key_is_2(c, &sim);

    assert_malformed_listings_are_2(c, &sim, &stray);
    assert_a_failed_listing_is_2(c, &sim);
    assert_a_failed_region_keeps_2(c, &sim, &stray);
    assert_no_account_no_audit(c, &sim);
    assert_no_cluster_no_audit(&sim);
    assert_a_bad_region_is_refused(c, &sim);
}
