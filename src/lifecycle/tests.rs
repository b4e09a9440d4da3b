//! Decision tables: each state the object can be in, against what the cloud, the credentials and
//! the other objects say. The model checker (tests/modelcheck.rs) walks the interleavings; these
//! rows pin the single decisions and their messages.

use std::time::Duration;

use super::*;
use crate::conditions::ready_reason;
use eipsegment_api::{DeletionPolicy, EipSegmentSpec, EipSegmentStatus, SecretReference, SegmentAddress};
use vpc_api::ErrorClass;
use vpc_api::errors::classify;
use vpc_api::model::{Segment, SegmentStatus};

const A: &str = "111";
const B: &str = "222";
const ID: &str = "eipsg-abc";

fn spec() -> EipSegmentSpec {
    EipSegmentSpec {
        region_id: "cn-hangzhou".into(),
        eip_mask: Some(28),
        credentials_secret_ref: Some(SecretReference { name: "keys".into() }),
        ..Default::default()
    }
}

fn object() -> Object {
    Object {
        namespace: "ns".into(),
        name: "web".into(),
        uid: "u1".into(),
        created: "2026-01-01T00:00:01Z".into(),
        generation: Some(1),
        spec: spec(),
        now: "2026-01-01T00:01:00Z".into(),
        tokens_remembered_since: "2026-01-01T00:00:00Z".into(),
        ..Default::default()
    }
}

/// The endpoint the world's credentials send allocations to.
const ENDPOINT: &str = "https://vpc.cn-hangzhou.aliyuncs.com";

/// The allocation request `pending()` stands for, as recorded with its marker.
fn first_request() -> String {
    crate::replay::request_of(A, ENDPOINT, &spec().allocate_request("alloc-u1"))
}

/// An object whose segment is recorded (and seen) in account `A`.
fn recorded() -> Object {
    let mut o = object();
    o.status = EipSegmentStatus {
        segment_instance_id: Some(ID.into()),
        account_id: Some(A.into()),
        credentials_source: Some("Secret/keys".into()),
        allocation_token: Some("alloc-u1".into()),
        cloud_status: Some("Allocated".into()),
        ..Default::default()
    };
    o
}

/// An object whose allocation was requested in account `A` and whose answer was lost.
fn pending() -> Object {
    let mut o = object();
    o.status = EipSegmentStatus {
        account_id: Some(A.into()),
        credentials_source: Some("Secret/keys".into()),
        allocation_token: Some("alloc-u1".into()),
        allocation_requested_at: Some("2026-01-01T00:00:02Z".into()),
        allocation_request: Some(first_request()),
        ..Default::default()
    };
    o
}

fn deleting(mut o: Object) -> Object {
    o.deleting = true;
    o
}

fn retain(mut o: Object) -> Object {
    o.spec.deletion_policy = Some(DeletionPolicy::Retain);
    o
}

fn seg(status: SegmentStatus) -> Segment {
    Segment::sample(ID, status)
}

/// What the rest of the world says when asked.
#[derive(Clone)]
struct World {
    claims: Vec<Claimant>,
    credentials: Credentials,
    seen: Seen,
    members: Result<Vec<SegmentAddress>, Problem>,
}

fn world(seen: Seen) -> World {
    World {
        claims: Vec::new(),
        credentials: Credentials {
            source: Source::Secret("keys".into()),
            account: Ok(A.into()),
            terminating: false,
            endpoint: ENDPOINT.into(),
        },
        seen,
        members: Ok(members(&["47.0.0.2", "47.0.0.1"])),
    }
}

fn members(addresses: &[&str]) -> Vec<SegmentAddress> {
    addresses
        .iter()
        .map(|a| SegmentAddress { allocation_id: format!("eip-{}", a.replace('.', "")), ip_address: a.to_string() })
        .collect()
}

fn in_account(account: &str, seen: Seen) -> World {
    let mut w = world(seen);
    w.credentials.account = Ok(account.into());
    w
}

/// Decides, answering every need from `w`; returns the needs asked and the move.
fn decide_in(o: &Object, w: &World, outcome: Option<&Outcome>) -> (Vec<Need>, Move) {
    let look = Look::Seen { account: w.credentials.account.clone().unwrap_or_default(), seen: w.seen.clone() };
    let mut asked = Vec::new();
    loop {
        let has = |n: fn(&Need) -> bool| asked.iter().any(n);
        let facts = Facts {
            object: o,
            claims: has(|n| matches!(n, Need::Claims { .. })).then_some(w.claims.as_slice()),
            credentials: has(|n| matches!(n, Need::Credentials(_))).then_some(&w.credentials),
            look: has(|n| matches!(n, Need::Look { .. })).then_some(&look),
            members: has(|n| matches!(n, Need::Members { .. })).then_some(&w.members),
            outcome,
        };
        match decide(&facts) {
            Decision::Act(m) => return (asked, m),
            Decision::Need(n) => {
                assert!(!asked.contains(&n), "{n:?} asked twice");
                asked.push(n);
            }
        }
    }
}

fn decide_for(o: &Object, w: &World) -> Move {
    decide_in(o, w, None).1
}

/// The move after the call of `m`, made on the object as `m` wrote it (a call the rate did not admit
/// was not made, and nothing of it written).
fn after(o: &Object, m: &Move, w: &World, outcome: Outcome) -> Move {
    if matches!(outcome, Outcome::NotAdmitted { .. }) {
        return decide_in(o, w, Some(&outcome)).1;
    }
    let mut written = o.clone();
    written.status = m.status.clone();
    written.annotations = m.identity.clone();
    decide_in(&written, w, Some(&outcome)).1
}

fn reason(m: &Move) -> Option<&str> {
    ready_reason(&m.status)
}

fn event(m: &Move) -> Option<&str> {
    m.event.as_ref().map(|e| e.reason)
}

fn problem(code: &str, status: u16) -> Problem {
    let c = classify(code, status);
    let proves = c.refusal == vpc_api::Refusal::InvalidRequest;
    Problem { proves_nothing_created: proves, ..Problem::new(c.class, code, c.advice) }
}

