//! The object wants its segment: allocate it, adopt it, or keep it under watch.

use crate::conditions::{is_ready, message, reason, set_ready};
use crate::facts::{Claimant, Outcome};
use crate::moves::{Call, Change, Decision, Event, Pace, Watch};
use crate::pass::{Act, Holding, Pass, record_account, record_cloud_status, record_missing, record_segment};
use vpc_api::ErrorClass;
use vpc_api::model::{Segment, SegmentStatus};

pub(super) fn decide(p: &Pass) -> Decision {
    match p.holding() {
        Holding::Nothing | Holding::Pending => allocate(p),
        Holding::Adopting(id) | Holding::Unseen(id) | Holding::Named(id) | Holding::Gone(id) => watch(p, &id),
    }
}

/// A new allocation, or the replay of one whose answer was lost (same token: the same segment).
pub(super) fn allocate(p: &Pass) -> Decision {
    let (c, account) = match p.account() {
        Ok(found) => found,
        Err(decision) => return decision,
    };
    if let Some(outcome) = p.f.outcome {
        return after_allocate(p, outcome);
    }
    if c.terminating && p.holding() == Holding::Nothing {
        return secret_terminating(p, c);
    }
    let mut status = p.status.clone();
    let token = p.allocation_token();
    let first = status.allocation_requested_at.is_none() && p.holding() == Holding::Nothing;
    status.allocation_token = Some(token.clone());
    status.allocation_requested_at.get_or_insert_with(|| p.now().to_string());
    record_account(&mut status, c, &account);
    let mut m = p.act(status, crate::moves::Next::Wait(Pace::Woken));
    m.call = Some(Call::Allocate(p.o.spec.allocate_request(&token)));
    if first {
        let note =
            format!("requesting a /{} segment in {} (account {account})", p.o.spec.eip_mask.unwrap_or(28), p.region());
        m.event = Some(Event::normal("AllocationRequested", "Allocate", note));
    }
    Decision::Act(m)
}

/// A Secret being deleted cannot be held, so no segment comes to depend on it.
fn secret_terminating(p: &Pass, c: &crate::Credentials) -> Decision {
    let detail = format!(
        "SecretTerminating: the credentials {} is being deleted: no new segment is allocated with it",
        c.source
    );
    let problem = crate::facts::Problem::new(ErrorClass::Blocked, "SecretTerminating", &detail);
    p.fail(p.status.clone(), &problem, Act::Credentials)
}

/// What the allocation's answer means. The pending marker goes only with proof: the segment is
/// seen later, or the cloud's refusal of the token proves nothing was created.
pub(super) fn after_allocate(p: &Pass, outcome: &Outcome) -> Decision {
    let mut status = p.status.clone();
    match outcome {
        Outcome::NotAdmitted { after, why } => {
            p.wait(p.not_ready(p.o.status.clone(), reason::ALLOCATION_QUEUED, why), Pace::Queued(*after))
        }
        Outcome::Allocated { segment_id } => {
            status.segment_instance_id = Some(segment_id.clone());
            record_cloud_status(&mut status, &SegmentStatus::Allocating);
            let status = p.not_ready(p.succeeded(status), reason::ALLOCATING, &message::allocating(segment_id));
            let mut m = p.act(status, crate::moves::Next::Wait(Pace::Woken));
            m.watch = Some(Watch::Changing { segment_id: segment_id.clone(), change: Change::Allocating });
            Decision::Act(m)
        }
        Outcome::Refused(problem) => {
            if problem.proves_nothing_created {
                status.allocation_requested_at = None;
            }
            p.fail(status, problem, Act::Allocate)
        }
        // Not an answer to an allocation: look again.
        Outcome::ReleaseAccepted { .. } => p.wait(status, Pace::Woken),
    }
}

/// A named segment: refuse it if another object holds it, otherwise look and record.
fn watch(p: &Pass, id: &str) -> Decision {
    let claims = match p.claims(id) {
        Ok(claims) => claims,
        Err(need) => return need,
    };
    // A holder being deleted hands its segment to a live claimant, which may then take it.
    if let Some(owner) = p.outranked_by(claims, id).filter(|owner| !owner.deleting) {
        return refused(p, id, owner);
    }
    let (c, account) = match p.account() {
        Ok(found) => found,
        Err(decision) => return decision,
    };
    match p.seen(id, &account, true) {
        Err(decision) => decision,
        Ok(None) => absent(p, id, &account),
        Ok(Some(seg)) => {
            let mut status = p.status.clone();
            record_account(&mut status, c, &account);
            present(p, status, seg)
        }
    }
}

