//! Malformed answers with HTTP 200, injected as faults: what a real gateway, a proxy or a
//! half-deployed backend can return in place of the action's answer. Each must make a client stop
//! and retry; none may be read as "no segments" (which for a release in progress means "released").

use serde::{Deserialize, Serialize};

use vpc_api::Action;

/// One malformed shape; `Faults::malformed_shapes` names them in camelCase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MalformedShape {
    /// The list's outer key (`EipSegments`, `EipAddresses`) is missing altogether; RequestId,
    /// TotalCount and the page fields are there.
    NoSegments,
    /// The list is there, `TotalCount` is missing.
    NoTotalCount,
    /// `TotalCount` contradicts the list: 0 while the list has items, and when the list is empty,
    /// one more than the pages up to this one could hold before it (so on page 1 or by ID: 1), i.e.
    /// this page should have had an item.
    WrongTotalCount,
    /// `{}`: no RequestId, no field of the action at all.
    EmptyObject,
    /// The outer key is an empty object (`"EipSegments":{}`) without the inner list key.
    NoSegmentList,
    /// An HTML page with HTTP 200 and `Content-Type: text/html`, as a captive portal or a
    /// misrouted load balancer serves.
    NotJson,
}

impl MalformedShape {
    pub const ALL: [MalformedShape; 6] = [
        MalformedShape::NoSegments,
        MalformedShape::NoTotalCount,
        MalformedShape::WrongTotalCount,
        MalformedShape::EmptyObject,
        MalformedShape::NoSegmentList,
        MalformedShape::NotJson,
    ];

    /// Whether the shape means anything for the action: the list shapes only for the two
    /// Describe actions; `emptyObject` and `notJson` for every action.
    pub fn applies_to(self, action: Action) -> bool {
        match self {
            MalformedShape::EmptyObject | MalformedShape::NotJson => true,
            _ => list_keys(action).is_some(),
        }
    }
}

/// The outer and inner key of the action's list, for the Describe actions.
fn list_keys(action: Action) -> Option<(&'static str, &'static str)> {
    match action {
        Action::DescribeEipSegment => Some(("EipSegments", "EipSegment")),
        Action::DescribeEipAddresses => Some(("EipAddresses", "EipAddress")),
        Action::AllocateEipSegmentAddress | Action::ReleaseEipSegmentAddress | Action::GetCallerIdentity => None,
    }
}

/// A page an upstream error page would look like.
const HTML_PAGE: &str = "<!DOCTYPE html>\n<html><head><title>Welcome</title></head>\n<body><h1>Welcome</h1>\
<p>The page you requested is temporarily being served from cache.</p></body></html>\n";

