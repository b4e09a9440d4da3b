//! The simulator's accounts over real HTTP: each account sees only its own segments, ClientTokens
//! are per account, keys can be added and revoked, STS GetCallerIdentity tells who a key is, and the
//! malformed answers and the read-after-write lag reach a client as a real gateway would send them.
//! The operator's VPC client drives the VPC actions; GetCallerIdentity is signed with its signer.

use std::sync::Arc;
use std::time::Duration;

use eipsegment_operator::cloud::credentials::{Credentials, Secret, StaticCredentials};
use eipsegment_operator::cloud::model::{AllocateRequest, SegmentStatus};
use eipsegment_operator::cloud::{Action, Admit, ClientConfig, CloudError, ErrorClass, VpcClient, signer};
use reqwest::Method;
use serde_json::{Value, json};
use vpc_simulator::{
    DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET, DEFAULT_ACCOUNT, OTHER_ACCESS_KEY_ID, OTHER_ACCESS_KEY_SECRET,
    OTHER_ACCOUNT,
};

use eipsegment_test_support::in_process;

use in_process::Sim;

const REGION: &str = "cn-hangzhou";
const QUICK: &[&str] = &["--allocate-seconds", "0.2", "--release-seconds", "5", "--release-cooldown-seconds", "0"];

/// A key to sign with: ID, secret and, for STS credentials, the SecurityToken.
#[derive(Clone)]
struct Key(String, String, Option<String>);

impl Key {
    fn new(id: &str, secret: &str) -> Key {
        Key(id.into(), secret.into(), None)
    }
}

fn default_key() -> Key {
    Key::new(DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET)
}

fn other_key() -> Key {
    Key::new(OTHER_ACCESS_KEY_ID, OTHER_ACCESS_KEY_SECRET)
}

fn client(sim: &Sim, key: &Key) -> VpcClient {
    let creds = Credentials {
        access_key_id: key.0.clone(),
        access_key_secret: Secret::new(key.1.clone()),
        security_token: key.2.clone().map(Secret::new),
    };
    let config = ClientConfig {
        endpoint_override: Some(sim.url.clone()),
        sts_endpoint: Some(sim.url.clone()),
        allow_insecure_endpoint: true,
        timeout: Duration::from_secs(5),
    };
    VpcClient::new(config, Arc::new(StaticCredentials(creds))).unwrap()
}

/// The client's calls that take a place in its rate first, kept in one place.
async fn allocate(client: &VpcClient, token: &str) -> Result<String, CloudError> {
    let request =
        AllocateRequest { region_id: REGION.into(), eip_mask: 28, client_token: token.into(), ..Default::default() };
    let Admit::Granted(admission) = client.admit(Action::AllocateEipSegmentAddress, REGION).await else {
        panic!("no place for an Allocate");
    };
    Ok(client.allocate(&request, admission).await?.eip_segment_instance_id)
}

async fn release(client: &VpcClient, id: &str, token: &str) -> Result<String, CloudError> {
    let Admit::Granted(admission) = client.admit(Action::ReleaseEipSegmentAddress, REGION).await else {
        panic!("no place for a Release");
    };
    client.release(REGION, id, token, admission).await
}

async fn listed(client: &VpcClient) -> (Vec<String>, u32) {
    let page = client.describe_segments(REGION, None, 1, 50).await.unwrap();
    (page.segments.into_iter().map(|s| s.instance_id).collect(), page.total_count)
}

async fn state_ids(sim: &Sim, account: &str) -> Vec<String> {
    let state = sim.admin(Method::GET, &format!("state?account={account}"), json!({})).await;
    state["segments"].as_array().unwrap().iter().map(|s| s["instanceId"].as_str().unwrap().to_string()).collect()
}

/// A request signed with RPC signature v1, as the SDKs send it; the status and the JSON body
/// (Null when the body is not JSON).
async fn signed(sim: &Sim, key: &Key, action: &str, version: &str, extra: &[(&str, &str)]) -> (u16, Value) {
    let nonce = uuid::Uuid::new_v4().to_string();
    let timestamp = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let mut params: Vec<(&str, &str)> = vec![
        ("Action", action),
        ("Version", version),
        ("Format", "JSON"),
        ("AccessKeyId", &key.0),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureVersion", "1.0"),
        ("SignatureNonce", &nonce),
        ("Timestamp", &timestamp),
    ];
    if let Some(token) = &key.2 {
        params.push(("SecurityToken", token));
    }
    params.extend_from_slice(extra);
    let signature = signer::rpc_signature("POST", params.iter().copied(), &key.1);
    params.push(("Signature", &signature));
    let form = params.iter().map(|(k, v)| format!("{k}={}", signer::percent_encode(v))).collect::<Vec<_>>().join("&");
    let response = sim
        .admin
        .post(format!("{}/", sim.url))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, serde_json::from_slice(&response.bytes().await.unwrap()).unwrap_or(Value::Null))
}

