//! The lifecycle core, model-checked with stateright over every interleaving of user edits,
//! operator passes, crashes, lost answers, failed writes and looks, and the cloud's asynchronous
//! changes, in two isolated accounts, with a tenant of another namespace who copies or forges
//! identity annotations and adopts what is not its own. The decisions are the operator's own
//! (`eipsegment_operator::lifecycle::decide`); around them the model does what the glue
//! (`src/controller`) does: passes of different objects under way at once, reading a cache that
//! lags; status written before the identity annotations, each write with the read's
//! resourceVersion; after a sent call, a conflict decided again on the fresh object; a deposed
//! replica that cannot prove it holds the Lease; a throttling hint capped. The cloud moves between
//! endpoints, forgets its ClientTokens after a day, refuses replays with region or parameter
//! codes and throttles with any TimeLeft; a user may strip an object's finalizer. Then each
//! earlier rule the core or the glue replaced is run through the same model, and the checker must
//! find the violation it allowed.
//!
//! Each scenario bounds the faults and user edits; within those budgets the search is exhaustive
//! (every reachable state) unless `MODELCHECK_DEPTH` (default 40) cuts it first. `make modelcheck`
//! raises every budget by `MODELCHECK_BUDGET`; `MODELCHECK_SCENARIO` runs only the scenarios whose
//! name holds its text. A violation is printed as a story, step by step.

mod model;
mod properties;
mod rules;

use std::time::Instant;

use stateright::{Checker, HasDiscoveries, Model as _, Property};

use model::{ACCOUNT_A, ACCOUNT_B, Action, CallEnd, Hostile, Keys, LookFault, Model, Op, Scenario, State, Tenant};
use model::{User, UserKind};
use rules::{Earlier, Rules};

impl stateright::Model for Model {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        vec![self.init()]
    }

    fn actions(&self, state: &State, actions: &mut Vec<Action>) {
        self.enabled(state, actions)
    }

    fn next_state(&self, state: &State, action: Action) -> Option<State> {
        self.step(state, &action)
    }

    fn format_action(&self, action: &Action) -> String {
        story(self, action)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always("no allocated segment is left without an object that can release it", |m, s| {
                properties::leaked(m, s).is_empty()
            }),
            Property::always(
                "no release is accepted unless its owner is deleted with Delete (as its namespace's policy allows) \
                 and no other object of its namespace wants it",
                |_, s: &State| s.premature_release.is_none(),
            ),
            Property::always(
                "an owner deleted with Delete leaves its segment to no one but an heir of its namespace",
                |_, s: &State| s.misplaced.is_none(),
            ),
            Property::always("an object holds only a segment it allocated or adopts by its spec", |_, s: &State| {
                properties::holds_only_its_own(s)
            }),
            Property::always(
                "the operator's own credentials act only for a namespace its policy lets use them",
                |_, s: &State| s.operator_call.is_none(),
            ),
            Property::always("at most one allocation per object, across restores", |_, s: &State| {
                properties::allocations_per_object_at_most_one(s)
            }),
            Property::always("at most one release token per segment", |_, s: &State| {
                properties::one_release_token_per_segment(s)
            }),
            Property::always(
                "a deleting object sends an allocation only if its status recorded a pending allocation (or a \
                 segment) before its deletion",
                |_, s: &State| s.unfounded_allocation.is_none(),
            ),
            Property::always("no operator write erases from status a segment still allocated", |_, s: &State| {
                s.erased.is_none()
            }),
            Property::always(
                "every deletion finishes once faults and throttling stop, whatever TimeLeft the cloud gave",
                properties::deletions_finish,
            ),
        ]
    }
}

