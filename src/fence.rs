//! Fencing with leader election: a replica sends a mutating cloud call only once the apiserver has
//! accepted, just before it, a write to the Lease that tests that this replica is the holder. The
//! replica's own clock and its own view of the Lease prove nothing: one cut off from the apiserver,
//! paused, or whose clock runs slow keeps believing it leads until its next renewal, while another
//! may have taken over. The apiserver applies a JSON patch to the Lease as stored, so its `test` of
//! the holder is judged against the latest holder, whatever renewal races it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use tokio::sync::watch;
use tracing::warn;

use crate::leadership::LeaseConfig;
use crate::telemetry::Metrics;

/// The Lease's annotation each proof rewrites: a write that changes nothing may be answered
/// without one.
pub const ANNOTATION: &str = "eipsegment.io/fence";

/// The longest a proof may take; no call goes out on a proof not answered by then.
const PROVE_WITHIN: Duration = Duration::from_secs(5);

/// Why no call was sent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The apiserver refused the write: the Lease is another replica's (or gone).
    #[error("the apiserver says this replica no longer holds the lease: {0}")]
    Deposed(String),
    /// The apiserver did not answer in time or could not be reached: nothing is proven either way.
    #[error("the apiserver could not confirm that this replica holds the lease: {0}")]
    Unconfirmed(String),
}

impl Refusal {
    /// The metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Deposed(_) => "deposed",
            Refusal::Unconfirmed(_) => "unconfirmed",
        }
    }
}

pub struct Fence {
    api: Api<Lease>,
    lease: String,
    identity: String,
    /// Unique per process, so that no proof writes the value an earlier one left.
    session: String,
    proofs: AtomicU64,
    deposed: watch::Sender<bool>,
    metrics: Arc<Metrics>,
}

impl Fence {
    pub fn new(client: Client, lease: &LeaseConfig, metrics: Arc<Metrics>) -> Fence {
        Fence {
            api: Api::namespaced(client, &lease.namespace),
            lease: lease.name.clone(),
            identity: lease.identity.clone(),
            session: uuid::Uuid::new_v4().simple().to_string()[..8].to_string(),
            proofs: AtomicU64::new(0),
            deposed: watch::channel(false).0,
            metrics,
        }
    }

    /// Gives the Lease the annotation the proofs rewrite (a JSON patch cannot add a key to a map
    /// that is not there). Proves nothing: it tests no holder.
    pub async fn arm(&self) -> Result<(), kube::Error> {
        let patch = json!({"metadata": {"annotations": {ANNOTATION: self.mark(0)}}});
        self.api.patch(&self.lease, &PatchParams::default(), &Patch::Merge(&patch)).await.map(|_| ())
    }

    /// One write of the Lease that the apiserver accepts only while this replica holds it. A refusal
    /// by the apiserver is final: every later proof fails without asking, and [`Fence::deposed`]
    /// resolves.
    pub async fn prove(&self) -> Result<(), Refusal> {
        let verdict = if self.is_deposed() {
            Err(Refusal::Deposed("refused before".into()))
        } else {
            let started = Instant::now();
            let mark = self.mark(self.proofs.fetch_add(1, Ordering::Relaxed) + 1);
            let verdict = self.write(proof_patch(&self.identity, &mark)).await;
            self.metrics.fence_proof_took(started.elapsed());
            verdict
        };
        match &verdict {
            Ok(()) => self.metrics.fence_proven(),
            Err(refusal) => {
                self.metrics.fence_refused(refusal.reason());
                if let Refusal::Deposed(why) = refusal
                    && !self.deposed.send_replace(true)
                {
                    warn!(lease = %self.lease, identity = %self.identity, %why, "the apiserver refused the fence");
                }
            }
        }
        verdict
    }

    pub fn is_deposed(&self) -> bool {
        *self.deposed.borrow()
    }

    /// Resolves once the apiserver has refused a proof.
    pub async fn deposed(&self) {
        let _ = self.deposed.subscribe().wait_for(|d| *d).await;
    }

    /// Lets go of the Lease, only while the apiserver says it is this replica's: a replica deposed
    /// without noticing must not clear its successor's hold.
    pub async fn give_up(&self) -> Result<(), Refusal> {
        self.write(give_up_patch(&self.identity)).await
    }

    async fn write(&self, patch: json_patch::Patch) -> Result<(), Refusal> {
        let patch = Patch::Json::<()>(patch);
        let params = PatchParams::default();
        let answer = tokio::time::timeout(PROVE_WITHIN, self.api.patch(&self.lease, &params, &patch)).await;
        judge(answer.map_err(|_| ()))
    }

    fn mark(&self, n: u64) -> String {
        format!("{} {} {n}", self.identity, self.session)
    }
}