async fn caller_identity(sim: &Sim, key: &Key) -> (u16, Value) {
    signed(sim, key, "GetCallerIdentity", "2015-04-01", &[]).await
}

#[tokio::test]
async fn an_account_sees_and_releases_only_its_own_segments() {
    let sim = Sim::start(QUICK).await;
    let (a, b) = (client(&sim, &default_key()), client(&sim, &other_key()));
    let id = allocate(&a, "uid-a-allocate").await.unwrap();

    assert!(b.describe_segment(REGION, &id).await.unwrap().is_none(), "B must not see A's segment by ID");
    assert_eq!(listed(&b).await, (vec![], 0), "nor in its pages, nor in its TotalCount");
    assert_eq!(listed(&a).await, (vec![id.clone()], 1));
    let seeded = sim.admin(Method::POST, "segments", json!({"ownerAccount": OTHER_ACCOUNT})).await;
    let theirs = seeded["instanceId"].as_str().unwrap().to_string();
    assert_eq!(listed(&b).await, (vec![theirs.clone()], 1));
    assert_eq!(listed(&a).await, (vec![id.clone()], 1));

    tokio::time::sleep(Duration::from_millis(300)).await;
    let e = release(&b, &id, "uid-a-release-by-b").await.unwrap_err();
    assert_eq!((e.code(), e.class()), ("Forbidden", ErrorClass::Terminal), "{e}");
    let seg = a.describe_segment(REGION, &id).await.unwrap().expect("still there for A");
    assert_eq!(seg.status, SegmentStatus::Allocated, "a refused release changes nothing");
    let e = release(&b, "eipsg-innoaccount00000000000", "t").await.unwrap_err();
    assert_eq!((e.code(), e.class()), ("InvalidAllocationId.NotFound", ErrorClass::Gone));
    let members = b.describe_segment_members(REGION, &id).await.unwrap();
    assert!(members.is_empty(), "B lists none of A's member EIPs: {members:?}");

    release(&a, &id, "uid-a-release").await.unwrap();
    assert_eq!(state_ids(&sim, DEFAULT_ACCOUNT).await, vec![id.clone()]);
    assert_eq!(state_ids(&sim, OTHER_ACCOUNT).await, vec![theirs]);
    let history = sim.admin(Method::GET, "history", json!({})).await;
    let entry = history["segments"].as_array().unwrap().iter().find(|h| h["instanceId"] == id.as_str()).unwrap();
    assert_eq!(entry["ownerAccount"], DEFAULT_ACCOUNT);
    assert_eq!(entry["releaseAcceptedAtMs"].as_array().unwrap().len(), 1, "B's refused release is not recorded");
}

#[tokio::test]
async fn a_client_token_answers_only_in_its_own_account() {
    let sim = Sim::start(QUICK).await;
    let (a, b) = (client(&sim, &default_key()), client(&sim, &other_key()));
    let first = allocate(&a, "uid-shared-token").await.unwrap();
    let in_b = allocate(&b, "uid-shared-token").await.unwrap();
    assert_ne!(in_b, first, "a replay of A's token in B is a new request in B");
    assert_eq!(allocate(&a, "uid-shared-token").await.unwrap(), first, "in A it is still the same request");
    assert_eq!(allocate(&b, "uid-shared-token").await.unwrap(), in_b);
    assert_eq!(state_ids(&sim, DEFAULT_ACCOUNT).await, vec![first]);
    assert_eq!(state_ids(&sim, OTHER_ACCOUNT).await, vec![in_b]);
    assert_eq!(sim.count("AllocateEipSegmentAddress", "Success").await, 4);
}

