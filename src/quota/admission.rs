//! A place taken within a quota for one call, and the answer to a request for one.

use std::time::Duration;

use crate::cloud::CloudError;

use super::spending::{Quotas, Ticket};

/// A place taken within the client-side quota for one call. Dropped without its call (the pass
/// stopped before it, on a write that failed), it gives the place back.
pub struct Admission(Option<(Ticket, Quotas)>);

impl Admission {
    /// A place on `quotas` (none for an action without a quota).
    pub(super) fn new(place: Option<(Ticket, Quotas)>) -> Admission {
        Admission(place)
    }

    /// The call is being sent: the place counts from now and stays taken.
    pub(crate) fn spend(mut self) {
        if let Some((ticket, quotas)) = self.0.take() {
            quotas.stamp(&ticket);
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if let Some((ticket, quotas)) = self.0.take() {
            tracing::debug!("a place within the quota given back");
            quotas.give_back(ticket);
        }
    }
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Admission(place)" } else { "Admission(unlimited)" })
    }
}

#[derive(Debug)]
pub enum Admit {
    Granted(Admission),
    /// The quota allows a call after `after`; `frees`: when each place held now frees up, soonest
    /// first, for those queued behind the next one.
    NotYet {
        after: Duration,
        frees: Vec<Duration>,
    },
    /// No credentials to call with.
    Failed(CloudError),
}
