//! The VPC API client: one typed function per action, RPC v1 signing, a timeout on every call.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde::de::DeserializeOwned;
use sha2::Digest;
use tracing::{Instrument, field};

use crate::cloud::credentials::CredentialProvider;
use crate::cloud::model::*;
use crate::cloud::{CloudError, signer};
use crate::quota::{Admission, Admit, Quota, Quotas};

/// Regions served by the central endpoint; the others have `vpc.<region>.aliyuncs.com`.
const CENTRAL_ENDPOINT_REGIONS: &[&str] = &[
    "cn-qingdao",
    "cn-beijing",
    "cn-hangzhou",
    "cn-shanghai",
    "cn-shenzhen",
    "cn-hongkong",
    "ap-southeast-1",
    "us-east-1",
    "us-west-1",
];

pub fn default_endpoint(region: &str) -> String {
    if CENTRAL_ENDPOINT_REGIONS.contains(&region) {
        "https://vpc.aliyuncs.com".to_string()
    } else {
        format!("https://vpc.{region}.aliyuncs.com")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientConfigError {
    #[error("endpoint {0:?} is not an http(s) URL")]
    BadEndpoint(String),
    #[error("endpoint {0:?} is plain http: allow it explicitly (for a simulator or a test) or use https")]
    InsecureEndpoint(String),
    #[error("could not build the HTTP client")]
    Http(#[source] reqwest::Error),
}

#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Replaces the per-region endpoint for every region (a private endpoint or a simulator).
    pub endpoint_override: Option<String>,
    /// STS for GetCallerIdentity; default `https://sts.aliyuncs.com`.
    pub sts_endpoint: Option<String>,
    pub allow_insecure_endpoint: bool,
    pub timeout: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            endpoint_override: None,
            sts_endpoint: None,
            allow_insecure_endpoint: false,
            timeout: Duration::from_secs(10),
        }
    }
}

const DEFAULT_STS_ENDPOINT: &str = "https://sts.aliyuncs.com";

