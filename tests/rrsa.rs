//! RRSA end to end against the simulator over real HTTP: the provider trades a token file for STS
//! credentials, the VPC client signs with them (SecurityToken included), and renewal, rotation,
//! failures and secrecy behave as ACK pods need.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use eipsegment_operator::cloud::credentials::{self, CredentialProvider, Credentials, Secret, StaticCredentials};
use eipsegment_operator::cloud::sts::{self, RrsaCredentials, RrsaSettings, StsConfig};
use eipsegment_operator::cloud::{ClientConfig, CloudError, ErrorClass, VpcClient};
use serde_json::{Value, json};
use vpc_simulator as simulator;

const REGION: &str = "cn-hangzhou";
const ROLE: &str = "acs:ram::1234567890123456:role/eipsegment-operator";
const PROVIDER: &str = "acs:ram::1234567890123456:oidc-provider/ack-rrsa-simulator";
const ISSUER: &str = "https://oidc-ack.cn-hangzhou.aliyuncs.com/simulator";

use eipsegment_test_support::in_process;

use in_process::Sim;

/// The simulator with what these tests ask of its STS.
struct RrsaSim(Sim);

impl std::ops::Deref for RrsaSim {
    type Target = Sim;
    fn deref(&self) -> &Sim {
        &self.0
    }
}

impl RrsaSim {
    async fn start(flags: &[&str]) -> RrsaSim {
        RrsaSim(Sim::start(flags).await)
    }

    async fn set_sts(&self, patch: Value) -> Value {
        self.admin(reqwest::Method::PUT, "sts", patch).await
    }

    async fn issued(&self) -> Vec<Value> {
        self.admin(reqwest::Method::GET, "sts/credentials", json!({})).await.as_array().unwrap().clone()
    }

    /// Sleeps until the STS credentials with this key have `left` of their validity remaining.
    async fn sleep_until_left(&self, access_key_id: &str, left_ms: i64) {
        let issued = self.issued().await;
        let entry = issued.iter().find(|i| i["accessKeyId"] == access_key_id).expect("issued by this simulator");
        let expiration = chrono::DateTime::parse_from_rfc3339(entry["expiration"].as_str().unwrap()).unwrap();
        let wait =
            expiration.with_timezone(&chrono::Utc) - chrono::Duration::milliseconds(left_ms) - chrono::Utc::now();
        tokio::time::sleep(wait.to_std().unwrap_or_default()).await;
    }

    fn sts_config(&self, refresh_before: Duration) -> StsConfig {
        StsConfig {
            endpoint_override: Some(self.url.clone()),
            allow_insecure_endpoint: true,
            refresh_before,
            ..StsConfig::default()
        }
    }

    fn provider(&self, token_file: &Path, refresh_before: Duration) -> Arc<RrsaCredentials> {
        Arc::new(RrsaCredentials::new(settings(&self.url, token_file), self.sts_config(refresh_before)).unwrap())
    }

    fn client(&self, credentials: Arc<dyn CredentialProvider>) -> VpcClient {
        let config = ClientConfig {
            endpoint_override: Some(self.url.clone()),
            sts_endpoint: Some(self.url.clone()),
            allow_insecure_endpoint: true,
            timeout: Duration::from_secs(5),
        };
        VpcClient::new(config, credentials).unwrap()
    }
}