/// The holder tested, then the annotation rewritten.
pub fn proof_patch(identity: &str, mark: &str) -> json_patch::Patch {
    let ops = json!([
        {"op": "test", "path": "/spec/holderIdentity", "value": identity},
        {"op": "add", "path": annotation_path(), "value": mark},
    ]);
    serde_json::from_value(ops).unwrap_or_else(|e| unreachable!("a fixed JSON patch: {e}"))
}

/// The holder tested, then the hold cleared as kube-lease-manager clears it, so that a standby
/// takes the Lease at once.
pub fn give_up_patch(identity: &str) -> json_patch::Patch {
    let ops = json!([
        {"op": "test", "path": "/spec/holderIdentity", "value": identity},
        {"op": "remove", "path": "/spec/holderIdentity"},
        {"op": "remove", "path": "/spec/acquireTime"},
        {"op": "remove", "path": "/spec/renewTime"},
        {"op": "remove", "path": "/spec/leaseDurationSeconds"},
    ]);
    serde_json::from_value(ops).unwrap_or_else(|e| unreachable!("a fixed JSON patch: {e}"))
}

/// `/metadata/annotations/<ANNOTATION>`, its `/` escaped as a JSON pointer wants.
fn annotation_path() -> String {
    format!("/metadata/annotations/{}", ANNOTATION.replace('~', "~0").replace('/', "~1"))
}

/// The apiserver's answer to a write (`Err(())`: none in time).
fn judge<T>(answer: Result<Result<T, kube::Error>, ()>) -> Result<(), Refusal> {
    match answer {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(refusal_of(&e)),
        Err(()) => Err(Refusal::Unconfirmed(format!("no answer within {PROVE_WITHIN:?}"))),
    }
}

/// A failed `test` (422), a Lease that is gone (404) or changed under a precondition (409) is the
/// apiserver's word that this replica does not hold it; anything else proves nothing either way.
pub fn refusal_of(e: &kube::Error) -> Refusal {
    match e {
        kube::Error::Api(status) if matches!(status.code, 404 | 409 | 422) => {
            Refusal::Deposed(format!("{} {}", status.code, status.message))
        }
        other => Refusal::Unconfirmed(crate::error_chain(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(patch: &json_patch::Patch, lease: &serde_json::Value) -> Result<serde_json::Value, String> {
        let mut doc = lease.clone();
        json_patch::patch(&mut doc, patch).map(|()| doc).map_err(|e| e.to_string())
    }

    fn lease(holder: &str) -> serde_json::Value {
        json!({
            "metadata": {"name": "eipsegment-operator", "annotations": {ANNOTATION: "a s 0"}},
            "spec": {"holderIdentity": holder, "acquireTime": "t0", "renewTime": "t1", "leaseDurationSeconds": 15},
        })
    }

    #[test]
    fn a_proof_is_applied_only_to_a_lease_the_replica_holds_and_always_changes_it() {
        let held = lease("replica-a");
        let proven = apply(&proof_patch("replica-a", "replica-a s 1"), &held).unwrap();
        assert_eq!(proven["metadata"]["annotations"][ANNOTATION], "replica-a s 1");
        assert_ne!(proven, held, "a proof that changes nothing may be answered without a write");
        assert_eq!(proven["spec"], held["spec"], "a proof renews nothing");
        let e = apply(&proof_patch("replica-a", "replica-a s 2"), &lease("replica-b")).unwrap_err();
        assert!(e.contains("/spec/holderIdentity") && e.contains("did not match"), "{e}");
        let mut free = lease("x");
        free["spec"]["holderIdentity"] = serde_json::Value::Null;
        assert!(apply(&proof_patch("replica-a", "m"), &free).is_err(), "a lease nobody holds proves nothing");
    }

    #[test]
    fn giving_up_clears_the_hold_only_of_the_replica_that_holds_it() {
        let released = apply(&give_up_patch("replica-a"), &lease("replica-a")).unwrap();
        assert_eq!(released["spec"], json!({}), "{released}");
        assert_eq!(released["metadata"]["annotations"][ANNOTATION], "a s 0");
        assert!(apply(&give_up_patch("replica-a"), &lease("replica-b")).is_err());
    }

    #[test]
    fn the_annotation_path_escapes_the_slash() {
        assert_eq!(annotation_path(), "/metadata/annotations/eipsegment.io~1fence");
    }

    fn api_error(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status::failure("no", "Invalid").with_code(code)))
    }

    #[test]
    fn only_the_apiservers_refusal_deposes() {
        for code in [404, 409, 422] {
            assert!(matches!(refusal_of(&api_error(code)), Refusal::Deposed(_)), "{code}");
        }
        for code in [403, 429, 500, 503] {
            assert!(matches!(refusal_of(&api_error(code)), Refusal::Unconfirmed(_)), "{code}");
        }
        assert_eq!(judge::<()>(Err(())).unwrap_err().reason(), "unconfirmed");
        assert_eq!(judge::<()>(Ok(Err(api_error(422)))).unwrap_err().reason(), "deposed");
        assert_eq!(judge(Ok(Ok(()))), Ok(()));
    }
}
