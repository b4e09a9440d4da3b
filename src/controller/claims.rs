//! Which cached objects name each segment, kept from the watch as the cache is. Every pass asks for
//! the other objects that name its segment; a scan of the whole cache per pass made a restart with
//! 10,000 objects take 50 s.

use std::collections::HashMap;

use kube::ResourceExt;
use kube::runtime::watcher::Event;

use super::cache::Cached;
use crate::crd::EipSegment;
use crate::lifecycle::Identity;

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
}
