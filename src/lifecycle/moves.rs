//! What a decision answers: one more fact to gather, or the whole move.

use std::time::Duration;

use crate::identity::{Identity, Source};
use eipsegment_api::EipSegmentStatus;
use vpc_api::ErrorClass;
use vpc_api::model::AllocateRequest;

// One per question, moved to its reader: boxing the move would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Decision {
    Need(Need),
    Act(Move),
}

/// A fact the decision cannot go without. Each is asked for at most once per pass.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Need {
    /// The other objects that name this segment (from the cache; no IO).
    Claims { segment_id: String },
    /// The credentials to act with, and the account they act for.
    Credentials(SourceChoice),
    /// The poller's last look at the segment, registering for wakes; `drift` keeps a settled
    /// segment under drift checks.
    Look { segment_id: String, drift: bool },
    /// The member EIPs of the segment, read once it is Allocated (DescribeEipAddresses; read-only).
    Members { segment_id: String },
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SourceChoice {
    /// This source and no other: once a segment's account is recorded, its source is fixed.
    Exactly(Source),
    /// Nothing recorded yet: the namespace's default Secret if it exists, else the operator's own.
    NamespaceDefaultOrOperator,
    /// Nothing recorded yet, and the tenancy policy (this rule) keeps the operator's own
    /// credentials from the namespace: its default Secret, or nothing.
    NamespaceDefaultOnly { rule: String },
}

/// The whole next move. The glue writes `identity`, then `status`, then holds or lets go of the
/// Secret, then makes the `call` (if any), then publishes the `event`, tells the poller, and waits
/// or finishes. When there is a call, the writes before it are what a crash must find.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Move {
    pub status: EipSegmentStatus,
    /// The identity annotations to hold.
    pub identity: Identity,
    pub secret: SecretUse,
    pub call: Option<Call>,
    pub event: Option<Event>,
    /// A standing problem of the object itself (identity annotations it cannot prove), told beside
    /// the move's own event when it is new.
    pub warning: Option<Event>,
    pub watch: Option<Watch>,
    pub next: Next,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Call {
    Allocate(AllocateRequest),
    Release { region: String, segment_id: String, token: String },
}

/// The object's hold on the Secret its credentials come from: a Secret an object with a live
/// segment depends on is kept (a finalizer per object) until the object no longer needs it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SecretUse {
    Unchanged,
    Hold(String),
    LetGo(String),
}

/// What the poller should know.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Watch {
    /// This operator started a change of the segment: await its end.
    Changing { segment_id: String, change: Change },
    /// The cloud said the segment is gone: look again by ID to prove it.
    Refresh { segment_id: String },
    /// A refusal contradicts the last look: look again, for the next pass.
    LookAgain { segment_id: String },
    /// A change the object awaits that the poller may not know of (an allocation accepted before
    /// a restart, not yet visible): keep looking until it ends.
    Expect { segment_id: String, change: Change },
    /// The object no longer waits on these segments.
    Forget { segment_ids: Vec<String> },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Change {
    Allocating,
    Releasing,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Next {
    Wait(Pace),
    /// Nothing is left in the cloud that this object must release: let it go.
    Finish,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pace {
    /// The poller wakes the object when the segment changes (a slow recheck is only a safety net).
    Woken,
    /// Waiting for the poller's first look: woken like `Woken`, but it is no success, so the
    /// object's backoff stands.
    Looking,
    /// Settled: the poller wakes the object should its segment change or its drift checks keep
    /// failing, and the watch should the object change; its own timer is only a rare safety net.
    Settled,
    /// Settled with something to read again at the next drift check (an empty member list).
    Resync,
    /// After an error of this class: per-object exponential backoff, reset by any other pace.
    Backoff { class: ErrorClass, hint: Option<Duration> },
    /// Waiting for a place within the client-side quota.
    Queued(Duration),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Event {
    pub warning: bool,
    pub reason: &'static str,
    /// What the operator was doing (Allocate, Release, Observe, …).
    pub action: &'static str,
    pub note: String,
}

impl Event {
    pub fn normal(reason: &'static str, action: &'static str, note: String) -> Event {
        Event { warning: false, reason, action, note }
    }

    pub fn warning(reason: &'static str, action: &'static str, note: String) -> Event {
        Event { warning: true, reason, action, note }
    }
}
