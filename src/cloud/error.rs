//! Anything a cloud call can end in, and what it means: the code's classification comes from the
//! API's one table (`vpc_api::errors`).

use std::time::Duration;

pub use vpc_api::errors::{
    Classification, ErrorClass, Refusal, bodyless_code, classify, classify_sts, is_bodyless_code,
};

use crate::cloud::Action;

/// The longest wait a throttling answer's TimeLeft is taken for: the hint is the cloud's, any size
/// (a bug or a misconfigured gateway may ask for hours), and every wait built on it (the client's
/// hold, the poller's pause, an object's backoff) must end.
pub const LONGEST_HINT: Duration = Duration::from_secs(60);

/// A TimeLeft hint as the operator takes it: at most [`LONGEST_HINT`], and a note for the message
/// when the cloud asked for more.
pub fn bounded_hint(asked: Option<Duration>) -> (Option<Duration>, String) {
    match asked {
        Some(asked) if asked > LONGEST_HINT => (
            Some(LONGEST_HINT),
            format!(
                " (the cloud asked to wait {:.0} s before retrying, TimeLeft; the operator waits at most {} s)",
                asked.as_secs_f64(),
                LONGEST_HINT.as_secs()
            ),
        ),
        other => (other, String::new()),
    }
}

/// Anything a cloud call can end in other than success.
#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    #[error("{action} failed with {code} (HTTP {http_status}, RequestId {request_id}): {message}")]
    Api {
        action: Action,
        http_status: u16,
        code: String,
        message: String,
        request_id: String,
        /// From the throttling headers' `TimeLeft`, when the cloud gave one, at most
        /// [`LONGEST_HINT`] (the message says what the cloud asked).
        retry_after: Option<Duration>,
    },
    #[error("{action} timed out after {timeout:?}")]
    Timeout { action: Action, timeout: Duration },
    #[error("{action} could not reach the endpoint")]
    Connect {
        action: Action,
        #[source]
        source: reqwest::Error,
    },
    #[error("{action} failed in transport")]
    Transport {
        action: Action,
        #[source]
        source: reqwest::Error,
    },
    #[error("{action} returned an answer that could not be read (HTTP {http_status}): {detail}")]
    Malformed { action: Action, http_status: u16, detail: String },
    #[error("no usable credentials: {0}")]
    Credentials(String),
    /// The RRSA token exchange (STS AssumeRoleWithOIDC) failed.
    #[error("STS AssumeRoleWithOIDC failed with {code} (HTTP {http_status}): {message}")]
    Sts { http_status: u16, code: String, message: String, request_id: String },
}

impl CloudError {
    pub fn classification(&self) -> Classification {
        match self {
            CloudError::Api { code, http_status, .. } => classify(code, *http_status),
            CloudError::Timeout { .. } => {
                Classification::new(ErrorClass::Transient, "the call timed out; retrying with the same client token")
            }
            CloudError::Connect { .. } | CloudError::Transport { .. } => Classification::new(
                ErrorClass::Transient,
                "the endpoint could not be reached; retrying with the same client token",
            ),
            CloudError::Malformed { .. } => {
                Classification::new(ErrorClass::Transient, "the cloud's answer could not be read; retrying")
            }
            CloudError::Credentials(_) => {
                Classification::new(ErrorClass::Terminal, "no usable credentials: check the credential configuration")
            }
            CloudError::Sts { http_status, code, .. } => classify_sts(code, *http_status),
        }
    }

    pub fn class(&self) -> ErrorClass {
        self.classification().class
    }

    /// A short, bounded label: the cloud's error code, or the kind of failure.
    pub fn code(&self) -> &str {
        match self {
            CloudError::Api { code, .. } => code,
            CloudError::Timeout { .. } => "Timeout",
            CloudError::Connect { .. } => "ConnectionFailed",
            CloudError::Transport { .. } => "TransportError",
            CloudError::Malformed { .. } => "MalformedResponse",
            CloudError::Credentials(_) => "NoCredentials",
            CloudError::Sts { code, .. } => code,
        }
    }