fn settings(endpoint: &str, token_file: &Path) -> RrsaSettings {
    RrsaSettings {
        role_arn: ROLE.into(),
        oidc_provider_arn: PROVIDER.into(),
        token_file: token_file.into(),
        session_name: "eipsegment-operator".into(),
        endpoint: endpoint.into(),
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A JWT-shaped token as ACK projects it (the simulator checks claims, not the signature).
fn jwt(claims: Value) -> String {
    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!("{}.{}.c2lnbmF0dXJlLW5vdC1jaGVja2Vk", b64(json!({"alg": "RS256", "kid": "rrsa"})), b64(claims))
}

fn claims(issued_at: i64, expires_at: i64) -> Value {
    json!({
        "iss": ISSUER,
        "aud": ["sts.aliyuncs.com"],
        "sub": "system:serviceaccount:eipsegment-system:eipsegment-operator",
        "iat": issued_at,
        "exp": expires_at,
    })
}

/// The projected token file; the directory goes when the test ends.
struct TokenFile {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl TokenFile {
    fn new(token: &str) -> TokenFile {
        let dir = tempfile::tempdir().unwrap();
        let file = TokenFile { path: dir.path().join("token"), _dir: dir };
        file.write(token);
        file
    }

    /// Replaces the file as the kubelet does: a new file renamed over the old.
    fn write(&self, token: &str) {
        let tmp = self.path.with_extension("new");
        std::fs::File::create(&tmp).and_then(|mut f| f.write_all(token.as_bytes())).unwrap();
        std::fs::rename(&tmp, &self.path).unwrap();
    }
}

async fn describe(client: &VpcClient) -> Result<(), CloudError> {
    client.describe_segments(REGION, None, 1, 10).await.map(|_| ())
}

#[tokio::test]
async fn calls_carry_the_security_token_of_the_assumed_role() {
    let sim = RrsaSim::start(&[]).await;
    let token = TokenFile::new(&jwt(claims(now() - 10, now() + 3600)));
    let provider = sim.provider(&token.path, Duration::from_secs(180));
    let client = sim.client(provider.clone());

    describe(&client).await.unwrap();
    describe(&client).await.unwrap();

    let creds = provider.credentials().await.unwrap();
    assert!(creds.access_key_id.starts_with("STS."), "{}", creds.access_key_id);
    assert!(creds.security_token.is_some());
    assert_eq!(sim.count("AssumeRoleWithOIDC", "Success").await, 1, "cached credentials serve both calls");
    assert_eq!(sim.count("DescribeEipSegment", "Success").await, 2);
    let issued = sim.issued().await;
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0]["accessKeyId"], creds.access_key_id.as_str());
    assert_eq!(issued[0]["account"], "1234567890123456");
    assert_eq!(issued[0]["roleSessionName"], "eipsegment-operator");
    assert_eq!(issued[0]["subject"], "system:serviceaccount:eipsegment-system:eipsegment-operator");
    assert_eq!(issued[0]["calls"], 2, "both calls authenticated with the STS key");

    // The gateway takes an STS key only with its token: without it, or with another, it refuses.
    // So the two calls above carried it.
    let without = Credentials { security_token: None, ..creds.clone() };
    let e = describe(&sim.client(Arc::new(StaticCredentials(without)))).await.unwrap_err();
    assert_eq!((e.code(), e.class()), ("InvalidSecurityToken.Malformed", ErrorClass::Terminal));
    let other = Credentials { security_token: Some(Secret::new("CAISsomethingelse")), ..creds };
    let e = describe(&sim.client(Arc::new(StaticCredentials(other)))).await.unwrap_err();
    assert_eq!(e.code(), "InvalidSecurityToken.MismatchWithAccessKey");
    assert_eq!(sim.issued().await[0]["calls"], 2);
}

#[tokio::test]
async fn concurrent_callers_share_one_refresh() {
    let sim = RrsaSim::start(&[]).await;
    sim.set_sts(json!({"delayMs": 300})).await;
    let token = TokenFile::new(&jwt(claims(now() - 10, now() + 3600)));
    let client = sim.client(sim.provider(&token.path, Duration::from_secs(180)));
    let calls: Vec<_> = (0..16)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { describe(&client).await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(sim.count("AssumeRoleWithOIDC", "Success").await, 1);
    assert_eq!(sim.count("DescribeEipSegment", "Success").await, 16);
}

#[tokio::test]
async fn a_token_the_cloud_refuses_early_is_replaced_at_the_next_call() {
    let sim = RrsaSim::start(&[]).await;
    let token = TokenFile::new(&jwt(claims(now() - 10, now() + 3600)));
    let provider = sim.provider(&token.path, Duration::from_secs(180));
    let first = provider.credentials().await.unwrap().access_key_id;
    assert_eq!(provider.credentials().await.unwrap().access_key_id, first, "cached while valid");
    provider.token_refused("STS.someone-else");
    assert_eq!(
        provider.credentials().await.unwrap().access_key_id,
        first,
        "a refusal of other credentials changes nothing"
    );
    provider.token_refused(&first);
    let second = provider.credentials().await.unwrap().access_key_id;
    assert_ne!(second, first, "fresh credentials after the refusal");
    assert_eq!(sim.count("AssumeRoleWithOIDC", "Success").await, 2);
}

#[tokio::test]
async fn short_lived_credentials_are_renewed_before_they_expire() {
    let sim = RrsaSim::start(&["--rrsa-credential-seconds", "3"]).await;
    let token = TokenFile::new(&jwt(claims(now() - 10, now() + 3600)));
    // The production threshold (180 s) is longer than these credentials live: renewal happens at
    // half their life instead, 1.5 s before expiry.
    let client = sim.client(sim.provider(&token.path, Duration::from_secs(180)));
    let started = Instant::now();
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut calls = 0u64;
                while started.elapsed() < Duration::from_secs(9) {
                    describe(&client)
                        .await
                        .unwrap_or_else(|e| panic!("a call failed after {:?}: {e}", started.elapsed()));
                    calls += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                calls
            })
        })
        .collect();
    let mut calls = 0;
    for worker in workers {
        calls += worker.await.unwrap();
    }

    let counters = sim.counters().await;
    let describes = counters["DescribeEipSegment"].as_object().unwrap();
    assert_eq!(describes.keys().collect::<Vec<_>>(), vec!["Success"], "{counters}");
    assert_eq!(describes["Success"], calls);
    let renewals = counters["AssumeRoleWithOIDC"]["Success"].as_u64().unwrap();
    // Nine seconds of 3 s credentials renewed every ~1.5 s: about six; not one per call.
    assert!((4..=12).contains(&renewals), "{renewals} AssumeRoleWithOIDC for {calls} calls");
    let issued = sim.issued().await;
    assert!(
        issued.iter().filter(|i| i["expired"] == true).count() >= 3,
        "the run spanned several expiries: {issued:?}"
    );
    let authenticated: u64 = issued.iter().map(|i| i["calls"].as_u64().unwrap()).sum();
    assert_eq!(authenticated, calls, "every call went out with STS credentials");
    // Each renewal came well before the credentials it replaced expired: at half their life, which
    // is 1 to 1.5 s as the client sees it (Expiration is in whole seconds).
    let time = |v: &Value, field: &str| chrono::DateTime::parse_from_rfc3339(v[field].as_str().unwrap()).unwrap();
    for pair in issued.windows(2) {
        let ahead = time(&pair[0], "expiration") - time(&pair[1], "issuedAt");
        assert!(ahead >= chrono::Duration::milliseconds(500), "renewed only {ahead} before expiry: {pair:?}");
    }
}

