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

pub(super) fn decide(pass: &Pass) -> Decision {
    if pass.policy == DeletionPolicy::Retain {
        return retain(pass);
    }
    match pass.holding() {
        Holding::Nothing => pass.finish(pass.starting_status.clone(), nothing_allocated()),
        Holding::Gone(id) => {
            pass.finish(pass.starting_status.clone(), released(&id, pass.starting_status.account_id.as_deref()))
        }
        // A request may have created a segment whose ID was never recorded: ask again with the
        // same token to learn it, then release it.
        Holding::Pending => resolve_pending(pass),
        // An adoption that was never recorded took nothing on: the segment is not this object's to
        // release.
        Holding::Adopting(id) => {
            let note = format!("segment {id} was never adopted by this object: it is not released");
            pass.finish(pass.starting_status.clone(), Event::normal("NothingToRelease", "Finalize", note))
        }
        Holding::Unseen(id) | Holding::Named(id) => release(pass, &id),
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
fn retain(pass: &Pass) -> Decision {
    let kept = |id: &str| {
        let account = pass.starting_status.account_id.as_deref().map(|a| format!(" (account {a})")).unwrap_or_default();
        let why = match pass.policy_capped {
            true => format!(
                "the tenancy policy (rule {:?}) does not let an adoption in namespace {} release its segment",
                pass.object.allowance.rule, pass.object.namespace
            ),
            false => "deletion policy Retain".to_string(),
        };
        Event::normal("Retained", "Finalize", format!("{why}: segment {id}{account} is kept in the cloud"))
    };
    match pass.holding() {
        Holding::Pending => match pass.facts.outcome {
            Some(Outcome::Allocated { segment_id }) => {
                let mut status = pass.starting_status.clone();
                status.segment_instance_id = Some(segment_id.clone());
                pass.finish(pass.succeeded(status), kept(segment_id))
            }
            Some(Outcome::Refused(problem)) if pass.refusal_proves_nothing_created(problem) => {
                let note = format!(
                    "deletion policy Retain: the cloud's answer to the pending allocation ({}) proves nothing was created",
                    problem.code
                );
                pass.finish(pass.starting_status.clone(), Event::normal("NothingAllocated", "Finalize", note))
            }
            _ => apply::allocate(pass),
        },
        Holding::Gone(id) => {
            pass.finish(pass.starting_status.clone(), released(&id, pass.starting_status.account_id.as_deref()))
        }
        _ if pass.starting_status.release_accepted_at.is_some() => release_under_way(pass),
        // A release was asked for and its answer may have been lost: the cloud says what is kept.
        Holding::Named(id) if pass.starting_status.release_requested_at.is_some() => {
            let account = match pass.account() {
                Ok((_, account)) => account,
                Err(decision) => return decision,
            };
            match pass.seen(&id, &account, false) {
                Err(decision) => decision,
                Ok(Some(seg)) if seg.status == SegmentStatus::Allocated => {
                    pass.finish(pass.starting_status.clone(), kept(&id))
                }
                Ok(_) => release_under_way(pass),
            }
        }
        Holding::Nothing => pass.finish(pass.starting_status.clone(), nothing_allocated()),
        Holding::Adopting(id) => {
            let note = format!("segment {id} was never adopted: nothing to keep or release");
            pass.finish(pass.starting_status.clone(), Event::normal("NothingToRelease", "Finalize", note))
        }
        Holding::Unseen(id) | Holding::Named(id) => pass.finish(pass.starting_status.clone(), kept(&id)),
    }
}

fn release_under_way(pass: &Pass) -> Decision {
    let id = pass.starting_status.segment_instance_id.clone().unwrap_or_default();
    let note = format!(
        "deletion policy Retain, but the cloud accepted the release of segment {id} before: a release cannot be \
         undone, so the segment is being released"
    );
    pass.finish(pass.starting_status.clone(), Event::warning("ReleaseUnderWay", "Finalize", note))
}

/// The replay of a pending allocation while deleting: the ID it names is released next; a refusal
/// that proves nothing was created lets the object go; anything else keeps it and says why.
fn resolve_pending(pass: &Pass) -> Decision {
    match pass.facts.outcome {
        Some(Outcome::Refused(problem)) if pass.refusal_proves_nothing_created(problem) => {
            let note = format!(
                "the cloud's answer to the pending allocation ({}) proves nothing was created: nothing to release",
                problem.code
            );
            pass.finish(pass.starting_status.clone(), Event::normal("NothingAllocated", "Finalize", note))
        }
        _ => apply::allocate(pass),
    }
}

fn release(pass: &Pass, id: &str) -> Decision {
    let claims = match pass.claims(id) {
        Ok(claims) => claims,
        Err(need) => return need,
    };
    if let Some(decision) = yield_to_holder(pass, id, claims) {
        return decision;
    }
    let (credentials, account) = match pass.account() {
        Ok(found) => found,
        Err(decision) => return decision,
    };
    if let Some(outcome) = pass.facts.outcome {
        return after_release(pass, id, outcome);
    }
    match pass.seen(id, &account, false) {
        Err(decision) => decision,
        Ok(None) => absent(pass, id, &account),
        Ok(Some(seg)) => {
            let mut status = pass.starting_status.clone();
            record_account(&mut status, credentials, &account);
            record_segment(&mut status, seg);
            present(pass, pass.succeeded(status), id, &seg.status, claims)
        }
    }
}

/// An object another holds releases nothing; it goes once the holder stays (a holder of its own
/// namespace being deleted settles the segment first, so that neither leaves it to the other; one
/// of another namespace never hands it over, so there is nothing to wait for).
fn yield_to_holder(pass: &Pass, id: &str, claims: &[Claimant]) -> Option<Decision> {
    let owner = pass.outranked_by(claims, id)?;
    if owner.deleting && owner.namespace == pass.object.namespace {
        return Some(in_use(pass, pass.starting_status.clone(), id, owner, "holds it and is being deleted"));
    }
    let note = format!("segment {id} belongs to {}/{}: this object releases nothing", owner.namespace, owner.name);
    Some(pass.finish(pass.object.status.clone(), Event::normal("NotOwner", "Finalize", note)))
}

/// The holder of an allocated segment that a live object of its own namespace (allowed to adopt)
/// also names: not released; let go once that object has taken it over (recorded it in its status,
/// in the segment's account), so that it is neither released under the other nor left to an object
/// that cannot hold it. An heir that shows it cannot take it on (its credentials fail, act for
/// another account, do not see the segment, or the policy refuses it) no longer holds the release
/// back, and another namespace's objects never do.
fn hand_over(pass: &Pass, status: &EipSegmentStatus, id: &str, claims: &[Claimant]) -> Option<Decision> {
    let object = pass.object;
    let heirs: Vec<&Claimant> = claims
        .iter()
        .filter(|c| !c.deleting && c.uid != object.uid && c.namespace == object.namespace && object.allowance.adopt)
        .collect();
    let same_account = |c: &Claimant| c.account.is_some() && c.account == status.account_id;
    if let Some(heir) = heirs.iter().find(|c| c.finalized && c.established && same_account(c)) {
        let note =
            format!("segment {id} is also named by {}/{}, which keeps it: not released", heir.namespace, heir.name);
        return Some(pass.finish(status.clone(), Event::normal("HandedOver", "Finalize", note)));
    }
    heirs
        .iter()
        .find(|c| !(c.established && c.finalized) && may_still_take(c))
        .map(|heir| in_use(pass, status.clone(), id, heir, "is to take it over (it has not recorded it yet)"))
}

/// An heir that has not shown it cannot take the segment on: no lasting failure, no refusal.
fn may_still_take(heir: &Claimant) -> bool {
    let cannot =
        [reason::ADOPTION_TARGET_NOT_FOUND, reason::POLICY_REFUSED, reason::SEGMENT_MISSING, reason::ACCOUNT_UNKNOWN];
    let refused = heir.ready_reason.as_deref().is_some_and(|r| cannot.contains(&r));
    let failing = heir.failing.is_some_and(|class| class != ErrorClass::Transient);
    !refused && !failing
}

fn in_use(pass: &Pass, status: EipSegmentStatus, id: &str, who: &Claimant, why: &str) -> Decision {
    let message = format!("segment {id} is also named by {}/{}, which {why}: waiting for it", who.namespace, who.name);
    let status = pass.not_ready(status, reason::SEGMENT_IN_USE, &message);
    pass.wait(status, Pace::Backoff { class: ErrorClass::Transient, hint: None })
}

fn present(pass: &Pass, status: EipSegmentStatus, id: &str, cloud: &SegmentStatus, claims: &[Claimant]) -> Decision {
    match cloud {
        SegmentStatus::Allocated => {
            hand_over(pass, &status, id, claims).unwrap_or_else(|| request_release(pass, status, id))
        }
        SegmentStatus::Released => finish_released(pass, status, id),
        SegmentStatus::Releasing => {
            let message = format!("segment {id} is Releasing; waiting for the cloud to confirm");
            pass.wait(pass.not_ready(status, reason::RELEASING, &message), Pace::Woken)
        }
        // Allocating, or a status this operator does not know: only queries are allowed; the
        // poller keeps looking.
        other => {
            let message = format!("segment {id} is {}: the release waits until it settles", other.as_str());
            pass.wait(pass.not_ready(status, other.as_str(), &message), Pace::Woken)
        }
    }
}

/// The release, with the token recorded (status and annotation) before the call.
fn request_release(pass: &Pass, mut status: EipSegmentStatus, id: &str) -> Decision {
    let token = pass.release_token();
    status.release_token = Some(token.clone());
    status.release_requested_at.get_or_insert_with(|| pass.now().to_string());
    let mut decided = pass.act(status, Next::Wait(Pace::Woken));
    decided.call = Some(Call::Release { region: pass.region().to_string(), segment_id: id.to_string(), token });
    Decision::Act(decided)
}

fn after_release(pass: &Pass, id: &str, outcome: &Outcome) -> Decision {
    match outcome {
        Outcome::NotAdmitted { after, why } => {
            pass.wait(pass.not_ready(pass.object.status.clone(), reason::RELEASE_QUEUED, why), Pace::Queued(*after))
        }
        Outcome::ReleaseAccepted { request_id } => {
            let mut status = pass.succeeded(pass.starting_status.clone());
            status.release_accepted_at.get_or_insert_with(|| pass.now().to_string());
            record_cloud_status(&mut status, &SegmentStatus::Releasing);
            let status = pass.not_ready(status, reason::RELEASING, &message::release_requested(id));
            let mut decided = pass.act(status, Next::Wait(Pace::Woken));
            decided.event = Some(Event::normal(
                "ReleaseRequested",
                "Release",
                format!("release of {id} accepted (RequestId {request_id})"),
            ));
            decided.watch = Some(Watch::Changing { segment_id: id.to_string(), change: Change::Releasing });
            Decision::Act(decided)
        }
        // Gone already, says the cloud: a fresh look by ID proves it.
        Outcome::Refused(problem) if problem.class == ErrorClass::Gone => {
            let mut decided = pass.act(pass.starting_status.clone(), Next::Wait(Pace::Woken));
            decided.watch = Some(Watch::Refresh { segment_id: id.to_string() });
            Decision::Act(decided)
        }
        // The refusal may say the last look is out of date (a status that changed since): the next
        // pass decides on a fresh one. A refusal a person must resolve makes the object not Ready,
        // with the cloud's status left as last seen: the segment is still there.
        Outcome::Refused(problem) => {
            let status = match problem.class {
                ErrorClass::Blocked => {
                    pass.not_ready(pass.starting_status.clone(), reason::RELEASE_BLOCKED, &problem.detail)
                }
                ErrorClass::Terminal => {
                    pass.not_ready(pass.starting_status.clone(), reason::RELEASE_FAILED, &problem.detail)
                }
                _ => pass.starting_status.clone(),
            };
            let mut decision = pass.fail(status, problem, Act::Release);
            if let Decision::Act(decided) = &mut decision {
                decided.watch = Some(Watch::LookAgain { segment_id: id.to_string() });
            }
            decision
        }
        Outcome::Allocated { .. } => pass.wait(pass.starting_status.clone(), Pace::Woken),
    }
}

/// Proven absent from the segment's own account. Gone, unless it was never seen since its
/// allocation (the cloud's read side may lag the call) or its account was never recorded.
fn absent(pass: &Pass, id: &str, account: &str) -> Decision {
    let status = pass.succeeded(pass.starting_status.clone());
    let requested = pass.starting_status.release_accepted_at.is_some();
    if matches!(pass.holding(), Holding::Unseen(_)) && !requested {
        let message = format!(
            "segment {id} has not been seen in account {account} since it was allocated (or since this object was \
             restored): it is released once it is visible. If it no longer exists, set spec.deletionPolicy to Retain \
             to let this object go"
        );
        return expect_allocation(pass, status, id, &message);
    }
    let account_known = pass.object.status.account_id.is_some() || pass.object.annotations.account_id.is_some();
    let releasing = recorded_cloud_status(&pass.object.status) == Some(SegmentStatus::Releasing)
        && pass.object.status.release_token.is_some();
    if !account_known && !releasing {
        let message = format!(
            "segment {id} is not visible to account {account}, and the account it lives in was never recorded: it is \
             not taken as released. Give back the credentials of its account, or set spec.deletionPolicy to Retain"
        );
        return pass.wait(
            pass.not_ready(status, reason::ACCOUNT_UNKNOWN, &message),
            Pace::Backoff { class: ErrorClass::Blocked, hint: None },
        );
    }
    finish_released(pass, status, id)
}

/// An allocation not yet visible: the poller keeps looking until it is (also after a restart, when
/// it never saw the allocation begin).
pub(super) fn expect_allocation(pass: &Pass, status: EipSegmentStatus, id: &str, message: &str) -> Decision {
    let mut decided = pass.act(pass.not_ready(status, reason::ALLOCATING, message), Next::Wait(Pace::Woken));
    decided.watch = Some(Watch::Expect { segment_id: id.to_string(), change: Change::Allocating });
    Decision::Act(decided)
}

fn finish_released(pass: &Pass, mut status: EipSegmentStatus, id: &str) -> Decision {
    // Its CIDR comes only from a look: without one, it was never seen.
    let seen = pass.object.status.segment.is_some() || pass.starting_status.release_accepted_at.is_some();
    if !seen && status.segment.is_none() {
        let account = status.account_id.clone().unwrap_or_default();
        let note = format!("segment {id} does not exist in account {account}: nothing to release");
        return pass.finish(status, Event::normal("NothingToRelease", "Finalize", note));
    }
    record_cloud_status(&mut status, &SegmentStatus::Released);
    let event = released(id, status.account_id.as_deref());
    pass.finish(status, event)
}
