//! The run's hands and eyes on the cluster: the namespaces, credentials Secrets and RBAC it sets up,
//! the objects it creates and deletes (with kubectl, as a platform team would), one list a second of
//! everything it made (objects, Secrets, namespaces), and the faults it does by hand: credential
//! switches, Secret and namespace deletions, duplicate adoptions and restore-style re-creations
//! (the hostile tenant's acts are in `hostile.rs`).
//!
//! An object is tracked as one logical object across its incarnations: a restore removes it behind
//! the operator's back and re-applies its saved manifest, which gives it a new UID but keeps the
//! identity annotations (and so its allocation token).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use eipsegment_operator::crd::FINALIZER;
use eipsegment_operator::lifecycle::identity::{ACCOUNT_ID, ALLOCATION_TOKEN};
use rand::Rng;
use rand::rngs::StdRng;
use serde_json::{Value, json};
use vpc_simulator::{
    DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET, DEFAULT_ACCOUNT, OTHER_ACCESS_KEY_ID, OTHER_ACCESS_KEY_SECRET,
    OTHER_ACCOUNT,
};

use crate::hostile::HostileTenant;
use crate::hygiene::{Needles, WRONG_ACCESS_KEY_SECRET};
use crate::now_ms;
use crate::plan::{
    Cred, HostileAct, KEYS_A, KEYS_B, NAMESPACE_DEFAULT, NAMESPACE_WITH_DEFAULT, NewObject, PlannedFault, Profile,
};
use eipsegment_test_support::{Cluster, Kube, REGION, restore_manifest};

/// Every object, Secret and namespace of a run carries this label, with the run's ID.
pub const RUN_LABEL: &str = "chaos.eipsegment.io/run";
/// The RoleBinding in each namespace that grants the operator Secret `get` and `patch`. A namespace
/// deletion would remove it as early as anything else and strand the objects whose credentials
/// are in Secrets, so (as the chart's per-namespace mode does) it carries a finalizer that the
/// operator removes (`--rbac-guard-rolebinding`) once no EipSegment is left in the namespace.
pub const SECRETS_BINDING: &str = "eipsegment-operator-secrets";
const GUARD_FINALIZER: &str = "eipsegment.io/rights-while-eipsegments-remain";
/// The finalizer the operator puts on a Secret for each object whose live segment uses it.
pub const SECRET_FINALIZER_PREFIX: &str = "eipsegment.io/in-use-by-";

fn b64(v: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(v)
}

fn keys_data(id: &str, secret: &str) -> Value {
    json!({"ALIBABA_CLOUD_ACCESS_KEY_ID": b64(id), "ALIBABA_CLOUD_ACCESS_KEY_SECRET": b64(secret)})
}

// ---- What the run made and saw --------------------------------------------------------------------

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Incarnation {
    pub uid: String,
    pub namespace: String,
    /// When a list first showed it.
    pub seen_ms: u64,
    /// Removed behind the operator's back, for a restore.
    pub removed_ms: Option<u64>,
    /// Re-applied from a saved manifest, with the finalizer it had (true) or without.
    pub restored_with_finalizer: Option<bool>,
    /// The segment IDs its status named, and the Ready reasons it showed before its deletion was
    /// asked (a holder being deleted shows SegmentInUse while its heir takes over).
    pub segments: BTreeSet<String>,
    pub reasons: BTreeSet<String>,
}

/// One object of the run, across its incarnations.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Tracked {
    pub index: usize,
    pub name: String,
    pub namespace: String,
    /// Its effective deletion policy is Retain.
    pub retain: bool,
    /// The segment it adopts (`spec.segmentInstanceId`).
    pub adopts: Option<String>,
    pub cred: Cred,
    /// The account its credentials act for, as the run set them up.
    pub expected_account: &'static str,
    pub wave: usize,
    /// Taken before the create that made it.
    pub created_ms: u64,
    pub incarnations: Vec<Incarnation>,
    /// Taken just before the deletion (of the object, or of its namespace) that asked for it.
    pub delete_ms: Option<u64>,
    pub deleted_by: Option<&'static str>,
    /// The end of the first list that no longer held it.
    pub gone_ms: Option<u64>,
    /// Every segment ID its status named, and the start of the first list that showed it so.
    pub segments_seen: BTreeSet<String>,
    pub first_named: BTreeMap<String, u64>,
    /// Allocation tokens, accounts and credentials sources its status or annotations named.
    pub tokens_seen: BTreeSet<String>,
    pub accounts_seen: BTreeSet<String>,
    pub sources_seen: BTreeSet<String>,
    /// `status.lastError.code`s and Ready reasons it showed.
    pub errors_seen: BTreeSet<String>,
    pub reasons_seen: BTreeSet<String>,
    /// The reasons of its IdentityProven condition it showed, and the Ready messages it showed
    /// while its deletion waited for another object that named its segment.
    pub identity_seen: BTreeSet<String>,
    pub waits_seen: BTreeSet<String>,
    /// Made by the hostile tenant, for this act (its annotations are the tenant's, not the
    /// operator's: only its status counts).
    pub hostile: Option<HostileAct>,
    /// The object as last listed.
    #[serde(skip)]
    pub last: Value,
}