#[tokio::test]
async fn a_rotated_token_file_is_read_again_at_refresh() {
    let sim = RrsaSim::start(&["--rrsa-credential-seconds", "4"]).await;
    let old_token = jwt(claims(now() - 100, now() + 3600));
    let token = TokenFile::new(&old_token);
    let provider = sim.provider(&token.path, Duration::from_secs(180));
    let client = sim.client(provider.clone());
    describe(&client).await.unwrap();
    let first = provider.credentials().await.unwrap().access_key_id;

    // The kubelet rotates the projected token and the provider revokes the old one.
    token.write(&jwt(claims(now() - 5, now() + 3600)));
    sim.set_sts(json!({"rejectTokensIssuedBefore": now() - 50})).await;
    // The simulator does refuse the old token now: a provider that still held it would fail.
    let stale = TokenFile::new(&old_token);
    let e = describe(&sim.client(sim.provider(&stale.path, Duration::from_secs(180)))).await.unwrap_err();
    assert_eq!((e.code(), e.class()), ("AuthenticationFail.OIDCToken.Invalid", ErrorClass::Terminal), "{e}");

    // Four-second credentials are renewed two seconds before expiry.
    sim.sleep_until_left(&first, 1200).await;
    describe(&client).await.unwrap();
    let second = provider.credentials().await.unwrap().access_key_id;
    assert_ne!(first, second, "the credentials were renewed");
    assert_eq!(sim.count("AssumeRoleWithOIDC", "Success").await, 2);
    assert_eq!(
        sim.count("AssumeRoleWithOIDC", "AuthenticationFail.OIDCToken.Invalid").await,
        1,
        "only the stale provider was refused"
    );
}

