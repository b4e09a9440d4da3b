//! The simulator's HTTP front: the VPC API at `/` (RPC v1 or V3 signed, GET query or POST form) and
//! the admin API under `/__admin/`. Faults and rate limits are applied here, as a gateway would.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, Response, StatusCode};
use rand::Rng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

use super::auth::{AccessKey, Keyring, SignedRequest};
use super::limits::{Limiter, RateLimit, Refusal};
use super::malformed::{self, MalformedShape};
use super::sts::{self, Issued, StsConfig};
use super::world::{ApiError, Params, SeedSegment, SegmentPatch, Timing, World};
use vpc_api::Action;

pub const ADMIN_PREFIX: &str = "/__admin/";
const MAX_BODY: usize = 1 << 20;

/// Injected faults; rates are probabilities per request.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Faults {
    pub internal_error_rate: f64,
    /// Connections dropped without an answer; half before the action runs, half after it.
    pub drop_rate: f64,
    pub delay_rate: f64,
    pub delay_ms_min: u64,
    pub delay_ms_max: u64,
    /// Throttling answers beyond those of the rate limits.
    pub throttle_rate: f64,
    /// The TimeLeft those answers give, in milliseconds (1000 when unset): the real API's hint
    /// can be anything, minutes included.
    pub throttle_time_left_ms: Option<u64>,
    /// Successful answers replaced by a malformed HTTP 200 answer (the action itself took effect:
    /// for a mutation this is like a lost answer). Drawn per request, after the other faults.
    pub malformed_rate: f64,
    /// The shapes drawn from, among those that apply to the action; empty means all of them.
    pub malformed_shapes: Vec<MalformedShape>,
    /// VPC actions the faults apply to; empty means every VPC action. STS has its own faults
    /// (`/__admin/sts`: `unavailable`, `delayMs`).
    pub actions: Vec<String>,
}

pub struct Simulator {
    world: Mutex<World>,
    keyring: Mutex<Keyring>,
    faults: Mutex<Faults>,
    limiter: Mutex<Limiter>,
    counters: Mutex<BTreeMap<String, BTreeMap<String, u64>>>,
    rng: Mutex<StdRng>,
    sts: Mutex<StsConfig>,
    issued: Mutex<Vec<Issued>>,
    default_account: String,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Tells hyper to close the connection without an answer.
#[derive(Debug)]
pub struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}
impl std::error::Error for DropConnection {}

type Reply = Result<Response<Full<Bytes>>, DropConnection>;

enum Fault {
    None,
    DropBefore,
    DropAfter,
    InternalError,
    /// A throttling answer with this TimeLeft (ms).
    Throttle(u64),
}

impl Fault {
    /// The answer of a fault that strikes before the action runs, which then never runs.
    fn answer_instead_of_the_action(&self) -> Option<ApiReply> {
        match self {
            Fault::DropBefore => Some(ApiReply::Drop),
            Fault::InternalError => Some(ApiReply::Err(internal_error(), None)),
            Fault::Throttle(left_ms) => Some(throttled(format!("Limit:0,Remain:0,TimeLeft:{left_ms}"))),
            Fault::None | Fault::DropAfter => None,
        }
    }
}

/// What the answer to one API call is labelled with.
struct CallInfo {
    /// The action the call is counted under; `Unknown` when the request names none.
    label: String,
    /// The product the error's troubleshooting link names: `Vpc` or `Sts`.
    product: &'static str,
    host: String,
    request_id: String,
}

fn unknown_action(action_name: &str) -> ApiError {
    let message = format!("Specified api {action_name:?} is not found, please check your url and method.");
    ApiError { http_status: 404, code: "InvalidAction.NotFound", message }
}

fn invalid_version() -> ApiError {
    ApiError { http_status: 400, code: "InvalidVersion", message: "Specified parameter Version is not valid.".into() }
}

fn internal_error() -> ApiError {
    let message = "The request processing has failed due to some unknown error.".to_string();
    ApiError { http_status: 500, code: "InternalError", message }
}

/// A throttling answer; `header` is the `x-ratelimit-user-api` value (`Limit:…,Remain:…,TimeLeft:…`).
fn throttled(header: String) -> ApiReply {
    let message = "Request was denied due to user flow control.".to_string();
    ApiReply::Err(ApiError { http_status: 400, code: "Throttling.User", message }, Some(header))
}

impl Simulator {
    pub fn new(
        world: World,
        keyring: Keyring,
        faults: Faults,
        limits: HashMap<String, RateLimit>,
        rng: StdRng,
        default_account: String,
    ) -> Self {
        Simulator {
            world: Mutex::new(world),
            keyring: Mutex::new(keyring),
            faults: Mutex::new(faults),
            limiter: Mutex::new(Limiter::new(limits)),
            counters: Mutex::new(BTreeMap::new()),
            rng: Mutex::new(rng),
            sts: Mutex::new(StsConfig::default()),
            issued: Mutex::new(Vec::new()),
            default_account,
        }
    }

    /// Trusts these roles and this OIDC provider for STS AssumeRoleWithOIDC.
    pub fn with_sts(self, config: StsConfig) -> Self {
        self.set_sts(config);
        self
    }

    fn set_sts(&self, config: StsConfig) {
        let mut world = lock(&self.world);
        for account in config.accounts() {
            world.add_account(&account);
        }
        *lock(&self.sts) = config;
    }

