//! Property tests through the library's public API, over real HTTP where it matters:
//! - signing: parameter order never matters (v1 and V3), the pairing of names and values always
//!   does, and the canonical query decodes back to exactly the parameters;
//! - encoding: every string, including every byte value UTF-8 can carry in names and values,
//!   survives the client's form encoding and the simulator's decoding, and verifies there;
//! - parsing: whatever bytes, status and throttling header an endpoint answers, the real client
//!   returns a value or a classified error, never a panic, and an unreadable success is never taken
//!   for a certain failure.
//!
//! The unit properties in src/cloud/client.rs and src/simulator/auth.rs cover `read_answer` on its
//! own and the verifier on form-encoded bodies; these add the paths a deployment really takes.

use std::collections::BTreeSet;
use std::sync::OnceLock;
use std::time::Duration;

use clap::Parser;
use eipsegment_operator::cloud::error::LONGEST_HINT;
use eipsegment_operator::cloud::model::{AllocateRequest, AllocateResponse};
use eipsegment_operator::cloud::{Action, CloudError, ErrorClass, VpcClient, client, signer};
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vpc_simulator::{self as simulator, DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET};

// ---- Shared machinery ---------------------------------------------------------------------------

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap())
}

/// One simulator for the whole binary, serving on loopback from the shared runtime.
fn simulator_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        client::install_crypto_provider();
        let args = simulator::Args::parse_from(["vpc-simulator", "--allocate-seconds", "0.1"]);
        let (url, _task) = runtime().block_on(simulator::start_in_process(args)).unwrap();
        url
    })
}

fn client_for(url: &str, timeout: Duration) -> VpcClient {
    eipsegment_test_support::vpc_client(url, DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET, timeout)
}

/// The mutating calls take a place within the client's rate (none is set here, so one is free).
async fn admission(client: &VpcClient, action: Action) -> eipsegment_operator::cloud::Admission {
    match client.admit(action, "cn-hangzhou").await {
        eipsegment_operator::cloud::Admit::Granted(a) => a,
        other => panic!("no admission: {other:?}"),
    }
}

async fn allocate(client: &VpcClient, request: &AllocateRequest) -> Result<AllocateResponse, CloudError> {
    client.allocate(request, admission(client, Action::AllocateEipSegmentAddress).await).await
}

async fn release(client: &VpcClient, region: &str, id: &str, token: &str) -> Result<String, CloudError> {
    client.release(region, id, token, admission(client, Action::ReleaseEipSegmentAddress).await).await
}

/// Percent-decoding written here, independently of the signer and the simulator.
fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).expect("hex after %"));
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// Parameter names the signed test request sets itself, or that DescribeEipSegment reads.
const TAKEN: &[&str] = &[
    "Action",
    "Version",
    "Format",
    "AccessKeyId",
    "SignatureMethod",
    "SignatureVersion",
    "SignatureNonce",
    "SignatureType",
    "Timestamp",
    "Signature",
    "SecurityToken",
    "RegionId",
    "PageNumber",
    "PageSize",
    "SegmentInstanceId",
];

