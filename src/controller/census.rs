//! The census behind the object gauges, taken from the watch caches and the poller's last region
//! scans at each scrape: no call of its own.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use kube::ResourceExt;

use super::Context;
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
        let mut census = count(objects.iter().map(|o| o.as_ref()), chrono::Utc::now().timestamp_millis());
        census.unowned_segments = unowned(&objects, ctx.poller.unwatched_segments());
        census
    }
}

/// The gauges of these objects at `now_ms` (milliseconds since the epoch).
pub(super) fn count<'a>(objects: impl Iterator<Item = &'a EipSegment>, now_ms: i64) -> ObjectCensus {
    let mut census = ObjectCensus::default();
    for o in objects {
        let region = o.spec.region_id.clone();
        let status = o.status.clone().unwrap_or_default();
        let ready = conditions::get(&status, READY);
        let labels = ReadyLabels {
            region: region.clone(),
            ready: ready.map_or("Unknown", |c| c.status.as_str()).to_string(),
            reason: ready.map_or("None", |c| bounded_reason(&c.reason)).to_string(),
        };
        *census.by_ready.entry(labels).or_default() += 1;
        let class = conditions::get(&status, SYNCED).map_or("Unknown", |c| bounded_class(&c.reason));
        *census.by_synced.entry(SyncedLabels { region: region.clone(), class: class.to_string() }).or_default() += 1;
        // Every region served has its deletion gauges, 0 when nothing is being deleted there.
        let deletions = census.pending_deletions.entry(region.clone()).or_default();
        if let Some(asked) = &o.metadata.deletion_timestamp
            && o.finalizers().iter().any(|f| f == FINALIZER)
        {
            let age = (now_ms - asked.0.as_millisecond()).max(0) as f64 / 1000.0;
            *deletions = (deletions.0 + 1, deletions.1.max(age));
        }
        if status.allocation_requested_at.is_some() {
            *census.pending_allocations.entry(region).or_default() += 1;
        }
    }
    census
}

/// Per region, the scanned segments that the orphan audit would call unowned: named by no object
/// of their account, not on their way out, and not possibly a pending allocation's answer.
pub(super) fn unowned(objects: &[Arc<EipSegment>], scanned: Vec<(Key, Vec<Segment>)>) -> HashMap<String, i64> {
    let claims: Vec<Claim> = objects.iter().map(|o| Claim::of(o)).collect();
    let mut unowned: HashMap<String, i64> = HashMap::new();
    for (key, segments) in scanned {
        let findings = classify(&key.account, &key.region, &claims, &segments, CLOCK_SKEW);
        *unowned.entry(key.region).or_default() += findings.iter().filter(|f| f.verdict.is_unowned()).count() as i64;
    }
    unowned
}

/// A Ready reason as a label: the core's own words, and `CloudStatus` for a cloud status word the
/// operator does not know (which the cloud, not the operator, would otherwise choose).
fn bounded_reason(reason: &str) -> &str {
    if conditions::READY_REASONS.contains(&reason) { reason } else { "CloudStatus" }
}

fn bounded_class(reason: &str) -> &str {
    match reason {
        "Succeeded" | "Transient" | "Blocked" | "Terminal" => reason,
        _ => "Unknown",
    }
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
        let census = count(objects.iter().map(|o| o.as_ref()), 1_767_226_200_000);
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
        let unowned = unowned(&objects(), scanned);
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
        let mut census = count(objects.iter().map(|o| o.as_ref()), 1_767_226_200_000);
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
