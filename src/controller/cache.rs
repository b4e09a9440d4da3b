//! What the watch caches keep of each EipSegment. The operator holds every object it watches for
//! as long as it runs, so each is kept small: the metadata kube-runtime keys and filters objects by,
//! the figures the census counts at every scrape, and the rest of what a pass reads (the identity
//! annotations, spec and status) as JSON compressed against a dictionary made from a typical
//! object. A settled /28 object is kept in about 1 KB; decoded, it took 4 KB. A pass decodes its
//! object in a few microseconds.
//!
//! Nothing else of the object is kept: managedFields, labels, owner references and others'
//! annotations (kubectl's last applied copy, Argo CD's tracking) are never read.

use std::collections::BTreeMap;
use std::sync::{LazyLock, Mutex, MutexGuard};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::Resource;
use serde::{Deserialize, Deserializer, Serialize};

use super::census::Tally;
use super::claims;
use crate::cloud::model::{Action, SegmentStatus};
use crate::crd::{DeletionPolicy, EipSegment, EipSegmentSpec, EipSegmentStatus, SegmentAddress};
use crate::lifecycle::Source;
use crate::lifecycle::conditions::{self, message, reason};
use crate::lifecycle::identity::{self, ANNOTATIONS, Identity};
use crate::quota::QuotaSettings;
use crate::quota::queue::queued_message;

/// The cache's copy of one EipSegment.
#[derive(Clone, Resource)]
#[resource(inherit = EipSegment)]
pub struct Cached {
    /// Name, namespace, UID, resourceVersion, generation, creation and deletion times, finalizers.
    metadata: ObjectMeta,
    /// What the census counts of it.
    pub tally: Tally,
    /// The segments it names, for the index of who names each segment.
    pub names: Box<[Box<str>]>,
    /// This version of the object calls for a pass (see [`Cached::compare`]).
    pub changed: bool,
    /// What the other objects naming its segments decide on, digested (see [`claims::stance`]).
    stance: u32,
    /// This version changed that: the others are to decide again (see [`Cached::compare`]).
    pub stance_changed: bool,
    /// The identity annotations, spec and status, compressed.
    packed: Box<[u8]>,
}

/// A cached object that does not decode: its bytes were made by this process, so this is a defect,
/// never a state of the object.
#[derive(Debug, thiserror::Error)]
#[error("the cached copy of {0} does not decode: {1}")]
pub struct Unreadable(String, String);

/// What is packed: the part of the object a pass reads beyond the metadata kept as is.
#[derive(Serialize, Deserialize)]
struct Rest {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
    spec: EipSegmentSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<EipSegmentStatus>,
}

impl Cached {
    /// Keeps what a pass reads of `obj`.
    pub fn keep(obj: EipSegment) -> Result<Cached, Unreadable> {
        let tally = Tally::of(&obj);
        let names = claims::named(&obj).into_iter().map(String::into_boxed_str).collect();
        let stance = claims::stance(&obj);
        let EipSegment { metadata, spec, status } = obj;
        let mut annotations = metadata.annotations.unwrap_or_default();
        annotations.retain(|key, _| ANNOTATIONS.contains(&key.as_str()) || key == identity::PROOF);
        let metadata = ObjectMeta {
            name: metadata.name,
            namespace: metadata.namespace,
            uid: metadata.uid,
            resource_version: metadata.resource_version,
            generation: metadata.generation,
            creation_timestamp: metadata.creation_timestamp,
            deletion_timestamp: metadata.deletion_timestamp,
            finalizers: metadata.finalizers,
            ..ObjectMeta::default()
        };
        let json = serde_json::to_vec(&Rest { annotations, spec, status }).map_err(|e| unreadable(&metadata, e))?;
        let packed = lock(&CODEC.compressor).compress(&json).map_err(|e| unreadable(&metadata, e))?;
        Ok(Cached {
            metadata,
            tally,
            names,
            changed: true,
            stance,
            stance_changed: false,
            packed: packed.into_boxed_slice(),
        })
    }