#[test]
fn a_new_object_records_its_account_and_token_before_it_allocates() {
    let (asked, m) = decide_in(&object(), &world(Seen::Absent), None);
    assert_eq!(asked, [Need::Credentials(SourceChoice::Exactly(Source::Secret("keys".into())))]);
    let Some(Call::Allocate(request)) = &m.call else { panic!("{m:?}") };
    assert_eq!(request.client_token, "alloc-u1");
    assert_eq!(m.status.account_id.as_deref(), Some(A));
    assert_eq!(m.status.credentials_source.as_deref(), Some("Secret/keys"));
    assert!(m.status.allocation_requested_at.is_some());
    assert_eq!(m.identity.allocation_token.as_deref(), Some("alloc-u1"));
    assert_eq!(m.identity.account_id.as_deref(), Some(A));
    assert_eq!(m.secret, SecretUse::Hold("keys".into()), "the Secret is held before the call");
    assert_eq!(event(&m), Some("AllocationRequested"));

    let accepted = after(&object(), &m, &world(Seen::Absent), Outcome::Allocated { segment_id: ID.into() });
    assert_eq!(accepted.status.segment_instance_id.as_deref(), Some(ID));
    assert!(accepted.status.allocation_requested_at.is_some(), "the marker stays until the segment is seen");
    assert_eq!(accepted.identity.segment_id.as_deref(), Some(ID));
    assert_eq!(accepted.watch, Some(Watch::Changing { segment_id: ID.into(), change: Change::Allocating }));
    assert_eq!(reason(&accepted), Some("Allocating"));
    assert_eq!(accepted.call, None);
}

#[test]
fn without_a_reference_the_namespace_default_or_the_operators_own_is_chosen() {
    let mut o = object();
    o.spec.credentials_secret_ref = None;
    let (asked, _) = decide_in(&o, &world(Seen::Absent), None);
    assert_eq!(asked, [Need::Credentials(SourceChoice::NamespaceDefaultOrOperator)]);
    // Once recorded, that source and no other.
    let mut o = recorded();
    o.spec.credentials_secret_ref = None;
    o.status.credentials_source = Some("Operator".into());
    let (asked, _) = decide_in(&o, &world(Seen::Present(seg(SegmentStatus::Allocated))), None);
    assert!(asked.contains(&Need::Credentials(SourceChoice::Exactly(Source::Operator))), "{asked:?}");
}

#[test]
fn the_segment_is_ready_once_seen_and_the_marker_goes_then() {
    let mut o = pending();
    o.status.segment_instance_id = Some(ID.into());
    let m = decide_for(&o, &world(Seen::Present(seg(SegmentStatus::Allocating))));
    assert_eq!((reason(&m), m.status.allocation_requested_at.as_deref()), (Some("Allocating"), None));
    let m = decide_for(&recorded(), &world(Seen::Present(seg(SegmentStatus::Allocated))));
    let members_next = Next::Wait(Pace::Queued(Duration::ZERO));
    assert_eq!((reason(&m), event(&m), &m.next), (Some("Allocated"), Some("Allocated"), &members_next));
    assert_eq!(m.status.segment.as_deref(), Some("47.0.0.0/28"));
    // Not yet visible right after the allocation: neither drift nor released.
    let m = decide_for(&o, &world(Seen::Absent));
    assert_eq!(reason(&m), Some("Allocating"));
    assert!(m.status.allocation_requested_at.is_some());
    let m = decide_for(&deleting(o), &world(Seen::Absent));
    assert_eq!((reason(&m), &m.next, &m.call), (Some("Allocating"), &Next::Wait(Pace::Woken), &None));
}

#[test]
fn credentials_of_another_account_neither_act_nor_prove_absence() {
    for o in [recorded(), deleting(recorded()), pending(), deleting(pending())] {
        let m = decide_for(&o, &in_account(B, Seen::Absent));
        assert_eq!(m.call, None, "{o:?}");
        assert_eq!(m.next, Next::Wait(Pace::Backoff { class: ErrorClass::Terminal, hint: None }));
        assert_eq!(m.status.last_error.as_ref().map(|e| e.code.as_str()), Some("AccountMismatch"));
        assert_eq!(event(&m), Some("AccountMismatch"));
        assert!(m.status.last_error.as_ref().unwrap().message.contains("lives in account 111"));
    }
    // Retain needs no account (unless an allocation is pending).
    assert_eq!(decide_for(&deleting(retain(recorded())), &in_account(B, Seen::Absent)).next, Next::Finish);
}

#[test]
fn missing_credentials_keep_the_object_and_say_why() {
    let mut w = world(Seen::Absent);
    w.credentials.account =
        Err(Problem::new(ErrorClass::Terminal, "NoCredentials", "NoCredentials: Secret ns/keys does not exist"));
    let m = decide_for(&deleting(recorded()), &w);
    assert_eq!((m.call.is_none(), event(&m)), (true, Some("CredentialsUnavailable")));
    assert!(matches!(m.next, Next::Wait(Pace::Backoff { class: ErrorClass::Terminal, .. })));
    // A Secret being deleted allocates nothing new, but still serves a pending allocation.
    let mut w = world(Seen::Absent);
    w.credentials.terminating = true;
    assert_eq!(decide_for(&object(), &w).call, None);
    assert!(matches!(decide_for(&pending(), &w).call, Some(Call::Allocate(_))));
}