    /// The code as a metric label, from a bounded set: the table's codes, the kinds of local
    /// failure, `HTTP<status>` for a bodyless answer, and `Other` for any other code.
    pub fn metric_code(&self) -> &str {
        match self {
            CloudError::Api { code, .. } if is_bodyless_code(code) => code,
            CloudError::Api { code, http_status, .. } if classify(code, *http_status).known => code,
            CloudError::Sts { code, .. } if self.classification().known => code,
            CloudError::Api { .. } | CloudError::Sts { .. } => "Other",
            other => other.code(),
        }
    }

    pub fn is_throttling(&self) -> bool {
        self.refusal() == Refusal::Throttled
    }

    /// True when this refusal of an AllocateEipSegmentAddress proves that its ClientToken created
    /// nothing: the parameters or the region are invalid, so no request with them ever succeeded.
    /// A refusal that depends on who asks or when (credentials, permissions, clock, quota, balance,
    /// throttling, a token used with other parameters) proves nothing: a first request with the
    /// same token may have created a segment that its replay is now refused from seeing.
    pub fn proves_nothing_created(&self) -> bool {
        self.refusal() == Refusal::InvalidRequest
    }

    /// True when member EIPs of the segment stand in the way of its release: naming them helps.
    pub fn blocked_by_members(&self) -> bool {
        self.refusal() == Refusal::MembersInTheWay
    }

    /// True when the cloud refused the request's STS security token: fresh credentials may pass.
    pub fn token_refused(&self) -> bool {
        match self {
            CloudError::Api { code, http_status, .. } => classify(code, *http_status).token_refused,
            _ => false,
        }
    }

    /// What the cloud's refusal tells beyond its class; `Other` for any failure that is no refusal.
    fn refusal(&self) -> Refusal {
        match self {
            CloudError::Api { code, http_status, .. } => classify(code, *http_status).refusal,
            _ => Refusal::Other,
        }
    }