/// A DescribeEipSegment request signed like the SDKs sign it, carrying `extra` parameters, its body
/// in the order `order` gives (indices into the full parameter list, Signature last). Returns the
/// simulator's HTTP status and error code.
async fn send_signed(url: &str, extra: &[(String, String)], order: Option<&[usize]>) -> (u16, String) {
    let mut params: Vec<(String, String)> = [
        ("Action", "DescribeEipSegment".to_string()),
        ("Version", "2016-04-28".to_string()),
        ("Format", "JSON".to_string()),
        ("AccessKeyId", DEFAULT_ACCESS_KEY_ID.to_string()),
        ("SignatureMethod", "HMAC-SHA1".to_string()),
        ("SignatureVersion", "1.0".to_string()),
        ("SignatureNonce", uuid::Uuid::new_v4().to_string()),
        ("Timestamp", chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()),
        ("RegionId", "cn-hangzhou".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    params.extend(extra.iter().cloned());
    let signature =
        signer::rpc_signature("POST", params.iter().map(|(k, v)| (k.as_str(), v.as_str())), DEFAULT_ACCESS_KEY_SECRET);
    let indices: Vec<usize> = order
        .map_or_else(|| (0..params.len()).collect(), |o| o.iter().copied().filter(|i| *i < params.len()).collect());
    let mut body: Vec<String> = indices
        .iter()
        .map(|&i| format!("{}={}", signer::percent_encode(&params[i].0), signer::percent_encode(&params[i].1)))
        .collect();
    body.push(format!("Signature={}", signer::percent_encode(&signature)));
    let resp = reqwest::Client::new()
        .post(format!("{url}/"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body.join("&"))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let answer: serde_json::Value = resp.json().await.unwrap();
    (status, answer["Code"].as_str().unwrap_or("").to_string())
}

/// Extra parameters: any names and values, minus the names the request sets itself.
fn extra_params(
    max: usize,
    names: impl Strategy<Value = String>,
    values: impl Strategy<Value = String>,
) -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::btree_map(names, values, 0..max)
        .prop_map(|m| m.into_iter().filter(|(k, _)| !TAKEN.contains(&k.as_str())).collect::<Vec<_>>())
}

fn is_signature_error(code: &str) -> bool {
    matches!(
        code,
        "SignatureDoesNotMatch" | "IncompleteSignature" | "InvalidAccessKeyId.NotFound" | "SignatureNonceUsed"
    )
}

// ---- Every byte value ---------------------------------------------------------------------------

/// Every Unicode scalar up to U+00FF, and one character for each lead byte of the longer UTF-8
/// sequences: together their encodings hold every byte value UTF-8 can carry.
fn every_byte_string() -> String {
    let mut s: String = (0u32..=0xFF).filter_map(char::from_u32).collect();
    // 2-byte leads C2..DF (C2 and C3 are already there), 3-byte E0..EF, 4-byte F0..F4.
    for lead in 0xC4u32..=0xDF {
        s.push(char::from_u32((lead & 0x1F) << 6).unwrap());
    }
    s.extend(['\u{0800}', '\u{1000}', '\u{2000}', '\u{3000}', '\u{4E2D}', '\u{5000}', '\u{6000}', '\u{7000}']);
    s.extend(['\u{8000}', '\u{9000}', '\u{A000}', '\u{B000}', '\u{C000}', '\u{D000}', '\u{E000}', '\u{FFFD}']);
    s.extend(['\u{10000}', '\u{1F600}', '\u{40000}', '\u{80000}', '\u{C0000}', '\u{100000}']);
    s.push_str("&=+%/?#[]@!$'()*,;: \t\r\n~");
    s
}

#[test]
fn the_every_byte_string_holds_every_byte_utf8_can_carry() {
    let s = every_byte_string();
    let seen: BTreeSet<u8> = s.bytes().collect();
    // C0, C1 and F5..FF never occur in UTF-8; every other byte value must be present.
    let impossible: BTreeSet<u8> = [0xC0, 0xC1].into_iter().chain(0xF5..=0xFF).collect();
    for b in 0u8..=255 {
        assert_eq!(seen.contains(&b), !impossible.contains(&b), "byte {b:#04X}");
    }
    for b in &impossible {
        for tail in [&[][..], &[0x80][..], &[0x80, 0x80][..], &[0x80, 0x80, 0x80][..]] {
            let bytes: Vec<u8> = std::iter::once(*b).chain(tail.iter().copied()).collect();
            assert!(String::from_utf8(bytes).is_err(), "{b:#04X} is valid UTF-8 after all");
        }
    }
}

#[test]
fn every_byte_value_in_names_and_values_verifies_in_the_simulator() {
    let all = every_byte_string();
    let url = simulator_url();
    runtime().block_on(async {
        for (what, extra) in [
            ("as a value", vec![("Everything".to_string(), all.clone())]),
            ("as a name", vec![(format!("X{all}"), "v".to_string())]),
            ("as both", vec![(all.clone(), all.clone())]),
            (
                "one parameter per character",
                all.chars().collect::<BTreeSet<char>>().into_iter().map(|c| (format!("K{c}"), c.to_string())).collect(),
            ),
        ] {
            let (status, code) = send_signed(url, &extra, None).await;
            assert_eq!((status, code.as_str()), (200, ""), "every byte value {what}");
        }
    });
}

#[test]
fn the_real_client_carries_every_byte_value_to_the_simulator() {
    let all = every_byte_string();
    let client = client_for(simulator_url(), Duration::from_secs(5));
    runtime().block_on(async {
        // Accepted: the token and resource group are opaque to the cloud.
        let request = AllocateRequest {
            region_id: "cn-hangzhou".into(),
            eip_mask: 28,
            client_token: format!("every-byte-{all}"),
            resource_group_id: Some(all.clone()),
            ..Default::default()
        };
        let allocated = allocate(&client, &request).await.unwrap();
        // The same token and parameters, decoded identically: the same answer, not a mismatch.
        assert_eq!(
            allocate(&client, &request).await.unwrap().eip_segment_instance_id,
            allocated.eip_segment_instance_id
        );
        // Refused by the cloud for what the values mean, never for how they were signed.
        let e = client.describe_segment(&all, "eipsg-x").await.unwrap_err();
        assert_eq!(e.code(), "Forbidden.RegionNotFound", "{e}");
        assert_eq!(client.describe_segment("cn-hangzhou", &all).await.unwrap(), None);
        let e = release(&client, "cn-hangzhou", &all, &all).await.unwrap_err();
        assert_eq!(e.code(), "InvalidAllocationId.NotFound", "{e}");
    });
}

// ---- Properties of the signer -------------------------------------------------------------------

fn any_name() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), "[A-Za-z][A-Za-z0-9]{0,8}", "[&=%+ ~*A]{0,4}"]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn percent_encoding_keeps_only_unreserved_bytes_and_decodes_back(s in any::<String>()) {
        let encoded = signer::percent_encode(&s);
        prop_assert!(encoded.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~%".contains(&b)), "{}", encoded);
        prop_assert!(encoded.split('%').skip(1).all(|h| h.len() >= 2 && h[..2].bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))));
        prop_assert_eq!(percent_decode(&encoded), s.as_bytes().to_vec());
    }

    #[test]
    fn the_canonical_query_decodes_back_to_exactly_the_parameters(params in prop::collection::btree_map(any_name(), any::<String>(), 0..8)) {
        let canonical = signer::canonical_query(params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let decoded: Vec<(Vec<u8>, Vec<u8>)> = if canonical.is_empty() {
            Vec::new()
        } else {
            canonical.split('&').map(|pair| {
                let (k, v) = pair.split_once('=').expect("k=v");
                (percent_decode(k), percent_decode(v))
            }).collect()
        };
        let expected: Vec<(Vec<u8>, Vec<u8>)> = params.iter().map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec())).collect();
        prop_assert_eq!(decoded, expected);
    }

    #[test]
    fn v1_signatures_ignore_any_reordering(
        params in prop::collection::btree_map(any_name(), any::<String>(), 1..8)
            .prop_map(|m| m.into_iter().collect::<Vec<_>>())
            .prop_flat_map(|v| (Just(v.clone()), Just(v).prop_shuffle())),
        method in prop_oneof![Just("POST"), Just("GET"), Just("post")],
    ) {
        let (sorted, shuffled) = params;
        let a = signer::rpc_signature(method, sorted.iter().map(|(k, v)| (k.as_str(), v.as_str())), "secret");
        let b = signer::rpc_signature(method, shuffled.iter().map(|(k, v)| (k.as_str(), v.as_str())), "secret");
        prop_assert_eq!(a, b);
    }

    #[test]
    fn v1_signatures_bind_each_value_to_its_name(
        params in prop::collection::btree_map(any_name(), any::<String>(), 2..8),
        pick in any::<(prop::sample::Index, prop::sample::Index)>(),
    ) {
        let params: Vec<(String, String)> = params.into_iter().collect();
        let (i, j) = (pick.0.index(params.len()), pick.1.index(params.len()));
        prop_assume!(params[i].1 != params[j].1);
        let mut swapped = params.clone();
        let (vi, vj) = (swapped[i].1.clone(), swapped[j].1.clone());
        swapped[i].1 = vj;
        swapped[j].1 = vi;
        let a = signer::rpc_signature("POST", params.iter().map(|(k, v)| (k.as_str(), v.as_str())), "secret");
        let b = signer::rpc_signature("POST", swapped.iter().map(|(k, v)| (k.as_str(), v.as_str())), "secret");
        prop_assert_ne!(a, b);
    }

    #[test]
    fn v3_signatures_ignore_the_order_of_query_and_headers(
        query in prop::collection::btree_map(any_name(), any::<String>(), 0..6)
            .prop_map(|m| m.into_iter().collect::<Vec<_>>())
            .prop_flat_map(|v| (Just(v.clone()), Just(v).prop_shuffle())),
        headers in prop::collection::btree_map("x-acs-[a-z0-9-]{1,12}", "[ -~]{0,20}", 1..6)
            .prop_map(|m| m.into_iter().collect::<Vec<_>>())
            .prop_flat_map(|v| (Just(v.clone()), Just(v).prop_shuffle())),
        body in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let hash = signer::sha256_hex(&body);
        let request = |q: &[(String, String)], h: &[(String, String)]| signer::V3Request {
            method: "POST",
            path: "/",
            query: q.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect(),
            headers: h.to_vec(),
            payload_sha256: &hash,
        }
        .signature("secret");
        prop_assert_eq!(request(&query.0, &headers.0), request(&query.1, &headers.1));
    }
}

