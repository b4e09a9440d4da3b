//! The bounds between tenants, namespace by namespace: what the hostile tenant's objects held and
//! with which keys, whether a deletion waited for another namespace's object, whether the operator
//! told the identities the tenant copied or forged from its own, and each namespace's figures and
//! checks for the report.

use std::collections::{BTreeMap, BTreeSet};

use eipsegment_operator::lifecycle::conditions::reason::UNPROVEN_ANNOTATIONS;
use serde_json::Value;

use crate::checks::{
    self, HELD_BACK, HOSTILE_CREDENTIALS, HOSTILE_HOLDS, IDENTITY_MISJUDGED, LEAKED, PREMATURE, RELEASED_TWICE,
    Violation,
};
use crate::evidence::Evidence;
use crate::hostile::{HOSTILE_RULE, VICTIMS_RULE};
use crate::plan::HostileAct;
use crate::run::{Run, Tracked};

/// The Warning event the operator gives an object whose identity annotations it cannot prove.
const UNPROVEN_EVENT: &str = "UnprovenIdentity";
/// The checks the report shows for each namespace, with their column's title.
pub const PER_NAMESPACE: [(&str, &str); 7] = [
    (LEAKED, "leaked"),
    (PREMATURE, "premature"),
    (RELEASED_TWICE, "released twice"),
    (HELD_BACK, "held back"),
    (HOSTILE_HOLDS, "held by the hostile"),
    (HOSTILE_CREDENTIALS, "others' keys"),
    (IDENTITY_MISJUDGED, "identity misjudged"),
];

/// What the hostile tenant's objects held and with which keys, the deletions that waited for
/// another namespace, and the identities misjudged.
pub fn checks(run: &Run, evidence: &Evidence) -> Vec<Violation> {
    let mut v = Vec::new();
    for o in &run.objects {
        if o.hostile.is_some() {
            v.extend(held(run, evidence, o));
            v.extend(credentials(o));
        }
        v.extend(held_back(o));
        v.extend(misjudged(evidence, o));
    }
    v
}

/// A deletion that waited for an object of another namespace naming the segment (its Ready
/// message: "segment … is also named by NAMESPACE/NAME, which …: waiting for it").
fn held_back(o: &Tracked) -> Option<Violation> {
    let namespace_of = |message: &str| message.split_once("named by ")?.1.split_once('/').map(|(ns, _)| ns.to_string());
    let others: Vec<&String> =
        o.waits_seen.iter().filter(|m| namespace_of(m).is_some_and(|ns| ns != o.namespace)).collect();
    (!others.is_empty()).then(|| Violation {
        check: HELD_BACK,
        what: format!("{}/{}'s deletion waited for another namespace: {others:?}", o.namespace, o.name),
        object: Some(o.clone()),
        segments: Vec::new(),
    })
}

/// A hostile object whose status named a segment, or an allocation token, that is not its own.
/// A segment whose owner was removed behind the operator's back and restored was held by nobody in
/// between, and the hostile namespace may adopt: taking it then is its policy's right, and giving it
/// back to the restored owner (which outranks any adopter of another namespace) is what the leak
/// and premature-release checks hold.
fn held(run: &Run, evidence: &Evidence, o: &Tracked) -> Vec<Violation> {
    let own = o.tokens();
    let mut v = Vec::new();
    for sid in &o.segments_seen {
        let seg = evidence.history.iter().find(|s| s["instanceId"] == sid.as_str());
        let token = seg.and_then(|s| s["allocationToken"].as_str());
        let owner_away = seg.and_then(|s| checks::allocator(run, s)).is_some_and(|a| a.incarnations.len() > 1);
        if token.is_none_or(|t| !own.contains(t)) && !owner_away {
            v.push(Violation {
                check: HOSTILE_HOLDS,
                what: format!(
                    "{}/{} ({:?})'s status named {sid}, allocated with {token:?}",
                    o.namespace, o.name, o.hostile
                ),
                object: Some(o.clone()),
                segments: seg.cloned().into_iter().collect(),
            });
        }
    }
    let foreign: Vec<&String> = o.tokens_seen.iter().filter(|t| !own.contains(*t)).collect();
    if !foreign.is_empty() {
        v.push(Violation {
            check: HOSTILE_HOLDS,
            what: format!("{}/{}'s status named allocation token(s) {foreign:?}, none its own", o.namespace, o.name),
            object: Some(o.clone()),
            segments: Vec::new(),
        });
    }
    v
}

/// A hostile object that acted with the operator's keys (its policy denies them), or for an
/// account its own keys are not of (none, when it was given none).
fn credentials(o: &Tracked) -> Option<Violation> {
    let operator = o.sources_seen.contains("Operator");
    let foreign = o.accounts_seen.iter().any(|a| a != o.expected_account);
    (operator || foreign).then(|| Violation {
        check: HOSTILE_CREDENTIALS,
        what: format!(
            "{}/{} ({:?}, given keys of {:?}) acted with credentials {:?} for account(s) {:?}",
            o.namespace, o.name, o.hostile, o.expected_account, o.sources_seen, o.accounts_seen
        ),
        object: Some(o.clone()),
        segments: Vec::new(),
    })
}

