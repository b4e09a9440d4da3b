//! The object is being deleted: release its segment once and prove it gone, or keep it (Retain),
//! and only then let the object go. Absence is believed only from the segment's own account.

use crate::apply;
use crate::conditions::{message, reason};
use crate::facts::{Claimant, Outcome};
use crate::moves::{Call, Change, Decision, Event, Next, Pace, Watch};
use crate::pass::{Act, Holding, Pass, record_account, record_cloud_status, record_segment, recorded_cloud_status};
use eipsegment_api::{DeletionPolicy, EipSegmentStatus};
use vpc_api::ErrorClass;
use vpc_api::model::SegmentStatus;

pub(super) fn decide(p: &Pass) -> Decision {
    if p.policy == DeletionPolicy::Retain {
        return retain(p);
    }
    match p.holding() {
        Holding::Nothing => p.finish(p.status.clone(), nothing_allocated()),
        Holding::Gone(id) => p.finish(p.status.clone(), released(&id, p.status.account_id.as_deref())),
        // A request may have created a segment whose ID was never recorded: ask again with the
        // same token to learn it, then release it.
        Holding::Pending => resolve_pending(p),
        // An adoption that was never recorded took nothing on: the segment is not this object's to
        // release.
        Holding::Adopting(id) => {
            let note = format!("segment {id} was never adopted by this object: it is not released");
            p.finish(p.status.clone(), Event::normal("NothingToRelease", "Finalize", note))
        }
        Holding::Unseen(id) | Holding::Named(id) => release(p, &id),
    }
}

fn nothing_allocated() -> Event {
    Event::normal("NothingAllocated", "Finalize", "no segment was ever allocated: nothing to release".into())
}

fn released(id: &str, account: Option<&str>) -> Event {
    let account = account.map(|a| format!(" in account {a}")).unwrap_or_default();
    Event::normal(
        "Released",
        "Finalize",
        format!("segment {id} is released: DescribeEipSegment{account} no longer returns it"),
    )
}

/// Retain: no release. A pending allocation is resolved first, so that what is kept is named.
fn retain(p: &Pass) -> Decision {
    let kept = |id: &str| {
        let account = p.status.account_id.as_deref().map(|a| format!(" (account {a})")).unwrap_or_default();
        Event::normal(
            "Retained",
            "Finalize",
            format!("deletion policy Retain: segment {id}{account} is kept in the cloud"),
        )
    };
    match p.holding() {
        Holding::Pending => match p.f.outcome {
            Some(Outcome::Allocated { segment_id }) => {
                let mut status = p.status.clone();
                status.segment_instance_id = Some(segment_id.clone());
                p.finish(p.succeeded(status), kept(segment_id))
            }
            Some(Outcome::Refused(problem)) if problem.proves_nothing_created => {
                let note = format!(
                    "deletion policy Retain: the cloud's answer to the pending allocation ({}) proves nothing was created",
                    problem.code
                );
                p.finish(p.status.clone(), Event::normal("NothingAllocated", "Finalize", note))
            }
            _ => apply::allocate(p),
        },
        Holding::Gone(id) => p.finish(p.status.clone(), released(&id, p.status.account_id.as_deref())),
        _ if p.status.release_accepted_at.is_some() => release_under_way(p),
        // A release was asked for and its answer may have been lost: the cloud says what is kept.
        Holding::Named(id) if p.status.release_requested_at.is_some() => {
            let account = match p.account() {
                Ok((_, account)) => account,
                Err(decision) => return decision,
            };
            match p.seen(&id, &account, false) {
                Err(decision) => decision,
                Ok(Some(seg)) if seg.status == SegmentStatus::Allocated => p.finish(p.status.clone(), kept(&id)),
                Ok(_) => release_under_way(p),
            }
        }
        Holding::Nothing => p.finish(p.status.clone(), nothing_allocated()),
        Holding::Adopting(id) => {
            let note = format!("segment {id} was never adopted: nothing to keep or release");
            p.finish(p.status.clone(), Event::normal("NothingToRelease", "Finalize", note))
        }
        Holding::Unseen(id) | Holding::Named(id) => p.finish(p.status.clone(), kept(&id)),
    }
}

fn release_under_way(p: &Pass) -> Decision {
    let id = p.status.segment_instance_id.clone().unwrap_or_default();
    let note = format!(
        "deletion policy Retain, but the cloud accepted the release of segment {id} before: a release cannot be \
         undone, so the segment is being released"
    );
    p.finish(p.status.clone(), Event::warning("ReleaseUnderWay", "Finalize", note))
}

