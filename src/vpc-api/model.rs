//! The VPC API's vocabulary: action names, request parameters and leniently parsed answers.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

pub const API_VERSION: &str = "2016-04-28";
/// STS, for GetCallerIdentity.
pub const STS_API_VERSION: &str = "2015-04-01";
/// Largest page DescribeEipSegment accepts.
pub const MAX_SEGMENT_PAGE_SIZE: u32 = 50;
/// Largest page DescribeEipAddresses accepts.
pub const MAX_EIP_PAGE_SIZE: u32 = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    AllocateEipSegmentAddress,
    DescribeEipSegment,
    ReleaseEipSegmentAddress,
    DescribeEipAddresses,
    /// STS: which account the credentials act for.
    GetCallerIdentity,
}

impl Action {
    /// The VPC actions.
    pub const ALL: [Action; 4] = [
        Action::AllocateEipSegmentAddress,
        Action::DescribeEipSegment,
        Action::ReleaseEipSegmentAddress,
        Action::DescribeEipAddresses,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::AllocateEipSegmentAddress => "AllocateEipSegmentAddress",
            Action::DescribeEipSegment => "DescribeEipSegment",
            Action::ReleaseEipSegmentAddress => "ReleaseEipSegmentAddress",
            Action::DescribeEipAddresses => "DescribeEipAddresses",
            Action::GetCallerIdentity => "GetCallerIdentity",
        }
    }

    /// The API version the action belongs to.
    pub fn version(self) -> &'static str {
        match self {
            Action::GetCallerIdentity => STS_API_VERSION,
            _ => API_VERSION,
        }
    }

    /// A VPC action, by name.
    pub fn parse(name: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == name)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The cloud's status of a segment.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SegmentStatus {
    Allocating,
    Allocated,
    Releasing,
    Released,
    #[serde(untagged)]
    Other(String),
}

impl SegmentStatus {
    /// The status a word names, as the cloud spells it: any other word (another case, a status
    /// added later) is `Other`, which proves nothing.
    pub fn parse(word: &str) -> SegmentStatus {
        match word {
            "Allocating" => SegmentStatus::Allocating,
            "Allocated" => SegmentStatus::Allocated,
            "Releasing" => SegmentStatus::Releasing,
            "Released" => SegmentStatus::Released,
            other => SegmentStatus::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            SegmentStatus::Allocating => "Allocating",
            SegmentStatus::Allocated => "Allocated",
            SegmentStatus::Releasing => "Releasing",
            SegmentStatus::Released => "Released",
            SegmentStatus::Other(s) => s,
        }
    }
}

/// One segment as DescribeEipSegment reports it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Segment {
    pub instance_id: String,
    pub status: SegmentStatus,
    #[serde(default)]
    pub segment: String,
    #[serde(default, deserialize_with = "lenient_u32")]
    pub ip_count: Option<u32>,
    #[serde(default)]
    pub region_id: String,
    #[serde(default)]
    pub zone: String,
    #[serde(default)]
    pub name: String,
    /// The SDKs spell it `Descritpion`; older documents `Description`.
    #[serde(default, alias = "Descritpion")]
    pub description: String,
    #[serde(default)]
    pub creation_time: String,
}

impl Segment {
    /// A /28 segment of 16 EIPs as a look reports it, for tables of decisions.
    #[doc(hidden)]
    pub fn sample(instance_id: &str, status: SegmentStatus) -> Segment {
        Segment {
            instance_id: instance_id.into(),
            status,
            segment: "47.0.0.0/28".into(),
            ip_count: Some(16),
            region_id: String::new(),
            zone: String::new(),
            name: String::new(),
            description: String::new(),
            creation_time: String::new(),
        }
    }
}

/// One page of DescribeEipSegment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentPage {
    pub segments: Vec<Segment>,
    pub total_count: u32,
    pub page_number: u32,
    pub page_size: u32,
    pub request_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeEipSegmentBody {
    #[serde(default)]
    pub request_id: String,
    #[serde(default, deserialize_with = "lenient_u32")]
    pub total_count: Option<u32>,
    #[serde(default, deserialize_with = "lenient_u32")]
    pub page_number: Option<u32>,
    #[serde(default, deserialize_with = "lenient_u32")]
    pub page_size: Option<u32>,
    #[serde(default)]
    pub eip_segments: Option<SegmentList>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct SegmentList {
    #[serde(default)]
    pub eip_segment: Option<Vec<Segment>>,
}

/// What a DescribeEipSegment call asked for, to check the answer against.
#[derive(Clone, Copy, Debug)]
pub struct SegmentQuery<'a> {
    pub segment_id: Option<&'a str>,
    pub page_number: u32,
    pub page_size: u32,
}

