//! Every cached object's own pass once per [`PERIOD`], one object at a time at an even pace. A
//! settled object needs nothing more: the poller drift-checks its segment and wakes it on any
//! change, so this only guards against a lost wake, as controller-runtime's ten-hour resync does.
//! A rolling round costs one list of names; a timer per object in the controller's queue cost
//! half a KiB each. A pass per object per drift interval would cost thousands of objects more CPU
//! than everything else at rest.

use std::time::Duration;

use futures::Stream;
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};
use tokio::time::Instant;

use super::Cached;

pub const PERIOD: Duration = Duration::from_secs(10 * 3600);

/// The objects of `store` in turn, each round spreading them evenly over `period`; the first round
/// begins once the store has listed its objects.
pub fn rolling(store: Store<Cached>, period: Duration) -> impl Stream<Item = ObjectRef<Cached>> + Send {
    let round = Round { due: Vec::new(), gap: period, next: Instant::now() };
    futures::stream::unfold((store, round), move |(store, mut round)| async move {
        if store.wait_until_ready().await.is_err() {
            return None;
        }
        loop {
            if round.due.is_empty() {
                round.start(&store, period);
            }
            round.next += round.gap;
            tokio::time::sleep_until(round.next).await;
            if let Some((namespace, name)) = round.due.pop() {
                return Some((ObjectRef::new(&name).within(&namespace), (store, round)));
            }
        }
    })
}

struct Round {
    /// Namespace and name of those still to come this round.
    due: Vec<(String, String)>,
    gap: Duration,
    next: Instant,
}

impl Round {
    fn start(&mut self, store: &Store<Cached>, period: Duration) {
        self.due = store.state().iter().map(|o| (o.namespace().unwrap_or_default(), o.name_any())).collect();
        self.gap = period / u32::try_from(self.due.len().max(1)).unwrap_or(u32::MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{EipSegment, EipSegmentSpec};
    use futures::StreamExt;
    use kube::runtime::{reflector, watcher};

    fn object(name: &str) -> Cached {
        let mut o = EipSegment::new(name, EipSegmentSpec { region_id: "cn-hangzhou".into(), ..Default::default() });
        o.metadata.namespace = Some("ns".into());
        Cached::keep(o).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn each_object_comes_once_a_round_at_an_even_pace() {
        let (reader, mut writer) = reflector::store();
        writer.apply_watcher_event(&watcher::Event::Init);
        for name in ["a", "b", "c", "d"] {
            writer.apply_watcher_event(&watcher::Event::InitApply(object(name)));
        }
        writer.apply_watcher_event(&watcher::Event::InitDone);
        let period = Duration::from_secs(400);
        let started = Instant::now();
        let stream = rolling(reader, period);
        futures::pin_mut!(stream);
        let mut seen = Vec::new();
        for _ in 0..8 {
            let r = stream.next().await.unwrap();
            seen.push((r.name, started.elapsed().as_secs()));
        }
        let times: Vec<u64> = seen.iter().map(|(_, t)| *t).collect();
        assert_eq!(times, [100, 200, 300, 400, 500, 600, 700, 800], "a quarter period apart");
        let mut first: Vec<&str> = seen[..4].iter().map(|(n, _)| n.as_str()).collect();
        let mut second: Vec<&str> = seen[4..].iter().map(|(n, _)| n.as_str()).collect();
        first.sort();
        second.sort();
        assert_eq!((first, second), (vec!["a", "b", "c", "d"], vec!["a", "b", "c", "d"]), "each once a round");
    }
}
