//! The decision rules the model runs: the operator's own lifecycle core, or one of the earlier
//! rules the leak-proof work replaced, each rebuilt at the core's interface so that the checker can
//! show it finds what it exists for.

use eipsegment_operator::cloud::ErrorClass;
use eipsegment_operator::crd::DeletionPolicy;
use eipsegment_operator::lifecycle::{self, Claimant, Credentials, Decision, Facts, Identity, Outcome, Problem, Seen};

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
}

impl Earlier {
    pub const ALL: [Earlier; 6] = [
        Earlier::AnyAccount,
        Earlier::MalformedIsAbsent,
        Earlier::MarkerClearedOnRefusal,
        Earlier::RetainForgetsPending,
        Earlier::NoOwnerCheck,
        Earlier::StatusOnlyIdentity,
    ];
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
            Rules::Earlier(_) => lifecycle::decide(facts),
        }
    }

    /// What the rules read of the identity annotations.
    pub fn annotations(&self, annotations: &Identity) -> Identity {
        match self {
            Rules::Earlier(Earlier::StatusOnlyIdentity) => Identity::default(),
            _ => annotations.clone(),
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

    pub fn falls_back_to_operator(&self) -> bool {
        *self == Rules::Earlier(Earlier::AnyAccount)
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
