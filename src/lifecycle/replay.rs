//! What a refusal of a pending allocation's replay proves. The cloud validates each request it is
//! sent, and answers a ClientToken from its memory only for a while: a refusal that says the
//! region or the parameters are invalid proves that nothing was created only when it answers the
//! very request the pending marker stands for (same account, endpoint and parameters) while the
//! cloud still remembers the token. Anything else (a replay sent elsewhere, built from an edited
//! spec, or made after the memory lapsed) says nothing about the first request.

use eipsegment_api::EipSegmentStatus;
use vpc_api::model::AllocateRequest;

use crate::facts::{Object, Problem};

/// The request a pending marker stands for, as status records it: the account and endpoint it is
/// sent to and its parameters (the token is recorded beside it).
pub fn request_of(account: &str, endpoint: &str, request: &AllocateRequest) -> String {
    let params: Vec<String> =
        request.params().into_iter().filter(|(k, _)| *k != "ClientToken").map(|(k, v)| format!("{k}={v}")).collect();
    format!("{account}@{endpoint}?{}", params.join("&"))
}

/// What a refusal of an allocation says of the pending marker's request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing was created: the marker may go.
    NothingCreated,
    /// A refusal of a kind that says nothing of what was created (quota, permissions, a 5xx).
    SaysNothing,
    /// A refusal of the kind that would prove it, of another request than the first; why.
    AnotherRequest(String),
}

/// What `problem`, the answer to `replayed`, says of the marker's request.
pub fn verdict(problem: &Problem, object: &Object, status: &EipSegmentStatus, replayed: &str) -> Verdict {
    if !problem.proves_nothing_created {
        return Verdict::SaysNothing;
    }
    match (&status.allocation_request, &status.allocation_requested_at) {
        (None, _) | (_, None) => Verdict::AnotherRequest(format!(
            "the first request with token {} is not on record (a restore, or an older operator), so this refusal \
             does not prove that it created nothing",
            status.allocation_token.as_deref().unwrap_or("?")
        )),
        (Some(first), _) if first != replayed => Verdict::AnotherRequest(format!(
            "the replay ({replayed}) is not the first request ({first}), so its refusal does not prove that the \
             first created nothing"
        )),
        // RFC 3339 in UTC at one precision: the text orders as the time does.
        (_, Some(at)) if at.as_str() < object.tokens_remembered_since.as_str() => Verdict::AnotherRequest(format!(
            "the first request ({at}) is older than the cloud's memory of its token, so this refusal does not prove \
             that it created nothing"
        )),
        _ => Verdict::NothingCreated,
    }
}

/// The advice when a refusal proves nothing: the way out is a person's.
pub fn advice(why: &str, account: Option<&str>) -> String {
    let account = account.map(|a| format!(" in account {a}")).unwrap_or_default();
    format!(
        "{why}. Look for a segment created at that time{account} and release it by hand if there is one; then the \
         object's finalizer eipsegment.io/release may be removed"
    )
}
