//! The simulated gateway's authentication: RPC v1 and V3 signatures, access keys, timestamps and
//! nonces, with Alibaba's error codes.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::world::{ApiError, Params};
use vpc_api::signer;

/// Timestamps further than this from the server's clock are refused, and nonces remembered this long.
pub const REQUEST_WINDOW: Duration = Duration::from_secs(15 * 60);

#[derive(Clone, Debug)]
pub struct AccessKey {
    pub secret: String,
    pub account: String,
    /// Required with the key when it is an STS credential.
    pub security_token: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Who the key speaks for within its account (what STS GetCallerIdentity reports).
    pub principal: Principal,
}

impl AccessKey {
    /// A permanent key of the account itself (its root identity).
    pub fn of_account(account: &str, secret: &str) -> AccessKey {
        AccessKey {
            secret: secret.to_string(),
            account: account.to_string(),
            security_token: None,
            expires_at: None,
            principal: Principal::Account,
        }
    }
}

/// The identity behind a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// A permanent AccessKey of the Alibaba Cloud account (`acs:ram::<account>:root`).
    Account,
    /// Temporary credentials of an assumed RAM role
    /// (`acs:ram::<account>:assumed-role/<role_name>/<session>`).
    AssumedRole { role_name: String, role_id: String, session: String },
}

/// An authenticated caller: the account it acts for and who it is within it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub access_key_id: String,
    pub account: String,
    pub principal: Principal,
}

#[derive(Default)]
pub struct Keyring {
    keys: HashMap<String, AccessKey>,
    nonces: HashMap<String, Instant>,
    /// Calls each key authenticated.
    uses: HashMap<String, u64>,
}

/// What the gateway saw of a request, enough to check either signature version.
pub struct SignedRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a [(String, String)],
    /// Lower-cased names, every value of each.
    pub headers: &'a HashMap<String, Vec<String>>,
    pub body: &'a [u8],
    pub params: &'a Params,
}

impl SignedRequest<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.first()).map(String::as_str)
    }

    pub fn is_v3(&self) -> bool {
        self.header("authorization").is_some_and(|a| a.starts_with(signer::V3_ALGORITHM))
    }

    /// The API version, from the V3 header or the RPC parameter.
    pub fn version(&self) -> &str {
        match self.header("x-acs-version") {
            Some(v) if self.is_v3() => v,
            _ => self.params.get("Version"),
        }
    }

    /// The action, from the V3 header or the RPC parameter.
    pub fn action(&self) -> &str {
        match self.header("x-acs-action") {
            Some(a) if self.is_v3() => a,
            _ => self.params.get("Action"),
        }
    }
}

fn err(http_status: u16, code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError { http_status, code, message: message.into() }
}

impl Keyring {
    /// Adds a key, or replaces the one with this ID.
    pub fn insert(&mut self, access_key_id: &str, key: AccessKey) {
        self.keys.insert(access_key_id.to_string(), key);
    }

    /// Revokes a key: later calls with it meet `InvalidAccessKeyId.NotFound`. False if unknown.
    pub fn remove(&mut self, access_key_id: &str) -> bool {
        self.keys.remove(access_key_id).is_some()
    }

    /// Every key's ID with its account, sorted by ID (no secrets).
    pub fn listing(&self) -> Vec<(String, String)> {
        let mut keys: Vec<(String, String)> =
            self.keys.iter().map(|(id, key)| (id.clone(), key.account.clone())).collect();
        keys.sort();
        keys
    }

    /// How many calls the key has authenticated (for an STS key: with its SecurityToken, in time).
    pub fn uses(&self, access_key_id: &str) -> u64 {
        self.uses.get(access_key_id).copied().unwrap_or(0)
    }