    pub fn keyring(&self) -> MutexGuard<'_, Keyring> {
        lock(&self.keyring)
    }

    fn count(&self, action: &str, outcome: &str) {
        *lock(&self.counters).entry(action.to_string()).or_default().entry(outcome.to_string()).or_default() += 1;
    }

    /// Whether this successful answer is replaced by a malformed one, and by which shape.
    fn draw_malformed(&self, action: Action) -> Option<MalformedShape> {
        let faults = lock(&self.faults).clone();
        if !faults.actions.is_empty() && !faults.actions.iter().any(|a| a == action.as_str()) {
            return None;
        }
        let shapes: Vec<MalformedShape> = MalformedShape::ALL
            .into_iter()
            .filter(|s| s.applies_to(action))
            .filter(|s| faults.malformed_shapes.is_empty() || faults.malformed_shapes.contains(s))
            .collect();
        let mut rng = lock(&self.rng);
        if shapes.is_empty() || rng.random::<f64>() >= faults.malformed_rate {
            return None;
        }
        Some(shapes[rng.random_range(0..shapes.len())])
    }

    fn draw_fault(&self, action: &str) -> (Fault, Option<Duration>) {
        let faults = lock(&self.faults).clone();
        if !faults.actions.is_empty() && !faults.actions.iter().any(|a| a == action) {
            return (Fault::None, None);
        }
        let mut rng = lock(&self.rng);
        let delay = (rng.random::<f64>() < faults.delay_rate).then(|| {
            let (lo, hi) = (faults.delay_ms_min, faults.delay_ms_max.max(faults.delay_ms_min));
            Duration::from_millis(rng.random_range(lo..=hi))
        });
        let roll: f64 = rng.random();
        let fault = if roll < faults.drop_rate / 2.0 {
            Fault::DropBefore
        } else if roll < faults.drop_rate {
            Fault::DropAfter
        } else if roll < faults.drop_rate + faults.internal_error_rate {
            Fault::InternalError
        } else if roll < faults.drop_rate + faults.internal_error_rate + faults.throttle_rate {
            Fault::Throttle(faults.throttle_time_left_ms.unwrap_or(1000))
        } else {
            Fault::None
        };
        (fault, delay)
    }

    /// The action's limit for this account (window or bucket); on refusal, the throttling answer
    /// with the milliseconds until a call may pass.
    fn over_limit(&self, account: &str, action: &str, now: Instant) -> Option<ApiReply> {
        let Refusal { limit, left_ms } = lock(&self.limiter).admit(account, action, now).err()?;
        Some(throttled(format!("Limit:{limit},Remain:0,TimeLeft:{left_ms}")))
    }

    async fn handle<B>(self: Arc<Self>, req: Request<B>) -> Reply
    where
        B: hyper::body::Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (parts, body) = req.into_parts();
        let path = parts.uri.path().to_string();
        let body = match Limited::new(body, MAX_BODY).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                return Ok(json_reply(StatusCode::PAYLOAD_TOO_LARGE, &serde_json::json!({"error": "body too large"})));
            }
        };
        if let Some(admin_path) = path.strip_prefix(ADMIN_PREFIX) {
            return Ok(self.admin(&parts.method, admin_path, parts.uri.query().unwrap_or(""), &body));
        }
        let query: Vec<(String, String)> =
            parts.uri.query().map(|q| form_urlencoded_pairs(q.as_bytes())).unwrap_or_default();
        let params = request_params(&parts.method, &parts.headers, &query, &body);
        let headers = header_values(&parts.headers);
        let signed = SignedRequest {
            method: parts.method.as_str(),
            path: &path,
            query: &query,
            headers: &headers,
            body: &body,
            params: &params,
        };
        let action_name = signed.action().to_string();
        let call = CallInfo {
            label: if action_name.is_empty() { "Unknown".to_string() } else { action_name.clone() },
            product: if sts::is_sts_request(&action_name, signed.version()) { "Sts" } else { "Vpc" },
            host: parts.headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("vpc.aliyuncs.com").to_string(),
            request_id: uuid::Uuid::new_v4().to_string().to_uppercase(),
        };
        let reply = self.api(&signed, &action_name).await;
        self.respond(reply, &call)
    }

    fn cloud_now(&self) -> chrono::DateTime<chrono::Utc> {
        lock(&self.world).timing.cloud_now()
    }

    /// The HTTP answer to an API call, counted under its action and outcome, dated by the cloud's
    /// clock.
    fn respond(&self, reply: ApiReply, call: &CallInfo) -> Reply {
        let mut answer = self.answer(reply, call);
        if let Ok(response) = &mut answer {
            let date = self.cloud_now().format("%a, %d %b %Y %H:%M:%S GMT").to_string();
            if let Ok(date) = hyper::header::HeaderValue::from_str(&date) {
                response.headers_mut().insert(hyper::header::DATE, date);
            }
        }
        answer
    }

    fn answer(&self, reply: ApiReply, call: &CallInfo) -> Reply {
        match reply {
            ApiReply::Ok(mut value) => {
                self.count(&call.label, "Success");
                if let Some(obj) = value.as_object_mut() {
                    obj.insert("RequestId".into(), call.request_id.clone().into());
                }
                Ok(json_reply(StatusCode::OK, &value))
            }
            ApiReply::Err(e, throttle_header) => {
                self.count(&call.label, e.code);
                Ok(error_reply(&e, throttle_header, call))
            }
            ApiReply::Malformed(action, shape, value) => {
                self.count(&call.label, "Malformed");
                let (content_type, body) = malformed::render(action, shape, value, &call.request_id);
                let mut response = Response::new(Full::new(Bytes::from(body)));
                response.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static(content_type));
                Ok(response)
            }
            ApiReply::Drop => {
                self.count(&call.label, "Dropped");
                Err(DropConnection)
            }
        }
    }

    /// A VPC or STS call: the action and version checked, the caller authenticated, the rate limit
    /// and the drawn faults applied, then the action run.
    async fn api(self: &Arc<Self>, req: &SignedRequest<'_>, action_name: &str) -> ApiReply {
        if sts::is_sts_request(action_name, req.version()) {
            return self.sts(req, action_name).await;
        }
        let Some(action) = Action::parse(action_name) else {
            return ApiReply::Err(unknown_action(action_name), None);
        };
        if !names_vpc_version(req) {
            return ApiReply::Err(invalid_version(), None);
        }
        let account = match self.keyring().authenticate(req, self.cloud_now(), Instant::now()) {
            Ok(caller) => caller.account,
            Err(e) => return ApiReply::Err(e, None),
        };
        if let Some(throttled) = self.over_limit(&account, action_name, Instant::now()) {
            return throttled;
        }
        let (fault, delay) = self.draw_fault(action_name);
        if let Some(instead) = fault.answer_instead_of_the_action() {
            return instead;
        }
        let mutating = matches!(action, Action::AllocateEipSegmentAddress | Action::ReleaseEipSegmentAddress);
        let result = if mutating {
            self.run_mutation(action, account, req.params.clone(), delay).await
        } else {
            self.run_read(action, &account, req.params, delay).await
        };
        if matches!(fault, Fault::DropAfter) {
            return ApiReply::Drop;
        }
        match result {
            Ok(v) => match self.draw_malformed(action) {
                Some(shape) => ApiReply::Malformed(action, shape, v),
                None => ApiReply::Ok(v),
            },
            Err(e) => ApiReply::Err(e, None),
        }
    }

    /// An Allocate or Release, once per ClientToken: a repeat with the same parameters gets the first
    /// answer. The cloud finishes what it accepted even when the client goes away, so the work runs
    /// on its own task. While it is delayed, a repeat with its token meets LastTokenProcessing.
    async fn run_mutation(
        self: &Arc<Self>,
        action: Action,
        account: String,
        params: Params,
        delay: Option<Duration>,
    ) -> Result<serde_json::Value, ApiError> {
        let token = params.get("ClientToken").to_string();
        let fingerprint = params.fingerprint();
        {
            let world = lock(&self.world);
            world.validate(action, &params)?;
            if let Some(previous) = world.token_lookup(&account, action.as_str(), &token, &fingerprint, Instant::now())
            {
                return previous;
            }
        }
        lock(&self.world).token_begin(&account, action.as_str(), &token, &fingerprint);
        let sim = self.clone();
        let work = tokio::spawn(async move {
            if let Some(d) = delay {
                tokio::time::sleep(d).await;
            }
            let mut world = lock(&sim.world);
            let result = run_action(&mut world, action, &account, &params);
            world.token_finish(&account, action.as_str(), &token, &result, Instant::now());
            result
        });
        work.await.unwrap_or_else(|_| Err(internal_error()))
    }

    /// A Describe action, after the injected delay if one was drawn.
    async fn run_read(
        &self,
        action: Action,
        account: &str,
        params: &Params,
        delay: Option<Duration>,
    ) -> Result<serde_json::Value, ApiError> {
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        run_action(&mut lock(&self.world), action, account, params)
    }

    /// STS, on the same listener. AssumeRoleWithOIDC is unsigned: the OIDC token is the proof;
    /// GetCallerIdentity is signed and authenticated like a VPC call.
    async fn sts(&self, req: &SignedRequest<'_>, action_name: &str) -> ApiReply {
        if action_name != sts::ACTION && action_name != sts::GET_CALLER_IDENTITY {
            return ApiReply::Err(unknown_action(action_name), None);
        }
        let config = lock(&self.sts).clone();
        if config.delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(config.delay_ms)).await;
        }
        if config.unavailable {
            let message = "The request has failed due to a temporary failure of the server.".to_string();
            return ApiReply::Err(ApiError { http_status: 503, code: "ServiceUnavailable", message }, None);
        }
        if action_name == sts::GET_CALLER_IDENTITY {
            return self.caller_identity(req);
        }
        let result = sts::assume_role_with_oidc(&config, req.params, chrono::Utc::now(), &mut *lock(&self.rng));
        match result {
            Ok(grant) => {
                self.keyring().insert(&grant.access_key_id, grant.key);
                lock(&self.issued).push(grant.issued);
                ApiReply::Ok(grant.answer)
            }
            Err(e) => ApiReply::Err(e, None),
        }
    }

    /// STS GetCallerIdentity: the same authentication (and error codes) as a VPC call.
    fn caller_identity(&self, req: &SignedRequest<'_>) -> ApiReply {
        if req.version() != sts::VERSION {
            return ApiReply::Err(invalid_version(), None);
        }
        let caller = match self.keyring().authenticate(req, self.cloud_now(), Instant::now()) {
            Ok(caller) => caller,
            Err(e) => return ApiReply::Err(e, None),
        };
        if let Some(throttled) = self.over_limit(&caller.account, sts::GET_CALLER_IDENTITY, Instant::now()) {
            return throttled;
        }
        ApiReply::Ok(sts::caller_identity(&caller))
    }

    /// Adds or replaces a permanent key of an account, creating the account if new.
    fn add_key(&self, key: NewKey) -> Response<Full<Bytes>> {
        if let Err(e) = super::validate_key(&key.account, &key.access_key_id, &key.access_key_secret) {
            return json_reply(StatusCode::BAD_REQUEST, &serde_json::json!({"error": e}));
        }
        lock(&self.world).add_account(&key.account);
        let mut keyring = self.keyring();
        let replaced = keyring.remove(&key.access_key_id);
        keyring.insert(&key.access_key_id, AccessKey::of_account(&key.account, &key.access_key_secret));
        drop(keyring);
        let status = if replaced { StatusCode::OK } else { StatusCode::CREATED };
        json_reply(status, &serde_json::json!({"accessKeyId": key.access_key_id, "account": key.account}))
    }

    /// Every accepted key's ID and account, STS credentials included; never a secret.
    fn key_listing(&self) -> serde_json::Value {
        let keys: Vec<serde_json::Value> = self
            .keyring()
            .listing()
            .into_iter()
            .map(|(id, account)| serde_json::json!({"accessKeyId": id, "account": account}))
            .collect();
        serde_json::Value::Array(keys)
    }

    /// The STS credentials handed out, oldest first, with how often each authenticated a call.
    fn issued_report(&self) -> serde_json::Value {
        let now = chrono::Utc::now();
        let keyring = self.keyring();
        let issued: Vec<serde_json::Value> = lock(&self.issued)
            .iter()
            .map(|i| {
                let mut v = serde_json::to_value(i).unwrap_or_default();
                v["expired"] = (i.expiration <= now).into();
                v["calls"] = keyring.uses(&i.access_key_id).into();
                v
            })
            .collect();
        serde_json::Value::Array(issued)
    }

    /// The admin API (JSON bodies, camelCase), never subject to faults or limits:
    /// - `GET healthz`; `GET state[?account=ID]` (segments, all or one account's, recently released
    ///   IDs, timing, regions, accounts); `GET history[?account=ID]`;
    /// - `POST segments` (seed; `ownerAccount` defaults to the default account), `GET|PATCH|DELETE
    ///   segments/<id>` (DELETE removes it out of band; PATCH `{"reportedStatus": "Maintaining"}`
    ///   makes Describe report that status and Release refuse it until `{"reportedStatus": null}`);
    /// - `POST keys` `{"accessKeyId","accessKeySecret","account"}` adds (201) or replaces (200) a
    ///   permanent key, creating the account; `DELETE keys/<accessKeyId>` revokes one (404 if
    ///   unknown); `GET keys` lists IDs with accounts, no secrets;
    /// - `GET|PUT limits` (per action `{"calls","perSeconds"}`, a fixed window, or
    ///   `{"capacity","perSecond"}`, a token bucket; PUT starts every window and bucket afresh);
    /// - `GET|PUT faults`, `GET|PUT timing`, `PUT accounts/<id>`, `GET|PUT sts`,
    ///   `GET sts/credentials`, `GET|DELETE counters` (per action: outcome → count).
    fn admin(&self, method: &Method, path: &str, query: &str, body: &[u8]) -> Response<Full<Bytes>> {
        let now = Instant::now();
        let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        let account = query_param(query, "account");
        let account = account.as_deref();
        // Each route answers, or says why its body is a bad request.
        let routed: Result<Response<Full<Bytes>>, String> = match (method, segments.as_slice()) {
            (&Method::GET, ["healthz"]) => Ok(ok_json(&serde_json::json!({"ok": true}))),
            (&Method::GET, ["state"]) => Ok(ok_json(&lock(&self.world).snapshot(now, account))),
            (&Method::GET, ["history"]) => Ok(ok_json(&lock(&self.world).history(now, account))),
            (&Method::GET, ["keys"]) => Ok(ok_json(&self.key_listing())),
            (&Method::POST, ["keys"]) => parse(body).map(|key| self.add_key(key)),
            (&Method::DELETE, ["keys", id]) => Ok(self.revoke_key(id)),
            (&Method::POST, ["segments"]) => parse(body).and_then(|seed| self.seed_segment(seed, now)),
            (&Method::GET, ["segments", id]) => Ok(self.segment_report(id, now)),
            (&Method::PATCH, ["segments", id]) => parse(body).map(|patch| self.patch_segment(id, patch)),
            (&Method::DELETE, ["segments", id]) => Ok(self.remove_segment(id, now)),
            (&Method::GET, ["faults"]) => Ok(ok_json(&*lock(&self.faults))),
            (&Method::PUT, ["faults"]) => parse(body).map(|faults| self.set_faults(faults)),
            (&Method::GET, ["limits"]) => Ok(ok_json(lock(&self.limiter).limits())),
            (&Method::PUT, ["limits"]) => parse(body).map(|limits| self.set_limits(limits)),
            (&Method::GET, ["timing"]) => Ok(ok_json(&lock(&self.world).timing)),
            (&Method::PUT, ["timing"]) => parse(body).map(|timing| self.set_timing(timing)),
            (&Method::PUT, ["accounts", id]) => parse(body).map(|patch| self.patch_account(id, patch)),
            (&Method::GET, ["sts"]) => Ok(ok_json(&*lock(&self.sts))),
            (&Method::PUT, ["sts"]) => self.patch_sts(body),
            (&Method::GET, ["sts", "credentials"]) => Ok(ok_json(&self.issued_report())),
            (&Method::GET, ["counters"]) => Ok(ok_json(&*lock(&self.counters))),
            (&Method::DELETE, ["counters"]) => Ok(self.clear_counters()),
            _ => Ok(json_reply(
                StatusCode::NOT_FOUND,
                &serde_json::json!({"error": format!("no admin route {method} {ADMIN_PREFIX}{path}")}),
            )),
        };
        routed.unwrap_or_else(|e| json_reply(StatusCode::BAD_REQUEST, &serde_json::json!({"error": e})))
    }

    fn revoke_key(&self, id: &str) -> Response<Full<Bytes>> {
        if self.keyring().remove(id) {
            json_reply(StatusCode::OK, &serde_json::json!({"revoked": id}))
        } else {
            json_reply(StatusCode::NOT_FOUND, &serde_json::json!({"error": format!("no key {id}")}))
        }
    }

    fn seed_segment(&self, seed: SeedSegment, now: Instant) -> Result<Response<Full<Bytes>>, String> {
        let seg = lock(&self.world).seed(&self.default_account, seed, now)?;
        Ok(json_reply(StatusCode::CREATED, &seg))
    }

    /// The segment as it is now, its due transitions applied.
    fn segment_report(&self, id: &str, now: Instant) -> Response<Full<Bytes>> {
        let mut world = lock(&self.world);
        world.advance(now);
        match world.segment(id) {
            Some(seg) => ok_json(seg),
            None => json_reply(StatusCode::NOT_FOUND, &serde_json::json!({"error": "not found"})),
        }
    }

    fn patch_segment(&self, id: &str, patch: SegmentPatch) -> Response<Full<Bytes>> {
        match lock(&self.world).patch(id, patch) {
            Ok(seg) => ok_json(&seg),
            Err(e) => json_reply(StatusCode::NOT_FOUND, &serde_json::json!({"error": e})),
        }
    }

    /// Removes a segment out of band, as if someone deleted it in the console.
    fn remove_segment(&self, id: &str, now: Instant) -> Response<Full<Bytes>> {
        if lock(&self.world).remove(id, now) {
            ok_json(&serde_json::json!({"removed": id}))
        } else {
            json_reply(StatusCode::NOT_FOUND, &serde_json::json!({"error": "not found"}))
        }
    }

    fn set_faults(&self, faults: Faults) -> Response<Full<Bytes>> {
        *lock(&self.faults) = faults.clone();
        ok_json(&faults)
    }

    fn set_limits(&self, limits: HashMap<String, RateLimit>) -> Response<Full<Bytes>> {
        lock(&self.limiter).replace(limits.clone());
        ok_json(&limits)
    }

    fn set_timing(&self, timing: Timing) -> Response<Full<Bytes>> {
        lock(&self.world).timing = timing;
        ok_json(&timing)
    }

    /// Changes an account's quota or balance, creating the account if new.
    fn patch_account(&self, id: &str, patch: AccountPatch) -> Response<Full<Bytes>> {
        let mut world = lock(&self.world);
        world.add_account(id);
        let account = world.accounts.get_mut(id).expect("just added");
        if let Some(q) = patch.segment_quota {
            account.segment_quota = q;
        }
        if let Some(b) = patch.balance_sufficient {
            account.balance_sufficient = b;
        }
        ok_json(&*account)
    }

    fn patch_sts(&self, body: &[u8]) -> Result<Response<Full<Bytes>>, String> {
        let patched = lock(&self.sts).patched(body)?;
        self.set_sts(patched.clone());
        Ok(ok_json(&patched))
    }

    fn clear_counters(&self) -> Response<Full<Bytes>> {
        lock(&self.counters).clear();
        ok_json(&serde_json::json!({}))
    }
}

