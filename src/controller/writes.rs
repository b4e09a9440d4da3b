//! The Kubernetes writes of a move: the object's finalizer, its identity annotations, its status,
//! its hold on a credentials Secret, and events.

use k8s_openapi::api::core::v1::Secret as KubeSecret;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Resource, ResourceExt};
use serde_json::json;
use sha2::Digest;
use tracing::warn;

use super::{Context, Error, MANAGER};
use crate::crd::{EipSegment, EipSegmentStatus, FINALIZER};
use crate::lifecycle::{self, Identity, identity};
use crate::proof::IdentityKey;

const SECRET_HOLD_PREFIX: &str = "eipsegment.io/in-use-by-";

/// The finalizer a Secret carries for each object whose segment depends on it. It names the object
/// (not its UID, which a restore changes), so that a restored object holds and lets go of the same
/// finalizer; a name too long for a finalizer is cut and completed with a digest of the whole.
pub fn secret_finalizer(object_name: &str) -> String {
    const PREFIX: &str = "in-use-by-";
    debug_assert!(SECRET_HOLD_PREFIX.ends_with(PREFIX));
    const MAX: usize = 63;
    if PREFIX.len() + object_name.len() <= MAX {
        return format!("eipsegment.io/{PREFIX}{object_name}");
    }
    let digest = hex::encode(sha2::Sha256::digest(object_name.as_bytes()));
    let keep = MAX - PREFIX.len() - 17;
    let head = object_name[..keep].trim_end_matches(['-', '.']);
    format!("eipsegment.io/{PREFIX}{head}-{}", &digest[..16])
}

/// Every write carries the resourceVersion of the object as read: one read from a cache that lags
/// the operator's own last write fails instead of putting an older status back, and if the user
/// changed the object meanwhile (its deletion policy, say), a write before a call fails and the
/// call is not made on a stale decision. `Checked` writes even when nothing changed, to prove the
/// object unchanged before a call; `IfChanged` skips a write that would change nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precondition {
    Checked,
    IfChanged,
}