#[tokio::test]
async fn valid_credentials_serve_while_sts_fails_and_then_the_failure_shows() {
    let sim = RrsaSim::start(&["--rrsa-credential-seconds", "10"]).await;
    let token = TokenFile::new(&jwt(claims(now() - 10, now() + 3600)));
    let provider = sim.provider(&token.path, Duration::from_secs(180));
    let client = sim.client(provider.clone());
    describe(&client).await.unwrap();
    let first = provider.credentials().await.unwrap().access_key_id;
    sim.set_sts(json!({"unavailable": true})).await;

    // Renewal is due 5 s before expiry; it fails, and the current credentials keep serving.
    sim.sleep_until_left(&first, 3500).await;
    describe(&client).await.unwrap();
    assert_eq!(provider.credentials().await.unwrap().access_key_id, first);
    assert!(sim.count("AssumeRoleWithOIDC", "ServiceUnavailable").await >= 1);

    // Too close to expiry to be sent (2.5 s): the STS failure reaches the caller, as a passing one.
    sim.sleep_until_left(&first, 1500).await;
    let e = describe(&client).await.unwrap_err();
    assert!(matches!(e, CloudError::Sts { http_status: 503, .. }), "{e:?}");
    assert_eq!((e.code(), e.class()), ("ServiceUnavailable", ErrorClass::Transient));

    sim.set_sts(json!({"unavailable": false})).await;
    describe(&client).await.unwrap();
    assert_ne!(provider.credentials().await.unwrap().access_key_id, first);
    let counters = sim.counters().await;
    assert_eq!(
        counters["DescribeEipSegment"].as_object().unwrap().keys().collect::<Vec<_>>(),
        vec!["Success"],
        "{counters}"
    );
}

