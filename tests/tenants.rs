//! A hostile tenant against the operator, on the real stack (kube-apiserver, etcd and
//! kube-controller-manager, the operator binary, the VPC simulator, kubectl). Tenants are users
//! bound to their own namespace only: they may create EipSegments with any spec and annotations,
//! and Secrets, but never write status. One operator serves the platform team and the tenants, with
//! Secret-referenced credentials and a tenancy policy: the platform namespace may do anything; an
//! "open" tenant namespace may too (so an attack across namespaces must be harmless even from a
//! tenant that may adopt and act with the operator's own account); a "shared" tenant namespace has
//! the shared profile's defaults (its own Secret, no adoption, nothing wider than a /28).
//!
//! Seven attacks, each refused or harmless: blocking another team's release forever, taking over
//! its segment as it is deleted, leaking its segment once it is restored from a backup, bypassing
//! the credentials policy with a forged annotation, stealing a segment by replaying its allocation
//! token, releasing a segment nobody manages, and spending without limit. Each runs against the
//! operator alone and again behind the chart's admission policy, which may refuse a creation
//! outright; then the attack is refused at admission, and what the victim is promised still holds.

use eipsegment_test_support as support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use eipsegment_operator::lifecycle::identity::{ALLOCATION_TOKEN, CREDENTIALS_SOURCE, SEGMENT_ID};
use serde::Deserialize;
use serde_json::{Value, json};
use support::*;
use vpc_simulator::{DEFAULT_ACCOUNT, OTHER_ACCESS_KEY_ID, OTHER_ACCESS_KEY_SECRET, OTHER_ACCOUNT};

/// Every wait is bounded, so that a deletion that never completes fails the test in time.
const T: Duration = Duration::from_secs(60);
const ALLOCATE: &str = "AllocateEipSegmentAddress";
const RELEASE: &str = "ReleaseEipSegmentAddress";
const SPEC: &str = "  regionId: cn-hangzhou\n  eipMask: 28\n";

// ---- the attacks, each run against the operator alone and behind the admission policy ----

