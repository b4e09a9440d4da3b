//! The decision rules the model runs: the operator's own lifecycle core and glue, or one of the
//! earlier rules they replaced, each rebuilt at the core's interface (or as a choice of the glue)
//! so that the checker can show it finds what it exists for.

use std::collections::BTreeMap;

use eipsegment_operator::cloud::ErrorClass;
use eipsegment_operator::crd::DeletionPolicy;
use eipsegment_operator::lifecycle::{
    self, Allowance, Claimant, Credentials, Decision, Facts, Identity, Object, Outcome, Problem, Seen,
};
use eipsegment_operator::proof::Proven;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rules {
    /// `eipsegment_operator::lifecycle::decide`, as the operator runs it.
    Current,
    Earlier(Earlier),
}

/// The earlier rules, one flaw each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Earlier {
    /// Any credentials were believed: no account recorded or compared, the operator's own
    /// credentials used when the namespace's Secret was missing, the Secret not held.
    AnyAccount,
    /// A 2xx answer without its list was read as "no segments".
    MalformedIsAbsent,
    /// Any blocked or terminal refusal of a pending allocation's replay cleared the marker.
    MarkerClearedOnRefusal,
    /// Retain with a pending allocation let the object go as "nothing allocated".
    RetainForgetsPending,
    /// Nothing checked whether another object held the segment.
    NoOwnerCheck,
    /// The identity lived in status only: a restore lost it.
    StatusOnlyIdentity,
    /// Identity annotations were believed as written (`Identity::from_annotations`), without the
    /// operator's proof.
    UnprovenBelieved,
    /// A holder being deleted waited for any live claimant and handed its segment to any
    /// established one, of any namespace; a claimant went ahead once the holder was being deleted.
    AnyNamespaceHandOver,
    /// No tenancy policy: every namespace could do everything (`Allowance::default()`).
    PolicyIgnored,
    /// A throttling answer's TimeLeft was taken as the pause, however long.
    UnboundedHint,
    /// A refusal of a pending allocation's replay with a region or parameter code proved that
    /// nothing was created, whatever endpoint or parameters the first request went with, and
    /// however long ago.
    RefusalProvesAnywhere,
    /// The identity annotations were written before status: a crash between the two leaves
    /// annotations ahead of status, which reads as a restore.
    IdentityBeforeStatus,
    /// A conflict after a call (or after a refusal of the client-side rate, counted as a call)
    /// force-wrote the move built from the stale read.
    ForcedAfterConflict,
    /// A deposed replica wrote without resourceVersion preconditions and called without proving
    /// it still held the Lease.
    Unfenced,
    /// A pass from the cache acted for an object already gone: its write before the call failed
    /// as not found, and the call went anyway.
    ActsForRemoved,
    /// Right before a release, the claims were read from the cache alone: an object of the
    /// namespace created a moment before, adopting the segment, was not seen.
    ClaimsFromCache,
}

impl Earlier {
    pub const ALL: [Earlier; 16] = [
        Earlier::AnyAccount,
        Earlier::MalformedIsAbsent,
        Earlier::MarkerClearedOnRefusal,
        Earlier::RetainForgetsPending,
        Earlier::NoOwnerCheck,
        Earlier::StatusOnlyIdentity,
        Earlier::UnprovenBelieved,
        Earlier::AnyNamespaceHandOver,
        Earlier::PolicyIgnored,
        Earlier::UnboundedHint,
        Earlier::RefusalProvesAnywhere,
        Earlier::IdentityBeforeStatus,
        Earlier::ForcedAfterConflict,
        Earlier::Unfenced,
        Earlier::ActsForRemoved,
        Earlier::ClaimsFromCache,
    ];
}

