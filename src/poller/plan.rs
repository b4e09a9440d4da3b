//! The poller's pure choices, without IO: how to look (by ID or by region pages), when a changing
//! segment is next worth a look, and when a sweep may wait to share one page.

use std::collections::VecDeque;
use std::time::Duration;

/// DescribeEipSegment reports at most this many segments per call.
pub const PAGE_SIZE: u32 = 50;

/// How one sweep looks at the segments that are due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// One DescribeEipSegment by ID per due segment.
    ById,
    /// Every page of the region (`pages` calls, when known), then by ID for what the pages could
    /// not settle.
    Pages { pages: Option<u32> },
}

/// Pages the region takes, when its size is known.
pub fn pages_for(total: u32) -> u32 {
    total.div_ceil(PAGE_SIZE).max(1)
}

/// The cheaper way to learn about `due` segments, given the region's size at the last page (if
/// any). Absence is only certain from a look by ID or from one page holding the whole region, so
/// multi-page scans also cost a look by ID for each due segment that is expected to vanish.
pub fn choose(due: usize, expected_to_vanish: usize, region_total: Option<u32>) -> Plan {
    if due == 0 {
        return Plan::ById;
    }
    match region_total {
        // Unknown size: one page is as cheap as two looks by ID and tells the size.
        None if due >= 2 => Plan::Pages { pages: None },
        None => Plan::ById,
        Some(total) => {
            let pages = pages_for(total);
            let confirmations = if pages == 1 { 0 } else { expected_to_vanish };
            if (pages as usize + confirmations) < due { Plan::Pages { pages: Some(pages) } } else { Plan::ById }
        }
    }
}

/// Whether a sweep due now may wait for the next due segment, so that one page serves both: only
/// when the whole region fits in one page and the wait is short.
pub fn hold_for(next_due_in: Option<Duration>, region_total: Option<u32>, max_hold: Duration) -> Option<Duration> {
    let next = next_due_in?;
    let single_page = region_total.is_some_and(|t| pages_for(t) == 1);
    (single_page && next <= max_hold).then_some(next)
}

/// Learns how long a change (allocation or release) takes from what the polls saw: the longest
/// time a segment was still seen changing (a lower bound) and the shortest time by which one had
/// finished (an upper bound). Segments take their first look at the upper bound; while the bounds
/// are far apart, one segment at a time probes halfway, so that a miss costs one look, not one per
/// segment in flight.
#[derive(Clone, Debug)]
pub struct Durations {
    prior: Duration,
    tolerance: Duration,
    lower: VecDeque<Duration>,
    upper: VecDeque<Duration>,
    probing: bool,
}

const SAMPLES: usize = 32;

/// When a segment's first look goes, and whether it is the probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FirstLook {
    pub after: Duration,
    pub probe: bool,
}

impl Durations {
    pub fn new(prior: Duration, tolerance: Duration) -> Self {
        Durations { prior, tolerance, lower: VecDeque::new(), upper: VecDeque::new(), probing: false }
    }

    /// A segment was still changing this long after the change began.
    pub fn still_changing_after(&mut self, elapsed: Duration) {
        push(&mut self.lower, elapsed);
    }

    /// A segment had finished changing by this long after the change began.
    pub fn finished_by(&mut self, elapsed: Duration) {
        push(&mut self.upper, elapsed);
    }

    /// Whether anything was learned yet.
    pub fn known(&self) -> bool {
        !self.upper.is_empty()
    }

    /// When, after its change began, a segment that has no probe role is first worth a look.
    pub fn expected(&self) -> Duration {
        self.upper.iter().min().copied().unwrap_or(self.prior)
    }

    /// The first look of a new change: halfway between the bounds if they are far apart and no
    /// other probe is out, else the upper bound.
    pub fn first_look(&mut self) -> FirstLook {
        let Some(hi) = self.upper.iter().min().copied() else { return FirstLook { after: self.prior, probe: false } };
        let lo = self.lower.iter().max().copied().unwrap_or_default();
        if hi > lo + self.tolerance && !self.probing {
            self.probing = true;
            return FirstLook { after: lo + (hi - lo) / 2, probe: true };
        }
        FirstLook { after: hi, probe: false }
    }

