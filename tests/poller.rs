//! The shared poller against the simulator over real HTTP: what it costs in DescribeEipSegment calls
//! to learn about many segments, to confirm releases, and to notice drift, and that it wakes exactly
//! the objects whose segment changed.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};

use eipsegment_operator::cloud::model::SegmentStatus;
use eipsegment_operator::cloud::{Action, VpcClient};
use eipsegment_operator::poller::{Change, Key, Observation, Poller, PollerConfig, Seen, WakeTarget};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedReceiver;
use vpc_simulator::{DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET, DEFAULT_ACCOUNT};

use eipsegment_test_support::in_process;
use in_process::Sim;

const REGION: &str = "cn-hangzhou";

fn client(sim: &Sim) -> VpcClient {
    client_at(&sim.url)
}

fn client_at(url: &str) -> VpcClient {
    eipsegment_test_support::vpc_client(url, DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET, Duration::from_secs(5))
}

fn key() -> Key {
    Key { account: DEFAULT_ACCOUNT.into(), region: REGION.into() }
}

fn target(id: &str) -> WakeTarget {
    WakeTarget { namespace: "ns".into(), name: id.into() }
}

fn poller(drift: Duration) -> (Arc<Poller>, UnboundedReceiver<WakeTarget>) {
    Poller::new(PollerConfig::new(Duration::from_millis(500), drift, Duration::from_secs(5)))
}

async fn seed(sim: &Sim, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..n {
        let seg = sim.admin(Method::POST, "segments", json!({"regionId": REGION})).await;
        ids.push(seg["instanceId"].as_str().unwrap().to_string());
    }
    ids
}

/// Collects wakes until every one of `want` was woken (others are returned too).
async fn woken(rx: &mut UnboundedReceiver<WakeTarget>, want: &HashSet<String>, within: Duration) -> HashSet<String> {
    let mut got = HashSet::new();
    let deadline = tokio::time::Instant::now() + within;
    while !want.is_subset(&got) {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(t)) => {
                got.insert(t.name);
            }
            _ => panic!(
                "woken {} of {}; missing e.g. {:?}",
                want.intersection(&got).count(),
                want.len(),
                want.difference(&got).next()
            ),
        }
    }
    got
}

fn status(obs: &Observation) -> Option<SegmentStatus> {
    match &obs.seen {
        Seen::Present(s) => Some(s.status.clone()),
        Seen::Absent => None,
        Seen::Failed(e) => panic!("look failed: {e}"),
    }
}

#[tokio::test]
async fn many_objects_starting_at_once_cost_one_scan_of_pages() {
    let sim = Sim::start(&[]).await;
    let ids = seed(&sim, 120).await;
    let vpc = client(&sim);
    let (poller, mut rx) = poller(Duration::from_secs(600));
    for id in &ids {
        assert!(poller.look(&key(), &vpc, id, target(id), true).is_none(), "nothing known yet");
    }
    woken(&mut rx, &ids.iter().cloned().collect(), Duration::from_secs(20)).await;
    for id in &ids {
        let obs = poller.look(&key(), &vpc, id, target(id), true).expect("known after the wake");
        assert_eq!(status(&obs), Some(SegmentStatus::Allocated));
    }
    assert_eq!(sim.count("DescribeEipSegment", "Success").await, 3, "120 segments are three pages of 50");
}

#[tokio::test]
async fn releases_are_confirmed_with_about_one_look_each() {
    confirm_releases(12, Duration::from_millis(400)).await;
}

#[tokio::test]
async fn many_releases_in_flight_still_take_about_one_look_each() {
    // Ten a second for a 1.5 s release: fifteen in flight while the duration is learned.
    confirm_releases(40, Duration::from_millis(100)).await;
}

async fn confirm_releases(n: usize, spacing: Duration) {
    let sim = Sim::start(&["--release-seconds", "1.5", "--release-cooldown-seconds", "0"]).await;
    // More than a page, so that absence needs a look by ID.
    let ids = seed(&sim, 60.max(n + 10)).await;
    let vpc = client(&sim);
    let (poller, mut rx) = poller(Duration::from_secs(600));
    for id in &ids {
        poller.look(&key(), &vpc, id, target(id), false);
    }
    woken(&mut rx, &ids.iter().cloned().collect(), Duration::from_secs(20)).await;
    let before = sim.count("DescribeEipSegment", "Success").await;

    let released: Vec<String> = ids.iter().take(n).cloned().collect();
    for id in &released {
        let admission = in_process::admission(&vpc, Action::ReleaseEipSegmentAddress, REGION).await;
        vpc.release(REGION, id, &format!("release-{id}"), admission).await.unwrap();
        poller.changing(&key(), &vpc, id, Change::Releasing, target(id));
        tokio::time::sleep(spacing).await;
    }
    let got = woken(&mut rx, &released.iter().cloned().collect(), Duration::from_secs(30)).await;
    assert!(got.iter().all(|name| released.contains(name)), "only the released objects are woken: {got:?}");
    for id in &released {
        let obs = poller.look(&key(), &vpc, id, target(id), false).unwrap();
        assert_eq!(status(&obs), None, "{id} is confirmed gone");
    }
    let looks = sim.count("DescribeEipSegment", "Success").await - before;
    // The first release is timed with a look every 0.5 s while the others wait for it; then each
    // takes one look, or shares a page once the region fits in one.
    assert!(looks <= released.len() as u64 + 3, "{looks} looks for {} releases", released.len());
}

