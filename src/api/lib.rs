//! The `EipSegment` custom resource. The CRD YAML in `crds/` is generated from these types
//! (`eipsegment-operator crd`); the types need kube's derive and core types, never its client.

use kube::{CustomResource, CustomResourceExt, KubeSchema};
use serde::{Deserialize, Serialize};

pub const GROUP: &str = "eipsegment.io";
pub const FINALIZER: &str = "eipsegment.io/release";

/// Immutability of an optional field: it may be neither added, removed nor changed.
macro_rules! immutable {
    ($field:literal) => {
        concat!(
            "has(self.",
            $field,
            ") == has(oldSelf.",
            $field,
            ") && (!has(self.",
            $field,
            ") || self.",
            $field,
            " == oldSelf.",
            $field,
            ")"
        )
    };
}

/// Once status names the account the segment lives in, the credentials source that leads to it is
/// fixed: other credentials would act in another account, where the segment cannot be seen.
const CREDENTIALS_FIXED_ONCE_USED: &str = "!has(oldSelf.status) || !has(oldSelf.status.accountId) || (has(self.spec.credentialsSecretRef) == has(oldSelf.spec.credentialsSecretRef) && (!has(self.spec.credentialsSecretRef) || self.spec.credentialsSecretRef.name == oldSelf.spec.credentialsSecretRef.name))";

