//! The profiles and the schedule: a function of the seed alone. What the operator happens to be doing
//! at each scheduled moment depends on timing; which object a runtime fault picks (the holder an
//! adopter names, the object a restore re-creates, the Secret deleted by hand) depends on what the
//! run sees then, drawn with an rng of the seed.

use std::collections::HashSet;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Profile {
    pub name: &'static str,
    pub objects: usize,
    /// How many of them have `deletionPolicy: Retain`.
    pub retain: usize,
    /// Objects per wave (inclusive range).
    pub wave: (usize, usize),
    /// From a wave's creation to its deletions.
    pub delete_pause_ms: (u64, u64),
    /// From a wave's deletions to the next wave.
    pub wave_gap_ms: (u64, u64),
    /// Chance, at each wave, that each live object of an earlier wave is deleted.
    pub delete_earlier: f64,
    /// Chance that an object of the wave just created is deleted at once (mid-allocation).
    pub delete_new: f64,
    /// Chance that a new object takes the name of one already gone (in its namespace).
    pub reuse_name: f64,
    pub kills: usize,
    /// Running time before each kill.
    pub kill_gap_ms: (u64, u64),
    /// Time dead after each kill.
    pub kill_pause_ms: (u64, u64),
    pub apiserver_down_s: (u64, u64),
    pub allocate_seconds: f64,
    pub release_seconds: f64,
    /// Namespaces the objects are spread over; one operator watches them all.
    pub namespaces: usize,
    /// How many of them (the last ones) are deleted whole in the middle of the run.
    pub namespace_deletions: usize,
    /// Chance that an object names `keys-a` (the default account's keys) in
    /// `spec.credentialsSecretRef`, and `keys-b` (the other account's).
    pub keys_a: f64,
    pub keys_b: f64,
    /// `keys-a` of a namespace gets the other account's keys, then its own back.
    pub switches_other: usize,
    /// `keys-a` of a namespace gets a wrong secret key, then its own back.
    pub switches_wrong: usize,
    /// How long a switched Secret keeps the foreign keys (at least 3 s after the deletions it is
    /// there for).
    pub switch_ms: (u64, u64),
    /// Credentials Secrets in use deleted by hand.
    pub secret_deletions: usize,
    /// Share of successful cloud answers replaced by a malformed HTTP 200 (every shape).
    pub malformed_rate: f64,
    /// Objects adopting the segment another live object holds.
    pub adoptions: usize,
    /// Chance that an adopter says `deletionPolicy: Delete` (else the adoption default, Retain).
    pub adopt_delete: f64,
    /// Chance that the holder an adopter names is deleted at the next wave, while the adopter lives.
    pub adopt_handover: f64,
    /// Objects removed behind the operator's back and re-applied from their saved manifest.
    pub restores: usize,
    /// Acts of the hostile tenant, its kinds in turn.
    pub hostile: usize,
}

pub const SHORT: Profile = Profile {
    name: "short",
    objects: 42,
    retain: 2,
    wave: (4, 8),
    delete_pause_ms: (0, 2500),
    wave_gap_ms: (2000, 5000),
    delete_earlier: 0.3,
    delete_new: 0.2,
    reuse_name: 0.1,
    kills: 10,
    kill_gap_ms: (2500, 7000),
    kill_pause_ms: (100, 2500),
    apiserver_down_s: (1, 3),
    allocate_seconds: 2.0,
    release_seconds: 2.0,
    namespaces: 3,
    namespace_deletions: 1,
    keys_a: 0.35,
    keys_b: 0.25,
    switches_other: 1,
    switches_wrong: 1,
    switch_ms: (4000, 7000),
    secret_deletions: 1,
    malformed_rate: 0.05,
    adoptions: 4,
    adopt_delete: 0.5,
    adopt_handover: 0.5,
    restores: 4,
    hostile: 6,
};

