//! Leader election on a `coordination.k8s.io` Lease (kube-lease-manager): with several replicas only
//! the holder reconciles; a replica that loses the lease stops reconciling at once.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::fence::Fence;

#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    /// Unique per replica: the pod name, or the host name and a random suffix.
    pub identity: String,
    pub duration: Duration,
    pub grace: Duration,
}

pub struct Leadership {
    held: watch::Receiver<bool>,
    task: JoinHandle<Result<kube_lease_manager::LeaseManager, LeaseManagerError>>,
}

/// Waits until this replica holds the lease. A kube-lease-manager standby looks again only when the
/// lease it saw would expire; a watch of the Lease makes it look again as soon as the holder gives
/// the lease up (as it does on SIGTERM), so a hand-over takes a moment rather than a lease duration.
pub async fn acquire(client: Client, config: &LeaseConfig) -> Result<Leadership, LeaseManagerError> {
    loop {
        let manager = LeaseManagerBuilder::new(client.clone(), &config.name)
            .with_namespace(&config.namespace)
            .with_identity(&config.identity)
            .with_duration(config.duration.as_secs().max(2))
            .with_grace(config.grace.as_secs().max(1))
            .with_field_manager(format!("eipsegment-operator-{}", config.identity))
            .build()
            .await?;
        let (mut held, task) = manager.watch().await;
        tokio::select! {
            () = until_held(&mut held) => return Ok(Leadership { held, task }),
            () = until_given_up(client.clone(), config) => {
                // Dropping the receiver ends the manager's task; it gives up only a lease it holds.
                drop(held);
                let _ = task.await;
                tracing::debug!(lease = %config.name, "the holder gave the lease up; asking for it");
            }
        }
    }
}

async fn until_held(held: &mut watch::Receiver<bool>) {
    while !*held.borrow_and_update() {
        if held.changed().await.is_err() {
            return;
        }
    }
}

/// Resolves when another replica that held the Lease lets go of it. Without the rights to watch
/// it (an older install), it never resolves and the standby waits for the expiry.
async fn until_given_up(client: Client, config: &LeaseConfig) {
    let api: Api<Lease> = Api::namespaced(client, &config.namespace);
    let by_name = watcher::Config::default().fields(&format!("metadata.name={}", config.name));
    let mut leases = std::pin::pin!(watcher(api, by_name).default_backoff().applied_objects());
    let mut held_by_another = false;
    while let Some(event) = leases.next().await {
        let Ok(lease) = event else { continue };
        match lease.spec.and_then(|s| s.holder_identity).filter(|h| !h.is_empty()) {
            Some(holder) => held_by_another = holder != config.identity,
            None if held_by_another => return,
            None => {}
        }
    }
    std::future::pending().await
}

impl Leadership {
    /// Resolves when the lease is lost (another replica took it, or it could not be renewed).
    pub async fn lost(&mut self) {
        loop {
            if !*self.held.borrow_and_update() || self.held.changed().await.is_err() {
                return;
            }
        }
    }

    /// Gives the lease up so that a standby takes over without waiting for it to expire. The
    /// manager's own release trusts its view of the Lease, which a replica deposed without noticing
    /// still holds: it would clear its successor's hold. The fence clears it only while the
    /// apiserver says it is this replica's.
    pub async fn release(self, fence: &Fence) {
        self.task.abort();
        let _ = self.task.await;
        drop(self.held);
        if fence.is_deposed() {
            tracing::info!("the lease is another's; nothing to release");
            return;
        }
        match fence.give_up().await {
            Ok(()) => tracing::info!("lease released"),
            Err(e) => tracing::info!(reason = %e, "lease not released"),
        }
    }
}

/// The pod name when the downward API gives it, otherwise the host name with a random suffix.
pub fn default_identity() -> String {
    std::env::var("POD_NAME").ok().filter(|n| !n.is_empty()).unwrap_or_else(|| {
        let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).unwrap_or_default();
        format!(
            "{}-{}",
            if host.is_empty() { "eipsegment-operator" } else { &host },
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        )
    })
}
