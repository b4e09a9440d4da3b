//! The simulated cloud's state: accounts, segments and their member EIPs, client tokens. Every
//! error comes from this state (a prepaid segment, a member in use, …), never from a switch.
//! Time is passed in, so state changes are deterministic and lazily applied.
//!
//! Accounts are isolated as in the real cloud: the Describe actions list the caller's own segments
//! only, ClientTokens are remembered per account, and a Release of another account's segment is
//! refused with `Forbidden`.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::Rng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use vpc_api::Action;

/// An API error as the cloud reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub http_status: u16,
    pub code: &'static str,
    pub message: String,
}

fn err(http_status: u16, code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError { http_status, code, message: message.into() }
}

fn missing_parameter(name: &str) -> ApiError {
    let message =
        format!("The input parameter \"{name}\" that is mandatory for processing this request is not supplied.");
    err(400, "MissingParameter", message)
}

pub const DEFAULT_REGIONS: &[&str] = &[
    "cn-hangzhou",
    "cn-beijing",
    "cn-shanghai",
    "cn-shenzhen",
    "cn-qingdao",
    "cn-hongkong",
    "ap-southeast-1",
    "us-west-1",
    "us-east-1",
    "eu-central-1",
];
pub const ISPS: &[&str] = &[
    "BGP",
    "BGP_PRO",
    "ChinaTelecom",
    "ChinaUnicom",
    "ChinaMobile",
    "ChinaTelecom_L2",
    "ChinaUnicom_L2",
    "ChinaMobile_L2",
    "BGP_FinanceCloud",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    Allocating,
    Allocated,
    Releasing,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub allocation_id: String,
    pub ip_address: String,
    /// Available, InUse, Associating, Unassociating.
    pub status: String,
    #[serde(default)]
    pub instance_id: String,
    /// A shared bandwidth package (`cbwp-…`).
    #[serde(default)]
    pub bandwidth_package_id: String,
    /// An EIP bandwidth plan.
    #[serde(default)]
    pub bandwidth_plan_id: String,
    /// Released on its own, outside the group.
    #[serde(default)]
    pub released_separately: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Segment {
    pub instance_id: String,
    pub region_id: String,
    pub owner_account: String,
    pub segment: String,
    pub eip_mask: u8,
    pub status: Status,
    pub charge_type: String,
    pub internet_charge_type: String,
    pub bandwidth: u32,
    pub isp: String,
    pub netmode: String,
    pub zone: String,
    pub resource_group_id: String,
    pub deletion_protection: bool,
    pub creation_time: String,
    pub members: Vec<Member>,
    #[serde(skip)]
    pub transition_at: Option<Instant>,
    #[serde(skip)]
    pub last_release_attempt: Option<Instant>,
    /// Until then DescribeEipSegment does not return it (read-after-write lag); None: at once.
    #[serde(skip)]
    pub visible_at: Option<Instant>,
    /// Release requests accepted for this segment (for tests: exactly one is the promise).
    pub releases_accepted: u32,
    /// A status DescribeEipSegment reports instead of the real one (say `Maintaining`, which the
    /// API documents nowhere), as the cloud may report a status that is new to its clients; while
    /// it is set, ReleaseEipSegmentAddress is refused with IncorrectEipStatus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported_status: Option<String>,
    #[serde(skip)]
    seq: u64,
}

/// Properties a test can give a seeded segment; everything is optional.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SeedSegment {
    pub region_id: Option<String>,
    pub owner_account: Option<String>,
    pub eip_mask: Option<u8>,
    pub status: Option<Status>,
    /// PostPaid (default) or PrePaid.
    pub charge_type: Option<String>,
    pub deletion_protection: Option<bool>,
    pub bandwidth: Option<u32>,
    pub isp: Option<String>,
    pub zone: Option<String>,
    /// The CreationTime Describe reports (RFC 3339, say a segment made long ago); default: now.
    pub creation_time: Option<String>,
    /// Per member index: what to change from an Available member.
    pub members: Vec<MemberPatch>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MemberPatch {
    pub index: usize,
    pub status: Option<String>,
    pub instance_id: Option<String>,
    pub bandwidth_package_id: Option<String>,
    pub bandwidth_plan_id: Option<String>,
    pub released_separately: Option<bool>,
}

/// Changes to a live segment, from the admin API.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SegmentPatch {
    pub charge_type: Option<String>,
    pub deletion_protection: Option<bool>,
    pub owner_account: Option<String>,
    pub members: Vec<MemberPatch>,
    /// `"reportedStatus": "Maintaining"` sets [`Segment::reported_status`], `null` clears it,
    /// absent leaves it.
    #[serde(deserialize_with = "present")]
    pub reported_status: Option<Option<String>>,
}

/// A field given in a patch, `null` included (absent fields stay `None` by `default`).
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// One segment's life as the cloud saw it, kept after the segment is gone (`GET /__admin/history`).
/// Times are Unix epoch milliseconds on the wall clock.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SegmentHistory {
    pub instance_id: String,
    pub region_id: String,
    pub owner_account: String,
    /// The ClientToken of the Allocate that created it; None for a seeded segment.
    pub allocation_token: Option<String>,
    pub created_at_ms: u64,
    /// Each accepted ReleaseEipSegmentAddress.
    pub release_accepted_at_ms: Vec<u64>,
    /// When Describe stopped returning it: the due time of its Releasing -> gone transition, or
    /// the moment it was removed out of band.
    pub gone_at_ms: Option<u64>,
    pub removed_out_of_band: bool,
}

#[derive(Clone, Debug)]
enum TokenState {
    InFlight,
    Done(Result<serde_json::Value, ApiError>),
}

#[derive(Clone, Debug)]
struct TokenRecord {
    fingerprint: String,
    state: TokenState,
    /// When the request finished; the memory of its answer runs from then.
    done_at: Option<Instant>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Timing {
    pub allocate_seconds: f64,
    pub release_seconds: f64,
    /// A second release request for the same segment within this period is refused.
    pub release_cooldown_seconds: f64,
    /// A newly allocated segment is returned by DescribeEipSegment only this long after its
    /// Allocate was accepted, as an eventually consistent read side does; 0 shows it at once.
    #[serde(default)]
    pub visibility_lag_seconds: f64,
    /// How long a ClientToken's answer is remembered after the request finished; 0 is forever.
    #[serde(default)]
    pub token_memory_seconds: f64,
    /// How far the cloud's clock runs ahead of the host's (negative: behind): its CreationTimes,
    /// its answers' Date and its check of request timestamps.
    #[serde(default)]
    pub clock_offset_seconds: i64,
}

impl Timing {
    /// The time on the cloud's clock.
    pub fn cloud_now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now() + chrono::TimeDelta::seconds(self.clock_offset_seconds)
    }
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            allocate_seconds: 2.0,
            release_seconds: 2.0,
            release_cooldown_seconds: 1.0,
            visibility_lag_seconds: 0.0,
            token_memory_seconds: 0.0,
            clock_offset_seconds: 0,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    pub id: String,
    /// Segments the account may hold at once.
    pub segment_quota: usize,
    pub balance_sufficient: bool,
}