// ---- Round trips with the simulator's verifier, over HTTP ---------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn any_parameters_in_any_body_order_verify_in_the_simulator(
        extra in extra_params(6, any_name(), any::<String>()),
        order_seed in any::<u64>(),
    ) {
        let total = 9 + extra.len();
        let mut order: Vec<usize> = (0..total).collect();
        // A deterministic shuffle from the seed, so a failure shrinks and replays.
        let mut state = order_seed | 1;
        for i in (1..total).rev() {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17;
            order.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let (status, code) = runtime().block_on(send_signed(simulator_url(), &extra, Some(&order)));
        prop_assert_eq!((status, code.as_str()), (200, ""), "extra {:?}", extra);
    }

    #[test]
    fn the_real_client_is_never_refused_for_its_signature(
        token in any::<String>(),
        group in any::<String>(),
        segment in any::<String>(),
        region in prop_oneof![Just("cn-hangzhou".to_string()), any::<String>()],
    ) {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let client = client_for(simulator_url(), Duration::from_secs(5));
        runtime().block_on(async {
            // A fresh token each case: any value, then a counter.
            let request = AllocateRequest {
                region_id: "cn-hangzhou".into(), eip_mask: 28, client_token: format!("{token}#{n}"),
                resource_group_id: Some(group), ..Default::default()
            };
            let allocated = allocate(&client, &request).await;
            prop_assert!(allocated.is_ok(), "{:?}", allocated.err().map(|e| e.to_string()));
            match client.describe_segment(&region, &segment).await {
                Ok(found) => prop_assert!(found.is_none() || found.unwrap().instance_id == segment),
                // The client leaves empty values out, so an empty region is a missing one.
                Err(e) if region.is_empty() => prop_assert!(e.code() == "MissingParameter" && e.to_string().contains("RegionId"), "{}", e),
                Err(e) => prop_assert!(!is_signature_error(e.code()) && e.class() == ErrorClass::Terminal, "{}", e),
            }
            Ok(())
        })?;
    }
}