pub const LONG: Profile = Profile {
    name: "long",
    objects: 200,
    retain: 8,
    wave: (6, 16),
    delete_pause_ms: (0, 4000),
    wave_gap_ms: (6000, 20000),
    delete_earlier: 0.25,
    delete_new: 0.15,
    reuse_name: 0.1,
    kills: 55,
    kill_gap_ms: (2000, 7000),
    kill_pause_ms: (100, 3000),
    apiserver_down_s: (2, 6),
    allocate_seconds: 2.0,
    release_seconds: 3.0,
    namespaces: 5,
    namespace_deletions: 2,
    keys_a: 0.35,
    keys_b: 0.25,
    switches_other: 3,
    switches_wrong: 3,
    switch_ms: (4000, 10000),
    secret_deletions: 3,
    malformed_rate: 0.05,
    adoptions: 16,
    adopt_delete: 0.5,
    adopt_handover: 0.5,
    restores: 16,
    hostile: 18,
};

/// The simulator's faults until the end of the waves.
pub fn faults(p: &Profile) -> Value {
    json!({
        "internalErrorRate": 0.10, "dropRate": 0.05, "delayRate": 0.20, "delayMsMin": 100, "delayMsMax": 4000,
        "throttleRate": 0.05, "malformedRate": p.malformed_rate, "malformedShapes": [],
    })
}

pub fn between(rng: &mut StdRng, (lo, hi): (u64, u64)) -> u64 {
    rng.random_range(lo..=hi)
}

/// Where an object's credentials come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Cred {
    /// No `credentialsSecretRef`: the namespace's default credentials Secret where there is one (the
    /// other account's, in the second namespace), else the operator's own (the default account).
    Own,
    /// `credentialsSecretRef: keys-a`: the default account's keys, switched during the run.
    KeysA,
    /// `credentialsSecretRef: keys-b`: the other account's keys.
    KeysB,
}

impl Cred {
    pub fn secret(self) -> Option<&'static str> {
        match self {
            Cred::Own => None,
            Cred::KeysA => Some(KEYS_A),
            Cred::KeysB => Some(KEYS_B),
        }
    }
}

pub const KEYS_A: &str = "keys-a";
pub const KEYS_B: &str = "keys-b";
/// The operator's default name of a namespace's credentials Secret.
pub const NAMESPACE_DEFAULT: &str = "eipsegment-credentials";
/// The namespace (by number) whose default credentials Secret holds the other account's keys.
pub const NAMESPACE_WITH_DEFAULT: usize = 1;

#[derive(Clone, Debug, serde::Serialize)]
pub struct NewObject {
    pub index: usize,
    /// The namespace, by number.
    pub ns: usize,
    pub cred: Cred,
    pub retain: bool,
    /// `deletionPolicy: Delete` written out rather than left to the default.
    pub explicit_delete: bool,
    pub mask: u8,
    pub bandwidth: u32,
    pub reuse_name: bool,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub enum PlannedFault {
    /// `keys-a` of the namespace gets the other account's keys (`wrong: false`) or a wrong secret
    /// key, for `ms`; the wave's deletions include one of its users (one with a segment in the
    /// cloud, if any). Postponed while no user has acted with it.
    Switch { ns: usize, wrong: bool, ms: u64 },
    /// The most used credentials Secret (not a `keys-a`) of a namespace that stays is deleted.
    DeleteSecret,
    /// After the wave's deletions.
    DeleteNamespace { ns: usize },
    /// The hostile tenant acts on a victim's object or segment, picked when it acts.
    Hostile(HostileAct),
}

/// What the hostile tenant does, in its own namespace, to a victim of another namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum HostileAct {
    /// A new object of the victim's name with a copy of its identity annotations and proof.
    CopyIdentity,
    /// A new object with forged annotations: the victim's segment ID, account and allocation token
    /// (`alloc-<victim UID>`), credentials source Operator, and a proof of the right shape; with
    /// keys of the victim's account, or with none.
    ForgeIdentity { with_keys: bool },
    /// An adoption of the victim's segment with deletionPolicy Delete.
    AdoptWithDelete,
    /// An adoption of the victim's segment that can never be established: with the other
    /// account's keys, or naming a Secret that does not exist.
    UnreachableClaim { missing_secret: bool },
}

impl HostileAct {
    /// What it tries, as the report groups the acts.
    pub fn kind(self) -> &'static str {
        match self {
            HostileAct::CopyIdentity => "hostile: identity annotations copied",
            HostileAct::ForgeIdentity { .. } => "hostile: identity annotations forged",
            HostileAct::AdoptWithDelete => "hostile: adoption with Delete",
            HostileAct::UnreachableClaim { .. } => "hostile: claim never established",
        }
    }
}

