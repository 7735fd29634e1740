//! Decision counts of closed minutes, cached so that a window (15 min …
//! 24 h) costs the same however long the history: the sum of each window's
//! closed minutes is kept as minutes close, and only the minutes still
//! open are read from the store.

use std::collections::BTreeMap;

use super::Millis;
use super::analytics::{self, CELLS, Cells, HISTORY_MINUTES, MinuteRing};

/// How long after its end a minute still takes counts: a replica flushes
/// its counts about once a second into the minute of its own clock, which
/// may run a few seconds behind ours.
pub const SETTLE_MS: Millis = 10_000;

/// The last minute that has settled at `now` (None in the epoch's first minute).
pub fn settled_minute(now: Millis) -> Option<u64> {
    (now.checked_sub(SETTLE_MS)? / 60_000).checked_sub(1)
}

/// Settled minutes of the last 24 h and the running sum of each kept span.
#[derive(Debug, Clone)]
pub struct WindowCache {
    ring: MinuteRing,
    /// The last minute added; every minute of the 24 h up to it is in the ring.
    through: Option<u64>,
    spans: Vec<u64>,
    /// `sums[i]` = the counts of the minutes `(through - spans[i], through]`.
    sums: Vec<Cells>,
}

fn subtract(a: &mut Cells, b: &Cells) {
    for (x, y) in a.iter_mut().zip(b) {
        *x = x.saturating_sub(*y);
    }
}

impl WindowCache {
    /// An empty cache keeping the spans the operator views read: the
    /// analytics windows (`1h` … `24h`) and the throttle rates the alerts watch.
    pub fn for_operator_views() -> WindowCache {
        let spans: Vec<u64> =
            analytics::WINDOWS.iter().map(|(_, span)| *span).chain(super::alerts::THROTTLE_SPANS).collect();
        WindowCache::new(&spans)
    }

    /// An empty cache keeping a running sum for each of `spans` (minutes, at most 24 h).
    pub fn new(spans: &[u64]) -> WindowCache {
        let mut spans: Vec<u64> = spans.iter().map(|s| (*s).clamp(1, HISTORY_MINUTES)).collect();
        spans.sort_unstable();
        spans.dedup();
        WindowCache { ring: MinuteRing::default(), through: None, sums: vec![[0; CELLS]; spans.len()], spans }
    }

    /// The last minute held, if any.
    pub fn through(&self) -> Option<u64> {
        self.through
    }

    /// The minutes `(first, last)` to read from the store so that the cache
    /// holds every minute through `settled`; None when it already does.
    pub fn missing(&self, settled: u64) -> Option<(u64, u64)> {
        let oldest = settled.saturating_sub(HISTORY_MINUTES - 1);
        match self.through {
            Some(through) if through >= settled => None,
            Some(through) => Some(((through + 1).max(oldest), settled)),
            None => Some((oldest, settled)),
        }
    }

    /// Adds the minutes after the ones held through `through`, with their
    /// counts from `minutes` (a minute not there had none). Minutes already
    /// held are left alone, so two readers racing to extend agree.
    pub fn extend(&mut self, through: u64, minutes: &[(u64, Cells)]) {
        let first = match self.through {
            Some(held) if through <= held => return,
            Some(held) if through - held <= HISTORY_MINUTES => held + 1,
            // Cold, or idle for over 24 h: nothing held is in a window any more.
            _ => {
                *self = WindowCache::new(&self.spans);
                through.saturating_sub(HISTORY_MINUTES - 1)
            }
        };
        let counts: BTreeMap<u64, &Cells> = minutes.iter().map(|(m, c)| (*m, c)).collect();
        for minute in first..=through {
            let cells = counts.get(&minute).map_or([0; CELLS], |c| **c);
            for (span, sum) in self.spans.iter().zip(&mut self.sums) {
                // Read before the ring reuses the slot: a 24 h span's leaving
                // minute shares the new minute's slot.
                if let Some(leaving) = minute.checked_sub(*span).and_then(|m| self.ring.get(m)) {
                    subtract(sum, leaving);
                }
                analytics::add(sum, &cells);
            }
            self.ring.add(minute, &cells);
        }
        self.through = Some(through);
    }