/// Told about every call, for metrics; the client itself knows nothing of Prometheus.
pub trait CallObserver: Send + Sync {
    /// `outcome` is Success or the error's bounded code ([`CloudError::metric_code`]).
    fn observe(&self, action: Action, region: &str, outcome: &str, throttled: bool, elapsed: Duration);
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ReleaseBody {
    #[serde(default)]
    request_id: String,
}

#[derive(Clone)]
pub struct VpcClient {
    http: reqwest::Client,
    config: ClientConfig,
    credentials: Arc<dyn CredentialProvider>,
    observer: Option<Arc<dyn CallObserver>>,
    quotas: Quotas,
    /// The account each key (AccessKeyId and a digest of its secret) acts for, once asked: a key
    /// never changes account.
    accounts: Arc<std::sync::Mutex<std::collections::HashMap<String, String>>>,
    asking: Arc<tokio::sync::Mutex<()>>,
    /// How far the cloud's clock ran from this host's at its last answer (its `Date` header), in
    /// seconds, cloud minus host; `i64::MIN` until an answer carried one.
    cloud_clock_offset: Arc<std::sync::atomic::AtomicI64>,
}

impl VpcClient {
    pub fn new(config: ClientConfig, credentials: Arc<dyn CredentialProvider>) -> Result<Self, ClientConfigError> {
        for endpoint in [&config.endpoint_override, &config.sts_endpoint].into_iter().flatten() {
            if endpoint.starts_with("http://") {
                if !config.allow_insecure_endpoint {
                    return Err(ClientConfigError::InsecureEndpoint(endpoint.clone()));
                }
            } else if !endpoint.starts_with("https://") {
                return Err(ClientConfigError::BadEndpoint(endpoint.clone()));
            }
        }
        install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(5)))
            .pool_idle_timeout(Duration::from_secs(30))
            .user_agent(concat!("eipsegment-operator/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(ClientConfigError::Http)?;
        Ok(VpcClient {
            http,
            config,
            credentials,
            observer: None,
            quotas: Quotas::default(),
            accounts: Arc::default(),
            asking: Arc::default(),
            cloud_clock_offset: Arc::new(std::sync::atomic::AtomicI64::new(i64::MIN)),
        })
    }

    /// How far the cloud's clock runs ahead of this host's (negative: behind), as its last answer
    /// dated it; to the second at best.
    pub fn cloud_clock_offset(&self) -> Option<chrono::TimeDelta> {
        let seconds = self.cloud_clock_offset.load(std::sync::atomic::Ordering::Relaxed);
        (seconds != i64::MIN).then(|| chrono::TimeDelta::seconds(seconds))
    }

    /// The same client (connection pool, endpoint, observer) acting with other credentials.
    pub fn with_credentials(&self, credentials: Arc<dyn CredentialProvider>) -> Self {
        VpcClient { credentials, ..self.clone() }
    }

    /// Calls wait for their (credentials, region, action) quota; none are limited by default.
    pub fn with_quotas(mut self, quotas: Quotas) -> Self {
        self.quotas = quotas;
        self
    }

    pub fn with_observer(mut self, observer: Arc<dyn CallObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    pub fn endpoint(&self, action: Action, region: &str) -> String {
        let endpoint = match action {
            Action::GetCallerIdentity => {
                self.config.sts_endpoint.clone().unwrap_or_else(|| DEFAULT_STS_ENDPOINT.into())
            }
            _ => self.config.endpoint_override.clone().unwrap_or_else(|| default_endpoint(region)),
        };
        endpoint.trim_end_matches('/').to_string()
    }

    /// The Alibaba Cloud account these credentials act for (STS GetCallerIdentity, once per
    /// AccessKeyId). Every answer the operator believes is tied to an account this way.
    pub async fn account(&self) -> Result<String, CloudError> {
        let credentials = self.credentials.credentials().await?;
        // A key with another secret is other credentials (and perhaps no credentials at all).
        let digest = sha2::Sha256::digest(credentials.access_key_secret.expose().as_bytes());
        let key = format!("{}:{}", credentials.access_key_id, hex::encode(digest));
        if let Some(account) = lock(&self.accounts).get(&key) {
            return Ok(account.clone());
        }
        // One question at a time: many objects starting together ask once.
        let _asking = self.asking.lock().await;
        if let Some(account) = lock(&self.accounts).get(&key) {
            return Ok(account.clone());
        }
        let identity: CallerIdentity = self.call(Action::GetCallerIdentity, "", Vec::new()).await?;
        if identity.account_id.is_empty() || identity.request_id.is_empty() {
            return Err(malformed(Action::GetCallerIdentity, "no AccountId or RequestId"));
        }
        lock(&self.accounts).insert(key, identity.account_id.clone());
        Ok(identity.account_id)
    }

    /// Requests a segment under a place taken within the client-side quota.
    pub async fn allocate(
        &self,
        request: &AllocateRequest,
        admission: Admission,
    ) -> Result<AllocateResponse, CloudError> {
        let action = Action::AllocateEipSegmentAddress;
        let response: AllocateResponse =
            self.call_admitted(action, &request.region_id, request.params(), Some(admission)).await?;
        if response.eip_segment_instance_id.is_empty() || response.request_id.is_empty() {
            return Err(malformed(action, "no EipSegmentInstanceId or RequestId"));
        }
        Ok(response)
    }

    /// One page of the region's segments, or of the one segment named. Only a whole, consistent
    /// answer is a page; anything else is `Malformed`.
    pub async fn describe_segments(
        &self,
        region: &str,
        segment_id: Option<&str>,
        page_number: u32,
        page_size: u32,
    ) -> Result<SegmentPage, CloudError> {
        self.describe_segments_admitted(region, segment_id, page_number, page_size, None).await
    }

    async fn describe_segments_admitted(
        &self,
        region: &str,
        segment_id: Option<&str>,
        page_number: u32,
        page_size: u32,
        admitted: Option<Admission>,
    ) -> Result<SegmentPage, CloudError> {
        // An empty ID is no filter: the parameter is not sent.
        let segment_id = segment_id.filter(|id| !id.is_empty());
        let query = SegmentQuery {
            segment_id,
            page_number: page_number.max(1),
            page_size: page_size.clamp(1, MAX_SEGMENT_PAGE_SIZE),
        };
        let mut params = vec![
            ("RegionId", region.to_string()),
            ("PageNumber", query.page_number.to_string()),
            ("PageSize", query.page_size.to_string()),
        ];
        if let Some(id) = segment_id {
            params.push(("SegmentInstanceId", id.to_string()));
        }
        let body: DescribeEipSegmentBody =
            self.call_admitted(Action::DescribeEipSegment, region, params, admitted).await?;
        body.into_page(query).map_err(|detail| malformed(Action::DescribeEipSegment, &detail))
    }

    /// The segment by ID, and when the look went out: after any wait for a place within the quota,
    /// so that what the answer says is dated by when it was asked.
    pub async fn look_at_segment(
        &self,
        region: &str,
        segment_id: &str,
    ) -> (tokio::time::Instant, Result<Option<Segment>, CloudError>) {
        let admission = match self.place(Action::DescribeEipSegment, region).await {
            Ok(admission) => admission,
            Err(e) => return (tokio::time::Instant::now(), Err(e)),
        };
        let sent = tokio::time::Instant::now();
        let page = self.describe_segments_admitted(region, Some(segment_id), 1, MAX_SEGMENT_PAGE_SIZE, Some(admission));
        (sent, page.await.map(|page| page.segments.into_iter().find(|s| s.instance_id == segment_id)))
    }

    /// Waits for a place within the quota of `action`.
    async fn place(&self, action: Action, region: &str) -> Result<Admission, CloudError> {
        loop {
            match self.admit(action, region).await {
                Admit::Granted(admission) => return Ok(admission),
                Admit::NotYet { after, .. } => tokio::time::sleep(after).await,
                Admit::Failed(e) => return Err(e),
            }
        }
    }

    /// The segment, or `None` when a well-formed answer by ID no longer returns it (released).
    pub async fn describe_segment(&self, region: &str, segment_id: &str) -> Result<Option<Segment>, CloudError> {
        self.look_at_segment(region, segment_id).await.1
    }

    /// Asks for the release under a place taken within the client-side quota; returns the RequestId.
    /// The release itself completes asynchronously.
    pub async fn release(
        &self,
        region: &str,
        segment_id: &str,
        client_token: &str,
        admission: Admission,
    ) -> Result<String, CloudError> {
        let action = Action::ReleaseEipSegmentAddress;
        let params = vec![
            ("RegionId", region.to_string()),
            ("SegmentInstanceId", segment_id.to_string()),
            ("ClientToken", client_token.to_string()),
        ];
        let body: ReleaseBody = self.call_admitted(action, region, params, Some(admission)).await?;
        if body.request_id.is_empty() {
            return Err(malformed(action, "no RequestId"));
        }
        Ok(body.request_id)
    }

    /// Takes a place for one `action` call within the client-side quota of these credentials if
    /// one is free now, without waiting.
    pub async fn admit(&self, action: Action, region: &str) -> Admit {
        match self.credentials.credentials().await {
            Ok(credentials) => self.quotas.admit(action, &credentials.access_key_id, region),
            Err(e) => Admit::Failed(e),
        }
    }

    /// The client-side quota of `action`'s calls, if limited.
    pub fn quota(&self, action: Action) -> Option<Quota> {
        self.quotas.quota(action)
    }

    /// Every member EIP of a segment: the whole list, or an error. Pages that
    /// are malformed, disagree on TotalCount, repeat an EIP or end short are `Malformed`.
    pub async fn describe_segment_members(
        &self,
        region: &str,
        segment_id: &str,
    ) -> Result<Vec<EipAddress>, CloudError> {
        let action = Action::DescribeEipAddresses;
        let mut all: Vec<EipAddress> = Vec::new();
        let mut total = None;
        for page_number in 1.. {
            let params = vec![
                ("RegionId", region.to_string()),
                ("SegmentInstanceId", segment_id.to_string()),
                ("PageNumber", page_number.to_string()),
                ("PageSize", MAX_EIP_PAGE_SIZE.to_string()),
            ];
            let body: DescribeEipAddressesBody = self.call(action, region, params).await?;
            let (page_total, page) = body
                .into_members(segment_id, page_number, MAX_EIP_PAGE_SIZE)
                .map_err(|detail| malformed(action, &detail))?;
            if *total.get_or_insert(page_total) != page_total {
                return Err(malformed(action, "TotalCount changed between pages"));
            }
            let got = page.len();
            all.extend(page);
            if got == 0 || all.len() >= page_total as usize {
                break;
            }
        }
        if all.len() != total.unwrap_or(0) as usize {
            return Err(malformed(action, "the pages end before TotalCount"));
        }
        let mut distinct = std::collections::HashSet::new();
        if !all.iter().all(|m| distinct.insert(m.ip_address.as_str()) && distinct.insert(m.allocation_id.as_str())) {
            return Err(malformed(action, "an EIP listed twice"));
        }
        Ok(all)
    }

    async fn call<T: DeserializeOwned>(
        &self,
        action: Action,
        region: &str,
        params: Vec<(&'static str, String)>,
    ) -> Result<T, CloudError> {
        self.call_admitted(action, region, params, None).await
    }

    async fn call_admitted<T: DeserializeOwned>(
        &self,
        action: Action,
        region: &str,
        params: Vec<(&'static str, String)>,
        admitted: Option<Admission>,
    ) -> Result<T, CloudError> {
        let span = tracing::debug_span!("vpc_call", action = %action, region, request_id = field::Empty);
        let started = Instant::now();
        let result = self.send::<T>(action, region, params, admitted).instrument(span.clone()).await;
        let outcome = match &result {
            Ok(_) => "Success",
            Err(e) => e.metric_code(),
        };
        if let Err(e) = &result {
            if let Some(id) = e.request_id() {
                span.record("request_id", id);
            }
            tracing::debug!(parent: &span, error = %e, "cloud call failed");
        }
        if let Some(observer) = &self.observer {
            let throttled = result.as_ref().err().is_some_and(CloudError::is_throttling);
            observer.observe(action, region, outcome, throttled, started.elapsed());
        }
        result
    }

    async fn send<T: DeserializeOwned>(
        &self,
        action: Action,
        region: &str,
        params: Vec<(&'static str, String)>,
        admitted: Option<Admission>,
    ) -> Result<T, CloudError> {
        let credentials = self.credentials.credentials().await?;
        match admitted {
            Some(admission) => admission.spend(),
            None => self.quotas.wait(action, &credentials.access_key_id, region).await,
        }
        let mut all: Vec<(&str, String)> = vec![
            ("Action", action.as_str().to_string()),
            ("Version", action.version().to_string()),
            ("Format", "JSON".to_string()),
            ("AccessKeyId", credentials.access_key_id.clone()),
            ("SignatureMethod", "HMAC-SHA1".to_string()),
            ("SignatureVersion", "1.0".to_string()),
            ("SignatureNonce", uuid::Uuid::new_v4().to_string()),
            ("Timestamp", Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()),
        ];
        if let Some(token) = &credentials.security_token {
            all.push(("SecurityToken", token.expose().to_string()));
        }
        all.extend(params);
        all.retain(|(_, v)| !v.is_empty());
        let signature = signer::rpc_signature(
            "POST",
            all.iter().map(|(k, v)| (*k, v.as_str())),
            credentials.access_key_secret.expose(),
        );
        all.push(("Signature", signature));
        let body = all
            .iter()
            .map(|(k, v)| format!("{}={}", signer::percent_encode(k), signer::percent_encode(v)))
            .collect::<Vec<_>>()
            .join("&");

        let response = self
            .http
            .post(format!("{}/", self.endpoint(action, region)))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Accept", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| self.transport_error(action, e))?;
        let status = response.status().as_u16();
        let retry_after = throttle_hint(response.headers());
        if let Some(offset) = clock_offset(response.headers(), Utc::now()) {
            self.cloud_clock_offset.store(offset.num_seconds(), std::sync::atomic::Ordering::Relaxed);
        }
        let bytes = response.bytes().await.map_err(|e| self.transport_error(action, e))?;
        let answer = read_answer(action, status, retry_after, &bytes);
        if let Err(e) = &answer {
            if e.token_refused() {
                self.credentials.token_refused(&credentials.access_key_id);
            }
            if e.is_throttling() {
                self.quotas.throttled(action, &credentials.access_key_id, region, e.retry_after());
            }
        }
        answer
    }

    fn transport_error(&self, action: Action, e: reqwest::Error) -> CloudError {
        if e.is_timeout() {
            CloudError::Timeout { action, timeout: self.config.timeout }
        } else if e.is_connect() {
            CloudError::Connect { action, source: e }
        } else {
            CloudError::Transport { action, source: e }
        }
    }
}

/// The answer's `Date` (RFC 7231, as RFC 2822 reads it) less `now`.
fn clock_offset(headers: &reqwest::header::HeaderMap, now: chrono::DateTime<Utc>) -> Option<chrono::TimeDelta> {
    let date = headers.get(reqwest::header::DATE)?.to_str().ok()?;
    let dated = chrono::DateTime::parse_from_rfc2822(date).ok()?;
    Some(dated.with_timezone(&Utc) - now)
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A 2xx answer that lacks what every real answer holds: proof of nothing.
fn malformed(action: Action, detail: &str) -> CloudError {
    CloudError::Malformed { action, http_status: 200, detail: detail.to_string() }
}

/// What an answer means: the typed body, or the error it carries. Any bytes give a value, never a
/// panic.
pub fn read_answer<T: DeserializeOwned>(
    action: Action,
    status: u16,
    retry_after: Option<Duration>,
    bytes: &[u8],
) -> Result<T, CloudError> {
    if (200..300).contains(&status) {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes)
            && let Some(id) = v.get("RequestId").and_then(|v| v.as_str())
        {
            tracing::Span::current().record("request_id", id);
        }
        return serde_json::from_slice(bytes).map_err(|e| CloudError::Malformed {
            action,
            http_status: status,
            detail: format!("{e} in {}", snippet(bytes)),
        });
    }
    let (retry_after, asked) = crate::cloud::error::bounded_hint(retry_after);
    match serde_json::from_slice::<ErrorBody>(bytes) {
        Ok(err) if !err.code.is_empty() => Err(CloudError::Api {
            action,
            http_status: status,
            code: err.code,
            message: without_string_to_sign(err.message) + &asked,
            request_id: err.request_id,
            retry_after,
        }),
        _ if status >= 500 || status == 429 => Err(CloudError::Api {
            action,
            http_status: status,
            code: crate::cloud::error::bodyless_code(status),
            message: snippet(bytes) + &asked,
            request_id: String::new(),
            retry_after,
        }),
        _ => Err(CloudError::Malformed { action, http_status: status, detail: snippet(bytes) }),
    }
}

/// One TLS crypto provider (ring) for the whole process, shared with the Kubernetes client.
pub fn install_crypto_provider() {
    // Err only means a provider is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// `TimeLeft:<ms>` from the throttling headers, when present.
fn throttle_hint(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    ["x-ratelimit-user-api", "x-ratelimit-user"].iter().find_map(|name| {
        let value = headers.get(*name)?.to_str().ok()?;
        value.split([',', ';']).find_map(|part| {
            let (k, v) = part.split_once(':')?;
            (k.trim() == "TimeLeft").then(|| v.trim().parse::<u64>().ok().map(Duration::from_millis))?
        })
    })
}

/// A signature error echoes the server's string to sign, which holds the SecurityToken: cut it off
/// before the message can reach a log, an event or status.
fn without_string_to_sign(message: String) -> String {
    match message.find("server string to sign is") {
        Some(i) => message[..i].trim_end().to_string(),
        None => message,
    }
}

fn snippet(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut s: String = text.chars().take(200).collect();
    if text.chars().count() > 200 {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::credentials::MissingCredentials;

    #[test]
    fn endpoints_per_region() {
        assert_eq!(default_endpoint("cn-hangzhou"), "https://vpc.aliyuncs.com");
        assert_eq!(default_endpoint("eu-central-1"), "https://vpc.eu-central-1.aliyuncs.com");
    }

    #[test]
    fn plain_http_needs_an_explicit_opt_in() {
        let cfg = |allow| ClientConfig {
            endpoint_override: Some("http://127.0.0.1:1".into()),
            allow_insecure_endpoint: allow,
            ..Default::default()
        };
        assert!(matches!(
            VpcClient::new(cfg(false), Arc::new(MissingCredentials)),
            Err(ClientConfigError::InsecureEndpoint(_))
        ));
        assert!(VpcClient::new(cfg(true), Arc::new(MissingCredentials)).is_ok());
    }

    #[test]
    fn signature_errors_lose_the_echoed_string_to_sign() {
        let m = "Specified signature is not matched with our calculation. server string to sign is:POST&%2F&SecurityToken%3Dsts-secret".to_string();
        let cut = without_string_to_sign(m);
        assert!(!cut.contains("sts-secret"));
        assert!(cut.starts_with("Specified signature is not matched"));
    }

    use proptest::prelude::*;

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(serde_json::Value::from),
            ".{0,12}".prop_map(serde_json::Value::from),
        ];
        let keys = prop_oneof![
            Just("RequestId".to_string()),
            Just("Code".to_string()),
            Just("Message".to_string()),
            Just("EipSegments".to_string()),
            Just("EipSegment".to_string()),
            Just("InstanceId".to_string()),
            Just("Status".to_string()),
            Just("IpCount".to_string()),
            Just("TotalCount".to_string()),
            Just("EipAddresses".to_string()),
            Just("EipAddress".to_string()),
            Just("EipSegmentInstanceId".to_string()),
            Just("OrderId".to_string()),
            "[A-Za-z]{1,8}",
        ];
        leaf.prop_recursive(4, 48, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                prop::collection::btree_map(keys.clone(), inner, 0..5)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn read_all(status: u16, bytes: &[u8]) {
        let _ = read_answer::<DescribeEipSegmentBody>(Action::DescribeEipSegment, status, None, bytes).map(|_| ());
        let _ = read_answer::<DescribeEipAddressesBody>(Action::DescribeEipAddresses, status, None, bytes).map(|_| ());
        let _ = read_answer::<AllocateResponse>(Action::AllocateEipSegmentAddress, status, None, bytes).map(|_| ());
        if let Err(e) = read_answer::<serde_json::Value>(Action::ReleaseEipSegmentAddress, status, None, bytes) {
            // Every failure is classified and printable.
            let _ = (e.class(), e.code().len(), e.to_string());
        }
    }

    proptest! {
        #[test]
        fn any_bytes_are_an_answer_or_an_error_never_a_panic(status in 100u16..600, bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            read_all(status, &bytes);
        }

        #[test]
        fn any_json_shape_is_an_answer_or_an_error_never_a_panic(status in prop_oneof![Just(200u16), Just(400u16), Just(404u16), Just(500u16), 100u16..600], value in json_value()) {
            read_all(status, value.to_string().as_bytes());
        }

        #[test]
        fn error_bodies_keep_their_code(code in "[A-Za-z][A-Za-z.]{0,40}", status in 400u16..600) {
            let body = serde_json::json!({"RequestId": "R", "Code": code, "Message": "m"}).to_string();
            let e = read_answer::<serde_json::Value>(Action::ReleaseEipSegmentAddress, status, None, body.as_bytes()).unwrap_err();
            prop_assert_eq!(e.code(), code.as_str());
        }
    }

    #[test]
    fn a_hint_of_any_size_is_taken_for_a_minute_at_most_and_told() {
        let body =
            br#"{"Code":"Throttling.User","Message":"Request was denied due to user flow control.","RequestId":"r"}"#;
        let hours = Some(Duration::from_secs(3 * 3600));
        let e = read_answer::<serde_json::Value>(Action::DescribeEipSegment, 400, hours, body).unwrap_err();
        assert_eq!(e.retry_after(), Some(crate::cloud::error::LONGEST_HINT));
        assert!(e.to_string().contains("asked to wait 10800 s before retrying"), "{e}");
        let e = read_answer::<serde_json::Value>(Action::DescribeEipSegment, 400, Some(Duration::from_secs(2)), body);
        assert_eq!(e.unwrap_err().retry_after(), Some(Duration::from_secs(2)), "a hint within bounds is kept");
    }

    #[test]
    fn reads_time_left_hints() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("x-ratelimit-user-api", "Limit:60,Remain:0,TimeLeft:1500,Reset:1".parse().unwrap());
        assert_eq!(throttle_hint(&h), Some(Duration::from_millis(1500)));
        assert_eq!(throttle_hint(&reqwest::header::HeaderMap::new()), None);
    }

    #[test]
    fn the_clouds_clock_is_read_from_its_date_header() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-07T00:10:51Z").unwrap().with_timezone(&Utc);
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(reqwest::header::DATE, "Mon, 07 Dec 2026 00:00:51 GMT".parse().unwrap());
        assert_eq!(clock_offset(&h, now), Some(chrono::TimeDelta::seconds(-600)));
        h.insert(reqwest::header::DATE, "yesterday".parse().unwrap());
        assert_eq!(clock_offset(&h, now), None);
        assert_eq!(clock_offset(&reqwest::header::HeaderMap::new(), now), None);
    }
}