pub struct World {
    pub regions: Vec<String>,
    pub timing: Timing,
    pub accounts: HashMap<String, Account>,
    segments: BTreeMap<String, Segment>,
    /// Recently released segments, so a late Release says InstanceNotExist rather than NotFound.
    released: HashMap<String, Instant>,
    tokens: HashMap<(String, &'static str, String), TokenRecord>,
    next_block: HashMap<String, u32>,
    seq: u64,
    rng: StdRng,
    /// Every segment ever held, in creation order, with an index by ID.
    history: Vec<SegmentHistory>,
    history_index: HashMap<String, usize>,
    /// A monotonic instant and the wall clock at that instant, to report instants as epoch times.
    clock_anchor: (Instant, SystemTime),
}

fn random_id(rng: &mut StdRng, prefix: &str) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let tail: String = (0..20).map(|_| CHARS[rng.random_range(0..CHARS.len())] as char).collect();
    format!("{prefix}{tail}")
}

/// A public-looking, per-region pool the blocks are cut from.
fn region_pool_base(regions: &[String], region: &str) -> u32 {
    const FIRST_OCTETS: [u8; 10] = [47, 39, 8, 101, 106, 112, 118, 120, 121, 123];
    let index = regions.iter().position(|r| r == region).unwrap_or(0);
    u32::from(FIRST_OCTETS[index % FIRST_OCTETS.len()]) << 24 | ((index / FIRST_OCTETS.len()) as u32) << 20
}

impl World {
    pub fn new(regions: Vec<String>, timing: Timing, rng: StdRng) -> Self {
        World {
            regions,
            timing,
            accounts: HashMap::new(),
            segments: BTreeMap::new(),
            released: HashMap::new(),
            tokens: HashMap::new(),
            next_block: HashMap::new(),
            seq: 0,
            rng,
            history: Vec::new(),
            history_index: HashMap::new(),
            clock_anchor: (Instant::now(), SystemTime::now()),
        }
    }

    pub fn add_account(&mut self, id: &str) {
        self.accounts.entry(id.to_string()).or_insert(Account {
            id: id.to_string(),
            segment_quota: 100_000,
            balance_sufficient: true,
        });
    }

    /// Applies every transition that is due.
    pub fn advance(&mut self, now: Instant) {
        let mut gone = Vec::new();
        for seg in self.segments.values_mut() {
            if let Some(due) = seg.transition_at.filter(|t| *t <= now) {
                seg.transition_at = None;
                match seg.status {
                    Status::Allocating => seg.status = Status::Allocated,
                    Status::Releasing => gone.push((seg.instance_id.clone(), due)),
                    Status::Allocated => {}
                }
            }
        }
        for (id, due) in gone {
            self.segments.remove(&id);
            self.released.insert(id.clone(), now);
            let due_ms = self.wall_ms(due);
            if let Some(h) = self.history_mut(&id) {
                h.gone_at_ms = Some(due_ms);
            }
        }
        self.released.retain(|_, at| now.duration_since(*at) < Duration::from_secs(600));
    }

    /// An instant as Unix epoch milliseconds on the wall clock.
    fn wall_ms(&self, at: Instant) -> u64 {
        let (anchor, wall) = self.clock_anchor;
        let t = match at.checked_duration_since(anchor) {
            Some(after) => wall + after,
            None => wall - anchor.duration_since(at),
        };
        t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
    }

    fn history_mut(&mut self, id: &str) -> Option<&mut SegmentHistory> {
        let index = *self.history_index.get(id)?;
        self.history.get_mut(index)
    }

    fn record_created(&mut self, seg: &Segment, allocation_token: Option<String>, now: Instant) {
        self.history_index.insert(seg.instance_id.clone(), self.history.len());
        self.history.push(SegmentHistory {
            instance_id: seg.instance_id.clone(),
            region_id: seg.region_id.clone(),
            owner_account: seg.owner_account.clone(),
            allocation_token,
            created_at_ms: self.wall_ms(now),
            release_accepted_at_ms: Vec::new(),
            gone_at_ms: None,
            removed_out_of_band: false,
        });
    }

    /// Every segment the simulator ever held, released ones included, oldest first; only those of
    /// `account` when given.
    pub fn history(&mut self, now: Instant, account: Option<&str>) -> serde_json::Value {
        self.advance(now);
        let entries: Vec<&SegmentHistory> =
            self.history.iter().filter(|h| account.is_none_or(|a| h.owner_account == a)).collect();
        serde_json::json!({ "segments": entries })
    }

    fn check_region(&self, region: &str) -> Result<(), ApiError> {
        if region.is_empty() {
            return Err(missing_parameter("RegionId"));
        }
        if !self.regions.iter().any(|r| r == region) {
            return Err(err(
                404,
                "Forbidden.RegionNotFound",
                "Specified region is not found during access authentication.",
            ));
        }
        Ok(())
    }

    /// Idempotency by ClientToken: the first answer for a token is the answer for every repeat with
    /// the same parameters, for as long as the token is remembered.
    pub fn token_lookup(
        &self,
        account: &str,
        action: &'static str,
        token: &str,
        fingerprint: &str,
        now: Instant,
    ) -> Option<Result<serde_json::Value, ApiError>> {
        if token.is_empty() {
            return None;
        }
        let record = self.tokens.get(&(account.to_string(), action, token.to_string()))?;
        if self.forgotten(record, now) {
            return None;
        }
        if record.fingerprint != fingerprint {
            return Some(Err(err(
                400,
                "IdempotentParameterMismatch",
                "The request uses the same client token as a previous, but non-identical request.",
            )));
        }
        Some(match &record.state {
            TokenState::InFlight => {
                Err(err(400, "OperationFailed.LastTokenProcessing", "The last token request is processing."))
            }
            TokenState::Done(result) => result.clone(),
        })
    }