    /// The probe's outcome is in (or it was abandoned): another may go.
    pub fn probe_done(&mut self) {
        self.probing = false;
    }
}

fn push(window: &mut VecDeque<Duration>, value: Duration) {
    if window.len() == SAMPLES {
        window.pop_front();
    }
    window.push_back(value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(secs: f64) -> Duration {
        Duration::from_secs_f64(secs)
    }

    #[test]
    fn choosing_how_to_look() {
        // (due, expected to vanish, region total) -> plan
        let table: &[(usize, usize, Option<u32>, Plan)] = &[
            (0, 0, None, Plan::ById),
            (1, 0, None, Plan::ById),
            (2, 0, None, Plan::Pages { pages: None }),
            (1, 1, Some(10), Plan::ById),
            (2, 2, Some(10), Plan::Pages { pages: Some(1) }),
            (2, 0, Some(50), Plan::Pages { pages: Some(1) }),
            (2, 0, Some(51), Plan::ById),
            (3, 0, Some(51), Plan::Pages { pages: Some(2) }),
            // Restart with 10,000 settled segments: 200 pages instead of 10,000 looks.
            (10_000, 0, Some(10_000), Plan::Pages { pages: Some(200) }),
            // Releases in a large region: each must be confirmed by ID anyway.
            (30, 30, Some(1000), Plan::ById),
            (20, 0, Some(1000), Plan::ById),
            (21, 0, Some(1000), Plan::Pages { pages: Some(20) }),
        ];
        for (due, vanish, total, want) in table {
            assert_eq!(choose(*due, *vanish, *total), *want, "due {due}, vanish {vanish}, total {total:?}");
        }
    }

    #[test]
    fn holding_a_sweep_for_a_shared_page() {
        let max = s(1.0);
        assert_eq!(hold_for(Some(s(0.4)), Some(30), max), Some(s(0.4)));
        assert_eq!(hold_for(Some(s(1.5)), Some(30), max), None, "too long a wait");
        assert_eq!(hold_for(Some(s(0.4)), Some(60), max), None, "two pages: no saving");
        assert_eq!(hold_for(Some(s(0.4)), None, max), None, "size unknown");
        assert_eq!(hold_for(None, Some(30), max), None, "nothing else due");
    }

    #[test]
    fn learning_a_duration_converges_to_one_look() {
        let mut d = Durations::new(s(2.0), s(1.0));
        assert_eq!(d.first_look(), FirstLook { after: s(2.0), probe: false }, "the prior before anything is known");
        // A 5 s release polled every 2 s: seen at 2 and 4, gone at 6.
        d.still_changing_after(s(2.0));
        d.still_changing_after(s(4.0));
        d.finished_by(s(6.0));
        assert_eq!(d.first_look(), FirstLook { after: s(5.0), probe: true }, "one probe halfway between 4 and 6");
        assert_eq!(
            d.first_look(),
            FirstLook { after: s(6.0), probe: false },
            "the others at the upper bound meanwhile"
        );
        d.finished_by(s(5.0));
        d.probe_done();
        assert_eq!(d.first_look(), FirstLook { after: s(5.0), probe: false }, "close bounds: the upper one, no probe");
        assert_eq!(d.expected(), s(5.0));
    }

    #[test]
    fn a_missed_probe_raises_the_lower_bound_and_a_slower_cloud_is_followed() {
        let mut d = Durations::new(s(2.0), s(1.0));
        d.finished_by(s(3.0));
        assert_eq!(d.first_look(), FirstLook { after: s(1.5), probe: true }, "no lower bound yet: halfway from zero");
        d.still_changing_after(s(1.5));
        d.probe_done();
        assert_eq!(d.first_look(), FirstLook { after: s(2.25), probe: true });
        d.still_changing_after(s(2.25));
        d.probe_done();
        assert_eq!(d.first_look(), FirstLook { after: s(3.0), probe: false }, "within tolerance: the upper bound");
        // The cloud slows down: the old upper bound leaves the window as new ones arrive.
        for _ in 0..SAMPLES {
            d.still_changing_after(s(8.0));
            d.finished_by(s(9.0));
        }
        assert_eq!(d.first_look(), FirstLook { after: s(9.0), probe: false });
    }
}
