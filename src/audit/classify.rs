//! Which segment is whose: the pure part of the audit. From what every EipSegment in the cluster
//! says and one region's complete listing, each segment of the audited account gets a verdict.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};

use crate::cloud::model::{Segment, SegmentPage, SegmentStatus};
use crate::crd::{EipSegment, EipSegmentStatus};
use crate::lifecycle::identity::Identity;
use crate::proof::IdentityKey;

/// How far the cloud's clock may run behind the cluster's beyond what its answers' dates show: a
/// segment created up to this long (plus the measured difference) before a pending allocation's
/// marker may still be the answer to it.
pub const CLOCK_SKEW: Duration = Duration::from_secs(300);

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectRef {
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// An allocation the object asked for whose segment it has not recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pending {
    /// Since status.allocationRequestedAt.
    Since(DateTime<Utc>),
    /// Since a time nobody knows: a marker that cannot be read, or a restored allocation (the
    /// backup kept its token but not status), which the operator marks pending again.
    AnyTime,
}

/// What one EipSegment says about segments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub object: ObjectRef,
    pub region: String,
    /// The segments it established: status.segmentInstanceId, and the eipsegment.io/segment-id
    /// annotation the operator proves it wrote (a restored object's). An adoption that names one in
    /// spec only, or an annotation anyone else wrote, owns nothing.
    pub names: BTreeSet<String>,
    /// The account it recorded: status.accountId, else the eipsegment.io/account-id annotation
    /// (status wins, as when the operator restores an identity).
    pub account: Option<String>,
    /// Set only while it names no segment.
    pub pending: Option<Pending>,
    /// status.allocationRequestedAt as written.
    pub requested_at: Option<String>,
}

impl Claim {
    /// What `obj` says, its identity annotations proven with `key`; without a key, taken as written
    /// (only where counting an object too many is harmless).
    pub fn of(obj: &EipSegment, key: Option<&IdentityKey>) -> Claim {
        let no_annotations = BTreeMap::new();
        let written = obj.metadata.annotations.as_ref().unwrap_or(&no_annotations);
        let (namespace, name) =
            (obj.metadata.namespace.as_deref().unwrap_or(""), obj.metadata.name.as_deref().unwrap_or(""));
        let annotations = match key {
            Some(key) => key.read(namespace, name, written, obj.status.as_ref()).identity,
            None => Identity::from_annotations(written),
        };
        let status = obj.status.clone().unwrap_or_default();
        let names: BTreeSet<String> = [&status.segment_instance_id, &annotations.segment_id]
            .into_iter()
            .flatten()
            .map(|id| id.trim().to_string())
            .filter(|id| !id.is_empty())
            .collect();
        let account = non_blank(status.account_id.as_deref()).or(annotations.account_id.clone());
        let pending = if names.is_empty() { pending(&status, &annotations) } else { None };
        Claim {
            object: ObjectRef {
                namespace: obj.metadata.namespace.clone().unwrap_or_default(),
                name: obj.metadata.name.clone().unwrap_or_default(),
            },
            region: obj.spec.region_id.clone(),
            names,
            account,
            pending,
            requested_at: status.allocation_requested_at.clone(),
        }
    }

    /// Whether what it says counts for segments of `account`.
    fn counts_for(&self, account: &str) -> bool {
        self.account.as_deref().is_none_or(|a| a == account)
    }
}

fn non_blank(value: Option<&str>) -> Option<String> {
    value.map(str::trim).filter(|v| !v.is_empty()).map(str::to_string)
}

fn pending(status: &EipSegmentStatus, annotations: &Identity) -> Option<Pending> {
    if let Some(at) = &status.allocation_requested_at {
        return Some(parse_time(at).map_or(Pending::AnyTime, Pending::Since));
    }
    // What the operator itself marks pending again when it reads the object (lifecycle::pass):
    // the backup may predate the answer, so its segment may exist, made at any time.
    let restored_allocation = status.allocation_token.is_none()
        && annotations.allocation_token.is_some()
        && annotations.release_token.is_none();
    restored_allocation.then_some(Pending::AnyTime)
}