fn story(m: &Model, action: &Action) -> String {
    let at = |slot: &usize| m.label(*slot);
    match action {
        Action::User(User::Delete(i)) => format!("the user deletes {}", at(i)),
        Action::User(User::FlipPolicy(i)) => format!("the user flips {}'s deletion policy", at(i)),
        Action::User(User::Keys(Keys::Of(a))) => {
            format!("the user puts keys of account {a} into the credentials Secret")
        }
        Action::User(User::Keys(Keys::Broken)) => "the user puts a wrong secret key into the Secret".into(),
        Action::User(User::DeleteSecret) => "the credentials Secret is deleted (as its namespace goes)".into(),
        Action::User(User::Restore(i)) => {
            format!("{} comes back from a backup: spec and annotations, no status, a new UID", at(i))
        }
        Action::User(User::Adopt(id)) => format!("the user creates team/seg1 adopting {id} with deletionPolicy Delete"),
        Action::User(User::Tenant(hostile)) => tenant_story(hostile),
        Action::User(User::Strip(i)) => {
            format!("the user strips {}'s finalizer by hand and deletes it: it is gone", at(i))
        }
        Action::Watch => "the watch delivers: the operator's cache catches up".into(),
        Action::User(User::Endpoint(e)) => format!("the credentials' endpoint for allocations becomes {e}"),
        Action::DayPasses => {
            "a day passes: the cloud forgets its ClientTokens, and now refuses a /28 here (InvalidParameter.Mask)"
                .into()
        }
        Action::Depose => "the Lease passes to a new replica; the old one runs on with the cache it has".into(),
        Action::Stale(i) => format!("the deposed replica reconciles {} from its cache, on its own clock", at(i)),
        Action::Operator(Op::Pass(i, LookFault::None)) => format!("the operator reconciles {}", at(i)),
        Action::Operator(Op::Pass(i, LookFault::Failed)) => {
            format!("the operator reconciles {}; its look fails", at(i))
        }
        Action::Operator(Op::Pass(i, LookFault::Malformed)) => {
            format!("the operator reconciles {}; the cloud answers its look with a 2xx without the list", at(i))
        }
        Action::Operator(Op::Call(i, end)) => {
            let what = match end {
                CallEnd::Answered => "writes, then calls the cloud, which answers",
                CallEnd::AnswerLost => "writes, then calls; the cloud acts but the answer is lost",
                CallEnd::NotSent => "writes, then calls; the call never reaches the cloud",
                CallEnd::Refused => "writes, then calls; the cloud refuses (quota, or a member EIP in use)",
                CallEnd::WriteFailed => "fails its writes before the call: no call",
                CallEnd::NotAdmitted => "finds no place in the client-side rate: no writes, no call",
                CallEnd::Throttled => "writes, then calls; the cloud throttles it with TimeLeft 86400 s",
                CallEnd::CrashBetweenWrites if m.rules.glue().status_first => {
                    "writes status, and crashes before the identity annotations and the call"
                }
                CallEnd::CrashBetweenWrites => {
                    "writes the identity annotations, and crashes before status and the call"
                }
            };
            format!("for {}, the operator {what}", at(i))
        }
        Action::Operator(Op::Record(i)) => format!("the operator records what followed for {}", at(i)),
        Action::Operator(Op::Crash) => "the operator crashes before recording".into(),
        Action::Cloud(id) => format!("the cloud moves {id} along (visible, then Allocated, or gone after a release)"),
    }
}

fn tenant_story(hostile: &Hostile) -> String {
    let created = "namespace other's user creates other/seg0";
    match hostile {
        Hostile::Copy => format!("{created} with team/seg0's identity annotations and proof copied"),
        Hostile::Forge { segment, token } => {
            let segment = segment.as_ref().map(|id| format!("segment-id {id}, ")).unwrap_or_default();
            format!("{created} with forged annotations: {segment}allocation-token {token}, credentials-source Operator")
        }
        Hostile::Adopt(id) => format!("{created} adopting {id} with deletionPolicy Delete"),
    }
}

