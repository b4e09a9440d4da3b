//! What a pass knows when it asks for a decision. The glue gathers these; nothing here does IO.

use std::time::Duration;

use crate::identity::{Identity, Source};
use eipsegment_api::{EipSegmentSpec, EipSegmentStatus, SegmentAddress};
use vpc_api::ErrorClass;
use vpc_api::model::Segment;

/// Everything known so far. Facts the decision has not asked for yet are `None`.
#[derive(Clone, Copy, Debug)]
pub struct Facts<'a> {
    pub object: &'a Object,
    /// Other objects naming the segment, once asked for ([`crate::Need::Claims`]).
    pub claims: Option<&'a [Claimant]>,
    /// The credentials in force and the account they act for ([`crate::Need::Credentials`]).
    pub credentials: Option<&'a Credentials>,
    /// The poller's last look at the segment ([`crate::Need::Look`]).
    pub look: Option<&'a Look>,
    /// The segment's member EIPs ([`crate::Need::Members`]).
    pub members: Option<&'a Result<Vec<SegmentAddress>, Problem>>,
    /// How this pass's cloud call ended.
    pub outcome: Option<&'a Outcome>,
}

impl<'a> Facts<'a> {
    pub fn of(object: &'a Object) -> Facts<'a> {
        Facts { object, claims: None, credentials: None, look: None, members: None, outcome: None }
    }
}

/// The object as the pass read it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Object {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// creationTimestamp (RFC 3339): the older of two claims on one segment wins.
    pub created: String,
    pub generation: Option<i64>,
    pub spec: EipSegmentSpec,
    pub status: EipSegmentStatus,
    /// The identity annotations the operator proves it wrote (signed, or equal to what status
    /// records); a restore brings them back. Nothing else of a user's is believed.
    pub annotations: Identity,
    /// The identity annotations present but not proven (forged, copied, or signed with a key the
    /// operator no longer has): ignored, and reported.
    pub unproven: Vec<String>,
    /// What the tenancy policy lets the object's namespace do.
    pub allowance: Allowance,
    /// Its deletion was requested.
    pub deleting: bool,
    /// The time of the pass (RFC 3339), for markers and conditions.
    pub now: String,
    /// The pass's time less the cloud's memory of a ClientToken (RFC 3339): a token first used
    /// before it may be forgotten, and a refusal of its replay proves nothing.
    pub tokens_remembered_since: String,
}

/// What the platform's tenancy policy lets a namespace do, and the rule that says so.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Allowance {
    /// The rule that matched the namespace (or the default), for messages.
    pub rule: String,
    /// It may act with the operator's own credentials; otherwise it brings a Secret.
    pub operator_credentials: bool,
    pub allocate: bool,
    /// The smallest `eipMask` (the largest segment) it may allocate.
    pub min_eip_mask: u8,
    pub adopt: bool,
    /// An adoption may release the segment on deletion (deletionPolicy Delete).
    pub adopt_with_delete: bool,
}

impl Default for Allowance {
    /// A cluster of one team: everything allowed.
    fn default() -> Allowance {
        Allowance {
            rule: "default".into(),
            operator_credentials: true,
            allocate: true,
            min_eip_mask: 0,
            adopt: true,
            adopt_with_delete: true,
        }
    }
}

/// Another object that names the same segment.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Claimant {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub created: String,
    /// Its status records the segment as its own.
    pub established: bool,
    pub deleting: bool,
    /// It carries the operator's finalizer: it was reconciled, and cannot vanish unseen.
    pub finalized: bool,
    /// It names the segment to adopt it (`spec.segmentInstanceId`), rather than as its own.
    pub adopts: bool,
    /// The account its status records.
    pub account: Option<String>,
    /// Its Ready reason, and the class of its last failed call: whether it could take the segment on.
    pub ready_reason: Option<String>,
    pub failing: Option<ErrorClass>,
}

/// The credentials a pass would act with.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Credentials {
    pub source: Source,
    /// The account they act for (STS GetCallerIdentity), or why that is not known.
    pub account: Result<String, Problem>,
    /// The Secret they come from is being deleted.
    pub terminating: bool,
    /// The endpoint their allocations in the object's region are sent to.
    pub endpoint: String,
}

/// The poller's view of the segment.
// One per pass, read in place: boxing the segment would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Look {
    /// No look yet: the poller wakes the object when there is one.
    Pending,
    /// A look made with credentials of `account`.
    Seen { account: String, seen: Seen },
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Seen {
    Present(Segment),
    /// Proven absent: a well-formed answer by ID, or a single page holding the whole region.
    Absent,
    Failed(Problem),
}

/// How the pass's call ended.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The client-side quota had no place for it; nothing was sent.
    NotAdmitted {
        after: Duration,
        why: String,
    },
    Allocated {
        segment_id: String,
    },
    ReleaseAccepted {
        request_id: String,
    },
    Refused(Problem),
}

/// A failed cloud call (or credential lookup), as the decision needs to know it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Problem {
    pub class: ErrorClass,
    /// The cloud's error code, or the kind of failure (Timeout, NoCredentials, …).
    pub code: String,
    /// What it means and what to do.
    pub detail: String,
    pub request_id: Option<String>,
    /// The cloud's TimeLeft hint.
    pub retry_after: Option<Duration>,
    /// For an allocation: the refusal proves that the token created nothing.
    pub proves_nothing_created: bool,
}

impl Problem {
    /// A problem that needs no cloud classification (tests, models, credential lookups).
    pub fn new(class: ErrorClass, code: &str, detail: &str) -> Problem {
        Problem {
            class,
            code: code.into(),
            detail: detail.into(),
            request_id: None,
            retry_after: None,
            proves_nothing_created: false,
        }
    }
}