macro_rules! attacks {
    ($($attack:ident),+ $(,)?) => {
        /// The operator alone: it must refuse every attack, or make it harmless.
        mod operator_alone {
            $(#[test] fn $attack() { super::$attack(false) })+
        }
        /// The chart's admission policy in front of the operator: a creation may be refused there.
        mod behind_admission_policy {
            $(
                #[test]
                fn $attack() { super::$attack(true) }
            )+
        }
    };
}

attacks!(
    blocking_someone_elses_release_forever,
    taking_over_a_segment_being_deleted,
    leaking_a_restored_segment,
    bypassing_the_credentials_policy,
    stealing_a_segment_by_replaying_its_token,
    releasing_an_unmanaged_segment,
    spending_without_limit,
);

/// Attack 1: objects in another namespace name the platform team's segment: one adopts it with keys
/// of another account (so it can never hold it), one names it in a forged identity annotation alone
/// (with no usable credentials at all). Neither may hold the platform team's release back.
fn blocking_someone_elses_release_forever(enforced: bool) {
    let t = Tenancy::new("block", enforced);
    let (c, open) = (t.c, &t.open);
    let (id, _) = t.victim();
    t.put_secret(open, "other-account", OTHER_ACCESS_KEY_ID, OTHER_ACCESS_KEY_SECRET);
    let adoption = format!(
        "  regionId: cn-hangzhou\n  segmentInstanceId: {id}\n  credentialsSecretRef: {{name: other-account}}\n"
    );
    let adopter = t.attempt(open, "adopter", &[], &adoption);
    let forged = format!("{SPEC}  credentialsSecretRef: {{name: no-such-secret}}\n");
    let forger = t.attempt(open, "forger", &[(SEGMENT_ID, &id)], &forged);
    // The operator has seen both claims before the platform team deletes its object.
    for (name, made) in [("adopter", adopter), ("forger", forger)] {
        if made {
            answered(c, &open.ns, name);
        }
    }

    t.platform.delete(c, "victim");
    wait_deleted(c, &t.platform.ns, "victim");
    t.assert_victims_segment_released(&id);
    if forger {
        // It never allocates (its Secret does not exist): the forged annotation stays, and so does
        // the report.
        assert_reported(c, open, "forger", SEGMENT_ID, Lasting::Yes);
    }
    t.delete_all(open, &["adopter", "forger"]);
    assert_each_allocation_released_once(&t.sim);
}

/// Attack 2: a tenant allowed to adopt, with the operator's own credentials (the same account: it
/// sees the segment), adopts the platform team's segment. When the platform team deletes its object
/// (Delete), the segment is released, not handed over across namespaces.
fn taking_over_a_segment_being_deleted(enforced: bool) {
    let t = Tenancy::new("takeover", enforced);
    let (c, open) = (t.c, &t.open);
    let (id, _) = t.victim();
    let adoption = format!("  regionId: cn-hangzhou\n  segmentInstanceId: {id}\n");
    let taker = t.attempt(open, "taker", &[], &adoption);
    if taker {
        answered(c, &open.ns, "taker");
    }

    t.platform.delete(c, "victim");
    never_holds_while_deleted(c, (&open.ns, "taker"), &id, (&t.platform.ns, "victim"));
    t.assert_victims_segment_released(&id);
    t.delete_all(open, &["taker"]);
    assert_eq!(releases_accepted(&t.sim, &id), 1, "released again: {:?}", history(&t.sim));
    assert_each_allocation_released_once(&t.sim);
}

/// Attack 3: a tenant names the platform team's segment in a forged identity annotation, then the
/// platform team restores its object from a backup (same namespace and name, identity annotations
/// kept): the restored object is the one that holds the segment, and its deletion releases it.
fn leaking_a_restored_segment(enforced: bool) {
    let t = Tenancy::new("restore", enforced);
    let (c, open) = (t.c, &t.open);
    let (id, _) = t.victim();
    let squatter = t.attempt(open, "squatter", &[(SEGMENT_ID, &id)], SPEC);
    if squatter {
        answered(c, &open.ns, "squatter");
    }
    // The restore comes after the squatter was made: creation timestamps have whole seconds.
    std::thread::sleep(Duration::from_millis(1100));
    let (saved, _) = Kube::new(c).remove_behind_operator(&t.platform.ns, "victim").expect("removed");
    // A backup tool restores with the cluster's rights.
    c.apply(&restore_manifest(&saved, false).to_string()).unwrap();
    let restored = wait_ready_saying(c, &t.platform.ns, "victim");
    assert_ne!(uid(&restored), uid(&saved), "a new incarnation");
    assert_eq!(segment_id(&restored), id, "the restored object has another segment");

    t.platform.delete(c, "victim");
    wait_deleted(c, &t.platform.ns, "victim");
    t.assert_victims_segment_released(&id);
    if squatter {
        assert_reported(c, open, "squatter", SEGMENT_ID, Lasting::No);
    }
    t.delete_all(open, &["squatter"]);
    assert_each_allocation_released_once(&t.sim);
}

/// Attack 4: a tenant of the shared profile (which must bring its own Secret) claims the operator's
/// own credentials by a forged annotation beside its Secret of account B: its segment is allocated
/// in account B. An object with no Secret at all gets nothing in the operator's account.
fn bypassing_the_credentials_policy(enforced: bool) {
    let t = Tenancy::new("creds", enforced);
    let (c, shared) = (t.c, &t.shared);
    t.put_secret(shared, "own-keys", OTHER_ACCESS_KEY_ID, OTHER_ACCESS_KEY_SECRET);
    let with_keys = format!("{SPEC}  credentialsSecretRef: {{name: own-keys}}\n");
    if t.attempt(shared, "forged-source", &[(CREDENTIALS_SOURCE, "Operator")], &with_keys) {
        let obj = wait_ready_saying(c, &shared.ns, "forged-source");
        let account = &obj["status"]["accountId"];
        assert_eq!(
            account, OTHER_ACCOUNT,
            "allocated with credentials {}, not the Secret's",
            obj["status"]["credentialsSource"]
        );
        assert_eq!(t.sim.segment(&segment_id(&obj)).unwrap()["ownerAccount"], OTHER_ACCOUNT);
        assert_reported(c, shared, "forged-source", CREDENTIALS_SOURCE, Lasting::No);
    }
    assert_nothing_in_operators_account(&t.sim);

    // No Secret reference and no namespace default Secret: only the operator's credentials are
    // left, which the shared profile does not allow.
    // Its forged credentials source does not change that, and stays reported.
    let before = calls(&t.sim, ALLOCATE);
    if t.attempt(shared, "no-keys", &[(CREDENTIALS_SOURCE, "Operator")], SPEC) {
        let answer = policy_answer(c, &shared.ns, "no-keys");
        assert_eq!(calls(&t.sim, ALLOCATE), before, "allocated with the operator's credentials: {}", ready_of(&answer));
        assert!(!is_ready(&answer), "{}", ready_of(&answer));
        assert_reported(c, shared, "no-keys", CREDENTIALS_SOURCE, Lasting::Yes);
    }
    assert_nothing_in_operators_account(&t.sim);
    t.delete_all(shared, &["forged-source", "no-keys"]);
    assert_each_allocation_released_once(&t.sim);
}

/// Attack 5: a tenant copies the platform team's spec and its allocation token into an annotation:
/// the cloud answers a repeated token with the first request's segment, which must not become the
/// tenant's. The platform team's deletion still releases its segment.
fn stealing_a_segment_by_replaying_its_token(enforced: bool) {
    let t = Tenancy::new("replay", enforced);
    let (c, open) = (t.c, &t.open);
    let (id, victim) = t.victim();
    let token = format!("alloc-{}", uid(&victim));
    assert_eq!(victim["status"]["allocationToken"], token.as_str());
    if t.attempt(open, "replayer", &[(ALLOCATION_TOKEN, &token)], SPEC) {
        let obj = eventually(&format!("{}/replayer names a segment", open.ns), T, || {
            c.get(&open.ns, "replayer").filter(|o| o["status"]["segmentInstanceId"].is_string())
        });
        assert_ne!(
            segment_id(&obj),
            id,
            "the replayed token gave the tenant the platform's segment: {}",
            ready_of(&obj)
        );
        assert_reported(c, open, "replayer", ALLOCATION_TOKEN, Lasting::No);
    }

    t.platform.delete(c, "victim");
    wait_deleted(c, &t.platform.ns, "victim");
    t.assert_victims_segment_released(&id);
    t.delete_all(open, &["replayer"]);
    assert_each_allocation_released_once(&t.sim);
}

/// Attack 6: a segment in the operator's account that no object manages; a tenant of the shared
/// profile (no adoption) adopts it with deletionPolicy Delete and deletes the object: the segment
/// stays.
fn releasing_an_unmanaged_segment(enforced: bool) {
    let t = Tenancy::new("unmanaged", enforced);
    let (c, shared) = (t.c, &t.shared);
    let id = t.sim.seed(json!({"ownerAccount": DEFAULT_ACCOUNT}));
    let adoption = format!("  regionId: cn-hangzhou\n  segmentInstanceId: {id}\n  deletionPolicy: Delete\n");
    if t.attempt(shared, "grab", &[], &adoption) {
        let answer = policy_answer(c, &shared.ns, "grab");
        t.delete_all(shared, &["grab"]);
        assert_eq!(calls(&t.sim, RELEASE), 0, "the tenant's deletion released {id}: {:?}", history(&t.sim));
        assert_refused_by_policy(c, &shared.ns, "grab", &answer);
    }
    assert_eq!(releases_accepted(&t.sim, &id), 0, "{:?}", history(&t.sim));
    assert_eq!(t.sim.segment(&id).expect("the unmanaged segment is kept")["status"], "Allocated");
}

/// Attack 7: a tenant of the shared profile, with its own Secret, asks for a /24 (256 addresses)
/// where the profile allows at most a /28: refused without a call; a /28 is allocated.
fn spending_without_limit(enforced: bool) {
    let t = Tenancy::new("spend", enforced);
    let (c, shared) = (t.c, &t.shared);
    t.put_secret(shared, "own-keys", OTHER_ACCESS_KEY_ID, OTHER_ACCESS_KEY_SECRET);
    let with_mask =
        |mask: u8| format!("  regionId: cn-hangzhou\n  eipMask: {mask}\n  credentialsSecretRef: {{name: own-keys}}\n");
    if t.attempt(shared, "wide", &[], &with_mask(24)) {
        let answer = policy_answer(c, &shared.ns, "wide");
        assert_eq!(calls(&t.sim, ALLOCATE), 0, "a /24 was requested: {}", ready_of(&answer));
        assert_refused_by_policy(c, &shared.ns, "wide", &answer);
    }
    t.create(shared, "narrow", &with_mask(28));
    let narrow = wait_ready_saying(c, &shared.ns, "narrow");
    assert_eq!(narrow["status"]["ipCount"], 16, "{}", narrow["status"]);
    assert_eq!(calls(&t.sim, ALLOCATE), 1, "only the /28 is allocated: {:?}", history(&t.sim));
    t.delete_all(shared, &["wide", "narrow"]);
    assert_each_allocation_released_once(&t.sim);
}

/// A rule that selects namespaces by label: the operator watches the namespaces (with the rights
/// the chart grants it then), and only the labelled namespace gets the rule's wider segments; the
/// other one falls to the shared profile's default and is refused, naming it.
#[test]
fn a_rule_by_label_follows_the_namespaces_labels() {
    let c = Cluster::shared();
    let (wide, plain) = (
        Team { user: "tenant-d", ns: c.namespace("bylabel-wide") },
        Team { user: "tenant-e", ns: c.namespace("bylabel-plain") },
    );
    for team in [&wide, &plain] {
        bind_to_own_namespace(c, team);
        grant_secrets(c, &team.ns);
    }
    c.kubectl(&["label", "namespace", &wide.ns, "eipsegment.io/tier=wide"]);
    c.apply(NAMESPACE_READER).unwrap();
    let policy = "profile: shared\nrules:\n- name: wide\n  namespaceSelector: {matchLabels: {eipsegment.io/tier: wide}}\n  operatorCredentials: true\n  minEipMask: 24\n";
    let path = write_tenancy_policy(c, "bylabel", policy);
    let sim = Simulator::start(&[]);
    let args = ["--secret-credentials", "--tenancy-policy", path.to_str().unwrap()];
    let mut op = Operator::start(c, &sim, &format!("{},{}", wide.ns, plain.ns), &args);
    op.assert_running();
    let slash24 = "  regionId: cn-hangzhou\n  eipMask: 24\n";
    for team in [&wide, &plain] {
        let (ok, _, err) = team.kubectl(c, &["create", "-f", "-"], Some(&manifest(&team.ns, "wide", &[], slash24)));
        assert!(ok, "{err}");
    }
    let allowed = wait_ready_saying(c, &wide.ns, "wide");
    assert_eq!(allowed["status"]["ipCount"], 256, "{}", allowed["status"]);
    let refused = policy_answer(c, &plain.ns, "wide");
    assert_refused_by_policy(c, &plain.ns, "wide", &refused);
    let message = condition(&refused, "Ready").and_then(|r| r["message"].as_str().map(String::from));
    assert!(message.as_deref().is_some_and(|m| m.contains(r#"rule "default""#)), "{message:?}");
    assert_eq!(calls(&sim, ALLOCATE), 1, "only the labelled namespace allocated: {:?}", history(&sim));
    for team in [&wide, &plain] {
        team.delete(c, "wide");
        wait_deleted(c, &team.ns, "wide");
    }
    assert_each_allocation_released_once(&sim);
}

/// What the chart grants the operator when a tenancy rule selects namespaces by label.
const NAMESPACE_READER: &str = "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: eipsegment-operator-namespaces}\nrules:\n- {apiGroups: [\"\"], resources: [namespaces], verbs: [get, list, watch]}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: eipsegment-operator-namespaces}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: eipsegment-operator-namespaces}\nsubjects:\n- {kind: ServiceAccount, name: eipsegment-operator, namespace: eipsegment-system}\n";

// ---- the test bed: three namespaces, one operator, a tenancy policy ----

/// A user bound to its own namespace only.
struct Team {
    user: &'static str,
    ns: String,
}

impl Team {
    /// kubectl as this user (impersonated by the admin), an authenticated user like any other.
    fn kubectl(&self, c: &Cluster, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
        let mut all = vec!["--as", self.user, "--as-group", "system:authenticated"];
        all.extend_from_slice(args);
        c.kubectl_as(c.admin_kubeconfig(), &all, stdin)
    }

    fn delete(&self, c: &Cluster, name: &str) {
        let (ok, _, err) = self.kubectl(c, &["delete", "eipsegment", name, "-n", &self.ns, "--wait=false"], None);
        assert!(ok, "{} could not delete {}/{name}: {err}", self.user, self.ns);
    }
}

struct Tenancy {
    c: &'static Cluster,
    _op: Operator,
    sim: Simulator,
    /// The platform team (rule `platform`: anything goes).
    platform: Team,
    /// A tenant whose rule allows everything, adoption and the operator's credentials included.
    open: Team,
    /// A tenant under the shared profile's defaults (no rule names it).
    shared: Team,
    enforced: bool,
}

impl Tenancy {
    fn new(attack: &str, enforced: bool) -> Tenancy {
        let c = Cluster::shared();
        let attack = &format!("{attack}{}", if enforced { "-vap" } else { "" });
        let platform = Team { user: "platform-a", ns: c.namespace(&format!("{attack}-platform")) };
        let open = Team { user: "tenant-b", ns: c.namespace(&format!("{attack}-open")) };
        let shared = Team { user: "tenant-c", ns: c.namespace(&format!("{attack}-shared")) };
        for team in [&platform, &open, &shared] {
            bind_to_own_namespace(c, team);
            grant_secrets(c, &team.ns);
        }
        assert_confined(c, &open, &platform.ns);
        let namespaces = [platform.ns.as_str(), open.ns.as_str(), shared.ns.as_str()];
        let text = tenancy_policy(&platform.ns, &open.ns);
        if enforced {
            install_admission_policy(c, attack, &namespaces, &text);
        }
        let policy = write_tenancy_policy(c, attack, &text);
        let sim = Simulator::start(&[]);
        let args = ["--secret-credentials", "--tenancy-policy", policy.to_str().unwrap()];
        let mut op = Operator::start(c, &sim, &namespaces.join(","), &args);
        op.assert_running();
        Tenancy { c, _op: op, sim, platform, open, shared, enforced }
    }

    /// A creation that must be admitted.
    fn create(&self, team: &Team, name: &str, spec: &str) {
        let (ok, _, err) = team.kubectl(self.c, &["create", "-f", "-"], Some(&manifest(&team.ns, name, &[], spec)));
        assert!(ok, "{} could not create {}/{name}: {err}", team.user, team.ns);
    }

    /// An attacker's creation: made (true), or refused at admission with a reason, which only the
    /// admission policy may do.
    fn attempt(&self, team: &Team, name: &str, annotations: &[(&str, &str)], spec: &str) -> bool {
        let yaml = manifest(&team.ns, name, annotations, spec);
        let (ok, _, err) = team.kubectl(self.c, &["create", "-f", "-"], Some(&yaml));
        if ok {
            return true;
        }
        assert!(self.enforced, "{} could not create {}/{name}: {err}", team.user, team.ns);
        assert!(err.contains("denied request:"), "{}/{name} refused without the policy's reason: {err}", team.ns);
        eprintln!("{}/{name} refused at admission: {}", team.ns, err.trim());
        false
    }

    /// The platform team's segment, allocated with the operator's credentials (deletionPolicy
    /// Delete, the default for an allocation): its ID and the Ready object.
    fn victim(&self) -> (String, Value) {
        self.create(&self.platform, "victim", SPEC);
        let obj = wait_ready_saying(self.c, &self.platform.ns, "victim");
        assert_eq!(obj["status"]["accountId"], DEFAULT_ACCOUNT);
        (segment_id(&obj), obj)
    }

    /// The victim's object went with its segment: one release, which the cloud confirmed.
    fn assert_victims_segment_released(&self, id: &str) {
        let events = self.c.events(&self.platform.ns, "victim");
        assert!(self.sim.segment(id).is_none(), "the victim went, its segment {id} stayed; its events: {events:?}");
        assert_eq!(releases_accepted(&self.sim, id), 1, "{:?}", history(&self.sim));
    }

    fn put_secret(&self, team: &Team, name: &str, key_id: &str, key_secret: &str) {
        let yaml = format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {}}}\nstringData:\n  ALIBABA_CLOUD_ACCESS_KEY_ID: {key_id}\n  ALIBABA_CLOUD_ACCESS_KEY_SECRET: {key_secret}\n",
            team.ns
        );
        let (ok, _, err) = team.kubectl(self.c, &["create", "-f", "-"], Some(&yaml));
        assert!(ok, "{} could not create Secret {}/{name}: {err}", team.user, team.ns);
    }

    /// The team deletes these objects (those that exist), and each goes in bounded time.
    fn delete_all(&self, team: &Team, names: &[&str]) {
        let present: Vec<&str> = names.iter().copied().filter(|name| self.c.get(&team.ns, name).is_some()).collect();
        for name in &present {
            team.delete(self.c, name);
        }
        for name in &present {
            wait_deleted(self.c, &team.ns, name);
        }
    }
}

/// What a tenant may do, in its own namespace only: EipSegments (never their status), and create
/// and read Secrets.
fn bind_to_own_namespace(c: &Cluster, team: &Team) {
    let (ns, user) = (&team.ns, team.user);
    c.apply(&format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {{name: eipsegment-tenant, namespace: {ns}}}\nrules:\n- {{apiGroups: [eipsegment.io], resources: [eipsegments], verbs: [get, list, watch, create, update, patch, delete]}}\n- {{apiGroups: [\"\"], resources: [secrets], verbs: [create, get]}}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: eipsegment-tenant, namespace: {ns}}}\nroleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: eipsegment-tenant}}\nsubjects:\n- {{apiGroup: rbac.authorization.k8s.io, kind: User, name: {user}}}\n"
    ))
    .unwrap();
}

/// The attacker is no admin: it writes objects in its own namespace, not their status, and
/// nothing in the platform team's namespace.
fn assert_confined(c: &Cluster, tenant: &Team, platform_ns: &str) {
    let segments = "eipsegments.eipsegment.io";
    for (args, want) in [
        (vec!["create", segments, "-n", &tenant.ns], "yes"),
        (vec!["patch", segments, "--subresource=status", "-n", &tenant.ns], "no"),
        (vec!["get", segments, "-n", platform_ns], "no"),
    ] {
        let mut all = vec!["auth", "can-i"];
        all.extend(args.iter().copied());
        let (_, out, err) = tenant.kubectl(c, &all, None);
        assert_eq!(out.trim(), want, "{} may {args:?}? {err}", tenant.user);
    }
}

/// What the chart grants the operator in a namespace with Secret-referenced credentials: get, and
/// patch for the finalizer that keeps a Secret while segments depend on it.
fn grant_secrets(c: &Cluster, ns: &str) {
    c.apply(&format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {{name: eipsegment-operator-secrets, namespace: {ns}}}\nrules:\n- {{apiGroups: [\"\"], resources: [secrets], verbs: [get, patch]}}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: eipsegment-operator-secrets, namespace: {ns}}}\nroleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: eipsegment-operator-secrets}}\nsubjects:\n- {{kind: ServiceAccount, name: eipsegment-operator, namespace: eipsegment-system}}\n"
    ))
    .unwrap();
}

/// The shared profile for every namespace no rule names; the platform's and the open tenant's
/// rules allow everything (the platform's up to a /24). The operator reads it from a file; the
/// chart renders its admission policy from the same text as values.
fn tenancy_policy(platform_ns: &str, open_ns: &str) -> String {
    format!(
        "profile: shared\ndefault: {{}}\nrules:\n- name: platform\n  namespaces: [{platform_ns}]\n  operatorCredentials: true\n  allocate: true\n  minEipMask: 24\n  adopt: true\n  adoptWithDelete: true\n- name: open-tenant\n  namespaces: [{open_ns}]\n  operatorCredentials: true\n  allocate: true\n  adopt: true\n  adoptWithDelete: true\n"
    )
}

fn write_tenancy_policy(c: &Cluster, attack: &str, policy: &str) -> PathBuf {
    let path = c.dir.join(format!("tenancy-{attack}.yaml"));
    std::fs::write(&path, policy).expect("write the tenancy policy");
    path
}

/// The chart's ValidatingAdmissionPolicies for `policy` (as `tenancy` values), with their bindings
/// narrowed to this test's namespaces: the other tests of this process share the cluster and run
/// without them.
fn install_admission_policy(c: &Cluster, attack: &str, namespaces: &[&str], policy: &str) {
    let indented: String = policy.lines().map(|line| format!("  {line}\n")).collect();
    let values = c.dir.join(format!("tenancy-{attack}-values.yaml"));
    std::fs::write(&values, format!("tenancy:\n{indented}  admissionPolicy: {{enabled: true}}\n")).unwrap();
    // Only the policies are applied: the placeholder image does no harm.
    let values_arg = ["--values", values.to_str().unwrap(), "--set", "image.allowPlaceholder=true"];
    let rendered = helm_template("eipsegment-operator", "eipsegment-system", &values_arg);
    let docs: Vec<Value> =
        serde_yaml::Deserializer::from_str(&rendered).filter_map(|doc| Value::deserialize(doc).ok()).collect();
    let of_kind = |kind: &str| docs.iter().filter(|d| d["kind"] == kind).cloned().collect::<Vec<Value>>();
    let policies = of_kind("ValidatingAdmissionPolicy");
    assert!(!policies.is_empty(), "the chart renders no ValidatingAdmissionPolicy with {}", values.display());
    // Each test's own copy (the policies carry its tenancy rules), bound to its namespaces only.
    let own = |name: &Value| json!(format!("{}-{attack}-{}", name.as_str().unwrap(), std::process::id()));
    for mut policy in policies {
        policy["metadata"]["name"] = own(&policy["metadata"]["name"]);
        c.apply(&policy.to_string()).unwrap();
    }
    let only_these =
        json!({"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In", "values": namespaces}]});
    for mut binding in of_kind("ValidatingAdmissionPolicyBinding") {
        binding["metadata"]["name"] = own(&binding["metadata"]["name"]);
        binding["spec"]["policyName"] = own(&binding["spec"]["policyName"]);
        binding["spec"]["matchResources"]["namespaceSelector"] = only_these.clone();
        c.apply(&binding.to_string()).unwrap();
    }
    // The apiserver takes a new policy and binding up within a second or so.
    std::thread::sleep(Duration::from_secs(2));
}

/// An EipSegment with these annotations.
fn manifest(ns: &str, name: &str, annotations: &[(&str, &str)], spec: &str) -> String {
    let yaml = segment_yaml(ns, name, spec);
    if annotations.is_empty() {
        return yaml;
    }
    let lines: String = annotations.iter().map(|(key, value)| format!("    {key}: \"{value}\"\n")).collect();
    yaml.replacen("metadata:\n", &format!("metadata:\n  annotations:\n{lines}"), 1)
}

// ---- what the objects say ----

fn uid(obj: &Value) -> String {
    obj["metadata"]["uid"].as_str().unwrap().to_string()
}

/// The Ready condition in one line, for failure messages.
fn ready_of(obj: &Value) -> String {
    match condition(obj, "Ready") {
        Some(r) => format!("Ready={} {}: {}", r["status"], r["reason"], r["message"]),
        None => format!("no Ready condition (status {})", obj["status"]),
    }
}

/// The object once the operator has written any condition on it.
fn answered(c: &Cluster, ns: &str, name: &str) -> Value {
    eventually(&format!("{ns}/{name} answered"), T, || {
        c.get(ns, name).filter(|o| o["status"]["conditions"].as_array().is_some_and(|cs| !cs.is_empty()))
    })
}

fn wait_ready_saying(c: &Cluster, ns: &str, name: &str) -> Value {
    let start = Instant::now();
    loop {
        let obj = c.get(ns, name).unwrap_or_else(|| panic!("{ns}/{name} is gone"));
        if is_ready(&obj) {
            return obj;
        }
        assert!(start.elapsed() < T, "{ns}/{name} not Ready after {T:?}: {}", ready_of(&obj));
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits for a deleted object to go; after the bound, says what its Ready condition says.
fn wait_deleted(c: &Cluster, ns: &str, name: &str) {
    let start = Instant::now();
    while let Some(obj) = c.get(ns, name) {
        assert!(start.elapsed() < T, "{ns}/{name} still there {T:?} after its deletion: {}", ready_of(&obj));
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The tenancy policy's answer, or (an operator that does not refuse) an allocation's progress
/// past its call, or Ready.
fn policy_answer(c: &Cluster, ns: &str, name: &str) -> Value {
    eventually(&format!("{ns}/{name} refused or served"), T, || {
        c.get(ns, name).filter(|o| {
            condition(o, "Ready").is_some_and(|r| r["reason"] == "PolicyRefused")
                || is_ready(o)
                || o["status"]["segmentInstanceId"].is_string()
                || o["status"]["lastError"].is_object()
        })
    })
}

/// Refused by the tenancy policy: the Ready condition and a Warning event say so.
fn assert_refused_by_policy(c: &Cluster, ns: &str, name: &str, answer: &Value) {
    let refused = condition(answer, "Ready").is_some_and(|r| r["status"] == "False" && r["reason"] == "PolicyRefused");
    assert!(refused, "{ns}/{name} was not refused by the tenancy policy: {}", ready_of(answer));
    let warnings = events_of(c, ns, name, "PolicyRefused");
    assert!(warnings.iter().any(|(warning, _)| *warning), "no PolicyRefused warning: {:?}", c.events(ns, name));
}

/// The notes of the object's events with this reason, with whether each is a Warning.
fn events_of(c: &Cluster, ns: &str, name: &str, reason: &str) -> Vec<(bool, String)> {
    c.events(ns, name).into_iter().filter(|(_, r, _)| r == reason).map(|(t, _, note)| (t == "Warning", note)).collect()
}

/// The attacker's object never reports the segment as its own (Ready with it in status) while the
/// victim's object is deleted, nor for a while after it has gone.
fn never_holds_while_deleted(c: &Cluster, (ns, name): (&str, &str), id: &str, (victim_ns, victim): (&str, &str)) {
    let start = Instant::now();
    let mut gone_at: Option<Instant> = None;
    while gone_at.is_none_or(|at| at.elapsed() < Duration::from_secs(5)) {
        if let Some(obj) = c.get(ns, name) {
            let holds = is_ready(&obj) && obj["status"]["segmentInstanceId"] == id;
            assert!(!holds, "{ns}/{name} took over segment {id}: {}", ready_of(&obj));
        }
        if gone_at.is_none() {
            match c.get(victim_ns, victim) {
                None => gone_at = Some(Instant::now()),
                Some(obj) => assert!(
                    start.elapsed() < T,
                    "{victim_ns}/{victim} still there {T:?} after its deletion: {}",
                    ready_of(&obj)
                ),
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Whether a forged annotation outlives the object's first passes: one the operator overwrites with
/// the object's own identity (its own segment, token or credentials source) is no longer reported.
#[derive(PartialEq)]
enum Lasting {
    Yes,
    No,
}

/// The object was told that its annotation `key` is not believed: a Warning event naming the key,
/// and, while the annotation stays, the condition IdentityProven=False (UnprovenAnnotations).
fn assert_reported(c: &Cluster, team: &Team, name: &str, key: &str, lasting: Lasting) {
    let ns = &team.ns;
    let named = || events_of(c, ns, name, "UnprovenIdentity").into_iter().find(|(w, note)| *w && note.contains(key));
    eventually(&format!("{ns}/{name}: an UnprovenIdentity warning naming {key}"), T, named);
    if lasting == Lasting::Yes {
        let told = c.get(ns, name).and_then(|o| condition(&o, "IdentityProven"));
        let unproven = told.as_ref().is_some_and(|p| {
            p["status"] == "False"
                && p["reason"] == "UnprovenAnnotations"
                && p["message"].as_str().unwrap_or("").contains(key)
        });
        assert!(unproven, "{ns}/{name}: IdentityProven is {told:?}");
    }
}

// ---- the cloud side ----

/// Every segment the simulator ever held, oldest first.
fn history(sim: &Simulator) -> Vec<Value> {
    sim.admin("GET", "history", Value::Null)["segments"].as_array().unwrap().clone()
}

fn releases_accepted(sim: &Simulator, id: &str) -> usize {
    let entry = history(sim).into_iter().find(|h| h["instanceId"] == id);
    entry.unwrap_or_else(|| panic!("{id} not in the history"))["releaseAcceptedAtMs"].as_array().unwrap().len()
}

/// Every answer to the action, whatever its outcome.
fn calls(sim: &Simulator, action: &str) -> u64 {
    let counters = sim.admin("GET", "counters", Value::Null);
    counters[action].as_object().map_or(0, |outcomes| outcomes.values().filter_map(Value::as_u64).sum())
}

/// Each segment an accepted allocation created was released exactly once.
fn assert_each_allocation_released_once(sim: &Simulator) {
    let history = history(sim);
    for entry in history.iter().filter(|h| h["allocationToken"].is_string()) {
        let releases = entry["releaseAcceptedAtMs"].as_array().map_or(0, Vec::len);
        assert_eq!(releases, 1, "segment {} released {releases} times: {history:?}", entry["instanceId"]);
    }
}

/// The operator's own account got nothing allocated.
fn assert_nothing_in_operators_account(sim: &Simulator) {
    let history = history(sim);
    let in_operators: Vec<&Value> = history.iter().filter(|h| h["ownerAccount"] == DEFAULT_ACCOUNT).collect();
    assert!(in_operators.is_empty(), "allocated in the operator's account {DEFAULT_ACCOUNT}: {in_operators:?}");
}
