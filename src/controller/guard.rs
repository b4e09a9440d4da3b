//! Per-namespace mode: the operator's rights in a namespace come from a RoleBinding there, and a
//! namespace deletion removes it as early as anything else, which would strand every EipSegment of
//! the namespace with its finalizer and its segment. The chart gives that RoleBinding a finalizer;
//! this task removes it only once the namespace is being deleted and no EipSegment is left in it,
//! so the rights last until every segment there is released.

use std::time::Duration;

use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;
use tracing::{info, warn};

use crate::crd::EipSegment;

/// The finalizer the chart puts on the RoleBinding of each served namespace.
pub const FINALIZER: &str = "eipsegment.io/rights-while-eipsegments-remain";

/// Checks each namespace every `every`, until the process ends.
pub async fn run(client: kube::Client, namespaces: Vec<String>, binding: String, every: Duration) {
    loop {
        for namespace in &namespaces {
            if let Err(e) = check(&client, namespace, &binding).await {
                warn!(namespace, rolebinding = %binding, error = %e, "could not check the RoleBinding's finalizer");
            }
        }
        tokio::time::sleep(every).await;
    }
}

async fn check(client: &kube::Client, namespace: &str, binding: &str) -> Result<(), kube::Error> {
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), namespace);
    let Some(rb) = bindings.get_opt(binding).await? else { return Ok(()) };
    let Some(index) = rb.finalizers().iter().position(|f| f == FINALIZER) else { return Ok(()) };
    if rb.metadata.deletion_timestamp.is_none() {
        return Ok(());
    }
    // The apiserver's list, not the cache: an object the cache has not seen yet counts too.
    let left = Api::<EipSegment>::namespaced(client.clone(), namespace).list(&ListParams::default().limit(1)).await?;
    if !left.items.is_empty() {
        return Ok(());
    }
    let patch = json!([{"op": "test", "path": format!("/metadata/finalizers/{index}"), "value": FINALIZER},
                       {"op": "remove", "path": format!("/metadata/finalizers/{index}")}]);
    let patch: json_patch::Patch = serde_json::from_value(patch).map_err(kube::Error::SerdeError)?;
    bindings.patch(binding, &PatchParams::default(), &Patch::Json::<()>(patch)).await?;
    info!(
        namespace,
        rolebinding = binding,
        "no EipSegment left in the namespace being deleted: its RoleBinding may go"
    );
    Ok(())
}