/// The replay of a pending allocation while deleting: the ID it names is released next; a refusal
/// that proves nothing was created lets the object go; anything else keeps it and says why.
fn resolve_pending(p: &Pass) -> Decision {
    match p.f.outcome {
        Some(Outcome::Refused(problem)) if problem.proves_nothing_created => {
            let note = format!(
                "the cloud's answer to the pending allocation ({}) proves nothing was created: nothing to release",
                problem.code
            );
            p.finish(p.status.clone(), Event::normal("NothingAllocated", "Finalize", note))
        }
        _ => apply::allocate(p),
    }
}

fn release(p: &Pass, id: &str) -> Decision {
    let claims = match p.claims(id) {
        Ok(claims) => claims,
        Err(need) => return need,
    };
    if let Some(decision) = yield_to_holder(p, id, claims) {
        return decision;
    }
    let (c, account) = match p.account() {
        Ok(found) => found,
        Err(decision) => return decision,
    };
    if let Some(outcome) = p.f.outcome {
        return after_release(p, id, outcome);
    }
    match p.seen(id, &account, false) {
        Err(decision) => decision,
        Ok(None) => absent(p, id, &account),
        Ok(Some(seg)) => {
            let mut status = p.status.clone();
            record_account(&mut status, c, &account);
            record_segment(&mut status, seg);
            present(p, p.succeeded(status), id, &seg.status, claims)
        }
    }
}

/// An object another holds releases nothing; it goes once the holder stays (a holder being deleted
/// settles the segment first, so that neither leaves it to the other).
fn yield_to_holder(p: &Pass, id: &str, claims: &[Claimant]) -> Option<Decision> {
    let owner = p.outranked_by(claims, id)?;
    if owner.deleting {
        return Some(in_use(p, p.status.clone(), id, owner, "holds it and is being deleted"));
    }
    let note = format!("segment {id} belongs to {}/{}: this object releases nothing", owner.namespace, owner.name);
    Some(p.finish(p.o.status.clone(), Event::normal("NotOwner", "Finalize", note)))
}

/// The holder of an allocated segment that a live object also names: never released; let go once
/// that object has taken it over (recorded it in its status, in its own account), so that it is
/// neither released under the other nor left to an object that cannot hold it.
fn hand_over(p: &Pass, status: &EipSegmentStatus, id: &str, claims: &[Claimant]) -> Option<Decision> {
    let live: Vec<&Claimant> = claims.iter().filter(|c| !c.deleting && c.uid != p.o.uid).collect();
    if let Some(heir) = live.iter().find(|c| c.finalized && c.established) {
        let note =
            format!("segment {id} is also named by {}/{}, which keeps it: not released", heir.namespace, heir.name);
        return Some(p.finish(status.clone(), Event::normal("HandedOver", "Finalize", note)));
    }
    live.first().map(|heir| in_use(p, status.clone(), id, heir, "is to take it over (it has not recorded it yet)"))
}

fn in_use(p: &Pass, status: EipSegmentStatus, id: &str, who: &Claimant, why: &str) -> Decision {
    let message = format!("segment {id} is also named by {}/{}, which {why}: waiting for it", who.namespace, who.name);
    let status = p.not_ready(status, reason::SEGMENT_IN_USE, &message);
    p.wait(status, Pace::Backoff { class: ErrorClass::Transient, hint: None })
}

fn present(p: &Pass, status: EipSegmentStatus, id: &str, cloud: &SegmentStatus, claims: &[Claimant]) -> Decision {
    match cloud {
        SegmentStatus::Allocated => hand_over(p, &status, id, claims).unwrap_or_else(|| request_release(p, status, id)),
        SegmentStatus::Released => finish_released(p, status, id),
        SegmentStatus::Releasing => {
            let message = format!("segment {id} is Releasing; waiting for the cloud to confirm");
            p.wait(p.not_ready(status, reason::RELEASING, &message), Pace::Woken)
        }
        // Allocating, or a status this operator does not know: only queries are allowed; the
        // poller keeps looking.
        other => {
            let message = format!("segment {id} is {}: the release waits until it settles", other.as_str());
            p.wait(p.not_ready(status, other.as_str(), &message), Pace::Woken)
        }
    }
}

/// The release, with the token recorded (status and annotation) before the call.
fn request_release(p: &Pass, mut status: EipSegmentStatus, id: &str) -> Decision {
    let token = p.release_token();
    status.release_token = Some(token.clone());
    status.release_requested_at.get_or_insert_with(|| p.now().to_string());
    let mut m = p.act(status, Next::Wait(Pace::Woken));
    m.call = Some(Call::Release { region: p.region().to_string(), segment_id: id.to_string(), token });
    Decision::Act(m)
}