/// The hostile tenant's acts, each kind in turn.
pub const HOSTILE_ACTS: [HostileAct; 6] = [
    HostileAct::CopyIdentity,
    HostileAct::ForgeIdentity { with_keys: true },
    HostileAct::AdoptWithDelete,
    HostileAct::UnreachableClaim { missing_secret: false },
    HostileAct::ForgeIdentity { with_keys: false },
    HostileAct::UnreachableClaim { missing_secret: true },
];

#[derive(Clone, Debug, serde::Serialize)]
pub struct Wave {
    pub creates: Vec<NewObject>,
    /// Objects that adopt the segment of a live object, made right after the wave's creations.
    pub adoptions: usize,
    /// Restore-style re-creations, right after the adoptions.
    pub restores: usize,
    pub faults: Vec<PlannedFault>,
    pub pause_ms: u64,
    /// Objects (by creation index) whose deletion is requested in this wave.
    pub deletes: Vec<usize>,
    pub gap_ms: u64,
}

#[derive(Debug, serde::Serialize)]
pub struct Plan {
    pub waves: Vec<Wave>,
    /// The apiserver restarts after this wave's deletions.
    pub restart_after_wave: usize,
    pub apiserver_down_s: u64,
    /// (running time before the kill, time dead after it), in ms.
    pub kills: Vec<(u64, u64)>,
}

impl Plan {
    pub fn new(p: &Profile, seed: u64) -> Plan {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut waves = waves(p, &mut rng);
        // In the middle third of the run.
        let n = waves.len();
        let restart_after_wave = rng.random_range(n / 3..=(2 * n / 3).max(n / 3)).min(n - 1);
        let apiserver_down_s = between(&mut rng, p.apiserver_down_s);
        let kills = kills(p, seed);

        // Namespaces, credentials and the other faults, from an rng of their own.
        let mut frng = StdRng::seed_from_u64(seed.wrapping_add(4));
        assert!(n >= 4, "profile {} gives {n} waves: too few for its faults", p.name);
        let deleted_at = namespace_deletions(p, n);
        spread_over_namespaces(p, &mut waves, &deleted_at, &mut frng);
        for &(ns, at) in &deleted_at {
            waves[at].faults.push(PlannedFault::DeleteNamespace { ns });
        }
        plan_switches(p, &mut waves, p.namespaces - deleted_at.len(), &mut frng);
        plan_secret_deletions(p, &mut waves, &mut frng);
        plan_adoptions_and_restores(p, &mut waves, &mut frng);
        // From an rng of its own, so that a seed's other faults stay as they were.
        plan_hostile_acts(p, &mut waves, &mut StdRng::seed_from_u64(seed.wrapping_add(5)));
        Plan { waves, restart_after_wave, apiserver_down_s, kills }
    }

    pub fn planned(&self, what: impl Fn(&PlannedFault) -> bool) -> usize {
        self.waves.iter().flat_map(|w| &w.faults).filter(|f| what(f)).count()
    }
}

/// The waves of creations and deletions; every object in the default namespace with its own
/// credentials until `spread_over_namespaces`.
fn waves(p: &Profile, rng: &mut StdRng) -> Vec<Wave> {
    let retained: HashSet<usize> = rand::seq::index::sample(rng, p.objects, p.retain).into_iter().collect();
    let mut waves = Vec::new();
    let mut live: Vec<usize> = Vec::new();
    let mut next = 0;
    while next < p.objects {
        let size = rng.random_range(p.wave.0..=p.wave.1).min(p.objects - next);
        let creates: Vec<NewObject> =
            (next..next + size).map(|index| new_object(p, rng, index, retained.contains(&index))).collect();
        next += size;
        let deletes = deletions(p, rng, &mut live, &creates);
        let pause_ms = between(rng, p.delete_pause_ms);
        let gap_ms = between(rng, p.wave_gap_ms);
        waves.push(Wave { creates, adoptions: 0, restores: 0, faults: Vec::new(), pause_ms, deletes, gap_ms });
    }
    waves
}

fn new_object(p: &Profile, rng: &mut StdRng, index: usize, retain: bool) -> NewObject {
    NewObject {
        index,
        ns: 0,
        cred: Cred::Own,
        retain,
        explicit_delete: rng.random_bool(0.5),
        mask: rng.random_range(27..=28),
        bandwidth: rng.random_range(1..=50),
        reuse_name: rng.random_bool(p.reuse_name),
    }
}

