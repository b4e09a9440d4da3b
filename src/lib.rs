//! The eipsegment-operator: Alibaba Cloud EIP segments as Kubernetes `EipSegment` resources.

pub mod audit;
pub mod backoff;
pub mod cli;
pub mod cloud;
pub mod controller;
pub mod crd;
pub mod leadership;
pub mod lifecycle;
pub mod poller;
pub mod simulator;
pub mod telemetry;

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
