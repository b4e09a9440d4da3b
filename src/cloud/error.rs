//! Cloud errors and their classification. Every error code the operator can meet is classified here
//! and nowhere else; the decision logic only looks at the class.

use std::time::Duration;

use crate::cloud::Action;

/// What an error means for the object that met it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// The segment no longer exists: for a release, that is success.
    Gone,
    /// Retry with backoff: throttling, a busy or failing service, an answer that never came.
    Transient,
    /// A person must act on the cloud side (the message says what); retry slowly.
    Blocked,
    /// The configuration or the credentials are wrong; retry only slowly, until they change.
    Terminal,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Gone => "Gone",
            ErrorClass::Transient => "Transient",
            ErrorClass::Blocked => "Blocked",
            ErrorClass::Terminal => "Terminal",
        }
    }
}

/// How an error code is read: its class and what to tell the user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Classification {
    pub class: ErrorClass,
    pub advice: &'static str,
    /// The code is one of the table's own (not read by its prefix or HTTP status only).
    pub known: bool,
}

const fn c(class: ErrorClass, advice: &'static str) -> Classification {
    Classification { class, advice, known: true }
}

/// A code the table knows only by its prefix or HTTP status.
const fn fallback(class: ErrorClass, advice: &'static str) -> Classification {
    Classification { class, advice, known: false }
}