/// The body of `POST /__admin/keys`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewKey {
    access_key_id: String,
    access_key_secret: String,
    account: String,
}

/// The first value of `name` in a query string.
fn query_param(query: &str, name: &str) -> Option<String> {
    form_urlencoded_pairs(query.as_bytes()).into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AccountPatch {
    segment_quota: Option<usize>,
    balance_sufficient: Option<bool>,
}

enum ApiReply {
    Ok(serde_json::Value),
    Err(ApiError, Option<String>),
    /// The action's successful answer, to be sent in a malformed shape.
    Malformed(Action, MalformedShape, serde_json::Value),
    Drop,
}

fn run_action(
    world: &mut World,
    action: Action,
    account: &str,
    params: &Params,
) -> Result<serde_json::Value, ApiError> {
    let now = Instant::now();
    match action {
        Action::AllocateEipSegmentAddress => world.allocate(account, params, now),
        Action::DescribeEipSegment => world.describe(account, params, now),
        Action::ReleaseEipSegmentAddress => world.release(account, params, now),
        Action::DescribeEipAddresses => world.describe_members(account, params, now),
        // An STS action: never reaches the VPC world.
        Action::GetCallerIdentity => Err(ApiError {
            http_status: 404,
            code: "InvalidAction.NotFound",
            message: "Specified api is not found, please check your url and method.".into(),
        }),
    }
}

/// Whether the request names the VPC API's version: in the V3 header, or the RPC parameter.
fn names_vpc_version(req: &SignedRequest<'_>) -> bool {
    let version = if req.is_v3() {
        req.headers.get("x-acs-version").and_then(|v| v.first()).map(String::as_str)
    } else {
        Some(req.params.get("Version"))
    };
    version == Some(vpc_api::model::API_VERSION)
}

/// The query's parameters, then the body's when it is a form: declared so, or an undeclared POST
/// body that is not JSON.
fn request_params(method: &Method, headers: &hyper::HeaderMap, query: &[(String, String)], body: &[u8]) -> Params {
    let mut params = Params::default();
    params.0.extend(query.iter().cloned());
    let is_form = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if is_form || (method == Method::POST && !body.is_empty() && !body.starts_with(b"{")) {
        params.0.extend(form_urlencoded_pairs(body));
    }
    params
}

/// Every value of each header, by lower-cased name.
fn header_values(headers: &hyper::HeaderMap) -> HashMap<String, Vec<String>> {
    let mut values: HashMap<String, Vec<String>> = HashMap::new();
    for (name, value) in headers {
        values
            .entry(name.as_str().to_ascii_lowercase())
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    values
}

/// The cloud's error body, with a troubleshooting link and, for throttling, the rate-limit header.
fn error_reply(e: &ApiError, throttle_header: Option<String>, call: &CallInfo) -> Response<Full<Bytes>> {
    let CallInfo { product, host, request_id, .. } = call;
    let body = serde_json::json!({
        "RequestId": request_id, "HostId": host, "Code": e.code, "Message": e.message,
        "Recommend": format!("https://api.aliyun.com/troubleshoot?q={}&product={product}&requestId={request_id}", e.code),
    });
    let mut response = json_reply(StatusCode::from_u16(e.http_status).unwrap_or(StatusCode::BAD_REQUEST), &body);
    if let Some(h) = throttle_header.and_then(|h| h.parse().ok()) {
        response.headers_mut().insert("x-ratelimit-user-api", h);
    }
    response
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    let body = if body.is_empty() { b"{}".as_slice() } else { body };
    serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))
}