impl Tracked {
    /// Not yet created: its credentials and the account they act for.
    pub fn new(
        index: usize,
        name: String,
        namespace: String,
        (cred, expected_account): (Cred, &'static str),
        wave: usize,
    ) -> Tracked {
        Tracked {
            index,
            name,
            namespace,
            retain: false,
            adopts: None,
            cred,
            expected_account,
            wave,
            created_ms: 0,
            incarnations: Vec::new(),
            delete_ms: None,
            deleted_by: None,
            gone_ms: None,
            segments_seen: BTreeSet::new(),
            first_named: BTreeMap::new(),
            tokens_seen: BTreeSet::new(),
            accounts_seen: BTreeSet::new(),
            sources_seen: BTreeSet::new(),
            errors_seen: BTreeSet::new(),
            reasons_seen: BTreeSet::new(),
            identity_seen: BTreeSet::new(),
            waits_seen: BTreeSet::new(),
            hostile: None,
            last: Value::Null,
        }
    }

    pub fn uid(&self) -> &str {
        &self.incarnations.last().expect("tracked once seen").uid
    }

    /// The allocation tokens this object may use: each incarnation's own (a restored one keeps the
    /// token of its annotations, which one of these is).
    pub fn tokens(&self) -> BTreeSet<String> {
        self.incarnations.iter().map(|i| format!("alloc-{}", i.uid)).collect()
    }

    /// Asked to exist and not yet asked to go, at `at`.
    pub fn live_at(&self, at: u64, since: u64) -> bool {
        since <= at && self.delete_ms.is_none_or(|d| d > at)
    }

    pub fn status_str(&self, field: &str) -> Option<&str> {
        self.last["status"][field].as_str()
    }

    pub fn listed_live(&self) -> bool {
        self.delete_ms.is_none() && self.last["metadata"]["deletionTimestamp"].is_null() && self.last.is_object()
    }

    /// Its account is recorded (status, or the annotations of a restored object).
    fn account_recorded(&self) -> bool {
        self.status_str("accountId").is_some() || self.last["metadata"]["annotations"][ACCOUNT_ID].is_string()
    }
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Namespace {
    pub name: String,
    pub delete_ms: Option<u64>,
    pub gone_ms: Option<u64>,
    pub objects_deleted: usize,
    pub secrets_deleted: usize,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct SecretSeen {
    pub deleting: bool,
    pub finalizers: Vec<String>,
}

/// What a list shows of an object: the status fields the run follows.
struct StatusSeen {
    segment: Option<String>,
    /// `status.credentialsSource`, and `status.lastError`'s code and action.
    source: Option<String>,
    code: Option<String>,
    action: Option<String>,
    /// The Ready condition's reason and message, and the IdentityProven condition's reason.
    ready: Option<String>,
    ready_message: Option<String>,
    identity: Option<String>,
    deleting: bool,
}

impl StatusSeen {
    fn of(item: &Value) -> StatusSeen {
        let status = &item["status"];
        let str_of = |v: &Value| v.as_str().map(String::from);
        let condition = |kind: &str, field: &str| {
            status["conditions"]
                .as_array()
                .and_then(|c| c.iter().find(|c| c["type"] == kind))
                .and_then(|c| c[field].as_str().map(String::from))
        };
        StatusSeen {
            segment: str_of(&status["segmentInstanceId"]),
            source: str_of(&status["credentialsSource"]),
            code: str_of(&status["lastError"]["code"]),
            action: str_of(&status["lastError"]["action"]),
            ready: condition("Ready", "reason"),
            ready_message: condition("Ready", "message"),
            identity: condition("IdentityProven", "reason"),
            deleting: item["metadata"]["deletionTimestamp"].is_string(),
        }
    }
}

/// A Secret whose deletion was asked (by hand, or with its namespace).
#[derive(Clone, Debug, serde::Serialize)]
pub struct SecretFate {
    pub namespace: String,
    pub name: String,
    pub by: &'static str,
    pub delete_ms: u64,
    /// Its holders' finalizers when its deletion was asked.
    pub holders: Vec<String>,
    /// A list showed it Terminating.
    pub terminating_seen: bool,
    pub last_finalizers: Vec<String>,
    pub gone_ms: Option<u64>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct SwitchRecord {
    pub namespace: String,
    /// To a wrong secret key (else to the other account's keys).
    pub wrong: bool,
    pub wave: usize,
    pub at_ms: u64,
    pub revert_due_ms: u64,
    pub reverted_ms: Option<u64>,
    /// Its users whose deletion was asked while it lasted.
    pub users_deleted: Vec<String>,
    /// Objects that showed the switch in `status.lastError`, with the code.
    pub met: BTreeMap<String, String>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct AdoptionRecord {
    /// The adopter's and the holder's positions among the run's objects.
    pub adopter_k: usize,
    pub holder_k: usize,
    pub adopter: String,
    pub holder_namespace: String,
    pub namespace: String,
    pub holder: String,
    pub segment: String,
    pub delete_policy: bool,
    pub at_ms: u64,
    /// The holder is to be deleted at the next wave, while the adopter lives.
    pub handover_planned: bool,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct RestoreRecord {
    /// Its position among the run's objects.
    pub object: usize,
    pub name: String,
    pub namespace: String,
    pub wave: usize,
    pub removed_ms: u64,
    pub reapplied_ms: u64,
    pub old_uid: String,
    pub new_uid: String,
    pub kept_finalizer: bool,
    /// It held a segment that a live adopter named.
    pub contested: bool,
    /// The segment and allocation token its annotations held when it was removed.
    pub segment: Option<String>,
    pub token: Option<String>,
    /// Removal tries (more than one: the operator put its finalizer back in between).
    pub tries: usize,
}

pub struct Run<'a> {
    pub c: &'a Cluster,
    pub p: Profile,
    pub kube: Kube,
    pub run_id: String,
    pub namespaces: Vec<Namespace>,
    pub objects: Vec<Tracked>,
    by_index: HashMap<usize, usize>,
    pub by_uid: HashMap<String, usize>,
    free_names: HashMap<String, VecDeque<String>>,
    pub names_reused: usize,
    pub needles: Arc<Needles>,
    pub secret_findings: Vec<String>,
    pub lists: usize,
    /// The UIDs of the objects present at the last successful list.
    pub present: Option<HashSet<String>>,
    /// The run's Secrets as last listed, by (namespace, name).
    pub secrets: BTreeMap<(String, String), SecretSeen>,
    pub fates: Vec<SecretFate>,
    pub switches: Vec<SwitchRecord>,
    pub adoptions: Vec<AdoptionRecord>,
    pub restores: Vec<RestoreRecord>,
    pub restore_failures: Vec<String>,
    /// Faults postponed (nothing to do them on yet), with why.
    pub postponed: Vec<(PlannedFault, String)>,
    /// Objects created with their own credentials instead of a `keys-a` switched to the other
    /// account (which would have put their segment in the other account for good).
    pub substituted: usize,
    /// Objects that lost their credentials Secret while a live segment used it, by object and Secret.
    pub credentials_lost: BTreeMap<(String, String), (String, usize)>,
    /// Secrets created again as an object asked: (namespace, name, the object).
    pub recreated: Vec<(String, String, String)>,
    /// The tenant of a namespace of its own that goes for the others' segments.
    pub hostile: HostileTenant,
    pub rng: StdRng,
    /// Holders to delete at the next wave (adopted ones), and users of a switched Secret at this one.
    pub handovers: Vec<usize>,
    switch_deletes: Vec<usize>,
}

impl<'a> Run<'a> {
    pub fn new(c: &'a Cluster, p: Profile, needles: Arc<Needles>, rng: StdRng) -> Run<'a> {
        let run_id = std::process::id().to_string();
        let namespaces =
            (0..p.namespaces).map(|i| Namespace { name: format!("chaos{i}-{run_id}"), ..Default::default() }).collect();
        let hostile = HostileTenant::new(&run_id);
        Run {
            c,
            p,
            kube: Kube::new(c),
            run_id,
            namespaces,
            objects: Vec::new(),
            by_index: HashMap::new(),
            by_uid: HashMap::new(),
            free_names: HashMap::new(),
            names_reused: 0,
            needles,
            secret_findings: Vec::new(),
            lists: 0,
            present: None,
            secrets: BTreeMap::new(),
            fates: Vec::new(),
            switches: Vec::new(),
            adoptions: Vec::new(),
            restores: Vec::new(),
            restore_failures: Vec::new(),
            postponed: Vec::new(),
            substituted: 0,
            credentials_lost: BTreeMap::new(),
            recreated: Vec::new(),
            hostile,
            rng,
            handovers: Vec::new(),
            switch_deletes: Vec::new(),
        }
    }

    fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
        let (ok, out, err) = self.c.kubectl_as(self.c.admin_kubeconfig(), args, stdin);
        if ok { Ok(out) } else { Err(err) }
    }

    /// Runs kubectl until it succeeds (the apiserver may be restarting), at most 20 times.
    fn kubectl_retried(&self, what: &str, args: &[&str], stdin: Option<&str>) -> String {
        for attempt in 0.. {
            match self.kubectl(args, stdin) {
                Ok(out) => return out,
                Err(e) => {
                    assert!(attempt < 20, "{what}: kubectl {args:?} keeps failing: {e}");
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
        unreachable!()
    }

    fn labels(&self) -> Value {
        json!({RUN_LABEL: self.run_id})
    }

    /// Every namespace the operator watches: the victims', then the hostile tenant's.
    pub fn namespace_names(&self) -> Vec<String> {
        self.namespaces.iter().map(|n| n.name.clone()).chain([self.hostile.namespace.clone()]).collect()
    }

    /// The namespaces, the rights to read and hold Secrets in them, and their credentials Secrets:
    /// `keys-a` (the default account's keys) and `keys-b` (the other account's) in each, victims'
    /// and hostile tenant's alike, and, in one victim's, the namespace's default credentials Secret
    /// with the other account's keys.
    pub fn set_up(&mut self) {
        let labels = self.labels();
        let role = format!("eipsegment-chaos-secrets-{}", self.run_id);
        let mut items: Vec<Value> = self
            .namespace_names()
            .iter()
            .map(|name| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}))
            .collect();
        items.push(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": role, "labels": labels},
            "rules": [
                {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "patch"]},
                {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["rolebindings"],
                 "resourceNames": [SECRETS_BINDING], "verbs": ["get", "patch"]},
            ],
        }));
        for (i, ns) in self.namespace_names().iter().enumerate() {
            items.push(json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": SECRETS_BINDING, "namespace": ns, "labels": labels, "finalizers": [GUARD_FINALIZER]},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
                "subjects": [{"kind": "ServiceAccount", "name": "eipsegment-operator", "namespace": "eipsegment-system"}],
            }));
            let mut secrets = vec![
                (KEYS_A, keys_data(DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET)),
                (KEYS_B, keys_data(OTHER_ACCESS_KEY_ID, OTHER_ACCESS_KEY_SECRET)),
            ];
            if i == NAMESPACE_WITH_DEFAULT {
                secrets.push((NAMESPACE_DEFAULT, keys_data(OTHER_ACCESS_KEY_ID, OTHER_ACCESS_KEY_SECRET)));
            }
            items.extend(secrets.into_iter().map(|(name, data)| {
                json!({
                    "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                    "metadata": {"name": name, "namespace": ns, "labels": labels}, "data": data,
                })
            }));
        }
        let list = json!({"apiVersion": "v1", "kind": "List", "items": items});
        self.kubectl_retried(
            "setting up namespaces and Secrets",
            &["create", "-f", "-", "-o", "name"],
            Some(&list.to_string()),
        );
    }

    /// The account an object's credentials act for, as set up.
    fn account_of(&self, ns: usize, cred: Cred) -> &'static str {
        match cred {
            Cred::KeysA => DEFAULT_ACCOUNT,
            Cred::KeysB => OTHER_ACCOUNT,
            Cred::Own if ns == NAMESPACE_WITH_DEFAULT => OTHER_ACCOUNT,
            Cred::Own => DEFAULT_ACCOUNT,
        }
    }