#[tokio::test]
async fn refusals_are_terminal_and_say_why() {
    let sim = RrsaSim::start(&[]).await;
    let t = now();
    let good = jwt(claims(t - 10, t + 3600));
    let mut other_issuer = claims(t - 10, t + 3600);
    other_issuer["iss"] = json!("https://oidc.example.com/elsewhere");
    let mut other_audience = claims(t - 10, t + 3600);
    other_audience["aud"] = json!(["https://kubernetes.default.svc"]);
    let cases: Vec<(&str, String, &str, &str, &str)> = vec![
        ("expired token", jwt(claims(t - 7200, t - 3600)), ROLE, PROVIDER, "AuthenticationFail.OIDCToken.Expired"),
        ("not a JWT", "not-a-jwt".into(), ROLE, PROVIDER, "AuthenticationFail.OIDCToken.Invalid"),
        ("other issuer", jwt(other_issuer), ROLE, PROVIDER, "AuthenticationFail.OIDCToken.Invalid"),
        ("other audience", jwt(other_audience), ROLE, PROVIDER, "AuthenticationFail.OIDCToken.AudienceNotMatch"),
        ("unknown role", good.clone(), "acs:ram::1234567890123456:role/nobody", PROVIDER, "EntityNotExist.Role"),
        ("malformed role", good.clone(), "eipsegment-operator", PROVIDER, "InvalidParameter.RoleArn"),
        (
            "unknown provider",
            good.clone(),
            ROLE,
            "acs:ram::1234567890123456:oidc-provider/other",
            "AuthenticationFail.NoPermission",
        ),
    ];
    for (what, token, role, provider, code) in cases {
        let file = TokenFile::new(&token);
        let settings = RrsaSettings {
            role_arn: role.into(),
            oidc_provider_arn: provider.into(),
            ..settings(&sim.url, &file.path)
        };
        let rrsa = RrsaCredentials::new(settings, sim.sts_config(Duration::from_secs(180))).unwrap();
        let e = describe(&sim.client(Arc::new(rrsa))).await.unwrap_err();
        assert!(matches!(e, CloudError::Sts { .. }), "{what}: {e:?}");
        assert_eq!((e.code(), e.class()), (code, ErrorClass::Terminal), "{what}: {e}");
        let text = e.to_string();
        assert!(text.contains("AssumeRoleWithOIDC") && text.contains(code), "{what}: {text}");
        assert!(e.request_id().is_some(), "{what}: the STS RequestId is kept");
        if code == "AuthenticationFail.OIDCToken.Expired" {
            assert!(text.contains("expired") && text.contains(&file.path.display().to_string()), "{what}: {text}");
        }
    }
    let counters = sim.counters().await;
    assert!(counters.get("DescribeEipSegment").is_none(), "no VPC call went out without credentials: {counters}");
    assert_eq!(
        counters["AssumeRoleWithOIDC"].as_object().unwrap().values().map(|n| n.as_u64().unwrap()).sum::<u64>(),
        7
    );
}

#[tokio::test]
async fn an_unreachable_or_slow_sts_is_a_passing_failure() {
    let sim = RrsaSim::start(&[]).await;
    let token = TokenFile::new(&jwt(claims(now() - 10, now() + 3600)));

    sim.set_sts(json!({"delayMs": 1500})).await;
    let config = StsConfig { timeout: Duration::from_millis(300), ..sim.sts_config(Duration::from_secs(180)) };
    let slow = RrsaCredentials::new(settings(&sim.url, &token.path), config).unwrap();
    let e = slow.credentials().await.unwrap_err();
    assert_eq!((e.code(), e.class()), ("Timeout", ErrorClass::Transient), "{e}");

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let nowhere =
        RrsaCredentials::new(settings(&closed, &token.path), sim.sts_config(Duration::from_secs(180))).unwrap();
    let e = nowhere.credentials().await.unwrap_err();
    assert_eq!((e.code(), e.class()), ("ConnectionFailed", ErrorClass::Transient), "{e}");
}

/// A tracing writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// The process's log, every thread's: a subscriber set for one thread alone can miss events
    /// whose callsites another thread first met with no subscriber (tracing caches that interest).
    fn global() -> &'static Captured {
        static LOG: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
        LOG.get_or_init(|| {
            let log = Captured::default();
            let writer = log.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .finish();
            tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber");
            log
        })
    }
}