/// What the operator decided in a pass, for the story.
fn decided(state: &State, slot: usize) -> String {
    let Some(p) = state.passes.iter().find(|p| p.slot == slot) else { return String::new() };
    let call = match &p.m.call {
        Some(eipsegment_operator::lifecycle::Call::Allocate(r)) if !p.called => {
            let elsewhere = p.acting.filter(|a| a.endpoint == model::ELSEWHERE).map(|a| format!(" at {}", a.endpoint));
            format!("allocate with token {}{}", r.client_token, elsewhere.unwrap_or_default())
        }
        Some(eipsegment_operator::lifecycle::Call::Release { segment_id, token, .. }) if !p.called => {
            format!("release {segment_id} with token {token}")
        }
        _ => match p.m.next {
            eipsegment_operator::lifecycle::Next::Finish => "let the object go".into(),
            eipsegment_operator::lifecycle::Next::Wait(pace) => format!("wait ({pace:?})"),
        },
    };
    let event = p.m.event.as_ref().map(|e| format!(", event {}: {}", e.reason, e.note)).unwrap_or_default();
    format!("    decides: {call}{event}")
}

/// The path cut at the first state that violates the property: a violation found further on (the
/// search runs on two threads, and a flag once raised stays) tells the same story at more length.
fn up_to_first_violation(
    mut steps: Vec<(State, Option<Action>)>,
    property: &str,
    model: &Model,
) -> Vec<(State, Option<Action>)> {
    let properties = model.properties();
    let Some(found) = properties.iter().find(|p| p.name == property) else { return steps };
    if let Some(first) = steps.iter().position(|(state, _)| !(found.condition)(model, state)) {
        steps.truncate(first + 1);
        steps[first].1 = None;
    }
    steps
}

fn print_story(path: stateright::Path<State, Action>, property: &str, model: &Model) {
    println!("    violated: {property}");
    let steps = up_to_first_violation(path.into_vec(), property, model);
    for (i, (state, action)) in steps.iter().enumerate() {
        let Some(action) = action else { continue };
        println!("    {:>2}. {}", i + 1, story(model, action));
        if let Some((next, _)) = steps.get(i + 1)
            && let Action::Operator(Op::Pass(slot, _) | Op::Call(slot, _)) = action
        {
            let decision = decided(next, *slot);
            if !decision.is_empty() {
                println!("{decision}");
            } else if let Action::Operator(Op::Call(_, CallEnd::Answered | CallEnd::AnswerLost)) = action {
                println!("    its write before the call meets a changed or gone object: no call");
            }
        }
        let _ = state;
    }
    if property.starts_with("every deletion finishes")
        && let Some((last, _)) = steps.last()
    {
        println!("    then, without faults and with the credentials put right, round after round:");
        properties::continuation(model, last, |c| {
            let objects: Vec<String> = c
                .objects
                .iter()
                .enumerate()
                .filter(|(_, o)| o.exists)
                .map(|(i, o)| {
                    let ready = eipsegment_operator::lifecycle::conditions::get(&o.status, "Ready")
                        .map(|c| format!("{}: {}", c.reason, c.message))
                        .unwrap_or_default();
                    let synced = o.status.last_error.as_ref().map(|e| format!(" [{}]", e.message)).unwrap_or_default();
                    let paused =
                        c.paused.get(&i).filter(|left| **left > 0).map(|left| format!(", its requeue {left} s away"));
                    let deleting = if o.deleting { " (deleting)" } else { "" };
                    format!("{}{deleting} {ready}{synced}{}", model.label(i), paused.unwrap_or_default())
                })
                .collect();
            println!("      {}", objects.join("; "));
        });
    }
    if let Some((last, _)) = steps.last() {
        let segments: Vec<String> =
            last.cloud.segments.iter().map(|(id, s)| format!("{id} in {} ({:?})", s.account, s.status)).collect();
        println!("    in the end: cloud holds [{}]; leaked {:?}", segments.join(", "), properties::leaked(model, last));
    }
}