    /// `keys-a` of this namespace acts for the other account right now.
    pub fn switched_to_other(&self, ns: &str) -> bool {
        self.switches.iter().any(|s| s.namespace == ns && !s.wrong && s.reverted_ms.is_none())
    }

    /// A switch of `keys-a` in this namespace lasts.
    fn switch_active(&self, ns: &str) -> bool {
        self.switches.iter().any(|s| s.namespace == ns && s.reverted_ms.is_none())
    }

    /// The deletion of this Secret was asked (by hand, or with its namespace).
    fn secret_deleted(&self, ns: &str, name: &str) -> bool {
        self.fates.iter().any(|f| f.namespace == ns && f.name == name)
    }

    /// Credentials of the namespace (by number) that act for `account` now, if it has some.
    fn cred_for(&self, ns: usize, account: &str) -> Option<Cred> {
        let name = &self.namespaces[ns].name;
        let usable = |secret: &str| !self.secret_deleted(name, secret);
        if account == DEFAULT_ACCOUNT && usable(KEYS_A) && !self.switch_active(name) {
            Some(Cred::KeysA)
        } else if account == DEFAULT_ACCOUNT && ns != NAMESPACE_WITH_DEFAULT {
            Some(Cred::Own)
        } else if account == OTHER_ACCOUNT && usable(KEYS_B) {
            Some(Cred::KeysB)
        } else if account == OTHER_ACCOUNT && ns == NAMESPACE_WITH_DEFAULT && usable(NAMESPACE_DEFAULT) {
            Some(Cred::Own)
        } else {
            None
        }
    }

    /// A victim's namespace whose deletion was not asked.
    pub fn namespace_open(&self, ns: &str) -> bool {
        self.namespaces.iter().any(|n| n.name == ns && n.delete_ms.is_none())
    }

    // ---- Looking ----

    /// Lists everything the run made: records what the objects' statuses say, objects, Secrets and
    /// namespaces seen gone, and secrets found. Returns the objects listed (namespace, name, UID),
    /// or None if the list failed.
    pub fn observe(&mut self) -> Option<Vec<(String, String, String)>> {
        let started = now_ms();
        let selector = format!("{RUN_LABEL}={}", self.run_id);
        let out =
            self.kubectl(&["get", "eipsegments,secrets,namespaces", "-A", "-l", &selector, "-o", "json"], None).ok()?;
        let end = now_ms();
        let list: Value = serde_json::from_str(&out).ok()?;
        let items = list["items"].as_array()?;
        self.lists += 1;
        let mut listed = Vec::new();
        let mut present = HashSet::new();
        let mut secrets = BTreeMap::new();
        let mut namespaces = HashSet::new();
        for item in items {
            let meta = &item["metadata"];
            let field = |f: &str| meta[f].as_str().unwrap_or_default().to_string();
            match item["kind"].as_str() {
                Some("EipSegment") => {
                    // The objects' statuses and annotations, never a Secret's data.
                    self.needles.scan("a list of the objects", &item.to_string(), &mut self.secret_findings);
                    let uid = field("uid");
                    listed.push((field("namespace"), field("name"), uid.clone()));
                    if let Some(&k) = self.by_uid.get(&uid) {
                        self.record(k, &uid, item, started);
                    }
                    present.insert(uid);
                }
                Some("Secret") => {
                    let finalizers = meta["finalizers"]
                        .as_array()
                        .map(|f| f.iter().filter_map(|v| v.as_str().map(String::from)).collect())
                        .unwrap_or_default();
                    let seen = SecretSeen { deleting: meta["deletionTimestamp"].is_string(), finalizers };
                    secrets.insert((field("namespace"), field("name")), seen);
                }
                Some("Namespace") => {
                    namespaces.insert(field("name"));
                }
                _ => {}
            }
        }
        for o in &mut self.objects {
            if o.delete_ms.is_some() && o.gone_ms.is_none() && !present.contains(o.uid()) {
                o.gone_ms = Some(end);
                self.free_names.entry(o.namespace.clone()).or_default().push_back(o.name.clone());
            }
        }
        for f in &mut self.fates {
            match secrets.get(&(f.namespace.clone(), f.name.clone())) {
                Some(seen) => {
                    f.terminating_seen |= seen.deleting;
                    f.last_finalizers = seen.finalizers.clone();
                }
                None if f.gone_ms.is_none() => f.gone_ms = Some(end),
                None => {}
            }
        }
        for ns in &mut self.namespaces {
            if ns.delete_ms.is_some() && ns.gone_ms.is_none() && !namespaces.contains(&ns.name) {
                ns.gone_ms = Some(end);
            }
        }
        self.secrets = secrets;
        self.present = Some(present);
        Some(listed)
    }