/// Adds the object's finalizer, before anything else is done for it.
pub async fn add_finalizer(api: &Api<EipSegment>, obj: &EipSegment) -> Result<EipSegment, Error> {
    let finalizers = obj.finalizers();
    let patch = match finalizers.is_empty() {
        true => json!([{"op": "test", "path": "/metadata/finalizers", "value": null},
                       {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]}]),
        false => json!([{"op": "test", "path": "/metadata/finalizers", "value": finalizers},
                        {"op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER}]),
    };
    json_patch(api, obj, patch).await
}

/// Removes the object's finalizer: it may go. Only from the very object the pass decided on, as
/// it decided (its UID and resourceVersion): a later change, or a replica deciding on an older
/// read, gets a conflict rather than letting the object go.
pub async fn remove_finalizer(api: &Api<EipSegment>, obj: &EipSegment) -> Result<(), Error> {
    let Some(index) = obj.finalizers().iter().position(|f| f == FINALIZER) else { return Ok(()) };
    let patch = json!([{"op": "test", "path": "/metadata/uid", "value": obj.uid()},
                       // A patched resourceVersion is the apiserver's precondition: 409 if it moved.
                       {"op": "replace", "path": "/metadata/resourceVersion", "value": obj.resource_version()},
                       {"op": "test", "path": format!("/metadata/finalizers/{index}"), "value": FINALIZER},
                       {"op": "remove", "path": format!("/metadata/finalizers/{index}")}]);
    match json_patch(api, obj, patch).await {
        Ok(_) => Ok(()),
        // Gone already.
        Err(Error::Kube(kube::Error::Api(e))) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

async fn json_patch(api: &Api<EipSegment>, obj: &EipSegment, patch: serde_json::Value) -> Result<EipSegment, Error> {
    let patch: json_patch::Patch =
        serde_json::from_value(patch).map_err(|e| Error::Kube(kube::Error::SerdeError(e)))?;
    api.patch(&obj.name_any(), &PatchParams::default(), &Patch::Json::<()>(patch)).await.map_err(Error::Kube)
}

/// Writes the identity annotations, with the operator's proof of them, when the object does not
/// carry them so; returns the object as written. Annotations it has no value for are left as they
/// are: one it cannot prove is reported, never erased.
pub async fn write_identity(
    api: &Api<EipSegment>,
    obj: &EipSegment,
    identity: &Identity,
    key: &IdentityKey,
) -> Result<Option<EipSegment>, Error> {
    if identity.is_empty() {
        return Ok(None);
    }
    let proof = key.proof(&obj.namespace().unwrap_or_default(), &obj.name_any(), identity);
    let current = obj.annotations();
    let carried = identity.annotations().iter().all(|(k, v)| v.is_none() || current.get(*k).map(String::as_str) == *v);
    if carried && current.get(identity::PROOF) == Some(&proof) {
        return Ok(None);
    }
    let mut annotations: serde_json::Map<String, serde_json::Value> =
        identity.annotations().iter().filter_map(|(k, v)| Some((k.to_string(), json!((*v)?)))).collect();
    annotations.insert(identity::PROOF.to_string(), json!(proof));
    let patch = json!({"metadata": {"annotations": annotations, "resourceVersion": obj.resource_version()}});
    let written =
        api.patch(&obj.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await.map_err(Error::Kube)?;
    Ok(Some(written))
}

/// Server-side apply of the whole status.
pub async fn write_status(
    api: &Api<EipSegment>,
    obj: &EipSegment,
    status: &EipSegmentStatus,
    precondition: Precondition,
) -> Result<Option<EipSegment>, Error> {
    let before = obj.status.clone().unwrap_or_default();
    if before == *status && precondition == Precondition::IfChanged {
        return Ok(None);
    }
    let patch = json!({
        "apiVersion": EipSegment::api_version(&()),
        "kind": EipSegment::kind(&()),
        "metadata": {"resourceVersion": obj.resource_version()},
        "status": status,
    });
    let params = PatchParams::apply(MANAGER).force();
    let written = api.patch_status(&obj.name_any(), &params, &Patch::Apply(&patch)).await.map_err(Error::Kube)?;
    Ok(Some(written))
}

/// The Secret a live segment depends on stays until the object no longer needs it. Adding fails
/// on a Secret already being deleted; that is reported, not fatal: the object then works with the
/// Secret while it is there.
pub async fn hold_secret(ctx: &Context, namespace: &str, name: &str, holder: &str, secret: Option<&KubeSecret>) {
    let finalizer = secret_finalizer(holder);
    if secret.is_some_and(|s| s.finalizers().contains(&finalizer)) {
        return;
    }
    let patch = json!({"metadata": {"finalizers": [finalizer]}});
    if let Err(e) = secret_patch(ctx, namespace, name, &patch).await {
        warn!(namespace, secret = name, error = %e, "could not protect the credentials Secret with a finalizer");
    }
}

pub async fn let_go_secret(ctx: &Context, namespace: &str, name: &str, holder: &str) -> Result<(), Error> {
    let patch = json!({"metadata": {"$deleteFromPrimitiveList/finalizers": [secret_finalizer(holder)]}});
    let secret = match secret_patch(ctx, namespace, name, &patch).await {
        Err(kube::Error::Api(e)) if e.code == 404 => return Ok(()),
        other => other.map_err(Error::Kube)?,
    };
    if secret.metadata.deletion_timestamp.is_some() {
        let_go_of_the_gone(ctx, namespace, &secret).await;
    }
    Ok(())
}

/// A Secret being deleted may still carry the hold of an object removed behind the operator's back
/// (its finalizer taken off by hand): such a hold, of no object the operator knows in the
/// namespace, goes too, so that the Secret is not kept for good. An object that holds the Secret
/// was reconciled from the cache first, so the cache knows every live holder.
async fn let_go_of_the_gone(ctx: &Context, namespace: &str, secret: &KubeSecret) {
    let live: std::collections::HashSet<String> = ctx
        .cached(|o| o.namespace().as_deref() == Some(namespace))
        .iter()
        .map(|o| secret_finalizer(&o.name_any()))
        .collect();
    let finalizers = secret.finalizers();
    let kept: Vec<&String> =
        finalizers.iter().filter(|f| !f.starts_with(SECRET_HOLD_PREFIX) || live.contains(f.as_str())).collect();
    if kept.len() == finalizers.len() {
        return;
    }
    let patch = json!([{"op": "test", "path": "/metadata/finalizers", "value": finalizers},
                       {"op": "replace", "path": "/metadata/finalizers", "value": kept}]);
    let secrets: Api<KubeSecret> = Api::namespaced(ctx.client.clone(), namespace);
    let result = match serde_json::from_value::<json_patch::Patch>(patch) {
        Ok(patch) => {
            secrets.patch(&secret.name_any(), &PatchParams::default(), &Patch::Json::<()>(patch)).await.map(|_| ())
        }
        Err(e) => Err(kube::Error::SerdeError(e)),
    };
    match result {
        Ok(()) => tracing::info!(namespace, secret = %secret.name_any(), "let go of holds whose objects are gone"),
        Err(e) => {
            tracing::debug!(namespace, secret = %secret.name_any(), error = %e, "holds of gone objects stay for now")
        }
    }
}

async fn secret_patch(
    ctx: &Context,
    namespace: &str,
    name: &str,
    patch: &serde_json::Value,
) -> Result<KubeSecret, kube::Error> {
    let secrets: Api<KubeSecret> = Api::namespaced(ctx.client.clone(), namespace);
    secrets.patch(name, &PatchParams::default(), &Patch::Strategic(patch)).await
}

pub async fn publish(ctx: &Context, obj: &EipSegment, event: &lifecycle::Event) {
    let type_ = if event.warning { EventType::Warning } else { EventType::Normal };
    let e = Event {
        type_,
        reason: event.reason.into(),
        note: Some(event.note.clone()),
        action: event.action.into(),
        secondary: None,
    };
    let recorder = Recorder::new(ctx.client.clone(), ctx.reporter.clone());
    if let Err(err) = recorder.publish(&e, &obj.object_ref(&())).await {
        warn!(object = %obj.name_any(), reason = event.reason, error = %err, "could not publish event");
    }
}

/// The write met an object changed since it was read.
pub fn is_conflict(e: &Error) -> bool {
    matches!(e, Error::Kube(kube::Error::Api(status)) if status.code == 409)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_finalizers_name_the_object_within_the_limit() {
        assert_eq!(secret_finalizer("web"), "eipsegment.io/in-use-by-web");
        let long = "a".repeat(40) + "-" + &"b".repeat(60);
        let cut = secret_finalizer(&long);
        let name = cut.strip_prefix("eipsegment.io/").unwrap();
        assert!(name.len() <= 63, "{cut}");
        assert!(name.starts_with("in-use-by-aaaa") && name.chars().last().unwrap().is_ascii_alphanumeric(), "{cut}");
        assert_ne!(secret_finalizer(&(long.clone() + "x")), cut, "names cut alike stay apart");
        let exact = "c".repeat(53);
        assert_eq!(secret_finalizer(&exact), format!("eipsegment.io/in-use-by-{exact}"));
    }
}
