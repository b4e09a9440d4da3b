//! The Ready and Synced conditions, and the lifecycle's words for them: every reason it gives Ready
//! and the messages others read too (the cache packs objects against them), so that a change of
//! wording is made here once. `lastTransitionTime` moves only when a condition's status does.

use crate::facts::Problem;
use eipsegment_api::{Condition, EipSegmentStatus};

pub const READY: &str = "Ready";
pub const SYNCED: &str = "Synced";
/// Whether every identity annotation the object carries is the operator's own.
pub const IDENTITY_PROVEN: &str = "IdentityProven";

/// The reasons the lifecycle gives Ready. Where the cloud's status is passed on as the reason
/// (Allocating, Releasing, a status this operator does not know), the word is the cloud's.
pub mod reason {
    pub const ALLOCATED: &str = "Allocated";
    pub const ADOPTED: &str = "Adopted";
    pub const ALLOCATING: &str = "Allocating";
    /// Waiting for a place within the client-side quota of the allocation.
    pub const ALLOCATION_QUEUED: &str = "AllocationQueued";
    pub const RELEASING: &str = "Releasing";
    /// Waiting for a place within the client-side quota of the release.
    pub const RELEASE_QUEUED: &str = "ReleaseQueued";
    pub const RELEASE_BLOCKED: &str = "ReleaseBlocked";
    pub const RELEASE_FAILED: &str = "ReleaseFailed";
    pub const RELEASED: &str = "Released";
    pub const SEGMENT_IN_USE: &str = "SegmentInUse";
    pub const SEGMENT_MISSING: &str = "SegmentMissing";
    pub const ADOPTION_TARGET_NOT_FOUND: &str = "AdoptionTargetNotFound";
    pub const ACCOUNT_UNKNOWN: &str = "AccountUnknown";
    /// The tenancy policy of the object's namespace does not allow what it asks.
    pub const POLICY_REFUSED: &str = "PolicyRefused";
    /// IdentityProven's reasons.
    pub const UNPROVEN_ANNOTATIONS: &str = "UnprovenAnnotations";
    pub const PROVEN: &str = "Proven";
    /// Synced's reason after a successful cloud call (after a failed one, the error's class).
    pub const SUCCEEDED: &str = "Succeeded";
}

/// Every reason the lifecycle gives Ready, and the cloud statuses it passes on as reasons.
pub const READY_REASONS: &[&str] = &[
    reason::ALLOCATED,
    reason::ADOPTED,
    reason::ALLOCATING,
    reason::ALLOCATION_QUEUED,
    reason::RELEASING,
    reason::RELEASE_QUEUED,
    reason::RELEASE_BLOCKED,
    reason::RELEASE_FAILED,
    reason::RELEASED,
    reason::SEGMENT_IN_USE,
    reason::SEGMENT_MISSING,
    reason::ADOPTION_TARGET_NOT_FOUND,
    reason::ACCOUNT_UNKNOWN,
    reason::POLICY_REFUSED,
];

/// The messages of the conditions most objects carry on their way: allocated, released, settled.
pub mod message {
    /// Synced=True.
    pub const SUCCEEDED: &str = "the last cloud call succeeded";
    /// IdentityProven=True.
    pub const IDENTITY_PROVEN: &str = "every identity annotation is the operator's own";

    /// IdentityProven=False.
    pub fn unproven(annotations: &[String]) -> String {
        format!(
            "annotation {} was not written by this operator (no valid identity proof, and status does not record \
             it): it is ignored, and credits no segment, token or credentials source to this object. If the object was \
             restored from a backup, restore the operator's identity key Secret first",
            annotations.join(", ")
        )
    }

    /// Ready=False while the cloud allocates the segment.
    pub fn allocating(segment_id: &str) -> String {
        format!("segment {segment_id} is being allocated")
    }