/// Another object holds the segment: this one does not act on it and says who does.
fn refused(p: &Pass, id: &str, owner: &Claimant) -> Decision {
    let message = format!(
        "segment {id} is held by {}/{}, which named it first: this object does not act on it. Delete this object, \
         or delete {}/{} to hand the segment over",
        owner.namespace, owner.name, owner.namespace, owner.name
    );
    let status = p.not_ready(p.o.status.clone(), reason::SEGMENT_IN_USE, &message);
    let mut m = p.act(status, crate::moves::Next::Wait(Pace::Backoff { class: ErrorClass::Blocked, hint: None }));
    m.identity = p.o.annotations.clone();
    m.secret = crate::moves::SecretUse::Unchanged;
    if p.reason_is_new(reason::SEGMENT_IN_USE) {
        m.event = Some(Event::warning("ClaimRefused", "Adopt", message));
    }
    m.watch = Some(Watch::Forget { segment_ids: vec![id.to_string()] });
    Decision::Act(m)
}

fn present(p: &Pass, mut status: eipsegment_api::EipSegmentStatus, seg: &Segment) -> Decision {
    record_segment(&mut status, seg);
    let status = p.succeeded(status);
    if seg.status != SegmentStatus::Allocated {
        let message = format!("segment {} is {}", seg.instance_id, seg.status.as_str());
        return p.wait(p.not_ready(status, seg.status.as_str(), &message), Pace::Woken);
    }
    let (reason, message) = if p.o.spec.adopts() {
        (reason::ADOPTED, message::adopted(&seg.instance_id, &seg.segment))
    } else {
        (reason::ALLOCATED, message::allocated(&seg.instance_id, &seg.segment))
    };
    let mut status = status;
    set_ready(&mut status, true, reason, &message, p.now());
    let event = (!is_ready(p.before())).then(|| Event::normal(reason, "Observe", message));
    if status.first_address.is_none() {
        if !is_ready(p.before()) {
            // Ready is told at once and the member list read in the next pass, so that the objects
            // of a storm do not wait behind their reads.
            let mut m = p.act(status, crate::moves::Next::Wait(Pace::Queued(std::time::Duration::ZERO)));
            m.event = event;
            return Decision::Act(m);
        }
        match p.members(&seg.instance_id) {
            Err(need) => return need,
            Ok(Err(problem)) => return members_unavailable(p, status, problem, event),
            Ok(Ok(members)) => record_members(&mut status, members),
        }
    }
    let pace = if status.first_address.is_some() { Pace::Settled } else { Pace::Resync };
    let mut m = p.act(status, crate::moves::Next::Wait(pace));
    m.event = event;
    Decision::Act(m)
}

/// The member EIPs, in address order, with the first and last address. An empty list records
/// nothing: it is read again at the next drift check.
fn record_members(status: &mut eipsegment_api::EipSegmentStatus, members: &[eipsegment_api::SegmentAddress]) {
    let mut members = members.to_vec();
    members.sort_by_key(|m| m.ip_address.parse::<std::net::Ipv4Addr>().ok());
    status.first_address = members.first().map(|m| m.ip_address.clone());
    status.last_address = members.last().map(|m| m.ip_address.clone());
    status.addresses = members;
}

/// The segment is Ready without its member list: the failure is reported (Synced), and the list
/// is read again after the backoff of its class.
fn members_unavailable(
    p: &Pass,
    status: eipsegment_api::EipSegmentStatus,
    problem: &crate::facts::Problem,
    ready_event: Option<Event>,
) -> Decision {
    let mut decision = p.fail(status, problem, Act::Members);
    if let Decision::Act(m) = &mut decision
        && m.event.is_none()
    {
        m.event = ready_event;
    }
    decision
}

/// A well-formed answer from the segment's own account does not return it.
fn absent(p: &Pass, id: &str, account: &str) -> Decision {
    let status = p.succeeded(p.status.clone());
    match p.holding() {
        Holding::Adopting(_) => {
            let message = format!(
                "segment {id} to adopt does not exist in region {} of account {account}: check spec.segmentInstanceId, \
                 spec.regionId and the credentials",
                p.region()
            );
            let status = p.not_ready(status, reason::ADOPTION_TARGET_NOT_FOUND, &message);
            let mut m =
                p.act(status, crate::moves::Next::Wait(Pace::Backoff { class: ErrorClass::Terminal, hint: None }));
            if p.reason_is_new(reason::ADOPTION_TARGET_NOT_FOUND) {
                m.event = Some(Event::warning("AdoptionFailed", "Adopt", message));
            }
            Decision::Act(m)
        }
        Holding::Unseen(_) => {
            let message = format!("segment {id} was accepted and is not yet visible in account {account}");
            crate::cleanup::expect_allocation(p, status, id, &message)
        }
        _ => drifted(p, status, id, account),
    }
}

fn drifted(p: &Pass, mut status: eipsegment_api::EipSegmentStatus, id: &str, account: &str) -> Decision {
    let message = if p.o.status.account_id.is_some() || p.o.annotations.account_id.is_some() {
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
    let status = p.not_ready(status, reason::SEGMENT_MISSING, &message);
    let mut m = p.act(status, crate::moves::Next::Wait(Pace::Backoff { class: ErrorClass::Blocked, hint: None }));
    if p.reason_is_new(reason::SEGMENT_MISSING) {
        m.event = Some(Event::warning("Drifted", "Observe", message));
    }
    Decision::Act(m)
}