#[tokio::test]
async fn drift_checks_are_region_pages_and_wake_only_the_drifted() {
    let sim = Sim::start(&[]).await;
    let ids = seed(&sim, 70).await;
    let vpc = client(&sim);
    let (poller, mut rx) = poller(Duration::from_secs(2));
    for id in &ids {
        poller.look(&key(), &vpc, id, target(id), true);
    }
    woken(&mut rx, &ids.iter().cloned().collect(), Duration::from_secs(20)).await;
    for id in &ids {
        poller.look(&key(), &vpc, id, target(id), true).unwrap();
    }
    let before = sim.count("DescribeEipSegment", "Success").await;
    // Released outside the operator: the next drift check notices.
    let gone = ids[10].clone();
    sim.admin(Method::DELETE, &format!("segments/{gone}"), json!({})).await;
    let got = woken(&mut rx, &HashSet::from([gone.clone()]), Duration::from_secs(10)).await;
    assert_eq!(got, HashSet::from([gone.clone()]), "only the drifted object is woken");
    let obs = poller.look(&key(), &vpc, &gone, target(&gone), true).unwrap();
    assert_eq!(status(&obs), None);
    // Two pages for the region, and one look by ID to be sure of an absence two pages cannot prove.
    let looks = sim.count("DescribeEipSegment", "Success").await - before;
    assert!((3..=6).contains(&looks), "{looks} looks for one drift check");
    for id in ids.iter().filter(|id| **id != gone) {
        assert_eq!(status(&poller.look(&key(), &vpc, id, target(id), true).unwrap()), Some(SegmentStatus::Allocated));
    }
}

#[tokio::test]
async fn a_failed_look_is_reported_once_and_retried() {
    let sim = Sim::start(&[]).await;
    let ids = seed(&sim, 1).await;
    let id = &ids[0];
    let vpc = client(&sim);
    let (poller, mut rx) = poller(Duration::from_secs(600));
    sim.admin(Method::PUT, "faults", json!({"internalErrorRate": 1.0})).await;
    assert!(poller.look(&key(), &vpc, id, target(id), true).is_none());
    woken(&mut rx, &HashSet::from([id.clone()]), Duration::from_secs(10)).await;
    let obs = poller.look(&key(), &vpc, id, target(id), true).unwrap();
    assert!(matches!(obs.seen, Seen::Failed(_)), "{obs:?}");
    assert!(poller.look(&key(), &vpc, id, target(id), true).is_none(), "a failure is reported once");
    sim.admin(Method::PUT, "faults", json!({"internalErrorRate": 0.0})).await;
    woken(&mut rx, &HashSet::from([id.clone()]), Duration::from_secs(10)).await;
    assert_eq!(status(&poller.look(&key(), &vpc, id, target(id), true).unwrap()), Some(SegmentStatus::Allocated));
}

/// A loopback endpoint in front of the simulator that, while told to, reports a status of its
/// choosing for one segment: the simulator itself only knows the statuses this operator knows.
struct Rewriting {
    url: String,
    status: Arc<Mutex<Option<(String, String)>>>,
}

impl Rewriting {
    async fn start(sim: &Sim) -> Rewriting {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let status: Arc<Mutex<Option<(String, String)>>> = Arc::default();
        let (upstream, rewrite) = (sim.url.clone(), status.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (upstream, rewrite) = (upstream.clone(), rewrite.clone());
                let service = hyper::service::service_fn(move |req| {
                    let (upstream, rewrite) = (upstream.clone(), rewrite.clone());
                    async move { forward(&upstream, &rewrite, req).await }
                });
                tokio::spawn(async move {
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
                });
            }
        });
        Rewriting { url, status }
    }

    /// Reports `status` for the segment from now on; `None`: the simulator's own again.
    fn report(&self, segment_id: &str, status: Option<&str>) {
        *self.status.lock().unwrap() = status.map(|s| (segment_id.to_string(), s.to_string()));
    }
}

