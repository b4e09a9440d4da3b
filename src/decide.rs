//! The pure decision: given the object and what the cloud reported, the next step. No IO here.

use std::time::Duration;

use crate::cloud::ErrorClass;
use crate::cloud::model::{Segment, SegmentStatus};
use crate::crd::{DeletionPolicy, EipSegmentSpec, EipSegmentStatus};

/// ClientTokens derive from the object's UID, never its name: a recreated object gets new ones.
pub fn allocation_token(uid: &str) -> String {
    format!("alloc-{uid}")
}

pub fn release_token(uid: &str) -> String {
    format!("release-{uid}")
}

/// The segment the object stands for, if it names one: the adopted one, or the one recorded.
pub fn segment_to_look_at<'a>(spec: &'a EipSegmentSpec, status: &'a EipSegmentStatus) -> Option<&'a str> {
    spec.segment_instance_id.as_deref().or(status.segment_instance_id.as_deref())
}

/// What the look at the cloud found.
#[derive(Clone, Debug, PartialEq)]
pub enum Cloud {
    /// The object names no segment, so nothing was looked at.
    NothingToLookAt,
    Found(Segment),
    /// DescribeEipSegment no longer returns the segment.
    Missing,
    /// The look failed; the class says how to retry.
    LookFailed(ErrorClass),
}

pub struct Facts<'a> {
    pub spec: &'a EipSegmentSpec,
    pub status: &'a EipSegmentStatus,
    pub deleting: bool,
    pub cloud: &'a Cloud,
}

/// How soon to look again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pace {
    /// A cloud-side change is under way: poll.
    Poll,
    /// Settled: drift check.
    Resync,
    /// After an error of this class: per-object backoff.
    Backoff(ErrorClass),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Request a segment (repeating with the same token recovers a request whose answer was lost).
    Allocate { token: String },
    /// Ask the cloud to release the segment.
    Release { segment_id: String, token: String },
    /// The object may go: nothing is left in the cloud that it must release.
    Finish(Finished),
    /// Nothing to do in the cloud; record what was seen and look again.
    Wait { observed: Observed, pace: Pace },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finished {
    /// DescribeEipSegment no longer returns the segment.
    Released { segment_id: String },
    /// Retain: the segment stays in the cloud.
    Retained { segment_id: Option<String> },
    /// Nothing was ever requested.
    NothingAllocated,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Observed {
    /// The segment is allocated (or adopted) and recorded.
    Ready(Segment),
    /// Allocating, or Releasing while the object still wants it (out-of-band release under way).
    Changing(Segment),
    /// The release was accepted; waiting for the segment to disappear.
    Releasing(Segment),
    /// The recorded segment is gone although the object was not deleted; it is not re-created.
    Drifted { segment_id: String },
    /// The segment to adopt does not exist in the region.
    AdoptionTargetMissing { segment_id: String },
    /// The look failed.
    LookFailed,
}

pub fn decide(facts: &Facts<'_>) -> Step {
    let Facts { spec, status, deleting, cloud } = facts;
    let segment_id = segment_to_look_at(spec, status).map(str::to_string);
    let allocation_pending = status.allocation_requested_at.is_some() && status.segment_instance_id.is_none();

    if *deleting {
        if spec.effective_deletion_policy() == DeletionPolicy::Retain {
            return Step::Finish(Finished::Retained { segment_id });
        }
        return match (cloud, segment_id) {
            (Cloud::LookFailed(class), _) => Step::Wait { observed: Observed::LookFailed, pace: Pace::Backoff(*class) },
            (Cloud::Missing, Some(segment_id)) => Step::Finish(Finished::Released { segment_id }),
            (Cloud::Found(seg), Some(segment_id)) => match seg.status {
                SegmentStatus::Allocated => Step::Release { segment_id, token: String::new() },
                SegmentStatus::Released => Step::Finish(Finished::Released { segment_id }),
                SegmentStatus::Releasing => Step::Wait { observed: Observed::Releasing(seg.clone()), pace: Pace::Poll },
                // Allocating (or a status this operator does not know): only queries are allowed.
                _ => Step::Wait { observed: Observed::Changing(seg.clone()), pace: Pace::Poll },
            },
            // A request may have created a segment whose ID was never recorded: ask again with the
            // same token to learn it, then release it.
            _ if allocation_pending => Step::Allocate { token: String::new() },
            _ => Step::Finish(Finished::NothingAllocated),
        };
    }

    match (cloud, segment_id) {
        (Cloud::LookFailed(class), _) => Step::Wait { observed: Observed::LookFailed, pace: Pace::Backoff(*class) },
        (Cloud::Missing, Some(segment_id)) if spec.adopts() && status.segment_instance_id.is_none() => Step::Wait {
            observed: Observed::AdoptionTargetMissing { segment_id },
            pace: Pace::Backoff(ErrorClass::Terminal),
        },
        (Cloud::Missing, Some(segment_id)) => {
            Step::Wait { observed: Observed::Drifted { segment_id }, pace: Pace::Backoff(ErrorClass::Blocked) }
        }
        (Cloud::Found(seg), Some(_)) => match seg.status {
            SegmentStatus::Allocated => Step::Wait { observed: Observed::Ready(seg.clone()), pace: Pace::Resync },
            _ => Step::Wait { observed: Observed::Changing(seg.clone()), pace: Pace::Poll },
        },
        _ if spec.adopts() => Step::Wait { observed: Observed::LookFailed, pace: Pace::Poll },
        _ => Step::Allocate { token: String::new() },
    }
}

/// Fills in the UID-derived tokens of a step.
pub fn with_tokens(step: Step, uid: &str) -> Step {
    match step {
        Step::Allocate { .. } => Step::Allocate { token: allocation_token(uid) },
        Step::Release { segment_id, .. } => Step::Release { segment_id, token: release_token(uid) },
        other => other,
    }
}

/// How the intervals are set; configurable from the command line.
#[derive(Clone, Copy, Debug)]
pub struct Timings {
    pub poll: Duration,
    pub resync: Duration,
    pub transient_base: Duration,
    pub transient_max: Duration,
    pub blocked_base: Duration,
    pub blocked_max: Duration,
    pub terminal_base: Duration,
    pub terminal_max: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            poll: Duration::from_secs(2),
            resync: Duration::from_secs(600),
            transient_base: Duration::from_secs(1),
            transient_max: Duration::from_secs(120),
            blocked_base: Duration::from_secs(30),
            blocked_max: Duration::from_secs(600),
            terminal_base: Duration::from_secs(120),
            terminal_max: Duration::from_secs(1800),
        }
    }
}