/// A contiguous group of Alibaba Cloud elastic IP addresses (an EIP segment), allocated by the
/// operator or adopted, and released when the object is deleted (unless its deletion policy is Retain).
#[derive(CustomResource, KubeSchema, Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, Hash)]
#[kube(
    group = "eipsegment.io",
    version = "v1alpha1",
    kind = "EipSegment",
    plural = "eipsegments",
    shortname = "eipseg",
    namespaced,
    status = "EipSegmentStatus",
    category = "alibabacloud",
    doc = "An Alibaba Cloud EIP segment (a contiguous group of elastic IP addresses), allocated by the operator or adopted, and released when the object is deleted with deletionPolicy Delete. spec says which segment; status is the operator's record of it, and its Ready condition says whether the segment is there.",
    // The columns a person scans fit a terminal (`kubectl get eipseg -A` well under 120 characters);
    // the rest come with `-o wide`. Deleting shows how long ago the deletion was asked, empty otherwise.
    printcolumn(name = "CIDR", type_ = "string", json_path = ".status.segment"),
    printcolumn(name = "IPs", type_ = "integer", json_path = ".status.ipCount"),
    printcolumn(name = "Ready", type_ = "string", json_path = r#".status.conditions[?(@.type=="Ready")].status"#),
    printcolumn(name = "Reason", type_ = "string", json_path = r#".status.conditions[?(@.type=="Ready")].reason"#, description = "Why the object is (not) Ready"),
    printcolumn(name = "Deleting", type_ = "date", json_path = ".metadata.deletionTimestamp", description = "How long ago the deletion was asked; the object stays until its segment is released or retained"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    printcolumn(name = "Region", type_ = "string", json_path = ".spec.regionId", priority = 1),
    printcolumn(name = "Segment ID", type_ = "string", json_path = ".status.segmentInstanceId", priority = 1),
    printcolumn(name = "Status", type_ = "string", json_path = ".status.cloudStatus", priority = 1, description = "The cloud's status of the segment as last seen"),
    printcolumn(name = "Synced", type_ = "string", json_path = r#".status.conditions[?(@.type=="Synced")].reason"#, priority = 1, description = "Succeeded, or the class of the last cloud error"),
    printcolumn(name = "Policy", type_ = "string", json_path = ".status.deletionPolicy", priority = 1, description = "The deletion policy in force"),
    printcolumn(name = "First", type_ = "string", json_path = ".status.firstAddress", priority = 1),
    printcolumn(name = "Last", type_ = "string", json_path = ".status.lastAddress", priority = 1),
    printcolumn(name = "Account", type_ = "string", json_path = ".status.accountId", priority = 1),
    validation = Rule::new(CREDENTIALS_FIXED_ONCE_USED).message(
        "credentialsSecretRef cannot change once the operator has recorded the account of the segment (status.accountId): the segment lives in that account"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.segmentInstanceId) != has(self.eipMask)").message("set eipMask to allocate a new segment, or segmentInstanceId to adopt an existing one, not both"),
    validation = Rule::new("!has(self.bandwidth) || !has(self.internetChargeType) || self.internetChargeType != 'PayByTraffic' || self.bandwidth <= 200").message("bandwidth is at most 200 Mbit/s with PayByTraffic"),
    validation = Rule::new("!has(self.segmentInstanceId) || !(has(self.bandwidth) || has(self.internetChargeType) || has(self.isp) || has(self.netmode) || has(self.zone) || has(self.resourceGroupId))").message("bandwidth, internetChargeType, isp, netmode, zone and resourceGroupId describe a new segment: leave them out when adopting one with segmentInstanceId"),
    validation = Rule::new(immutable!("eipMask")).message("eipMask is immutable"),
    validation = Rule::new(immutable!("segmentInstanceId")).message("segmentInstanceId is immutable"),
    validation = Rule::new(immutable!("bandwidth")).message("bandwidth is immutable: the operator does not resize a live segment"),
    validation = Rule::new(immutable!("internetChargeType")).message("internetChargeType is immutable"),
    validation = Rule::new(immutable!("isp")).message("isp is immutable"),
    validation = Rule::new(immutable!("netmode")).message("netmode is immutable"),
    validation = Rule::new(immutable!("zone")).message("zone is immutable"),
    validation = Rule::new(immutable!("resourceGroupId")).message("resourceGroupId is immutable")
)]
pub struct EipSegmentSpec {
    /// The Alibaba Cloud region of the segment, for example cn-hangzhou. Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("regionId is immutable"))]
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[a-z]{2,}(-[a-z0-9]+)+$"))]
    pub region_id: String,

    /// Mask of a new segment: 28 (16 IPs), 27 (32), 26 (64), 25 (128) or 24 (256). Required to
    /// allocate; must be absent when adopting. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    // Kubernetes knows no unsigned formats (1.37 warns on every apply): int32, as for the others.
    #[schemars(range(min = 24, max = 28), extend("format" = "int32"))]
    pub eip_mask: Option<u8>,

    /// Peak bandwidth of each EIP in Mbit/s: 1-500 with PayByBandwidth, 1-200 with PayByTraffic.
    /// Defaults to the cloud's default (5). Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 500), extend("format" = "int32"))]
    pub bandwidth: Option<u32>,

    /// Metering method of the new segment's EIPs. Immutable.
    /// - `PayByBandwidth` (the cloud's default): billed by the peak bandwidth set in `bandwidth`,
    ///   used or not.
    /// - `PayByTraffic`: billed by the outbound data; `bandwidth` only caps it (at most 200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = no_null_in_enum)]
    pub internet_charge_type: Option<InternetChargeType>,

    /// Line type of the new segment, where the region offers it. Immutable.
    /// - `BGP` (the cloud's default): BGP multi-ISP line, in every region.
    /// - `BGP_PRO`: BGP (premium) line, with optimized routes to mainland China, in some regions outside it.
    /// - `ChinaTelecom`, `ChinaUnicom`, `ChinaMobile`: a single-ISP static line in mainland China.
    /// - `ChinaTelecom_L2`, `ChinaUnicom_L2`, `ChinaMobile_L2`: the single-ISP line, layer 2.
    /// - `BGP_FinanceCloud`: the BGP line of Alibaba Finance Cloud regions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = no_null_in_enum)]
    pub isp: Option<Isp>,

    /// Network type of the new segment. Immutable.
    /// - `public`: public network addresses, the only value current regions accept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = no_null_in_enum)]
    pub netmode: Option<Netmode>,

    /// Zone of the segment (the API's `Zone`, for example cn-hangzhou-a), when the region requires one. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[a-z]{2,}(-[a-z0-9]+)+$"))]
    pub zone: Option<String>,

    /// Resource group of a new segment (rg-…). Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 4, max = 64), regex(pattern = r"^rg-[a-z0-9]+$"))]
    pub resource_group_id: Option<String>,

    /// Adopt this existing segment (eipsg-…) instead of allocating one. The operator verifies it
    /// exists in the region and never allocates. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 7, max = 64), regex(pattern = r"^eipsg-[a-z0-9]+$"))]
    pub segment_instance_id: Option<String>,

    /// A Secret in this namespace holding the credentials for this segment (keys
    /// ALIBABA_CLOUD_ACCESS_KEY_ID, ALIBABA_CLOUD_ACCESS_KEY_SECRET, optional
    /// ALIBABA_CLOUD_SECURITY_TOKEN). Needs an operator with Secret-referenced credentials enabled;
    /// without it, the namespace's default credentials Secret or the operator's own are used. Fixed
    /// once the operator has recorded the segment's account; the Secret's keys may be rotated in
    /// place, to keys of the same account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretReference>,

    /// What happens to the segment when the object is deleted. May be changed at any time, also
    /// during a deletion that is blocked.
    /// - `Delete`: ReleaseEipSegmentAddress, once, and the object goes only when the cloud no longer
    ///   returns the segment. The default for allocated segments.
    /// - `Retain`: the segment is left in the cloud (and keeps billing); the object goes at once. The
    ///   default for adopted ones: the operator never releases what it did not create unless told to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = no_null_in_enum)]
    pub deletion_policy: Option<DeletionPolicy>,
}

/// An optional enum field stays nullable, but `null` is not listed among its values: the apiserver
/// would print it as a supported value (`"null"`) in every rejection, yet refuses it.
fn no_null_in_enum(schema: &mut schemars::Schema) {
    if let Some(values) = schema.get_mut("enum").and_then(|v| v.as_array_mut()) {
        values.retain(|v| !v.is_null());
    }
}

/// A Secret in the object's own namespace.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Hash, schemars::JsonSchema)]
pub struct SecretReference {
    /// Name of the Secret.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub name: String,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash, schemars::JsonSchema)]
pub enum InternetChargeType {
    PayByBandwidth,
    PayByTraffic,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash, schemars::JsonSchema)]
#[allow(non_camel_case_types)]
pub enum Isp {
    #[serde(rename = "BGP")]
    Bgp,
    #[serde(rename = "BGP_PRO")]
    BgpPro,
    ChinaTelecom,
    ChinaUnicom,
    ChinaMobile,
    ChinaTelecom_L2,
    ChinaUnicom_L2,
    ChinaMobile_L2,
    #[serde(rename = "BGP_FinanceCloud")]
    BgpFinanceCloud,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Netmode {
    Public,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash, schemars::JsonSchema)]
pub enum DeletionPolicy {
    Delete,
    Retain,
}

impl DeletionPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            DeletionPolicy::Delete => "Delete",
            DeletionPolicy::Retain => "Retain",
        }
    }
}

