//! Everything that speaks to the Alibaba Cloud VPC API. Nothing here knows about Kubernetes.

pub mod client;
pub mod credentials;
pub mod error;
pub mod readonly;
pub mod sts;

// The API's vocabulary and signer, shared with the simulator (`tests/simulator`).
pub use vpc_api::{model, signer};

pub use client::{ClientConfig, VpcClient};
// The client's calls take a place within the quota, which is the quota's to give.
pub use crate::quota::{Admission, Admit};
pub use error::{CloudError, ErrorClass};
pub use model::Action;
pub use readonly::ReadOnlyVpc;