    /// The object as the cache holds it.
    pub fn object(&self) -> Result<EipSegment, Unreadable> {
        let json = unpack(&self.packed).map_err(|e| unreadable(&self.metadata, e))?;
        let rest: Rest = serde_json::from_slice(&json).map_err(|e| unreadable(&self.metadata, e))?;
        let mut metadata = self.metadata.clone();
        metadata.annotations = (!rest.annotations.is_empty()).then_some(rest.annotations);
        Ok(EipSegment { metadata, spec: rest.spec, status: rest.status })
    }

    /// Notes whether this version calls for a pass, against the version the cache holds now: a
    /// new object does, and so does a change of the generation (the spec), the deletion request or
    /// the finalizers. Status and annotation writes do not, so the operator's own writes never wake
    /// it up. Apart from that, it notes whether the version changed the object's stance towards
    /// the others that name its segments.
    pub fn compare(&mut self, before: Option<&Cached>) {
        let (m, b) = (&self.metadata, before.map(|b| &b.metadata));
        self.changed = b.is_none_or(|b| {
            (&b.uid, b.generation, &b.deletion_timestamp, &b.finalizers)
                != (&m.uid, m.generation, &m.deletion_timestamp, &m.finalizers)
        });
        self.stance_changed = before.is_some_and(|b| b.stance != self.stance);
    }

    /// The name and namespace alone, to trigger a pass with: the controller's queue keeps the
    /// reference a trigger makes (with the resourceVersion and UID when the object has them) for
    /// every object at once at a restart, while a pass reads the object from the cache anyway.
    pub fn named_only(&self) -> Cached {
        let m = &self.metadata;
        let metadata = ObjectMeta { name: m.name.clone(), namespace: m.namespace.clone(), ..ObjectMeta::default() };
        Cached {
            metadata,
            tally: self.tally.clone(),
            names: Box::default(),
            changed: self.changed,
            stance: self.stance,
            stance_changed: self.stance_changed,
            packed: Box::default(),
        }
    }

    /// Bytes packed, for tests of the cache's size.
    #[cfg(test)]
    fn packed_len(&self) -> usize {
        self.packed.len()
    }
}

fn unreadable(meta: &ObjectMeta, e: impl std::fmt::Display) -> Unreadable {
    let name = format!("{}/{}", meta.namespace.as_deref().unwrap_or(""), meta.name.as_deref().unwrap_or(""));
    Unreadable(name, e.to_string())
}

fn unpack(packed: &[u8]) -> std::io::Result<Vec<u8>> {
    let size = zstd::zstd_safe::get_frame_content_size(packed)
        .ok()
        .flatten()
        .ok_or_else(|| std::io::Error::other("no content size in the frame"))?;
    lock(&CODEC.decompressor).decompress(packed, size as usize)
}

impl std::fmt::Debug for Cached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cached")
            .field("metadata", &self.metadata)
            .field("tally", &self.tally)
            .field("names", &self.names)
            .field("changed", &self.changed)
            .field("packed", &self.packed.len())
            .finish()
    }
}

