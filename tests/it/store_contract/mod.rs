//! The store's contract, one suite per role (`RateLimiter`, `TaskQueue`,
//! `Housekeeping`, `ProcessRegistry`, `ClusterState`, `AnalyticsStore`).
//! Each test body takes fresh stores from [`Stores`]; `contract!` expands
//! it into a test on the embedded store (`…::memory::name`) and one on a
//! private redis-server (`…::redis::name`), as limitador expands its
//! storage tests. Both backends answer the same scenario the same way.

use std::cell::Cell;

use crate::common::redis::RedisServer;
use floodgate::store::{AnyStore, MemoryStore, RedisOptions, RedisStore, TimeSource};

mod analytics_store;
mod cluster_state;
mod housekeeping;
mod process_registry;
mod rate_limiter;
mod task_queue;

/// Fresh, empty stores of one backend.
pub(crate) enum Stores {
    /// Embedded stores.
    Memory,
    /// Stores on one private redis-server, each under a key prefix of its
    /// own; `made` counts them.
    Redis { server: RedisServer, made: Cell<u32> },
}

impl Stores {
    /// Stores on a redis-server started for the test (stopped when dropped).
    pub(crate) fn redis() -> Stores {
        Stores::Redis { server: RedisServer::start(), made: Cell::new(0) }
    }

    /// A new, empty store. Scripts take the caller's clock
    /// (`TimeSource::Caller`), so the times a test passes are the times
    /// the store decides at, on either backend.
    pub(crate) async fn fresh(&self) -> AnyStore {
        match self {
            Stores::Memory => AnyStore::Memory(MemoryStore::new()),
            Stores::Redis { server, made } => {
                made.set(made.get() + 1);
                let prefix = format!("{{contract-{}}}", made.get());
                let options = RedisOptions { time: TimeSource::Caller, prefix, ..RedisOptions::default() };
                AnyStore::Redis(RedisStore::connect(&server.url(), options).await.unwrap())
            }
        }
    }
}

/// Expands each named contract body (`async fn name(stores: Stores)`) into
/// `memory::name` and `redis::name`.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        /// Each contract on the embedded store.
        mod memory {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(crate::store_contract::Stores::Memory).await
                }
            )*
        }
        /// Each contract on a private redis-server.
        mod redis {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(crate::store_contract::Stores::redis()).await
                }
            )*
        }
    };
}
pub(crate) use contract;