#[tokio::test]
async fn caller_identity_names_the_account_of_each_key() {
    let sim = Sim::start(&[QUICK, &["--account-key", "1111222233334444:LTAIflagKey:flag-secret"]].concat()).await;
    let added =
        json!({"accessKeyId": "LTAIaddedKey", "accessKeySecret": "added-secret", "account": "5555666677778888"});
    sim.admin(Method::POST, "keys", added).await;
    let keys = [
        (default_key(), DEFAULT_ACCOUNT),
        (other_key(), OTHER_ACCOUNT),
        (Key::new("LTAIflagKey", "flag-secret"), "1111222233334444"),
        (Key::new("LTAIaddedKey", "added-secret"), "5555666677778888"),
    ];
    for (key, account) in &keys {
        let (status, who) = caller_identity(&sim, key).await;
        assert_eq!(status, 200, "{who}");
        assert_eq!(who["AccountId"], *account);
        assert_eq!(who["IdentityType"], "Account");
        assert_eq!(who["Arn"], format!("acs:ram::{account}:root"));
        assert_eq!(who["UserId"], *account);
        assert_eq!(who["PrincipalId"], *account);
        assert!(who["RequestId"].as_str().is_some_and(|r| !r.is_empty()), "{who}");
    }
    let (status, e) = caller_identity(&sim, &Key::new(DEFAULT_ACCESS_KEY_ID, "not-the-secret")).await;
    assert_eq!((status, &e["Code"]), (400, &json!("SignatureDoesNotMatch")));
    let (status, e) = signed(&sim, &default_key(), "GetCallerIdentity", "2016-04-28", &[]).await;
    assert_eq!((status, &e["Code"]), (400, &json!("InvalidVersion")));
    assert_eq!(sim.count("GetCallerIdentity", "Success").await, 4);
    assert_eq!(sim.count("GetCallerIdentity", "SignatureDoesNotMatch").await, 1);
}

#[tokio::test]
async fn the_client_learns_each_keys_account_once() {
    let sim = Sim::start(QUICK).await;
    let (a, b) = (client(&sim, &default_key()), client(&sim, &other_key()));
    // Many asking at once (objects reconciled together after a start) ask the cloud once.
    let together = futures::future::join_all((0..8).map(|_| a.account())).await;
    assert!(together.iter().all(|r| r.as_ref().is_ok_and(|a| a == DEFAULT_ACCOUNT)), "{together:?}");
    assert_eq!(a.account().await.unwrap(), DEFAULT_ACCOUNT);
    assert_eq!(a.account().await.unwrap(), DEFAULT_ACCOUNT);
    assert_eq!(b.account().await.unwrap(), OTHER_ACCOUNT);
    assert_eq!(sim.count("GetCallerIdentity", "Success").await, 2, "a key's account is asked once");
    // The same AccessKeyId with a wrong secret is not the same credentials.
    let wrong = a.with_credentials(Arc::new(StaticCredentials(Credentials {
        access_key_id: DEFAULT_ACCESS_KEY_ID.into(),
        access_key_secret: Secret::new("not-the-secret"),
        security_token: None,
    })));
    assert_eq!(wrong.account().await.unwrap_err().code(), "SignatureDoesNotMatch");
}

/// An OIDC token the simulator's default STS configuration accepts (signatures are not checked).
fn oidc_token() -> String {
    use base64::Engine;
    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let claims = json!({"iss": "https://oidc-ack.cn-hangzhou.aliyuncs.com/simulator", "aud": "sts.aliyuncs.com",
        "sub": "system:serviceaccount:ops:eipsegment-operator", "exp": chrono::Utc::now().timestamp() + 3600});
    format!("{}.{}.c2lnbmF0dXJl", b64(json!({"alg": "RS256"})), b64(claims))
}

#[tokio::test]
async fn caller_identity_of_sts_credentials_is_the_assumed_role() {
    let sim = Sim::start(QUICK).await;
    let token = oidc_token();
    let form = [
        ("Action", "AssumeRoleWithOIDC"),
        ("Version", "2015-04-01"),
        ("Format", "JSON"),
        ("RoleArn", "acs:ram::1234567890123456:role/eipsegment-operator"),
        ("OIDCProviderArn", "acs:ram::1234567890123456:oidc-provider/ack-rrsa-simulator"),
        ("OIDCToken", token.as_str()),
        ("RoleSessionName", "ops-session"),
    ];
    let response = sim.admin.post(format!("{}/", sim.url)).form(&form).send().await.unwrap();
    let grant: Value = response.json().await.unwrap();
    let c = &grant["Credentials"];
    let text = |v: &Value| v.as_str().unwrap_or_else(|| panic!("no credentials in {grant}")).to_string();
    let sts_key = Key(text(&c["AccessKeyId"]), text(&c["AccessKeySecret"]), Some(text(&c["SecurityToken"])));

    let (status, who) = caller_identity(&sim, &sts_key).await;
    assert_eq!(status, 200, "{who}");
    assert_eq!(who["IdentityType"], "AssumedRoleUser");
    assert_eq!(who["AccountId"], DEFAULT_ACCOUNT);
    assert_eq!(who["Arn"], "acs:ram::1234567890123456:assumed-role/eipsegment-operator/ops-session");
    assert_eq!(who["PrincipalId"], grant["AssumedRoleUser"]["AssumedRoleId"]);
    let without_token = Key(sts_key.0.clone(), sts_key.1.clone(), None);
    let (status, e) = caller_identity(&sim, &without_token).await;
    assert_eq!((status, &e["Code"]), (400, &json!("InvalidSecurityToken.Malformed")));

    // The role's credentials see the role account's segments, like its own key does.
    let id = allocate(&client(&sim, &default_key()), "uid-before-rrsa").await.unwrap();
    assert_eq!(listed(&client(&sim, &sts_key)).await, (vec![id], 1));
}