    fn forgotten(&self, record: &TokenRecord, now: Instant) -> bool {
        let memory = self.timing.token_memory_seconds;
        memory > 0.0 && record.done_at.is_some_and(|done| now.duration_since(done).as_secs_f64() > memory)
    }

    pub fn token_begin(&mut self, account: &str, action: &'static str, token: &str, fingerprint: &str) {
        if !token.is_empty() {
            self.tokens.insert(
                (account.to_string(), action, token.to_string()),
                TokenRecord { fingerprint: fingerprint.to_string(), state: TokenState::InFlight, done_at: None },
            );
        }
    }

    /// Records the outcome. Failed requests free the token, as the cloud lets a client retry them.
    pub fn token_finish(
        &mut self,
        account: &str,
        action: &'static str,
        token: &str,
        result: &Result<serde_json::Value, ApiError>,
        now: Instant,
    ) {
        let key = (account.to_string(), action, token.to_string());
        match result {
            Ok(_) => {
                if let Some(r) = self.tokens.get_mut(&key) {
                    r.state = TokenState::Done(result.clone());
                    r.done_at = Some(now);
                }
            }
            Err(_) => {
                self.tokens.remove(&key);
            }
        }
    }

    /// The checks of a mutation's parameters alone, which the cloud makes before it looks up the
    /// request's ClientToken: a repeat with parameters it refuses is refused, whatever the token's
    /// first request did.
    pub fn validate(&self, action: Action, p: &Params) -> Result<(), ApiError> {
        match action {
            Action::AllocateEipSegmentAddress => self.allocation_request(p).map(|_| ()),
            Action::ReleaseEipSegmentAddress => {
                self.check_region(p.get("RegionId"))?;
                if p.get("SegmentInstanceId").is_empty() {
                    return Err(missing_parameter("SegmentInstanceId"));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn new_segment(&mut self, account: &str, region: &str, mask: u8) -> Segment {
        let size = 1u32 << (32 - mask);
        let base = region_pool_base(&self.regions, region);
        let next = self.next_block.entry(region.to_string()).or_insert(0);
        let start = base + next.div_ceil(size) * size;
        *next = next.div_ceil(size) * size + size;
        let mut members = Vec::with_capacity(size as usize);
        for i in 0..size {
            members.push(Member {
                allocation_id: random_id(&mut self.rng, "eip-"),
                ip_address: Ipv4Addr::from(start + i).to_string(),
                status: "Available".into(),
                instance_id: String::new(),
                bandwidth_package_id: String::new(),
                bandwidth_plan_id: String::new(),
                released_separately: false,
            });
        }
        self.seq += 1;
        Segment {
            instance_id: random_id(&mut self.rng, "eipsg-"),
            region_id: region.to_string(),
            owner_account: account.to_string(),
            segment: format!("{}/{mask}", Ipv4Addr::from(start)),
            eip_mask: mask,
            status: Status::Allocated,
            charge_type: "PostPaid".into(),
            internet_charge_type: "PayByBandwidth".into(),
            bandwidth: 5,
            isp: "BGP".into(),
            netmode: "public".into(),
            zone: String::new(),
            resource_group_id: String::new(),
            deletion_protection: false,
            creation_time: self.timing.cloud_now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            members,
            transition_at: None,
            last_release_attempt: None,
            visible_at: None,
            releases_accepted: 0,
            reported_status: None,
            seq: self.seq,
        }
    }

    pub fn allocate(&mut self, account: &str, p: &Params, now: Instant) -> Result<serde_json::Value, ApiError> {
        let request = self.allocation_request(p)?;
        self.check_may_allocate(account)?;
        let mut seg = self.new_segment(account, request.region, request.mask);
        seg.status = Status::Allocating;
        seg.transition_at = Some(now + Duration::from_secs_f64(self.timing.allocate_seconds));
        seg.internet_charge_type = request.charge.to_string();
        seg.bandwidth = request.bandwidth;
        seg.isp = request.isp.to_string();
        seg.netmode = request.netmode.to_string();
        seg.zone = request.zone.to_string();
        seg.resource_group_id = p.get("ResourceGroupId").to_string();
        if self.timing.visibility_lag_seconds > 0.0 {
            seg.visible_at = Some(now + Duration::from_secs_f64(self.timing.visibility_lag_seconds));
        }
        let id = seg.instance_id.clone();
        let token = Some(p.get("ClientToken")).filter(|t| !t.is_empty()).map(str::to_string);
        self.record_created(&seg, token, now);
        self.segments.insert(id.clone(), seg);
        self.advance(now);
        let order: u64 = self.rng.random_range(200_000_000_000..900_000_000_000);
        Ok(serde_json::json!({"EipSegmentInstanceId": id, "OrderId": order.to_string()}))
    }

    /// An Allocate's parameters with their defaults, checked in the order the cloud checks them.
    fn allocation_request<'a>(&self, p: &'a Params) -> Result<AllocationRequest<'a>, ApiError> {
        let region = p.get("RegionId");
        if region.is_empty() {
            return Err(missing_parameter("RegionId"));
        }
        if !self.regions.iter().any(|r| r == region) {
            return Err(err(400, "InvalidRegion.NotSupport", "The specified region does not support this operation."));
        }
        let mask: u8 = match p.get("EipMask").parse() {
            Ok(m @ 24..=28) => m,
            _ => return Err(err(400, "InvalidParameter", "The specified EipMask is invalid: it must be 24 to 28.")),
        };
        let charge = non_empty_or(p.get("InternetChargeType"), "PayByBandwidth");
        let bandwidth = bandwidth(charge, p.get("Bandwidth"))?;
        let isp = non_empty_or(p.get("Isp"), "BGP");
        if !ISPS.contains(&isp) {
            return Err(err(400, "InvalidParameter", "The specified Isp is invalid."));
        }
        let netmode = non_empty_or(p.get("Netmode"), "public");
        if netmode != "public" && netmode != "hybrid" {
            return Err(err(400, "InvalidParameter", "The specified Netmode is invalid."));
        }
        let zone = p.get("Zone");
        if !zone.is_empty() && !zone.starts_with(region) {
            return Err(err(400, "InvalidParameter", "The specified Zone does not belong to the region."));
        }
        Ok(AllocationRequest { region, mask, charge, bandwidth, isp, netmode, zone })
    }

    /// The account must exist, have the balance, and hold fewer segments than its quota.
    fn check_may_allocate(&self, account: &str) -> Result<(), ApiError> {
        let acct = self
            .accounts
            .get(account)
            .ok_or_else(|| err(403, "Forbbiden", "User not authorized to operate on the specified resource."))?;
        if !acct.balance_sufficient {
            return Err(err(400, "InsufficientBalance", "Your account does not have enough balance."));
        }
        let held = self.segments.values().filter(|s| s.owner_account == account).count();
        if held >= acct.segment_quota {
            return Err(err(400, "QuotaExceeded.Eip", "Elastic IP address quota exceeded."));
        }
        Ok(())
    }

    /// The account's own segments in a region, by ID when given; TotalCount counts only them. A
    /// segment still within its visibility lag is left out, by ID as by page.
    pub fn describe(&mut self, account: &str, p: &Params, now: Instant) -> Result<serde_json::Value, ApiError> {
        self.advance(now);
        let region = p.get("RegionId");
        self.check_region(region)?;
        let page_number: usize = parse_or(p.get("PageNumber"), 1, "PageNumber", 1..=usize::MAX)?;
        let page_size: usize = parse_or(p.get("PageSize"), 10, "PageSize", 1..=50)?;
        let wanted = p.get("SegmentInstanceId");
        let mut visible: Vec<&Segment> = self
            .segments
            .values()
            .filter(|s| s.region_id == region && s.owner_account == account)
            .filter(|s| s.visible_at.is_none_or(|t| t <= now))
            .filter(|s| wanted.is_empty() || s.instance_id == wanted)
            .collect();
        visible.sort_by_key(|s| s.seq);
        let total = visible.len();
        let items: Vec<serde_json::Value> = visible
            .iter()
            .skip((page_number - 1).saturating_mul(page_size))
            .take(page_size)
            .map(|s| {
                serde_json::json!({
                    "InstanceId": s.instance_id,
                    "Status": s.reported_status.clone().unwrap_or_else(|| format!("{:?}", s.status)),
                    "Segment": s.segment,
                    "IpCount": s.members.len().to_string(),
                    "RegionId": s.region_id,
                    "Zone": s.zone,
                    "Name": "",
                    "Descritpion": "",
                    "CreationTime": s.creation_time,
                })
            })
            .collect();
        Ok(serde_json::json!({
            "PageNumber": page_number, "PageSize": page_size, "TotalCount": total,
            "EipSegments": {"EipSegment": items},
        }))
    }

    /// The member EIPs of the account's own segments in a region (of one segment when given).
    pub fn describe_members(&mut self, account: &str, p: &Params, now: Instant) -> Result<serde_json::Value, ApiError> {
        self.advance(now);
        let region = p.get("RegionId");
        self.check_region(region)?;
        let page_number: usize = parse_or(p.get("PageNumber"), 1, "PageNumber", 1..=usize::MAX)?;
        let page_size: usize = parse_or(p.get("PageSize"), 10, "PageSize", 1..=100)?;
        let wanted = p.get("SegmentInstanceId");
        let members: Vec<(&Segment, &Member)> = self
            .segments
            .values()
            .filter(|s| s.region_id == region && s.owner_account == account)
            .filter(|s| wanted.is_empty() || s.instance_id == wanted)
            .flat_map(|s| s.members.iter().filter(|m| !m.released_separately).map(move |m| (s, m)))
            .collect();
        let items: Vec<serde_json::Value> = members
            .iter()
            .skip((page_number - 1).saturating_mul(page_size))
            .take(page_size)
            .map(|(s, m)| {
                serde_json::json!({
                    "AllocationId": m.allocation_id, "IpAddress": m.ip_address, "Status": m.status,
                    "InstanceId": m.instance_id, "InstanceType": if m.instance_id.is_empty() { "" } else { "EcsInstance" },
                    "SegmentInstanceId": s.instance_id, "BandwidthPackageId": m.bandwidth_package_id,
                    "RegionId": s.region_id, "ChargeType": s.charge_type,
                })
            })
            .collect();
        Ok(serde_json::json!({
            "PageNumber": page_number, "PageSize": page_size, "TotalCount": members.len(),
            "EipAddresses": {"EipAddress": items},
        }))
    }

    pub fn release(&mut self, account: &str, p: &Params, now: Instant) -> Result<serde_json::Value, ApiError> {
        self.advance(now);
        let region = p.get("RegionId");
        self.check_region(region)?;
        let id = p.get("SegmentInstanceId");
        if id.is_empty() {
            return Err(missing_parameter("SegmentInstanceId"));
        }
        let cooldown = Duration::from_secs_f64(self.timing.release_cooldown_seconds);
        let release_seconds = self.timing.release_seconds;
        let Some(seg) = self.segments.get_mut(id).filter(|s| s.region_id == region) else {
            return Err(if self.released.contains_key(id) {
                err(400, "OperationFailed.InstanceNotExist", "Operation failed because eip segment instance not exist.")
            } else {
                err(404, "InvalidAllocationId.NotFound", "Specified allocation ID is not found.")
            });
        };
        seg.admit_release(account, cooldown, now)?;
        seg.status = Status::Releasing;
        seg.releases_accepted += 1;
        seg.transition_at = Some(now + Duration::from_secs_f64(release_seconds));
        let accepted_ms = self.wall_ms(now);
        if let Some(h) = self.history_mut(id) {
            h.release_accepted_at_ms.push(accepted_ms);
        }
        self.advance(now);
        Ok(serde_json::json!({}))
    }

    // ---- admin ----

    pub fn seed(&mut self, account: &str, s: SeedSegment, now: Instant) -> Result<Segment, String> {
        let region = s.region_id.unwrap_or_else(|| self.regions[0].clone());
        if !self.regions.contains(&region) {
            return Err(format!("unknown region {region}"));
        }
        let mask = s.eip_mask.unwrap_or(28);
        if !(24..=28).contains(&mask) {
            return Err("eipMask must be 24 to 28".into());
        }
        let owner = s.owner_account.unwrap_or_else(|| account.to_string());
        let mut seg = self.new_segment(&owner, &region, mask);
        seg.status = s.status.unwrap_or(Status::Allocated);
        if seg.status != Status::Allocated {
            let secs = if seg.status == Status::Allocating {
                self.timing.allocate_seconds
            } else {
                self.timing.release_seconds
            };
            seg.transition_at = Some(now + Duration::from_secs_f64(secs));
        }
        if let Some(c) = s.charge_type {
            seg.charge_type = c;
        }
        seg.deletion_protection = s.deletion_protection.unwrap_or(false);
        seg.bandwidth = s.bandwidth.unwrap_or(5);
        seg.isp = s.isp.unwrap_or_else(|| "BGP".into());
        seg.zone = s.zone.unwrap_or_default();
        if let Some(t) = s.creation_time {
            chrono::DateTime::parse_from_rfc3339(&t).map_err(|e| format!("creationTime {t:?}: {e}"))?;
            seg.creation_time = t;
        }
        apply_member_patches(&mut seg, &s.members)?;
        self.record_created(&seg, None, now);
        self.segments.insert(seg.instance_id.clone(), seg.clone());
        Ok(seg)
    }

    pub fn patch(&mut self, id: &str, patch: SegmentPatch) -> Result<Segment, String> {
        let seg = self.segments.get_mut(id).ok_or_else(|| format!("no segment {id}"))?;
        if let Some(c) = patch.charge_type {
            seg.charge_type = c;
        }
        if let Some(d) = patch.deletion_protection {
            seg.deletion_protection = d;
        }
        if let Some(o) = patch.owner_account {
            seg.owner_account = o;
        }
        if let Some(reported) = patch.reported_status {
            seg.reported_status = reported;
        }
        apply_member_patches(seg, &patch.members)?;
        let seg = seg.clone();
        if let Some(h) = self.history_mut(id) {
            h.owner_account = seg.owner_account.clone();
        }
        Ok(seg)
    }

    /// Releases a segment out of band, at once.
    pub fn remove(&mut self, id: &str, now: Instant) -> bool {
        let removed = self.segments.remove(id).is_some();
        if removed {
            self.released.insert(id.to_string(), now);
            let now_ms = self.wall_ms(now);
            if let Some(h) = self.history_mut(id) {
                h.gone_at_ms = Some(now_ms);
                h.removed_out_of_band = true;
            }
        }
        removed
    }

    /// The whole state, for tests; with `account`, only that account's segments.
    pub fn snapshot(&mut self, now: Instant, account: Option<&str>) -> serde_json::Value {
        self.advance(now);
        let segments: Vec<&Segment> =
            self.segments.values().filter(|s| account.is_none_or(|a| s.owner_account == a)).collect();
        let mut released: Vec<&String> = self.released.keys().collect();
        released.sort();
        serde_json::json!({
            "segments": segments,
            "recentlyReleased": released,
            "timing": self.timing,
            "regions": self.regions,
            "accounts": self.accounts.values().collect::<Vec<_>>(),
        })
    }

    pub fn segment(&self, id: &str) -> Option<&Segment> {
        self.segments.get(id)
    }
}

impl Segment {
    /// Whether `account` may release this segment now, with the cloud's refusal if not. An attempt
    /// by its owner starts the release cooldown, refused or not.
    fn admit_release(&mut self, account: &str, cooldown: Duration, now: Instant) -> Result<(), ApiError> {
        // The documented answer for a segment that exists in another account.
        if self.owner_account != account {
            return Err(err(400, "Forbidden", "The eip instance owener error"));
        }
        if self.last_release_attempt.is_some_and(|t| now.duration_since(t) < cooldown) {
            return Err(err(400, "TaskConflict.AssociateGlobalAccelerationInstance", "Operate too frequent."));
        }
        self.last_release_attempt = Some(now);
        if self.status != Status::Allocated || self.reported_status.is_some() {
            return Err(err(400, "IncorrectEipStatus", "Current elastic IP status does not support this operation."));
        }
        if self.charge_type == "PrePaid" {
            return Err(err(400, "Forbidden.ChargeTypeIsPrepaid", "It's forbidden to release a prepaid EIP"));
        }
        if self.deletion_protection {
            return Err(err(
                400,
                "InvalidOperation.DeletionProtection",
                "The instance cannnot delete because of deletion protecion.",
            ));
        }
        check_members_releasable(&self.members)
    }
}

/// The members must all still be in the group, bound to no bandwidth plan or package, and idle.
fn check_members_releasable(members: &[Member]) -> Result<(), ApiError> {
    if members.iter().any(|m| m.released_separately) {
        return Err(err(
            400,
            "OperationFailed.EipNumInconsistent",
            "Operation failed because the number of eip is inconsistent.",
        ));
    }
    if let Some(m) = members.iter().find(|m| !m.bandwidth_plan_id.is_empty()) {
        return Err(err(
            400,
            "Forbidden.EipInBwp",
            format!("The EIP has been associated with an EIP bandwidth plan. ({})", m.allocation_id),
        ));
    }
    if let Some(m) = members.iter().find(|m| !m.bandwidth_package_id.is_empty()) {
        return Err(err(
            400,
            "OperationFailed.EipInBwp",
            format!(
                "Operation failed because eip instance has been added to the bandwidth package. ({})",
                m.allocation_id
            ),
        ));
    }
    if members.iter().any(|m| m.status == "Associating" || m.status == "Unassociating") {
        return Err(err(400, "IncorrectEipStatus", "Current elastic IP status does not support this operation."));
    }
    if members.iter().any(|m| m.status == "InUse") {
        return Err(err(
            400,
            "OperationFailed.EipStatusInvalid",
            "Operation failed because eip instance status invalid.",
        ));
    }
    Ok(())
}

/// An AllocateEipSegmentAddress request's checked parameters, defaults filled in.
struct AllocationRequest<'a> {
    region: &'a str,
    mask: u8,
    charge: &'a str,
    bandwidth: u32,
    isp: &'a str,
    netmode: &'a str,
    zone: &'a str,
}

/// The bandwidth in Mbit/s, 5 by default; the maximum depends on the charge type.
fn bandwidth(charge: &str, value: &str) -> Result<u32, ApiError> {
    let max_bandwidth = match charge {
        "PayByBandwidth" => 500,
        "PayByTraffic" => 200,
        _ => return Err(err(400, "InvalidParameter", "The specified InternetChargeType is invalid.")),
    };
    match non_empty_or(value, "5").parse() {
        Ok(b) if (1..=max_bandwidth).contains(&b) => Ok(b),
        _ => Err(err(
            400,
            "InvalidParameter",
            format!("The specified Bandwidth is invalid: it must be 1 to {max_bandwidth} for {charge}."),
        )),
    }
}

fn apply_member_patches(seg: &mut Segment, patches: &[MemberPatch]) -> Result<(), String> {
    for p in patches {
        let m = seg.members.get_mut(p.index).ok_or_else(|| format!("segment has no member {}", p.index))?;
        if let Some(s) = &p.status {
            m.status = s.clone();
        }
        if let Some(i) = &p.instance_id {
            m.instance_id = i.clone();
        }
        if let Some(b) = &p.bandwidth_package_id {
            m.bandwidth_package_id = b.clone();
        }
        if let Some(b) = &p.bandwidth_plan_id {
            m.bandwidth_plan_id = b.clone();
        }
        if let Some(r) = p.released_separately {
            m.released_separately = r;
        }
    }
    Ok(())
}

fn non_empty_or<'a>(value: &'a str, default: &'a str) -> &'a str {
    if value.is_empty() { default } else { value }
}

fn parse_or(
    value: &str,
    default: usize,
    name: &str,
    range: std::ops::RangeInclusive<usize>,
) -> Result<usize, ApiError> {
    if value.is_empty() {
        return Ok(default);
    }
    match value.parse::<usize>() {
        Ok(v) if range.contains(&v) => Ok(v),
        _ => Err(err(400, "InvalidParameter", format!("The specified {name} is invalid."))),
    }
}

/// A request's parameters, from the query string and the form body together.
#[derive(Clone, Debug, Default)]
pub struct Params(pub BTreeMap<String, String>);

impl Params {
    pub fn get(&self, key: &str) -> &str {
        self.0.get(key).map(String::as_str).unwrap_or("")
    }

