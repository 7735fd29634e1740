//! Throttling analytics (docs/architecture.md §7): decisions counted by outcome, user
//! type and transport in one-minute buckets kept 24 h; windows 1h … 24h;
//! the top throttled sessions by Space-Saving (bounded memory).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::Arc;

use serde::Serialize;

use super::{Decision, Transport, UserType};

/// Decision × user type × transport.
pub const CELLS: usize = 4 * 3 * 3;
/// Minutes of history kept.
pub const HISTORY_MINUTES: u64 = 24 * 60;
/// The reported windows, in minutes.
pub const WINDOWS: [(&str, u64); 5] = [("1h", 60), ("3h", 180), ("6h", 360), ("12h", 720), ("24h", 1_440)];
/// Sessions tracked per hour bucket.
pub const TOP_SESSIONS: usize = 100;
/// Sessions reported per window (`top_sessions`).
pub const WINDOW_TOP_SESSIONS: usize = 10;

/// Counts of one minute (or of a sum of minutes).
pub type Cells = [u64; CELLS];

fn decision_index(decision: Decision) -> usize {
    match decision {
        Decision::Admit => 0,
        Decision::RateLimited => 1,
        Decision::Backpressure => 2,
        Decision::CircuitOpen => 3,
    }
}

fn transport_index(transport: Transport) -> usize {
    match transport {
        Transport::Unspecified => 0,
        Transport::Rest => 1,
        Transport::Websocket => 2,
    }
}

/// The cell a decision is counted in.
pub fn cell(decision: Decision, user_type: UserType, transport: Transport) -> usize {
    (decision_index(decision) * 3 + user_type.index()) * 3 + transport_index(transport)
}

fn sum_where(cells: &Cells, keep: impl Fn(usize, usize, usize) -> bool) -> u64 {
    let mut total = 0;
    for (i, n) in cells.iter().enumerate() {
        let (d, u, t) = (i / 9, (i / 3) % 3, i % 3);
        if keep(d, u, t) {
            total += n;
        }
    }
    total
}

/// Adds `b` into `a`.
pub fn add(a: &mut Cells, b: &Cells) {
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
}

/// The sum of the `(minute, counts)` entries in the `span` minutes ending
/// with `now_minute` (minutes after `now_minute` are not in the window):
/// the one window rule, for the ring and for a store's analytics view.
pub fn window_sum<'a>(minutes: impl IntoIterator<Item = &'a (u64, Cells)>, now_minute: u64, span: u64) -> Cells {
    let mut total = [0; CELLS];
    for (minute, cells) in minutes {
        if *minute <= now_minute && now_minute - minute < span {
            add(&mut total, cells);
        }
    }
    total
}

/// A ring of per-minute counts covering the last 24 h.
#[derive(Debug, Clone)]
pub struct MinuteRing {
    minutes: Vec<(u64, Cells)>,
}

impl Default for MinuteRing {
    fn default() -> Self {
        MinuteRing { minutes: vec![(u64::MAX, [0; CELLS]); HISTORY_MINUTES as usize] }
    }
}

impl MinuteRing {
    /// Adds counts to `minute` (minutes since the epoch).
    pub fn add(&mut self, minute: u64, cells: &Cells) {
        let slot = &mut self.minutes[(minute % HISTORY_MINUTES) as usize];
        if slot.0 != minute {
            if slot.0 != u64::MAX && slot.0 > minute {
                return; // older than the history this slot already holds
            }
            *slot = (minute, [0; CELLS]);
        }
        add(&mut slot.1, cells);
    }

    /// The counts of one minute, if the ring still holds it.
    pub fn get(&self, minute: u64) -> Option<&Cells> {
        let (held, cells) = &self.minutes[(minute % HISTORY_MINUTES) as usize];
        (*held == minute).then_some(cells)
    }

    /// The sum over the `span` minutes ending with `now_minute`.
    pub fn window(&self, now_minute: u64, span: u64) -> Cells {
        // Empty slots hold minute u64::MAX, which is never in a window.
        window_sum(&self.minutes, now_minute, span)
    }
}