/// The wait before the next look. Backoff doubles per consecutive failure (`failures` ≥ 1), capped,
/// with up to 20% jitter from `jitter` in [0, 1); the cloud's TimeLeft hint is a floor.
pub fn requeue_after(pace: Pace, failures: u32, jitter: f64, hint: Option<Duration>, t: &Timings) -> Duration {
    let (base, max) = match pace {
        Pace::Poll => return t.poll,
        Pace::Resync => return t.resync,
        Pace::Backoff(ErrorClass::Transient) | Pace::Backoff(ErrorClass::Gone) => (t.transient_base, t.transient_max),
        Pace::Backoff(ErrorClass::Blocked) => (t.blocked_base, t.blocked_max),
        Pace::Backoff(ErrorClass::Terminal) => (t.terminal_base, t.terminal_max),
    };
    crate::backoff::delay(base, max, failures, jitter, hint)
}

/// What follows a refused release.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterRefusedRelease {
    /// The segment is gone already: look once more to confirm, then let the object go.
    Confirm,
    /// Keep the finalizer and retry at the pace of the error's class.
    Retry(Pace),
}

pub fn after_refused_release(class: ErrorClass) -> AfterRefusedRelease {
    match class {
        ErrorClass::Gone => AfterRefusedRelease::Confirm,
        other => AfterRefusedRelease::Retry(Pace::Backoff(other)),
    }
}