/// The object as the watch delivers it: only what is kept is decoded (managedFields, the largest
/// part, is skipped unread).
#[derive(Deserialize)]
struct Incoming {
    metadata: IncomingMeta,
    spec: EipSegmentSpec,
    #[serde(default)]
    status: Option<EipSegmentStatus>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IncomingMeta {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    generation: Option<i64>,
    creation_timestamp: Option<Time>,
    deletion_timestamp: Option<Time>,
    finalizers: Option<Vec<String>>,
    annotations: Option<BTreeMap<String, String>>,
}

impl<'de> Deserialize<'de> for Cached {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let Incoming { metadata: m, spec, status } = Incoming::deserialize(deserializer)?;
        let metadata = ObjectMeta {
            name: m.name,
            namespace: m.namespace,
            uid: m.uid,
            resource_version: m.resource_version,
            generation: m.generation,
            creation_timestamp: m.creation_timestamp,
            deletion_timestamp: m.deletion_timestamp,
            finalizers: m.finalizers,
            annotations: m.annotations,
            ..ObjectMeta::default()
        };
        Cached::keep(EipSegment { metadata, spec, status }).map_err(serde::de::Error::custom)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One compression context each way, shared: a call takes microseconds, so a lock is cheaper than
/// a context per thread.
struct Codec {
    compressor: Mutex<zstd::bulk::Compressor<'static>>,
    decompressor: Mutex<zstd::bulk::Decompressor<'static>>,
}

static CODEC: LazyLock<Codec> = LazyLock::new(|| {
    let dictionary = typical_objects();
    // Level 1: higher levels gain a few bytes an object at twice the time.
    let compressor = zstd::bulk::Compressor::with_dictionary(1, &dictionary);
    let decompressor = zstd::bulk::Decompressor::with_dictionary(&dictionary);
    match (compressor, decompressor) {
        (Ok(compressor), Ok(decompressor)) => {
            Codec { compressor: Mutex::new(compressor), decompressor: Mutex::new(decompressor) }
        }
        // Only an allocation failure makes a context fail; nothing works then.
        (Err(e), _) | (_, Err(e)) => panic!("zstd context: {e}"),
    }
});

/// The dictionary: what objects pack to on their way through the lifecycle (an allocation and a
/// release each queued for the quota, then under way, and a settled /28 segment last, as most
/// are), so that what objects share (field names, condition words and messages) costs almost
/// nothing and only what sets one apart is stored. Its words are the lifecycle's own, and the
/// quota's at its defaults; an object that differs packs a little larger, never wrongly.
fn typical_objects() -> Vec<u8> {
    let (id, uid) = ("eipsg-2zett8ba055tbsxme0000", "00000000-0000-0000-0000-000000000000");
    let allocation_queued = allocation_queued(uid);
    let allocating = allocating(&allocation_queued, id);
    let settled = settled(&allocation_queued, id);
    let release_queued = release_queued(&settled, uid);
    let releasing = releasing(&release_queued, id);
    let annotations: BTreeMap<String, String> = Identity::of_status(&settled)
        .annotations()
        .into_iter()
        .filter_map(|(key, value)| Some((key.to_string(), value?.to_string())))
        .collect();
    let spec = EipSegmentSpec { region_id: "cn-hangzhou".into(), eip_mask: Some(28), ..EipSegmentSpec::default() };
    [allocation_queued, allocating, release_queued, releasing, settled]
        .into_iter()
        .flat_map(|status| {
            let rest = Rest { annotations: annotations.clone(), spec: spec.clone(), status: Some(status) };
            serde_json::to_vec(&rest).unwrap_or_default()
        })
        .collect()
}

/// The time of every typical object's markers and conditions.
const TYPICAL_TIME: &str = "2026-01-01T00:00:00Z";

/// The quota's message at the default quota of `action`.
fn typical_queue_message(action: Action) -> String {
    queued_message(action, QuotaSettings::default().of(action))
}

/// An allocation requested and waiting for its place within the quota.
fn allocation_queued(uid: &str) -> EipSegmentStatus {
    let mut status = EipSegmentStatus {
        account_id: Some("1234567890123456".into()),
        credentials_source: Some(Source::Operator.to_string()),
        deletion_policy: Some(DeletionPolicy::Delete.as_str().into()),
        observed_generation: Some(1),
        allocation_token: Some(identity::allocation_token(uid)),
        allocation_requested_at: Some(TYPICAL_TIME.into()),
        ..EipSegmentStatus::default()
    };
    let message = typical_queue_message(Action::AllocateEipSegmentAddress);
    conditions::set_ready(&mut status, false, reason::ALLOCATION_QUEUED, &message, TYPICAL_TIME);
    status
}

/// The allocation accepted, its segment on its way.
fn allocating(queued: &EipSegmentStatus, id: &str) -> EipSegmentStatus {
    let mut status = EipSegmentStatus {
        segment_instance_id: Some(id.into()),
        cloud_status: Some(SegmentStatus::Allocating.as_str().into()),
        ..queued.clone()
    };
    conditions::set_ready(&mut status, false, reason::ALLOCATING, &message::allocating(id), TYPICAL_TIME);
    conditions::set_synced(&mut status, None, TYPICAL_TIME);
    status
}

/// A settled /28 segment with its 16 member EIPs.
fn settled(queued: &EipSegmentStatus, id: &str) -> EipSegmentStatus {
    let cidr = "47.100.0.0/28";
    let mut status = EipSegmentStatus {
        segment_instance_id: Some(id.into()),
        segment: Some(cidr.into()),
        ip_count: Some(16),
        first_address: Some("47.100.0.0".into()),
        last_address: Some("47.100.0.15".into()),
        addresses: (0..16)
            .map(|i| SegmentAddress {
                allocation_id: format!("eip-2zeerraiwb7ujxscd00{i:02}"),
                ip_address: format!("47.100.0.{i}"),
            })
            .collect(),
        cloud_status: Some(SegmentStatus::Allocated.as_str().into()),
        allocation_requested_at: None,
        ..queued.clone()
    };
    conditions::set_ready(&mut status, true, reason::ALLOCATED, &message::allocated(id, cidr), TYPICAL_TIME);
    conditions::set_synced(&mut status, None, TYPICAL_TIME);
    status
}

/// A release requested and waiting for its place within the quota.
fn release_queued(settled: &EipSegmentStatus, uid: &str) -> EipSegmentStatus {
    let mut status = EipSegmentStatus {
        release_token: Some(identity::release_token(uid)),
        release_requested_at: Some(TYPICAL_TIME.into()),
        ..settled.clone()
    };
    let message = typical_queue_message(Action::ReleaseEipSegmentAddress);
    conditions::set_ready(&mut status, false, reason::RELEASE_QUEUED, &message, TYPICAL_TIME);
    status
}

/// The release accepted, its confirmation awaited.
fn releasing(queued: &EipSegmentStatus, id: &str) -> EipSegmentStatus {
    let mut status = EipSegmentStatus {
        release_accepted_at: Some(TYPICAL_TIME.into()),
        cloud_status: Some(SegmentStatus::Releasing.as_str().into()),
        ..queued.clone()
    };
    conditions::set_ready(&mut status, false, reason::RELEASING, &message::release_requested(id), TYPICAL_TIME);
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::identity::{ACCOUNT_ID, SEGMENT_ID};
    use kube::ResourceExt;

    /// An ID as the cloud makes them: a prefix and 21 random lowercase letters and digits.
    fn random_id(prefix: &str, seed: &mut u64) -> String {
        let chars: String = (0..21)
            .map(|_| {
                *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[(*seed >> 33) as usize % 36])
            })
            .collect();
        format!("{prefix}-{chars}")
    }

