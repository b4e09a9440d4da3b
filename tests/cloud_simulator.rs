//! The real VPC client against the simulator, over real HTTP: every error class arises from state
//! the simulator holds, and the client classifies it.

use std::time::Duration;

use eipsegment_operator::cloud::model::{AllocateRequest, AllocateResponse, SegmentStatus};
use eipsegment_operator::cloud::{Action, CloudError, ErrorClass, VpcClient};
use serde_json::{Value, json};
use vpc_simulator::{self as simulator, DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET};

const REGION: &str = "cn-hangzhou";

use eipsegment_test_support::in_process;

use in_process::Sim;

/// Allocation and release are quick here; the tests are about answers, not waiting.
const FAST: &[&str] = &["--allocate-seconds", "0.3", "--release-seconds", "0.3", "--release-cooldown-seconds", "0.2"];

async fn fast_sim(extra: &[&str]) -> Sim {
    Sim::start(&[FAST, extra].concat()).await
}

fn allocate_request(token: &str) -> AllocateRequest {
    AllocateRequest { region_id: REGION.into(), eip_mask: 28, client_token: token.into(), ..Default::default() }
}

async fn allocate(client: &VpcClient, request: &AllocateRequest) -> Result<AllocateResponse, CloudError> {
    client.allocate(request, in_process::admission(client, Action::AllocateEipSegmentAddress, REGION).await).await
}

async fn release(client: &VpcClient, region: &str, id: &str, token: &str) -> Result<String, CloudError> {
    client
        .release(region, id, token, in_process::admission(client, Action::ReleaseEipSegmentAddress, region).await)
        .await
}

fn api_code(e: &CloudError) -> &str {
    e.code()
}

