//! `eipsegment-operator audit`: the segments of the credentials' account that no EipSegment in the
//! cluster names. Read-only: the cloud is reached only through [`ReadOnlyVpc`] (GetCallerIdentity,
//! DescribeEipSegment), Kubernetes only by listing EipSegments. The verdicts are pure, in
//! [`classify`]; the table, the JSON and the exit code in [`report`].

pub mod classify;
pub mod report;

use std::collections::BTreeSet;

use kube::api::{Api, ListParams};

use crate::cloud::model::{MAX_SEGMENT_PAGE_SIZE, Segment, SegmentPage};
use crate::cloud::{CloudError, ReadOnlyVpc};
use crate::crd::EipSegment;
use crate::poller::plan::pages_for;
use crate::proof::IdentityKey;
use classify::{CLOCK_SKEW, Claim, Unproven, classify, whole_listing};
use report::Report;

/// EipSegments per list call.
const OBJECTS_PER_LIST: u32 = 500;
/// Whole listings of a region tried before its pages are declared unproven: segments created or
/// released between two pages make them disagree without anything being wrong.
const LISTING_ATTEMPTS: u32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(
        "cannot list the cluster's EipSegments (the audit needs list on eipsegments.eipsegment.io in every namespace)"
    )]
    Objects(#[source] kube::Error),
    #[error("no region to audit: no EipSegment in the cluster names one; name regions with --region")]
    NoRegion,
    #[error("cannot tell which account the credentials act for")]
    Account(#[source] CloudError),
}

#[derive(Debug, thiserror::Error)]
enum ListingError {
    #[error("page {page} of DescribeEipSegment")]
    Page {
        page: u32,
        #[source]
        source: CloudError,
    },
    #[error("the pages did not add up in {LISTING_ATTEMPTS} listings")]
    Unproven(#[source] Unproven),
}

/// Every EipSegment in the cluster, page by page.
pub async fn list_objects(client: kube::Client) -> Result<Vec<EipSegment>, AuditError> {
    let api: Api<EipSegment> = Api::all(client);
    let mut objects = Vec::new();
    let mut params = ListParams::default().limit(OBJECTS_PER_LIST);
    loop {
        let list = api.list(&params).await.map_err(AuditError::Objects)?;
        objects.extend(list.items);
        match list.metadata.continue_.filter(|token| !token.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(objects),
        }
    }
}

/// The audit of `objects` (listed before the cloud, so that a segment allocated meanwhile has
/// its object's pending marker in the list) against each region's listing.
pub async fn run(
    vpc: &ReadOnlyVpc,
    objects: &[EipSegment],
    asked: &[String],
    key: &IdentityKey,
) -> Result<Report, AuditError> {
    let claims: Vec<Claim> = objects.iter().map(|o| Claim::of(o, Some(key))).collect();
    let regions = regions_to_audit(asked, &claims)?;
    let account = vpc.account().await.map_err(AuditError::Account)?;
    let mut outcomes = Vec::with_capacity(regions.len());
    for region in regions {
        let findings = list_region(vpc, &region)
            .await
            .map(|segments| classify(&account, &region, &claims, &segments, skew(vpc.cloud_clock_offset())))
            .map_err(|e| crate::error_chain(&e));
        outcomes.push((region, findings));
    }
    Ok(Report::new(&account, outcomes))
}

/// The allowance between a pending marker (the operator's clock) and a segment's CreationTime (the
/// cloud's): the usual drift, widened by however far apart the cloud's last answer showed the two
/// clocks, either way (the audit runs where the operator's clock is taken to be, in the cluster).
fn skew(cloud_clock_offset: Option<chrono::TimeDelta>) -> std::time::Duration {
    let measured = cloud_clock_offset.map(|o| o.abs().to_std().unwrap_or_default()).unwrap_or_default();
    CLOCK_SKEW + measured
}

/// The regions asked for, else every region an object names; in order, once each.
pub fn regions_to_audit(asked: &[String], claims: &[Claim]) -> Result<Vec<String>, AuditError> {
    let regions: BTreeSet<String> = if asked.is_empty() {
        claims.iter().map(|c| c.region.trim().to_string()).filter(|r| !r.is_empty()).collect()
    } else {
        asked.iter().cloned().collect()
    };
    if regions.is_empty() {
        return Err(AuditError::NoRegion);
    }
    Ok(regions.into_iter().collect())
}

/// The region's segments, proven by pages that add up; a failed or malformed page ends it.
async fn list_region(vpc: &ReadOnlyVpc, region: &str) -> Result<Vec<Segment>, ListingError> {
    let mut last = Unproven::NoPages;
    for _ in 0..LISTING_ATTEMPTS {
        match whole_listing(pages(vpc, region).await?) {
            Ok(segments) => return Ok(segments),
            Err(e) => last = e,
        }
    }
    Err(ListingError::Unproven(last))
}

/// Every page the first one's TotalCount calls for.
async fn pages(vpc: &ReadOnlyVpc, region: &str) -> Result<Vec<SegmentPage>, ListingError> {
    let page = |page: u32| async move {
        vpc.segment_page(region, page, MAX_SEGMENT_PAGE_SIZE)
            .await
            .map_err(|source| ListingError::Page { page, source })
    };
    let first = page(1).await?;
    let count = pages_for(first.total_count);
    let mut pages = vec![first];
    for number in 2..=count {
        pages.push(page(number).await?);
    }
    Ok(pages)
}

#[cfg(test)]
mod tests {
    use super::*;
    use classify::ObjectRef;

    fn in_region(region: &str) -> Claim {
        Claim {
            object: ObjectRef { namespace: "ns".into(), name: region.into() },
            region: region.into(),
            names: BTreeSet::new(),
            account: None,
            pending: None,
            requested_at: None,
        }
    }

    #[test]
    fn regions_are_those_asked_for_else_those_named() {
        let claims = [in_region("cn-shanghai"), in_region("cn-hangzhou"), in_region("cn-shanghai")];
        let asked = |r: &[&str]| r.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(regions_to_audit(&[], &claims).unwrap(), ["cn-hangzhou", "cn-shanghai"]);
        assert_eq!(
            regions_to_audit(&asked(&["us-east-1", "cn-beijing", "us-east-1"]), &claims).unwrap(),
            ["cn-beijing", "us-east-1"]
        );
        assert!(matches!(regions_to_audit(&[], &[]), Err(AuditError::NoRegion)));
        assert!(matches!(regions_to_audit(&[], &[in_region(" ")]), Err(AuditError::NoRegion)));
    }
}