// ---- Any answer from an endpoint ----------------------------------------------------------------

/// A one-shot HTTP endpoint that answers the next request with exactly these bytes.
async fn answer_once(status: u16, header: Option<String>, body: Vec<u8>) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let Ok((mut socket, _)) = listener.accept().await else { return };
        // Read the request: headers, then Content-Length bytes.
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let Ok(n) = socket.read(&mut buf).await else { return };
            if n == 0 {
                return;
            }
            request.extend_from_slice(&buf[..n]);
            if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&request[..end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if request.len() >= end + 4 + length {
                    break;
                }
            }
        }
        let mut response =
            format!("HTTP/1.1 {status} Whatever\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
        if let Some(h) = header {
            response.push_str(&format!("x-ratelimit-user-api: {h}\r\n"));
        }
        response.push_str("\r\n");
        let _ = socket.write_all(response.as_bytes()).await;
        let _ = socket.write_all(&body).await;
        let _ = socket.shutdown().await;
    });
    (url, task)
}

fn answer_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        any::<String>().prop_map(String::into_bytes),
        (any::<String>(), any::<String>(), prop_oneof![Just(serde_json::json!("x")), Just(serde_json::json!(7)), Just(serde_json::Value::Null)])
            .prop_map(|(code, message, id)| serde_json::json!({"Code": code, "Message": message, "RequestId": id}).to_string().into_bytes()),
        Just(br#"{"EipSegments":{"EipSegment":[{"InstanceId":"eipsg-1","Status":"Allocated","IpCount":"16"}]},"TotalCount":"x"}"#.to_vec()),
        Just(br#"{"EipSegmentInstanceId":"eipsg-1","OrderId":1.5e300}"#.to_vec()),
        Just(br#"{"EipSegmentInstanceId":7}"#.to_vec()),
        Just(br#"{"EipAddresses":{"EipAddress":{"AllocationId":"eip-1"}}}"#.to_vec()),
        Just(b"[]".to_vec()),
        Just(b"null".to_vec()),
    ]
}

fn throttle_header() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        "[ -~]{0,60}".prop_map(Some),
        any::<u64>().prop_map(|n| Some(format!("Limit:60,Remain:0,TimeLeft:{n},Reset:1"))),
        "-?[0-9]{0,30}".prop_map(|n| Some(format!("TimeLeft:{n}"))),
    ]
}