#[test]
fn the_pending_marker_goes_only_with_proof() {
    let m = decide_for(&pending(), &world(Seen::Absent));
    let Some(Call::Allocate(request)) = &m.call else { panic!("a pending allocation is replayed: {m:?}") };
    assert_eq!(request.client_token, "alloc-u1");
    assert_eq!(event(&m), None, "a replay is not a new request");
    let kept = [
        ("SignatureDoesNotMatch", 400),
        ("InvalidAccessKeyId.NotFound", 404),
        ("InvalidSecurityToken.Expired", 400),
        ("InvalidTimeStamp.Expired", 400),
        ("IdempotentParameterMismatch", 400),
        ("QuotaExceeded.Eip", 400),
        ("InsufficientBalance", 400),
        ("Forbbiden", 403),
        ("Forbidden.RAM", 403),
        ("Throttling.User", 400),
        ("OperationFailed.LastTokenProcessing", 400),
        ("InternalError", 500),
    ];
    for (code, status) in kept {
        for o in [pending(), deleting(pending())] {
            let refused = after(&o, &m, &world(Seen::Absent), Outcome::Refused(problem(code, status)));
            assert!(refused.status.allocation_requested_at.is_some(), "{code} cleared the marker");
            assert_ne!(refused.next, Next::Finish, "{code} let a pending object go");
            assert_eq!(refused.status.last_error.as_ref().map(|e| e.code.as_str()), Some(code));
        }
    }
    for (code, status) in [("InvalidParameter", 400), ("InvalidRegion.NotSupport", 400)] {
        let refused = after(&pending(), &m, &world(Seen::Absent), Outcome::Refused(problem(code, status)));
        assert_eq!(refused.status.allocation_requested_at, None, "{code} proves nothing was created");
        assert_eq!(event(&refused), Some("AllocationFailed"));
        let gone = after(&deleting(pending()), &m, &world(Seen::Absent), Outcome::Refused(problem(code, status)));
        assert_eq!((&gone.next, event(&gone)), (&Next::Finish, Some("NothingAllocated")));
    }
}

/// A refusal proves nothing about a first request it does not answer: one sent elsewhere, made
/// before the cloud's memory of the token, or not on record at all.
#[test]
fn a_refusal_of_another_request_than_the_first_proves_nothing() {
    let refusal = Outcome::Refused(problem("InvalidRegion.NotSupport", 400));
    let mut elsewhere = world(Seen::Absent);
    elsewhere.credentials.endpoint = "https://vpc-private.example".into();
    let mut forgotten = pending();
    forgotten.tokens_remembered_since = "2026-01-01T00:00:03Z".into();
    let mut unrecorded = pending();
    unrecorded.status.allocation_request = None;
    let mut edited = pending();
    edited.spec.eip_mask = Some(27);
    let cases = [
        (pending(), elsewhere, "is not the first request"),
        (forgotten, world(Seen::Absent), "older than the cloud's memory"),
        (unrecorded, world(Seen::Absent), "is not on record"),
        (edited, world(Seen::Absent), "is not the first request"),
    ];
    for (o, w, why) in cases {
        for o in [o.clone(), deleting(o.clone()), deleting(retain(o))] {
            let m = decide_for(&o, &w);
            assert!(matches!(m.call, Some(Call::Allocate(_))), "{m:?}");
            assert_eq!(m.status.allocation_request, o.status.allocation_request, "the first request stays on record");
            let refused = after(&o, &m, &w, refusal.clone());
            assert!(refused.status.allocation_requested_at.is_some(), "{why}: the marker was cleared");
            assert_ne!(refused.next, Next::Finish, "{why}: the object was let go");
            let message = &refused.status.last_error.as_ref().unwrap().message;
            assert!(message.contains(why) && message.contains("release it by hand"), "{message}");
        }
    }
    // The first request itself records what it is.
    let m = decide_for(&object(), &world(Seen::Absent));
    assert_eq!(m.status.allocation_request, Some(first_request()));
}

#[test]
fn retain_with_a_pending_allocation_names_what_it_keeps() {
    let o = deleting(retain(pending()));
    let m = decide_for(&o, &world(Seen::Absent));
    assert!(matches!(m.call, Some(Call::Allocate(_))), "the ID is resolved first: {m:?}");
    let kept = after(&o, &m, &world(Seen::Absent), Outcome::Allocated { segment_id: ID.into() });
    assert_eq!((&kept.next, event(&kept)), (&Next::Finish, Some("Retained")));
    assert!(kept.event.as_ref().unwrap().note.contains(ID));
    let failing = after(&o, &m, &world(Seen::Absent), Outcome::Refused(problem("InternalError", 500)));
    assert_ne!(failing.next, Next::Finish);
    // After the cloud accepted the release, Retain cannot undo it and says so.
    let mut o = deleting(retain(recorded()));
    o.status.release_accepted_at = Some("2026-01-01T00:00:30Z".into());
    let m = decide_for(&o, &world(Seen::Present(seg(SegmentStatus::Releasing))));
    assert_eq!((&m.next, event(&m)), (&Next::Finish, Some("ReleaseUnderWay")));
    assert!(m.event.as_ref().unwrap().note.contains("cannot be"));
}

#[test]
fn deletion_releases_once_and_finishes_on_proven_absence() {
    let o = deleting(recorded());
    let m = decide_for(&o, &world(Seen::Present(seg(SegmentStatus::Allocated))));
    assert_eq!(
        m.call,
        Some(Call::Release { region: "cn-hangzhou".into(), segment_id: ID.into(), token: "release-u1".into() })
    );
    assert_eq!(m.identity.release_token.as_deref(), Some("release-u1"), "the token is kept before the call");
    let accepted = after(&o, &m, &world(Seen::Absent), Outcome::ReleaseAccepted { request_id: "R".into() });
    assert!(accepted.status.release_accepted_at.is_some());
    assert_eq!((reason(&accepted), event(&accepted)), (Some("Releasing"), Some("ReleaseRequested")));
    let mut releasing = o.clone();
    releasing.status = accepted.status.clone();
    let m = decide_for(&releasing, &world(Seen::Present(seg(SegmentStatus::Releasing))));
    assert_eq!((m.call.is_none(), &m.next), (true, &Next::Wait(Pace::Woken)), "no second release while Releasing");
    let m = decide_for(&releasing, &world(Seen::Absent));
    assert_eq!((&m.next, event(&m)), (&Next::Finish, Some("Released")));
    assert_eq!(m.status.cloud_status.as_deref(), Some("Released"), "the proof is recorded before the object goes");
    assert_eq!(m.secret, SecretUse::LetGo("keys".into()));
    assert_eq!(m.watch, Some(Watch::Forget { segment_ids: vec![ID.into()] }));
    // A recorded release needs nothing more: not even credentials.
    let mut gone = releasing;
    gone.status = m.status;
    let (asked, m) = decide_in(&gone, &world(Seen::Absent), None);
    assert_eq!((asked, m.next), (vec![], Next::Finish));
}