/// Whether an allocation that failed this way may have created a segment anyway.
pub fn allocation_may_have_landed(class: ErrorClass, ambiguous: bool, code: &str) -> bool {
    ambiguous || class == ErrorClass::Transient || code == "OperationFailed.LastTokenProcessing"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::DeletionPolicy::*;

    fn seg(status: SegmentStatus) -> Segment {
        Segment {
            instance_id: "eipsg-abc".into(),
            status,
            segment: "47.0.0.0/28".into(),
            ip_count: Some(16),
            region_id: "cn-hangzhou".into(),
            zone: String::new(),
            name: String::new(),
            description: String::new(),
            creation_time: String::new(),
        }
    }

    fn spec(adopt: bool, policy: Option<DeletionPolicy>) -> EipSegmentSpec {
        EipSegmentSpec {
            region_id: "cn-hangzhou".into(),
            eip_mask: (!adopt).then_some(28),
            segment_instance_id: adopt.then(|| "eipsg-abc".to_string()),
            deletion_policy: policy,
            ..Default::default()
        }
    }

    fn status(recorded: bool, pending: bool) -> EipSegmentStatus {
        EipSegmentStatus {
            segment_instance_id: recorded.then(|| "eipsg-abc".to_string()),
            allocation_requested_at: (pending || recorded).then(|| "2026-01-01T00:00:00Z".to_string()),
            ..Default::default()
        }
    }

    use Cloud::*;
    use SegmentStatus::*;

    #[test]
    fn decision_table() {
        let wait = |observed, pace| Step::Wait { observed, pace };
        let release = || Step::Release { segment_id: "eipsg-abc".into(), token: String::new() };
        let released = || Step::Finish(Finished::Released { segment_id: "eipsg-abc".into() });
        // (adopt, policy, recorded, pending, deleting, cloud) -> step
        let rows: Vec<((bool, Option<DeletionPolicy>, bool, bool, bool, Cloud), Step)> = vec![
            // Allocation.
            ((false, None, false, false, false, NothingToLookAt), Step::Allocate { token: String::new() }),
            ((false, None, false, true, false, NothingToLookAt), Step::Allocate { token: String::new() }),
            (
                (false, None, true, false, false, Found(seg(Allocating))),
                wait(Observed::Changing(seg(Allocating)), Pace::Poll),
            ),
            (
                (false, None, true, false, false, Found(seg(Allocated))),
                wait(Observed::Ready(seg(Allocated)), Pace::Resync),
            ),
            (
                (false, None, true, false, false, Found(seg(Releasing))),
                wait(Observed::Changing(seg(Releasing)), Pace::Poll),
            ),
            (
                (false, None, true, false, false, Missing),
                wait(Observed::Drifted { segment_id: "eipsg-abc".into() }, Pace::Backoff(ErrorClass::Blocked)),
            ),
            (
                (false, None, true, false, false, LookFailed(ErrorClass::Transient)),
                wait(Observed::LookFailed, Pace::Backoff(ErrorClass::Transient)),
            ),
            (
                (false, None, true, false, false, LookFailed(ErrorClass::Terminal)),
                wait(Observed::LookFailed, Pace::Backoff(ErrorClass::Terminal)),
            ),
            // Adoption never allocates.
            (
                (true, None, false, false, false, Found(seg(Allocated))),
                wait(Observed::Ready(seg(Allocated)), Pace::Resync),
            ),
            (
                (true, None, false, false, false, Missing),
                wait(
                    Observed::AdoptionTargetMissing { segment_id: "eipsg-abc".into() },
                    Pace::Backoff(ErrorClass::Terminal),
                ),
            ),
            (
                (true, None, true, false, false, Missing),
                wait(Observed::Drifted { segment_id: "eipsg-abc".into() }, Pace::Backoff(ErrorClass::Blocked)),
            ),
            (
                (true, None, false, false, false, LookFailed(ErrorClass::Blocked)),
                wait(Observed::LookFailed, Pace::Backoff(ErrorClass::Blocked)),
            ),
            // Deletion, Delete policy: look first.
            ((false, None, true, false, true, Found(seg(Allocated))), release()),
            ((false, Some(Delete), true, false, true, Found(seg(Allocated))), release()),
            (
                (false, None, true, false, true, Found(seg(Releasing))),
                wait(Observed::Releasing(seg(Releasing)), Pace::Poll),
            ),
            (
                (false, None, true, false, true, Found(seg(Allocating))),
                wait(Observed::Changing(seg(Allocating)), Pace::Poll),
            ),
            ((false, None, true, false, true, Found(seg(Released))), released()),
            ((false, None, true, false, true, Missing), released()),
            (
                (false, None, true, false, true, LookFailed(ErrorClass::Transient)),
                wait(Observed::LookFailed, Pace::Backoff(ErrorClass::Transient)),
            ),
            // Nothing ever requested: cleanup succeeds at once, without a call.
            ((false, None, false, false, true, NothingToLookAt), Step::Finish(Finished::NothingAllocated)),
            // A request whose answer was lost: learn the ID with the same token first.
            ((false, None, false, true, true, NothingToLookAt), Step::Allocate { token: String::new() }),
            // Retain: no cloud call, whatever the cloud says.
            (
                (false, Some(Retain), true, false, true, Found(seg(Allocated))),
                Step::Finish(Finished::Retained { segment_id: Some("eipsg-abc".into()) }),
            ),
            (
                (false, Some(Retain), true, false, true, LookFailed(ErrorClass::Terminal)),
                Step::Finish(Finished::Retained { segment_id: Some("eipsg-abc".into()) }),
            ),
            (
                (false, Some(Retain), false, true, true, NothingToLookAt),
                Step::Finish(Finished::Retained { segment_id: None }),
            ),
            // Adopted segments default to Retain; Delete must be asked for.
            (
                (true, None, true, false, true, Found(seg(Allocated))),
                Step::Finish(Finished::Retained { segment_id: Some("eipsg-abc".into()) }),
            ),
            ((true, Some(Delete), true, false, true, Found(seg(Allocated))), release()),
            ((true, Some(Delete), true, false, true, Missing), released()),
        ];
        for ((adopt, policy, recorded, pending, deleting, cloud), want) in rows {
            let (sp, st) = (spec(adopt, policy), status(recorded, pending));
            let got = decide(&Facts { spec: &sp, status: &st, deleting, cloud: &cloud });
            assert_eq!(
                got, want,
                "adopt={adopt} policy={policy:?} recorded={recorded} pending={pending} deleting={deleting} cloud={cloud:?}"
            );
        }
    }

    #[test]
    fn tokens_come_from_the_uid() {
        let step = with_tokens(Step::Release { segment_id: "eipsg-abc".into(), token: String::new() }, "1234-uid");
        assert_eq!(step, Step::Release { segment_id: "eipsg-abc".into(), token: "release-1234-uid".into() });
        assert_eq!(
            with_tokens(Step::Allocate { token: String::new() }, "u"),
            Step::Allocate { token: "alloc-u".into() }
        );
        assert!(allocation_token("0b1c6a4e-8f7e-4d5c-9a1b-2c3d4e5f6a7b").len() <= 64);
    }

    #[test]
    fn backoff_doubles_caps_and_honours_hints() {
        let t = Timings::default();
        let transient = |n| requeue_after(Pace::Backoff(ErrorClass::Transient), n, 0.0, None, &t);
        assert_eq!(transient(1), Duration::from_secs(1));
        assert_eq!(transient(2), Duration::from_secs(2));
        assert_eq!(transient(5), Duration::from_secs(16));
        assert_eq!(transient(30), Duration::from_secs(120));
        assert!(requeue_after(Pace::Backoff(ErrorClass::Transient), 3, 0.99, None, &t) < Duration::from_secs(4));
        assert!(requeue_after(Pace::Backoff(ErrorClass::Transient), 3, 0.99, None, &t) >= Duration::from_millis(3200));
        assert_eq!(
            requeue_after(Pace::Backoff(ErrorClass::Transient), 1, 0.0, Some(Duration::from_secs(7)), &t),
            Duration::from_secs(7)
        );
        assert_eq!(requeue_after(Pace::Backoff(ErrorClass::Blocked), 1, 0.0, None, &t), Duration::from_secs(30));
        assert_eq!(requeue_after(Pace::Backoff(ErrorClass::Blocked), 9, 0.0, None, &t), Duration::from_secs(600));
        assert_eq!(requeue_after(Pace::Backoff(ErrorClass::Terminal), 1, 0.0, None, &t), Duration::from_secs(120));
        assert_eq!(requeue_after(Pace::Poll, 4, 0.5, None, &t), t.poll);
    }

    #[test]
    fn every_release_error_code_has_its_consequence() {
        use crate::cloud::error::classify;
        use AfterRefusedRelease::*;
        let retry = |c| Retry(Pace::Backoff(c));
        // The documented ReleaseEipSegmentAddress table, code by code.
        let rows = [
            ("IncorrectEipStatus", 400, retry(ErrorClass::Transient)),
            ("Forbidden.ChargeTypeIsPrepaid", 400, retry(ErrorClass::Blocked)),
            ("Forbidden", 400, retry(ErrorClass::Terminal)),
            ("TaskConflict.AssociateGlobalAccelerationInstance", 400, retry(ErrorClass::Transient)),
            ("InvalidOperation.DeletionProtection", 400, retry(ErrorClass::Blocked)),
            ("OperationFailed.InstanceNotExist", 400, Confirm),
            ("OperationFailed.EipNumInconsistent", 400, retry(ErrorClass::Blocked)),
            ("OperationFailed.EipStatusInvalid", 400, retry(ErrorClass::Blocked)),
            ("OperationFailed.EipInBwp", 400, retry(ErrorClass::Blocked)),
            ("Forbidden.EipInBwp", 400, retry(ErrorClass::Blocked)),
            ("InvalidAllocationId.NotFound", 404, Confirm),
            ("Forbidden.RegionNotFound", 404, retry(ErrorClass::Terminal)),
            ("InternalError", 500, retry(ErrorClass::Transient)),
        ];
        for (code, status, want) in rows {
            assert_eq!(after_refused_release(classify(code, status).class), want, "{code}");
        }
    }

    #[test]
    fn only_certain_failures_clear_a_pending_allocation() {
        assert!(allocation_may_have_landed(ErrorClass::Transient, false, "Throttling.User"));
        assert!(allocation_may_have_landed(ErrorClass::Transient, true, "Timeout"));
        assert!(!allocation_may_have_landed(ErrorClass::Terminal, false, "InvalidParameter"));
        assert!(!allocation_may_have_landed(ErrorClass::Blocked, false, "QuotaExceeded.Eip"));
    }
}