fn after_release(p: &Pass, id: &str, outcome: &Outcome) -> Decision {
    match outcome {
        Outcome::NotAdmitted { after, why } => {
            p.wait(p.not_ready(p.o.status.clone(), reason::RELEASE_QUEUED, why), Pace::Queued(*after))
        }
        Outcome::ReleaseAccepted { request_id } => {
            let mut status = p.succeeded(p.status.clone());
            status.release_accepted_at.get_or_insert_with(|| p.now().to_string());
            record_cloud_status(&mut status, &SegmentStatus::Releasing);
            let status = p.not_ready(status, reason::RELEASING, &message::release_requested(id));
            let mut m = p.act(status, Next::Wait(Pace::Woken));
            m.event = Some(Event::normal(
                "ReleaseRequested",
                "Release",
                format!("release of {id} accepted (RequestId {request_id})"),
            ));
            m.watch = Some(Watch::Changing { segment_id: id.to_string(), change: Change::Releasing });
            Decision::Act(m)
        }
        // Gone already, says the cloud: a fresh look by ID proves it.
        Outcome::Refused(problem) if problem.class == ErrorClass::Gone => {
            let mut m = p.act(p.status.clone(), Next::Wait(Pace::Woken));
            m.watch = Some(Watch::Refresh { segment_id: id.to_string() });
            Decision::Act(m)
        }
        // The refusal may say the last look is out of date (a status that changed since): the next
        // pass decides on a fresh one. A refusal a person must resolve makes the object not Ready,
        // with the cloud's status left as last seen: the segment is still there.
        Outcome::Refused(problem) => {
            let status = match problem.class {
                ErrorClass::Blocked => p.not_ready(p.status.clone(), reason::RELEASE_BLOCKED, &problem.detail),
                ErrorClass::Terminal => p.not_ready(p.status.clone(), reason::RELEASE_FAILED, &problem.detail),
                _ => p.status.clone(),
            };
            let mut decision = p.fail(status, problem, Act::Release);
            if let Decision::Act(m) = &mut decision {
                m.watch = Some(Watch::LookAgain { segment_id: id.to_string() });
            }
            decision
        }
        Outcome::Allocated { .. } => p.wait(p.status.clone(), Pace::Woken),
    }
}

/// Proven absent from the segment's own account. Gone, unless it was never seen since its
/// allocation (the cloud's read side may lag the call) or its account was never recorded.
fn absent(p: &Pass, id: &str, account: &str) -> Decision {
    let status = p.succeeded(p.status.clone());
    let requested = p.status.release_accepted_at.is_some();
    if matches!(p.holding(), Holding::Unseen(_)) && !requested {
        let message = format!(
            "segment {id} has not been seen in account {account} since it was allocated (or since this object was \
             restored): it is released once it is visible. If it no longer exists, set spec.deletionPolicy to Retain \
             to let this object go"
        );
        return expect_allocation(p, status, id, &message);
    }
    let account_known = p.o.status.account_id.is_some() || p.o.annotations.account_id.is_some();
    let releasing =
        recorded_cloud_status(&p.o.status) == Some(SegmentStatus::Releasing) && p.o.status.release_token.is_some();
    if !account_known && !releasing {
        let message = format!(
            "segment {id} is not visible to account {account}, and the account it lives in was never recorded: it is \
             not taken as released. Give back the credentials of its account, or set spec.deletionPolicy to Retain"
        );
        return p.wait(
            p.not_ready(status, reason::ACCOUNT_UNKNOWN, &message),
            Pace::Backoff { class: ErrorClass::Blocked, hint: None },
        );
    }
    finish_released(p, status, id)
}

/// An allocation not yet visible: the poller keeps looking until it is (also after a restart, when
/// it never saw the allocation begin).
pub(super) fn expect_allocation(p: &Pass, status: EipSegmentStatus, id: &str, message: &str) -> Decision {
    let mut m = p.act(p.not_ready(status, reason::ALLOCATING, message), Next::Wait(Pace::Woken));
    m.watch = Some(Watch::Expect { segment_id: id.to_string(), change: Change::Allocating });
    Decision::Act(m)
}

fn finish_released(p: &Pass, mut status: EipSegmentStatus, id: &str) -> Decision {
    // Its CIDR comes only from a look: without one, it was never seen.
    let seen = p.o.status.segment.is_some() || p.status.release_accepted_at.is_some();
    if !seen && status.segment.is_none() {
        let account = status.account_id.clone().unwrap_or_default();
        let note = format!("segment {id} does not exist in account {account}: nothing to release");
        return p.finish(status, Event::normal("NothingToRelease", "Finalize", note));
    }
    record_cloud_status(&mut status, &SegmentStatus::Released);
    let event = released(id, status.account_id.as_deref());
    p.finish(status, event)
}
