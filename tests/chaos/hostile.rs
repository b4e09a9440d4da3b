//! The hostile tenant: a namespace of its own, with `keys-a` and `keys-b` as the victims have (the
//! cloud accounts are shared, so the cloud refuses it nothing), under a tenancy policy that treats
//! it as a shared cluster's tenant (its own keys only, at most a /28) but lets it adopt, with
//! Delete. Only the operator's proof of its identity annotations and the bounds between namespaces
//! then stand between it and the victims' segments. Each act of the plan aims at a victim picked
//! when it acts: a live object of a victim's namespace holding an allocated segment under
//! deletionPolicy Delete. A copy or a forgery is deleted at the next wave, a claim on a segment at
//! the one after, and half of the claims' victims with the wave's own deletions (so that another
//! namespace's claim is seen not to hold a release back); each once the operator has looked at it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use eipsegment_operator::crd::FINALIZER;
use eipsegment_operator::lifecycle::identity::{
    ACCOUNT_ID, ALLOCATION_TOKEN, CREDENTIALS_SOURCE, PROOF, SEGMENT_ID, allocation_token,
};
use rand::Rng;
use serde_json::{Value, json};
use vpc_simulator::{DEFAULT_ACCOUNT, OTHER_ACCOUNT};

use crate::now_ms;
use crate::plan::{Cred, HostileAct, KEYS_A, KEYS_B};
use crate::run::{Run, Tracked};
use eipsegment_test_support::REGION;

/// The tenancy policy's rules, by name.
pub const VICTIMS_RULE: &str = "victims";
pub const HOSTILE_RULE: &str = "hostile-tenant";
/// The Secret an unreachable claim names, which never exists.
const MISSING_SECRET: &str = "keys-never-created";
/// The hostile tenant's objects are numbered from here among the run's objects.
const FIRST_INDEX: usize = 200_000;

pub struct HostileTenant {
    pub namespace: String,
    pub acts: Vec<HostileRecord>,
    /// Its objects whose deletion a later wave asks: (position, the first wave that may).
    pub due: Vec<(usize, usize)>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct HostileRecord {
    pub act: HostileAct,
    /// Its object's position among the run's objects, and name.
    pub object: usize,
    pub name: String,
    pub victim: String,
    pub victim_uid: String,
    pub segment: String,
    pub account: String,
    pub at_ms: u64,
    /// The victim is deleted with the wave's deletions, while the claim lives on.
    pub victim_deleted: bool,
}

/// What the hostile tenant sees of its victim.
struct Victim {
    namespace: String,
    name: String,
    uid: String,
    segment: String,
    account: String,
    annotations: serde_json::Map<String, Value>,
}

impl HostileTenant {
    pub fn new(run_id: &str) -> HostileTenant {
        HostileTenant { namespace: format!("chaos-hostile-{run_id}"), acts: Vec::new(), due: Vec::new() }
    }
}

/// The operator's `--tenancy-policy` (JSON, which is YAML): the shared profile, with a rule that
/// lets the victims' namespaces do everything and one that lets the hostile tenant adopt, with
/// Delete.
pub fn tenancy_policy(victims: &[String], hostile: &str) -> String {
    json!({
        "profile": "shared",
        "rules": [
            {"name": VICTIMS_RULE, "namespaces": victims, "operatorCredentials": true, "minEipMask": 0,
             "adopt": true, "adoptWithDelete": true},
            {"name": HOSTILE_RULE, "namespaces": [hostile], "adopt": true, "adoptWithDelete": true},
        ],
    })
    .to_string()
}

/// The Secret of the hostile namespace with keys of `account`, as credentials.
fn keys_of(account: &str) -> (Cred, &'static str, &'static str) {
    if account == OTHER_ACCOUNT { (Cred::KeysB, KEYS_B, OTHER_ACCOUNT) } else { (Cred::KeysA, KEYS_A, DEFAULT_ACCOUNT) }
}

fn other_account(account: &str) -> &'static str {
    if account == OTHER_ACCOUNT { DEFAULT_ACCOUNT } else { OTHER_ACCOUNT }
}