#[test]
fn a_status_the_operator_does_not_know_keeps_the_deletion_waiting() {
    let m = decide_for(&deleting(recorded()), &world(Seen::Present(seg(SegmentStatus::Other("Maintaining".into())))));
    assert_eq!((m.call.is_none(), reason(&m), &m.next), (true, Some("Maintaining"), &Next::Wait(Pace::Woken)));
}

#[test]
fn a_recorded_cloud_status_the_cloud_does_not_use_proves_nothing() {
    // Only the cloud's own "Released" is a recorded proof; the operator's "Missing", another case
    // or a word of a hand edit is not, and the segment is looked at before anything goes.
    for word in ["Missing", "released", "RELEASED", "Released ", "Gone"] {
        let mut o = deleting(recorded());
        o.status.segment = Some("47.0.0.0/28".into());
        o.status.cloud_status = Some(word.into());
        let (asked, m) = decide_in(&o, &world(Seen::Present(seg(SegmentStatus::Allocated))), None);
        assert!(asked.iter().any(|n| matches!(n, Need::Look { .. })), "{word:?}: {asked:?}");
        assert!(matches!(m.call, Some(Call::Release { .. })), "{word:?}: {m:?}");
        // Absent from its recorded account: released, and proven by the look, not by the word.
        let m = decide_for(&o, &world(Seen::Absent));
        assert_eq!((event(&m), m.status.cloud_status.as_deref()), (Some("Released"), Some("Released")), "{word:?}");
    }
    let mut recorded_gone = deleting(recorded());
    recorded_gone.status.cloud_status = Some("Released".into());
    let (asked, m) = decide_in(&recorded_gone, &world(Seen::Present(seg(SegmentStatus::Allocated))), None);
    assert_eq!((asked, m.next, m.call), (vec![], Next::Finish, None), "the cloud's own word is the proof");
}

#[test]
fn every_release_error_code_has_its_consequence() {
    let o = deleting(recorded());
    let m = decide_for(&o, &world(Seen::Present(seg(SegmentStatus::Allocated))));
    // The documented ReleaseEipSegmentAddress table, code by code: (code, HTTP status, pace, event).
    let rows: [(&str, u16, Option<ErrorClass>, Option<&str>); 13] = [
        ("IncorrectEipStatus", 400, Some(ErrorClass::Transient), None),
        ("Forbidden.ChargeTypeIsPrepaid", 400, Some(ErrorClass::Blocked), Some("ReleaseBlocked")),
        ("Forbidden", 400, Some(ErrorClass::Terminal), Some("ReleaseFailed")),
        ("TaskConflict.AssociateGlobalAccelerationInstance", 400, Some(ErrorClass::Transient), None),
        ("InvalidOperation.DeletionProtection", 400, Some(ErrorClass::Blocked), Some("ReleaseBlocked")),
        ("OperationFailed.InstanceNotExist", 400, None, None),
        ("OperationFailed.EipNumInconsistent", 400, Some(ErrorClass::Blocked), Some("ReleaseBlocked")),
        ("OperationFailed.EipStatusInvalid", 400, Some(ErrorClass::Blocked), Some("ReleaseBlocked")),
        ("OperationFailed.EipInBwp", 400, Some(ErrorClass::Blocked), Some("ReleaseBlocked")),
        ("Forbidden.EipInBwp", 400, Some(ErrorClass::Blocked), Some("ReleaseBlocked")),
        ("InvalidAllocationId.NotFound", 404, None, None),
        ("Forbidden.RegionNotFound", 404, Some(ErrorClass::Terminal), Some("ReleaseFailed")),
        ("InternalError", 500, Some(ErrorClass::Transient), None),
    ];
    for (code, status, class, want_event) in rows {
        let refused = after(&o, &m, &world(Seen::Absent), Outcome::Refused(problem(code, status)));
        assert_ne!(refused.next, Next::Finish, "{code}: a refused release never lets the object go at once");
        match class {
            // Gone, says the cloud: a fresh look by ID proves it.
            None => assert_eq!(refused.watch, Some(Watch::Refresh { segment_id: ID.into() }), "{code}"),
            Some(class) => {
                assert_eq!(refused.next, Next::Wait(Pace::Backoff { class, hint: None }), "{code}");
                assert_eq!(refused.status.last_error.as_ref().map(|e| e.code.as_str()), Some(code));
                assert_eq!(event(&refused), want_event, "{code}");
            }
        }
    }
}

#[test]
fn a_refused_release_queued_by_the_rate_says_so() {
    let o = deleting(recorded());
    let m = decide_for(&o, &world(Seen::Present(seg(SegmentStatus::Allocated))));
    let queued =
        after(&o, &m, &world(Seen::Absent), Outcome::NotAdmitted { after: Duration::from_secs(3), why: "rate".into() });
    assert_eq!(
        (reason(&queued), &queued.next),
        (Some("ReleaseQueued"), &Next::Wait(Pace::Queued(Duration::from_secs(3))))
    );
    assert_eq!(queued.status.release_token, None, "nothing of the call was written");
}

fn claimant(name: &str, created: &str, established: bool, deleting: bool) -> Claimant {
    Claimant {
        namespace: "ns".into(),
        name: name.into(),
        uid: format!("uid-{name}"),
        created: created.into(),
        established,
        deleting,
        finalized: true,
        adopts: name != "owner" && name != "older",
        account: established.then(|| A.into()),
        ready_reason: None,
        failing: None,
    }
}

/// An object, created after the holder, that names the segment to adopt it.
fn adopter() -> Object {
    let mut o = object();
    o.spec.eip_mask = None;
    o.spec.segment_instance_id = Some(ID.into());
    o.created = "2026-01-01T00:00:09Z".into();
    o
}

/// The segment, allocated, with these other objects naming it.
fn claimed_by(claims: Vec<Claimant>) -> World {
    let mut w = world(Seen::Present(seg(SegmentStatus::Allocated)));
    w.claims = claims;
    w
}

