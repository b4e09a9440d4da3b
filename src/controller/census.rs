//! The census behind the object gauges, taken from the watch caches and the poller's last region
//! scans at each scrape: no call of its own. Each cached object carries its [`Tally`], so a scrape
//! decodes nothing but the few objects a scanned segment or a pending allocation concerns.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock, Weak};

use kube::ResourceExt;
use tracing::warn;

use super::Context;
use super::cache::Cached;
use crate::audit::classify::{CLOCK_SKEW, Claim, classify};
use crate::cloud::model::Segment;
use crate::crd::{EipSegment, FINALIZER};
use crate::lifecycle::conditions::{self, READY, SYNCED};
use crate::poller::Key;
use crate::telemetry::{Census, ObjectCensus, ReadyLabels, SyncedLabels};

/// Counts through the context it was made for; nothing once that is gone.
pub(super) struct Counting(pub Weak<Context>);

impl Census for Counting {
    fn take(&self) -> ObjectCensus {
        let Some(ctx) = self.0.upgrade() else { return ObjectCensus::default() };
        let objects = ctx.cached(|_| true);
        let mut census = count(objects.iter().map(|o| &o.tally), chrono::Utc::now().timestamp_millis());
        let scanned = ctx.poller.unwatched_segments();
        census.unowned_segments = unowned(&claims_on(&ctx, &objects, &scanned), scanned);
        census
    }
}

/// What the census counts of one object, taken when the cache keeps it. Ten thousand are kept:
/// labels are indices into their bounded sets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tally {
    region: Box<str>,
    /// When its deletion was asked (milliseconds since the epoch), if it holds the finalizer.
    deletion_asked_ms: i64,
    deleting: bool,
    /// The Ready condition's status and reason, and the Synced class.
    ready: Label,
    reason: Label,
    synced: Label,
    allocation_pending: bool,
    /// It names no segment but one may be on its way (the orphan audit's pending allocation).
    awaits_segment: bool,
}

/// One of a bounded set of label values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Label(u8);

const READY_STATUSES: &[&str] = &["True", "False", "Unknown"];
const SYNCED_CLASSES: &[&str] = &["Succeeded", "Transient", "Blocked", "Terminal", "Unknown"];
/// Ready reasons: the core's own words, `CloudStatus` for a cloud status word the operator does not
/// know (which the cloud, not the operator, would otherwise choose), and `None` without a condition.
static REASONS: LazyLock<Vec<&'static str>> =
    LazyLock::new(|| conditions::READY_REASONS.iter().copied().chain(["CloudStatus", "None"]).collect());

impl Label {
    /// `value` in `set`, else `other` (which the set holds).
    fn of(set: &[&str], value: &str, other: &str) -> Label {
        let at = |v: &str| set.iter().position(|known| *known == v);
        Label(at(value).or_else(|| at(other)).unwrap_or(0) as u8)
    }