fn scenarios() -> Vec<Scenario> {
    use UserKind::*;
    let more = env("MODELCHECK_BUDGET", 0) as u8;
    let scenario =
        |name, faults: u8, user_actions: u8, user| Scenario::new(name, faults + more, user_actions + more, user);
    vec![
        scenario("credentials change, break or go", 1, 2, vec![Delete, SwitchAccount, BreakKeys, DeleteSecret]),
        scenario("crashes, lost answers and policy flips", 2, 1, vec![Delete, FlipPolicy]).lagging(),
        scenario("restore from a backup", 1, 1, vec![Delete, Restore]).lagging().deeper(2),
        scenario("two objects naming one segment", 1, 0, vec![Delete]).adopting().deeper(8),
        scenario("two objects, credentials and policy", 1, 1, vec![Delete, FlipPolicy, SwitchAccount, DeleteSecret])
            .adopting()
            .deeper(8),
        scenario("all of it at once", 2, 2, vec![Delete, FlipPolicy, SwitchAccount, BreakKeys, DeleteSecret, Restore])
            .lagging(),
        // The tenant keeps keys of the team's account, but its policy is the shared profile.
        scenario("another namespace copies identity", 1, 0, vec![Delete, CopyIdentity])
            .tenant(Tenant::shared_profile(Some(ACCOUNT_A)))
            .deeper(8),
        scenario(
            "another namespace without credentials adopts and forges",
            1,
            0,
            vec![Delete, AdoptAcross, ForgeIdentity],
        )
        .tenant(Tenant::shared_profile(None))
        .deeper(8),
        // Both namespaces act in account B, the team with its Secret, the tenant with the
        // operator's credentials: trusted, yet not the team's heir.
        scenario("another namespace trusted in the same account", 1, 1, vec![Delete, AdoptAcross, SwitchAccount])
            .team_keys(ACCOUNT_B)
            .tenant(Tenant::permissive(None))
            .deeper(8),
        scenario("another namespace adopts what the team kept", 1, 1, vec![Delete, FlipPolicy, AdoptAcross])
            .tenant(Tenant::adopts_to_keep(Some(ACCOUNT_A)))
            .deeper(8),
        scenario("heirs in two namespaces", 0, 0, vec![Delete, AdoptAcross])
            .adopting()
            .team_keys(ACCOUNT_B)
            .tenant(Tenant::permissive(None))
            .deeper(8),
        scenario("throttling with any TimeLeft", 1, 0, vec![Delete]).throttling(),
        scenario("a replay refused at another endpoint", 1, 1, vec![Delete, MoveEndpoint]),
        scenario("a replay refused after the cloud forgot its token", 1, 1, vec![Delete, FlipPolicy]).forgetful(),
        scenario("a crash between the writes before a call", 1, 0, vec![Delete]).split_writes(),
        scenario("a lagging cache and the client-side rate", 1, 0, vec![Delete]).stale_cache(),
        scenario("an object removed with its finalizer stripped", 0, 0, vec![Delete, Strip]).stale_cache(),
        scenario("a deposed replica", 1, 0, vec![Delete]).second_replica(),
        scenario("two objects reconciled at once from a lagging cache", 0, 0, vec![Delete])
            .adopting()
            .concurrent(2)
            .deeper(8),
    ]
}

/// The scenarios in which an earlier rule's flaw shows.
fn scenarios_for(earlier: Earlier) -> &'static [&'static str] {
    match earlier {
        Earlier::AnyAccount => &["credentials change, break or go"],
        Earlier::MalformedIsAbsent | Earlier::MarkerClearedOnRefusal | Earlier::RetainForgetsPending => {
            &["crashes, lost answers and policy flips"]
        }
        Earlier::StatusOnlyIdentity => &["restore from a backup"],
        Earlier::NoOwnerCheck => &["two objects naming one segment"],
        Earlier::UnprovenBelieved => {
            &["another namespace copies identity", "another namespace without credentials adopts and forges"]
        }
        Earlier::AnyNamespaceHandOver => &["another namespace trusted in the same account", "heirs in two namespaces"],
        Earlier::PolicyIgnored => {
            &["another namespace without credentials adopts and forges", "another namespace adopts what the team kept"]
        }
        Earlier::UnboundedHint => &["throttling with any TimeLeft"],
        Earlier::RefusalProvesAnywhere => {
            &["a replay refused at another endpoint", "a replay refused after the cloud forgot its token"]
        }
        Earlier::IdentityBeforeStatus => &["a crash between the writes before a call"],
        Earlier::ForcedAfterConflict => &["a lagging cache and the client-side rate"],
        Earlier::Unfenced => &["a deposed replica"],
        Earlier::ActsForRemoved => &["an object removed with its finalizer stripped"],
        Earlier::ClaimsFromCache => &["two objects reconciled at once from a lagging cache"],
    }
}