/// Space-Saving heavy hitters: at most `capacity` keys; a newcomer evicts
/// the smallest (the smallest key among equal counts) and inherits its
/// count (so counts are upper bounds).
///
/// The smallest is found through a min-heap that holds one entry per key
/// with the count the key had when the entry was pushed; counting only
/// raises counts, so an entry is at most stale-low, and a stale one met at
/// the top is pushed again with its key's count. A count costs O(1) and
/// an eviction O(log n) amortised, where a scan of every key (256 of them
/// for the pending sessions, under a lock on the hot path) cost O(n) for
/// each refused request from a new session.
#[derive(Debug, Clone)]
pub struct SpaceSaving {
    capacity: usize,
    counts: HashMap<Arc<str>, u64>,
    smallest: BinaryHeap<Reverse<(u64, Arc<str>)>>,
}

impl SpaceSaving {
    /// Tracks at most `capacity` keys.
    pub fn new(capacity: usize) -> SpaceSaving {
        SpaceSaving {
            capacity,
            counts: HashMap::with_capacity(capacity + 1),
            smallest: BinaryHeap::with_capacity(capacity + 1),
        }
    }

    /// Counts `n` for `key`.
    pub fn offer(&mut self, key: &str, n: u64) {
        if let Some(count) = self.counts.get_mut(key) {
            *count += n;
            return;
        }
        let mut count = n;
        if self.counts.len() >= self.capacity {
            let Some(floor) = self.evict_smallest() else { return };
            count += floor;
        }
        let key: Arc<str> = key.into();
        self.counts.insert(key.clone(), count);
        self.smallest.push(Reverse((count, key)));
    }

    /// Removes the key with the smallest count and returns that count.
    fn evict_smallest(&mut self) -> Option<u64> {
        while let Some(Reverse((pushed, key))) = self.smallest.pop() {
            match self.counts.get(&key) {
                Some(&count) if count == pushed => {
                    self.counts.remove(&key);
                    return Some(count);
                }
                Some(&count) => self.smallest.push(Reverse((count, key))),
                None => {}
            }
        }
        None
    }

    /// Keys tracked.
    pub fn len(&self) -> usize {
        self.counts.len()
    }

    /// Whether nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// Every tracked key with its count, largest first (ties by key).
    pub fn top(&self, n: usize) -> Vec<(String, u64)> {
        let mut all: Vec<_> = self.counts.iter().map(|(k, c)| (k.to_string(), *c)).collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        all.truncate(n);
        all
    }

    /// Takes all counts, leaving it empty.
    pub fn drain(&mut self) -> Vec<(String, u64)> {
        self.smallest.clear();
        self.counts.drain().map(|(k, c)| (k.to_string(), c)).collect()
    }
}

/// One throttled session and how often it was throttled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ThrottledSession {
    /// The session's id as the frontend sent it.
    pub session_id: String,
    /// How many of its requests were refused.
    pub throttled: u64,
}

/// The seed's `throttling_by_period` entry for one window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeriodStats {
    /// Decisions in the window.
    pub total_requests: u64,
    /// Refusals in the window.
    pub total_throttled: u64,
    /// Percent of requests refused.
    pub throttle_rate: f64,
    /// Refusals by rate limit (HTTP 429).
    pub rate_limit_429: u64,
    /// Refusals by backpressure (HTTP 503).
    pub backpressure_503: u64,
    /// Refusals by an open circuit (HTTP 503).
    pub circuit_open_503: u64,
    /// Admitted requests per hour, by user type.
    pub throughput_per_hour_by_user_type: BTreeMap<String, f64>,
    /// Admitted requests per hour, by transport.
    pub throughput_per_hour_by_transport: BTreeMap<String, f64>,
    /// The most throttled sessions, most first.
    pub top_sessions: Vec<ThrottledSession>,
}

/// Requests counted, and of them the refused (429 and 503): every
/// decision but an admission.
fn requests_and_refusals(cells: &Cells) -> (u64, u64) {
    let total = sum_where(cells, |_, _, _| true);
    (total, total - sum_where(cells, |d, _, _| d == 0))
}