#[tokio::test]
async fn secrets_stay_out_of_debug_output_errors_and_logs() {
    let log = Captured::global();

    let sim = RrsaSim::start(&["--rrsa-credential-seconds", "2"]).await;
    let oidc_token = jwt(claims(now() - 10, now() + 3600));
    let token = TokenFile::new(&oidc_token);
    let provider = sim.provider(&token.path, Duration::from_secs(180));
    let client = sim.client(provider.clone());
    describe(&client).await.unwrap();
    let creds = provider.credentials().await.unwrap();
    let secret = creds.access_key_secret.expose().to_string();
    let security_token = creds.security_token.as_ref().unwrap().expose().to_string();

    let mut shown = vec![format!("{creds:?}"), format!("{provider:?}")];
    // A signature error: the gateway echoes its string to sign, SecurityToken included.
    let tampered = Credentials { access_key_secret: Secret::new("wrong-secret"), ..creds.clone() };
    let e = describe(&sim.client(Arc::new(StaticCredentials(tampered)))).await.unwrap_err();
    assert_eq!(e.code(), "SignatureDoesNotMatch");
    shown.extend([e.to_string(), format!("{e:?}")]);
    // An STS refusal once the token has expired, when the 2 s credentials are too old to serve.
    let expired_token = jwt(claims(now() - 7200, now() - 60));
    token.write(&expired_token);
    // The provider may have renewed meanwhile (a loaded machine), so call until its 2 s credentials
    // are too old to serve; that takes a few seconds at most.
    sim.sleep_until_left(&creds.access_key_id, 300).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let e = loop {
        match describe(&client).await {
            Err(e) => break e,
            Ok(_) if std::time::Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
            Ok(_) => panic!("expired OIDC token never refused"),
        }
    };
    assert_eq!(e.code(), "AuthenticationFail.OIDCToken.Expired");
    shown.extend([e.to_string(), format!("{e:?}"), format!("{provider:?}")]);

    let logged = log.text();
    assert!(
        logged.contains("obtained STS credentials") && logged.contains(&creds.access_key_id),
        "the log was captured:\n{logged}"
    );
    shown.push(logged);
    let payload = |jwt: &str| jwt.split('.').nth(1).unwrap().to_string();
    let (first_payload, expired_payload) = (payload(&oidc_token), payload(&expired_token));
    for text in &shown {
        for (what, value) in [
            ("AccessKeySecret", &secret),
            ("SecurityToken", &security_token),
            ("OIDC token", &first_payload),
            ("expired OIDC token", &expired_payload),
        ] {
            assert!(!text.contains(value.as_str()), "the {what} shows in:\n{text}");
        }
    }
}

#[tokio::test]
async fn the_default_chain_takes_access_keys_then_rrsa_then_nothing() {
    let sim = RrsaSim::start(&[]).await;
    let token = TokenFile::new(&jwt(claims(now() - 10, now() + 3600)));
    let file = token.path.to_str().unwrap().to_string();
    let chain = |vars: &[(&str, &str)]| {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        credentials::chain_from(sim.sts_config(Duration::from_secs(180)), move |name| vars.get(name).cloned())
    };
    let rrsa =
        [(sts::ENV_ROLE_ARN, ROLE), (sts::ENV_OIDC_PROVIDER_ARN, PROVIDER), (sts::ENV_OIDC_TOKEN_FILE, file.as_str())];

    let from_rrsa = chain(&rrsa).unwrap();
    assert!(from_rrsa.credentials().await.unwrap().access_key_id.starts_with("STS."));
    describe(&sim.client(from_rrsa)).await.unwrap();

    let mut both = rrsa.to_vec();
    both.extend([
        (credentials::ENV_ACCESS_KEY_ID, simulator::DEFAULT_ACCESS_KEY_ID),
        (credentials::ENV_ACCESS_KEY_SECRET, simulator::DEFAULT_ACCESS_KEY_SECRET),
    ]);
    let from_keys = chain(&both).unwrap();
    assert_eq!(from_keys.credentials().await.unwrap().access_key_id, simulator::DEFAULT_ACCESS_KEY_ID);
    assert_eq!(sim.count("AssumeRoleWithOIDC", "Success").await, 1, "access keys win without asking STS");

    let e = chain(&[]).unwrap().credentials().await.unwrap_err();
    assert_eq!((e.code(), e.class()), ("NoCredentials", ErrorClass::Terminal));
    let Err(e) = chain(&rrsa[..2]) else { panic!("a partial RRSA setup must be refused") };
    assert!(e.contains(sts::ENV_OIDC_TOKEN_FILE), "{e}");
    let https_only = StsConfig { allow_insecure_endpoint: false, ..sim.sts_config(Duration::from_secs(180)) };
    let vars: HashMap<&str, &str> = rrsa.into_iter().collect();
    let Err(e) = credentials::chain_from(https_only, |name| vars.get(name).map(|v| v.to_string())) else {
        panic!("plain http STS without the opt-in must be refused")
    };
    assert!(e.contains("plain http"), "{e}");
}
