//! Times `SpaceSaving::offer` as the throttling recorder uses it when a
//! flood of refused requests comes from ever new sessions: 256 tracked
//! keys (PENDING_SESSIONS), every offer a newcomer that evicts. Prints ns
//! per offer, three rounds.
//! `taskset -c 0 cargo run --release --example space_saving`

use std::time::Instant;

use floodgate::core::analytics::SpaceSaving;
use floodgate::throttling::PENDING_SESSIONS;

const OFFERS: u64 = 2_000_000;

fn main() {
    let keys: Vec<String> = (0..OFFERS).map(|i| format!("session-{i:08}")).collect();
    for round in 1..=3 {
        let mut top = SpaceSaving::new(PENDING_SESSIONS);
        let start = Instant::now();
        for key in &keys {
            top.offer(key, 1);
        }
        let ns = start.elapsed().as_nanos() as f64 / OFFERS as f64;
        println!("round {round}: {ns:.0} ns per offer of a new session ({} tracked)", top.len());
    }
}
