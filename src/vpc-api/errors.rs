//! The classification of the VPC API's error codes. Every error code the operator can meet is
//! classified here and nowhere else; the rest of the code only asks the classification (its class,
//! advice and what else the code tells).

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

    /// The class [`ErrorClass::as_str`] names (as status records it).
    pub fn parse(value: &str) -> Option<ErrorClass> {
        [ErrorClass::Gone, ErrorClass::Transient, ErrorClass::Blocked, ErrorClass::Terminal]
            .into_iter()
            .find(|class| class.as_str() == value)
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
    /// The code is of the InvalidSecurityToken family, known or not: the STS token sent with the
    /// request was refused (expired, malformed, not the key's), so fresh credentials may pass.
    pub token_refused: bool,
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
    /// Member EIPs of the segment stand in the way of its release (bound to an instance, in a
    /// bandwidth plan, changing state): naming them tells the user which.
    MembersInTheWay,
    /// STS refused the pod's OIDC token (expired, invalid, for another audience): the token file
    /// is what to check.
    OidcTokenRefused,
}

impl Classification {
    /// One of the table's own codes, or a failure the caller knows (a timeout, no credentials).
    pub const fn new(class: ErrorClass, advice: &'static str) -> Classification {
        Classification { class, advice, known: true, refusal: Refusal::Other, token_refused: false }
    }

    const fn refusing(self, refusal: Refusal) -> Classification {
        Classification { refusal, ..self }
    }

    const fn refusing_the_token(self) -> Classification {
        Classification { token_refused: true, ..self }
    }
}

const fn c(class: ErrorClass, advice: &'static str) -> Classification {
    Classification::new(class, advice)
}

/// A code the table knows only by its prefix or HTTP status (its token family included).
fn fallback(code: &str, class: ErrorClass, advice: &'static str) -> Classification {
    let token_refused = code.starts_with("InvalidSecurityToken");
    Classification { class, advice, known: false, refusal: Refusal::Other, token_refused }
}

/// The one table of error codes. Codes from the ReleaseEipSegmentAddress page, the Allocate page and
/// the common gateway codes; unknown codes fall back on the HTTP status.
// A data table: one arm per family of codes, as long as the cloud's list of them.
#[allow(clippy::too_many_lines)]
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
        )
        .refusing(Refusal::MembersInTheWay),
        "OperationFailed.EipStatusInvalid" => c(
            Blocked,
            "a member EIP is associated with an instance: disassociate it, or set spec.deletionPolicy to Retain",
        )
        .refusing(Refusal::MembersInTheWay),
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
                .refusing_the_token()
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
        "IncorrectEipStatus" => c(Transient, "a member EIP is changing state; retrying when it settles")
            .refusing(Refusal::MembersInTheWay),
        "IncorrectStatus" | "IncorrectEipStatus.EipSegment" => {
            c(Transient, "a member EIP is changing state; retrying when it settles")
        }
        "OperationConflict" | "SystemBusy" | "ServiceUnavailable" | "InternalError" | "UnknownError"
        | "ReserveIpFail" | "SignatureNonceUsed" => {
            c(Transient, "the cloud reported a passing failure; retrying with backoff")
        }
        code if code.starts_with("Throttling") || http_status == 429 => {
            fallback(code, Transient, "the cloud is throttling requests; retrying with backoff")
                .refusing(Refusal::Throttled)
        }
        code if code.starts_with("TaskConflict") => {
            fallback(code, Transient, "the cloud reports a conflicting task; retrying later")
        }
        code if http_status >= 500 => {
            fallback(code, Transient, "the cloud reported a server error; retrying with backoff")
        }
        code => fallback(code, Terminal, "the cloud rejected the request: see the error code"),
    }
}

/// The code of an error answer without a code of its own: its HTTP status (`HTTP503`).
pub fn bodyless_code(http_status: u16) -> String {
    format!("HTTP{http_status}")
}

