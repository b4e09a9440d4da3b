//! Objects that leave the cluster without finishing (their finalizer stripped by hand, or removed
//! with the namespace while the operator was down): nothing of them is kept. A Delete event forgets
//! the object at once; a fresh listing after a broken watch, which shows no Delete for what went
//! meanwhile, forgets every object of the watch's scope that it does not hold. Forgotten: its
//! backoff, its place in a quota's queue, its share of the ready and in-flight gauges, and the
//! poller's looks at its segments.

use std::collections::HashSet;
use std::sync::Arc;

use kube::ResourceExt;
use kube::runtime::watcher::Event;

use super::{Cached, Context};
use crate::poller::WakeTarget;

pub struct Removals {
    ctx: Arc<Context>,
    /// The watch's namespace; None for every namespace.
    scope: Option<String>,
    /// The objects a listing has shown so far, from its Init to its InitDone.
    listing: Option<HashSet<(String, WakeTarget)>>,
}

impl Removals {
    pub fn new(ctx: Arc<Context>, scope: Option<String>) -> Removals {
        Removals { ctx, scope, listing: None }
    }

    pub fn observe(&mut self, event: &Event<Cached>) {
        match event {
            Event::Delete(o) => {
                let (uid, target) = identity(o);
                self.ctx.pacing.forget(&uid);
                self.ctx.poller.forget_targets(|t| *t == target);
            }
            Event::Init => self.listing = Some(HashSet::new()),
            Event::InitApply(o) => {
                if let Some(listing) = &mut self.listing {
                    listing.insert(identity(o));
                }
            }
            Event::InitDone => {
                if let Some(listing) = self.listing.take() {
                    self.keep_only(&listing);
                }
            }
            Event::Apply(_) => {}
        }
    }

    fn keep_only(&self, listing: &HashSet<(String, WakeTarget)>) {
        let in_scope = |namespace: &str| self.scope.as_deref().is_none_or(|s| s == namespace);
        let uids: HashSet<String> = listing.iter().map(|(uid, _)| uid.clone()).collect();
        self.ctx.pacing.keep_only(&uids, in_scope);
        let targets: HashSet<&WakeTarget> = listing.iter().map(|(_, t)| t).collect();
        self.ctx.poller.forget_targets(|t| in_scope(&t.namespace) && !targets.contains(t));
    }
}

fn identity(o: &Cached) -> (String, WakeTarget) {
    let target = WakeTarget { namespace: o.namespace().unwrap_or_default(), name: o.name_any() };
    (o.uid().unwrap_or_default(), target)
}
