//! The Alibaba Cloud VPC API as both sides of the wire know it: action names and versions, request
//! parameters and answers, the classification of its error codes, and request signing. The
//! operator's client and the VPC simulator (`tests/simulator`) share it; the signer is pinned by
//! vectors from Alibaba's official SDKs, so a bug shared by both sides cannot hide.

pub mod errors;
pub mod model;
pub mod signer;

pub use errors::{Classification, ErrorClass, Refusal, classify, classify_sts};
pub use model::Action;