impl DescribeEipSegmentBody {
    /// The page, if the answer is whole and consistent. An answer that lacks its list, its
    /// TotalCount or its RequestId, or whose list disagrees with its TotalCount or with the query,
    /// proves nothing: above all not that a segment is gone.
    pub fn into_page(self, query: SegmentQuery<'_>) -> Result<SegmentPage, String> {
        if self.request_id.is_empty() {
            return Err("no RequestId".into());
        }
        let total = self.total_count.ok_or("no TotalCount")?;
        let list = self.eip_segments.ok_or("no EipSegments")?;
        let segments = match list.eip_segment {
            Some(segments) => segments,
            // `"EipSegments":{}` is an empty list only where TotalCount says so.
            None if total == 0 => Vec::new(),
            None => return Err(format!("no EipSegments.EipSegment list, but TotalCount {total}")),
        };
        check_page(&segments, total, query)?;
        Ok(SegmentPage {
            total_count: total,
            page_number: self.page_number.unwrap_or(query.page_number),
            page_size: self.page_size.unwrap_or(query.page_size),
            request_id: self.request_id,
            segments,
        })
    }
}

/// A page's list must be what its TotalCount and the query imply.
fn check_page(segments: &[Segment], total: u32, query: SegmentQuery<'_>) -> Result<(), String> {
    let skipped = u64::from(query.page_number.max(1) - 1) * u64::from(query.page_size);
    let expected = (u64::from(total).saturating_sub(skipped)).min(u64::from(query.page_size));
    if segments.len() as u64 != expected {
        return Err(format!(
            "{} segments on page {} of size {}, but TotalCount {total}",
            segments.len(),
            query.page_number,
            query.page_size
        ));
    }
    if let Some(id) = query.segment_id
        && (total > 1 || segments.iter().any(|s| s.instance_id != id))
    {
        return Err(format!("an answer for {id} that holds other segments (TotalCount {total})"));
    }
    Ok(())
}

/// One member EIP as DescribeEipAddresses reports it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EipAddress {
    #[serde(default)]
    pub allocation_id: String,
    #[serde(default)]
    pub ip_address: String,
    #[serde(default)]
    pub status: String,
    /// The instance the EIP is bound to, when InUse.
    #[serde(default)]
    pub instance_id: String,
    #[serde(default)]
    pub instance_type: String,
    #[serde(default)]
    pub segment_instance_id: String,
    /// Non-empty when the EIP is in a shared bandwidth package.
    #[serde(default)]
    pub bandwidth_package_id: String,
}