#[tokio::test]
async fn a_revoked_key_is_refused() {
    let sim = Sim::start(QUICK).await;
    let key = Key::new("LTAIsoonRevoked", "revoked-secret");
    let body = json!({"accessKeyId": key.0, "accessKeySecret": key.1, "account": OTHER_ACCOUNT});
    assert_eq!(sim.admin(Method::POST, "keys", body).await["account"], OTHER_ACCOUNT);
    let c = client(&sim, &key);
    let theirs = allocate(&c, "uid-revoked-allocate").await.unwrap();
    assert_eq!(listed(&client(&sim, &other_key())).await, (vec![theirs], 1), "a second key of account B");

    sim.admin(Method::DELETE, "keys/LTAIsoonRevoked", json!({})).await;
    let e = c.describe_segments(REGION, None, 1, 10).await.unwrap_err();
    assert_eq!((e.code(), e.class()), ("InvalidAccessKeyId.NotFound", ErrorClass::Terminal));
    let (status, e) = caller_identity(&sim, &key).await;
    assert_eq!((status, &e["Code"]), (404, &json!("InvalidAccessKeyId.NotFound")));
    assert_eq!(caller_identity(&sim, &other_key()).await.0, 200, "the account's other key still works");
}

#[tokio::test]
async fn a_new_segment_shows_only_after_the_visibility_lag() {
    let sim = Sim::start(QUICK).await;
    let timing =
        json!({"allocateSeconds": 0, "releaseSeconds": 5, "releaseCooldownSeconds": 0, "visibilityLagSeconds": 1.5});
    sim.admin(Method::PUT, "timing", timing).await;
    let a = client(&sim, &default_key());
    let id = allocate(&a, "uid-lagged").await.unwrap();
    assert!(a.describe_segment(REGION, &id).await.unwrap().is_none(), "not yet visible by ID");
    assert_eq!(listed(&a).await, (vec![], 0), "nor by page");
    assert_eq!(state_ids(&sim, DEFAULT_ACCOUNT).await, vec![id.clone()], "yet it exists");
    release(&a, &id, "uid-lagged-release").await.unwrap();

    tokio::time::sleep(Duration::from_millis(1600)).await;
    let seg = a.describe_segment(REGION, &id).await.unwrap().expect("visible after the lag");
    assert_eq!(seg.status, SegmentStatus::Releasing, "the release taken during the lag shows");
}

#[tokio::test]
async fn malformed_answers_arrive_as_http_200() {
    let sim = Sim::start(QUICK).await;
    let a = client(&sim, &default_key());
    allocate(&a, "uid-malformed").await.unwrap();
    let describe = [("RegionId", REGION)];
    let mut answers = Vec::new();
    for shape in ["noSegments", "noTotalCount", "wrongTotalCount", "emptyObject", "noSegmentList"] {
        sim.admin(Method::PUT, "faults", json!({"malformedRate": 1.0, "malformedShapes": [shape]})).await;
        let (status, body) = signed(&sim, &default_key(), "DescribeEipSegment", "2016-04-28", &describe).await;
        assert_eq!(status, 200, "{shape}: {body}");
        answers.push(body);
    }
    assert!(answers[0].get("EipSegments").is_none() && answers[0]["TotalCount"] == 1, "{}", answers[0]);
    assert!(answers[1].get("TotalCount").is_none() && answers[1]["EipSegments"]["EipSegment"][0].is_object());
    assert_eq!(answers[2]["TotalCount"], 0, "with one segment listed: {}", answers[2]);
    assert_eq!(answers[3], json!({}));
    assert_eq!(answers[4]["EipSegments"], json!({}));

    sim.admin(Method::PUT, "faults", json!({"malformedRate": 1.0, "malformedShapes": ["notJson"]})).await;
    let response = sim.admin.get(format!("{}/__admin/healthz", sim.url)).send().await.unwrap();
    assert!(response.status().is_success(), "the admin API is not subject to faults");
    let e = a.describe_segments(REGION, None, 1, 10).await.unwrap_err();
    assert_eq!((e.code(), e.class()), ("MalformedResponse", ErrorClass::Transient), "{e}");
    assert!(e.to_string().contains("HTTP 200"), "{e}");
    assert_eq!(sim.count("DescribeEipSegment", "Malformed").await, 6);
}
