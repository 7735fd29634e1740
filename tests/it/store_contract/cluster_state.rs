//! `ClusterState`: what replicas share besides traffic. Breaker resets
//! count generations per circuit, published breaker views are read back
//! by age, and runtime config versions only grow.

use super::{Stores, contract};

use floodgate::store::{ClusterState, StoredConfig};

contract!(
    breaker_resets_count_generations_per_circuit,
    published_breaker_views_are_read_back_since_a_time,
    config_versions_grow_and_the_current_one_is_read_back,
);

async fn breaker_resets_count_generations_per_circuit(stores: Stores) {
    let store = stores.fresh().await;
    assert!(store.breaker_generations().await.unwrap().is_empty());
    assert_eq!(store.reset_breaker("rate_limiter").await.unwrap(), 1);
    assert_eq!(store.reset_breaker("rate_limiter").await.unwrap(), 2);
    assert_eq!(store.reset_breaker("storage").await.unwrap(), 1);
    let generations: Vec<(String, u64)> = store.breaker_generations().await.unwrap().into_iter().collect();
    assert_eq!(generations, [("rate_limiter".to_owned(), 2), ("storage".to_owned(), 1)]);
}

/// Each replica's latest view replaces its earlier one; views older than
/// `since` are left out.
async fn published_breaker_views_are_read_back_since_a_time(stores: Stores) {
    let store = stores.fresh().await;
    store.publish_breakers("r1", r#"{"replica":"r1","v":1}"#.into(), 1_000).await.unwrap();
    store.publish_breakers("r2", r#"{"replica":"r2","v":1}"#.into(), 2_000).await.unwrap();
    store.publish_breakers("r1", r#"{"replica":"r1","v":2}"#.into(), 3_000).await.unwrap();
    let mut all = store.cluster_breakers(2_000).await.unwrap();
    all.sort();
    assert_eq!(all, [r#"{"replica":"r1","v":2}"#, r#"{"replica":"r2","v":1}"#]);
    assert_eq!(store.cluster_breakers(2_001).await.unwrap(), [r#"{"replica":"r1","v":2}"#]);
}

async fn config_versions_grow_and_the_current_one_is_read_back(stores: Stores) {
    let store = stores.fresh().await;
    assert_eq!(store.load_config().await.unwrap(), None);
    assert_eq!(store.store_config(r#"{"a":1}"#.into()).await.unwrap(), 1);
    assert_eq!(store.store_config(r#"{"a":2}"#.into()).await.unwrap(), 2);
    let current = store.load_config().await.unwrap();
    assert_eq!(current, Some(StoredConfig { version: 2, json: r#"{"a":2}"#.into() }));
}