    fn name(self, set: &[&'static str]) -> &'static str {
        set.get(usize::from(self.0)).copied().unwrap_or("Unknown")
    }
}

impl Tally {
    pub fn of(o: &EipSegment) -> Tally {
        let status = o.status.as_ref();
        let ready = status.and_then(|s| conditions::get(s, READY));
        let synced = status.and_then(|s| conditions::get(s, SYNCED));
        let asked = o.metadata.deletion_timestamp.as_ref().filter(|_| o.finalizers().iter().any(|f| f == FINALIZER));
        Tally {
            region: o.spec.region_id.as_str().into(),
            deletion_asked_ms: asked.map_or(0, |t| t.0.as_millisecond()),
            deleting: asked.is_some(),
            ready: Label::of(READY_STATUSES, ready.map_or("Unknown", |c| &c.status), "Unknown"),
            reason: Label::of(&REASONS, ready.map_or("None", |c| &c.reason), "CloudStatus"),
            synced: Label::of(SYNCED_CLASSES, synced.map_or("Unknown", |c| &c.reason), "Unknown"),
            allocation_pending: status.is_some_and(|s| s.allocation_requested_at.is_some()),
            awaits_segment: Claim::of(o, None).pending.is_some(),
        }
    }
}

/// The gauges of these objects at `now_ms` (milliseconds since the epoch).
pub(super) fn count<'a>(tallies: impl Iterator<Item = &'a Tally>, now_ms: i64) -> ObjectCensus {
    let mut by_ready: HashMap<(&str, &str, &str), i64> = HashMap::new();
    let mut by_synced: HashMap<(&str, &str), i64> = HashMap::new();
    let mut deletions: HashMap<&str, (i64, f64)> = HashMap::new();
    let mut allocations: HashMap<&str, i64> = HashMap::new();
    for t in tallies {
        let (ready, reason) = (t.ready.name(READY_STATUSES), t.reason.name(&REASONS));
        *by_ready.entry((&t.region, ready, reason)).or_default() += 1;
        *by_synced.entry((&t.region, t.synced.name(SYNCED_CLASSES))).or_default() += 1;
        // Every region served has its deletion gauges, 0 when nothing is being deleted there.
        let pending = deletions.entry(&t.region).or_default();
        if t.deleting {
            let age = (now_ms - t.deletion_asked_ms).max(0) as f64 / 1000.0;
            *pending = (pending.0 + 1, pending.1.max(age));
        }
        if t.allocation_pending {
            *allocations.entry(&t.region).or_default() += 1;
        }
    }
    let ready_labels = |(region, ready, reason): (&str, &str, &str)| ReadyLabels {
        region: region.into(),
        ready: ready.into(),
        reason: reason.into(),
    };
    ObjectCensus {
        by_ready: by_ready.into_iter().map(|(k, n)| (ready_labels(k), n)).collect(),
        by_synced: by_synced
            .into_iter()
            .map(|((region, class), n)| (SyncedLabels { region: region.into(), class: class.into() }, n))
            .collect(),
        pending_deletions: deletions.into_iter().map(|(region, d)| (region.into(), d)).collect(),
        pending_allocations: allocations.into_iter().map(|(region, n)| (region.into(), n)).collect(),
        unowned_segments: HashMap::new(),
    }
}

/// The claims the scanned segments' verdicts depend on: those of the objects that name one of
/// them, and those of objects whose pending allocation one may be the answer to.
fn claims_on(ctx: &Context, objects: &[Arc<Cached>], scanned: &[(Key, Vec<Segment>)]) -> Vec<Claim> {
    let segments = scanned.iter().flat_map(|(_, segments)| segments);
    let naming = segments.flat_map(|s| ctx.naming(&s.instance_id));
    let awaiting = objects.iter().filter(|o| o.tally.awaits_segment).cloned();
    let mut seen = HashSet::new();
    naming
        .chain(awaiting)
        .filter(|o| seen.insert(Arc::as_ptr(o)))
        .filter_map(|o| match o.object() {
            Ok(obj) => Some(Claim::of(&obj, Some(&ctx.identity))),
            Err(e) => {
                warn!(error = %e, "left out of the census");
                None
            }
        })
        .collect()
}

/// Per region, the scanned segments that the orphan audit would call unowned: named by no object
/// of their account, not on their way out, and not possibly a pending allocation's answer.
pub(super) fn unowned(claims: &[Claim], scanned: Vec<(Key, Vec<Segment>)>) -> HashMap<String, i64> {
    let mut unowned: HashMap<String, i64> = HashMap::new();
    for (key, segments) in scanned {
        let findings = classify(&key.account, &key.region, claims, &segments, CLOCK_SKEW);
        *unowned.entry(key.region).or_default() += findings.iter().filter(|f| f.verdict.is_unowned()).count() as i64;
    }
    unowned
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::cloud::model::SegmentStatus;
    use crate::telemetry::Metrics;

    fn object(name: &str, region: &str, extra: serde_json::Value) -> Arc<EipSegment> {
        let mut o = serde_json::json!({
            "apiVersion": "eipsegment.io/v1alpha1", "kind": "EipSegment",
            "metadata": {"name": name, "namespace": "team"},
            "spec": {"regionId": region, "eipMask": 28},
        });
        json_patch::merge(&mut o, &extra);
        Arc::new(serde_json::from_value(o).unwrap())
    }

    fn ready(status: &str, reason: &str) -> serde_json::Value {
        serde_json::json!([{"type": "Ready", "status": status, "reason": reason, "message": "", "lastTransitionTime": "t"},
                           {"type": "Synced", "status": "False", "reason": "Blocked", "message": "", "lastTransitionTime": "t"}])
    }

    fn objects() -> Vec<Arc<EipSegment>> {
        let deleting = |at: &str| serde_json::json!({"deletionTimestamp": at, "finalizers": [FINALIZER]});
        vec![
            object(
                "a",
                "cn-hangzhou",
                serde_json::json!({"status": {"segmentInstanceId": "eipsg-a", "conditions": ready("True", "Allocated")}}),
            ),
            object(
                "b",
                "cn-hangzhou",
                serde_json::json!({"metadata": deleting("2026-01-01T00:00:00Z"),
                "status": {"segmentInstanceId": "eipsg-b", "conditions": ready("False", "ReleaseBlocked")}}),
            ),
            object(
                "c",
                "cn-hangzhou",
                serde_json::json!({"metadata": deleting("2026-01-01T00:09:00Z"),
                "status": {"conditions": ready("False", "Maintaining")}}),
            ),
            object("d", "cn-beijing", serde_json::json!({"status": {"allocationRequestedAt": "2026-01-01T00:00:00Z"}})),
            object(
                "e",
                "cn-beijing",
                serde_json::json!({"metadata": {"annotations": {"eipsegment.io/segment-id": "eipsg-e"}},
                "spec": {"eipMask": null, "segmentInstanceId": "eipsg-f"}}),
            ),
        ]
    }

    #[test]
    fn objects_are_counted_by_condition_with_bounded_labels() {
        let objects = objects();
        // 2026-01-01T00:10:00Z
        let tallies: Vec<Tally> = objects.iter().map(|o| Tally::of(o)).collect();
        let census = count(tallies.iter(), 1_767_226_200_000);
        let ready = |region: &str, ready: &str, reason: &str| {
            census
                .by_ready
                .get(&ReadyLabels { region: region.into(), ready: ready.into(), reason: reason.into() })
                .copied()
        };
        assert_eq!(ready("cn-hangzhou", "True", "Allocated"), Some(1));
        assert_eq!(ready("cn-hangzhou", "False", "ReleaseBlocked"), Some(1));
        assert_eq!(ready("cn-hangzhou", "False", "CloudStatus"), Some(1), "a cloud word is not a label");
        assert_eq!(ready("cn-beijing", "Unknown", "None"), Some(2));
        let synced =
            |class: &str| census.by_synced.get(&SyncedLabels { region: "cn-hangzhou".into(), class: class.into() });
        assert_eq!(synced("Blocked"), Some(&3));
        assert_eq!(census.pending_deletions.get("cn-hangzhou"), Some(&(2, 600.0)), "two, the oldest 10 minutes old");
        assert_eq!(census.pending_deletions.get("cn-beijing"), Some(&(0, 0.0)), "0 where nothing is deleted");
        assert_eq!(census.pending_allocations.get("cn-beijing"), Some(&1));
    }

    #[test]
    fn a_scanned_segment_is_unowned_as_the_audit_says() {
        let key = |account: &str, region: &str| Key { account: account.into(), region: region.into() };
        let allocated = |id: &str| Segment::sample(id, SegmentStatus::Allocated);
        let scanned = vec![
            (key("111", "cn-hangzhou"), vec![allocated("eipsg-a"), allocated("eipsg-b"), allocated("eipsg-x")]),
            (key("111", "cn-hangzhou"), vec![Segment::sample("eipsg-y", SegmentStatus::Releasing)]),
            (key("111", "cn-beijing"), vec![allocated("eipsg-e"), allocated("eipsg-f")]),
            (key("222", "cn-beijing"), vec![allocated("eipsg-z")]),
        ];
        let claims: Vec<Claim> = objects().iter().map(|o| Claim::of(o, None)).collect();
        let unowned = unowned(&claims, scanned);
        assert_eq!(unowned.get("cn-hangzhou"), Some(&1), "named objects own theirs; a Releasing one is on its way out");
        // In cn-beijing, eipsg-e (annotation) and eipsg-f (adoption) are owned; eipsg-z, with no
        // creation time, may be the answer to d's pending allocation.
        assert_eq!(unowned.get("cn-beijing"), Some(&0));
    }

    struct Fixed(ObjectCensus);

    impl Census for Fixed {
        fn take(&self) -> ObjectCensus {
            self.0.clone()
        }
    }

    #[test]
    fn the_census_is_served_under_the_documented_names() {
        let metrics = Metrics::default();
        assert!(!metrics.encode().contains("eipsegment_objects{"), "nothing before the controller runs");
        let objects = objects();
        let tallies: Vec<Tally> = objects.iter().map(|o| Tally::of(o)).collect();
        let mut census = count(tallies.iter(), 1_767_226_200_000);
        census.unowned_segments.insert("cn-hangzhou".into(), 3);
        metrics.count_with(Arc::new(Fixed(census)));
        let text = metrics.encode();
        for line in [
            r#"eipsegment_objects{region="cn-hangzhou",ready="False",reason="ReleaseBlocked"} 1"#,
            r#"eipsegment_objects_synced{region="cn-hangzhou",class="Blocked"} 3"#,
            r#"eipsegment_pending_deletions{region="cn-hangzhou"} 2"#,
            r#"eipsegment_oldest_pending_deletion_seconds{region="cn-hangzhou"} 600.0"#,
            r#"eipsegment_pending_allocations{region="cn-beijing"} 1"#,
            r#"eipsegment_unowned_segments{region="cn-hangzhou"} 3"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
    }
}
