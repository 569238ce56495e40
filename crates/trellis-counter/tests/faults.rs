//! Faults with real QUIC on 127.0.0.1: the leader killed, a voter
//! restarted from its disk after the log moved past it, the whole group
//! restarted, and minorities cut off by network partitions.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{fast, settle, Cluster};
use trellis_counter::{CounterConfig, CounterError};

/// A hang guard, far above the request timeout: a call that has not
/// returned by then is a hung call.
const HANG: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_lets_the_others_go_on_and_keys_hold_across_the_change() {
    let mut cluster = Cluster::start("kill-leader", 3, 3, fast).await;
    let leader = cluster.leader(&[0, 1, 2]).await;
    let follower = (leader + 1) % 3;
    settle(|| {
        cluster
            .node(follower)
            .create("stock", 10, 0, Some("create-stock"))
    })
    .await;
    let first = cluster
        .node(follower)
        .decrement("stock", 3, Some("order-1"))
        .await
        .unwrap();
    assert_eq!(first.value, 7);

    cluster.kill(leader).await;
    let rest: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let new_leader = cluster.leader(&rest).await;
    assert_ne!(new_leader, leader);

    // The client retries order-1 on another node after the leader change:
    // the original answer, applied once.
    let other = rest[1];
    let retried = settle(|| cluster.node(other).decrement("stock", 3, Some("order-1"))).await;
    assert_eq!(retried, first);
    let retried_create = cluster
        .node(other)
        .create("stock", 10, 0, Some("create-stock"))
        .await
        .unwrap();
    assert_eq!(retried_create.value, 10, "the first create's answer");
    assert!(matches!(
        cluster
            .node(other)
            .decrement("stock", 1, Some("order-1"))
            .await,
        Err(CounterError::IdempotencyKeyReused { .. })
    ));
    // Progress with two of three voters.
    assert_eq!(
        cluster
            .node(rest[0])
            .decrement("stock", 2, Some("order-2"))
            .await
            .unwrap()
            .value,
        5
    );
    assert_eq!(cluster.node(rest[1]).read("stock").await.unwrap().value, 5);

    // The old leader comes back from its disk and catches up.
    cluster.start_node(leader).await;
    let applied = cluster.node(new_leader).status().last_applied.unwrap();
    cluster.caught_up(leader, applied).await;
    assert_eq!(cluster.node(leader).read("stock").await.unwrap().value, 5);
}