/// Turns a window's counts into the seed's numbers.
pub fn period_stats(cells: &Cells, span_minutes: u64, top: Vec<(String, u64)>) -> PeriodStats {
    let (total_requests, total_throttled) = requests_and_refusals(cells);
    let rate_limit_429 = sum_where(cells, |d, _, _| d == 1);
    let backpressure_503 = sum_where(cells, |d, _, _| d == 2);
    let circuit_open_503 = sum_where(cells, |d, _, _| d == 3);
    let hours = span_minutes as f64 / 60.0;
    let throughput_per_hour_by_user_type = UserType::ALL
        .iter()
        .map(|u| (u.as_str().to_owned(), sum_where(cells, |d, ui, _| d == 0 && ui == u.index()) as f64 / hours))
        .collect();
    let throughput_per_hour_by_transport = Transport::ALL
        .iter()
        .map(|transport| (transport.as_str(), transport_index(*transport)))
        .map(|(name, ti)| (name.to_owned(), sum_where(cells, |d, _, t| d == 0 && t == ti) as f64 / hours))
        .collect();
    PeriodStats {
        total_requests,
        total_throttled,
        throttle_rate: if total_requests == 0 { 0.0 } else { total_throttled as f64 * 100.0 / total_requests as f64 },
        rate_limit_429,
        backpressure_503,
        circuit_open_503,
        throughput_per_hour_by_user_type,
        throughput_per_hour_by_transport,
        top_sessions: top
            .into_iter()
            .map(|(session_id, throttled)| ThrottledSession { session_id, throttled })
            .collect(),
    }
}

/// The share of a window's requests refused (429 and 503), 0–1; 0 without requests.
pub fn throttle_ratio(cells: &Cells) -> f64 {
    let (total, throttled) = requests_and_refusals(cells);
    if total == 0 { 0.0 } else { throttled as f64 / total as f64 }
}

/// The first hour bucket whose heavy hitters count for the `span` minutes
/// ending with `now_minute`: every hour with a minute in the window.
pub fn first_hour(now_minute: u64, span: u64) -> u64 {
    now_minute.saturating_sub(span.saturating_sub(1)) / 60
}

/// The most throttled sessions of the `span` minutes ending with
/// `now_minute`, from a store's per-hour heavy hitters: the one rule for
/// which hours a window's `top_sessions` come from.
pub fn window_top(top_by_hour: &[(u64, Vec<(String, u64)>)], now_minute: u64, span: u64) -> Vec<(String, u64)> {
    let first = first_hour(now_minute, span);
    let hours = top_by_hour.iter().filter(|(hour, _)| *hour >= first).map(|(_, top)| top);
    merge_top(hours, WINDOW_TOP_SESSIONS)
}