    /// Checks the request's signature and returns who sent it.
    pub fn authenticate(
        &mut self,
        req: &SignedRequest<'_>,
        now: DateTime<Utc>,
        clock: Instant,
    ) -> Result<Caller, ApiError> {
        self.nonces.retain(|_, seen| clock.duration_since(*seen) < REQUEST_WINDOW);
        let (access_key_id, timestamp, nonce, token) = if req.is_v3() { self.v3_fields(req)? } else { v1_fields(req)? };
        let key = self
            .keys
            .get(&access_key_id)
            .ok_or_else(|| err(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found."))?
            .clone();
        let sent_at = parse_timestamp(&timestamp).ok_or_else(|| {
            err(
                400,
                "InvalidTimeStamp.Format",
                format!("Specified time stamp or date value is not well formatted: {timestamp}"),
            )
        })?;
        if (now - sent_at).abs() > chrono::Duration::from_std(REQUEST_WINDOW).unwrap_or_default() {
            return Err(err(
                400,
                "InvalidTimeStamp.Expired",
                format!("Specified time stamp or date value is expired: {timestamp}"),
            ));
        }
        if let Some(expected) = &key.security_token {
            match &token {
                None => return Err(err(400, "InvalidSecurityToken.Malformed", "The Security Token is missing.")),
                Some(t) if t != expected => {
                    return Err(err(
                        400,
                        "InvalidSecurityToken.MismatchWithAccessKey",
                        "The Security Token does not match the access key.",
                    ));
                }
                _ => {}
            }
            if key.expires_at.is_some_and(|exp| exp <= now) {
                return Err(err(400, "InvalidSecurityToken.Expired", "The Security Token has expired."));
            }
        }
        let (expected, server_string) =
            if req.is_v3() { v3_expected(req, &key.secret)? } else { v1_expected(req, &key.secret) };
        let given = if req.is_v3() {
            v3_authorization_part(req, "Signature").unwrap_or_default()
        } else {
            req.params.get("Signature").to_string()
        };
        if !signer::signatures_match(&expected, &given) {
            return Err(err(
                400,
                "SignatureDoesNotMatch",
                format!(
                    "Specified signature is not matched with our calculation. server string to sign is:{server_string}"
                ),
            ));
        }
        if self.nonces.contains_key(&nonce) {
            return Err(err(400, "SignatureNonceUsed", "Specified signature nonce was used already."));
        }
        self.nonces.insert(nonce, clock);
        *self.uses.entry(access_key_id.clone()).or_default() += 1;
        Ok(Caller { access_key_id, account: key.account, principal: key.principal })
    }

    fn v3_fields(&self, req: &SignedRequest<'_>) -> Result<(String, String, String, Option<String>), ApiError> {
        let ak = v3_authorization_part(req, "Credential").ok_or_else(|| {
            err(400, "IncompleteSignature", "The Authorization header is incomplete: Credential is missing.")
        })?;
        let date = req
            .header("x-acs-date")
            .ok_or_else(|| err(400, "MissingParameter", "The x-acs-date header is missing."))?;
        let nonce = req
            .header("x-acs-signature-nonce")
            .ok_or_else(|| err(400, "MissingParameter", "The x-acs-signature-nonce header is missing."))?;
        Ok((ak, date.to_string(), nonce.to_string(), req.header("x-acs-security-token").map(str::to_string)))
    }
}

fn v1_fields(req: &SignedRequest<'_>) -> Result<(String, String, String, Option<String>), ApiError> {
    let p = req.params;
    if p.get("Signature").is_empty() {
        return Err(err(400, "IncompleteSignature", "The request signature does not conform to Aliyun standards."));
    }
    if p.get("AccessKeyId").is_empty() {
        return Err(err(
            400,
            "MissingParameter",
            "The input parameter \"AccessKeyId\" that is mandatory for processing this request is not supplied.",
        ));
    }
    let method = p.get("SignatureMethod");
    if !method.is_empty() && method != "HMAC-SHA1" {
        return Err(err(400, "InvalidParameter", format!("The SignatureMethod {method} is not supported.")));
    }
    let token = Some(p.get("SecurityToken").to_string()).filter(|t| !t.is_empty());
    Ok((p.get("AccessKeyId").to_string(), p.get("Timestamp").to_string(), p.get("SignatureNonce").to_string(), token))
}

fn v1_expected(req: &SignedRequest<'_>, secret: &str) -> (String, String) {
    let params = req.params.0.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    let string_to_sign = signer::rpc_string_to_sign(req.method, params.clone());
    (signer::rpc_signature(req.method, params, secret), string_to_sign)
}

/// `Credential=…`, `SignedHeaders=…` or `Signature=…` from a V3 Authorization header.
fn v3_authorization_part(req: &SignedRequest<'_>, name: &str) -> Option<String> {
    let auth = req.header("authorization")?.strip_prefix(signer::V3_ALGORITHM)?;
    auth.split(',').find_map(|part| part.trim().strip_prefix(name)?.strip_prefix('=').map(str::to_string))
}

fn v3_expected(req: &SignedRequest<'_>, secret: &str) -> Result<(String, String), ApiError> {
    let payload_hash = req
        .header("x-acs-content-sha256")
        .ok_or_else(|| err(400, "MissingParameter", "The x-acs-content-sha256 header is missing."))?;
    if payload_hash != signer::sha256_hex(req.body) {
        return Err(err(400, "SignatureDoesNotMatch", "The x-acs-content-sha256 header does not match the body."));
    }
    let signed = v3_authorization_part(req, "SignedHeaders").ok_or_else(|| {
        err(400, "IncompleteSignature", "The Authorization header is incomplete: SignedHeaders is missing.")
    })?;
    let mut headers = Vec::new();
    for name in signed.split(';').filter(|n| !n.is_empty()) {
        let mut values = req.headers.get(name).cloned().unwrap_or_default();
        values.iter_mut().for_each(|v| *v = v.trim().to_string());
        values.sort();
        headers.push((name.to_string(), values.join(",")));
    }
    let v3 = signer::V3Request {
        method: req.method,
        path: req.path,
        query: req.query.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect(),
        headers,
        payload_sha256: payload_hash,
    };
    Ok((v3.signature(secret), v3.canonical_request()))
}

fn parse_timestamp(value: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| chrono::NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%SZ").ok().map(|t| t.and_utc()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ID: &str = "LTAIproptest";
    const SECRET: &str = "proptest-secret";

    /// Signs like a client, sends the parameters through form encoding and decoding, and verifies.
    fn round_trip(extra: &[(String, String)], nonce: &str) -> Result<String, ApiError> {
        let now = Utc::now();
        let mut params: Vec<(String, String)> = vec![
            ("Action".into(), "DescribeEipSegment".into()),
            ("Version".into(), "2016-04-28".into()),
            ("AccessKeyId".into(), ID.into()),
            ("SignatureMethod".into(), "HMAC-SHA1".into()),
            ("SignatureNonce".into(), nonce.into()),
            ("Timestamp".into(), now.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
        ];
        params.extend(extra.iter().cloned());
        let signature = signer::rpc_signature("POST", params.iter().map(|(k, v)| (k.as_str(), v.as_str())), SECRET);
        params.push(("Signature".into(), signature));
        let body: String = params
            .iter()
            .map(|(k, v)| format!("{}={}", signer::percent_encode(k), signer::percent_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let decoded = Params(super::super::gateway::form_urlencoded_pairs(body.as_bytes()).into_iter().collect());
        let mut keyring = Keyring::default();
        keyring.insert(ID, AccessKey::of_account("a", SECRET));
        let headers = HashMap::new();
        let request = SignedRequest {
            method: "POST",
            path: "/",
            query: &[],
            headers: &headers,
            body: body.as_bytes(),
            params: &decoded,
        };
        keyring.authenticate(&request, now, Instant::now()).map(|caller| caller.account)
    }

    proptest! {
        #[test]
        fn any_parameters_survive_encoding_and_verify(
            extra in prop::collection::btree_map("[A-Z][A-Za-z]{0,10}", any::<String>(), 0..8),
        ) {
            const COMMON: &[&str] = &["Action", "Version", "AccessKeyId", "SignatureMethod", "SignatureNonce", "Timestamp", "Signature"];
            let extra: Vec<(String, String)> = extra.into_iter().filter(|(k, _)| !COMMON.contains(&k.as_str())).collect();
            prop_assert_eq!(round_trip(&extra, "n").map_err(|e| e.code), Ok("a".to_string()));
        }

        #[test]
        fn order_of_parameters_does_not_matter(values in prop::collection::vec(".{0,6}", 1..6), seed in any::<u64>()) {
            let params: Vec<(String, String)> = values.iter().enumerate().map(|(i, v)| (format!("K{i}"), v.clone())).collect();
            let mut shuffled = params.clone();
            let n = shuffled.len();
            shuffled.rotate_left((seed as usize) % n);
            let a = signer::rpc_signature("POST", params.iter().map(|(k, v)| (k.as_str(), v.as_str())), "s");
            let b = signer::rpc_signature("POST", shuffled.iter().map(|(k, v)| (k.as_str(), v.as_str())), "s");
            prop_assert_eq!(a, b);
        }

        #[test]
        fn a_changed_value_changes_the_signature(value in ".{1,12}") {
            let params = [("Action", "DescribeEipSegment"), ("V", value.as_str())];
            let good = signer::rpc_signature("POST", params, SECRET);
            let tampered = signer::rpc_signature("POST", [("Action", "DescribeEipSegment"), ("V", &format!("{value}x"))], SECRET);
            prop_assert_ne!(good, tampered);
        }
    }

    #[test]
    fn every_byte_value_round_trips_through_the_form_encoding() {
        let all: String = (1u8..=127).map(char::from).chain(['é', '中', '😀']).collect();
        assert_eq!(round_trip(&[("Everything".into(), all)], "every-byte").map_err(|e| e.code), Ok("a".to_string()));
    }
}