/// Once the operator has looked at an object, it reports as unproven (condition or Warning event)
/// the identity annotations the hostile tenant copied or forged, and never its own.
fn misjudged(evidence: &Evidence, o: &Tracked) -> Option<Violation> {
    let events = events_about(evidence, o);
    let reported = o.identity_seen.contains(UNPROVEN_ANNOTATIONS) || events.contains(UNPROVEN_EVENT);
    let forged = matches!(o.hostile, Some(HostileAct::CopyIdentity | HostileAct::ForgeIdentity { .. }));
    let what = match forged {
        true => "carries identity annotations the hostile tenant wrote, and was never reported unproven",
        false => "carries no identity annotation but the operator's, and was reported unproven",
    };
    (looked_at(evidence, o) && reported != forged).then(|| Violation {
        check: IDENTITY_MISJUDGED,
        what: format!(
            "{}/{} {what} (IdentityProven reasons {:?}, events {events:?})",
            o.namespace, o.name, o.identity_seen
        ),
        object: Some(o.clone()),
        segments: Vec::new(),
    })
}

/// The reasons of the events about any incarnation of the object.
pub fn events_about<'e>(evidence: &'e Evidence, o: &Tracked) -> BTreeSet<&'e str> {
    o.incarnations.iter().filter_map(|i| evidence.events_by_uid.get(&i.uid)).flatten().map(String::as_str).collect()
}

/// The operator has looked at the object: a status or an event about it.
pub fn looked_at(evidence: &Evidence, o: &Tracked) -> bool {
    !o.reasons_seen.is_empty() || !o.identity_seen.is_empty() || !events_about(evidence, o).is_empty()
}

/// One namespace's figures and checks.
#[derive(serde::Serialize)]
pub struct NamespaceRow {
    pub namespace: String,
    /// The tenancy policy's rule for it.
    pub rule: &'static str,
    pub objects: usize,
    /// Segments its objects allocated, releases accepted for them, those left in the cloud.
    pub allocated: usize,
    pub releases: usize,
    pub left: usize,
    /// Of its segments whose keepers are all gone and none with Retain, those with exactly one
    /// release accepted.
    pub to_release: usize,
    pub released_once: usize,
    pub checks: BTreeMap<&'static str, usize>,
}

/// Every namespace of the run, the victims' first.
pub fn rows(run: &Run, evidence: &Evidence, violations: &[Violation]) -> Vec<NamespaceRow> {
    let victims = run.namespaces.iter().map(|n| (n.name.as_str(), VICTIMS_RULE));
    victims
        .chain([(run.hostile.namespace.as_str(), HOSTILE_RULE)])
        .map(|(ns, rule)| row(run, evidence, violations, ns, rule))
        .collect()
}

fn row(run: &Run, evidence: &Evidence, violations: &[Violation], ns: &str, rule: &'static str) -> NamespaceRow {
    let segments: Vec<(&Value, &Tracked)> = evidence
        .history
        .iter()
        .filter_map(|s| Some((s, checks::allocator(run, s)?)))
        .filter(|(_, a)| a.namespace == ns)
        .collect();
    let releases = |s: &Value| s["releaseAcceptedAtMs"].as_array().map_or(0, Vec::len);
    let due: Vec<&Value> = segments.iter().filter(|(s, a)| to_be_released(run, s, a)).map(|(s, _)| *s).collect();
    let left = |s: &Value| s["instanceId"].as_str().is_some_and(|id| evidence.present.contains(id));
    let count = |check: &str| violations.iter().filter(|v| v.check == check && concerns(run, v, ns)).count();
    NamespaceRow {
        namespace: ns.to_string(),
        rule,
        objects: run.objects.iter().filter(|o| o.namespace == ns).count(),
        allocated: segments.len(),
        releases: segments.iter().map(|(s, _)| releases(s)).sum(),
        left: segments.iter().filter(|(s, _)| left(s)).count(),
        to_release: due.len(),
        released_once: due.iter().filter(|s| releases(s) == 1).count(),
        checks: PER_NAMESPACE.iter().map(|&(c, _)| (c, count(c))).collect(),
    }
}

/// Every keeper of the segment is gone and none had Retain: it is released exactly once.
fn to_be_released(run: &Run, seg: &Value, allocator: &Tracked) -> bool {
    let id = seg["instanceId"].as_str().unwrap_or_default();
    let out_of_band = seg["removedOutOfBand"].as_bool() == Some(true);
    !out_of_band && checks::keepers(run, id, allocator).iter().all(|k| !k.retain && k.gone_ms.is_some())
}

/// A violation concerns its object's namespace and, for a segment the hostile tenant held, the
/// namespace the segment came from.
fn concerns(run: &Run, v: &Violation, ns: &str) -> bool {
    let of_object = v.object.as_ref().is_some_and(|o| o.namespace == ns);
    let from = |s: &Value| checks::allocator(run, s).is_some_and(|a| a.namespace == ns);
    of_object || (v.check == HOSTILE_HOLDS && v.segments.iter().any(from))
}