    fn settled(name: &str, n: u32) -> serde_json::Value {
        let mut seed = u64::from(n) + 1;
        let addresses: Vec<serde_json::Value> = (0..16)
            .map(|i| serde_json::json!({"allocationId": random_id("eip", &mut seed), "ipAddress": format!("39.{}.{}.{i}", n / 256, n % 256)}))
            .collect();
        serde_json::json!({
            "apiVersion": "eipsegment.io/v1alpha1", "kind": "EipSegment",
            "metadata": {
                "name": name, "namespace": "ns", "uid": format!("0c9f3e2a-51d4-4b7e-9a61-{n:012}"), "resourceVersion": "7",
                "generation": 2, "creationTimestamp": "2026-01-01T00:00:00Z",
                "finalizers": [crate::crd::FINALIZER],
                "labels": {"app.kubernetes.io/instance": "edge"},
                "annotations": {SEGMENT_ID: format!("eipsg-bp1{n:08}k3x9"), ACCOUNT_ID: "5123456789012345",
                                "argocd.argoproj.io/tracking-id": "edge:x",
                                "kubectl.kubernetes.io/last-applied-configuration": "{}"},
                "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "o", "uid": "o"}],
                "managedFields": [{"manager": "kubectl", "operation": "Apply", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}],
            },
            "spec": {"regionId": "cn-shanghai", "eipMask": 28},
            "status": {
                "segmentInstanceId": format!("eipsg-bp1{n:08}k3x9"), "segment": "39.0.0.0/28", "ipCount": 16,
                "firstAddress": "39.0.0.0", "lastAddress": "39.0.0.15", "addresses": addresses,
                "cloudStatus": "Allocated", "accountId": "5123456789012345", "credentialsSource": "Operator",
                "deletionPolicy": "Delete", "observedGeneration": 2,
                "conditions": [
                    {"type": "Ready", "status": "True", "reason": "Allocated", "message": format!("segment eipsg-bp1{n:08}k3x9 (39.0.0.0/28) is allocated"), "lastTransitionTime": "2026-01-01T00:00:09Z", "observedGeneration": 2},
                    {"type": "Synced", "status": "True", "reason": "Succeeded", "message": "the last cloud call succeeded", "lastTransitionTime": "2026-01-01T00:00:09Z", "observedGeneration": 2},
                ],
            },
        })
    }

