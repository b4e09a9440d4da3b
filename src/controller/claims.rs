//! Which cached objects name each segment, kept from the watch as the cache is. Every pass asks for
//! the other objects that name its segment; a scan of the whole cache per pass made a restart with
//! 10,000 objects take 50 s.

use std::collections::{BTreeSet, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};

use kube::ResourceExt;
use kube::runtime::watcher::Event;

use super::cache::Cached;
use crate::crd::{EipSegment, FINALIZER};
use crate::lifecycle::{Identity, conditions};

/// An object by namespace and name alone: all it takes to find it in the cache.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Name {
    pub namespace: Box<str>,
    pub name: Box<str>,
}

fn name_of(o: &Cached) -> Name {
    Name { namespace: o.namespace().unwrap_or_default().into(), name: o.name_any().into() }
}

/// The segments an object names: in its spec, its status or its identity annotation.
pub fn named(o: &EipSegment) -> Vec<String> {
    let status = o.status.as_ref().and_then(|s| s.segment_instance_id.clone());
    let mut ids: Vec<String> =
        [o.spec.segment_instance_id.clone(), status, Identity::from_annotations(o.annotations()).segment_id]
            .into_iter()
            .flatten()
            .map(|id| id.trim().to_string())
            .filter(|id| !id.is_empty())
            .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// A digest of what another object naming the same segment decides on (the lifecycle's
/// `Claimant`): whether this one is being deleted or carries the finalizer, the segments it names,
/// the segment and account its status records, its Ready reason and its last failure's class. The
/// operator's status writes call for no pass of their own object, but a change of this wakes the
/// others: an object waiting for an heir to take its segment over, or for a holder to settle it,
/// goes on at once rather than at its next retry.
pub fn stance(o: &EipSegment) -> u32 {
    let status = o.status.as_ref();
    let mut digest = DefaultHasher::new();
    o.metadata.deletion_timestamp.is_some().hash(&mut digest);
    o.finalizers().iter().any(|f| f == FINALIZER).hash(&mut digest);
    named(o).hash(&mut digest);
    status.map(|s| (&s.segment_instance_id, &s.account_id)).hash(&mut digest);
    status.and_then(conditions::ready_reason).hash(&mut digest);
    status.and_then(|s| s.last_error.as_ref()).map(|e| &e.class).hash(&mut digest);
    // Half the digest: it fits the cache entry's padding, and a miss costs only a retry's wait.
    digest.finish() as u32
}

/// The index of one watch. It follows the watch's events as its store does, each before the store
/// takes it (so that the store still holds the version it replaces): a relist builds a new index
/// that replaces the old one only once the relist is complete.
#[derive(Default)]
pub struct Claims {
    live: Index,
    relisting: Option<Index>,
}

/// Nearly every segment is named by one object: a list of its namers is smaller than a set.
#[derive(Default)]
struct Index {
    by_segment: HashMap<Box<str>, Vec<Name>>,
}

impl Index {
    fn put(&mut self, o: &Cached, before: Option<&Cached>) {
        let key = name_of(o);
        if let Some(before) = before {
            self.remove(&key, &before.names);
        }
        for id in &o.names {
            self.by_segment.entry(id.clone()).or_insert_with(|| Vec::with_capacity(1)).push(key.clone());
        }
    }

    fn remove(&mut self, key: &Name, names: &[Box<str>]) {
        for id in names {
            if let Some(holders) = self.by_segment.get_mut(id) {
                holders.retain(|held| held != key);
                if holders.is_empty() {
                    self.by_segment.remove(id);
                }
            }
        }
    }
}

impl Claims {
    /// Follows one event; `before` is the version of its object that the store holds now.
    pub fn observe(&mut self, event: &Event<Cached>, before: Option<&Cached>) {
        match event {
            Event::Apply(o) => self.live.put(o, before),
            Event::Delete(o) => self.live.remove(&name_of(o), &before.unwrap_or(o).names),
            Event::Init => self.relisting = Some(Index::default()),
            Event::InitApply(o) => self.relisting.get_or_insert_default().put(o, None),
            Event::InitDone => {
                if let Some(fresh) = self.relisting.take() {
                    self.live = fresh;
                }
            }
        }
    }

    /// The objects that named the segment when last seen; the cache's copy is the one to check.
    pub fn naming(&self, segment_id: &str) -> Vec<Name> {
        self.live.by_segment.get(segment_id).cloned().unwrap_or_default()
    }

    /// The others to wake once `event` is followed: every object of its namespace that names a
    /// segment that the event's object names, or named in `before`, when its stance changed or it
    /// is gone. Only an object of the same namespace waits for another (another namespace's never
    /// holds a release back nor hands a segment over), so no tenant's edits cost another's passes.
    pub fn to_wake(&self, event: &Event<Cached>, before: Option<&Cached>) -> BTreeSet<(Box<str>, Box<str>)> {
        let o = match event {
            Event::Apply(o) if o.stance_changed => o,
            Event::Delete(o) => o,
            _ => return BTreeSet::new(),
        };
        let itself = name_of(o);
        let before = before.map_or(&[][..], |b| &b.names[..]);
        o.names
            .iter()
            .chain(before)
            .flat_map(|id| self.naming(id))
            .filter(|n| *n != itself && n.namespace == itself.namespace)
            .map(|n| (n.namespace, n.name))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{EipSegmentSpec, EipSegmentStatus};

    fn object(name: &str, spec_id: Option<&str>, status_id: Option<&str>) -> Cached {
        let spec: EipSegmentSpec =
            serde_json::from_value(serde_json::json!({"regionId": "r", "segmentInstanceId": spec_id})).unwrap();
        let mut o = EipSegment::new(name, spec);
        o.metadata.namespace = Some("ns".into());
        o.status = status_id.map(|id| EipSegmentStatus { segment_instance_id: Some(id.into()), ..Default::default() });
        Cached::keep(o).unwrap()
    }

    fn names(claims: &Claims, id: &str) -> Vec<String> {
        let mut names: Vec<String> = claims.naming(id).into_iter().map(|r| r.name.into()).collect();
        names.sort();
        names
    }

    /// Feeds the event to the index as the watch does: against the store's copy, which then takes it.
    fn follow(claims: &mut Claims, store: &mut HashMap<String, Cached>, event: Event<Cached>) {
        let object = match &event {
            Event::Apply(o) | Event::Delete(o) | Event::InitApply(o) => Some(o.name_any()),
            Event::Init | Event::InitDone => None,
        };
        claims.observe(&event, object.as_ref().and_then(|n| store.get(n)));
        match event {
            Event::Apply(o) => drop(store.insert(o.name_any(), o)),
            Event::Delete(o) => drop(store.remove(&o.name_any())),
            _ => {}
        }
    }

    #[test]
    fn follows_the_watch_and_a_relist_replaces_it_once_complete() {
        let (mut claims, mut store) = (Claims::default(), HashMap::new());
        follow(&mut claims, &mut store, Event::Apply(object("a", Some("s1"), Some("s1"))));
        follow(&mut claims, &mut store, Event::Apply(object("b", None, Some("s1"))));
        follow(&mut claims, &mut store, Event::Apply(object("c", Some("s2"), None)));
        assert_eq!(names(&claims, "s1"), ["a", "b"]);
        follow(&mut claims, &mut store, Event::Apply(object("b", None, Some("s3"))));
        assert_eq!(names(&claims, "s1"), ["a"], "an object that names another segment leaves");
        assert_eq!(names(&claims, "s3"), ["b"]);
        follow(&mut claims, &mut store, Event::Apply(object("b", None, Some("s3"))));
        assert_eq!(names(&claims, "s3"), ["b"], "named once however often it is seen");
        follow(&mut claims, &mut store, Event::Delete(object("a", Some("s1"), Some("s1"))));
        assert!(names(&claims, "s1").is_empty());

        claims.observe(&Event::Init, None);
        claims.observe(&Event::InitApply(object("d", Some("s2"), None)), None);
        assert_eq!(names(&claims, "s2"), ["c"], "until the relist is complete, the old index stands");
        claims.observe(&Event::InitDone, None);
        assert_eq!(names(&claims, "s2"), ["d"], "then only what it listed");
        assert!(names(&claims, "s3").is_empty());
    }

    /// Follows the event as the watch does, and says whom it wakes.
    fn woken(claims: &mut Claims, store: &mut HashMap<String, Cached>, event: Event<Cached>) -> Vec<String> {
        let mut event = event;
        let name = match &event {
            Event::Apply(o) | Event::Delete(o) => o.name_any(),
            _ => unreachable!(),
        };
        let before = store.get(&name).cloned();
        event = event.modify(|o| o.compare(before.as_ref()));
        let woken = {
            claims.observe(&event, before.as_ref());
            claims.to_wake(&event, before.as_ref()).into_iter().map(|(_, n)| n.into()).collect()
        };
        match event {
            Event::Apply(o) => drop(store.insert(name, o)),
            _ => drop(store.remove(&name)),
        }
        woken
    }

    #[test]
    fn a_change_of_stance_wakes_the_others_that_name_the_segment_and_nothing_else_does() {
        let (mut claims, mut store) = (Claims::default(), HashMap::new());
        assert!(woken(&mut claims, &mut store, Event::Apply(object("holder", None, Some("s1")))).is_empty());
        assert!(
            woken(&mut claims, &mut store, Event::Apply(object("heir", Some("s1"), None))).is_empty(),
            "a new object"
        );
        woken(&mut claims, &mut store, Event::Apply(object("bystander", Some("s2"), None)));
        let mut elsewhere = object("elsewhere", Some("s1"), None).object().unwrap();
        elsewhere.metadata.namespace = Some("other".into());
        woken(&mut claims, &mut store, Event::Apply(Cached::keep(elsewhere).unwrap()));
        assert!(
            woken(&mut claims, &mut store, Event::Apply(object("heir", Some("s1"), None))).is_empty(),
            "the same stance again"
        );
        assert_eq!(woken(&mut claims, &mut store, Event::Apply(object("heir", Some("s1"), Some("s1")))), ["holder"]);

        let mut deleting = object("holder", None, Some("s1")).object().unwrap();
        deleting.metadata.deletion_timestamp =
            Some(serde_json::from_value(serde_json::json!("2026-01-01T00:00:00Z")).unwrap());
        assert_eq!(woken(&mut claims, &mut store, Event::Apply(Cached::keep(deleting.clone()).unwrap())), ["heir"]);
        assert_eq!(woken(&mut claims, &mut store, Event::Delete(Cached::keep(deleting).unwrap())), ["heir"]);
        assert_eq!(
            woken(&mut claims, &mut store, Event::Apply(object("heir", Some("s1"), Some("s3")))),
            Vec::<String>::new(),
            "nobody else names either segment now"
        );
    }
}