/// What the glue (`src/controller`) does around a decision: how it takes a throttling hint, in
/// which order it writes, what it does on a conflict, how it is fenced.
#[derive(Clone, Copy, Debug)]
pub struct Glue {
    /// A TimeLeft hint is capped (`cloud::error::LONGEST_HINT`).
    pub bounded_hint: bool,
    /// Status is written before the identity annotations.
    pub status_first: bool,
    /// On a conflict after a sent call the object is read again and the outcome decided on it;
    /// a refusal by the client-side rate sent nothing.
    pub decides_again_on_conflict: bool,
    /// Every write carries the read's resourceVersion, every call a Lease proof.
    pub fenced: bool,
    /// The write before a call fails for a gone object, and so the call is not made.
    pub gone_stops_calls: bool,
}

impl Rules {
    pub fn decide(&self, facts: &Facts<'_>) -> Decision {
        match self {
            Rules::Current => lifecycle::decide(facts),
            Rules::Earlier(Earlier::MarkerClearedOnRefusal) => {
                let outcome = facts.outcome.map(|o| match o {
                    Outcome::Refused(p) if matches!(p.class, ErrorClass::Blocked | ErrorClass::Terminal) => {
                        Outcome::Refused(Problem { proves_nothing_created: true, ..p.clone() })
                    }
                    other => other.clone(),
                });
                lifecycle::decide(&Facts { outcome: outcome.as_ref(), ..*facts })
            }
            Rules::Earlier(Earlier::RetainForgetsPending) => {
                let o = facts.object;
                let retained = o.spec.effective_deletion_policy() == DeletionPolicy::Retain;
                if !(o.deleting && retained && o.status.segment_instance_id.is_none()) {
                    return lifecycle::decide(facts);
                }
                let mut forgetful = o.clone();
                forgetful.status.allocation_requested_at = None;
                forgetful.annotations = Identity::default();
                lifecycle::decide(&Facts { object: &forgetful, ..*facts })
            }
            Rules::Earlier(Earlier::AnyNamespaceHandOver) => hand_over_to_anyone(facts),
            Rules::Earlier(Earlier::RefusalProvesAnywhere) => {
                let trusting = trusting_refusals(facts);
                lifecycle::decide(&Facts { object: &trusting, ..*facts })
            }
            Rules::Earlier(Earlier::PolicyIgnored) => {
                let unbound = Object { allowance: Allowance::default(), ..facts.object.clone() };
                lifecycle::decide(&Facts { object: &unbound, ..*facts })
            }
            Rules::Earlier(_) => lifecycle::decide(facts),
        }
    }

    /// What the rules read of the identity annotations `written`, given what the glue proves.
    pub fn annotations(&self, written: &Identity, proven: Proven) -> Proven {
        match self {
            Rules::Earlier(Earlier::StatusOnlyIdentity) => Proven::default(),
            Rules::Earlier(Earlier::UnprovenBelieved) => {
                let map: BTreeMap<String, String> = written
                    .annotations()
                    .into_iter()
                    .filter_map(|(key, value)| Some((key.to_string(), value?.to_string())))
                    .collect();
                Proven { identity: Identity::from_annotations(&map), unproven: Vec::new() }
            }
            _ => proven,
        }
    }

    pub fn claims(&self, claims: Vec<Claimant>) -> Vec<Claimant> {
        match self {
            Rules::Earlier(Earlier::NoOwnerCheck) => Vec::new(),
            _ => claims,
        }
    }

    /// What the rules believe of the credentials' account.
    pub fn credentials(&self, fact: Credentials, recorded: Option<&str>) -> Credentials {
        match (self, &fact.account, recorded) {
            (Rules::Earlier(Earlier::AnyAccount), Ok(_), Some(recorded)) => {
                Credentials { account: Ok(recorded.to_string()), ..fact }
            }
            _ => fact,
        }
    }

    pub fn glue(&self) -> Glue {
        let flawed = |earlier| *self == Rules::Earlier(earlier);
        Glue {
            bounded_hint: !flawed(Earlier::UnboundedHint),
            status_first: !flawed(Earlier::IdentityBeforeStatus),
            decides_again_on_conflict: !flawed(Earlier::ForcedAfterConflict),
            fenced: !flawed(Earlier::Unfenced),
            gone_stops_calls: !flawed(Earlier::ActsForRemoved),
        }
    }