#[test]
fn an_adopter_of_a_held_segment_is_refused_and_releases_nothing() {
    // Adopting a segment another object holds: refused, with the holder named.
    let w = claimed_by(vec![claimant("owner", "2026-01-01T00:00:01Z", true, false)]);
    let (asked, m) = decide_in(&adopter(), &w, None);
    assert_eq!(asked, [Need::Claims { segment_id: ID.into() }], "refused before any credentials or look");
    assert_eq!((reason(&m), event(&m)), (Some("SegmentInUse"), Some("ClaimRefused")));
    assert!(condition_message(&m).contains("ns/owner"));
    assert_eq!(m.status.segment_instance_id, None, "a refused claim is not recorded");
    // Deleting it releases nothing, needs nothing.
    let mut adopter = deleting(adopter());
    adopter.spec.deletion_policy = Some(DeletionPolicy::Delete);
    let (asked, m) = decide_in(&adopter, &w, None);
    assert_eq!((asked, m.call.is_none(), &m.next, event(&m)), (vec![], true, &Next::Finish, Some("NothingToRelease")));
}

#[test]
fn a_deleted_holder_hands_its_segment_over_to_a_live_claimant() {
    // The holder, deleted while another live object names its segment, waits for it to take the
    // segment over (the claimant is no longer refused meanwhile), then lets go without a release.
    let mut w = claimed_by(vec![claimant("adopter", "2026-01-01T00:00:09Z", false, false)]);
    let m = decide_for(&deleting(recorded()), &w);
    assert_eq!((m.call.is_none(), reason(&m)), (true, Some("SegmentInUse")));
    assert_ne!(m.next, Next::Finish);
    let hw = claimed_by(vec![claimant("owner", "2026-01-01T00:00:01Z", true, true)]);
    assert_eq!(reason(&decide_for(&adopter(), &hw)), Some("Adopted"), "a holder being deleted does not refuse");
    (w.claims[0].established, w.claims[0].account) = (true, Some(A.into()));
    let m = decide_for(&deleting(recorded()), &w);
    assert_eq!((m.call.is_none(), &m.next, event(&m)), (true, &Next::Finish, Some("HandedOver")));
    // One the operator has not reconciled yet could vanish unseen: the holder waits for it.
    w.claims[0].finalized = false;
    let m = decide_for(&deleting(recorded()), &w);
    assert_eq!((m.call.is_none(), reason(&m)), (true, Some("SegmentInUse")));
    assert_ne!(m.next, Next::Finish);
    // A deleting claimant does not keep the segment: the holder releases it.
    w.claims = vec![claimant("adopter", "2026-01-01T00:00:09Z", false, true)];
    assert!(matches!(decide_for(&deleting(recorded()), &w).call, Some(Call::Release { .. })));
    // And a deleting claimant that recorded it never leaves before a deleting holder has settled
    // the segment.
    let mut adopter = deleting(recorded());
    adopter.spec.eip_mask = None;
    adopter.spec.segment_instance_id = Some(ID.into());
    adopter.spec.deletion_policy = Some(DeletionPolicy::Delete);
    adopter.created = "2026-01-01T00:00:09Z".into();
    w.claims = vec![claimant("owner", "2026-01-01T00:00:01Z", true, true)];
    let m = decide_for(&adopter, &w);
    assert_eq!((m.call.is_none(), reason(&m)), (true, Some("SegmentInUse")));
    assert_ne!(m.next, Next::Finish);
}

#[test]
fn a_recorded_claim_comes_first_then_the_own_segment_then_the_older_object() {
    // A restored object (its own segment, by its annotations, not recorded yet) comes before an
    // adopter that has not recorded it either, even an older one.
    let mut restored = object();
    restored.uid = "restored-uid".into();
    restored.created = "2026-01-01T00:00:30Z".into();
    restored.annotations = Identity { segment_id: Some(ID.into()), account_id: Some(A.into()), ..Default::default() };
    let mut w = claimed_by(vec![claimant("adopter", "2026-01-01T00:00:09Z", false, false)]);
    assert_eq!(reason(&decide_for(&restored, &w)), Some("Allocated"));
    // But one of its namespace that took the segment over meanwhile (recorded it) keeps it.
    w.claims[0].established = true;
    assert_eq!(reason(&decide_for(&restored, &w)), Some("SegmentInUse"));
    // Another namespace's adopter never does: the restored owner takes its segment back.
    let w = claimed_by(vec![elsewhere(claimant("adopter", "2026-01-01T00:00:09Z", true, false))]);
    assert_eq!(reason(&decide_for(&restored, &w)), Some("Allocated"));
    let mut adopter = elsewhere(claimant("adopter", "2026-01-01T00:00:09Z", true, false));
    adopter.namespace = "ns".into();
    let mut away = adopter_object_elsewhere();
    away.status.segment_instance_id = Some(ID.into());
    let owner = Claimant { namespace: "ns".into(), adopts: false, established: false, ..adopter };
    assert_eq!(reason(&decide_for(&away, &claimed_by(vec![owner]))), Some("SegmentInUse"), "and the adopter yields");
    // Two claims recorded at once: the older object holds.
    let w = claimed_by(vec![claimant("older", "2026-01-01T00:00:00Z", true, false)]);
    assert_eq!(reason(&decide_for(&recorded(), &w)), Some("SegmentInUse"));
}

fn condition_message(m: &Move) -> String {
    conditions::get(&m.status, conditions::READY).map(|c| c.message.clone()).unwrap_or_default()
}

/// An object restored from its manifest: a new UID, its identity in annotations only.
fn restored_with(release_token: Option<&str>) -> Object {
    let mut o = object();
    o.uid = "new-uid".into();
    o.annotations = Identity {
        segment_id: Some(ID.into()),
        account_id: Some(A.into()),
        credentials_source: Some("Secret/keys".into()),
        allocation_token: Some("alloc-u1".into()),
        release_token: release_token.map(str::to_string),
    };
    o
}