/// RFC 3339, or the minute-precision form some Alibaba APIs answer with (`2020-03-06T12:30Z`).
pub fn parse_time(value: &str) -> Option<DateTime<Utc>> {
    let value = value.trim();
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%MZ").map(|t| t.and_utc()))
        .ok()
}

/// A pending allocation a segment may be the answer to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub object: ObjectRef,
    /// Its marker as written; None for a restored allocation.
    pub requested_at: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Named by these objects (recorded in this account, or in none).
    Owned(Vec<ObjectRef>),
    /// Named by nobody, but its release is under way (Releasing) or done (Released): it cannot be
    /// taken back, so nothing is left to act on and it is not counted as unowned.
    Releasing,
    /// Named by nobody, and possibly the not yet recorded segment of these pending allocations:
    /// not counted as unowned.
    PossiblyPending(Vec<Candidate>),
    /// Named by nobody in this account. `elsewhere`: objects that name it but recorded another
    /// account (their segment lives there, so this one is not theirs).
    Unowned { elsewhere: Vec<(ObjectRef, String)> },
}

impl Verdict {
    pub fn is_unowned(&self) -> bool {
        matches!(self, Verdict::Unowned { .. })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub segment: Segment,
    /// The segment's CreationTime, when it can be read.
    pub created: Option<DateTime<Utc>>,
    pub verdict: Verdict,
}

/// The verdict on each segment of `region` in `account`'s complete listing, in listing order.
pub fn classify(account: &str, region: &str, claims: &[Claim], segments: &[Segment], skew: Duration) -> Vec<Finding> {
    let skew = TimeDelta::from_std(skew).unwrap_or(TimeDelta::MAX);
    let pending: Vec<&Claim> =
        claims.iter().filter(|c| c.region == region && c.pending.is_some() && c.counts_for(account)).collect();
    segments
        .iter()
        .map(|segment| {
            let created = parse_time(&segment.creation_time);
            let verdict = verdict(account, claims, &pending, segment, created, skew);
            Finding { segment: segment.clone(), created, verdict }
        })
        .collect()
}

fn verdict(
    account: &str,
    claims: &[Claim],
    pending: &[&Claim],
    segment: &Segment,
    created: Option<DateTime<Utc>>,
    skew: TimeDelta,
) -> Verdict {
    // By ID alone, whatever region the object says: segment IDs are unique across regions.
    let naming: Vec<&Claim> = claims.iter().filter(|c| c.names.contains(&segment.instance_id)).collect();
    let owners: Vec<ObjectRef> = naming.iter().filter(|c| c.counts_for(account)).map(|c| c.object.clone()).collect();
    if !owners.is_empty() {
        return Verdict::Owned(owners);
    }
    if matches!(segment.status, SegmentStatus::Releasing | SegmentStatus::Released) {
        return Verdict::Releasing;
    }
    let candidates: Vec<Candidate> = pending
        .iter()
        .filter(|c| may_be_answer(c.pending.as_ref(), created, skew))
        .map(|c| Candidate { object: c.object.clone(), requested_at: c.requested_at.clone() })
        .collect();
    if !candidates.is_empty() {
        return Verdict::PossiblyPending(candidates);
    }
    let elsewhere =
        naming.iter().map(|c| (c.object.clone(), c.account.clone().unwrap_or_default())).collect::<Vec<_>>();
    Verdict::Unowned { elsewhere }
}

/// A segment created at or after the marker (less the skew) may be the answer to it; one whose
/// creation time cannot be read may be the answer to any.
fn may_be_answer(pending: Option<&Pending>, created: Option<DateTime<Utc>>, skew: TimeDelta) -> bool {
    match (pending, created) {
        (None, _) => false,
        (Some(Pending::AnyTime), _) | (Some(Pending::Since(_)), None) => true,
        (Some(Pending::Since(marker)), Some(created)) => created >= marker.checked_sub_signed(skew).unwrap_or(*marker),
    }
}

/// Why a region's pages do not prove its listing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unproven {
    #[error("no page was read")]
    NoPages,
    #[error("the answer for page {asked} says it is page {answered}")]
    WrongPage { asked: u32, answered: u32 },
    #[error("TotalCount changed between pages: {first} on page 1, {later} on page {page}")]
    TotalChanged { first: u32, later: u32, page: u32 },
    #[error("segment {0} was listed twice")]
    Duplicate(String),
    #[error("the pages hold {listed} segments, but TotalCount is {total}")]
    Short { listed: usize, total: u32 },
}

