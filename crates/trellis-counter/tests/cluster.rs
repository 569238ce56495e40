//! Voters on 127.0.0.1 with real QUIC: every call works from every node,
//! concurrent decrements never oversell, membership changes, bad frames
//! are shrugged off, and five voters tolerate two losses.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{fast, settle, Cluster};
use tokio::task::JoinSet;
use trellis_counter::CounterError;
use trellis_net::ALPN_COUNTER;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_works_from_every_node() {
    let cluster = Cluster::start("ops", 3, 3, fast).await;
    let leader = cluster.leader(&[0, 1, 2]).await;
    let follower = (leader + 1) % 3;
    let created = settle(|| cluster.node(follower).create("stock", 10, 2, None)).await;
    assert_eq!((created.value, created.min), (10, 2));
    assert!(matches!(
        cluster.node(leader).create("stock", 1, 0, None).await,
        Err(CounterError::AlreadyExists { value: 10, .. })
    ));
    assert_eq!(
        cluster
            .node(2)
            .increment("stock", 5, None)
            .await
            .unwrap()
            .value,
        15
    );
    assert_eq!(
        cluster
            .node(0)
            .decrement("stock", 13, None)
            .await
            .unwrap()
            .value,
        2
    );
    match cluster.node(1).decrement("stock", 1, None).await {
        Err(CounterError::Insufficient { available, .. }) => assert_eq!(available, 0),
        other => panic!("expected insufficient, got {other:?}"),
    }
    assert_eq!(
        cluster.node(1).set("stock", 7, None).await.unwrap().value,
        7
    );
    assert!(matches!(
        cluster.node(1).set("stock", 1, None).await,
        Err(CounterError::BelowMinimum { min: 2, .. })
    ));
    for i in 0..3 {
        assert_eq!(cluster.node(i).read("stock").await.unwrap().value, 7);
    }
    assert!(matches!(
        cluster.node(follower).read("nothing").await,
        Err(CounterError::NotFound { .. })
    ));
    assert!(matches!(
        cluster.node(follower).decrement("stock", 0, None).await,
        Err(CounterError::InvalidRequest(_))
    ));
    cluster.node(0).create("apples", 3, 0, None).await.unwrap();
    let names: Vec<_> = cluster
        .node(2)
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.name, c.value))
        .collect();
    assert_eq!(names, vec![("apples".into(), 3), ("stock".into(), 7)]);
    let members = cluster.node(follower).members().await.unwrap();
    assert_eq!(members.voters.len(), 3);
    assert_eq!(members.leader, Some(Cluster::id(leader)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_decrements_from_all_nodes_never_oversell() {
    const INITIAL: i64 = 40;
    let cluster = Cluster::start("oversell", 3, 3, fast).await;
    cluster.leader(&[0, 1, 2]).await;
    settle(|| cluster.node(0).create("stock", INITIAL, 0, None)).await;

    let mut clients = JoinSet::new();
    for client in 0..6 {
        let counters = cluster.node(client % 3).clone();
        clients.spawn(async move {
            let (mut taken, mut added, mut refused) = (0i64, 0i64, 0);
            for op in 0..15 {
                let key = format!("client{client}-op{op}");
                if client == 5 && op % 5 == 0 {
                    if counters.increment("stock", 2, Some(&key)).await.is_ok() {
                        added += 2;
                    }
                    continue;
                }
                match counters.decrement("stock", 1, Some(&key)).await {
                    Ok(after) => {
                        assert!(after.value >= 0, "value below the minimum: {after:?}");
                        taken += 1;
                    }
                    Err(CounterError::Insufficient { .. }) => refused += 1,
                    Err(err) => panic!("unexpected failure without faults: {err}"),
                }
            }
            (taken, added, refused)
        });
    }
    let (mut taken, mut added, mut refused) = (0, 0, 0);
    while let Some(result) = clients.join_next().await {
        let (t, a, r) = result.unwrap();
        taken += t;
        added += a;
        refused += r;
    }
    // 87 decrements asked for 40 + 6 units: acknowledged ones never exceed
    // the stock, none is lost, and refusals happened only once it ran out.
    assert!(
        taken <= INITIAL + added,
        "oversold: {taken} > {INITIAL} + {added}"
    );
    let last = cluster.node(1).read("stock").await.unwrap().value;
    assert_eq!(
        last,
        INITIAL + added - taken,
        "an acknowledged operation was lost"
    );
    assert_eq!(last, 0, "decrements were refused while stock remained");
    assert!(refused > 0);
}

fn small_snapshots(config: &mut trellis_counter::CounterConfig) {
    fast(config);
    config.snapshot_every = 10;
    config.keep_log_entries = 2;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voters_are_added_and_removed_through_the_api() {
    // Node 0 is the only configured voter; node 1 starts as a bystander.
    let cluster = Cluster::start("membership", 2, 1, small_snapshots).await;
    cluster.leader(&[0]).await;
    // A bystander forwards calls to the leader.
    settle(|| cluster.node(1).create("stock", 30, 0, None)).await;
    for _ in 0..27 {
        cluster.node(1).decrement("stock", 1, None).await.unwrap();
    }
    assert!(
        cluster.node(0).status().purged.is_some(),
        "the log was purged, so the new voter needs a snapshot"
    );

    let members = cluster
        .node(1)
        .add_voter(Cluster::id(1), cluster.addrs[1])
        .await
        .unwrap();
    assert_eq!(
        members.voters.keys().copied().collect::<Vec<_>>(),
        vec![Cluster::id(0), Cluster::id(1)]
    );
    let joined = cluster.node(1).status();
    assert!(joined.voters.contains(&Cluster::id(1)));
    assert!(
        joined.snapshot.is_some(),
        "caught up from a snapshot: {joined:?}"
    );
    assert_eq!(cluster.node(1).read("stock").await.unwrap().value, 3);

    let members = cluster.node(0).remove_voter(Cluster::id(1)).await.unwrap();
    assert_eq!(
        members.voters.keys().copied().collect::<Vec<_>>(),
        vec![Cluster::id(0)]
    );
    assert!(matches!(
        cluster.node(0).remove_voter(Cluster::id(1)).await,
        Err(CounterError::NotVoter { id: 2 })
    ));
    assert!(matches!(
        cluster.node(0).remove_voter(Cluster::id(0)).await,
        Err(CounterError::Membership(_))
    ));
    assert_eq!(
        cluster
            .node(1)
            .increment("stock", 1, None)
            .await
            .unwrap()
            .value,
        4
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_close_their_stream_and_the_node_goes_on() {
    let cluster = Cluster::start("bad-frames", 3, 3, fast).await;
    cluster.leader(&[0, 1, 2]).await;
    settle(|| cluster.node(0).create("stock", 3, 0, None)).await;

    // A member of the cluster speaking nonsense on the counter protocol.
    let rogue = &cluster.nodes[1].as_ref().unwrap().endpoint;
    let connection = rogue
        .connect(cluster.addrs[0], ALPN_COUNTER, Cluster::id(0))
        .await
        .unwrap();
    let guard = Duration::from_secs(30);
    let answer = tokio::time::timeout(
        guard,
        connection.request::<str, String>("not a counter request"),
    )
    .await
    .expect("a bad request gets its stream closed, not a hang");
    assert!(answer.is_err(), "{answer:?}");
    let (mut send, mut recv) = connection.open_bi().await.unwrap();
    send.write_all(&[0xff; 16]).await.unwrap();
    let _ = send.finish();
    let reply = tokio::time::timeout(guard, connection.read_frame::<String>(&mut recv))
        .await
        .expect("a bad frame gets its stream closed, not a hang");
    assert!(!matches!(reply, Ok(Some(_))), "{reply:?}");

    // The node still serves.
    assert_eq!(
        cluster
            .node(2)
            .decrement("stock", 1, None)
            .await
            .unwrap()
            .value,
        2
    );
    assert_eq!(cluster.node(0).read("stock").await.unwrap().value, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_voters_survive_two_losses_but_not_three() {
    let mut cluster = Cluster::start("five", 5, 5, fast).await;
    let all = [0, 1, 2, 3, 4];
    let first = cluster.leader(&all).await;
    settle(|| cluster.node(first).create("stock", 5, 0, Some("create"))).await;

    let second = {
        cluster.kill(first).await;
        let rest: Vec<usize> = all.into_iter().filter(|&i| i != first).collect();
        let leader = cluster.leader(&rest).await;
        cluster.kill(leader).await;
        leader
    };
    let rest: Vec<usize> = all
        .into_iter()
        .filter(|&i| i != first && i != second)
        .collect();
    cluster.leader(&rest).await;
    let after = settle(|| cluster.node(rest[0]).decrement("stock", 2, Some("order"))).await;
    assert_eq!(after.value, 3);

    cluster.kill(rest[0]).await;
    let lonely = cluster
        .node(rest[1])
        .decrement("stock", 1, Some("late"))
        .await;
    assert!(
        matches!(lonely, Err(CounterError::NoQuorum { .. })),
        "two of five cannot decide: {lonely:?}"
    );
}