/// The wave's deletions: live objects of earlier waves, then some of the wave's own (mid-allocation);
/// the others join the live ones.
fn deletions(p: &Profile, rng: &mut StdRng, live: &mut Vec<usize>, creates: &[NewObject]) -> Vec<usize> {
    let mut deletes = Vec::new();
    live.retain(|&i| {
        let delete = rng.random_bool(p.delete_earlier);
        if delete {
            deletes.push(i);
        }
        !delete
    });
    for o in creates {
        if rng.random_bool(p.delete_new) {
            deletes.push(o.index);
        } else {
            live.push(o.index);
        }
    }
    deletes
}

/// (running time before the kill, time dead after it), from an rng of their own.
fn kills(p: &Profile, seed: u64) -> Vec<(u64, u64)> {
    let mut kill_rng = StdRng::seed_from_u64(seed.wrapping_add(1));
    (0..p.kills).map(|_| (between(&mut kill_rng, p.kill_gap_ms), between(&mut kill_rng, p.kill_pause_ms))).collect()
}

/// (namespace, the wave at whose end it is deleted): the last namespaces go, spread over the middle
/// of the run; the others stay.
fn namespace_deletions(p: &Profile, n: usize) -> Vec<(usize, usize)> {
    let deletions = p.namespace_deletions.min(p.namespaces - 1);
    (0..deletions).map(|k| (p.namespaces - 1 - k, (n * (k + 1) / (deletions + 1)).clamp(1, n - 2))).collect()
}

/// Each object's namespace (one not deleted yet at its wave) and credentials.
fn spread_over_namespaces(p: &Profile, waves: &mut [Wave], deleted_at: &[(usize, usize)], frng: &mut StdRng) {
    for (w, wave) in waves.iter_mut().enumerate() {
        let open: Vec<usize> =
            (0..p.namespaces).filter(|ns| deleted_at.iter().all(|&(d, at)| d != *ns || at >= w)).collect();
        for o in &mut wave.creates {
            o.ns = open[frng.random_range(0..open.len())];
            let roll: f64 = frng.random();
            o.cred = if roll < p.keys_a {
                Cred::KeysA
            } else if roll < p.keys_a + p.keys_b {
                Cred::KeysB
            } else {
                Cred::Own
            };
        }
    }
}

/// Switches of `keys-a`, in the first two thirds of the run, in namespaces that stay.
fn plan_switches(p: &Profile, waves: &mut [Wave], staying: usize, frng: &mut StdRng) {
    let n = waves.len();
    let switch_waves: Vec<usize> = (1..=(2 * n / 3).max(1)).collect();
    for k in 0..p.switches_other + p.switches_wrong {
        let w = switch_waves[frng.random_range(0..switch_waves.len())];
        let ns = frng.random_range(0..staying);
        let ms = between(frng, p.switch_ms);
        waves[w].faults.push(PlannedFault::Switch { ns, wrong: k >= p.switches_other, ms });
    }
}

/// Secrets deleted by hand, from the middle third of the run on, never at the last wave.
fn plan_secret_deletions(p: &Profile, waves: &mut [Wave], frng: &mut StdRng) {
    let n = waves.len();
    for _ in 0..p.secret_deletions {
        let w = frng.random_range(n / 3..=n - 2);
        waves[w].faults.push(PlannedFault::DeleteSecret);
    }
}

/// Adoptions and restores, at any wave but the first (they need live objects).
fn plan_adoptions_and_restores(p: &Profile, waves: &mut [Wave], frng: &mut StdRng) {
    let n = waves.len();
    for _ in 0..p.adoptions {
        waves[frng.random_range(1..n)].adoptions += 1;
    }
    for _ in 0..p.restores {
        waves[frng.random_range(1..n)].restores += 1;
    }
}

/// The hostile tenant's acts, at any wave but the first (they need victims with a segment).
fn plan_hostile_acts(p: &Profile, waves: &mut [Wave], hrng: &mut StdRng) {
    let n = waves.len();
    for act in HOSTILE_ACTS.iter().cycle().take(p.hostile) {
        waves[hrng.random_range(1..n)].faults.push(PlannedFault::Hostile(*act));
    }
}