    /// What one list says of one object.
    fn record(&mut self, k: usize, uid: &str, item: &Value, list_started: u64) {
        let seen = StatusSeen::of(item);
        self.note(k, uid, item, &seen, list_started);
        if seen.deleting && seen.ready.as_deref() == Some("SegmentInUse") {
            self.objects[k].waits_seen.extend(seen.ready_message.clone());
        }
        let (name, namespace) = (self.objects[k].name.clone(), self.objects[k].namespace.clone());
        self.note_switch_met(&name, &namespace, &seen, list_started);
        self.check_credentials_kept(k, &item["status"], &seen, list_started);
    }

    /// The object's incarnation and record take what its status and annotations name.
    fn note(&mut self, k: usize, uid: &str, item: &Value, seen: &StatusSeen, list_started: u64) {
        let status = &item["status"];
        let annotations = &item["metadata"]["annotations"];
        let str_of = |v: &Value| v.as_str().map(String::from);
        let o = &mut self.objects[k];
        // The hostile tenant's annotations are its own words: only what the operator wrote counts.
        let annotations = if o.hostile.is_some() { &Value::Null } else { annotations };
        if let Some(inc) = o.incarnations.iter_mut().find(|i| i.uid == uid) {
            inc.segments.extend(seen.segment.clone());
            if !seen.deleting {
                inc.reasons.extend(seen.ready.clone());
            }
        }
        o.segments_seen.extend(seen.segment.clone());
        if let Some(s) = &seen.segment {
            o.first_named.entry(s.clone()).or_insert(list_started);
        }
        o.tokens_seen
            .extend([str_of(&status["allocationToken"]), str_of(&annotations[ALLOCATION_TOKEN])].into_iter().flatten());
        o.accounts_seen.extend([str_of(&status["accountId"]), str_of(&annotations[ACCOUNT_ID])].into_iter().flatten());
        o.sources_seen.extend(seen.source.clone());
        o.errors_seen.extend(seen.code.clone());
        o.reasons_seen.extend(seen.ready.clone());
        o.identity_seen.extend(seen.identity.clone());
        o.last = item.clone();
    }

    /// A switched Secret, as its users meet it.
    fn note_switch_met(&mut self, name: &str, namespace: &str, seen: &StatusSeen, list_started: u64) {
        if seen.source.as_deref() != Some(&format!("Secret/{KEYS_A}")) {
            return;
        }
        let Some(code) = &seen.code else { return };
        for s in self.switches.iter_mut().filter(|s| s.namespace == namespace && s.at_ms <= list_started) {
            let recent = s.reverted_ms.is_none_or(|r| list_started <= r + 5000);
            let shows = if s.wrong {
                seen.action.as_deref() == Some("Credentials") && code != "AccountMismatch" && code != "NoCredentials"
            } else {
                code == "AccountMismatch"
            };
            if recent && shows {
                s.met.entry(name.to_string()).or_insert_with(|| code.clone());
            }
        }
    }

    /// A credentials Secret gone while a segment still needed it: an object not being deleted
    /// (which never lets go of its Secret) listed after its Secret was seen gone, or an object told
    /// that its Secret does not exist while its status names a live segment or a pending allocation.
    fn check_credentials_kept(&mut self, k: usize, status: &Value, seen: &StatusSeen, list_started: u64) {
        let Some(secret) = seen.source.as_deref().and_then(|s| s.strip_prefix("Secret/")) else { return };
        let (name, namespace) = (self.objects[k].name.clone(), self.objects[k].namespace.clone());
        let segment = &seen.segment;
        let gone_before = self
            .fates
            .iter()
            .find(|f| f.namespace == namespace && f.name == secret)
            .and_then(|f| f.gone_ms)
            .filter(|&g| g < list_started);
        let live_segment =
            (segment.is_some() && status["cloudStatus"] != "Released") || status["allocationRequestedAt"].is_string();
        let missing = seen.code.as_deref() == Some("NoCredentials")
            && status["lastError"]["message"].as_str().is_some_and(|m| m.contains("does not exist"));
        let what = if let (Some(g), false) = (gone_before, seen.deleting) {
            Some(format!(
                "{namespace}/{name} (not being deleted, status naming {segment:?}) is still there, but Secret {secret} it \
                 takes its credentials from was seen gone at {g}"
            ))
        } else if missing && live_segment {
            Some(format!(
                "{namespace}/{name} says its credentials Secret {secret} does not exist, while its status names segment \
                 {segment:?} (cloudStatus {}, allocationRequestedAt {})",
                status["cloudStatus"], status["allocationRequestedAt"]
            ))
        } else {
            None
        };
        if let Some(fate) = self.taken_on_while_deleting(k, secret, segment.as_deref()) {
            if missing && fate.gone_ms.is_some() {
                let account = status["accountId"].as_str().unwrap_or_default().to_string();
                self.recreate_secret(&namespace, secret, &account, &name);
            }
            return;
        }
        if let Some(what) = what {
            self.credentials_lost.entry((name, secret.to_string())).or_insert((what, k));
        }
    }

    /// What the operator cannot protect: an object that took its segment on (a hand-over) while
    /// its Secret was already being deleted by hand could not hold it. It says so, and the user
    /// does what the message asks: create the Secret again.
    fn taken_on_while_deleting(&self, k: usize, secret: &str, segment: Option<&str>) -> Option<&SecretFate> {
        let o = &self.objects[k];
        let hold = format!("{SECRET_FINALIZER_PREFIX}{}", o.name);
        self.fates.iter().find(|f| {
            f.namespace == o.namespace
                && f.name == secret
                && f.by == "hand"
                && !f.holders.contains(&hold)
                && segment.and_then(|s| o.first_named.get(s)).is_some_and(|&t| t >= f.delete_ms)
        })
    }