impl EipAddress {
    /// The EIP holds its segment's release back: it is not Available (bound to an instance, or
    /// changing state, or in a status this operator does not know) or it is in a bandwidth plan.
    pub fn holds_the_release_back(&self) -> bool {
        self.status != "Available" || !self.bandwidth_package_id.is_empty()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeEipAddressesBody {
    #[serde(default)]
    pub request_id: String,
    #[serde(default, deserialize_with = "lenient_u32")]
    pub total_count: Option<u32>,
    #[serde(default)]
    pub eip_addresses: Option<EipAddressList>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct EipAddressList {
    #[serde(default)]
    pub eip_address: Option<Vec<EipAddress>>,
}

impl DescribeEipAddressesBody {
    /// One page of a segment's members, with the TotalCount, if the answer is whole and consistent:
    /// its RequestId, its TotalCount, a list of the length they imply, each entry of `segment_id`
    /// with an allocation ID and an IPv4 address. Anything else is no list of members.
    pub fn into_members(
        self,
        segment_id: &str,
        page_number: u32,
        page_size: u32,
    ) -> Result<(u32, Vec<EipAddress>), String> {
        if self.request_id.is_empty() {
            return Err("no RequestId".into());
        }
        let total = self.total_count.ok_or("no TotalCount")?;
        let members = match self.eip_addresses.ok_or("no EipAddresses")?.eip_address {
            Some(members) => members,
            None if total == 0 => Vec::new(),
            None => return Err(format!("no EipAddresses.EipAddress list, but TotalCount {total}")),
        };
        let skipped = u64::from(page_number.max(1) - 1) * u64::from(page_size);
        let expected = u64::from(total).saturating_sub(skipped).min(u64::from(page_size));
        if members.len() as u64 != expected {
            return Err(format!(
                "{} EIPs on page {page_number} of size {page_size}, but TotalCount {total}",
                members.len()
            ));
        }
        if let Some(m) = members.iter().find(|m| {
            m.segment_instance_id != segment_id
                || m.allocation_id.is_empty()
                || m.ip_address.parse::<std::net::Ipv4Addr>().is_err()
        }) {
            return Err(format!(
                "an EIP {:?} ({:?}) of segment {:?} in the answer for {segment_id}",
                m.ip_address, m.allocation_id, m.segment_instance_id
            ));
        }
        Ok((total, members))
    }
}

/// STS GetCallerIdentity.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CallerIdentity {
    #[serde(default)]
    pub request_id: String,
    #[serde(default, deserialize_with = "lenient_string")]
    pub account_id: String,
    #[serde(default)]
    pub arn: String,
    #[serde(default)]
    pub identity_type: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AllocateResponse {
    #[serde(default)]
    pub request_id: String,
    pub eip_segment_instance_id: String,
    #[serde(default, deserialize_with = "lenient_string")]
    pub order_id: String,
}

/// The cloud's error body.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ErrorBody {
    #[serde(default)]
    pub request_id: String,
    #[serde(default)]
    pub host_id: String,
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub recommend: String,
}

/// Parameters of AllocateEipSegmentAddress, named as the API names them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct AllocateRequest {
    pub region_id: String,
    pub eip_mask: u8,
    pub client_token: String,
    pub bandwidth: Option<u32>,
    pub internet_charge_type: Option<String>,
    pub isp: Option<String>,
    pub netmode: Option<String>,
    pub zone: Option<String>,
    pub resource_group_id: Option<String>,
}

impl AllocateRequest {
    pub fn params(&self) -> Vec<(&'static str, String)> {
        let mut params = vec![
            ("RegionId", self.region_id.clone()),
            ("EipMask", self.eip_mask.to_string()),
            ("ClientToken", self.client_token.clone()),
        ];
        let optional = [
            ("Bandwidth", self.bandwidth.map(|b| b.to_string())),
            ("InternetChargeType", self.internet_charge_type.clone()),
            ("Isp", self.isp.clone()),
            ("Netmode", self.netmode.clone()),
            ("Zone", self.zone.clone()),
            ("ResourceGroupId", self.resource_group_id.clone()),
        ];
        params.extend(optional.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))));
        params
    }
}

fn lenient_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumberOrString {
        Number(u64),
        Text(String),
        Other(serde::de::IgnoredAny),
    }
    Ok(match NumberOrString::deserialize(d)? {
        NumberOrString::Number(n) => u32::try_from(n).ok(),
        NumberOrString::Text(s) => s.trim().parse().ok(),
        NumberOrString::Other(_) => None,
    })
}

fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => s,
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_spellings_and_both_ip_count_types() {
        let documented = r#"{"PageSize":10,"RequestId":"F7A6","PageNumber":1,"TotalCount":1,
            "EipSegments":{"EipSegment":[{"CreationTime":"2020-03-06T12:30:07Z","Status":"Allocated",
            "Descritpion":"MyEipSegment","InstanceId":"eipsg-2zett8ba055tbsxme","IpCount":"16",
            "Name":"MyEipSegment","Segment":"161.0.0.32/28","RegionId":"cn-hangzhou","Zone":"cn-hangzhou-a"}]}}"#;
        let body: DescribeEipSegmentBody = serde_json::from_str(documented).unwrap();
        let seg = &body.eip_segments.unwrap().eip_segment.unwrap()[0];
        assert_eq!(seg.ip_count, Some(16));
        assert_eq!(seg.description, "MyEipSegment");
        assert_eq!(seg.status, SegmentStatus::Allocated);

        let older = r#"{"TotalCount":"1","EipSegments":{"EipSegment":[{"Status":"Releasing","Description":"d",
            "InstanceId":"eipsg-x","IpCount":32,"Unknown":{"a":1}}]}}"#;
        let body: DescribeEipSegmentBody = serde_json::from_str(older).unwrap();
        assert_eq!(body.total_count, Some(1));
        let seg = &body.eip_segments.unwrap().eip_segment.unwrap()[0];
        assert_eq!((seg.ip_count, seg.description.as_str()), (Some(32), "d"));
        assert_eq!(seg.status, SegmentStatus::Releasing);
    }

    #[test]
    fn odd_values_do_not_fail_the_page() {
        let body: DescribeEipSegmentBody = serde_json::from_str(
            r#"{"EipSegments":{"EipSegment":[{"Status":"Frozen","InstanceId":"eipsg-y","IpCount":"many"}]}}"#,
        )
        .unwrap();
        let seg = &body.eip_segments.unwrap().eip_segment.unwrap()[0];
        assert_eq!(seg.status, SegmentStatus::Other("Frozen".into()));
        assert_eq!(seg.ip_count, None);
        let empty: DescribeEipSegmentBody = serde_json::from_str(r#"{"EipSegments":{}}"#).unwrap();
        assert!(empty.eip_segments.unwrap().eip_segment.is_none());
    }

    #[test]
    fn a_status_word_reads_as_the_answers_do() {
        for word in ["Allocating", "Allocated", "Releasing", "Released", "Frozen", "released", ""] {
            let answered: SegmentStatus = serde_json::from_value(serde_json::json!(word)).unwrap();
            assert_eq!(SegmentStatus::parse(word), answered, "{word:?}");
            assert_eq!(SegmentStatus::parse(word).as_str(), word);
        }
        assert_eq!(SegmentStatus::parse("released"), SegmentStatus::Other("released".into()), "no guessing");
    }

    #[test]
    fn only_an_available_eip_outside_any_plan_leaves_the_release_free() {
        let eip = |status: &str, plan: &str| EipAddress {
            allocation_id: "eip-1".into(),
            ip_address: "47.0.0.1".into(),
            status: status.into(),
            instance_id: String::new(),
            instance_type: String::new(),
            segment_instance_id: "eipsg-1".into(),
            bandwidth_package_id: plan.into(),
        };
        assert!(!eip("Available", "").holds_the_release_back());
        assert!(eip("Available", "cbwp-1").holds_the_release_back());
        for status in ["InUse", "Associating", "Unassociating", "available", ""] {
            assert!(eip(status, "").holds_the_release_back(), "{status:?}");
        }
    }

    #[test]
    fn order_id_is_string_or_number() {
        let a: AllocateResponse =
            serde_json::from_str(r#"{"EipSegmentInstanceId":"eipsg-1","OrderId":20190000}"#).unwrap();
        let b: AllocateResponse =
            serde_json::from_str(r#"{"EipSegmentInstanceId":"eipsg-1","OrderId":"20190000"}"#).unwrap();
        assert_eq!(a.order_id, b.order_id);
    }

    fn page(body: &str, segment_id: Option<&str>, page_number: u32, page_size: u32) -> Result<SegmentPage, String> {
        let body: DescribeEipSegmentBody = serde_json::from_str(body).map_err(|e| e.to_string())?;
        body.into_page(SegmentQuery { segment_id, page_number, page_size })
    }

    const SEG: &str = r#"{"InstanceId":"eipsg-a","Status":"Allocated"}"#;

    #[test]
    fn only_a_whole_consistent_answer_is_a_page() {
        let list = |items: &str| format!(r#"{{"EipSegment":[{items}]}}"#);
        let ok = |total: u32, items: &str| {
            format!(r#"{{"RequestId":"R","TotalCount":{total},"EipSegments":{}}}"#, list(items))
        };
        // By ID: present, and proven absent.
        assert_eq!(page(&ok(1, SEG), Some("eipsg-a"), 1, 50).unwrap().segments.len(), 1);
        assert!(page(&ok(0, ""), Some("eipsg-a"), 1, 50).unwrap().segments.is_empty());
        assert!(page(r#"{"RequestId":"R","TotalCount":0,"EipSegments":{}}"#, Some("eipsg-a"), 1, 50).is_ok());
        // Pages: the last one holds the remainder.
        assert!(page(&ok(51, SEG), None, 2, 50).is_ok());
        let malformed = [
            (r#"{"RequestId":"R","TotalCount":0}"#.to_string(), "no EipSegments"),
            (r#"{"RequestId":"R","EipSegments":{"EipSegment":[]}}"#.to_string(), "no TotalCount"),
            (format!(r#"{{"TotalCount":0,"EipSegments":{}}}"#, list("")), "no RequestId"),
            (r#"{}"#.to_string(), "no RequestId"),
            (r#"{"RequestId":"R","TotalCount":1,"EipSegments":{}}"#.to_string(), "TotalCount 1"),
            (ok(1, ""), "0 segments"),
            (ok(0, SEG), "1 segments"),
            (ok(2, SEG), "1 segments"),
        ];
        for (body, why) in &malformed {
            let e = page(body, Some("eipsg-a"), 1, 50).unwrap_err();
            assert!(e.contains(why), "{body}: {e}");
        }
        let other = r#"{"InstanceId":"eipsg-b","Status":"Allocated"}"#;
        assert!(page(&ok(1, other), Some("eipsg-a"), 1, 50).unwrap_err().contains("other segments"));
        assert!(
            page(&ok(60, SEG), None, 1, 50).unwrap_err().contains("TotalCount 60"),
            "a short page that is not the last"
        );
    }
}