fn small_snapshots(config: &mut CounterConfig) {
    fast(config);
    config.snapshot_every = 20;
    config.keep_log_entries = 5;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_voter_catches_up_from_a_snapshot_and_the_log_stays_bounded() {
    let mut cluster = Cluster::start("restart", 3, 3, small_snapshots).await;
    cluster.leader(&[0, 1, 2]).await;
    settle(|| cluster.node(0).create("stock", 1_000, 0, None)).await;
    let stopped = 2;
    cluster.kill(stopped).await;
    let leader = cluster.leader(&[0, 1]).await;
    for i in 0..120 {
        let key = format!("order-{i}");
        cluster
            .node(i % 2)
            .decrement("stock", 1, Some(&key))
            .await
            .unwrap();
    }
    let status = cluster.node(leader).status();
    let purged = status.purged.expect("the leader purged its log");
    let last = status.last_log_index.unwrap();
    assert!(
        last - purged < 60,
        "the log is bounded by snapshots: {status:?}"
    );

    cluster.start_node(stopped).await;
    cluster.caught_up(stopped, last).await;
    let restarted = cluster.node(stopped).status();
    assert!(
        restarted.snapshot >= Some(purged),
        "the restarted voter installed a snapshot past the purged log: {restarted:?}"
    );
    // The restarted voter now carries the group: stop another one and
    // the state is all there.
    cluster.kill(leader).await;
    let others: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    cluster.leader(&others).await;
    let value = settle(|| cluster.node(stopped).read("stock")).await;
    assert_eq!(value.value, 1_000 - 120);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minority_partition_gets_no_quorum_in_bounded_time_and_the_majority_goes_on() {
    let cluster = Cluster::start("partition", 3, 3, fast).await;
    let leader = cluster.leader(&[0, 1, 2]).await;
    settle(|| cluster.node(0).create("stock", 10, 0, None)).await;

    // Cut the leader off: it is the minority.
    cluster.partition(&[leader]);
    let majority: Vec<usize> = (0..3).filter(|&i| i != leader).collect();

    let write = tokio::time::timeout(
        HANG,
        cluster.node(leader).decrement("stock", 1, Some("cut-off")),
    )
    .await
    .expect("a call in the minority returned instead of hanging");
    assert!(
        matches!(write, Err(CounterError::NoQuorum { .. })),
        "expected no quorum, got {write:?}"
    );
    let read = tokio::time::timeout(HANG, cluster.node(leader).read("stock"))
        .await
        .expect("a read in the minority returned instead of hanging");
    assert!(
        matches!(read, Err(CounterError::NoQuorum { .. })),
        "expected no quorum, got {read:?}"
    );

    let new_leader = cluster.leader(&majority).await;
    let after = settle(|| {
        cluster
            .node(new_leader)
            .decrement("stock", 2, Some("majority"))
    })
    .await;
    // The cut-off decrement may or may not have been committed (its
    // outcome is unknown); the majority's is on top of whatever was.
    assert!(after.value == 8 || after.value == 7, "{after:?}");

    cluster.heal();
    let applied = cluster.node(new_leader).status().last_applied.unwrap();
    cluster.caught_up(leader, applied).await;
    // Retrying the unknown call with its key settles it exactly once.
    let settled = settle(|| cluster.node(leader).decrement("stock", 1, Some("cut-off"))).await;
    let value = cluster.node(majority[0]).read("stock").await.unwrap().value;
    assert_eq!(value, 7);
    assert!(settled.value == 9 || settled.value == 7, "{settled:?}");

    // Now a follower is cut off and the leader keeps its majority.
    let leader = cluster.leader(&[0, 1, 2]).await;
    let follower = (leader + 1) % 3;
    cluster.partition(&[follower]);
    let majority: Vec<usize> = (0..3).filter(|&i| i != follower).collect();
    let lonely = tokio::time::timeout(HANG, cluster.node(follower).read("stock"))
        .await
        .expect("a read in the minority returned instead of hanging");
    assert!(
        matches!(lonely, Err(CounterError::NoQuorum { .. })),
        "expected no quorum, got {lonely:?}"
    );
    let leader = cluster.leader(&majority).await;
    let after = settle(|| cluster.node(leader).increment("stock", 3, Some("restock"))).await;
    assert_eq!(after.value, 10);
    cluster.heal();
    assert_eq!(
        settle(|| cluster.node(follower).read("stock")).await.value,
        10
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_group_restarts_from_disk_with_its_keys() {
    let mut cluster = Cluster::start("full-restart", 3, 3, fast).await;
    cluster.leader(&[0, 1, 2]).await;
    settle(|| cluster.node(0).create("stock", 9, 0, None)).await;
    let sold = cluster
        .node(1)
        .decrement("stock", 4, Some("order-7"))
        .await
        .unwrap();
    cluster.node(2).create("apples", 1, 0, None).await.unwrap();
    for i in 0..3 {
        cluster.kill(i).await;
    }
    for i in 0..3 {
        cluster.start_node(i).await;
    }
    cluster.leader(&[0, 1, 2]).await;
    let replayed = settle(|| cluster.node(2).decrement("stock", 4, Some("order-7"))).await;
    assert_eq!(replayed, sold, "the key survived the restart");
    let values: Vec<(String, i64)> = cluster
        .node(0)
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.name, c.value))
        .collect();
    assert_eq!(values, vec![("apples".into(), 1), ("stock".into(), 5)]);
}