async fn forward(
    upstream: &str,
    rewrite: &Mutex<Option<(String, String)>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let body = req.into_body().collect().await?.to_bytes();
    let answer = reqwest::Client::new()
        .post(format!("{upstream}/"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    let code = answer.status().as_u16();
    let mut json: Value = answer.json().await.unwrap();
    if let Some((id, status)) = rewrite.lock().unwrap().clone() {
        let segments = json["EipSegments"]["EipSegment"].as_array_mut().into_iter().flatten();
        for seg in segments.filter(|seg| seg["InstanceId"] == id.as_str()) {
            seg["Status"] = status.clone().into();
        }
    }
    let reply = Response::builder().status(code).header("Content-Type", "application/json");
    Ok(reply.body(Full::new(Bytes::from(json.to_string()))).unwrap())
}

#[tokio::test]
async fn a_status_this_operator_does_not_know_is_looked_at_while_an_object_waits_on_it() {
    let sim = Sim::start(&[]).await;
    let ids = seed(&sim, 1).await;
    let id = &ids[0];
    let cloud = Rewriting::start(&sim).await;
    cloud.report(id, Some("Maintaining"));
    let vpc = client_at(&cloud.url);
    let (poller, mut rx) = poller(Duration::from_secs(600));
    // An object being deleted: it waits on the segment without drift checks.
    assert!(poller.look(&key(), &vpc, id, target(id), false).is_none());
    woken(&mut rx, &HashSet::from([id.clone()]), Duration::from_secs(10)).await;
    let obs = poller.look(&key(), &vpc, id, target(id), false).unwrap();
    assert_eq!(status(&obs), Some(SegmentStatus::Other("Maintaining".into())));

    let before = sim.count("DescribeEipSegment", "Success").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let looks = sim.count("DescribeEipSegment", "Success").await - before;
    assert!((2..=6).contains(&looks), "{looks} looks in 2 s at a poll interval of 0.5 s");
    assert!(rx.try_recv().is_err(), "nothing changed: nobody is woken");

    // Whatever the cloud was doing ends with the segment gone: the object hears of it.
    sim.admin(Method::DELETE, &format!("segments/{id}"), json!({})).await;
    woken(&mut rx, &HashSet::from([id.clone()]), Duration::from_secs(5)).await;
    assert_eq!(status(&poller.look(&key(), &vpc, id, target(id), false).unwrap()), None);
}

#[tokio::test]
async fn forgetting_one_object_keeps_the_others_on_its_segment_woken() {
    let sim = Sim::start(&[]).await;
    let ids = seed(&sim, 1).await;
    let id = &ids[0];
    let vpc = client(&sim);
    let (poller, mut rx) = poller(Duration::from_secs(2));
    let (first, second) = (target("first"), target("second"));
    for t in [&first, &second] {
        assert!(poller.look(&key(), &vpc, id, t.clone(), true).is_none());
    }
    let both = HashSet::from(["first".to_string(), "second".to_string()]);
    woken(&mut rx, &both, Duration::from_secs(10)).await;
    for t in [&first, &second] {
        assert_eq!(status(&poller.look(&key(), &vpc, id, t.clone(), true).unwrap()), Some(SegmentStatus::Allocated));
    }
    poller.forget(&key(), id, &first);
    // Released outside the operator: the next drift check notices, for the object still registered.
    sim.admin(Method::DELETE, &format!("segments/{id}"), json!({})).await;
    let got = woken(&mut rx, &HashSet::from(["second".to_string()]), Duration::from_secs(10)).await;
    assert_eq!(got, HashSet::from(["second".to_string()]), "only the object still registered is woken");
    assert_eq!(status(&poller.look(&key(), &vpc, id, second.clone(), true).unwrap()), None);
}

#[tokio::test]
async fn the_segments_a_scan_shows_that_no_object_watches_are_reported_at_no_cost() {
    let sim = Sim::start(&[]).await;
    let ids = seed(&sim, 12).await;
    let vpc = client(&sim);
    let (poller, mut rx) = poller(Duration::from_secs(600));
    assert!(poller.unwatched_segments().is_empty(), "no region scanned yet");
    let watched = &ids[..10];
    for id in watched {
        poller.look(&key(), &vpc, id, target(id), true);
    }
    woken(&mut rx, &watched.iter().cloned().collect(), Duration::from_secs(20)).await;
    let calls = sim.count("DescribeEipSegment", "Success").await;
    assert_eq!(calls, 1, "one page holds the region");
    let report = poller.unwatched_segments();
    let unwatched: HashSet<String> =
        report.iter().flat_map(|(_, segments)| segments.iter().map(|s| s.instance_id.clone())).collect();
    assert_eq!(report.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(), [key()]);
    assert_eq!(unwatched, ids[10..].iter().cloned().collect::<HashSet<_>>());
    // An object that comes for one of them takes it out of the report.
    poller.look(&key(), &vpc, &ids[10], target(&ids[10]), true);
    let unwatched: Vec<String> =
        poller.unwatched_segments().into_iter().flat_map(|(_, segments)| segments).map(|s| s.instance_id).collect();
    assert_eq!(unwatched, [ids[11].clone()]);
    assert_eq!(sim.count("DescribeEipSegment", "Success").await, calls, "the report made no call");
}
