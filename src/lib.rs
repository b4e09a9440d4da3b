//! The eipsegment-operator: Alibaba Cloud EIP segments as Kubernetes `EipSegment` resources.

pub mod audit;
pub mod backoff;
pub mod cli;
pub mod cloud;
pub mod controller;
pub mod fence;
pub mod leadership;
pub mod poller;
pub mod proof;
pub mod quota;
pub mod telemetry;
pub mod tenancy;

// The resource's types and the pure lifecycle core are crates of their own (`src/api`,
// `src/lifecycle`), so that the core can depend on no IO.
pub use eipsegment_api as crd;
pub use eipsegment_lifecycle as lifecycle;

/// An error with its causes, one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}