/// What every failure must offer the reconciler, whatever it is.
fn check_error(e: &CloudError, status: u16, success_status: bool) -> Result<(), TestCaseError> {
    let _ = (e.to_string(), e.request_id(), e.retry_after(), e.is_throttling(), e.classification().advice);
    prop_assert!(!e.code().is_empty());
    if success_status {
        // An unreadable success may have taken effect: retry with the same token, never give up.
        prop_assert!(
            e.class() == ErrorClass::Transient && e.is_ambiguous(),
            "HTTP {}: {} is {:?}",
            status,
            e,
            e.class()
        );
    }
    if status >= 500 && !matches!(e, CloudError::Api { .. }) {
        prop_assert_eq!(e.class(), ErrorClass::Transient);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn any_answer_over_http_is_a_value_or_a_classified_error(
        status in prop_oneof![Just(200u16), Just(400u16), Just(404u16), Just(429u16), Just(500u16), Just(503u16), 200u16..600],
        header in throttle_header(),
        body in answer_body(),
        action in 0usize..5,
    ) {
        runtime().block_on(async {
            let (url, task) = answer_once(status, header.clone(), body.clone()).await;
            let client = client_for(&url, Duration::from_secs(3));
            let success_status = (200..300).contains(&status);
            let outcome: Result<(), CloudError> = match action {
                0 => allocate(&client, &AllocateRequest { region_id: "cn-hangzhou".into(), eip_mask: 28, client_token: "t".into(), ..Default::default() }).await.map(|_| ()),
                1 => client.describe_segment("cn-hangzhou", "eipsg-1").await.map(|_| ()),
                2 => client.describe_segments("cn-hangzhou", None, 1, 50).await.map(|_| ()),
                3 => release(&client, "cn-hangzhou", "eipsg-1", "t").await.map(|_| ()),
                _ => client.describe_segment_members("cn-hangzhou", "eipsg-1").await.map(|_| ()),
            };
            task.abort();
            match outcome {
                Ok(()) => prop_assert!(success_status, "HTTP {} taken for success", status),
                Err(e) => check_error(&e, status, success_status)?,
            }
            Ok(())
        })?;
    }

    /// The TimeLeft hint, up to a minute; a longer one is taken for a minute, and told.
    #[test]
    fn a_throttling_answer_keeps_its_time_left(left in 0u64..3_600_000, code in "Throttling(\\.[A-Za-z]{1,10})?") {
        runtime().block_on(async {
            let body = serde_json::json!({"Code": code, "Message": "Request was denied due to user flow control.", "RequestId": "R"}).to_string();
            let (url, task) = answer_once(400, Some(format!("Limit:60,Remain:0,TimeLeft:{left},Reset:1")), body.into_bytes()).await;
            let e = release(&client_for(&url, Duration::from_secs(3)), "cn-hangzhou", "eipsg-1", "t").await.unwrap_err();
            task.abort();
            prop_assert!(e.is_throttling() && e.class() == ErrorClass::Transient, "{}", e);
            let asked = Duration::from_millis(left);
            prop_assert_eq!(e.retry_after(), Some(asked.min(LONGEST_HINT)));
            prop_assert_eq!(asked > LONGEST_HINT, e.to_string().contains("the cloud asked to wait"), "{}", e);
            Ok(())
        })?;
    }
}

proptest! {
    #[test]
    fn error_messages_never_keep_the_echoed_string_to_sign(
        prefix in "[^s]{0,40}",
        token in "[A-Za-z0-9+/=]{8,40}",
        status in 400u16..600,
    ) {
        let message = format!("{prefix}server string to sign is:POST&%2F&SecurityToken%3D{token}");
        let body = serde_json::json!({"Code": "SignatureDoesNotMatch", "Message": message, "RequestId": "R"}).to_string();
        let e = client::read_answer::<serde_json::Value>(Action::DescribeEipSegment, status, None, body.as_bytes()).unwrap_err();
        let shown = format!("{e} {e:?}");
        prop_assert!(!shown.contains(&token) || prefix.contains(&token), "{}", shown);
        prop_assert!(!shown.contains("string to sign is:"), "{}", shown);
    }

    #[test]
    fn ip_counts_read_the_same_as_numbers_and_as_strings(count in any::<u32>(), padded in any::<bool>()) {
        let text = if padded { format!(" {count} ") } else { count.to_string() };
        let as_number = format!(r#"{{"InstanceId":"eipsg-1","Status":"Allocated","IpCount":{count}}}"#);
        let as_string = format!(r#"{{"InstanceId":"eipsg-1","Status":"Allocated","IpCount":"{text}"}}"#);
        let a: eipsegment_operator::cloud::model::Segment = serde_json::from_str(&as_number).unwrap();
        let b: eipsegment_operator::cloud::model::Segment = serde_json::from_str(&as_string).unwrap();
        prop_assert_eq!(a.ip_count, Some(count));
        prop_assert_eq!(b.ip_count, Some(count));
    }
}