#[test]
fn a_restored_object_adopts_its_own_segment_with_its_own_tokens() {
    let mut o = restored_with(Some("release-u1"));
    let m = decide_for(&o, &world(Seen::Present(seg(SegmentStatus::Allocated))));
    assert_eq!(m.call, None, "no second allocation");
    assert_eq!((m.status.segment_instance_id.as_deref(), reason(&m)), (Some(ID), Some("Allocated")));
    let m = decide_for(&deleting(o.clone()), &world(Seen::Present(seg(SegmentStatus::Allocated))));
    assert!(matches!(&m.call, Some(Call::Release { token, .. }) if token == "release-u1"), "{m:?}");
    // Restored while the allocation was pending: the same token is replayed.
    o.annotations.segment_id = None;
    let m = decide_for(&o, &world(Seen::Absent));
    assert!(matches!(&m.call, Some(Call::Allocate(r)) if r.client_token == "alloc-u1"), "{m:?}");
    // A restore into another account's credentials is refused like any other mismatch.
    let m = decide_for(&o, &in_account(B, Seen::Absent));
    assert_eq!(m.call, None);
}

#[test]
fn drift_and_adoption_failures_are_reported_once() {
    let m = decide_for(&recorded(), &world(Seen::Absent));
    assert_eq!((reason(&m), event(&m)), (Some("SegmentMissing"), Some("Drifted")));
    let mut again = recorded();
    again.status = m.status.clone();
    assert_eq!(event(&decide_for(&again, &world(Seen::Absent))), None);
    let mut adopter = object();
    adopter.spec.eip_mask = None;
    adopter.spec.segment_instance_id = Some(ID.into());
    let m = decide_for(&adopter, &world(Seen::Absent));
    assert_eq!((reason(&m), event(&m)), (Some("AdoptionTargetNotFound"), Some("AdoptionFailed")));
    // Deleting it: nothing of it was ever held.
    let m = decide_for(&deleting(adopter), &world(Seen::Absent));
    assert_eq!((&m.next, event(&m)), (&Next::Finish, Some("NothingToRelease")));
}

#[test]
fn absence_without_a_recorded_account_is_not_proof() {
    let mut legacy = deleting(recorded());
    legacy.status.account_id = None;
    legacy.status.credentials_source = None;
    let m = decide_for(&legacy, &world(Seen::Absent));
    assert_eq!((m.call.is_none(), reason(&m)), (true, Some("AccountUnknown")));
    assert_ne!(m.next, Next::Finish);
    // Seen in the current account: the account is recorded from the sight.
    let m = decide_for(&legacy, &world(Seen::Present(seg(SegmentStatus::Allocated))));
    assert_eq!(m.status.account_id.as_deref(), Some(A));
}

#[test]
fn nothing_requested_finishes_without_any_call_or_credentials() {
    let (asked, m) = decide_in(&deleting(object()), &world(Seen::Absent), None);
    assert_eq!((asked, &m.next, event(&m)), (vec![], &Next::Finish, Some("NothingAllocated")));
}

#[test]
fn the_member_eips_are_read_once_right_after_the_segment_becomes_ready() {
    // Ready first, at once: the member list comes in the pass right after.
    let (asked, ready) = decide_in(&recorded(), &world(Seen::Present(seg(SegmentStatus::Allocated))), None);
    assert!(!asked.iter().any(|n| matches!(n, Need::Members { .. })), "{asked:?}");
    assert_eq!((reason(&ready), event(&ready)), (Some("Allocated"), Some("Allocated")));
    assert_eq!((ready.next, ready.status.first_address.as_deref()), (Next::Wait(Pace::Queued(Duration::ZERO)), None));
    let mut became_ready = recorded();
    became_ready.status = ready.status.clone();
    let (asked, m) = decide_in(&became_ready, &world(Seen::Present(seg(SegmentStatus::Allocated))), None);
    assert!(asked.contains(&Need::Members { segment_id: ID.into() }), "{asked:?}");
    assert_eq!((reason(&m), event(&m)), (Some("Allocated"), None));
    let (first, last) = (m.status.first_address.as_deref(), m.status.last_address.as_deref());
    assert_eq!((first, last), (Some("47.0.0.1"), Some("47.0.0.2")), "in address order");
    assert_eq!(m.status.addresses, members(&["47.0.0.1", "47.0.0.2"]));
    // Recorded: the next drift check does not ask again.
    let mut settled = recorded();
    settled.status = m.status.clone();
    let (asked, again) = decide_in(&settled, &world(Seen::Present(seg(SegmentStatus::Allocated))), None);
    assert!(!asked.iter().any(|n| matches!(n, Need::Members { .. })), "{asked:?}");
    assert_eq!(again.status, m.status);
    // Not while it is still Allocating.
    let (asked, _) = decide_in(&recorded(), &world(Seen::Present(seg(SegmentStatus::Allocating))), None);
    assert!(!asked.iter().any(|n| matches!(n, Need::Members { .. })), "{asked:?}");
}

#[test]
fn a_member_list_that_cannot_be_read_leaves_the_segment_ready_and_says_why() {
    let mut w = world(Seen::Present(seg(SegmentStatus::Allocated)));
    let mut ready = recorded();
    ready.status = decide_for(&recorded(), &w).status;
    for (class, code, pace_class, want_event) in [
        (ErrorClass::Transient, "Malformed", ErrorClass::Transient, None),
        (ErrorClass::Terminal, "Forbidden.RAM", ErrorClass::Terminal, Some("MembersUnavailable")),
    ] {
        w.members = Err(Problem::new(class, code, "no list"));
        let m = decide_for(&ready, &w);
        assert_eq!(reason(&m), Some("Allocated"), "{code}: the segment is there all the same");
        assert_eq!(m.status.first_address, None);
        let error = m.status.last_error.as_ref().unwrap();
        assert_eq!((error.code.as_str(), error.action.as_str()), (code, "DescribeMembers"));
        assert_eq!(conditions::get(&m.status, conditions::SYNCED).unwrap().reason, class.as_str());
        assert_eq!(m.next, Next::Wait(Pace::Backoff { class: pace_class, hint: None }), "{code}: read again later");
        assert_eq!(event(&m), want_event, "{code}");
    }
}

#[test]
fn a_missing_segment_keeps_no_addresses() {
    let mut o = recorded();
    o.status.first_address = Some("47.0.0.1".into());
    o.status.last_address = Some("47.0.0.2".into());
    o.status.addresses = members(&["47.0.0.1", "47.0.0.2"]);
    let m = decide_for(&o, &world(Seen::Absent));
    assert_eq!((reason(&m), m.status.cloud_status.as_deref()), (Some("SegmentMissing"), Some("Missing")));
    assert_eq!((m.status.first_address, m.status.addresses.len()), (None, 0));
}