impl Run<'_> {
    /// One act of the hostile tenant, or why there is nothing to act on yet.
    pub fn hostile_act(&mut self, wave: usize, act: HostileAct) -> Result<(), String> {
        let k = self.pick_victim(act).ok_or("no live victim holds an allocated segment under Delete")?;
        let victim = Victim::of(&self.objects[k]);
        let n = self.hostile.acts.len();
        let (t, m) = self.hostile_object(n, act, &victim, wave);
        let at_ms = now_ms();
        let name = t.name.clone();
        self.create(vec![(t, m)]);
        let object = self.objects.len() - 1;
        let claim = matches!(act, HostileAct::AdoptWithDelete | HostileAct::UnreachableClaim { .. });
        let victim_deleted = claim && self.rng.random_bool(0.5);
        if victim_deleted {
            self.handovers.push(k);
        }
        self.hostile.due.push((object, wave + 1 + usize::from(claim)));
        println!(
            "chaos: hostile tenant: {}/{name} ({act:?}) aims at {}/{} and its segment {} (account {}){}",
            self.hostile.namespace,
            victim.namespace,
            victim.name,
            victim.segment,
            victim.account,
            if victim_deleted { "; the victim goes with this wave's deletions" } else { "" }
        );
        self.hostile.acts.push(HostileRecord {
            act,
            object,
            name,
            victim: format!("{}/{}", victim.namespace, victim.name),
            victim_uid: victim.uid,
            segment: victim.segment,
            account: victim.account,
            at_ms,
            victim_deleted,
        });
        Ok(())
    }

    /// A live victim holding an allocated segment under Delete (for a copy, one whose annotations
    /// carry the operator's proof).
    fn pick_victim(&mut self, act: HostileAct) -> Option<usize> {
        let candidates: Vec<usize> = (0..self.objects.len())
            .filter(|&k| {
                let o = &self.objects[k];
                o.hostile.is_none()
                    && !o.retain
                    && o.listed_live()
                    && self.namespace_open(&o.namespace)
                    && !(o.cred == Cred::KeysA && self.switched_to_other(&o.namespace))
                    && o.status_str("cloudStatus") == Some("Allocated")
                    && o.status_str("segmentInstanceId").is_some()
                    && o.status_str("accountId").is_some()
                    && (act != HostileAct::CopyIdentity || o.last["metadata"]["annotations"][PROOF].is_string())
            })
            .collect();
        (!candidates.is_empty()).then(|| candidates[self.rng.random_range(0..candidates.len())])
    }

    /// The `n`th object of the hostile tenant, for this act on this victim, and its manifest.
    fn hostile_object(&mut self, n: usize, act: HostileAct, victim: &Victim, wave: usize) -> (Tracked, Value) {
        let own = keys_of(&victim.account);
        let other = keys_of(other_account(&victim.account));
        let none = (Cred::Own, MISSING_SECRET, "");
        let (name, annotations, spec, keys) = match act {
            HostileAct::CopyIdentity => {
                let annotations = Value::Object(victim.annotations.clone());
                (self.copy_name(victim, n), annotations, allocation(Some(own.1)), own)
            }
            HostileAct::ForgeIdentity { with_keys } => {
                let tag: [u8; 32] = self.rng.random();
                let keys = if with_keys { own } else { none };
                (format!("forged-{n:03}"), forged(victim, &tag), allocation(with_keys.then_some(own.1)), keys)
            }
            HostileAct::AdoptWithDelete => (format!("claim-{n:03}"), json!({}), adoption(&victim.segment, own.1), own),
            HostileAct::UnreachableClaim { missing_secret } => {
                let keys = if missing_secret { none } else { other };
                (format!("claim-{n:03}"), json!({}), adoption(&victim.segment, keys.1), keys)
            }
        };
        let mut t = Tracked::new(FIRST_INDEX + n, name, self.hostile.namespace.clone(), (keys.0, keys.2), wave);
        t.hostile = Some(act);
        t.adopts = spec["segmentInstanceId"].as_str().map(String::from);
        let mut m = self.manifest(&t, spec);
        m["metadata"]["annotations"] = annotations;
        (t, m)
    }

    /// The hostile objects to delete at this wave: those due that the operator has looked at (a
    /// list showed its finalizer or a status), so that each act meets it; the others wait.
    pub fn hostile_due(&mut self, wave: usize) -> Vec<usize> {
        let looked_at = |o: &Tracked| {
            let finalizers = o.last["metadata"]["finalizers"].as_array();
            finalizers.is_some_and(|f| f.iter().any(|f| f == FINALIZER)) || o.last["status"].is_object()
        };
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.hostile.due)
            .into_iter()
            .partition(|&(k, from)| from <= wave && looked_at(&self.objects[k]));
        self.hostile.due = later;
        due.into_iter().map(|(k, _)| k).collect()
    }

    /// The victim's own name, unless an object of the hostile namespace still has it.
    fn copy_name(&self, victim: &Victim, n: usize) -> String {
        let taken = |name: &str| {
            self.objects.iter().any(|o| o.namespace == self.hostile.namespace && o.name == name && o.gone_ms.is_none())
        };
        if taken(&victim.name) { format!("{}-{n}", victim.name) } else { victim.name.clone() }
    }
}

impl Victim {
    fn of(o: &Tracked) -> Victim {
        let annotations = o.last["metadata"]["annotations"]
            .as_object()
            .map(|a| a.iter().filter(|(k, _)| k.starts_with("eipsegment.io/")).map(|(k, v)| (k.clone(), v.clone())))
            .map(|a| a.collect())
            .unwrap_or_default();
        Victim {
            namespace: o.namespace.clone(),
            name: o.name.clone(),
            uid: o.uid().to_string(),
            segment: o.status_str("segmentInstanceId").unwrap_or_default().to_string(),
            account: o.status_str("accountId").unwrap_or_default().to_string(),
            annotations,
        }
    }
}

/// A /28 of its own (the most the policy grants it), released on deletion.
fn allocation(secret: Option<&str>) -> Value {
    let mut spec = json!({"regionId": REGION, "eipMask": 28, "bandwidth": 5, "deletionPolicy": "Delete"});
    if let Some(secret) = secret {
        spec["credentialsSecretRef"] = json!({"name": secret});
    }
    spec
}

fn adoption(segment: &str, secret: &str) -> Value {
    json!({"regionId": REGION, "segmentInstanceId": segment, "deletionPolicy": "Delete",
           "credentialsSecretRef": {"name": secret}})
}

/// The victim's identity as the tenant can write it: its segment, account and allocation token,
/// the operator's credentials, and a proof of the right shape that proves nothing.
fn forged(victim: &Victim, tag: &[u8]) -> Value {
    json!({
        SEGMENT_ID: victim.segment,
        ACCOUNT_ID: victim.account,
        CREDENTIALS_SOURCE: "Operator",
        ALLOCATION_TOKEN: allocation_token(&victim.uid),
        PROOF: format!("v1:segment-id,account-id,credentials-source,allocation-token:{}", URL_SAFE_NO_PAD.encode(tag)),
    })
}
