//! The classification of the VPC API's error codes. Every error code the operator can meet is
//! classified here and nowhere else; the decision logic only looks at the class.

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
    /// What else the code tells, beyond its class.
    pub refusal: Refusal,
}

/// What a refusal tells about the request beyond its class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Nothing more.
    Other,
    /// The cloud's flow control refused the call: it was not carried out.
    Throttled,
    /// The request's parameters or region are invalid: no request with them is ever carried out.
    InvalidRequest,
}

impl Classification {
    /// One of the table's own codes, or a failure the caller knows (a timeout, no credentials).
    pub const fn new(class: ErrorClass, advice: &'static str) -> Classification {
        Classification { class, advice, known: true, refusal: Refusal::Other }
    }

    const fn refusing(self, refusal: Refusal) -> Classification {
        Classification { refusal, ..self }
    }
}

const fn c(class: ErrorClass, advice: &'static str) -> Classification {
    Classification::new(class, advice)
}

/// A code the table knows only by its prefix or HTTP status.
const fn fallback(class: ErrorClass, advice: &'static str) -> Classification {
    Classification { class, advice, known: false, refusal: Refusal::Other }
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
                .refusing(Refusal::InvalidRequest)
        }
        "InvalidParameter" | "MissingParameter" | "InvalidParameter.Mask" | "InvalidParameter.Bandwidth" => {
            c(Terminal, "the cloud rejected a parameter: fix the spec").refusing(Refusal::InvalidRequest)
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
            c(Transient, "the cloud is throttling requests; retrying with backoff").refusing(Refusal::Throttled)
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
        code if code.starts_with("Throttling") || http_status == 429 => {
            fallback(Transient, "the cloud is throttling requests; retrying with backoff").refusing(Refusal::Throttled)
        }
        code if code.starts_with("TaskConflict") => {
            fallback(Transient, "the cloud reports a conflicting task; retrying later")
        }
        _ if http_status >= 500 => fallback(Transient, "the cloud reported a server error; retrying with backoff"),
        _ => fallback(Terminal, "the cloud rejected the request: see the error code"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ErrorClass::*;

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
}