    /// The Secret again, with keys of the account the object records, as its condition asks.
    fn recreate_secret(&mut self, namespace: &str, secret: &str, account: &str, asked_by: &str) {
        if self.recreated.iter().any(|(ns, name, _)| ns == namespace && name == secret) {
            return;
        }
        let (id, key) = if account == OTHER_ACCOUNT {
            (OTHER_ACCESS_KEY_ID, OTHER_ACCESS_KEY_SECRET)
        } else {
            (DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET)
        };
        let manifest = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": secret, "namespace": namespace},
                              "data": keys_data(id, key)});
        self.kubectl_retried("recreating a Secret", &["apply", "-f", "-"], Some(&manifest.to_string()));
        println!(
            "chaos: Secret {namespace}/{secret} created again, as {asked_by} asks (it took its segment on while the Secret was being deleted)"
        );
        self.recreated.push((namespace.to_string(), secret.to_string(), asked_by.to_string()));
    }

    /// Observes about once a second for `d`, reverting switched Secrets when their time is up.
    pub fn wait(&mut self, d: Duration) {
        let until = Instant::now() + d;
        loop {
            let started = Instant::now();
            self.revert_due(false);
            self.observe();
            if Instant::now() >= until {
                return;
            }
            let left = until.saturating_duration_since(Instant::now());
            std::thread::sleep(Duration::from_millis(1000).saturating_sub(started.elapsed()).min(left));
        }
    }

    // ---- Objects ----

    fn track(&mut self, t: Tracked) {
        let k = self.objects.len();
        self.by_index.insert(t.index, k);
        for i in &t.incarnations {
            self.by_uid.insert(i.uid.clone(), k);
        }
        self.objects.push(t);
    }

    fn template(&self, index: usize, name: String, ns: usize, cred: Cred, wave: usize) -> Tracked {
        Tracked::new(index, name, self.namespaces[ns].name.clone(), (cred, self.account_of(ns, cred)), wave)
    }

    pub fn manifest(&self, t: &Tracked, spec: Value) -> Value {
        json!({
            "apiVersion": "eipsegment.io/v1alpha1", "kind": "EipSegment",
            "metadata": {"name": t.name, "namespace": t.namespace, "labels": self.labels()}, "spec": spec,
        })
    }

    /// Creates the wave's objects: a reused name when planned and one is free in the namespace; the
    /// operator's own credentials instead of a `keys-a` that acts for the other account right now.
    pub fn create_wave(&mut self, wave_no: usize, creates: &[NewObject]) {
        let mut new = Vec::new();
        for o in creates {
            let ns_name = self.namespaces[o.ns].name.clone();
            let reused =
                if o.reuse_name { self.free_names.get_mut(&ns_name).and_then(VecDeque::pop_front) } else { None };
            if reused.is_some() {
                self.names_reused += 1;
            }
            let cred = if o.cred == Cred::KeysA && self.switched_to_other(&ns_name) {
                self.substituted += 1;
                Cred::Own
            } else {
                o.cred
            };
            let name = reused.unwrap_or_else(|| format!("seg-{:03}", o.index));
            let mut t = self.template(o.index, name, o.ns, cred, wave_no);
            t.retain = o.retain;
            let mut spec = json!({"regionId": REGION, "eipMask": o.mask, "bandwidth": o.bandwidth});
            if o.retain {
                spec["deletionPolicy"] = json!("Retain");
            } else if o.explicit_delete {
                spec["deletionPolicy"] = json!("Delete");
            }
            if let Some(secret) = cred.secret() {
                spec["credentialsSecretRef"] = json!({"name": secret});
            }
            let m = self.manifest(&t, spec);
            new.push((t, m));
        }
        self.create(new);
    }

    /// Creates these objects, in as many tries as the apiserver needs; each is tracked once a list
    /// shows it.
    pub fn create(&mut self, mut new: Vec<(Tracked, Value)>) {
        let first_try = now_ms();
        for attempt in 0.. {
            let items: Vec<&Value> = new.iter().map(|(_, m)| m).collect();
            let docs = json!({"apiVersion": "v1", "kind": "List", "items": items});
            let result = self.kubectl(&["create", "-f", "-", "-o", "name"], Some(&docs.to_string()));
            // Whatever was created (all, or some before an error) is listed now.
            let Some(listed) = self.observe() else {
                assert!(
                    attempt < 20,
                    "cannot list objects after creating {:?}",
                    new.iter().map(|(t, _)| &t.name).collect::<Vec<_>>()
                );
                std::thread::sleep(Duration::from_secs(1));
                continue;
            };
            let seen = now_ms();
            let mut left = Vec::new();
            for (mut t, m) in new {
                let uid = listed
                    .iter()
                    .find(|(ns, name, uid)| *ns == t.namespace && *name == t.name && !self.by_uid.contains_key(uid))
                    .map(|(_, _, uid)| uid.clone());
                match uid {
                    Some(uid) => {
                        t.created_ms = first_try;
                        let namespace = t.namespace.clone();
                        t.incarnations.push(Incarnation { uid, namespace, seen_ms: seen, ..Default::default() });
                        self.track(t);
                    }
                    None => left.push((t, m)),
                }
            }
            new = left;
            if new.is_empty() {
                return;
            }
            assert!(
                attempt < 20,
                "cannot create {:?}: {:?}",
                new.iter().map(|(t, _)| format!("{}/{}", t.namespace, t.name)).collect::<Vec<_>>(),
                result.err()
            );
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// The objects of the plan (by creation index) whose deletion this wave asks, with the users
    /// of a switched Secret picked for it, the holders of adopted segments due, the hostile
    /// tenant's objects the operator has looked at, and each live victim adopter with the chance
    /// of an earlier object.
    pub fn wave_deletions(&mut self, wave: usize, indexes: &[usize]) -> Vec<usize> {
        let mut ks: Vec<usize> = indexes.iter().filter_map(|i| self.by_index.get(i).copied()).collect();
        ks.append(&mut self.switch_deletes);
        ks.append(&mut self.handovers);
        ks.extend(self.hostile_due(wave));
        let adopters: Vec<usize> = (0..self.objects.len())
            .filter(|&k| {
                let o = &self.objects[k];
                o.adopts.is_some() && o.hostile.is_none() && o.delete_ms.is_none()
            })
            .collect();
        for k in adopters {
            if self.rng.random_bool(self.p.delete_earlier) {
                ks.push(k);
            }
        }
        ks.sort_unstable();
        ks.dedup();
        ks
    }

    /// Asks for the deletion of these objects (by position) without waiting for it.
    pub fn delete(&mut self, ks: &[usize], by: &'static str) {
        let mut by_ns: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for &k in ks {
            if self.objects[k].delete_ms.is_none() {
                by_ns.entry(self.objects[k].namespace.clone()).or_default().push(k);
            }
        }
        for (ns, mut pending) in by_ns {
            for attempt in 0.. {
                if pending.is_empty() {
                    break;
                }
                let mut args: Vec<String> = ["delete", "eipsegments", "-n", &ns, "--wait=false", "--ignore-not-found"]
                    .map(String::from)
                    .to_vec();
                args.extend(pending.iter().map(|&k| self.objects[k].name.clone()));
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let before = now_ms();
                let result = self.kubectl(&args, None);
                if result.is_ok() {
                    for &k in &pending {
                        self.objects[k].delete_ms = Some(before);
                        self.objects[k].deleted_by = Some(by);
                    }
                    break;
                }
                // Some may have been deleted before the error: those carry a deletionTimestamp now, or are gone.
                if let Ok(out) = self.kubectl(&["get", "eipsegments", "-n", &ns, "-o", "json"], None) {
                    let list: Value = serde_json::from_str(&out).unwrap();
                    let deleting: HashMap<&str, bool> = list["items"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|i| {
                            (i["metadata"]["uid"].as_str().unwrap(), i["metadata"]["deletionTimestamp"].is_string())
                        })
                        .collect();
                    pending.retain(|&k| {
                        let done = deleting.get(self.objects[k].uid()).is_none_or(|&d| d);
                        if done {
                            self.objects[k].delete_ms = Some(before);
                            self.objects[k].deleted_by = Some(by);
                        }
                        !done
                    });
                }
                assert!(attempt < 20, "cannot delete objects in {ns}: {:?}", result.err());
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        // A switched Secret stays switched a while after its users' deletions were asked.
        let now = now_ms();
        for s in self.switches.iter_mut().filter(|s| s.reverted_ms.is_none()) {
            let users: Vec<String> = ks
                .iter()
                .map(|&k| &self.objects[k])
                .filter(|o| {
                    o.namespace == s.namespace && o.cred == Cred::KeysA && o.delete_ms.is_some_and(|d| d >= s.at_ms)
                })
                .map(|o| o.name.clone())
                .collect();
            if !users.is_empty() {
                s.users_deleted.extend(users);
                s.revert_due_ms = s.revert_due_ms.max(now + 3000);
            }
        }
    }

    /// Everything not yet asked to go.
    pub fn delete_remaining(&mut self) -> usize {
        let ks: Vec<usize> = (0..self.objects.len()).filter(|&k| self.objects[k].delete_ms.is_none()).collect();
        self.delete(&ks, "end");
        ks.len()
    }

    // ---- Faults by hand ----

    /// Does a planned fault of the wave now, or postpones it to the next wave when there is nothing
    /// to do it on yet (true if done).
    pub fn fault(&mut self, wave: usize, f: &PlannedFault) -> bool {
        let why = match f {
            PlannedFault::Switch { ns, wrong, ms } => self.switch_somewhere(wave, *ns, *wrong, *ms),
            PlannedFault::DeleteSecret => self.delete_secret(),
            PlannedFault::DeleteNamespace { ns } => {
                self.delete_namespace(*ns);
                Ok(())
            }
            PlannedFault::Hostile(act) => self.hostile_act(wave, *act),
        };
        match why {
            Ok(()) => true,
            Err(why) => {
                println!("chaos: wave {}: {f:?} postponed: {why}", wave + 1);
                self.postponed.push((f.clone(), why));
                false
            }
        }
    }

    /// The switch in the planned namespace, or, when that one has nothing to switch, in the next
    /// one that has: a planned switch is not lost to the way the run happened to go.
    fn switch_somewhere(&mut self, wave: usize, ns: usize, wrong: bool, ms: u64) -> Result<(), String> {
        let count = self.namespaces.len();
        let planned = self.switch(wave, ns, wrong, ms);
        if planned.is_ok() {
            return planned;
        }
        for other in (1..count).map(|d| (ns + d) % count) {
            if self.switch(wave, other, wrong, ms).is_ok() {
                return Ok(());
            }
        }
        planned
    }

    fn patch_keys(&self, ns: &str, data: Value) -> Result<(), String> {
        let patch = json!({"data": data}).to_string();
        let mut last = String::new();
        for _ in 0..20 {
            match self.kubectl(&["patch", "secret", KEYS_A, "-n", ns, "--type=merge", "-p", &patch], None) {
                Ok(_) => return Ok(()),
                Err(e) if e.contains("NotFound") => return Err(e),
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        Err(last)
    }

    /// `keys-a` of the namespace gets the other account's keys, or a wrong secret key. For the other
    /// account, only once every user that is not being deleted has its account recorded: one that
    /// recorded the other account would live there for good. One of its users (one with a segment in
    /// the cloud, if any) is deleted in this wave, while the switch lasts.
    fn switch(&mut self, wave: usize, ns: usize, wrong: bool, ms: u64) -> Result<(), String> {
        let ns_name = self.namespaces[ns].name.clone();
        if self.switches.iter().any(|s| s.namespace == ns_name && s.reverted_ms.is_none()) {
            return Err(format!("{KEYS_A} of {ns_name} is switched already"));
        }
        if !wrong {
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                let unrecorded: Vec<String> = self
                    .objects
                    .iter()
                    .filter(|o| o.namespace == ns_name && o.cred == Cred::KeysA && o.adopts.is_none())
                    .filter(|o| o.delete_ms.is_none() && !o.account_recorded())
                    .map(|o| o.name.clone())
                    .collect();
                if unrecorded.is_empty() {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(format!("users of {KEYS_A} in {ns_name} without a recorded account: {unrecorded:?}"));
                }
                self.wait(Duration::from_secs(1));
            }
        }
        // Its users that would act with it: those with a segment in the cloud first, else those
        // allocating.
        let users: Vec<usize> = (0..self.objects.len())
            .filter(|&k| {
                let o = &self.objects[k];
                o.namespace == ns_name
                    && o.cred == Cred::KeysA
                    && o.adopts.is_none()
                    && !o.retain
                    && o.listed_live()
                    && o.account_recorded()
            })
            .collect();
        let allocated: Vec<usize> =
            users.iter().copied().filter(|&k| self.objects[k].status_str("cloudStatus") == Some("Allocated")).collect();
        let pool = if allocated.is_empty() { &users } else { &allocated };
        if pool.is_empty() {
            return Err(format!("no user of {KEYS_A} in {ns_name} has acted with it yet"));
        }
        let data = if wrong {
            keys_data(DEFAULT_ACCESS_KEY_ID, WRONG_ACCESS_KEY_SECRET)
        } else {
            keys_data(OTHER_ACCESS_KEY_ID, OTHER_ACCESS_KEY_SECRET)
        };
        let at_ms = now_ms();
        self.patch_keys(&ns_name, data).map_err(|e| format!("cannot patch {KEYS_A} in {ns_name}: {e}"))?;
        let k = pool[self.rng.random_range(0..pool.len())];
        self.switch_deletes.push(k);
        println!(
            "chaos: {KEYS_A} of {ns_name} switched to {} for {ms} ms ({} users with an account, {} with a segment)",
            if wrong { "a wrong secret key" } else { "the other account's keys" },
            users.len(),
            allocated.len()
        );
        self.switches.push(SwitchRecord {
            namespace: ns_name,
            wrong,
            wave,
            at_ms,
            revert_due_ms: at_ms + ms,
            reverted_ms: None,
            users_deleted: Vec::new(),
            met: BTreeMap::new(),
        });
        Ok(())
    }

    /// Gives switched Secrets their own keys back: those due, or all.
    pub fn revert_due(&mut self, all: bool) {
        let now = now_ms();
        for i in 0..self.switches.len() {
            let s = &self.switches[i];
            if s.reverted_ms.is_some() || (!all && s.revert_due_ms > now) {
                continue;
            }
            let ns = s.namespace.clone();
            if let Err(e) = self.patch_keys(&ns, keys_data(DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET)) {
                println!("chaos: {KEYS_A} of {ns} not switched back: {e}");
            }
            self.switches[i].reverted_ms = Some(now_ms());
        }
    }

    /// Deletes by hand the credentials Secret with the most holders (a `keys-b` or a namespace's
    /// default one, in a namespace that stays).
    fn delete_secret(&mut self) -> Result<(), String> {
        let candidates: Vec<((String, String), usize)> = self
            .secrets
            .iter()
            .filter(|((ns, name), seen)| {
                name != KEYS_A
                    && !seen.deleting
                    && self.namespace_open(ns)
                    && self.fates.iter().all(|f| f.namespace != *ns || f.name != *name)
            })
            .map(|(key, seen)| {
                (key.clone(), seen.finalizers.iter().filter(|f| f.starts_with(SECRET_FINALIZER_PREFIX)).count())
            })
            .collect();
        let Some(most) = candidates.iter().map(|(_, n)| *n).max().filter(|&n| n > 0) else {
            return Err("no credentials Secret is in use".into());
        };
        let top: Vec<&(String, String)> = candidates.iter().filter(|(_, n)| *n == most).map(|(key, _)| key).collect();
        let (ns, name) = top[self.rng.random_range(0..top.len())].clone();
        let holders = self.secrets[&(ns.clone(), name.clone())].finalizers.clone();
        let delete_ms = now_ms();
        self.kubectl_retried("deleting a Secret", &["delete", "secret", &name, "-n", &ns, "--wait=false"], None);
        println!("chaos: Secret {ns}/{name} deleted by hand while {most} object(s) hold it");
        self.fates.push(SecretFate {
            namespace: ns,
            name,
            by: "hand",
            delete_ms,
            holders,
            terminating_seen: false,
            last_finalizers: Vec::new(),
            gone_ms: None,
        });
        Ok(())
    }

    /// Deletes a whole namespace: its objects and Secrets with it.
    fn delete_namespace(&mut self, ns: usize) {
        let name = self.namespaces[ns].name.clone();
        let before = now_ms();
        self.kubectl_retried("deleting a namespace", &["delete", "namespace", &name, "--wait=false"], None);
        let mut objects = 0;
        for o in self.objects.iter_mut().filter(|o| o.namespace == name && o.delete_ms.is_none()) {
            o.delete_ms = Some(before);
            o.deleted_by = Some("namespace");
            objects += 1;
        }
        let secrets: Vec<(String, SecretSeen)> = self
            .secrets
            .iter()
            .filter(|((n, _), _)| *n == name)
            .map(|((_, s), seen)| (s.clone(), seen.clone()))
            .collect();
        for (secret, seen) in &secrets {
            if self.fates.iter().all(|f| f.namespace != name || f.name != *secret) {
                self.fates.push(SecretFate {
                    namespace: name.clone(),
                    name: secret.clone(),
                    by: "namespace",
                    delete_ms: before,
                    holders: seen.finalizers.clone(),
                    terminating_seen: false,
                    last_finalizers: Vec::new(),
                    gone_ms: None,
                });
            }
        }
        let n = &mut self.namespaces[ns];
        n.delete_ms = Some(before);
        n.objects_deleted = objects;
        n.secrets_deleted = secrets.len();
        println!("chaos: namespace {name} deleted with {objects} object(s) and {} Secret(s)", secrets.len());
    }

    /// An object that adopts the segment another live object holds (Ready, in a namespace that
    /// stays for now), in that object's namespace and with its credentials.
    pub fn adopt(&mut self, wave: usize) -> bool {
        let Some(h) = self.pick_holder() else {
            println!("chaos: wave {}: no live object with a segment to adopt", wave + 1);
            return false;
        };
        let (holder, segment, holder_ns, holder_cred, account) = {
            let o = &self.objects[h];
            let account = o.status_str("accountId").unwrap_or(o.expected_account).to_string();
            (
                o.name.clone(),
                o.status_str("segmentInstanceId").unwrap().to_string(),
                o.namespace.clone(),
                o.cred,
                account,
            )
        };
        let (ns_index, cred) = self.adopter_place(&holder_ns, holder_cred, &account);
        let ns = self.namespaces[ns_index].name.clone();
        let n = self.adoptions.len();
        let delete_policy = self.rng.random_bool(self.p.adopt_delete);
        let handover = self.rng.random_bool(self.p.adopt_handover);
        let (t, m) = self.adopter(n, (ns_index, cred), wave, &segment, delete_policy);
        let adopter = t.name.clone();
        let at_ms = now_ms();
        self.create(vec![(t, m)]);
        let adopter_k = self.objects.len() - 1;
        if handover {
            self.handovers.push(h);
        }
        println!(
            "chaos: {ns}/{adopter} adopts {segment}, held by {holder_ns}/{holder}{}{}",
            if delete_policy { ", deletionPolicy Delete" } else { "" },
            if handover { "; the holder goes at the next wave" } else { "" }
        );
        self.adoptions.push(AdoptionRecord {
            adopter_k,
            holder_k: h,
            adopter,
            holder_namespace: holder_ns,
            namespace: ns,
            holder,
            segment,
            delete_policy,
            at_ms,
            handover_planned: handover,
        });
        true
    }

    /// A live, allocated object whose segment no adopter names yet, if there is one.
    fn pick_holder(&mut self) -> Option<usize> {
        let taken: HashSet<&str> = self.adoptions.iter().map(|a| a.segment.as_str()).collect();
        let holders: Vec<usize> = (0..self.objects.len())
            .filter(|&k| {
                let o = &self.objects[k];
                o.adopts.is_none()
                    && o.listed_live()
                    && self.namespace_open(&o.namespace)
                    && !(o.cred == Cred::KeysA && self.switched_to_other(&o.namespace))
                    && o.status_str("cloudStatus") == Some("Allocated")
                    && o.status_str("segmentInstanceId").is_some_and(|s| !taken.contains(s))
            })
            .collect();
        (!holders.is_empty()).then(|| holders[self.rng.random_range(0..holders.len())])
    }

    /// The adopter's namespace (by number) and credentials: mostly the holder's.
    fn adopter_place(&mut self, holder_ns: &str, holder_cred: Cred, account: &str) -> (usize, Cred) {
        let holder_ns_index = self.namespaces.iter().position(|n| n.name == holder_ns).unwrap();
        // Some adopters live in another namespace, with credentials of the holder's account there:
        // the claims on a segment span every watched namespace.
        let elsewhere: Vec<(usize, Cred)> = (0..self.namespaces.len())
            .filter(|&j| j != holder_ns_index && self.namespaces[j].delete_ms.is_none())
            .filter_map(|j| self.cred_for(j, account).map(|c| (j, c)))
            .collect();
        if !elsewhere.is_empty() && self.rng.random_bool(0.3) {
            elsewhere[self.rng.random_range(0..elsewhere.len())]
        } else {
            (holder_ns_index, holder_cred)
        }
    }

    /// The `n`th adopter and its manifest: Retain (the adoption default) unless `delete_policy`.
    fn adopter(
        &self,
        n: usize,
        (ns, cred): (usize, Cred),
        wave: usize,
        segment: &str,
        delete_policy: bool,
    ) -> (Tracked, Value) {
        let mut t = self.template(100_000 + n, format!("adopt-{n:03}"), ns, cred, wave);
        t.retain = !delete_policy;
        t.adopts = Some(segment.to_string());
        let mut spec = json!({"regionId": REGION, "segmentInstanceId": segment});
        if delete_policy {
            spec["deletionPolicy"] = json!("Delete");
        }
        if let Some(secret) = cred.secret() {
            spec["credentialsSecretRef"] = json!({"name": secret});
        }
        let m = self.manifest(&t, spec);
        (t, m)
    }

    /// Removes a live object behind the operator's back (mostly one whose status names a segment)
    /// and re-applies its saved manifest after a short while, with or without the finalizer.
    pub fn restore(&mut self, wave: usize) -> bool {
        let Some((k, contested)) = self.pick_for_restore() else {
            println!("chaos: wave {}: no live object to restore", wave + 1);
            return false;
        };
        let keep = self.rng.random_bool(0.5);
        let gap_ms = self.rng.random_range(0..=1500);
        let Some((saved, tries, removed_ms)) = self.remove_for_restore(wave, k) else { return false };
        let manifest = restore_manifest(&saved, keep);
        let kept_finalizer =
            manifest["metadata"]["finalizers"].as_array().is_some_and(|f| f.iter().any(|f| f == FINALIZER));
        std::thread::sleep(Duration::from_millis(gap_ms));
        // A look just before: an adopter that took the segment over while the object was gone is
        // seen naming it before the re-apply, not at the next round's list.
        self.observe();
        let out = self.kubectl_retried(
            "re-applying a saved manifest",
            &["apply", "-f", "-", "-o", "json"],
            Some(&manifest.to_string()),
        );
        let reapplied_ms = now_ms();
        let applied: Value = serde_json::from_str(&out).expect("kubectl apply -o json");
        let annotations = &saved["metadata"]["annotations"];
        let record = RestoreRecord {
            object: k,
            name: self.objects[k].name.clone(),
            namespace: self.objects[k].namespace.clone(),
            wave,
            removed_ms,
            reapplied_ms,
            old_uid: saved["metadata"]["uid"].as_str().unwrap_or_default().to_string(),
            new_uid: applied["metadata"]["uid"].as_str().expect("uid of the re-applied object").to_string(),
            kept_finalizer,
            contested,
            segment: annotations["eipsegment.io/segment-id"].as_str().map(String::from),
            token: annotations[ALLOCATION_TOKEN].as_str().map(String::from),
            tries,
        };
        let source = annotations["eipsegment.io/credentials-source"].as_str();
        println!(
            "chaos: {}/{} removed behind the operator ({tries} tries) and re-applied {gap_ms} ms later {} the finalizer; \
             its annotations name segment {:?}, token {:?}, credentials {source:?}",
            record.namespace,
            record.name,
            if kept_finalizer { "with" } else { "without" },
            record.segment,
            record.token
        );
        self.track_restored(record);
        true
    }

    /// The object to restore, and whether a live adopter names its segment: half of the time such
    /// a holder, if there is one; else mostly one whose status names a segment.
    fn pick_for_restore(&mut self) -> Option<(usize, bool)> {
        let candidates: Vec<usize> = (0..self.objects.len())
            .filter(|&k| {
                let o = &self.objects[k];
                o.listed_live()
                    && self.namespace_open(&o.namespace)
                    && !(o.cred == Cred::KeysA && self.switched_to_other(&o.namespace))
            })
            .collect();
        let with_segment: Vec<usize> =
            candidates.iter().copied().filter(|&k| self.objects[k].status_str("segmentInstanceId").is_some()).collect();
        let named: HashSet<&str> =
            self.objects.iter().filter(|o| o.delete_ms.is_none()).filter_map(|o| o.adopts.as_deref()).collect();
        let is_contested =
            |o: &Tracked| o.adopts.is_none() && o.status_str("segmentInstanceId").is_some_and(|s| named.contains(s));
        let contested: Vec<usize> = with_segment.iter().copied().filter(|&k| is_contested(&self.objects[k])).collect();
        let pool = if !contested.is_empty() && self.rng.random_bool(0.5) {
            contested
        } else if !with_segment.is_empty() && self.rng.random_bool(0.7) {
            with_segment
        } else {
            candidates
        };
        if pool.is_empty() {
            return None;
        }
        let k = pool[self.rng.random_range(0..pool.len())];
        Some((k, is_contested(&self.objects[k])))
    }

    /// Removes the object behind the operator's back: its saved manifest, the removal tries and
    /// when it was done, or None if it could not be removed.
    fn remove_for_restore(&mut self, wave: usize, k: usize) -> Option<(Value, usize, u64)> {
        let (ns, name) = (&self.objects[k].namespace, &self.objects[k].name);
        let (saved, tries) = match self.kube.remove_behind_operator(ns, name) {
            Ok(removed) => removed,
            Err(e) => {
                println!("chaos: wave {}: restore of {ns}/{name} failed: {e}", wave + 1);
                self.restore_failures.push(e);
                return None;
            }
        };
        let removed_ms = now_ms();
        let old_uid = saved["metadata"]["uid"].as_str().unwrap_or_default();
        if let Some(inc) = self.objects[k].incarnations.iter_mut().find(|i| i.uid == old_uid) {
            inc.removed_ms = Some(removed_ms);
        }
        Some((saved, tries, removed_ms))
    }

    /// The re-applied object as the new incarnation of its logical object.
    fn track_restored(&mut self, record: RestoreRecord) {
        let k = record.object;
        self.objects[k].incarnations.push(Incarnation {
            uid: record.new_uid.clone(),
            namespace: record.namespace.clone(),
            seen_ms: record.reapplied_ms,
            restored_with_finalizer: Some(record.kept_finalizer),
            ..Default::default()
        });
        self.by_uid.insert(record.new_uid.clone(), k);
        self.restores.push(record);
    }
}