struct Run {
    states: usize,
    unique: usize,
    depth: usize,
    seconds: f64,
}

/// The properties violated, each with the path that shows it.
type Found = Vec<(&'static str, stateright::Path<State, Action>)>;

fn check(model: Model, depth: usize, threads: usize, stop_at_first: bool) -> (Run, Found, Model) {
    let started = Instant::now();
    let mut builder = model.checker().threads(threads).target_max_depth(depth);
    if stop_at_first {
        builder = builder.finish_when(HasDiscoveries::Any);
    }
    let checker = builder.spawn_bfs().join();
    let run = Run {
        states: checker.state_count(),
        unique: checker.unique_state_count(),
        depth: checker.max_depth(),
        seconds: started.elapsed().as_secs_f64(),
    };
    // In the order the properties are listed.
    let order: Vec<&str> = checker.model().properties().iter().map(|p| p.name).collect();
    let mut found: Vec<_> = checker.discoveries().into_iter().collect();
    found.sort_by_key(|(property, _)| order.iter().position(|name| name == property));
    let model = Model { scenario: checker.model().scenario.clone(), rules: checker.model().rules };
    (run, found, model)
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Runs an earlier rule through a scenario until the first violation, and tells its story.
fn finds(earlier: Earlier, name: &str, depth: usize, threads: usize) -> bool {
    let Some(scenario) = scenarios().into_iter().find(|s| s.name == name) else {
        println!("  earlier rule {earlier:?}: no scenario {name:?}");
        return false;
    };
    let deep = depth + scenario.extra_depth;
    let (run, found, model) = check(Model { scenario, rules: Rules::Earlier(earlier) }, deep, threads, true);
    match found.into_iter().next() {
        Some((property, path)) => {
            println!("  earlier rule {earlier:?}, {name}: found after {} states, {:.1} s:", run.unique, run.seconds);
            print_story(path, property, &model);
            true
        }
        None => {
            println!("  earlier rule {earlier:?}, {name}: NOT found in {} states to depth {}", run.unique, run.depth);
            false
        }
    }
}

fn main() {
    // libtest's arguments (`--list`, filters) are accepted and ignored: this is one check.
    if std::env::args().any(|a| a == "--list") {
        println!("modelcheck: test");
        return;
    }
    let depth = env("MODELCHECK_DEPTH", 40);
    let threads = env("MODELCHECK_THREADS", 2);
    let mut failed = false;
    // Only the scenarios whose name holds this text, when it is given.
    let only = std::env::var("MODELCHECK_SCENARIO").unwrap_or_default();
    println!("model checking the lifecycle core to depth {depth} with {threads} threads");
    for scenario in scenarios().into_iter().filter(|s| s.name.contains(&only)) {
        let name = scenario.name;
        let deep = depth + scenario.extra_depth;
        let (run, found, model) = check(Model { scenario, rules: Rules::Current }, deep, threads, false);
        println!(
            "  current rules, {name}: {} states ({} unique), depth {}, {:.1} s: {}",
            run.states,
            run.unique,
            run.depth,
            run.seconds,
            if found.is_empty() { "every property holds".to_string() } else { format!("{} violated", found.len()) }
        );
        for (property, path) in found {
            failed = true;
            print_story(path, property, &model);
        }
    }
    for earlier in Earlier::ALL {
        for name in scenarios_for(earlier).iter().filter(|name| name.contains(&only)) {
            failed |= !finds(earlier, name, depth, threads);
        }
    }
    if failed {
        std::process::exit(1);
    }
}