fn json_reply<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert("content-type", hyper::header::HeaderValue::from_static("application/json;charset=utf-8"));
    response
}

fn ok_json<T: Serialize + ?Sized>(value: &T) -> Response<Full<Bytes>> {
    json_reply(StatusCode::OK, value)
}

/// `application/x-www-form-urlencoded` pairs; `+` is a space, as in HTML forms.
pub(crate) fn form_urlencoded_pairs(input: &[u8]) -> Vec<(String, String)> {
    input
        .split(|b| *b == b'&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let mut it = pair.splitn(2, |b| *b == b'=');
            let k = it.next().unwrap_or_default();
            let v = it.next().unwrap_or_default();
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(input: &[u8]) -> String {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < input.len() => {
                match std::str::from_utf8(&input[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Serves until the listener fails; each connection on its own task.
pub async fn serve(listener: TcpListener, sim: Arc<Simulator>) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let sim = sim.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| sim.clone().handle(req));
            let io = hyper_util::rt::TokioIo::new(stream);
            // An error here is a fault-injected drop or a client gone away: nothing to report.
            let _ = hyper::server::conn::http1::Builder::new().keep_alive(true).serve_connection(io, service).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_forms() {
        let pairs = form_urlencoded_pairs(b"A=1&B=a%20b+c&C=%E4%B8%AD&D=&E=%zz&F=%4");
        assert_eq!(pairs[1], ("B".into(), "a b c".into()));
        assert_eq!(pairs[2].1, "中");
        assert_eq!(pairs[3].1, "");
        assert_eq!(pairs[4].1, "%zz");
        assert_eq!(pairs[5].1, "%4");
    }

    fn admin_json(sim: &Simulator, method: Method, path: &str, body: &str) -> serde_json::Value {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let response = sim.admin(&method, path, query, body.as_bytes());
        assert!(response.status().is_success(), "{method} {path}: {}", response.status());
        let bytes = futures::executor::block_on(response.into_body().collect()).unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn history_lists_seeded_and_removed_segments() {
        use clap::Parser;
        let sim = crate::Args::parse_from(["vpc-simulator"]).build().unwrap();
        let kept = admin_json(&sim, Method::POST, "segments", "{}")["instanceId"].as_str().unwrap().to_string();
        let removed = admin_json(&sim, Method::POST, "segments", "{}")["instanceId"].as_str().unwrap().to_string();
        admin_json(&sim, Method::DELETE, &format!("segments/{removed}"), "");
        let history = admin_json(&sim, Method::GET, "history", "");
        let entries = history["segments"].as_array().unwrap();
        assert_eq!(entries.len(), 2, "{history}");
        assert_eq!(entries[0]["instanceId"], kept.as_str());
        assert_eq!(entries[0]["goneAtMs"], serde_json::Value::Null);
        assert_eq!(entries[1]["instanceId"], removed.as_str());
        assert_eq!(entries[1]["removedOutOfBand"], true);
        assert!(entries[1]["goneAtMs"].as_u64().unwrap() >= entries[1]["createdAtMs"].as_u64().unwrap());
    }

    #[test]
    fn counters_read_as_a_snapshot_for_deltas() {
        use clap::Parser;
        let sim = crate::Args::parse_from(["vpc-simulator"]).build().unwrap();
        sim.count("DescribeEipSegment", "Success");
        let before = admin_json(&sim, Method::GET, "counters", "");
        sim.count("DescribeEipSegment", "Success");
        sim.count("DescribeEipSegment", "Throttling.User");
        let after = admin_json(&sim, Method::GET, "counters", "");
        assert_eq!(before["DescribeEipSegment"], serde_json::json!({"Success": 1}), "reading does not reset");
        assert_eq!(after["DescribeEipSegment"], serde_json::json!({"Success": 2, "Throttling.User": 1}));
    }

    use crate::{
        DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET, DEFAULT_ACCOUNT, OTHER_ACCESS_KEY_ID,
        OTHER_ACCESS_KEY_SECRET, OTHER_ACCOUNT,
    };
    use serde_json::{Value, json};
    use vpc_api::signer;

    const REGION: &str = "cn-hangzhou";

    fn simulator(flags: &[&str]) -> Arc<Simulator> {
        use clap::Parser;
        let argv = ["vpc-simulator", "--allocate-seconds", "0", "--release-cooldown-seconds", "0"];
        Arc::new(crate::Args::parse_from(argv.iter().chain(flags)).build().unwrap())
    }

    /// A key to sign with: ID, secret and, for STS credentials, the SecurityToken.
    #[derive(Clone, Copy)]
    struct Key<'a>(&'a str, &'a str, Option<&'a str>);

    const DEFAULT_KEY: Key = Key(DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET, None);
    const OTHER_KEY: Key = Key(OTHER_ACCESS_KEY_ID, OTHER_ACCESS_KEY_SECRET, None);

    /// An RPC-v1-signed form body, as a client sends it.
    fn signed_form(key: Key, action: &str, version: &str, extra: &[(&str, &str)]) -> String {
        let nonce = uuid::Uuid::new_v4().to_string();
        let timestamp = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
        let mut params: Vec<(&str, &str)> = vec![
            ("Action", action),
            ("Version", version),
            ("Format", "JSON"),
            ("AccessKeyId", key.0),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureVersion", "1.0"),
            ("SignatureNonce", &nonce),
            ("Timestamp", &timestamp),
        ];
        if let Some(token) = key.2 {
            params.push(("SecurityToken", token));
        }
        params.extend_from_slice(extra);
        let signature = signer::rpc_signature("POST", params.iter().copied(), key.1);
        params.push(("Signature", &signature));
        params
            .iter()
            .map(|(k, v)| format!("{}={}", signer::percent_encode(k), signer::percent_encode(v)))
            .collect::<Vec<_>>()
            .join("&")
    }

    /// Status, content type and body of one request through the gateway's whole path.
    async fn post(sim: &Arc<Simulator>, form: String) -> (u16, String, Bytes) {
        let request = Request::post("/")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(form)))
            .unwrap();
        let response = sim.clone().handle(request).await.expect("not dropped");
        let status = response.status().as_u16();
        let content_type = response.headers()["content-type"].to_str().unwrap().to_string();
        (status, content_type, response.into_body().collect().await.unwrap().to_bytes())
    }

    async fn call(sim: &Arc<Simulator>, key: Key<'_>, action: &str, extra: &[(&str, &str)]) -> (u16, Value) {
        let version = if action == sts::GET_CALLER_IDENTITY { sts::VERSION } else { "2016-04-28" };
        let (status, _, body) = post(sim, signed_form(key, action, version, extra)).await;
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    async fn describe(sim: &Arc<Simulator>, key: Key<'_>, extra: &[(&str, &str)]) -> (u16, Value) {
        call(sim, key, "DescribeEipSegment", &[&[("RegionId", REGION)], extra].concat()).await
    }

    async fn identity(sim: &Arc<Simulator>, key: Key<'_>) -> (u16, Value) {
        call(sim, key, sts::GET_CALLER_IDENTITY, &[]).await
    }

    fn admin_status(sim: &Simulator, method: Method, path: &str, body: &str) -> u16 {
        sim.admin(&method, path, "", body.as_bytes()).status().as_u16()
    }

    #[tokio::test]
    async fn the_other_account_has_its_documented_key_and_sees_only_its_own() {
        let sim = simulator(&[]);
        let seeded = admin_json(&sim, Method::POST, "segments", "{}")["instanceId"].as_str().unwrap().to_string();
        let (status, mine) = describe(&sim, DEFAULT_KEY, &[("SegmentInstanceId", &seeded)]).await;
        assert_eq!((status, &mine["TotalCount"]), (200, &json!(1)), "{mine}");
        let (status, theirs) = describe(&sim, OTHER_KEY, &[("SegmentInstanceId", &seeded)]).await;
        assert_eq!((status, &theirs["TotalCount"], &theirs["EipSegments"]["EipSegment"]), (200, &json!(0), &json!([])));
        let (status, e) =
            call(&sim, OTHER_KEY, "ReleaseEipSegmentAddress", &[("RegionId", REGION), ("SegmentInstanceId", &seeded)])
                .await;
        assert_eq!(
            (status, &e["Code"], &e["Message"]),
            (400, &json!("Forbidden"), &json!("The eip instance owener error"))
        );
    }

    #[tokio::test]
    async fn keys_can_be_added_replaced_and_revoked() {
        let sim = simulator(&["--account-key", "1111222233334444:LTAIflag:flag:secret"]);
        let (status, who) = identity(&sim, Key("LTAIflag", "flag:secret", None)).await;
        assert_eq!((status, &who["AccountId"]), (200, &json!("1111222233334444")), "a key from the flag: {who}");
        let allocate = [("RegionId", REGION), ("EipMask", "28")];
        let (status, v) =
            call(&sim, Key("LTAIflag", "flag:secret", None), "AllocateEipSegmentAddress", &allocate).await;
        assert_eq!(status, 200, "the flag created the account: {v}");

        let body = r#"{"accessKeyId": "LTAIadded", "accessKeySecret": "s1", "account": "5555666677778888"}"#;
        assert_eq!(admin_status(&sim, Method::POST, "keys", body), 201);
        let (status, who) = identity(&sim, Key("LTAIadded", "s1", None)).await;
        assert_eq!((status, &who["AccountId"]), (200, &json!("5555666677778888")));
        let (status, v) = call(&sim, Key("LTAIadded", "s1", None), "AllocateEipSegmentAddress", &allocate).await;
        assert_eq!(status, 200, "the route created the account: {v}");
        let (status, page) = describe(&sim, Key("LTAIadded", "s1", None), &[]).await;
        assert_eq!((status, &page["TotalCount"]), (200, &json!(1)), "its own segment only");

        let replaced = r#"{"accessKeyId": "LTAIadded", "accessKeySecret": "s2", "account": "5555666677778888"}"#;
        assert_eq!(admin_status(&sim, Method::POST, "keys", replaced), 200);
        assert_eq!(identity(&sim, Key("LTAIadded", "s1", None)).await.1["Code"], "SignatureDoesNotMatch");
        assert_eq!(identity(&sim, Key("LTAIadded", "s2", None)).await.0, 200);
        let listing = admin_json(&sim, Method::GET, "keys", "");
        assert!(
            listing.as_array().unwrap().contains(&json!({"accessKeyId": "LTAIadded", "account": "5555666677778888"}))
        );
        assert!(!listing.to_string().contains("s2"), "no secret is listed: {listing}");

        assert_eq!(admin_status(&sim, Method::DELETE, "keys/LTAIadded", ""), 200);
        let (status, e) = describe(&sim, Key("LTAIadded", "s2", None), &[]).await;
        assert_eq!((status, &e["Code"]), (404, &json!("InvalidAccessKeyId.NotFound")));
        let (status, e) = identity(&sim, Key("LTAIadded", "s2", None)).await;
        assert_eq!((status, &e["Code"]), (404, &json!("InvalidAccessKeyId.NotFound")));
        assert_eq!(admin_status(&sim, Method::DELETE, "keys/LTAIadded", ""), 404);
        assert_eq!(
            admin_status(
                &sim,
                Method::POST,
                "keys",
                r#"{"accessKeyId": "x", "accessKeySecret": "y", "account": "abc"}"#
            ),
            400
        );
        assert_eq!(
            admin_status(&sim, Method::POST, "keys", r#"{"accessKeyId": "", "accessKeySecret": "y", "account": "1"}"#),
            400
        );
        assert_eq!(identity(&sim, DEFAULT_KEY).await.0, 200, "the other keys are untouched");
    }

    #[tokio::test]
    async fn caller_identity_of_each_account() {
        let sim = simulator(&[]);
        for (key, account) in [(DEFAULT_KEY, DEFAULT_ACCOUNT), (OTHER_KEY, OTHER_ACCOUNT)] {
            let (status, who) = identity(&sim, key).await;
            assert_eq!(status, 200, "{who}");
            assert_eq!(who["AccountId"], account);
            assert_eq!(who["UserId"], account);
            assert_eq!(who["PrincipalId"], account);
            assert_eq!(who["IdentityType"], "Account");
            assert_eq!(who["Arn"], format!("acs:ram::{account}:root"));
            assert!(who["RequestId"].as_str().is_some_and(|r| !r.is_empty()));
        }
        let (status, e) = identity(&sim, Key(DEFAULT_ACCESS_KEY_ID, "wrong", None)).await;
        assert_eq!((status, &e["Code"]), (400, &json!("SignatureDoesNotMatch")));
        let (status, e) = identity(&sim, Key("LTAInobody", "x", None)).await;
        assert_eq!((status, &e["Code"]), (404, &json!("InvalidAccessKeyId.NotFound")));
        let (status, _, body) = post(&sim, signed_form(DEFAULT_KEY, sts::GET_CALLER_IDENTITY, "2016-04-28", &[])).await;
        assert_eq!(
            (status, serde_json::from_slice::<Value>(&body).unwrap()["Code"].clone()),
            (400, json!("InvalidVersion"))
        );
        assert!(String::from_utf8_lossy(&body).contains("product=Sts"));

        let counters = admin_json(&sim, Method::GET, "counters", "");
        assert_eq!(
            counters["GetCallerIdentity"],
            json!({"Success": 2, "SignatureDoesNotMatch": 1, "InvalidAccessKeyId.NotFound": 1, "InvalidVersion": 1})
        );
    }

    /// An OIDC token the default STS configuration accepts (its signature is not checked).
    fn oidc_token() -> String {
        use base64::Engine;
        let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let exp = chrono::Utc::now().timestamp() + 3600;
        let claims =
            json!({"iss": sts::DEFAULT_ISSUER, "aud": sts::AUDIENCE, "sub": "system:serviceaccount:a:b", "exp": exp});
        format!("{}.{}.c2ln", b64(json!({"alg": "RS256"})), b64(claims))
    }

    #[tokio::test]
    async fn caller_identity_of_sts_credentials_is_the_assumed_role() {
        let sim = simulator(&[]);
        let token = oidc_token();
        let form: String = [
            ("Action", sts::ACTION),
            ("Version", sts::VERSION),
            ("Format", "JSON"),
            ("RoleArn", sts::DEFAULT_ROLE_ARN),
            ("OIDCProviderArn", sts::DEFAULT_OIDC_PROVIDER_ARN),
            ("OIDCToken", &token),
            ("RoleSessionName", "op-session"),
        ]
        .iter()
        .map(|(k, v)| format!("{k}={}", signer::percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
        let (status, _, body) = post(&sim, form).await;
        let grant: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(status, 200, "{grant}");
        let c = &grant["Credentials"];
        let (id, secret, security) =
            (c["AccessKeyId"].as_str().unwrap(), c["AccessKeySecret"].as_str().unwrap(), c["SecurityToken"].as_str());

        let (status, who) = identity(&sim, Key(id, secret, security)).await;
        assert_eq!(status, 200, "{who}");
        assert_eq!(who["IdentityType"], "AssumedRoleUser");
        assert_eq!(who["AccountId"], DEFAULT_ACCOUNT);
        assert_eq!(who["Arn"], format!("acs:ram::{DEFAULT_ACCOUNT}:assumed-role/eipsegment-operator/op-session"));
        assert_eq!(who["PrincipalId"], grant["AssumedRoleUser"]["AssumedRoleId"]);
        assert_eq!(who["RoleId"], sts::role_id(sts::DEFAULT_ROLE_ARN));

        let (status, e) = identity(&sim, Key(id, secret, None)).await;
        assert_eq!((status, &e["Code"]), (400, &json!("InvalidSecurityToken.Malformed")));
        let (status, e) = identity(&sim, Key(id, secret, Some("CAISother"))).await;
        assert_eq!((status, &e["Code"]), (400, &json!("InvalidSecurityToken.MismatchWithAccessKey")));
        let (status, page) = describe(&sim, Key(id, secret, security), &[]).await;
        assert_eq!(
            (status, &page["TotalCount"]),
            (200, &json!(0)),
            "the role acts for its account on the VPC side too"
        );
    }

    fn set_faults(sim: &Simulator, faults: Value) {
        admin_json(sim, Method::PUT, "faults", &faults.to_string());
    }

    #[tokio::test]
    async fn every_malformed_shape_of_a_describe() {
        let sim = simulator(&[]);
        let seeded = admin_json(&sim, Method::POST, "segments", "{}")["instanceId"].as_str().unwrap().to_string();
        let by_id = [("SegmentInstanceId", seeded.as_str())];
        let described = |shape: &'static str, extra: &'static [(&'static str, &'static str)]| {
            set_faults(&sim, json!({"malformedRate": 1.0, "malformedShapes": [shape]}));
            let sim = sim.clone();
            let extra: Vec<(&str, &str)> = [&[("RegionId", REGION)], extra].concat();
            async move { post(&sim, signed_form(DEFAULT_KEY, "DescribeEipSegment", "2016-04-28", &extra)).await }
        };
        let json_of = |body: &Bytes| serde_json::from_slice::<Value>(body).unwrap();

        let (status, _, body) = described("noSegments", &[]).await;
        let v = json_of(&body);
        assert_eq!((status, v.get("EipSegments"), &v["TotalCount"]), (200, None, &json!(1)), "{v}");
        assert!(v["RequestId"].is_string());
        let v = json_of(&described("noTotalCount", &[]).await.2);
        assert_eq!((v.get("TotalCount"), v["EipSegments"]["EipSegment"].as_array().map(Vec::len)), (None, Some(1)));
        let v = json_of(&described("wrongTotalCount", &[]).await.2);
        assert_eq!((&v["TotalCount"], v["EipSegments"]["EipSegment"].as_array().map(Vec::len)), (&json!(0), Some(1)));
        let v = json_of(&described("emptyObject", &[]).await.2);
        assert_eq!(v, json!({}));
        let v = json_of(&described("noSegmentList", &[]).await.2);
        assert_eq!((&v["EipSegments"], v["RequestId"].is_string()), (&json!({}), true));
        let (status, content_type, body) = described("notJson", &[]).await;
        assert_eq!(status, 200);
        assert!(content_type.starts_with("text/html"), "{content_type}");
        assert!(serde_json::from_slice::<Value>(&body).is_err());

        // By ID of a segment of another account: an empty list that says one exists.
        set_faults(&sim, json!({"malformedRate": 1.0, "malformedShapes": ["wrongTotalCount"]}));
        let (_, v) = describe(&sim, OTHER_KEY, &by_id).await;
        assert_eq!((&v["TotalCount"], &v["EipSegments"]["EipSegment"]), (&json!(1), &json!([])), "{v}");

        set_faults(&sim, json!({"malformedRate": 1.0, "actions": ["ReleaseEipSegmentAddress"]}));
        let (_, v) = describe(&sim, DEFAULT_KEY, &[]).await;
        assert_eq!((&v["TotalCount"], v["EipSegments"]["EipSegment"].as_array().map(Vec::len)), (&json!(1), Some(1)));
        set_faults(&sim, json!({"malformedRate": 0.0}));
        let (_, v) = describe(&sim, DEFAULT_KEY, &[]).await;
        assert_eq!(v["TotalCount"], 1);

        let counters = admin_json(&sim, Method::GET, "counters", "");
        assert_eq!(counters["DescribeEipSegment"], json!({"Malformed": 7, "Success": 2}));
    }

    #[tokio::test]
    async fn a_malformed_answer_to_a_mutation_comes_after_the_work() {
        let sim = simulator(&[]);
        let allocate = [("RegionId", REGION), ("EipMask", "28"), ("ClientToken", "uid-9")];
        set_faults(&sim, json!({"malformedRate": 1.0, "malformedShapes": ["noTotalCount", "noSegments"]}));
        let (status, v) = call(&sim, DEFAULT_KEY, "AllocateEipSegmentAddress", &allocate).await;
        assert_eq!((status, v["EipSegmentInstanceId"].is_string()), (200, true), "no list shape applies: {v}");
        let first = v["EipSegmentInstanceId"].as_str().unwrap().to_string();

        set_faults(&sim, json!({"malformedRate": 1.0, "malformedShapes": ["emptyObject"]}));
        let allocate2 = [("RegionId", REGION), ("EipMask", "28"), ("ClientToken", "uid-10")];
        let (status, v) = call(&sim, DEFAULT_KEY, "AllocateEipSegmentAddress", &allocate2).await;
        assert_eq!((status, v), (200, json!({})));
        set_faults(&sim, json!({}));
        let (_, again) = call(&sim, DEFAULT_KEY, "AllocateEipSegmentAddress", &allocate2).await;
        let second = again["EipSegmentInstanceId"].as_str().unwrap().to_string();
        assert_ne!(second, first, "the malformed answer's allocation happened and its token remembers it");
        assert_eq!(admin_json(&sim, Method::GET, "state", "")["segments"].as_array().unwrap().len(), 2);

        set_faults(&sim, json!({"malformedRate": 1.0, "malformedShapes": ["notJson"]}));
        let release = [("RegionId", REGION), ("SegmentInstanceId", second.as_str()), ("ClientToken", "r-1")];
        let (status, _, body) =
            post(&sim, signed_form(DEFAULT_KEY, "ReleaseEipSegmentAddress", "2016-04-28", &release)).await;
        assert_eq!(status, 200);
        assert!(body.starts_with(b"<!DOCTYPE html>"));
        let seg = admin_json(&sim, Method::GET, &format!("segments/{second}"), "");
        assert_eq!((&seg["status"], &seg["releasesAccepted"]), (&json!("Releasing"), &json!(1)));

        // A refusal is not disguised: malformed answers replace successes only.
        let foreign = [("RegionId", REGION), ("SegmentInstanceId", first.as_str())];
        assert_eq!(call(&sim, OTHER_KEY, "ReleaseEipSegmentAddress", &foreign).await.1["Code"], "Forbidden");
        let counters = admin_json(&sim, Method::GET, "counters", "");
        assert_eq!(counters["AllocateEipSegmentAddress"], json!({"Malformed": 1, "Success": 2}));
        assert_eq!(counters["ReleaseEipSegmentAddress"], json!({"Malformed": 1, "Forbidden": 1}));
    }

    #[tokio::test]
    async fn the_visibility_lag_is_set_by_flag_and_admin() {
        let sim = simulator(&["--visibility-lag-seconds", "30"]);
        assert_eq!(admin_json(&sim, Method::GET, "timing", "")["visibilityLagSeconds"], 30.0);
        let (_, v) =
            call(&sim, DEFAULT_KEY, "AllocateEipSegmentAddress", &[("RegionId", REGION), ("EipMask", "28")]).await;
        let id = v["EipSegmentInstanceId"].as_str().unwrap().to_string();
        let (_, page) = describe(&sim, DEFAULT_KEY, &[("SegmentInstanceId", &id)]).await;
        assert_eq!(page["TotalCount"], 0, "hidden for 30 s: {page}");
        let history = admin_json(&sim, Method::GET, "history", "");
        assert_eq!(history["segments"][0]["instanceId"], id.as_str(), "its history starts at the Allocate");

        let timing = r#"{"allocateSeconds": 0, "releaseSeconds": 1, "releaseCooldownSeconds": 0}"#;
        assert_eq!(
            admin_json(&sim, Method::PUT, "timing", timing)["visibilityLagSeconds"],
            0.0,
            "optional, 0 by default"
        );
        let (_, v) =
            call(&sim, DEFAULT_KEY, "AllocateEipSegmentAddress", &[("RegionId", REGION), ("EipMask", "28")]).await;
        let (_, page) =
            describe(&sim, DEFAULT_KEY, &[("SegmentInstanceId", v["EipSegmentInstanceId"].as_str().unwrap())]).await;
        assert_eq!(page["TotalCount"], 1);
    }

    #[test]
    fn state_and_history_filter_by_account() {
        let sim = simulator(&[]);
        admin_json(&sim, Method::POST, "segments", "{}");
        admin_json(&sim, Method::POST, "segments", &json!({"ownerAccount": OTHER_ACCOUNT}).to_string());
        let count = |path: &str| admin_json(&sim, Method::GET, path, "")["segments"].as_array().unwrap().len();
        assert_eq!(count("state"), 2);
        assert_eq!(count(&format!("state?account={OTHER_ACCOUNT}")), 1);
        assert_eq!(count(&format!("state?account={DEFAULT_ACCOUNT}")), 1);
        assert_eq!(count("state?account=42"), 0);
        assert_eq!(count(&format!("history?account={OTHER_ACCOUNT}")), 1);
    }
}
