//! Client-side flow control, in the cloud's own terms: a quota of calls per window for each
//! (action, credentials, region). What the quotas are ([`settings`]: the command line only parses
//! them), what each key has spent and the places taken for calls about to go out ([`spending`],
//! [`admission`]), and the objects queued for a place, woken in their turn ([`queue`]). The cloud
//! client spends places; the controller asks for them and queues its objects here.

pub mod admission;
pub mod queue;
pub mod settings;
pub mod spending;

pub use admission::{Admission, Admit};
pub use queue::{QueueName, Queues, Turn};
pub use settings::{InvalidQuota, Quota, QuotaSettings};
pub use spending::Quotas;