    #[test]
    fn the_cache_keeps_what_a_pass_reads_and_drops_the_rest() {
        let json = settled("a", 7);
        let full: EipSegment = serde_json::from_value(json.clone()).unwrap();
        let cached: Cached = serde_json::from_value(json).unwrap();
        let obj = cached.object().unwrap();
        assert_eq!((&obj.spec, &obj.status), (&full.spec, &full.status));
        let keys: Vec<&String> = obj.annotations().keys().collect();
        assert_eq!(keys, [ACCOUNT_ID, SEGMENT_ID], "only the identity annotations");
        assert!(obj.metadata.labels.is_none() && obj.metadata.owner_references.is_none());
        assert!(obj.metadata.managed_fields.is_none());
        let kept = |o: &EipSegment| {
            (
                o.name_any(),
                o.namespace(),
                o.uid(),
                o.resource_version(),
                o.metadata.generation,
                o.metadata.creation_timestamp.clone(),
                o.metadata.deletion_timestamp.clone(),
                o.finalizers().to_vec(),
            )
        };
        assert_eq!(kept(&obj), kept(&full));
        assert_eq!(
            (cached.meta().name.as_deref(), cached.uid()),
            (Some("a"), full.uid()),
            "kube-runtime keys by these"
        );
    }

    #[test]
    fn an_object_without_status_or_annotations_comes_back_as_it_was() {
        let json = serde_json::json!({"metadata": {"name": "b", "namespace": "ns", "uid": "u"}, "spec": {"regionId": "cn-hangzhou", "segmentInstanceId": "eipsg-x"}});
        let cached: Cached = serde_json::from_value(json.clone()).unwrap();
        let obj = cached.object().unwrap();
        assert_eq!(
            serde_json::to_value(&obj).unwrap(),
            serde_json::to_value(serde_json::from_value::<EipSegment>(json).unwrap()).unwrap()
        );
    }

    #[test]
    fn an_entry_fits_the_allocator_size_class_below_half_a_kib() {
        // The store holds each in an Arc (two counters more): jemalloc's classes are 384, 448, 512.
        assert!(std::mem::size_of::<Cached>() + 16 <= 448, "{}", std::mem::size_of::<Cached>());
    }

    #[test]
    fn a_trigger_names_the_object_and_carries_nothing_more() {
        let cached: Cached = serde_json::from_value(settled("s", 7)).unwrap();
        let full = kube::runtime::reflector::ObjectRef::from_obj(&cached);
        let trigger = kube::runtime::reflector::ObjectRef::from_obj(&cached.named_only());
        assert!(full.extra.uid.is_some() && full.extra.resource_version.is_some(), "{full:?}");
        assert_eq!(trigger, full, "the same object");
        assert_eq!((trigger.extra.uid, trigger.extra.resource_version), (None, None));
    }