/// Whether `code` is the code of an error answer without one ([`bodyless_code`]): a label from a
/// bounded set.
pub fn is_bodyless_code(code: &str) -> bool {
    code.starts_with("HTTP") && code.len() == 7
}

/// The refusals of STS AssumeRoleWithOIDC (RRSA), by code and HTTP status (0: no answer came):
/// passing when STS is (throttling, server errors, an answer that never came or could not be
/// read); anything else (token, role, provider, parameters) needs the configuration changed. Its
/// codes are `known` only where they are the VPC table's own, as the gateway's common codes are.
pub fn classify_sts(code: &str, http_status: u16) -> Classification {
    let passing = matches!(code, "ServiceUnavailable" | "InternalError" | "SystemBusy" | "MalformedResponse");
    let transient =
        http_status == 0 || http_status >= 500 || http_status == 429 || code.starts_with("Throttling") || passing;
    let classification = if transient {
        c(ErrorClass::Transient, "STS is failing for now; retrying")
    } else {
        c(
            ErrorClass::Terminal,
            "RRSA could not assume the role: check the RAM role's trust policy, the OIDC provider and the pod's token",
        )
    };
    let refusal =
        if code.starts_with("AuthenticationFail.OIDCToken") { Refusal::OidcTokenRefused } else { Refusal::Other };
    Classification { known: classify(code, 0).known, ..classification.refusing(refusal) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ErrorClass::*;

    /// Every code of the table, with its HTTP status as documented, its class and what it tells.
    const TABLE: &[(&str, u16, ErrorClass, Refusal)] = &[
        // ReleaseEipSegmentAddress, all 13 codes of the documented table.
        ("IncorrectEipStatus", 400, Transient, Refusal::MembersInTheWay),
        ("Forbidden.ChargeTypeIsPrepaid", 400, Blocked, Refusal::Other),
        ("Forbidden", 400, Terminal, Refusal::Other),
        ("TaskConflict.AssociateGlobalAccelerationInstance", 400, Transient, Refusal::Other),
        ("InvalidOperation.DeletionProtection", 400, Blocked, Refusal::Other),
        ("OperationFailed.InstanceNotExist", 400, Gone, Refusal::Other),
        ("OperationFailed.EipNumInconsistent", 400, Blocked, Refusal::Other),
        ("OperationFailed.EipStatusInvalid", 400, Blocked, Refusal::MembersInTheWay),
        ("OperationFailed.EipInBwp", 400, Blocked, Refusal::MembersInTheWay),
        ("Forbidden.EipInBwp", 400, Blocked, Refusal::MembersInTheWay),
        ("InvalidAllocationId.NotFound", 404, Gone, Refusal::Other),
        ("Forbidden.RegionNotFound", 404, Terminal, Refusal::InvalidRequest),
        ("InternalError", 500, Transient, Refusal::Other),
        // AllocateEipSegmentAddress.
        ("Forbbiden", 403, Terminal, Refusal::Other),
        ("QuotaExceeded.Eip", 400, Blocked, Refusal::Other),
        ("InvalidParameter", 400, Terminal, Refusal::InvalidRequest),
        ("InsufficientBalance", 400, Blocked, Refusal::Other),
        ("ReserveIpFail", 400, Transient, Refusal::Other),
        ("InvalidRegion.NotSupport", 400, Terminal, Refusal::InvalidRequest),
        ("OperationConflict", 409, Transient, Refusal::Other),
        // DescribeEipSegment and the parameters of all.
        ("InvalidEipSegment.NotFound", 404, Gone, Refusal::Other),
        ("InvalidRegionId.NotFound", 404, Terminal, Refusal::InvalidRequest),
        ("InvalidRegionId.Malformed", 400, Terminal, Refusal::InvalidRequest),
        ("MissingParameter", 400, Terminal, Refusal::InvalidRequest),
        ("InvalidParameter.Mask", 400, Terminal, Refusal::InvalidRequest),
        ("InvalidParameter.Bandwidth", 400, Terminal, Refusal::InvalidRequest),
        ("IncorrectStatus", 400, Transient, Refusal::Other),
        ("IncorrectEipStatus.EipSegment", 400, Transient, Refusal::Other),
        // Common gateway codes.
        ("Throttling", 400, Transient, Refusal::Throttled),
        ("Throttling.User", 400, Transient, Refusal::Throttled),
        ("Throttling.Api", 400, Transient, Refusal::Throttled),
        ("Throttling.Resource", 400, Transient, Refusal::Throttled),
        ("SignatureDoesNotMatch", 400, Terminal, Refusal::Other),
        ("IdempotentParameterMismatch", 400, Terminal, Refusal::Other),
        ("IncompleteSignature", 400, Terminal, Refusal::Other),
        ("InvalidAccessKeyId.NotFound", 404, Terminal, Refusal::Other),
        ("InvalidAccessKeyId.Inactive", 400, Terminal, Refusal::Other),
        ("InvalidAccessKeyId", 400, Terminal, Refusal::Other),
        ("InvalidSecurityToken.Expired", 400, Terminal, Refusal::Other),
        ("InvalidSecurityToken.Malformed", 400, Terminal, Refusal::Other),
        ("InvalidSecurityToken.MismatchWithAccessKey", 400, Terminal, Refusal::Other),
        ("InvalidTimeStamp.Expired", 400, Terminal, Refusal::Other),
        ("InvalidTimeStamp.Format", 400, Terminal, Refusal::Other),
        ("SignatureNonceUsed", 400, Transient, Refusal::Other),
        ("Forbidden.RAM", 403, Terminal, Refusal::Other),
        ("Forbidden.AccessKeyDisabled", 403, Terminal, Refusal::Other),
        ("Forbidden.NoPermission", 403, Terminal, Refusal::Other),
        ("OperationFailed.LastTokenProcessing", 400, Transient, Refusal::Other),
        ("ServiceUnavailable", 503, Transient, Refusal::Other),
        ("SystemBusy", 400, Transient, Refusal::Other),
        ("UnknownError", 500, Transient, Refusal::Other),
    ];

    #[test]
    fn every_code_has_its_class() {
        let fallbacks: &[(&str, u16, ErrorClass)] = &[
            ("TaskConflict", 400, Transient),
            ("SomethingNew", 502, Transient),
            ("SomethingNew", 429, Transient),
            ("SomethingNew", 400, Terminal),
        ];
        let known = TABLE.iter().map(|(code, status, class, _)| (*code, *status, *class));
        for (code, status, class) in known.chain(fallbacks.iter().copied()) {
            let got = classify(code, status);
            assert_eq!(got.class, class, "{code} (HTTP {status})");
            assert!(!got.advice.is_empty());
        }
    }

    #[test]
    fn every_code_tells_what_it_refuses() {
        for (code, status, _, refusal) in TABLE {
            let got = classify(code, *status);
            assert_eq!((got.refusal, got.known), (*refusal, true), "{code}");
        }
        for (code, status) in [("Throttling.NewKindOfLimit", 400), ("SomethingNew", 429)] {
            let got = classify(code, status);
            assert_eq!((got.refusal, got.known), (Refusal::Throttled, false), "{code} (HTTP {status})");
        }
        for (code, status) in [("TaskConflict", 400), ("SomethingNew", 502), ("SomethingNew", 400)] {
            assert_eq!(classify(code, status).refusal, Refusal::Other, "{code} (HTTP {status})");
        }
    }

    #[test]
    fn the_table_has_a_row_for_each_of_its_codes() {
        let source = include_str!("errors.rs");
        let table = &source[source.find("pub fn classify(").unwrap()..];
        let table = &table[..table.find("\n}\n").unwrap()];
        let codes = table.split('"').skip(1).step_by(2).filter(|s| !s.is_empty() && !s.contains(' '));
        let rows: Vec<&str> = TABLE.iter().map(|(code, ..)| *code).collect();
        let mut counted = 0;
        for code in codes.filter(|c| !["Throttling", "TaskConflict", "InvalidSecurityToken"].contains(c)) {
            assert!(rows.contains(&code), "{code} has no row in TABLE");
            counted += 1;
        }
        assert!(counted >= 50, "the table's codes were not found: {counted}");
    }

    #[test]
    fn the_invalid_security_token_family_asks_for_fresh_credentials() {
        for (code, status, ..) in TABLE {
            let family = code.starts_with("InvalidSecurityToken");
            assert_eq!(classify(code, *status).token_refused, family, "{code}");
        }
        for status in [400, 429, 503] {
            let unknown = classify("InvalidSecurityToken.SomethingNew", status);
            assert!(unknown.token_refused && !unknown.known, "HTTP {status}");
            assert!(!classify("SomethingNew", status).token_refused, "HTTP {status}");
        }
        let throttled = classify("InvalidSecurityToken.SomethingNew", 429);
        assert_eq!((throttled.class, throttled.refusal), (Transient, Refusal::Throttled));
    }

    #[test]
    fn sts_failures_are_passing_only_when_sts_is() {
        assert_eq!(classify_sts("Timeout", 0).class, Transient);
        assert_eq!(classify_sts("ConnectionFailed", 0).class, Transient);
        assert_eq!(classify_sts("ServiceUnavailable", 503).class, Transient);
        assert_eq!(classify_sts("Throttling.User", 400).class, Transient);
        assert_eq!(classify_sts("MalformedResponse", 200).class, Transient);
        assert_eq!(classify_sts("InternalError", 400).class, Transient);
        assert_eq!(classify_sts("SystemBusy", 400).class, Transient);
        assert_eq!(classify_sts("SomethingNew", 429).class, Transient);
        for terminal in [
            "AuthenticationFail.OIDCToken.Expired",
            "AuthenticationFail.OIDCToken.Invalid",
            "AuthenticationFail.OIDCToken.AudienceNotMatch",
            "AuthenticationFail.NoPermission",
            "EntityNotExist.Role",
            "InvalidParameter.RoleArn",
        ] {
            assert_eq!(classify_sts(terminal, 401).class, Terminal, "{terminal}");
        }
    }

    #[test]
    fn sts_names_the_token_file_only_for_a_refused_oidc_token() {
        for code in [
            "AuthenticationFail.OIDCToken.Expired",
            "AuthenticationFail.OIDCToken.Invalid",
            "AuthenticationFail.OIDCToken.AudienceNotMatch",
        ] {
            assert_eq!(classify_sts(code, 401).refusal, Refusal::OidcTokenRefused, "{code}");
        }
        for code in ["AuthenticationFail.NoPermission", "EntityNotExist.Role", "Throttling.User", "HTTP403"] {
            assert_eq!(classify_sts(code, 401).refusal, Refusal::Other, "{code}");
        }
    }

    #[test]
    fn sts_codes_label_metrics_only_when_the_vpc_table_knows_them() {
        for code in ["Throttling.User", "InternalError", "ServiceUnavailable"] {
            assert!(classify_sts(code, 503).known, "{code}");
        }
        for code in ["AuthenticationFail.OIDCToken.Expired", "EntityNotExist.Role", "Timeout", "MalformedResponse"] {
            assert!(!classify_sts(code, 401).known, "{code}");
        }
    }

    #[test]
    fn an_answer_without_a_code_is_known_by_its_status() {
        assert_eq!(bodyless_code(503), "HTTP503");
        assert!(is_bodyless_code(&bodyless_code(429)));
        for code in ["HTTP5030000", "HTTP", "Throttling", "InternalError"] {
            assert!(!is_bodyless_code(code), "{code}");
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