    /// A throttling answer's TimeLeft as the glue takes it (the client's own bound).
    pub fn hint(&self, asked: std::time::Duration) -> std::time::Duration {
        match self.glue().bounded_hint {
            true => eipsegment_operator::cloud::error::bounded_hint(Some(asked)).0.unwrap_or(asked),
            false => asked,
        }
    }

    pub fn falls_back_to_operator(&self) -> bool {
        *self == Rules::Earlier(Earlier::AnyAccount)
    }

    /// Right before a release, the glue lists the namespace's objects from the apiserver.
    pub fn lists_before_release(&self) -> bool {
        *self != Rules::Earlier(Earlier::ClaimsFromCache)
    }

    pub fn holds_secrets(&self) -> bool {
        *self != Rules::Earlier(Earlier::AnyAccount)
    }

    /// A malformed 2xx answer, as the client reports it.
    pub fn malformed(&self) -> Seen {
        match self {
            Rules::Earlier(Earlier::MalformedIsAbsent) => Seen::Absent,
            _ => Seen::Failed(Problem::new(ErrorClass::Transient, "MalformedResponse", "MalformedResponse")),
        }
    }
}

/// The object as the core sees it when any refusal with a region or parameter code counts: the
/// pending marker stands for whatever request was replayed, and the cloud remembers every token.
fn trusting_refusals(facts: &Facts<'_>) -> Object {
    let mut object = facts.object.clone();
    let refused = matches!(facts.outcome, Some(Outcome::Refused(p)) if p.proves_nothing_created);
    let account = facts.credentials.and_then(|c| Some((c.account.as_ref().ok()?, &c.endpoint)));
    if let (true, Some((account, endpoint))) = (refused, account) {
        let token = object.status.allocation_token.clone().or_else(|| object.annotations.allocation_token.clone());
        let token = token.unwrap_or_else(|| lifecycle::identity::allocation_token(&object.uid));
        let replayed = object.spec.allocate_request(&token);
        object.status.allocation_request = Some(lifecycle::replay::request_of(account, endpoint, &replayed));
        object.status.allocation_requested_at.get_or_insert_with(|| object.now.clone());
        object.tokens_remembered_since = String::new();
    }
    object
}

/// The core deciding with every claimant as an heir; its event and conditions name each by its
/// own namespace.
fn hand_over_to_anyone(facts: &Facts<'_>) -> Decision {
    let Some(claims) = facts.claims else { return lifecycle::decide(facts) };
    let heirs = as_heirs(facts, claims);
    let mut decision = lifecycle::decide(&Facts { claims: Some(&heirs), ..*facts });
    if let Decision::Act(decided) = &mut decision {
        let namespace = &facts.object.namespace;
        let texts = decided.event.iter_mut().map(|e| &mut e.note);
        for text in texts.chain(decided.status.conditions.iter_mut().map(|c| &mut c.message)) {
            for c in claims.iter().filter(|c| c.namespace != *namespace) {
                *text = text.replace(&format!("{namespace}/{}", c.name), &format!("{}/{}", c.namespace, c.name));
            }
        }
    }
    decision
}

/// Every claimant as the core sees an heir: of the deciding object's namespace, in the account its
/// credentials act for, with nothing shown that it could not take the segment on.
fn as_heirs(facts: &Facts<'_>, claims: &[Claimant]) -> Vec<Claimant> {
    let account = facts.credentials.and_then(|c| c.account.as_ref().ok()).cloned();
    claims
        .iter()
        .map(|c| Claimant {
            namespace: facts.object.namespace.clone(),
            account: account.clone().or_else(|| c.account.clone()),
            ready_reason: None,
            failing: None,
            ..c.clone()
        })
        .collect()
}