/// Merges per-hour heavy hitters into one ranking.
pub fn merge_top<'a>(hours: impl IntoIterator<Item = &'a Vec<(String, u64)>>, n: usize) -> Vec<(String, u64)> {
    let mut merged: HashMap<&str, u64> = HashMap::new();
    for (k, c) in hours.into_iter().flatten() {
        *merged.entry(k).or_default() += c;
    }
    let mut all: Vec<_> = merged.into_iter().map(|(k, c)| (k.to_owned(), c)).collect();
    all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    all.truncate(n);
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_sums_its_span_ending_now_and_nothing_later() {
        let one = |n| {
            let mut c = [0; CELLS];
            c[0] = n;
            c
        };
        let view = [(90, one(1)), (99, one(10)), (100, one(100)), (101, one(1_000))];
        assert_eq!(window_sum(&view, 100, 1)[0], 100, "the current minute only");
        assert_eq!(window_sum(&view, 100, 2)[0], 110);
        assert_eq!(window_sum(&view, 100, 10)[0], 110, "minute 90 is 10 minutes back: outside a 10-minute span");
        assert_eq!(window_sum(&view, 100, 11)[0], 111);
        assert_eq!(window_sum(&view, 100, 60)[0], 111, "minute 101 is after now");
        let mut ring = MinuteRing::default();
        for (minute, cells) in &view {
            ring.add(*minute, cells);
        }
        assert_eq!(ring.window(100, 11), window_sum(&view, 100, 11));
    }

    #[test]
    fn cells_are_distinct_for_every_combination() {
        let mut seen = std::collections::HashSet::new();
        for d in [Decision::Admit, Decision::RateLimited, Decision::Backpressure, Decision::CircuitOpen] {
            for u in UserType::ALL {
                for t in [Transport::Unspecified, Transport::Rest, Transport::Websocket] {
                    assert!(seen.insert(cell(d, u, t)));
                }
            }
        }
        assert_eq!(seen.len(), CELLS);
    }

    #[test]
    fn windows_sum_only_their_minutes() {
        let mut ring = MinuteRing::default();
        let mut one = [0; CELLS];
        one[cell(Decision::Admit, UserType::Registered, Transport::Rest)] = 1;
        ring.add(10_000, &one);
        ring.add(10_000 - 59, &one);
        ring.add(10_000 - 60, &one);
        ring.add(10_000 - 1_500, &one); // older than 24 h
        assert_eq!(ring.window(10_000, 60).iter().sum::<u64>(), 2);
        assert_eq!(ring.window(10_000, 180).iter().sum::<u64>(), 3);
        assert_eq!(ring.window(10_000, 1_440).iter().sum::<u64>(), 3);
    }

    #[test]
    fn a_ring_slot_is_reused_for_a_newer_minute() {
        let mut ring = MinuteRing::default();
        let mut one = [0; CELLS];
        one[0] = 1;
        ring.add(5, &one);
        ring.add(5 + HISTORY_MINUTES, &one);
        assert_eq!(ring.window(5 + HISTORY_MINUTES, 1_440).iter().sum::<u64>(), 1);
    }

    #[test]
    fn period_stats_compute_rates_and_throughput() {
        let mut cells = [0; CELLS];
        cells[cell(Decision::Admit, UserType::Registered, Transport::Rest)] = 6;
        cells[cell(Decision::Admit, UserType::Anonymous, Transport::Websocket)] = 1;
        cells[cell(Decision::RateLimited, UserType::Anonymous, Transport::Rest)] = 2;
        cells[cell(Decision::Backpressure, UserType::Anonymous, Transport::Rest)] = 1;
        let stats = period_stats(&cells, 180, vec![("s".into(), 3)]);
        assert_eq!(
            (stats.total_requests, stats.total_throttled, stats.rate_limit_429, stats.backpressure_503),
            (10, 3, 2, 1)
        );
        assert_eq!(stats.throttle_rate, 30.0);
        assert_eq!(throttle_ratio(&cells), 0.3);
        assert_eq!(throttle_ratio(&[0; CELLS]), 0.0);
        assert_eq!(stats.throughput_per_hour_by_user_type["registered"], 2.0);
        assert_eq!(stats.throughput_per_hour_by_transport["websocket"], 1.0 / 3.0);
        assert_eq!(stats.top_sessions, [ThrottledSession { session_id: "s".into(), throttled: 3 }]);
    }

    #[test]
    fn a_window_takes_the_heavy_hitters_of_every_hour_it_touches() {
        let top = |n| vec![("s".to_owned(), n)];
        let by_hour = [(0, top(1)), (1, top(10)), (2, top(100))];
        // Minute 179 is the last of hour 2; 60 minutes back reach minute 120 (hour 2).
        assert_eq!(first_hour(179, 60), 2);
        assert_eq!(window_top(&by_hour, 179, 60), [("s".to_owned(), 100)]);
        // One more minute reaches into hour 1.
        assert_eq!(window_top(&by_hour, 179, 61), [("s".to_owned(), 110)]);
        assert_eq!(window_top(&by_hour, 179, 1_440), [("s".to_owned(), 111)], "no hour before the epoch");
    }

    #[test]
    fn space_saving_keeps_heavy_hitters_in_bounded_memory() {
        // Space-Saving finds every key above N / capacity (here 1,050).
        let mut top = SpaceSaving::new(100);
        for i in 0..100_000 {
            top.offer(&format!("noise-{i}"), 1);
            if i % 100 == 0 {
                top.offer("abuser", 5);
            }
        }
        assert_eq!(top.len(), 100);
        assert_eq!(top.top(1)[0].0, "abuser");
    }

    /// The scan Space-Saving replaced: the same answers, key for key.
    fn scanning_model(capacity: usize, offers: &[(u8, u64)]) -> Vec<(String, u64)> {
        let mut counts: HashMap<String, u64> = HashMap::new();
        for (key, n) in offers {
            let key = format!("s{key}");
            if let Some(count) = counts.get_mut(&key) {
                *count += n;
            } else if counts.len() < capacity {
                counts.insert(key, *n);
            } else if let Some((smallest, floor)) =
                counts.iter().map(|(k, c)| (*c, k.clone())).min().map(|(c, k)| (k, c))
            {
                counts.remove(&smallest);
                counts.insert(key, floor + n);
            }
        }
        let mut all: Vec<_> = counts.into_iter().collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        all
    }

    proptest::proptest! {
        #[test]
        fn space_saving_evicts_as_a_scan_of_every_key_would(
            capacity in 0usize..8,
            offers in proptest::collection::vec((0u8..20, 1u64..4), 0..300),
        ) {
            let mut top = SpaceSaving::new(capacity);
            for (key, n) in &offers {
                top.offer(&format!("s{key}"), *n);
            }
            proptest::prop_assert_eq!(top.top(usize::MAX), scanning_model(capacity, &offers));
            proptest::prop_assert!(top.len() <= capacity);
        }
    }
}