#[test]
fn a_refused_release_says_so_in_ready_and_keeps_the_cloud_status_as_seen() {
    let o = deleting(recorded());
    let m = decide_for(&o, &world(Seen::Present(seg(SegmentStatus::Allocated))));
    assert!(matches!(m.call, Some(Call::Release { .. })));
    for (code, status, want) in [
        ("OperationFailed.EipStatusInvalid", 400, Some("ReleaseBlocked")),
        ("Forbidden", 400, Some("ReleaseFailed")),
        ("InternalError", 500, None),
    ] {
        let refused = after(
            &o,
            &m,
            &world(Seen::Present(seg(SegmentStatus::Allocated))),
            Outcome::Refused(problem(code, status)),
        );
        assert_eq!(refused.status.cloud_status.as_deref(), Some("Allocated"), "{code}");
        match want {
            Some(want) => {
                let ready = conditions::get(&refused.status, conditions::READY).unwrap();
                assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", want), "{code}");
                let error = refused.status.last_error.as_ref().unwrap();
                assert_eq!(ready.message, error.message, "{code}: Ready says what to do");
            }
            None => assert_eq!(reason(&refused), reason(&m), "{code}: a passing error changes no condition"),
        }
    }
}

#[test]
fn released_is_never_the_event_when_nothing_was_allocated() {
    let mut adopting = object();
    adopting.spec.eip_mask = None;
    adopting.spec.segment_instance_id = Some(ID.into());
    adopting.spec.deletion_policy = Some(DeletionPolicy::Delete);
    let mut never_seen = recorded();
    never_seen.status.allocation_requested_at = None;
    never_seen.status.cloud_status = None;
    for (o, w) in [
        (deleting(object()), world(Seen::Absent)),
        (deleting(adopting), world(Seen::Absent)),
        (deleting(never_seen), world(Seen::Absent)),
    ] {
        let m = decide_for(&o, &w);
        assert_eq!(m.next, Next::Finish, "{o:?}");
        assert_ne!(event(&m), Some("Released"), "{o:?}");
        assert_ne!(m.status.cloud_status.as_deref(), Some("Released"), "{o:?}");
    }
    // A refusal that proves the pending allocation created nothing.
    let o = deleting(pending());
    let m = decide_for(&o, &world(Seen::Absent));
    let refused = after(&o, &m, &world(Seen::Absent), Outcome::Refused(problem("QuotaExceeded.Eip", 400)));
    if refused.next == Next::Finish {
        assert_eq!(event(&refused), Some("NothingAllocated"));
    }
}

#[test]
fn a_call_the_quota_does_not_admit_keeps_a_restored_objects_identity() {
    let restored = restored_with(None);
    let queued = || Outcome::NotAdmitted { after: Duration::from_secs(3), why: "quota".into() };
    let w = world(Seen::Present(seg(SegmentStatus::Allocated)));
    // Deleting: the release waits its turn; its identity annotations stay as they are, so that the
    // next pass still knows the segment (without them it would find nothing to release).
    let o = deleting(restored.clone());
    let m = decide_for(&o, &w);
    assert!(matches!(m.call, Some(Call::Release { .. })), "{m:?}");
    let waiting = after(&o, &m, &w, queued());
    assert_eq!(reason(&waiting), Some("ReleaseQueued"));
    assert_eq!(waiting.identity, restored.annotations, "nothing of the identity is dropped");
    // Restored while its allocation was pending: the replay waits, and keeps its token.
    let mut pending = restored.clone();
    pending.annotations.segment_id = None;
    let w = world(Seen::Absent);
    let m = decide_for(&pending, &w);
    assert!(matches!(m.call, Some(Call::Allocate(_))), "{m:?}");
    let waiting = after(&pending, &m, &w, queued());
    assert_eq!(reason(&waiting), Some("AllocationQueued"));
    assert_eq!(waiting.identity, pending.annotations);
}

// ---- tenants ----

fn elsewhere(mut claimant: Claimant) -> Claimant {
    claimant.namespace = "other-team".into();
    claimant
}

/// An adopter in another namespace than the segment's owner.
fn adopter_object_elsewhere() -> Object {
    let mut o = adopter();
    o.namespace = "other-team".into();
    o
}

fn shared_cluster() -> Allowance {
    Allowance {
        rule: "tenants".into(),
        operator_credentials: false,
        allocate: true,
        min_eip_mask: 28,
        adopt: false,
        adopt_with_delete: false,
    }
}

#[test]
fn another_namespace_never_holds_a_release_back_nor_receives_the_segment() {
    // A claimant in another namespace, live, unestablished: the holder releases at once.
    let w = claimed_by(vec![elsewhere(claimant("adopter", "2026-01-01T00:00:09Z", false, false))]);
    let m = decide_for(&deleting(recorded()), &w);
    assert!(matches!(m.call, Some(Call::Release { .. })), "{:?}", m.next);
    // Established there (it took the segment while unheld): still not handed over.
    let mut established = elsewhere(claimant("adopter", "2026-01-01T00:00:09Z", true, false));
    established.adopts = true;
    let m = decide_for(&deleting(recorded()), &claimed_by(vec![established]));
    assert!(matches!(m.call, Some(Call::Release { .. })));
    // And the other namespace's adopter stays refused while the holder is being deleted.
    let holder = elsewhere(claimant("owner", "2026-01-01T00:00:01Z", true, true));
    let m = decide_for(&adopter(), &claimed_by(vec![holder]));
    assert_eq!((reason(&m), m.status.segment_instance_id.as_deref()), (Some("SegmentInUse"), None));
}

