//! Alibaba Cloud request signing: RPC signature v1 (HMAC-SHA1) and V3 (ACS3-HMAC-SHA256).
//!
//! Both the client and the simulator use this module; the vectors in `tests/fixtures/` produced by
//! Alibaba's official Python SDK pin it, so a shared bug cannot hide.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// RFC 3986 percent-encoding over UTF-8, as the SDKs do it: unreserved bytes stay, everything else is
/// `%XX` in upper-case hex (so space is `%20`, `*` is `%2A`, and `~` stays).
pub fn percent_encode(input: &str) -> String {
    let mut out = String::with_capacity(input.len() * 3);
    for byte in input.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Parameters sorted by key in byte order, encoded and joined as `k=v&k=v`. Empty values are signed
/// as `k=`, as every official SDK does (the legacy one always sends an empty `SignatureType`).
pub fn canonical_query<'a>(params: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut pairs: Vec<(&str, &str)> = params.into_iter().collect();
    pairs.sort();
    pairs.iter().map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v))).collect::<Vec<_>>().join("&")
}

/// The v1 string to sign: `METHOD&%2F&percentEncode(canonicalQuery)`. `Signature` itself is excluded.
pub fn rpc_string_to_sign<'a>(method: &str, params: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let query = canonical_query(params.into_iter().filter(|(k, _)| *k != "Signature"));
    format!("{}&%2F&{}", method.to_ascii_uppercase(), percent_encode(&query))
}

/// RPC signature v1: `Base64(HMAC-SHA1(secret + "&", stringToSign))`.
pub fn rpc_signature<'a>(method: &str, params: impl IntoIterator<Item = (&'a str, &'a str)>, secret: &str) -> String {
    let string_to_sign = rpc_string_to_sign(method, params);
    let mut mac = Hmac::<Sha1>::new_from_slice(format!("{secret}&").as_bytes()).expect("HMAC takes any key length");
    mac.update(string_to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

pub const V3_ALGORITHM: &str = "ACS3-HMAC-SHA256";

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// A request as V3 signs it. `headers` are the signed headers, names lower-cased.
pub struct V3Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: Vec<(&'a str, &'a str)>,
    pub headers: Vec<(String, String)>,
    pub payload_sha256: &'a str,
}

impl V3Request<'_> {
    pub fn signed_header_names(&self) -> String {
        let mut names: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        names.sort();
        names.join(";")
    }

    pub fn canonical_request(&self) -> String {
        // The SDK sorts the raw keys and encodes only the values.
        let mut query: Vec<(&str, String)> = self.query.iter().map(|(k, v)| (*k, percent_encode(v))).collect();
        query.sort();
        let query = query.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
        let mut headers: Vec<(&str, &str)> = self.headers.iter().map(|(k, v)| (k.as_str(), v.trim())).collect();
        headers.sort();
        let headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
        format!(
            "{}\n{}\n{}\n{}\n{}\n{}",
            self.method.to_ascii_uppercase(),
            if self.path.is_empty() { "/" } else { self.path },
            query,
            headers,
            self.signed_header_names(),
            self.payload_sha256
        )
    }

    pub fn string_to_sign(&self) -> String {
        format!("{V3_ALGORITHM}\n{}", sha256_hex(self.canonical_request().as_bytes()))
    }

    /// Hex HMAC-SHA256 of the string to sign.
    pub fn signature(&self, secret: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
        mac.update(self.string_to_sign().as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    pub fn authorization(&self, access_key_id: &str, secret: &str) -> String {
        format!(
            "{V3_ALGORITHM} Credential={access_key_id},SignedHeaders={},Signature={}",
            self.signed_header_names(),
            self.signature(secret)
        )
    }
}

/// Constant-time comparison, so the simulator's verifier leaks nothing through timing.
pub fn signatures_match(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_reserved_and_unicode_like_the_sdk() {
        assert_eq!(percent_encode("a b*c~d"), "a%20b%2Ac~d");
        assert_eq!(percent_encode("é/+="), "%C3%A9%2F%2B%3D");
        assert_eq!(percent_encode("AZaz09-_.~"), "AZaz09-_.~");
    }

    #[test]
    fn every_byte_is_encoded_or_kept() {
        for b in 0u8..=127 {
            let s = (b as char).to_string();
            let enc = percent_encode(&s);
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                assert_eq!(enc, s);
            } else {
                assert_eq!(enc, format!("%{b:02X}"));
            }
        }
    }

    #[test]
    fn v1_ignores_parameter_order_but_signs_empty_values() {
        let a = rpc_signature("POST", [("B", "2"), ("A", "1"), ("Empty", "")], "secret");
        let b = rpc_signature("POST", [("Empty", ""), ("A", "1"), ("B", "2")], "secret");
        assert_eq!(a, b);
        assert_ne!(a, rpc_signature("POST", [("A", "1"), ("B", "2")], "secret"));
        assert_ne!(a, rpc_signature("POST", [("A", "1"), ("B", "3")], "secret"));
    }
}
