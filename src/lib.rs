//! The eipsegment-operator: Alibaba Cloud EIP segments as Kubernetes `EipSegment` resources.

pub mod cli;
pub mod cloud;
pub mod simulator;
pub mod telemetry;
pub mod crd;
pub mod decide;
pub mod controller;
