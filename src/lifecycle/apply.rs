//! The object wants its segment: allocate it, adopt it, or keep it under watch.

use crate::conditions::{is_ready, message, reason, set_ready};
use crate::facts::{Claimant, Outcome, Problem};
use crate::moves::{Call, Change, Decision, Event, Pace, Watch};
use crate::pass::{Act, Holding, Pass, record_account, record_cloud_status, record_missing, record_segment};
use crate::replay;
use vpc_api::ErrorClass;
use vpc_api::model::{Segment, SegmentStatus};

pub(super) fn decide(pass: &Pass) -> Decision {
    match pass.holding() {
        // The tenancy policy is asked before anything new is taken on; a pending allocation is
        // resolved whatever it says now.
        Holding::Nothing => pass.refusal_to_allocate().map_or_else(|| allocate(pass), |why| pass.refuse_by_policy(why)),
        Holding::Adopting(id) => {
            pass.refusal_to_adopt().map_or_else(|| watch(pass, &id), |why| pass.refuse_by_policy(why))
        }
        Holding::Pending => allocate(pass),
        Holding::Unseen(id) | Holding::Named(id) | Holding::Gone(id) => watch(pass, &id),
    }
}

/// A new allocation, or the replay of one whose answer was lost (same token: the same segment).
pub(super) fn allocate(pass: &Pass) -> Decision {
    let (credentials, account) = match pass.account() {
        Ok(found) => found,
        Err(decision) => return decision,
    };
    if let Some(outcome) = pass.facts.outcome {
        return after_allocate(pass, outcome);
    }
    if credentials.terminating && pass.holding() == Holding::Nothing {
        return secret_terminating(pass, credentials);
    }
    let mut status = pass.starting_status.clone();
    let token = pass.allocation_token();
    let first = status.allocation_requested_at.is_none() && pass.holding() == Holding::Nothing;
    let request = pass.object.spec.allocate_request(&token);
    status.allocation_token = Some(token.clone());
    if status.allocation_requested_at.is_none() {
        status.allocation_requested_at = Some(pass.now().to_string());
        status.allocation_request = Some(replay::request_of(&account, &credentials.endpoint, &request));
    }
    record_account(&mut status, credentials, &account);
    let mut decided = pass.act(status, crate::moves::Next::Wait(Pace::Woken));
    decided.call = Some(Call::Allocate(request));
    if first {
        let note = format!(
            "requesting a /{} segment in {} (account {account})",
            pass.object.spec.eip_mask.unwrap_or(28),
            pass.region()
        );
        decided.event = Some(Event::normal("AllocationRequested", "Allocate", note));
    }
    Decision::Act(decided)
}

/// A Secret being deleted cannot be held, so no segment comes to depend on it.
fn secret_terminating(pass: &Pass, credentials: &crate::Credentials) -> Decision {
    let detail = format!(
        "SecretTerminating: the credentials {} is being deleted: no new segment is allocated with it",
        credentials.source
    );
    let problem = crate::facts::Problem::new(ErrorClass::Blocked, "SecretTerminating", &detail);
    pass.fail(pass.starting_status.clone(), &problem, Act::Credentials)
}

/// What the allocation's answer means. The pending marker goes only with proof: the segment is
/// seen later, or the cloud's refusal of the token proves nothing was created.
pub(super) fn after_allocate(pass: &Pass, outcome: &Outcome) -> Decision {
    let mut status = pass.starting_status.clone();
    match outcome {
        Outcome::NotAdmitted { after, why } => {
            pass.wait(pass.not_ready(pass.object.status.clone(), reason::ALLOCATION_QUEUED, why), Pace::Queued(*after))
        }
        Outcome::Allocated { segment_id } => {
            status.segment_instance_id = Some(segment_id.clone());
            record_cloud_status(&mut status, &SegmentStatus::Allocating);
            let status = pass.not_ready(pass.succeeded(status), reason::ALLOCATING, &message::allocating(segment_id));
            let mut decided = pass.act(status, crate::moves::Next::Wait(Pace::Woken));
            decided.watch = Some(Watch::Changing { segment_id: segment_id.clone(), change: Change::Allocating });
            Decision::Act(decided)
        }
        Outcome::Refused(problem) => match pass.refusal_verdict(problem) {
            replay::Verdict::NothingCreated => {
                status.allocation_requested_at = None;
                status.allocation_request = None;
                pass.fail(status, problem, Act::Allocate)
            }
            replay::Verdict::SaysNothing => pass.fail(status, problem, Act::Allocate),
            replay::Verdict::AnotherRequest(why) => {
                let advice = replay::advice(&why, status.account_id.as_deref());
                let detail = format!("{} ({advice})", problem.detail);
                pass.fail(status, &Problem { detail, ..problem.clone() }, Act::Allocate)
            }
        },
        // Not an answer to an allocation: look again.
        Outcome::ReleaseAccepted { .. } => pass.wait(status, Pace::Woken),
    }
}

/// A named segment: refuse it if another object holds it, otherwise look and record.
fn watch(pass: &Pass, id: &str) -> Decision {
    let claims = match pass.claims(id) {
        Ok(claims) => claims,
        Err(need) => return need,
    };
    // A holder being deleted hands its segment to a live claimant of its own namespace, which may
    // then take it; another namespace's waits until the holder is gone.
    let hands_over = |owner: &&Claimant| owner.deleting && owner.namespace == pass.object.namespace;
    if let Some(owner) = pass.outranked_by(claims, id).filter(|owner| !hands_over(owner)) {
        return refused(pass, id, owner);
    }
    let (credentials, account) = match pass.account() {
        Ok(found) => found,
        Err(decision) => return decision,
    };
    match pass.seen(id, &account, true) {
        Err(decision) => decision,
        Ok(None) => absent(pass, id, &account),
        Ok(Some(seg)) => {
            let mut status = pass.starting_status.clone();
            record_account(&mut status, credentials, &account);
            present(pass, status, seg)
        }
    }
}

