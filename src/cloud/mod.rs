//! Everything that speaks to the Alibaba Cloud VPC API. Nothing here knows about Kubernetes.

pub mod client;
pub mod credentials;
pub mod error;
pub mod limits;
pub mod readonly;
pub mod sts;

// The API's vocabulary and signer, shared with the simulator (`tests/simulator`).
pub use vpc_api::{model, signer};

pub use client::{Admission, Admit, ClientConfig, VpcClient};
pub use error::{CloudError, ErrorClass};
pub use model::Action;
pub use readonly::ReadOnlyVpc;
