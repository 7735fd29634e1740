//! `AnalyticsStore`: flushed minute counts add up and are read back for a
//! span, newest first; throttled sessions are ranked within their hour.

use super::{Stores, contract};

use floodgate::core::analytics::{CELLS, Cells};
use floodgate::store::{AnalyticsStore, AnalyticsView};

contract!(
    flushed_minutes_add_up_and_are_read_back_newest_first,
    a_span_reads_only_its_own_minutes_and_hours,
    throttled_sessions_are_ranked_within_their_hour,
);

/// A minute's counts with `n` in `cell`.
fn cells(cell: usize, n: u64) -> Cells {
    let mut cells = [0; CELLS];
    cells[cell] = n;
    cells
}

/// Minutes since the epoch on an hour boundary, far from zero.
const HOUR_START: u64 = 29_000_000 / 60 * 60;

async fn flushed_minutes_add_up_and_are_read_back_newest_first(stores: Stores) {
    let store = stores.fresh().await;
    let m = HOUR_START + 10;
    store.flush_analytics(m, cells(0, 2), Vec::new()).await.unwrap();
    store.flush_analytics(m, cells(0, 3), Vec::new()).await.unwrap();
    store.flush_analytics(m, cells(5, 1), Vec::new()).await.unwrap();
    store.flush_analytics(m + 2, cells(CELLS - 1, 7), Vec::new()).await.unwrap();
    let view = store.analytics(m + 2, 60).await.unwrap();
    let mut expected = cells(0, 5);
    expected[5] = 1;
    assert_eq!(view, AnalyticsView { minutes: vec![(m + 2, cells(CELLS - 1, 7)), (m, expected)], top_by_hour: vec![] });
}

/// A span of minutes ending now: earlier minutes, and hours before the
/// span's first minute, are left out.
async fn a_span_reads_only_its_own_minutes_and_hours(stores: Stores) {
    let store = stores.fresh().await;
    let now = HOUR_START + 60 + 5;
    store.flush_analytics(HOUR_START + 30, cells(1, 1), vec![("early".into(), 4)]).await.unwrap();
    store.flush_analytics(now - 1, cells(1, 2), vec![("late".into(), 1)]).await.unwrap();
    let short = store.analytics(now, 5).await.unwrap();
    assert_eq!(short.minutes, [(now - 1, cells(1, 2))]);
    assert_eq!(short.top_by_hour, [(now / 60, vec![("late".to_owned(), 1)])]);
    let long = store.analytics(now, 60).await.unwrap();
    assert_eq!(long.minutes, [(now - 1, cells(1, 2)), (HOUR_START + 30, cells(1, 1))]);
    assert_eq!(
        long.top_by_hour,
        [(now / 60, vec![("late".to_owned(), 1)]), (HOUR_START / 60, vec![("early".to_owned(), 4)])],
        "newest hour first"
    );
}

/// Sessions of one hour add up across flushes and minutes, most throttled first.
async fn throttled_sessions_are_ranked_within_their_hour(stores: Stores) {
    let store = stores.fresh().await;
    let m = HOUR_START + 1;
    store.flush_analytics(m, cells(2, 1), vec![("s1".into(), 2), ("s2".into(), 5)]).await.unwrap();
    store.flush_analytics(m + 30, cells(2, 1), vec![("s1".into(), 4), ("s3".into(), 1)]).await.unwrap();
    let view = store.analytics(m + 30, 60).await.unwrap();
    let ranked = vec![("s1".to_owned(), 6), ("s2".to_owned(), 5), ("s3".to_owned(), 1)];
    assert_eq!(view.top_by_hour, [(HOUR_START / 60, ranked)]);
}