/// Another object holds the segment: this one does not act on it and says who does.
fn refused(pass: &Pass, id: &str, owner: &Claimant) -> Decision {
    let message = format!(
        "segment {id} is held by {}/{}, which named it first: this object does not act on it. Delete this object, \
         or delete {}/{} to hand the segment over",
        owner.namespace, owner.name, owner.namespace, owner.name
    );
    let event = ("ClaimRefused", "Adopt");
    let mut decided =
        pass.stand(pass.object.status.clone(), reason::SEGMENT_IN_USE, message, ErrorClass::Blocked, event);
    decided.identity = pass.object.annotations.clone();
    decided.secret = crate::moves::SecretUse::Unchanged;
    decided.watch = Some(Watch::Forget { segment_ids: vec![id.to_string()] });
    Decision::Act(decided)
}

fn present(pass: &Pass, mut status: eipsegment_api::EipSegmentStatus, seg: &Segment) -> Decision {
    record_segment(&mut status, seg);
    let status = pass.succeeded(status);
    if seg.status != SegmentStatus::Allocated {
        let message = format!("segment {} is {}", seg.instance_id, seg.status.as_str());
        return pass.wait(pass.not_ready(status, seg.status.as_str(), &message), Pace::Woken);
    }
    let (reason, message) = if pass.object.spec.adopts() {
        (reason::ADOPTED, message::adopted(&seg.instance_id, &seg.segment))
    } else {
        (reason::ALLOCATED, message::allocated(&seg.instance_id, &seg.segment))
    };
    let mut status = status;
    set_ready(&mut status, true, reason, &message, pass.now());
    let event = (!is_ready(&pass.object.status)).then(|| Event::normal(reason, "Observe", message));
    if status.first_address.is_none() {
        if !is_ready(&pass.object.status) {
            // Ready is told at once and the member list read in the next pass, so that the objects
            // of a storm do not wait behind their reads.
            let mut decided = pass.act(status, crate::moves::Next::Wait(Pace::Queued(std::time::Duration::ZERO)));
            decided.event = event;
            return Decision::Act(decided);
        }
        match pass.members(&seg.instance_id) {
            Err(need) => return need,
            Ok(Err(problem)) => return members_unavailable(pass, status, problem, event),
            Ok(Ok(members)) => record_members(&mut status, members),
        }
    }
    let pace = if status.first_address.is_some() { Pace::Settled } else { Pace::Resync };
    let mut decided = pass.act(status, crate::moves::Next::Wait(pace));
    decided.event = event;
    Decision::Act(decided)
}

/// The member EIPs, in address order, with the first and last address. An empty list records
/// nothing: it is read again at the next drift check.
fn record_members(status: &mut eipsegment_api::EipSegmentStatus, members: &[eipsegment_api::SegmentAddress]) {
    let mut members = members.to_vec();
    members.sort_by_key(|member| member.ip_address.parse::<std::net::Ipv4Addr>().ok());
    status.first_address = members.first().map(|member| member.ip_address.clone());
    status.last_address = members.last().map(|member| member.ip_address.clone());
    status.addresses = members;
}

/// The segment is Ready without its member list: the failure is reported (Synced), and the list
/// is read again after the backoff of its class.
fn members_unavailable(
    pass: &Pass,
    status: eipsegment_api::EipSegmentStatus,
    problem: &crate::facts::Problem,
    ready_event: Option<Event>,
) -> Decision {
    let mut decision = pass.fail(status, problem, Act::Members);
    if let Decision::Act(decided) = &mut decision
        && decided.event.is_none()
    {
        decided.event = ready_event;
    }
    decision
}

/// A well-formed answer from the segment's own account does not return it.
fn absent(pass: &Pass, id: &str, account: &str) -> Decision {
    let status = pass.succeeded(pass.starting_status.clone());
    match pass.holding() {
        Holding::Adopting(_) => {
            let message = format!(
                "segment {id} to adopt does not exist in region {} of account {account}: check spec.segmentInstanceId, \
                 spec.regionId and the credentials",
                pass.region()
            );
            let event = ("AdoptionFailed", "Adopt");
            Decision::Act(pass.stand(status, reason::ADOPTION_TARGET_NOT_FOUND, message, ErrorClass::Terminal, event))
        }
        Holding::Unseen(_) => {
            let message = format!("segment {id} was accepted and is not yet visible in account {account}");
            crate::cleanup::expect_allocation(pass, status, id, &message)
        }
        _ => drifted(pass, status, id, account),
    }
}

fn drifted(pass: &Pass, mut status: eipsegment_api::EipSegmentStatus, id: &str, account: &str) -> Decision {
    let message = if pass.object.status.account_id.is_some() || pass.object.annotations.account_id.is_some() {
        format!(
            "segment {id} no longer exists in account {account} (released outside this operator); it is not re-created: \
             delete this object, or recreate it to allocate a new segment"
        )
    } else {
        format!(
            "segment {id} is not visible to account {account}, and the account it was created in was never recorded: \
             if the credentials changed, give back those of its account; if it was released outside this operator, \
             delete this object"
        )
    };
    record_missing(&mut status);
    // Its addresses are no longer the object's to hand out.
    (status.first_address, status.last_address, status.addresses) = (None, None, Vec::new());
    Decision::Act(pass.stand(status, reason::SEGMENT_MISSING, message, ErrorClass::Blocked, ("Drifted", "Observe")))
}