    /// Ready=True for a segment this object allocated.
    pub fn allocated(segment_id: &str, cidr: &str) -> String {
        format!("segment {segment_id} ({cidr}) is allocated")
    }

    /// Ready=True for a segment this object adopted.
    pub fn adopted(segment_id: &str, cidr: &str) -> String {
        format!("adopted segment {segment_id} ({cidr})")
    }

    /// Ready=False once the cloud accepted the release.
    pub fn release_requested(segment_id: &str) -> String {
        format!("release of {segment_id} requested; waiting for the cloud to confirm")
    }
}

pub fn get<'a>(status: &'a EipSegmentStatus, type_: &str) -> Option<&'a Condition> {
    status.conditions.iter().find(|c| c.type_ == type_)
}

pub fn is_ready(status: &EipSegmentStatus) -> bool {
    get(status, READY).is_some_and(|c| c.status == "True")
}

pub fn ready_reason(status: &EipSegmentStatus) -> Option<&str> {
    get(status, READY).map(|c| c.reason.as_str())
}

/// Conditions are messages for people; the apiserver caps them at 32 KiB, these at 1000 characters.
const MAX_MESSAGE: usize = 1000;

pub fn set(status: &mut EipSegmentStatus, type_: &str, value: bool, reason: &str, message: &str, now: &str) {
    let value = if value { "True" } else { "False" };
    let transition = match get(status, type_) {
        Some(c) if c.status == value => c.last_transition_time.clone(),
        _ => now.to_string(),
    };
    let condition = Condition {
        type_: type_.into(),
        status: value.into(),
        reason: reason.into(),
        message: message.chars().take(MAX_MESSAGE).collect(),
        last_transition_time: transition,
        observed_generation: status.observed_generation,
    };
    status.conditions.retain(|c| c.type_ != type_);
    status.conditions.push(condition);
    status.conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
}

pub fn set_ready(status: &mut EipSegmentStatus, ready: bool, reason: &str, message: &str, now: &str) {
    set(status, READY, ready, reason, message, now);
}

/// IdentityProven=False naming the annotations that are not the operator's; True again once none
/// is left (only on an object that was told otherwise before).
pub fn set_identity(status: &mut EipSegmentStatus, unproven: &[String], now: &str) {
    if unproven.is_empty() {
        if get(status, IDENTITY_PROVEN).is_some_and(|c| c.status != "True") {
            set(status, IDENTITY_PROVEN, true, reason::PROVEN, message::IDENTITY_PROVEN, now);
        }
        return;
    }
    set(status, IDENTITY_PROVEN, false, reason::UNPROVEN_ANNOTATIONS, &message::unproven(unproven), now);
}

/// Synced=True after a successful cloud interaction; False with the error's class otherwise.
pub fn set_synced(status: &mut EipSegmentStatus, problem: Option<&Problem>, now: &str) {
    match problem {
        None => set(status, SYNCED, true, reason::SUCCEEDED, message::SUCCEEDED, now),
        Some(p) => set(status, SYNCED, false, p.class.as_str(), &p.detail, now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_moves_only_with_the_status() {
        let mut s = EipSegmentStatus::default();
        set_ready(&mut s, false, "Allocating", "a", "t1");
        set_ready(&mut s, false, "Allocating", "b", "t2");
        assert_eq!(get(&s, READY).unwrap().last_transition_time, "t1");
        set_ready(&mut s, true, "Allocated", "c", "t3");
        assert_eq!(get(&s, READY).unwrap().last_transition_time, "t3");
        assert!(is_ready(&s));
        set_synced(&mut s, None, "t4");
        assert_eq!(s.conditions.iter().map(|c| c.type_.as_str()).collect::<Vec<_>>(), [READY, SYNCED]);
        let long = "x".repeat(5000);
        set_ready(&mut s, true, "Allocated", &long, "t5");
        assert_eq!(get(&s, READY).unwrap().message.len(), MAX_MESSAGE);
    }
}