#[test]
fn an_heir_that_cannot_take_the_segment_does_not_hold_the_release_back() {
    let cannot = [
        (Some("AdoptionTargetNotFound"), None),
        (Some("PolicyRefused"), None),
        (Some("SegmentInUse"), Some(ErrorClass::Terminal)),
    ];
    for (ready_reason, failing) in cannot {
        let mut heir = claimant("adopter", "2026-01-01T00:00:09Z", false, false);
        (heir.ready_reason, heir.failing) = (ready_reason.map(String::from), failing);
        let m = decide_for(&deleting(recorded()), &claimed_by(vec![heir]));
        assert!(matches!(m.call, Some(Call::Release { .. })), "{ready_reason:?} {failing:?}");
    }
    // A passing failure (throttling) is not a refusal: still waited for.
    let mut heir = claimant("adopter", "2026-01-01T00:00:09Z", false, false);
    heir.failing = Some(ErrorClass::Transient);
    let m = decide_for(&deleting(recorded()), &claimed_by(vec![heir.clone()]));
    assert_eq!((m.call.is_none(), reason(&m)), (true, Some("SegmentInUse")));
    // An heir established in another account does not receive it.
    (heir.established, heir.account, heir.failing) = (true, Some(B.into()), None);
    let m = decide_for(&deleting(recorded()), &claimed_by(vec![heir]));
    assert!(matches!(m.call, Some(Call::Release { .. })));
    // Nor does any heir where the namespace may not adopt.
    let mut holder = deleting(recorded());
    holder.allowance = shared_cluster();
    let heir = claimant("adopter", "2026-01-01T00:00:09Z", false, false);
    assert!(matches!(decide_for(&holder, &claimed_by(vec![heir])).call, Some(Call::Release { .. })));
}

#[test]
fn the_tenancy_policy_refuses_before_any_cloud_call() {
    let refused = |o: &Object, words: &str| {
        let (asked, m) = decide_in(o, &world(Seen::Absent), None);
        assert_eq!((asked, &m.call), (vec![], &None), "nothing is gathered, nothing called");
        assert_eq!((reason(&m), event(&m)), (Some("PolicyRefused"), Some("PolicyRefused")));
        assert!(condition_message(&m).contains(words), "{}", condition_message(&m));
        assert!(condition_message(&m).contains("rule \"tenants\""), "names the rule");
    };
    let mut large = object();
    (large.allowance, large.spec.eip_mask) = (shared_cluster(), Some(24));
    refused(&large, "allocate a /24 segment: the largest it may ask for is a /28");
    let mut no_allocation = object();
    no_allocation.allowance = Allowance { allocate: false, ..shared_cluster() };
    refused(&no_allocation, "allocate segments");
    let mut adoption = adopter();
    adoption.allowance = shared_cluster();
    refused(&adoption, "adopt segments it did not allocate");
    adoption.allowance = Allowance { adopt: true, ..shared_cluster() };
    adoption.spec.deletion_policy = Some(DeletionPolicy::Delete);
    refused(&adoption, "set spec.deletionPolicy to Retain");
    // A pending allocation is resolved whatever the policy says now.
    let mut resolving = pending();
    resolving.allowance = Allowance { allocate: false, ..shared_cluster() };
    assert!(matches!(decide_for(&resolving, &world(Seen::Absent)).call, Some(Call::Allocate(_))));
}

#[test]
fn an_adoption_the_policy_keeps_from_releasing_is_retained() {
    let mut o = deleting(recorded());
    (o.spec.eip_mask, o.spec.segment_instance_id) = (None, Some(ID.into()));
    o.spec.deletion_policy = Some(DeletionPolicy::Delete);
    o.allowance = Allowance { adopt: true, ..shared_cluster() };
    let (asked, m) = decide_in(&o, &world(Seen::Present(seg(SegmentStatus::Allocated))), None);
    assert_eq!((asked, &m.call, &m.next, event(&m)), (vec![], &None, &Next::Finish, Some("Retained")));
    assert!(m.event.unwrap().note.contains("tenancy policy (rule \"tenants\")"));
    assert_eq!(m.status.deletion_policy.as_deref(), Some("Retain"), "status says which policy is in force");
}

#[test]
fn without_the_operators_credentials_only_the_namespace_default_secret_is_asked_for() {
    let mut o = object();
    o.spec.credentials_secret_ref = None;
    o.allowance = shared_cluster();
    let (asked, _) = decide_in(&o, &world(Seen::Absent), None);
    assert_eq!(asked, [Need::Credentials(SourceChoice::NamespaceDefaultOnly { rule: "tenants".into() })]);
}

#[test]
fn unproven_annotations_are_reported_once_and_cleared_when_gone() {
    let mut o = recorded();
    o.unproven = vec![identity::CREDENTIALS_SOURCE.to_string()];
    let m = decide_for(&o, &world(Seen::Present(seg(SegmentStatus::Allocated))));
    let told = conditions::get(&m.status, conditions::IDENTITY_PROVEN).unwrap();
    assert_eq!((told.status.as_str(), told.reason.as_str()), ("False", "UnprovenAnnotations"));
    let warning = m.warning.as_ref().map(|e| (e.reason, e.note.contains(identity::CREDENTIALS_SOURCE)));
    assert_eq!(warning, Some(("UnprovenIdentity", true)));
    o.status = m.status.clone();
    let again = decide_for(&o, &world(Seen::Present(seg(SegmentStatus::Allocated))));
    assert_eq!(again.warning, None, "told once");
    o.unproven.clear();
    let cleared = decide_for(&o, &world(Seen::Present(seg(SegmentStatus::Allocated))));
    assert_eq!(conditions::get(&cleared.status, conditions::IDENTITY_PROVEN).unwrap().status, "True");
}

#[test]
fn an_object_outranked_by_another_namespace_goes_without_waiting() {
    // The holder elsewhere is being deleted: it hands nothing over across namespaces, so this
    // object, which releases nothing, does not wait for it to settle.
    let mut claim = deleting(adopter_object_elsewhere());
    claim.spec.deletion_policy = Some(DeletionPolicy::Delete);
    claim.status.segment_instance_id = Some(ID.into());
    claim.status.account_id = Some(A.into());
    let holder = Claimant { namespace: "ns".into(), ..claimant("owner", "2026-01-01T00:00:01Z", true, true) };
    let m = decide_for(&claim, &claimed_by(vec![holder]));
    assert_eq!((m.call.is_none(), &m.next, event(&m)), (true, &Next::Finish, Some("NotOwner")));
}