/// The answer's body in `shape`, with its content type: `answer` is the action's real answer
/// (without RequestId). A shape that does not apply to the action gives the real answer.
pub fn render(
    action: Action,
    shape: MalformedShape,
    answer: serde_json::Value,
    request_id: &str,
) -> (&'static str, Vec<u8>) {
    const JSON: &str = "application/json;charset=utf-8";
    let mut answer = answer;
    match shape {
        MalformedShape::NotJson => return ("text/html;charset=utf-8", HTML_PAGE.as_bytes().to_vec()),
        MalformedShape::EmptyObject => return (JSON, b"{}".to_vec()),
        _ => {}
    }
    if let (Some((outer, inner)), Some(obj)) = (list_keys(action), answer.as_object_mut()) {
        match shape {
            MalformedShape::NoSegments => {
                obj.remove(outer);
            }
            MalformedShape::NoTotalCount => {
                obj.remove("TotalCount");
            }
            MalformedShape::WrongTotalCount => {
                let listed = obj.get(outer).and_then(|o| o.get(inner)).and_then(|l| l.as_array()).map_or(0, Vec::len);
                let field = |name: &str| obj.get(name).and_then(|v| v.as_u64()).unwrap_or(1);
                let before = field("PageNumber").saturating_sub(1) * field("PageSize");
                let wrong = if listed > 0 { 0 } else { before + 1 };
                obj.insert("TotalCount".into(), wrong.into());
            }
            MalformedShape::NoSegmentList => {
                obj.insert(outer.into(), serde_json::json!({}));
            }
            MalformedShape::EmptyObject | MalformedShape::NotJson => {}
        }
    }
    if let Some(obj) = answer.as_object_mut() {
        obj.insert("RequestId".into(), request_id.into());
    }
    (JSON, serde_json::to_vec(&answer).unwrap_or_else(|_| b"{}".to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn segments_answer(items: usize, page: u64) -> Value {
        let list: Vec<Value> = (0..items).map(|i| json!({"InstanceId": format!("eipsg-{i}")})).collect();
        json!({"PageNumber": page, "PageSize": 10, "TotalCount": items, "EipSegments": {"EipSegment": list}})
    }

    fn rendered(action: Action, shape: MalformedShape, answer: Value) -> Value {
        let (content_type, body) = render(action, shape, answer, "RID");
        assert!(content_type.starts_with("application/json"), "{shape:?}");
        serde_json::from_slice(&body).unwrap()
    }

    #[test]
    fn each_shape_of_a_segment_page() {
        let d = Action::DescribeEipSegment;
        let v = rendered(d, MalformedShape::NoSegments, segments_answer(2, 1));
        assert_eq!((v.get("EipSegments"), &v["TotalCount"], &v["RequestId"]), (None, &json!(2), &json!("RID")));
        let v = rendered(d, MalformedShape::NoTotalCount, segments_answer(2, 1));
        assert_eq!((v.get("TotalCount"), v["EipSegments"]["EipSegment"].as_array().map(Vec::len)), (None, Some(2)));
        let v = rendered(d, MalformedShape::WrongTotalCount, segments_answer(2, 1));
        assert_eq!((&v["TotalCount"], v["EipSegments"]["EipSegment"].as_array().map(Vec::len)), (&json!(0), Some(2)));
        let v = rendered(d, MalformedShape::WrongTotalCount, segments_answer(0, 1));
        assert_eq!(v["TotalCount"], 1, "an empty first page (or by-ID answer) that says one exists");
        let v = rendered(d, MalformedShape::WrongTotalCount, segments_answer(0, 3));
        assert_eq!(v["TotalCount"], 21, "more than the two pages before this one hold");
        assert_eq!(rendered(d, MalformedShape::EmptyObject, segments_answer(2, 1)), json!({}));
        let v = rendered(d, MalformedShape::NoSegmentList, segments_answer(2, 1));
        assert_eq!((&v["EipSegments"], &v["TotalCount"], &v["RequestId"]), (&json!({}), &json!(2), &json!("RID")));
        let (content_type, body) = render(d, MalformedShape::NotJson, segments_answer(2, 1), "RID");
        assert!(content_type.starts_with("text/html"));
        assert!(serde_json::from_slice::<Value>(&body).is_err());
    }

    #[test]
    fn member_pages_lose_their_own_list() {
        let answer = json!({"PageNumber": 1, "PageSize": 100, "TotalCount": 16,
            "EipAddresses": {"EipAddress": [{"AllocationId": "eip-1"}]}});
        let a = Action::DescribeEipAddresses;
        assert_eq!(rendered(a, MalformedShape::NoSegments, answer.clone()).get("EipAddresses"), None);
        assert_eq!(rendered(a, MalformedShape::NoSegmentList, answer.clone())["EipAddresses"], json!({}));
        assert_eq!(rendered(a, MalformedShape::WrongTotalCount, answer)["TotalCount"], 0);
    }

    #[test]
    fn mutations_only_have_the_empty_and_the_html_answer() {
        for action in [Action::AllocateEipSegmentAddress, Action::ReleaseEipSegmentAddress] {
            let applicable: Vec<_> = MalformedShape::ALL.into_iter().filter(|s| s.applies_to(action)).collect();
            assert_eq!(applicable, [MalformedShape::EmptyObject, MalformedShape::NotJson], "{action}");
        }
        for action in [Action::DescribeEipSegment, Action::DescribeEipAddresses] {
            assert!(MalformedShape::ALL.iter().all(|s| s.applies_to(action)), "{action}");
        }
        let answer = json!({"EipSegmentInstanceId": "eipsg-1", "OrderId": "1"});
        assert_eq!(rendered(Action::AllocateEipSegmentAddress, MalformedShape::EmptyObject, answer), json!({}));
    }

    #[test]
    fn shapes_have_their_documented_names() {
        let names: Vec<String> = MalformedShape::ALL
            .iter()
            .map(|s| serde_json::to_value(s).unwrap().as_str().unwrap().to_string())
            .collect();
        assert_eq!(names, ["noSegments", "noTotalCount", "wrongTotalCount", "emptyObject", "noSegmentList", "notJson"]);
    }
}
