//! Every cached object's own pass once per [`PERIOD`], spread evenly over it. A settled object
//! needs nothing more: the poller drift-checks its segment and wakes it on any change, so this only
//! guards against a lost wake, as controller-runtime's ten-hour resync does. Each object's turn is
//! a slot its name hashes to; a scan of the cache each slot finds whose turn it is. A timer per
//! object in the controller's queue cost half a KiB each, a list of the round's names as much for
//! the round; a scan costs neither. A pass per object per drift interval would cost thousands of
//! objects more CPU than everything else at rest.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

use futures::Stream;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use tokio::time::Instant;

use super::Cached;

pub const PERIOD: Duration = Duration::from_secs(10 * 3600);

/// Slots per period: at ten hours, a scan a minute.
const SLOTS: u64 = 600;

/// The objects of `store` in turn, each once per `period` in the slot its name hashes to; the
/// first slot begins once the store has listed its objects.
pub fn rolling(store: Store<Cached>, period: Duration) -> impl Stream<Item = ObjectRef<Cached>> + Send {
    let gap = period / SLOTS as u32;
    let turns = Turns { due: Vec::new(), slot: 0, next: None };
    futures::stream::unfold((store, turns), move |(store, mut turns)| async move {
        if store.wait_until_ready().await.is_err() {
            return None;
        }
        loop {
            if let Some(due) = turns.due.pop() {
                return Some((due, (store, turns)));
            }
            let next = *turns.next.get_or_insert_with(|| Instant::now() + gap);
            tokio::time::sleep_until(next).await;
            turns.next = Some(next + gap);
            turns.due = store
                .state_filter(|o| slot_of(o) == turns.slot)
                .iter()
                .map(|o| ObjectRef::new(&o.name_any()).within(&o.namespace().unwrap_or_default()))
                .collect();
            turns.slot = (turns.slot + 1) % SLOTS;
        }
    })
}

struct Turns {
    /// Those whose turn came and who have not yet been handed on.
    due: Vec<ObjectRef<Cached>>,
    /// The slot the next scan looks for.
    slot: u64,
    next: Option<Instant>,
}

/// The object's slot: the same for the life of its name, whatever the process (a fixed hasher).
fn slot_of(o: &Cached) -> u64 {
    let mut hasher = DefaultHasher::new();
    (o.meta().namespace.as_deref(), o.meta().name.as_deref()).hash(&mut hasher);
    hasher.finish() % SLOTS
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{EipSegment, EipSegmentSpec};
    use futures::StreamExt;
    use kube::runtime::{reflector, watcher};
    use std::collections::{BTreeMap, BTreeSet};

    fn object(name: &str) -> Cached {
        let mut o = EipSegment::new(name, EipSegmentSpec { region_id: "cn-hangzhou".into(), ..Default::default() });
        o.metadata.namespace = Some("ns".into());
        Cached::keep(o).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn each_object_comes_once_a_period_a_period_apart() {
        let names: Vec<String> = (0..20).map(|i| format!("seg-{i}")).collect();
        let (reader, mut writer) = reflector::store();
        writer.apply_watcher_event(&watcher::Event::Init);
        for name in &names {
            writer.apply_watcher_event(&watcher::Event::InitApply(object(name)));
        }
        writer.apply_watcher_event(&watcher::Event::InitDone);
        let period = Duration::from_secs(600);
        let started = Instant::now();
        let stream = rolling(reader, period);
        futures::pin_mut!(stream);
        let mut seen: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        while let Ok(Some(r)) = tokio::time::timeout_at(started + 2 * period, stream.next()).await {
            seen.entry(r.name).or_default().push(started.elapsed().as_secs());
        }
        assert_eq!(seen.len(), names.len(), "every object had its turn: {seen:?}");
        for (name, at) in &seen {
            assert_eq!(at.len(), 2, "{name} came once in each of two periods: {at:?}");
            assert!(at[0] >= 1 && at[0] <= 600, "{name}'s first turn falls in the first period: {at:?}");
            assert_eq!(at[1] - at[0], 600, "{name}'s turns are a period apart");
        }
        let distinct: BTreeSet<u64> = seen.values().map(|at| at[0]).collect();
        assert!(distinct.len() > 10, "turns spread over the period, not one burst: {distinct:?}");
    }

    #[test]
    fn slots_spread_ten_thousand_objects_evenly() {
        let mut per_slot = vec![0u32; SLOTS as usize];
        for i in 0..10_000 {
            per_slot[slot_of(&object(&format!("segment-{i:05}"))) as usize] += 1;
        }
        let mean = 10_000 / SLOTS as u32;
        let busiest = per_slot.iter().max().copied().unwrap_or_default();
        assert!(busiest <= 3 * mean, "no slot holds more than thrice its share: {busiest} against {mean}");
    }
}