/// The one table of error codes. Codes from the ReleaseEipSegmentAddress page, the Allocate page and
/// the common gateway codes; unknown codes fall back on the HTTP status.
pub fn classify(code: &str, http_status: u16) -> Classification {
    use ErrorClass::*;
    match code {
        // The segment (or the EIP the cloud looked for) does not exist.
        "OperationFailed.InstanceNotExist" | "InvalidAllocationId.NotFound" | "InvalidEipSegment.NotFound" => {
            c(Gone, "the segment no longer exists")
        }

        // Someone must change the segment or the account before a release can succeed.
        "Forbidden.ChargeTypeIsPrepaid" => c(
            Blocked,
            "the segment is subscription (prepaid) and cannot be released through the API: let it expire or convert it to pay-as-you-go, or set spec.deletionPolicy to Retain to let the object go",
        ),
        "InvalidOperation.DeletionProtection" => c(
            Blocked,
            "deletion protection is on for this segment: turn it off in the console, or set spec.deletionPolicy to Retain to keep the segment",
        ),
        "OperationFailed.EipInBwp" | "Forbidden.EipInBwp" => c(
            Blocked,
            "member EIPs are in an EIP bandwidth plan (shared bandwidth package): remove them from the plan, or set spec.deletionPolicy to Retain",
        ),
        "OperationFailed.EipStatusInvalid" => c(
            Blocked,
            "a member EIP is associated with an instance: disassociate it, or set spec.deletionPolicy to Retain",
        ),
        "OperationFailed.EipNumInconsistent" => c(
            Blocked,
            "member EIPs of the segment were released or moved on their own, so the cloud refuses to release the group: open a ticket with Alibaba Cloud, or set spec.deletionPolicy to Retain",
        ),
        "QuotaExceeded.Eip" => c(Blocked, "the account's EIP quota is used up: raise the quota or release unused EIPs"),
        "InsufficientBalance" => c(Blocked, "the account balance is insufficient: top it up"),

        // Wrong configuration or credentials: nothing changes until the spec or the secret does.
        "Forbidden" | "Forbbiden" => c(
            Terminal,
            "the segment does not belong to this account, or the credentials lack permission: check spec.segmentInstanceId and the RAM policy",
        ),
        "Forbidden.RAM" | "Forbidden.AccessKeyDisabled" | "Forbidden.NoPermission" => {
            c(Terminal, "the RAM identity lacks permission for this action: grant it in the RAM policy")
        }
        "Forbidden.RegionNotFound"
        | "InvalidRegion.NotSupport"
        | "InvalidRegionId.NotFound"
        | "InvalidRegionId.Malformed" => {
            c(Terminal, "the region is unknown or does not offer EIP segments: fix spec.regionId")
        }
        "InvalidParameter" | "MissingParameter" | "InvalidParameter.Mask" | "InvalidParameter.Bandwidth" => {
            c(Terminal, "the cloud rejected a parameter: fix the spec")
        }
        "IdempotentParameterMismatch" => c(
            Terminal,
            "the client token was used before with other parameters: the spec changed under a pending request",
        ),
        "SignatureDoesNotMatch" | "IncompleteSignature" => {
            c(Terminal, "the cloud rejected the request signature: check the AccessKeySecret")
        }
        "InvalidAccessKeyId.NotFound" | "InvalidAccessKeyId.Inactive" | "InvalidAccessKeyId" => {
            c(Terminal, "the AccessKeyId is unknown or disabled: check the credentials")
        }
        "InvalidSecurityToken.Expired"
        | "InvalidSecurityToken.Malformed"
        | "InvalidSecurityToken.MismatchWithAccessKey" => {
            c(Terminal, "the STS security token is expired or invalid: check the credential source")
        }
        "InvalidTimeStamp.Expired" | "InvalidTimeStamp.Format" => {
            c(Terminal, "the cloud rejected the request time: check the node's clock")
        }

        // Passing conditions: retry with backoff.
        "Throttling" | "Throttling.User" | "Throttling.Api" | "Throttling.Resource" => {
            c(Transient, "the cloud is throttling requests; retrying with backoff")
        }
        "TaskConflict.AssociateGlobalAccelerationInstance" => {
            c(Transient, "the cloud reports operations too frequent; retrying later")
        }
        "OperationFailed.LastTokenProcessing" => {
            c(Transient, "the previous request with this client token is still being processed")
        }
        "IncorrectEipStatus" | "IncorrectStatus" | "IncorrectEipStatus.EipSegment" => {
            c(Transient, "a member EIP is changing state; retrying when it settles")
        }
        "OperationConflict" | "SystemBusy" | "ServiceUnavailable" | "InternalError" | "UnknownError"
        | "ReserveIpFail" | "SignatureNonceUsed" => {
            c(Transient, "the cloud reported a passing failure; retrying with backoff")
        }
        code if code.starts_with("TaskConflict") || code.starts_with("Throttling") => {
            fallback(Transient, "the cloud reports a conflicting task; retrying later")
        }
        _ if http_status >= 500 || http_status == 429 => {
            fallback(Transient, "the cloud reported a server error; retrying with backoff")
        }
        _ => fallback(Terminal, "the cloud rejected the request: see the error code"),
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
        /// From the throttling headers' `TimeLeft`, when the cloud gave one.
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
                c(ErrorClass::Transient, "the call timed out; retrying with the same client token")
            }
            CloudError::Connect { .. } | CloudError::Transport { .. } => {
                c(ErrorClass::Transient, "the endpoint could not be reached; retrying with the same client token")
            }
            CloudError::Malformed { .. } => c(ErrorClass::Transient, "the cloud's answer could not be read; retrying"),
            CloudError::Credentials(_) => {
                c(ErrorClass::Terminal, "no usable credentials: check the credential configuration")
            }
            CloudError::Sts { http_status, code, .. } => match crate::cloud::sts::sts_error_class(*http_status, code) {
                ErrorClass::Transient => c(ErrorClass::Transient, "STS is failing for now; retrying"),
                class => c(
                    class,
                    "RRSA could not assume the role: check the RAM role's trust policy, the OIDC provider and the pod's token",
                ),
            },
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
            CloudError::Api { code, .. } if code.starts_with("HTTP") && code.len() == 7 => code,
            CloudError::Api { code, http_status, .. } if classify(code, *http_status).known => code,
            CloudError::Sts { code, .. } if classify(code, 0).known => code,
            CloudError::Api { .. } | CloudError::Sts { .. } => "Other",
            other => other.code(),
        }
    }

    pub fn is_throttling(&self) -> bool {
        matches!(self, CloudError::Api { code, http_status, .. } if code.starts_with("Throttling") || *http_status == 429)
    }

    /// True when this refusal of an AllocateEipSegmentAddress proves that its ClientToken created
    /// nothing: the parameters or the region are invalid, so no request with them ever succeeded.
    /// A refusal that depends on who asks or when (credentials, permissions, clock, quota, balance,
    /// throttling, a token used with other parameters) proves nothing: a first request with the
    /// same token may have created a segment that its replay is now refused from seeing.
    pub fn proves_nothing_created(&self) -> bool {
        matches!(self, CloudError::Api { code, .. } if matches!(code.as_str(),
            "InvalidParameter" | "MissingParameter" | "InvalidParameter.Mask" | "InvalidParameter.Bandwidth"
            | "InvalidRegion.NotSupport" | "Forbidden.RegionNotFound" | "InvalidRegionId.NotFound" | "InvalidRegionId.Malformed"))
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
    fn every_code_has_its_class() {
        let table: &[(&str, u16, ErrorClass)] = &[
            // ReleaseEipSegmentAddress, all 13 codes of the documented table.
            ("IncorrectEipStatus", 400, Transient),
            ("Forbidden.ChargeTypeIsPrepaid", 400, Blocked),
            ("Forbidden", 400, Terminal),
            ("TaskConflict.AssociateGlobalAccelerationInstance", 400, Transient),
            ("InvalidOperation.DeletionProtection", 400, Blocked),
            ("OperationFailed.InstanceNotExist", 400, Gone),
            ("OperationFailed.EipNumInconsistent", 400, Blocked),
            ("OperationFailed.EipStatusInvalid", 400, Blocked),
            ("OperationFailed.EipInBwp", 400, Blocked),
            ("Forbidden.EipInBwp", 400, Blocked),
            ("InvalidAllocationId.NotFound", 404, Gone),
            ("Forbidden.RegionNotFound", 404, Terminal),
            ("InternalError", 500, Transient),
            // AllocateEipSegmentAddress.
            ("Forbbiden", 403, Terminal),
            ("QuotaExceeded.Eip", 400, Blocked),
            ("InvalidParameter", 400, Terminal),
            ("InsufficientBalance", 400, Blocked),
            ("ReserveIpFail", 400, Transient),
            ("InvalidRegion.NotSupport", 400, Terminal),
            ("OperationConflict", 409, Transient),
            // Common gateway codes.
            ("Throttling", 400, Transient),
            ("Throttling.User", 400, Transient),
            ("Throttling.Api", 400, Transient),
            ("SignatureDoesNotMatch", 400, Terminal),
            ("IdempotentParameterMismatch", 400, Terminal),
            ("IncompleteSignature", 400, Terminal),
            ("InvalidAccessKeyId.NotFound", 404, Terminal),
            ("InvalidSecurityToken.Expired", 400, Terminal),
            ("InvalidTimeStamp.Expired", 400, Terminal),
            ("SignatureNonceUsed", 400, Transient),
            ("Forbidden.RAM", 403, Terminal),
            ("OperationFailed.LastTokenProcessing", 400, Transient),
            ("ServiceUnavailable", 503, Transient),
            ("SystemBusy", 400, Transient),
            ("TaskConflict", 400, Transient),
            ("SomethingNew", 502, Transient),
            ("SomethingNew", 429, Transient),
            ("SomethingNew", 400, Terminal),
        ];
        for (code, status, class) in table {
            let got = classify(code, *status);
            assert_eq!(got.class, *class, "{code} (HTTP {status})");
            assert!(!got.advice.is_empty());
        }
    }

    #[test]
    fn blocked_advice_names_the_way_out() {
        for code in [
            "Forbidden.ChargeTypeIsPrepaid",
            "InvalidOperation.DeletionProtection",
            "OperationFailed.EipInBwp",
            "Forbidden.EipInBwp",
            "OperationFailed.EipStatusInvalid",
        ] {
            assert!(classify(code, 400).advice.contains("deletionPolicy"), "{code}");
        }
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
