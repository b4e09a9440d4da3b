//! The eipsegment-operator: Alibaba Cloud EIP segments as Kubernetes `EipSegment` resources.

pub mod cloud;
pub mod simulator;