    /// The counts of the `span` minutes ending with `now_minute`: the held
    /// minutes from the cache, the later ones from `open` (the store's view
    /// of the minutes after [`WindowCache::through`]; others are ignored).
    pub fn window(&self, span: u64, now_minute: u64, open: &[(u64, Cells)]) -> Cells {
        let mut total = match (self.through, self.spans.iter().position(|s| *s == span)) {
            (None, _) => [0; CELLS],
            (Some(through), Some(i)) if through <= now_minute => {
                if now_minute - through >= span {
                    [0; CELLS]
                } else {
                    // The running sum ends at `through`; drop its oldest minutes
                    // that are before the window ending now.
                    let mut total = self.sums[i];
                    if let Some(last_out) = now_minute.checked_sub(span) {
                        for minute in (through + 1).saturating_sub(span)..=last_out {
                            if let Some(cells) = self.ring.get(minute) {
                                subtract(&mut total, cells);
                            }
                        }
                    }
                    total
                }
            }
            // A span not kept, or a clock behind the cache: sum the ring.
            (Some(_), _) => self.ring.window(now_minute, span),
        };
        let later = open.iter().filter(|(m, _)| self.through.is_none_or(|held| *m > held));
        analytics::add(&mut total, &analytics::window_sum(later, now_minute, span));
        total
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn one(n: u64) -> Cells {
        let mut c = [0; CELLS];
        c[3] = n;
        c
    }

    #[test]
    fn a_minute_settles_ten_seconds_after_it_ends() {
        assert_eq!(settled_minute(5_000), None);
        assert_eq!(settled_minute(60_000 + SETTLE_MS - 1), None);
        assert_eq!(settled_minute(60_000 + SETTLE_MS), Some(0));
        assert_eq!(settled_minute(100 * 60_000 + 30_000), Some(99));
    }

    #[test]
    fn a_cold_cache_asks_for_24_hours_then_only_for_new_minutes() {
        let mut cache = WindowCache::new(&[60]);
        assert_eq!(cache.missing(10_000), Some((10_000 - 1_439, 10_000)));
        cache.extend(10_000, &[]);
        assert_eq!(cache.missing(10_000), None);
        assert_eq!(cache.missing(10_002), Some((10_001, 10_002)));
    }

    #[test]
    fn held_and_open_minutes_make_the_window() {
        let mut cache = WindowCache::new(&[60]);
        cache.extend(1_000, &[(940, one(1)), (941, one(10)), (1_000, one(100))]);
        // Minutes 1001 (settled but not yet held) and 1002 (open) come from the store.
        let open = [(1_001, one(1_000)), (1_002, one(10_000)), (1_000, one(7))];
        // The window ending at 1002 is 943..=1002: minutes 940 and 941 have left it.
        assert_eq!(cache.window(60, 1_002, &open)[3], 11_100);
        assert_eq!(cache.window(60, 1_000, &[])[3], 110, "minute 940 is an hour before 1000");
    }

    #[test]
    fn racing_extensions_add_each_minute_once() {
        let mut cache = WindowCache::new(&[15]);
        cache.extend(100, &[(100, one(1))]);
        cache.extend(101, &[(100, one(1)), (101, one(2))]);
        cache.extend(101, &[(100, one(1)), (101, one(2))]);
        assert_eq!(cache.window(15, 101, &[])[3], 3);
    }

    #[test]
    fn an_idle_day_forgets_everything_held() {
        let mut cache = WindowCache::new(&[1_440]);
        cache.extend(100, &[(100, one(5))]);
        cache.extend(100 + 2 * HISTORY_MINUTES, &[]);
        assert_eq!(cache.window(1_440, 100 + 2 * HISTORY_MINUTES, &[])[3], 0);
    }

    proptest! {
        /// Whatever the order of closing and reading, a window equals the
        /// plain sum of its minutes (the one window rule, `window_sum`).
        #[test]
        fn windows_equal_the_plain_sum(
            counts in proptest::collection::vec(0u64..5, 1..3_200),
            steps in proptest::collection::vec((1u64..90, 0u64..3), 1..60),
            span_index in 0usize..6,
        ) {
            let spans = [1, 15, 60, 180, 720, 1_440];
            let span = spans[span_index];
            let start = 50_000u64;
            let history: Vec<(u64, Cells)> =
                counts.iter().enumerate().map(|(i, n)| (start + i as u64, one(*n))).collect();
            let mut cache = WindowCache::new(&spans);
            let mut now = start;
            for (advance, lag) in steps {
                now += advance;
                let settled = now.saturating_sub(lag + 1);
                if let Some((first, last)) = cache.missing(settled) {
                    let read: Vec<_> = history.iter().filter(|(m, _)| *m >= first && *m <= last).copied().collect();
                    cache.extend(last, &read);
                }
                let held = cache.through().unwrap_or(0);
                let open: Vec<_> = history.iter().filter(|(m, _)| *m > held && *m <= now).copied().collect();
                prop_assert_eq!(cache.window(span, now, &open), analytics::window_sum(&history, now, span));
            }
        }
    }
}
