//! The VPC API's vocabulary: action names, request parameters and leniently parsed answers.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

pub const API_VERSION: &str = "2016-04-28";
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
}

impl Action {
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
        }
    }

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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SegmentStatus {
    Allocating,
    Allocated,
    Releasing,
    Released,
    #[serde(untagged)]
    Other(String),
}

impl SegmentStatus {
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
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
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
pub(crate) struct DescribeEipSegmentBody {
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
pub(crate) struct SegmentList {
    #[serde(default)]
    pub eip_segment: Vec<Segment>,
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

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct DescribeEipAddressesBody {
    #[serde(default, deserialize_with = "lenient_u32")]
    pub total_count: Option<u32>,
    #[serde(default)]
    pub eip_addresses: Option<EipAddressList>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct EipAddressList {
    #[serde(default)]
    pub eip_address: Vec<EipAddress>,
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
#[derive(Clone, Debug, Default, PartialEq, Eq)]
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
        let seg = &body.eip_segments.unwrap().eip_segment[0];
        assert_eq!(seg.ip_count, Some(16));
        assert_eq!(seg.description, "MyEipSegment");
        assert_eq!(seg.status, SegmentStatus::Allocated);

        let older = r#"{"TotalCount":"1","EipSegments":{"EipSegment":[{"Status":"Releasing","Description":"d",
            "InstanceId":"eipsg-x","IpCount":32,"Unknown":{"a":1}}]}}"#;
        let body: DescribeEipSegmentBody = serde_json::from_str(older).unwrap();
        assert_eq!(body.total_count, Some(1));
        let seg = &body.eip_segments.unwrap().eip_segment[0];
        assert_eq!((seg.ip_count, seg.description.as_str()), (Some(32), "d"));
        assert_eq!(seg.status, SegmentStatus::Releasing);
    }

    #[test]
    fn odd_values_do_not_fail_the_page() {
        let body: DescribeEipSegmentBody = serde_json::from_str(
            r#"{"EipSegments":{"EipSegment":[{"Status":"Frozen","InstanceId":"eipsg-y","IpCount":"many"}]}}"#,
        )
        .unwrap();
        let seg = &body.eip_segments.unwrap().eip_segment[0];
        assert_eq!(seg.status, SegmentStatus::Other("Frozen".into()));
        assert_eq!(seg.ip_count, None);
        let empty: DescribeEipSegmentBody = serde_json::from_str(r#"{"EipSegments":{}}"#).unwrap();
        assert!(empty.eip_segments.unwrap().eip_segment.is_empty());
    }

    #[test]
    fn order_id_is_string_or_number() {
        let a: AllocateResponse =
            serde_json::from_str(r#"{"EipSegmentInstanceId":"eipsg-1","OrderId":20190000}"#).unwrap();
        let b: AllocateResponse =
            serde_json::from_str(r#"{"EipSegmentInstanceId":"eipsg-1","OrderId":"20190000"}"#).unwrap();
        assert_eq!(a.order_id, b.order_id);
    }
}