    /// True when the request may have taken effect although no answer says so.
    pub fn is_ambiguous(&self) -> bool {
        match self {
            CloudError::Timeout { .. } | CloudError::Transport { .. } | CloudError::Malformed { .. } => true,
            CloudError::Api { http_status, .. } => *http_status >= 500,
            _ => false,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            CloudError::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    pub fn request_id(&self) -> Option<&str> {
        match self {
            CloudError::Api { request_id, .. } | CloudError::Sts { request_id, .. } if !request_id.is_empty() => {
                Some(request_id)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ErrorClass::*;

    #[test]
    fn a_metric_label_comes_from_a_bounded_set() {
        let api = |code: &str, http_status: u16| CloudError::Api {
            action: Action::ReleaseEipSegmentAddress,
            http_status,
            code: code.into(),
            message: String::new(),
            request_id: String::new(),
            retry_after: None,
        };
        for (error, label) in [
            (api("OperationFailed.EipStatusInvalid", 400), "OperationFailed.EipStatusInvalid"),
            (api("Throttling.User", 400), "Throttling.User"),
            (api("HTTP503", 503), "HTTP503"),
            (api("Throttling.NewKindOfLimit", 400), "Other"),
            (api("Some.Code.The.Cloud.Invents", 400), "Other"),
            (api("HTTP5030000", 503), "Other"),
            (CloudError::Credentials("no keys".into()), "NoCredentials"),
        ] {
            assert_eq!(error.metric_code(), label, "{error:?}");
        }
        assert!(api("Throttling.NewKindOfLimit", 400).is_throttling(), "still counted as throttling");
    }

    #[test]
    fn only_invalid_parameters_prove_an_allocation_created_nothing() {
        let api = |code: &str| CloudError::Api {
            action: Action::AllocateEipSegmentAddress,
            http_status: 400,
            code: code.into(),
            message: String::new(),
            request_id: String::new(),
            retry_after: None,
        };
        for code in ["InvalidParameter", "InvalidRegion.NotSupport", "Forbidden.RegionNotFound"] {
            assert!(api(code).proves_nothing_created(), "{code}");
        }
        let unproven = [
            "SignatureDoesNotMatch",
            "InvalidAccessKeyId.NotFound",
            "InvalidSecurityToken.Expired",
            "InvalidTimeStamp.Expired",
            "Forbidden.RAM",
            "Forbbiden",
            "QuotaExceeded.Eip",
            "InsufficientBalance",
            "IdempotentParameterMismatch",
            "Throttling.User",
            "OperationFailed.LastTokenProcessing",
            "InternalError",
        ];
        for code in unproven {
            assert!(!api(code).proves_nothing_created(), "{code}");
        }
        assert!(
            !CloudError::Timeout { action: Action::AllocateEipSegmentAddress, timeout: Duration::from_secs(1) }
                .proves_nothing_created()
        );
        assert!(!CloudError::Credentials("none".into()).proves_nothing_created());
    }

    #[test]
    fn the_table_says_which_refusals_ask_for_member_names_or_fresh_credentials() {
        let api = |code: &str| CloudError::Api {
            action: Action::ReleaseEipSegmentAddress,
            http_status: 400,
            code: code.into(),
            message: String::new(),
            request_id: String::new(),
            retry_after: None,
        };
        let members = [
            "OperationFailed.EipStatusInvalid",
            "IncorrectEipStatus",
            "OperationFailed.EipInBwp",
            "Forbidden.EipInBwp",
        ];
        for code in members {
            assert!(api(code).blocked_by_members(), "{code}");
        }
        for code in ["IncorrectStatus", "IncorrectEipStatus.EipSegment", "Forbidden.ChargeTypeIsPrepaid", "Throttling"]
        {
            assert!(!api(code).blocked_by_members(), "{code}");
        }
        for code in
            ["InvalidSecurityToken.Expired", "InvalidSecurityToken.MismatchWithAccessKey", "InvalidSecurityToken.New"]
        {
            assert!(api(code).token_refused(), "{code}");
        }
        for code in ["InvalidAccessKeyId.NotFound", "SignatureDoesNotMatch", "Throttling.User"] {
            assert!(!api(code).token_refused(), "{code}");
        }
        let sts = CloudError::Sts {
            http_status: 400,
            code: "InvalidSecurityToken.Expired".into(),
            message: String::new(),
            request_id: String::new(),
        };
        assert!(!sts.token_refused(), "only the VPC API's refusals of the token sent to it");
    }

    #[test]
    fn an_sts_code_labels_a_metric_only_when_the_table_knows_it() {
        let sts = |code: &str| CloudError::Sts {
            http_status: 400,
            code: code.into(),
            message: String::new(),
            request_id: String::new(),
        };
        assert_eq!(sts("Throttling.User").metric_code(), "Throttling.User");
        assert_eq!(sts("AuthenticationFail.OIDCToken.Expired").metric_code(), "Other");
        assert_eq!(sts("Timeout").metric_code(), "Other");
        assert!(!sts("Throttling.User").is_throttling(), "STS throttling holds no VPC action");
    }

    #[test]
    fn non_api_failures_are_transient_and_ambiguous() {
        let timeout = CloudError::Timeout { action: Action::ReleaseEipSegmentAddress, timeout: Duration::from_secs(1) };
        assert_eq!(timeout.class(), Transient);
        assert!(timeout.is_ambiguous());
        assert_eq!(timeout.code(), "Timeout");
        let malformed =
            CloudError::Malformed { action: Action::DescribeEipSegment, http_status: 200, detail: "eof".into() };
        assert_eq!(malformed.class(), Transient);
        let throttled = CloudError::Api {
            action: Action::ReleaseEipSegmentAddress,
            http_status: 400,
            code: "Throttling.User".into(),
            message: String::new(),
            request_id: String::new(),
            retry_after: Some(Duration::from_millis(1500)),
        };
        assert!(throttled.is_throttling());
        assert!(!throttled.is_ambiguous());
        assert_eq!(throttled.retry_after(), Some(Duration::from_millis(1500)));
    }
}