async fn wait_for_status(client: &VpcClient, id: &str, want: Option<SegmentStatus>) {
    for _ in 0..100 {
        let got = client.describe_segment(REGION, id).await.unwrap().map(|s| s.status);
        if got == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("segment {id} never reached {want:?}");
}

#[tokio::test]
async fn allocate_describe_release_until_gone() {
    let sim = fast_sim(&[]).await;
    let client = sim.client();
    let first = allocate(&client, &allocate_request("uid-1-allocate")).await.unwrap();
    assert!(first.eip_segment_instance_id.starts_with("eipsg-"));
    let seg = client.describe_segment(REGION, &first.eip_segment_instance_id).await.unwrap().unwrap();
    assert_eq!(seg.status, SegmentStatus::Allocating);
    assert_eq!(seg.ip_count, Some(16));
    assert!(seg.segment.ends_with("/28"));

    // Same token, same parameters: the first answer again, no second segment.
    let again = allocate(&client, &allocate_request("uid-1-allocate")).await.unwrap();
    assert_eq!(again.eip_segment_instance_id, first.eip_segment_instance_id);
    // Same token, other parameters: refused.
    let mut other = allocate_request("uid-1-allocate");
    other.eip_mask = 27;
    let e = allocate(&client, &other).await.unwrap_err();
    assert_eq!((api_code(&e), e.class()), ("IdempotentParameterMismatch", ErrorClass::Terminal));

    wait_for_status(&client, &first.eip_segment_instance_id, Some(SegmentStatus::Allocated)).await;
    release(&client, REGION, &first.eip_segment_instance_id, "uid-1-release").await.unwrap();
    let seg = client.describe_segment(REGION, &first.eip_segment_instance_id).await.unwrap().unwrap();
    assert_eq!(seg.status, SegmentStatus::Releasing);
    // A repeat with the same token is the same request: success, not a second release.
    release(&client, REGION, &first.eip_segment_instance_id, "uid-1-release").await.unwrap();
    // Another token while releasing is refused by the segment's state.
    tokio::time::sleep(Duration::from_millis(250)).await;
    let e = release(&client, REGION, &first.eip_segment_instance_id, "other-token").await.unwrap_err();
    assert_eq!((api_code(&e), e.class()), ("IncorrectEipStatus", ErrorClass::Transient));
    wait_for_status(&client, &first.eip_segment_instance_id, None).await;

    let e = release(&client, REGION, &first.eip_segment_instance_id, "late-token").await.unwrap_err();
    assert_eq!((api_code(&e), e.class()), ("OperationFailed.InstanceNotExist", ErrorClass::Gone));
    let e = release(&client, REGION, "eipsg-neverexisted0000000", "t").await.unwrap_err();
    assert_eq!((api_code(&e), e.class()), ("InvalidAllocationId.NotFound", ErrorClass::Gone));

    let state = sim.admin(reqwest::Method::GET, "state", json!({})).await;
    assert_eq!(state["segments"].as_array().unwrap().len(), 0);
    assert_eq!(sim.counters().await["ReleaseEipSegmentAddress"]["Success"], 2);
}

/// The cloud's token memory is not forever: once it forgets, a repeat of an accepted allocation is
/// a new request and creates a second segment. Its parameters are checked before the token is
/// looked up, so a repeat with parameters it refuses is refused whatever the first request did.
#[tokio::test]
async fn a_forgotten_token_allocates_again_and_parameters_are_checked_before_the_token() {
    let sim = fast_sim(&["--token-memory-seconds", "1"]).await;
    let client = sim.client();
    let first = allocate(&client, &allocate_request("uid-forgotten")).await.unwrap();
    let remembered = allocate(&client, &allocate_request("uid-forgotten")).await.unwrap();
    assert_eq!(remembered.eip_segment_instance_id, first.eip_segment_instance_id);
    let mut invalid = allocate_request("uid-forgotten");
    invalid.eip_mask = 20;
    let e = allocate(&client, &invalid).await.unwrap_err();
    assert_eq!(
        (api_code(&e), e.class()),
        ("InvalidParameter", ErrorClass::Terminal),
        "not IdempotentParameterMismatch"
    );

    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let forgotten = allocate(&client, &allocate_request("uid-forgotten")).await.unwrap();
    assert_ne!(forgotten.eip_segment_instance_id, first.eip_segment_instance_id, "the forgotten token allocated again");
    let state = sim.admin(reqwest::Method::GET, "state", json!({})).await;
    assert_eq!(state["segments"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn blocking_states_give_the_documented_codes() {
    let sim = fast_sim(&[]).await;
    let client = sim.client();
    let cases: Vec<(Value, &str, ErrorClass)> = vec![
        (json!({"chargeType": "PrePaid"}), "Forbidden.ChargeTypeIsPrepaid", ErrorClass::Blocked),
        (json!({"deletionProtection": true}), "InvalidOperation.DeletionProtection", ErrorClass::Blocked),
        (
            json!({"members": [{"index": 3, "bandwidthPackageId": "cbwp-1"}]}),
            "OperationFailed.EipInBwp",
            ErrorClass::Blocked,
        ),
        (json!({"members": [{"index": 0, "bandwidthPlanId": "plan-1"}]}), "Forbidden.EipInBwp", ErrorClass::Blocked),
        (
            json!({"members": [{"index": 2, "status": "InUse", "instanceId": "i-web1"}]}),
            "OperationFailed.EipStatusInvalid",
            ErrorClass::Blocked,
        ),
        (json!({"members": [{"index": 1, "status": "Associating"}]}), "IncorrectEipStatus", ErrorClass::Transient),
        (
            json!({"members": [{"index": 5, "releasedSeparately": true}]}),
            "OperationFailed.EipNumInconsistent",
            ErrorClass::Blocked,
        ),
        (json!({"ownerAccount": simulator::OTHER_ACCOUNT}), "Forbidden", ErrorClass::Terminal),
        (json!({"status": "Allocating"}), "IncorrectEipStatus", ErrorClass::Transient),
    ];
    let other =
        sim.client_with(simulator::OTHER_ACCESS_KEY_ID, simulator::OTHER_ACCESS_KEY_SECRET, Duration::from_secs(5));
    for (i, (seed, code, class)) in cases.into_iter().enumerate() {
        let id = sim.seed(seed.clone()).await;
        let e = release(&client, REGION, &id, &format!("t{i}")).await.unwrap_err();
        assert_eq!((api_code(&e), e.class()), (code, class), "seed {seed}");
        // Still there: a refused release changes nothing. Only its owner sees it.
        let owner = if seed["ownerAccount"] == simulator::OTHER_ACCOUNT { &other } else { &client };
        assert!(owner.describe_segment(REGION, &id).await.unwrap().is_some(), "seed {seed}");
    }

    // The member that blocks a release can be named.
    let id = sim.seed(json!({"members": [{"index": 2, "status": "InUse", "instanceId": "i-web1"}]})).await;
    let members = client.describe_segment_members(REGION, &id).await.unwrap();
    assert_eq!(members.len(), 16);
    let in_use: Vec<_> = members.iter().filter(|m| m.status == "InUse").collect();
    assert_eq!((in_use.len(), in_use[0].instance_id.as_str()), (1, "i-web1"));

    // Fixing the state lets the release through; a quick second attempt meets the cool-down first.
    let e = release(&client, REGION, &id, "t-fix").await.unwrap_err();
    assert_eq!(api_code(&e), "OperationFailed.EipStatusInvalid");
    let e = release(&client, REGION, &id, "t-fix2").await.unwrap_err();
    assert_eq!((api_code(&e), e.class()), ("TaskConflict.AssociateGlobalAccelerationInstance", ErrorClass::Transient));
    sim.admin(
        reqwest::Method::PATCH,
        &format!("segments/{id}"),
        json!({"members": [{"index": 2, "status": "Available", "instanceId": ""}]}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(250)).await;
    release(&client, REGION, &id, "t-fix3").await.unwrap();
}

#[tokio::test]
async fn configuration_errors_are_terminal_or_blocked() {
    let sim = fast_sim(&[]).await;
    let client = sim.client();
    let e = client.describe_segment("xx-nowhere-1", "eipsg-x").await.unwrap_err();
    assert_eq!((api_code(&e), e.class()), ("Forbidden.RegionNotFound", ErrorClass::Terminal));
    let mut req = allocate_request("a1");
    req.region_id = "xx-nowhere-1".into();
    let e = allocate(&client, &req).await.unwrap_err();
    assert_eq!((api_code(&e), e.class()), ("InvalidRegion.NotSupport", ErrorClass::Terminal));
    let mut req = allocate_request("a2");
    req.bandwidth = Some(300);
    req.internet_charge_type = Some("PayByTraffic".into());
    let e = allocate(&client, &req).await.unwrap_err();
    assert_eq!((api_code(&e), e.class()), ("InvalidParameter", ErrorClass::Terminal));

    sim.admin(reqwest::Method::PUT, &format!("accounts/{}", simulator::DEFAULT_ACCOUNT), json!({"segmentQuota": 0}))
        .await;
    let e = allocate(&client, &allocate_request("a3")).await.unwrap_err();
    assert_eq!((api_code(&e), e.class()), ("QuotaExceeded.Eip", ErrorClass::Blocked));
    sim.admin(
        reqwest::Method::PUT,
        &format!("accounts/{}", simulator::DEFAULT_ACCOUNT),
        json!({"segmentQuota": 10, "balanceSufficient": false}),
    )
    .await;
    let e = allocate(&client, &allocate_request("a4")).await.unwrap_err();
    assert_eq!((api_code(&e), e.class()), ("InsufficientBalance", ErrorClass::Blocked));

    let wrong_secret = sim.client_with(DEFAULT_ACCESS_KEY_ID, "not-the-secret", Duration::from_secs(5));
    let e = wrong_secret.describe_segment(REGION, "eipsg-x").await.unwrap_err();
    assert_eq!((api_code(&e), e.class()), ("SignatureDoesNotMatch", ErrorClass::Terminal));
    assert!(!e.to_string().contains("not-the-secret"));
    assert!(!e.to_string().contains("string to sign"), "the echoed string to sign is cut off: {e}");
    let unknown = sim.client_with("LTAIunknown", "whatever", Duration::from_secs(5));
    let e = unknown.describe_segment(REGION, "eipsg-x").await.unwrap_err();
    assert_eq!((api_code(&e), e.class()), ("InvalidAccessKeyId.NotFound", ErrorClass::Terminal));
}

#[tokio::test]
async fn pages_through_a_large_region() {
    let sim = fast_sim(&[]).await;
    let client = sim.client();
    for _ in 0..120 {
        sim.seed(json!({})).await;
    }
    let page = client.describe_segments(REGION, None, 3, 50).await.unwrap();
    assert_eq!((page.segments.len(), page.total_count), (20, 120));
    sim.admin(reqwest::Method::DELETE, "counters", json!({})).await;
    let mut all = Vec::new();
    for page_number in 1..=3 {
        all.extend(client.describe_segments(REGION, None, page_number, 50).await.unwrap().segments);
    }
    assert_eq!(all.len(), 120);
    let mut ids: Vec<_> = all.iter().map(|s| s.instance_id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 120);
    assert_eq!(sim.counters().await["DescribeEipSegment"]["Success"], 3);
    // CIDRs never overlap.
    let mut cidrs: Vec<_> = all.iter().map(|s| s.segment.clone()).collect();
    cidrs.sort();
    cidrs.dedup();
    assert_eq!(cidrs.len(), 120);
}

#[tokio::test]
async fn throttling_faults_and_timeouts_are_transient() {
    let sim = fast_sim(&["--rate-limit", "DescribeEipSegment=2/60"]).await;
    let client = sim.client();
    client.describe_segments(REGION, None, 1, 10).await.unwrap();
    client.describe_segments(REGION, None, 1, 10).await.unwrap();
    let e = client.describe_segments(REGION, None, 1, 10).await.unwrap_err();
    assert_eq!((api_code(&e), e.class()), ("Throttling.User", ErrorClass::Transient));
    assert!(e.is_throttling());
    let left = e.retry_after().expect("TimeLeft hint");
    assert!(left > Duration::from_secs(50) && left <= Duration::from_secs(60), "{left:?}");
    sim.admin(reqwest::Method::PUT, "limits", json!({})).await;

    sim.admin(reqwest::Method::PUT, "faults", json!({"internalErrorRate": 1.0})).await;
    let e = client.describe_segments(REGION, None, 1, 10).await.unwrap_err();
    assert_eq!((api_code(&e), e.class(), e.is_ambiguous()), ("InternalError", ErrorClass::Transient, true));

    sim.admin(reqwest::Method::PUT, "faults", json!({"dropRate": 1.0})).await;
    let e = client.describe_segments(REGION, None, 1, 10).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Transient);
    assert!(e.is_ambiguous(), "{e:?}");

    sim.admin(reqwest::Method::PUT, "faults", json!({"delayRate": 1.0, "delayMsMin": 1500, "delayMsMax": 1500})).await;
    let impatient = sim.client_with(DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET, Duration::from_millis(300));
    let e = impatient.describe_segments(REGION, None, 1, 10).await.unwrap_err();
    assert_eq!((api_code(&e), e.class()), ("Timeout", ErrorClass::Transient));

    // A retry while the first request with the token is still in flight.
    sim.admin(
        reqwest::Method::PUT,
        "faults",
        json!({"delayRate": 1.0, "delayMsMin": 800, "delayMsMax": 800, "actions": ["AllocateEipSegmentAddress"]}),
    )
    .await;
    let inflight = allocate_request("inflight");
    let (a, b) = tokio::join!(allocate(&client, &inflight), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        allocate(&client, &inflight).await
    });
    let first = a.unwrap();
    let e = b.unwrap_err();
    assert_eq!((api_code(&e), e.class()), ("OperationFailed.LastTokenProcessing", ErrorClass::Transient));
    sim.admin(reqwest::Method::PUT, "faults", json!({})).await;
    let repeat = allocate(&client, &allocate_request("inflight")).await.unwrap();
    assert_eq!(repeat.eip_segment_instance_id, first.eip_segment_instance_id);

    let counters = sim.counters().await;
    assert_eq!(counters["DescribeEipSegment"]["Throttling.User"], 1);
    assert_eq!(counters["DescribeEipSegment"]["Dropped"], 1);
    assert_eq!(counters["DescribeEipSegment"]["InternalError"], 1);
}

#[tokio::test]
async fn a_token_bucket_lets_its_capacity_through_then_one_call_per_refill() {
    // A token every 2 s, so that the calls' own time cannot refill one unnoticed.
    let sim =
        fast_sim(&["--token-bucket", "DescribeEipSegment=3/0.5", "--rate-limit", "DescribeEipAddresses=1/60"]).await;
    let limits = sim.admin(reqwest::Method::GET, "limits", json!({})).await;
    assert_eq!(
        limits,
        json!({"DescribeEipSegment": {"capacity": 3, "perSecond": 0.5}, "DescribeEipAddresses": {"calls": 1, "perSeconds": 60.0}})
    );
    let client = sim.client();
    for _ in 0..3 {
        client.describe_segments(REGION, None, 1, 10).await.unwrap();
    }
    let e = client.describe_segments(REGION, None, 1, 10).await.unwrap_err();
    assert_eq!((api_code(&e), e.class()), ("Throttling.User", ErrorClass::Transient));
    let left = e.retry_after().expect("TimeLeft hint");
    assert!(left > Duration::from_millis(1500) && left <= Duration::from_secs(2), "{left:?}");
    tokio::time::sleep(left).await;
    // A new client: the throttled one holds the action for the TimeLeft on its own side.
    let client = sim.client();
    client.describe_segments(REGION, None, 1, 10).await.unwrap();
    let e = client.describe_segments(REGION, None, 1, 10).await.unwrap_err();
    assert!(e.is_throttling(), "one token came back, not two: {e:?}");

    // PUT replaces the shapes and starts afresh: the bucket's action is now a full window.
    let window = json!({"DescribeEipSegment": {"calls": 1, "perSeconds": 60}});
    sim.admin(reqwest::Method::PUT, "limits", window).await;
    let client = sim.client();
    client.describe_segments(REGION, None, 1, 10).await.unwrap();
    let left = client.describe_segments(REGION, None, 1, 10).await.unwrap_err().retry_after().expect("TimeLeft hint");
    assert!(left > Duration::from_secs(50), "a window's TimeLeft: {left:?}");
    let mixed = sim
        .admin
        .put(format!("{}/__admin/limits", sim.url))
        .json(&json!({"DescribeEipSegment": {"calls": 1, "perSecond": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(mixed.status(), 400, "{}", mixed.text().await.unwrap());

    let counters = sim.counters().await;
    assert_eq!(counters["DescribeEipSegment"], json!({"Success": 5, "Throttling.User": 3}));
}

#[test]
fn the_binary_refuses_two_shapes_of_limit_for_one_action() {
    let conflicting =
        ["--rate-limit", "ReleaseEipSegmentAddress=60/60", "--token-bucket", "ReleaseEipSegmentAddress=60/1"];
    let out =
        std::process::Command::new(eipsegment_test_support::simulator_binary()).args(conflicting).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("ReleaseEipSegmentAddress is given both --rate-limit and --token-bucket"), "{stderr}");
    let empty = ["--token-bucket", "ReleaseEipSegmentAddress=0/1"];
    let out = std::process::Command::new(eipsegment_test_support::simulator_binary()).args(empty).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("capacity must be at least 1"));
}

#[tokio::test]
async fn unreachable_endpoint_is_a_connection_failure() {
    let client = eipsegment_test_support::vpc_client("http://127.0.0.1:9", "a", "b", Duration::from_secs(2));
    let e = client.describe_segment(REGION, "eipsg-x").await.unwrap_err();
    assert_eq!((e.code(), e.class()), ("ConnectionFailed", ErrorClass::Transient));
}

/// A request signed by hand, to reach the gateway's checks the client never trips.
async fn raw_call(sim: &Sim, method: &str, timestamp: &str, nonce: &str) -> Value {
    use eipsegment_operator::cloud::signer;
    let mut params: Vec<(&str, String)> = vec![
        ("Action", "DescribeEipSegment".into()),
        ("Version", "2016-04-28".into()),
        ("Format", "JSON".into()),
        ("AccessKeyId", DEFAULT_ACCESS_KEY_ID.into()),
        ("SignatureMethod", "HMAC-SHA1".into()),
        ("SignatureVersion", "1.0".into()),
        ("SignatureNonce", nonce.into()),
        ("Timestamp", timestamp.into()),
        ("RegionId", REGION.into()),
    ];
    let signature =
        signer::rpc_signature(method, params.iter().map(|(k, v)| (*k, v.as_str())), DEFAULT_ACCESS_KEY_SECRET);
    params.push(("Signature", signature));
    let query = params.iter().map(|(k, v)| format!("{k}={}", signer::percent_encode(v))).collect::<Vec<_>>().join("&");
    let request = match method {
        "GET" => sim.admin.get(format!("{}/?{query}", sim.url)),
        _ => sim
            .admin
            .post(format!("{}/", sim.url))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(query),
    };
    request.send().await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn gateway_refuses_stale_timestamps_and_reused_nonces() {
    let sim = fast_sim(&[]).await;
    let now = chrono::Utc::now();
    let fmt = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    // GET with a query string and POST with a form are both accepted.
    assert_eq!(raw_call(&sim, "GET", &fmt(now), "n-1").await["TotalCount"], 0);
    assert_eq!(raw_call(&sim, "POST", &fmt(now), "n-2").await["TotalCount"], 0);
    assert_eq!(raw_call(&sim, "POST", &fmt(now), "n-2").await["Code"], "SignatureNonceUsed");
    let stale = raw_call(&sim, "GET", &fmt(now - chrono::Duration::minutes(20)), "n-3").await;
    assert_eq!(stale["Code"], "InvalidTimeStamp.Expired");
    for field in ["RequestId", "HostId", "Message", "Recommend"] {
        assert!(stale[field].as_str().is_some_and(|v| !v.is_empty()), "error body lacks {field}: {stale}");
    }
}

/// Releases a burst of segments through a client, returning how many met throttling.
async fn release_burst(sim: &Sim, client: &VpcClient, n: usize) -> usize {
    let mut ids = Vec::new();
    for _ in 0..n {
        ids.push(sim.seed(json!({})).await);
    }
    let calls = ids.iter().enumerate().map(|(i, id)| {
        let client = client.clone();
        let id = id.clone();
        async move { release(&client, REGION, &id, &format!("burst-{i}")).await }
    });
    futures::future::join_all(calls).await.iter().filter(|r| r.as_ref().is_err_and(|e| e.is_throttling())).count()
}

#[tokio::test]
async fn a_quota_is_spent_at_once_and_never_beyond_the_clouds_window() {
    use eipsegment_operator::quota::Quotas;
    let sim = fast_sim(&["--rate-limit", "ReleaseEipSegmentAddress=5/1"]).await;
    // Without a quota the burst is throttled, so the check below can fail.
    assert!(release_burst(&sim, &sim.client(), 12).await > 0);

    let sim = fast_sim(&["--rate-limit", "ReleaseEipSegmentAddress=5/1"]).await;
    let limited = sim.client().with_quotas(Quotas::new(&[(Action::ReleaseEipSegmentAddress, "5/1".parse().unwrap())]));
    let started = std::time::Instant::now();
    assert_eq!(release_burst(&sim, &limited, 12).await, 0, "throttled despite the client-side quota");
    // Three windows: 5 at once, 5 a window later, 2 a window after that.
    assert!(started.elapsed() >= Duration::from_millis(2000), "{:?}", started.elapsed());
    assert_eq!(sim.counters().await["ReleaseEipSegmentAddress"]["Success"], 12);
}

/// Releases each segment, sending it again after each throttling answer as the reconciler does,
/// and returns how many throttling answers came.
async fn release_until_accepted(client: &VpcClient, ids: &[String]) -> usize {
    let calls = ids.iter().map(|id| {
        let client = client.clone();
        async move {
            let mut throttled = 0;
            loop {
                match release(&client, REGION, id, &format!("until-{id}")).await {
                    Ok(_) => return throttled,
                    Err(e) if e.is_throttling() => throttled += 1,
                    Err(e) => panic!("release of {id}: {e}"),
                }
            }
        }
    });
    futures::future::join_all(calls).await.into_iter().sum()
}

#[tokio::test]
async fn a_throttling_answer_puts_the_quota_on_the_clouds_window() {
    use eipsegment_operator::quota::Quotas;
    let sim = fast_sim(&["--rate-limit", "ReleaseEipSegmentAddress=5/2"]).await;
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(sim.seed(json!({})).await);
    }
    // Another client with the same account spends the cloud's window first: ours cannot know.
    let other = sim.client();
    for id in &ids[..5] {
        release(&other, REGION, id, &format!("other-{id}")).await.unwrap();
    }
    let quotas = Quotas::new(&[(Action::ReleaseEipSegmentAddress, "5/2".parse().unwrap())]);
    let ours = sim.client().with_quotas(quotas);
    // One call alone first, so that only it meets the full window.
    assert_eq!(release_until_accepted(&ours, &ids[5..6]).await, 1, "the first call learns the window");
    assert_eq!(release_until_accepted(&ours, &ids[6..]).await, 0, "the following windows are the cloud's");
    assert_eq!(sim.counters().await["ReleaseEipSegmentAddress"]["Success"], 20);
}