fn api_name<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

impl EipSegmentSpec {
    pub fn adopts(&self) -> bool {
        self.segment_instance_id.is_some()
    }

    /// The policy in force: the spec's, or the safe default for how the segment came to be.
    pub fn effective_deletion_policy(&self) -> DeletionPolicy {
        self.deletion_policy.unwrap_or(if self.adopts() { DeletionPolicy::Retain } else { DeletionPolicy::Delete })
    }

    pub fn allocate_request(&self, client_token: &str) -> vpc_api::model::AllocateRequest {
        vpc_api::model::AllocateRequest {
            region_id: self.region_id.clone(),
            eip_mask: self.eip_mask.unwrap_or(28),
            client_token: client_token.to_string(),
            bandwidth: self.bandwidth,
            internet_charge_type: self.internet_charge_type.map(|v| api_name(&v)),
            isp: self.isp.map(|v| api_name(&v)),
            netmode: self.netmode.map(|v| api_name(&v)),
            zone: self.zone.clone(),
            resource_group_id: self.resource_group_id.clone(),
        }
    }
}

/// What the operator knows of the segment. Written only by the operator.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, Hash, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EipSegmentStatus {
    /// The segment's ID (eipsg-…), recorded as soon as the cloud returns it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment_instance_id: Option<String>,
    /// The segment's CIDR block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<String>,
    /// Number of EIPs in the segment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "int32"))]
    pub ip_count: Option<u32>,
    /// The lowest address among the segment's member EIPs, once they are recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_address: Option<String>,
    /// The highest address among the segment's member EIPs, once they are recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_address: Option<String>,
    /// The segment's member EIPs in address order, read once (DescribeEipAddresses) when the
    /// segment becomes Ready, for tools that bind them (SNAT entries, load balancers). A segment
    /// may hold fewer usable EIPs than its CIDR spans.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<SegmentAddress>,
    /// The cloud's status of the segment as last seen.
    /// - `Allocating`: accepted; only queries are allowed until it is Allocated.
    /// - `Allocated`: in service (also while a release is refused: the segment is still there).
    /// - `Releasing`: the cloud accepted its release.
    /// - `Released`: confirmed gone (DescribeEipSegment no longer returns it).
    /// - `Missing`: it vanished while the object still wanted it (released outside the operator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_status: Option<String>,
    /// The Alibaba Cloud account the segment lives in, recorded before the first call that could
    /// create or release it. No answer from another account is ever believed about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// Where the credentials for that account come from: `Operator` (the operator's own) or
    /// `Secret/<name>` (a Secret in this namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_source: Option<String>,
    /// The deletion policy in force (the spec's, or the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<String>,
    /// The generation of the spec last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// ClientToken of AllocateEipSegmentAddress: derived from the object's UID, or the one a
    /// restored object carried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocation_token: Option<String>,
    /// Set before an allocation request; cleared once its segment has been seen in the cloud, or
    /// when the cloud's answer to the token proves that nothing was created. While set, a segment
    /// may exist that the cloud does not show yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub allocation_requested_at: Option<String>,
    /// The request the pending allocation stands for: the account and endpoint it was sent to and
    /// its parameters. A refusal of a replay proves that nothing was created only when it answers
    /// this same request while the cloud still remembers the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocation_request: Option<String>,
    /// ClientToken of ReleaseEipSegmentAddress, derived from the object's UID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_token: Option<String>,
    /// When the release was first requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub release_requested_at: Option<String>,
    /// When the cloud accepted the release: from then on it cannot be undone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub release_accepted_at: Option<String>,
    /// The last cloud error, when the last attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<LastError>,
    /// Ready: the segment is allocated (or adopted) and recorded. Synced: whether the last cloud
    /// interaction succeeded; when not, its reason is the error class (Transient, Blocked, Terminal).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// One member EIP of the segment.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, Hash, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SegmentAddress {
    /// The EIP's allocation ID (eip-…), as NAT gateway SNAT entries and load balancers name it.
    pub allocation_id: String,
    /// Its IPv4 address.
    pub ip_address: String,
}