    #[test]
    fn a_settled_object_packs_to_a_few_hundred_bytes() {
        let sizes: Vec<usize> =
            (0..50).map(|n| serde_json::from_value::<Cached>(settled("s", n)).unwrap().packed_len()).collect();
        let largest = *sizes.iter().max().unwrap();
        assert!(largest < 600, "packed sizes {sizes:?}");
    }

    #[test]
    fn only_the_spec_deletion_and_finalizers_call_for_a_pass() {
        let before: Cached = serde_json::from_value(settled("a", 1)).unwrap();
        let version = |edit: serde_json::Value| {
            let mut json = settled("a", 1);
            json_patch::merge(&mut json, &edit);
            let mut o: Cached = serde_json::from_value(json).unwrap();
            o.compare(Some(&before));
            o.changed
        };
        assert!(!version(
            serde_json::json!({"metadata": {"resourceVersion": "8"}, "status": {"cloudStatus": "Releasing"}})
        ));
        assert!(!version(serde_json::json!({"metadata": {"annotations": {SEGMENT_ID: "eipsg-other"}}})));
        assert!(version(serde_json::json!({"metadata": {"generation": 3}})));
        assert!(version(serde_json::json!({"metadata": {"deletionTimestamp": "2026-01-02T00:00:00Z"}})));
        assert!(version(serde_json::json!({"metadata": {"finalizers": []}})));
        assert!(version(serde_json::json!({"metadata": {"uid": "a-new-object-of-the-same-name"}})));
        let mut first: Cached = serde_json::from_value(settled("a", 1)).unwrap();
        first.compare(None);
        assert!(first.changed, "an object the cache did not hold");
    }

    #[test]
    fn an_object_on_its_way_out_packs_small_too() {
        let mut json = settled("r", 3);
        let message = typical_queue_message(Action::ReleaseEipSegmentAddress);
        json_patch::merge(
            &mut json,
            &serde_json::json!({"metadata": {"deletionTimestamp": "2026-01-02T00:00:00Z"},
                "status": {"releaseToken": "release-0c9f3e2a-51d4-4b7e-9a61-000000000003", "releaseRequestedAt": "2026-01-02T00:00:01Z",
                           "conditions": [{"type": "Ready", "status": "False", "reason": "ReleaseQueued", "message": message,
                                           "lastTransitionTime": "2026-01-02T00:00:01Z", "observedGeneration": 2}]}}),
        );
        let cached: Cached = serde_json::from_value(json).unwrap();
        assert!(cached.packed_len() < 600, "{}", cached.packed_len());
    }

    #[test]
    fn the_dictionary_holds_each_stage_in_the_lifecycles_words() {
        let dictionary = String::from_utf8(typical_objects()).unwrap();
        let stages = [
            (reason::ALLOCATION_QUEUED, typical_queue_message(Action::AllocateEipSegmentAddress)),
            (reason::ALLOCATING, message::allocating("eipsg-2zett8ba055tbsxme0000")),
            (reason::ALLOCATED, message::allocated("eipsg-2zett8ba055tbsxme0000", "47.100.0.0/28")),
            (reason::RELEASE_QUEUED, typical_queue_message(Action::ReleaseEipSegmentAddress)),
            (reason::RELEASING, message::release_requested("eipsg-2zett8ba055tbsxme0000")),
        ];
        for (reason, message) in stages {
            let condition = format!(r#""reason":"{reason}","message":"{message}""#);
            assert!(dictionary.contains(&condition), "{condition} not in {dictionary}");
        }
        assert!(dictionary.contains("60 calls per 60 s per credentials and region"), "the quota's own words");
    }

    #[test]
    fn a_spec_the_types_refuse_is_refused_as_before() {
        let json = serde_json::json!({"metadata": {"name": "c"}, "spec": {"regionId": 7}});
        assert!(serde_json::from_value::<Cached>(json).is_err());
    }
}