    /// What identifies "the same request" for ClientToken idempotency.
    pub fn fingerprint(&self) -> String {
        const TRANSPORT: &[&str] = &[
            "Signature",
            "SignatureNonce",
            "Timestamp",
            "SignatureMethod",
            "SignatureVersion",
            "SignatureType",
            "AccessKeyId",
            "SecurityToken",
            "Format",
            "Version",
            "Action",
        ];
        self.0
            .iter()
            .filter(|(k, _)| !TRANSPORT.contains(&k.as_str()))
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    fn world() -> World {
        let timing = Timing {
            allocate_seconds: 1.0,
            release_seconds: 5.0,
            release_cooldown_seconds: 0.0,
            visibility_lag_seconds: 0.0,
            token_memory_seconds: 0.0,
            clock_offset_seconds: 0,
        };
        let mut w = World::new(vec!["cn-hangzhou".into()], timing, StdRng::seed_from_u64(7));
        w.add_account("acct");
        w
    }

    #[test]
    fn history_keeps_every_segment_with_the_due_time_of_its_disappearance() {
        let mut w = world();
        let t0 = Instant::now();
        let allocated = w
            .allocate(
                "acct",
                &params(&[("RegionId", "cn-hangzhou"), ("EipMask", "28"), ("ClientToken", "alloc-1")]),
                t0,
            )
            .unwrap()["EipSegmentInstanceId"]
            .as_str()
            .unwrap()
            .to_string();
        let seeded = w.seed("acct", SeedSegment::default(), t0).unwrap().instance_id;
        let dropped = w.seed("acct", SeedSegment::default(), t0).unwrap().instance_id;

        // Allocated after 1 s; released at 2 s, gone at 7 s, first noticed by a request at 60 s.
        let released_at = t0 + Duration::from_secs(2);
        w.advance(t0 + Duration::from_secs(1));
        w.release("acct", &params(&[("RegionId", "cn-hangzhou"), ("SegmentInstanceId", &allocated)]), released_at)
            .unwrap();
        let refused =
            w.release("acct", &params(&[("RegionId", "cn-hangzhou"), ("SegmentInstanceId", &allocated)]), released_at);
        assert_eq!(refused.unwrap_err().code, "IncorrectEipStatus", "a refused release is not an accepted one");
        assert!(w.remove(&dropped, t0 + Duration::from_secs(3)));
        let late = t0 + Duration::from_secs(60);
        let history = w.history(late, None);

        let entries = history["segments"].as_array().unwrap();
        assert_eq!(entries.len(), 3, "{history}");
        let entry = |id: &str| entries.iter().find(|e| e["instanceId"] == id).unwrap().clone();
        let ms = |at: Instant| w.wall_ms(at);

        let a = entry(&allocated);
        assert_eq!(a["allocationToken"], "alloc-1");
        assert_eq!(a["regionId"], "cn-hangzhou");
        assert_eq!(a["ownerAccount"], "acct");
        assert_eq!(a["createdAtMs"], ms(t0));
        assert_eq!(a["releaseAcceptedAtMs"], serde_json::json!([ms(released_at)]));
        assert_eq!(
            a["goneAtMs"],
            ms(released_at + Duration::from_secs(5)),
            "the transition's due time, not the request that saw it"
        );
        assert_eq!(a["removedOutOfBand"], false);

        let s = entry(&seeded);
        assert_eq!(s["allocationToken"], serde_json::Value::Null);
        assert_eq!(s["goneAtMs"], serde_json::Value::Null);
        assert_eq!(s["releaseAcceptedAtMs"], serde_json::json!([]));

        let d = entry(&dropped);
        assert_eq!(d["goneAtMs"], ms(t0 + Duration::from_secs(3)));
        assert_eq!(d["removedOutOfBand"], true);

        // Epoch milliseconds on the wall clock, within a second of now.
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        assert!(a["createdAtMs"].as_u64().unwrap().abs_diff(now_ms) < 1_000, "{a}");
        assert_eq!(ms(t0 + Duration::from_millis(1500)) - ms(t0), 1500);
    }

    const REGION: &str = "cn-hangzhou";

    fn by_id(id: &str) -> Params {
        params(&[("RegionId", REGION), ("SegmentInstanceId", id)])
    }

    fn ids(answer: &serde_json::Value) -> Vec<String> {
        answer["EipSegments"]["EipSegment"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["InstanceId"].as_str().unwrap().to_string())
            .collect()
    }

    fn two_accounts() -> (World, Vec<String>, Vec<String>) {
        let mut w = world();
        w.add_account("other");
        let t0 = Instant::now();
        let seed = |w: &mut World, owner: &str| {
            let s = SeedSegment { owner_account: Some(owner.into()), ..SeedSegment::default() };
            w.seed("acct", s, t0).unwrap().instance_id
        };
        let mine: Vec<String> = (0..2).map(|_| seed(&mut w, "acct")).collect();
        let theirs: Vec<String> = (0..3).map(|_| seed(&mut w, "other")).collect();
        (w, mine, theirs)
    }

    #[test]
    fn describe_lists_only_the_callers_segments() {
        let (mut w, mine, theirs) = two_accounts();
        let now = Instant::now();
        let page = w.describe("acct", &params(&[("RegionId", REGION), ("PageSize", "50")]), now).unwrap();
        assert_eq!((ids(&page), &page["TotalCount"]), (mine.clone(), &serde_json::json!(2)));
        let page = w.describe("other", &params(&[("RegionId", REGION), ("PageSize", "2")]), now).unwrap();
        assert_eq!((ids(&page), &page["TotalCount"]), (theirs[..2].to_vec(), &serde_json::json!(3)));
        let page = w.describe("other", &params(&[("RegionId", REGION), ("PageSize", "2"), ("PageNumber", "2")]), now);
        assert_eq!(ids(&page.unwrap()), theirs[2..].to_vec());

        let foreign = w.describe("acct", &by_id(&theirs[0]), now).unwrap();
        assert_eq!((ids(&foreign).len(), &foreign["TotalCount"]), (0, &serde_json::json!(0)), "{foreign}");
        let own = w.describe("other", &by_id(&theirs[0]), now).unwrap();
        assert_eq!(ids(&own), vec![theirs[0].clone()]);
        let nobody = w.describe("stranger", &params(&[("RegionId", REGION)]), now).unwrap();
        assert_eq!(nobody["TotalCount"], 0);
    }

    #[test]
    fn a_seeded_segment_may_be_made_long_ago() {
        let mut w = world();
        let now = Instant::now();
        let old = SeedSegment { creation_time: Some("2020-01-01T00:00:00Z".into()), ..Default::default() };
        let id = w.seed("acct", old, now).unwrap().instance_id;
        let page = w.describe("acct", &by_id(&id), now).unwrap();
        assert_eq!(page["EipSegments"]["EipSegment"][0]["CreationTime"], "2020-01-01T00:00:00Z");
        let bad = SeedSegment { creation_time: Some("last year".into()), ..Default::default() };
        assert!(w.seed("acct", bad, now).unwrap_err().contains("creationTime"));
    }

    #[test]
    fn member_eips_are_listed_for_their_owner_only() {
        let (mut w, mine, _) = two_accounts();
        let now = Instant::now();
        let own = w.describe_members("acct", &by_id(&mine[0]), now).unwrap();
        assert_eq!(own["TotalCount"], 16);
        let foreign = w.describe_members("other", &by_id(&mine[0]), now).unwrap();
        assert_eq!(
            (&foreign["TotalCount"], &foreign["EipAddresses"]["EipAddress"]),
            (&0.into(), &serde_json::json!([]))
        );
        let all = w.describe_members("other", &params(&[("RegionId", REGION), ("PageSize", "100")]), now).unwrap();
        assert_eq!(all["TotalCount"], 48, "three /28 of its own: {}", all["TotalCount"]);
    }

    #[test]
    fn release_of_another_accounts_segment_is_forbidden() {
        let (mut w, mine, _) = two_accounts();
        let now = Instant::now();
        let e = w.release("other", &by_id(&mine[0]), now).unwrap_err();
        assert_eq!((e.http_status, e.code, e.message.as_str()), (400, "Forbidden", "The eip instance owener error"));
        let seg = w.segment(&mine[0]).unwrap();
        assert_eq!((seg.status, seg.releases_accepted), (Status::Allocated, 0), "a refused release changes nothing");

        let e = w.release("other", &by_id("eipsg-inno0account000000000"), now).unwrap_err();
        assert_eq!((e.http_status, e.code), (404, "InvalidAllocationId.NotFound"));
        w.release("acct", &by_id(&mine[0]), now).unwrap();
        let gone = now + Duration::from_secs(6);
        let e = w.release("other", &by_id(&mine[0]), gone).unwrap_err();
        assert_eq!(e.code, "OperationFailed.InstanceNotExist", "released: in no account any more");
    }

    #[test]
    fn client_tokens_are_per_account() {
        let mut w = world();
        w.add_account("other");
        let t0 = Instant::now();
        let request = params(&[("RegionId", REGION), ("EipMask", "28"), ("ClientToken", "uid-1")]);
        let id =
            |v: Result<serde_json::Value, ApiError>| v.unwrap()["EipSegmentInstanceId"].as_str().unwrap().to_string();
        let fingerprint = request.fingerprint();
        let allocate = |w: &mut World, account: &str| {
            if let Some(previous) = w.token_lookup(account, "AllocateEipSegmentAddress", "uid-1", &fingerprint, t0) {
                return id(previous);
            }
            w.token_begin(account, "AllocateEipSegmentAddress", "uid-1", &fingerprint);
            let result = w.allocate(account, &request, t0);
            w.token_finish(account, "AllocateEipSegmentAddress", "uid-1", &result, t0);
            id(result)
        };
        let first = allocate(&mut w, "acct");
        assert_eq!(allocate(&mut w, "acct"), first, "a replay in the same account is the same request");
        let replayed = allocate(&mut w, "other");
        assert_ne!(replayed, first, "another account's token is another request");
        assert_eq!(w.segment(&replayed).unwrap().owner_account, "other");
        assert_eq!(w.segment(&first).unwrap().owner_account, "acct");

        w.token_begin("acct", "ReleaseEipSegmentAddress", "r-1", "f");
        assert!(
            w.token_lookup("other", "ReleaseEipSegmentAddress", "r-1", "f", t0).is_none(),
            "in flight in acct only"
        );
        assert!(w.token_lookup("acct", "ReleaseEipSegmentAddress", "r-1", "f", t0).is_some());
    }

    #[test]
    fn a_token_is_forgotten_after_the_memory_and_its_repeat_is_a_new_request() {
        let mut w = world();
        w.timing.token_memory_seconds = 60.0;
        let t0 = Instant::now();
        let done = Ok(serde_json::json!({"EipSegmentInstanceId": "eipsg-first"}));
        w.token_begin("acct", "AllocateEipSegmentAddress", "uid-1", "f");
        assert!(
            w.token_lookup("acct", "AllocateEipSegmentAddress", "uid-1", "f", t0 + Duration::from_secs(600)).is_some(),
            "a request in flight is never forgotten"
        );
        w.token_finish("acct", "AllocateEipSegmentAddress", "uid-1", &done, t0);
        let remembered =
            w.token_lookup("acct", "AllocateEipSegmentAddress", "uid-1", "f", t0 + Duration::from_secs(59));
        assert_eq!(remembered.unwrap().unwrap(), done.clone().unwrap());
        assert!(
            w.token_lookup("acct", "AllocateEipSegmentAddress", "uid-1", "f", t0 + Duration::from_secs(61)).is_none()
        );
        w.timing.token_memory_seconds = 0.0;
        assert!(
            w.token_lookup("acct", "AllocateEipSegmentAddress", "uid-1", "f", t0 + Duration::from_secs(86_400))
                .is_some(),
            "0 remembers forever"
        );
    }

    #[test]
    fn parameters_are_checked_before_the_token_is_looked_up() {
        let w = world();
        let bad_region = params(&[("RegionId", "xx-nowhere-1"), ("EipMask", "28"), ("ClientToken", "uid-1")]);
        let e = w.validate(Action::AllocateEipSegmentAddress, &bad_region).unwrap_err();
        assert_eq!(e.code, "InvalidRegion.NotSupport");
        let bad_mask = params(&[("RegionId", REGION), ("EipMask", "20"), ("ClientToken", "uid-1")]);
        assert_eq!(w.validate(Action::AllocateEipSegmentAddress, &bad_mask).unwrap_err().code, "InvalidParameter");
        let good = params(&[("RegionId", REGION), ("EipMask", "28"), ("ClientToken", "uid-1")]);
        assert!(w.validate(Action::AllocateEipSegmentAddress, &good).is_ok());
        let release = params(&[("RegionId", REGION), ("ClientToken", "r-1")]);
        assert_eq!(w.validate(Action::ReleaseEipSegmentAddress, &release).unwrap_err().code, "MissingParameter");
    }

    #[test]
    fn a_new_segment_is_hidden_from_describe_for_the_visibility_lag() {
        let mut w = world();
        w.timing.visibility_lag_seconds = 3.0;
        let t0 = Instant::now();
        let at = |s: f64| t0 + Duration::from_secs_f64(s);
        let allocated = w.allocate("acct", &params(&[("RegionId", REGION), ("EipMask", "28")]), t0).unwrap();
        let id = allocated["EipSegmentInstanceId"].as_str().unwrap().to_string();
        let seeded = w.seed("acct", SeedSegment::default(), t0).unwrap().instance_id;

        for t in [0.0, 1.5, 2.9] {
            let page = w.describe("acct", &params(&[("RegionId", REGION)]), at(t)).unwrap();
            assert_eq!((ids(&page), &page["TotalCount"]), (vec![seeded.clone()], &1.into()), "at {t} s");
            assert!(ids(&w.describe("acct", &by_id(&id), at(t)).unwrap()).is_empty(), "by ID at {t} s");
        }
        // It exists all the while: its members, its history, a release once it is Allocated.
        assert_eq!(w.describe_members("acct", &by_id(&id), at(1.5)).unwrap()["TotalCount"], 16);
        let history = w.history(at(1.5), None);
        assert_eq!(history["segments"][0]["instanceId"], id.as_str());
        assert_eq!(history["segments"][0]["createdAtMs"], w.wall_ms(t0));
        w.release("acct", &by_id(&id), at(2.0)).unwrap();
        assert!(ids(&w.describe("acct", &by_id(&id), at(2.5)).unwrap()).is_empty());

        let shown = w.describe("acct", &by_id(&id), at(3.0)).unwrap();
        assert_eq!(shown["EipSegments"]["EipSegment"][0]["Status"], "Releasing", "{shown}");
        assert_eq!(w.describe("acct", &params(&[("RegionId", REGION)]), at(3.0)).unwrap()["TotalCount"], 2);
    }

    #[test]
    fn a_reported_status_is_described_and_refuses_releases_until_cleared() {
        let mut w = world();
        let t0 = Instant::now();
        let id = w.seed("acct", SeedSegment::default(), t0).unwrap().instance_id;
        let patch = |json: &str| serde_json::from_str::<SegmentPatch>(json).unwrap();
        let status = |w: &mut World| {
            w.describe("acct", &by_id(&id), t0).unwrap()["EipSegments"]["EipSegment"][0]["Status"].clone()
        };

        w.patch(&id, patch(r#"{"reportedStatus": "Maintaining"}"#)).unwrap();
        assert_eq!(status(&mut w), "Maintaining");
        assert_eq!(w.snapshot(t0, None)["segments"][0]["reportedStatus"], "Maintaining");
        let e = w.release("acct", &by_id(&id), t0).unwrap_err();
        assert_eq!((e.http_status, e.code), (400, "IncorrectEipStatus"));
        w.patch(&id, patch(r#"{"deletionProtection": false}"#)).unwrap();
        assert_eq!(status(&mut w), "Maintaining", "a patch without the field leaves it");

        w.patch(&id, patch(r#"{"reportedStatus": null}"#)).unwrap();
        assert_eq!(status(&mut w), "Allocated");
        assert!(w.snapshot(t0, None)["segments"][0].get("reportedStatus").is_none());
        w.release("acct", &by_id(&id), t0 + Duration::from_secs(1)).unwrap();
        assert_eq!(w.segment(&id).unwrap().releases_accepted, 1);
    }

    #[test]
    fn without_a_lag_a_new_segment_is_described_at_once() {
        let mut w = world();
        let t0 = Instant::now();
        let allocated = w.allocate("acct", &params(&[("RegionId", REGION), ("EipMask", "28")]), t0).unwrap();
        let id = allocated["EipSegmentInstanceId"].as_str().unwrap();
        assert_eq!(ids(&w.describe("acct", &by_id(id), t0).unwrap()), vec![id.to_string()]);
    }

    #[test]
    fn state_and_history_can_be_read_per_account() {
        let (mut w, mine, theirs) = two_accounts();
        let now = Instant::now();
        let owned = |v: &serde_json::Value| -> Vec<String> {
            v["segments"].as_array().unwrap().iter().map(|s| s["instanceId"].as_str().unwrap().to_string()).collect()
        };
        let sorted = |mut v: Vec<String>| {
            v.sort();
            v
        };
        // The state lists segments by ID, the history in creation order.
        assert_eq!(owned(&w.snapshot(now, Some("acct"))), sorted(mine));
        assert_eq!(owned(&w.snapshot(now, Some("other"))), sorted(theirs.clone()));
        assert_eq!(owned(&w.snapshot(now, None)).len(), 5);
        assert_eq!(owned(&w.history(now, Some("other"))), theirs);
        let history = w.history(now, None);
        let owners: Vec<&str> =
            history["segments"].as_array().unwrap().iter().map(|h| h["ownerAccount"].as_str().unwrap()).collect();
        assert_eq!(owners, ["acct", "acct", "other", "other", "other"]);
    }
}