/// A condition, in the shape of Kubernetes' `metav1.Condition`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, Hash, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Ready or Synced.
    #[serde(rename = "type")]
    pub type_: String,
    /// True, False or Unknown.
    pub status: String,
    /// A CamelCase word for programs: why the condition is what it is. Ready: Allocated, Adopted;
    /// Allocating, AllocationQueued, Releasing, ReleaseQueued, ReleaseBlocked (a person must act,
    /// see the message), ReleaseFailed (configuration or credentials), SegmentInUse,
    /// SegmentMissing, AdoptionTargetNotFound, AccountUnknown, PolicyRefused, or the cloud's own
    /// status word (Released once a release is confirmed). Synced: Succeeded, Transient, Blocked,
    /// Terminal. deploy/RUNBOOK.md has a section for each Ready reason.
    pub reason: String,
    /// What it means and what to do, for people.
    pub message: String,
    /// When the status last changed (RFC 3339).
    #[schemars(extend("format" = "date-time"))]
    pub last_transition_time: String,
    /// The generation the condition was set from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// The last cloud error an object met.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, Hash, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastError {
    /// How the operator goes on.
    /// - `Transient`: throttling, a 5xx, a timeout, a malformed answer: retried with backoff.
    /// - `Blocked`: the cloud refuses until a person acts (a bound EIP, deletion protection, a prepaid
    ///   segment): retried slowly; the message says what to do.
    /// - `Terminal`: configuration or credentials are wrong: retried rarely, until they change.
    pub class: String,
    /// The cloud's error code, or the kind of failure (Timeout, ConnectionFailed, …).
    pub code: String,
    /// What it means and what to do.
    pub message: String,
    /// The cloud's RequestId, for a support ticket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The action that failed.
    pub action: String,
}

/// The CRD as YAML, as `eipsegment-operator crd` prints it.
pub fn crd_yaml() -> String {
    serde_yaml::to_string(&EipSegment::crd()).unwrap_or_default()
}