/// The region's segments, if `pages` (pages 1, 2, … of one listing) prove them all: every page
/// agrees on TotalCount and the distinct segments add up to it.
pub fn whole_listing(pages: Vec<SegmentPage>) -> Result<Vec<Segment>, Unproven> {
    let first = pages.first().ok_or(Unproven::NoPages)?.total_count;
    let mut seen = HashSet::new();
    let mut segments = Vec::new();
    for (asked, page) in (1u32..).zip(pages) {
        if page.page_number != asked {
            return Err(Unproven::WrongPage { asked, answered: page.page_number });
        }
        if page.total_count != first {
            return Err(Unproven::TotalChanged { first, later: page.total_count, page: asked });
        }
        for segment in page.segments {
            if !seen.insert(segment.instance_id.clone()) {
                return Err(Unproven::Duplicate(segment.instance_id));
            }
            segments.push(segment);
        }
    }
    if segments.len() != first as usize {
        return Err(Unproven::Short { listed: segments.len(), total: first });
    }
    Ok(segments)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::EipSegmentSpec;
    use crate::lifecycle::identity::{ACCOUNT_ID, ALLOCATION_TOKEN, RELEASE_TOKEN, SEGMENT_ID};

    const ME: &str = "1234567890123456";
    const OTHER: &str = "6543210987654321";
    const REGION: &str = "cn-hangzhou";

    fn segment(id: &str, status: SegmentStatus, created: &str) -> Segment {
        Segment {
            instance_id: id.into(),
            status,
            segment: "161.0.0.0/28".into(),
            ip_count: Some(16),
            region_id: REGION.into(),
            zone: String::new(),
            name: String::new(),
            description: String::new(),
            creation_time: created.into(),
        }
    }

    fn allocated(id: &str, created: &str) -> Segment {
        segment(id, SegmentStatus::Allocated, created)
    }

    fn claim(name: &str, names: &[&str], account: Option<&str>) -> Claim {
        Claim {
            object: ObjectRef { namespace: "ns".into(), name: name.into() },
            region: REGION.into(),
            names: names.iter().map(|n| n.to_string()).collect(),
            account: account.map(str::to_string),
            pending: None,
            requested_at: None,
        }
    }

    fn pending_claim(name: &str, region: &str, at: &str, account: Option<&str>) -> Claim {
        Claim {
            region: region.into(),
            pending: Some(parse_time(at).map_or(Pending::AnyTime, Pending::Since)),
            requested_at: Some(at.into()),
            ..claim(name, &[], account)
        }
    }

    fn object(annotations: &[(&str, &str)], spec_id: Option<&str>, status: Option<EipSegmentStatus>) -> EipSegment {
        let mut obj = EipSegment::new(
            "web",
            EipSegmentSpec {
                region_id: REGION.into(),
                eip_mask: spec_id.is_none().then_some(28),
                segment_instance_id: spec_id.map(str::to_string),
                ..Default::default()
            },
        );
        obj.metadata.namespace = Some("team".into());
        obj.metadata.annotations =
            Some(annotations.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>());
        obj.status = status;
        obj
    }

    fn verdicts(claims: &[Claim], segments: &[Segment]) -> Vec<Verdict> {
        classify(ME, REGION, claims, segments, CLOCK_SKEW).into_iter().map(|f| f.verdict).collect()
    }

    fn owned(names: &[&str]) -> Verdict {
        Verdict::Owned(names.iter().map(|n| ObjectRef { namespace: "ns".into(), name: n.to_string() }).collect())
    }

    fn unowned() -> Verdict {
        Verdict::Unowned { elsewhere: Vec::new() }
    }

    fn possibly(names: &[(&str, &str)]) -> Verdict {
        Verdict::PossiblyPending(
            names
                .iter()
                .map(|(n, at)| Candidate {
                    object: ObjectRef { namespace: "ns".into(), name: n.to_string() },
                    requested_at: Some(at.to_string()),
                })
                .collect(),
        )
    }

    #[test]
    fn an_object_names_its_segment_in_spec_status_or_annotation() {
        let status = |id: Option<&str>, account: Option<&str>| EipSegmentStatus {
            segment_instance_id: id.map(str::to_string),
            account_id: account.map(str::to_string),
            ..Default::default()
        };
        // (annotations, spec, status) -> (names, account, pending)
        type Case<'a> =
            (&'a [(&'a str, &'a str)], Option<&'a str>, Option<EipSegmentStatus>, &'a [&'a str], Option<&'a str>);
        let cases: Vec<Case> = vec![
            (&[], None, Some(status(Some("eipsg-alloc"), Some(ME))), &["eipsg-alloc"], Some(ME)),
            // An adoption not yet established owns nothing.
            (&[], Some("eipsg-adopt"), None, &[], None),
            (&[(SEGMENT_ID, "eipsg-restored"), (ACCOUNT_ID, OTHER)], None, None, &["eipsg-restored"], Some(OTHER)),
            (&[(SEGMENT_ID, " ")], None, None, &[], None),
            // Status wins over the annotation for the account; both IDs count.
            (
                &[(SEGMENT_ID, "eipsg-old"), (ACCOUNT_ID, OTHER)],
                None,
                Some(status(Some("eipsg-new"), Some(ME))),
                &["eipsg-new", "eipsg-old"],
                Some(ME),
            ),
            (&[(ACCOUNT_ID, OTHER)], None, Some(status(None, Some(" "))), &[], Some(OTHER)),
        ];
        for (annotations, spec_id, status, names, account) in cases {
            let c = Claim::of(&object(annotations, spec_id, status.clone()), None);
            let want: BTreeSet<String> = names.iter().map(|n| n.to_string()).collect();
            assert_eq!((&c.names, c.account.as_deref()), (&want, account), "{annotations:?} {spec_id:?} {status:?}");
            assert_eq!(c.object.to_string(), "team/web");
            assert_eq!(c.pending, None);
        }
    }

    #[test]
    fn only_annotations_the_operator_proves_name_a_segment() {
        let key = IdentityKey::generate();
        let restored = Identity { segment_id: Some("eipsg-restored".into()), ..Default::default() };
        let proof = key.proof("team", "web", &restored);
        let proven = object(&[(SEGMENT_ID, "eipsg-restored"), (crate::lifecycle::identity::PROOF, &proof)], None, None);
        assert_eq!(Claim::of(&proven, Some(&key)).names, BTreeSet::from(["eipsg-restored".to_string()]));
        let forged = object(&[(SEGMENT_ID, "eipsg-victim")], None, None);
        assert!(Claim::of(&forged, Some(&key)).names.is_empty(), "a forged annotation owns nothing");
    }

    #[test]
    fn pending_allocations_are_those_without_a_segment() {
        let marked = |id: Option<&str>, at: &str| EipSegmentStatus {
            segment_instance_id: id.map(str::to_string),
            allocation_requested_at: Some(at.into()),
            allocation_token: Some("alloc-uid".into()),
            ..Default::default()
        };
        let t = parse_time("2026-01-01T00:00:00Z").unwrap();
        let restored_token = [(ALLOCATION_TOKEN, "alloc-old-uid")];
        // (annotations, status) -> pending
        type Case<'a> = (&'a [(&'a str, &'a str)], Option<EipSegmentStatus>, Option<Pending>);
        let cases: Vec<Case> = vec![
            (&[], Some(marked(None, "2026-01-01T00:00:00Z")), Some(Pending::Since(t))),
            (&[], Some(marked(None, "yesterday")), Some(Pending::AnyTime)),
            // Recorded but not seen yet: it names its segment and claims no other.
            (&[], Some(marked(Some("eipsg-unseen"), "2026-01-01T00:00:00Z")), None),
            // A restored allocation: the operator marks it pending again, since a time unknown.
            (&restored_token, None, Some(Pending::AnyTime)),
            (&[(ALLOCATION_TOKEN, "alloc-old-uid"), (RELEASE_TOKEN, "release-old-uid")], None, None),
            (&[(ALLOCATION_TOKEN, "alloc-old-uid"), (SEGMENT_ID, "eipsg-a")], None, None),
            // Refused with proof that nothing was created: the marker is gone, the token stays.
            (
                &restored_token,
                Some(EipSegmentStatus { allocation_token: Some("alloc-uid".into()), ..Default::default() }),
                None,
            ),
            (&[], None, None),
        ];
        for (annotations, status, want) in cases {
            assert_eq!(
                Claim::of(&object(annotations, None, status.clone()), None).pending,
                want,
                "{annotations:?} {status:?}"
            );
        }
    }

    /// Times around a pending allocation's marker (`T0`) and the clock skew allowed before it.
    const T0: &str = "2026-03-01T10:00:00Z";
    const BEFORE_SKEW: &str = "2026-03-01T09:54:59Z";
    const WITHIN_SKEW: &str = "2026-03-01T09:55:00Z";
    const AFTER: &str = "2026-03-01T10:00:01Z";

    /// Each case: what the claims say, the segment listed, the verdict it gets.
    type VerdictCase = (Vec<Claim>, Segment, Verdict);

    fn assert_verdicts(cases: Vec<VerdictCase>) {
        for (claims, segment, want) in cases {
            assert_eq!(verdicts(&claims, std::slice::from_ref(&segment)), [want], "{claims:?} {segment:?}");
        }
    }

    #[test]
    fn a_named_segment_is_its_namers_in_this_account() {
        assert_verdicts(vec![
            (vec![claim("a", &["eipsg-1"], Some(ME))], allocated("eipsg-1", T0), owned(&["a"])),
            (vec![claim("a", &["eipsg-1"], None)], allocated("eipsg-1", T0), owned(&["a"])),
            (vec![claim("a", &["eipsg-2"], Some(ME))], allocated("eipsg-1", T0), unowned()),
            (vec![], allocated("eipsg-1", T0), unowned()),
            // Named only for another account: not this one's.
            (
                vec![claim("a", &["eipsg-1"], Some(OTHER))],
                allocated("eipsg-1", T0),
                Verdict::Unowned {
                    elsewhere: vec![(ObjectRef { namespace: "ns".into(), name: "a".into() }, OTHER.into())],
                },
            ),
            // Two objects name it: both are listed (the operator lets one act on it).
            (
                vec![
                    claim("a", &["eipsg-1"], Some(ME)),
                    claim("b", &["eipsg-1"], None),
                    claim("c", &["eipsg-1"], Some(OTHER)),
                ],
                allocated("eipsg-1", T0),
                owned(&["a", "b"]),
            ),
        ]);
    }

    #[test]
    fn a_leaving_segment_is_not_counted_and_an_unknown_status_is_live() {
        assert_verdicts(vec![
            // Leaving: not counted, whoever names it.
            (vec![], segment("eipsg-1", SegmentStatus::Releasing, T0), Verdict::Releasing),
            (vec![], segment("eipsg-1", SegmentStatus::Released, T0), Verdict::Releasing),
            (vec![claim("a", &["eipsg-1"], None)], segment("eipsg-1", SegmentStatus::Releasing, T0), owned(&["a"])),
            (
                vec![pending_claim("p", REGION, T0, None)],
                segment("eipsg-1", SegmentStatus::Releasing, AFTER),
                Verdict::Releasing,
            ),
            // A status the API does not document is still a live segment.
            (vec![], segment("eipsg-1", SegmentStatus::Other("Maintaining".into()), T0), unowned()),
        ]);
    }

    #[test]
    fn a_segment_made_after_a_pending_marker_may_be_its_answer() {
        assert_verdicts(vec![
            // Created at or after the marker, less the skew.
            (vec![pending_claim("p", REGION, T0, None)], allocated("eipsg-1", AFTER), possibly(&[("p", T0)])),
            (vec![pending_claim("p", REGION, T0, Some(ME))], allocated("eipsg-1", T0), possibly(&[("p", T0)])),
            (vec![pending_claim("p", REGION, T0, None)], allocated("eipsg-1", WITHIN_SKEW), possibly(&[("p", T0)])),
            (vec![pending_claim("p", REGION, T0, None)], allocated("eipsg-1", BEFORE_SKEW), unowned()),
            (vec![pending_claim("p", "cn-beijing", T0, None)], allocated("eipsg-1", AFTER), unowned()),
            (vec![pending_claim("p", REGION, T0, Some(OTHER))], allocated("eipsg-1", AFTER), unowned()),
            (
                vec![pending_claim("p", REGION, T0, None)],
                allocated("eipsg-1", "2026-03-01T10:01Z"),
                possibly(&[("p", T0)]),
            ),
            (
                vec![pending_claim("p", REGION, T0, None), pending_claim("q", REGION, AFTER, None)],
                allocated("eipsg-1", AFTER),
                possibly(&[("p", T0), ("q", AFTER)]),
            ),
            // Naming wins over a pending allocation.
            (
                vec![pending_claim("p", REGION, T0, None), claim("a", &["eipsg-1"], None)],
                allocated("eipsg-1", AFTER),
                owned(&["a"]),
            ),
        ]);
    }

    #[test]
    fn a_time_that_cannot_be_read_rules_no_pending_allocation_out() {
        assert_verdicts(vec![
            // A creation time that cannot be read cannot rule a pending allocation out.
            (vec![pending_claim("p", REGION, T0, None)], allocated("eipsg-1", ""), possibly(&[("p", T0)])),
            (vec![], allocated("eipsg-1", ""), unowned()),
            // A marker that cannot be read rules nothing out.
            (
                vec![pending_claim("p", REGION, "soon", None)],
                allocated("eipsg-1", BEFORE_SKEW),
                possibly(&[("p", "soon")]),
            ),
        ]);
    }

    #[test]
    fn findings_keep_the_listing_order_and_the_creation_time() {
        let segments = [allocated("eipsg-b", "2026-03-01T10:00:00Z"), allocated("eipsg-a", "not a time")];
        let findings = classify(ME, REGION, &[claim("a", &["eipsg-a"], None)], &segments, CLOCK_SKEW);
        let ids: Vec<&str> = findings.iter().map(|f| f.segment.instance_id.as_str()).collect();
        assert_eq!(ids, ["eipsg-b", "eipsg-a"]);
        assert_eq!(findings[0].created, parse_time("2026-03-01T10:00:00+00:00"));
        assert_eq!((findings[1].created, findings[1].verdict.is_unowned()), (None, false));
        assert!(findings[0].verdict.is_unowned());
    }

    fn page(number: u32, total: u32, ids: &[&str]) -> SegmentPage {
        SegmentPage {
            segments: ids.iter().map(|id| allocated(id, "")).collect(),
            total_count: total,
            page_number: number,
            page_size: 50,
            request_id: format!("R{number}"),
        }
    }

    #[test]
    fn only_pages_that_add_up_prove_a_listing() {
        let ids =
            |r: Result<Vec<Segment>, Unproven>| r.map(|s| s.into_iter().map(|s| s.instance_id).collect::<Vec<_>>());
        // pages -> the listing
        type Case<'a> = (Vec<SegmentPage>, Result<Vec<&'a str>, Unproven>);
        let cases: Vec<Case> = vec![
            (vec![page(1, 0, &[])], Ok(vec![])),
            (vec![page(1, 2, &["a", "b"])], Ok(vec!["a", "b"])),
            (vec![page(1, 3, &["a", "b"]), page(2, 3, &["c"])], Ok(vec!["a", "b", "c"])),
            (vec![], Err(Unproven::NoPages)),
            (vec![page(1, 3, &["a", "b"])], Err(Unproven::Short { listed: 2, total: 3 })),
            (
                vec![page(1, 3, &["a", "b"]), page(2, 2, &[])],
                Err(Unproven::TotalChanged { first: 3, later: 2, page: 2 }),
            ),
            (vec![page(1, 3, &["a", "b"]), page(2, 3, &["b"])], Err(Unproven::Duplicate("b".into()))),
            (vec![page(1, 3, &["a", "b"]), page(1, 3, &["c"])], Err(Unproven::WrongPage { asked: 2, answered: 1 })),
            (vec![page(1, 1, &["a", "b"])], Err(Unproven::Short { listed: 2, total: 1 })),
        ];
        for (pages, want) in cases {
            let shown = format!("{pages:?}");
            let want = want.map(|v| v.into_iter().map(str::to_string).collect::<Vec<_>>());
            assert_eq!(ids(whole_listing(pages)), want, "{shown}");
        }
    }
}
