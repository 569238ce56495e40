//! Histories of about 100 concurrent calls on one counter, with the
//! leader killed or cut off half way, checked for linearizability
//! (Wing–Gong–Lowe) and for read bounds. The checker itself is tested on
//! histories that must fail.
#![allow(clippy::unwrap_used)]

mod common;
mod history;

use std::sync::Arc;
use std::time::Instant;

use common::{fast, settle, Cluster};
use history::{linearizable, reads_out_of_bounds, Answer, Call, Op};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use trellis_counter::CounterError;

const INITIAL: i64 = 10;

fn op(call: Call, invoked: u64, returned: u64, answer: Answer) -> Op {
    Op {
        call,
        invoked,
        returned,
        answer,
    }
}

#[test]
fn the_checker_refuses_stale_reads_lost_writes_and_oversold_stock() {
    // A read that starts after an increment returned must see it.
    let stale = [
        op(Call::Increment(1), 0, 10, Answer::Value(11)),
        op(Call::Read, 20, 30, Answer::Value(10)),
    ];
    assert!(!linearizable(INITIAL, &stale));
    assert_eq!(reads_out_of_bounds(INITIAL, &stale).len(), 1);
    // Two decrements of the last 10 cannot both succeed.
    let oversold = [
        op(Call::Decrement(10), 0, 10, Answer::Value(0)),
        op(Call::Decrement(10), 0, 10, Answer::Value(0)),
    ];
    assert!(!linearizable(INITIAL, &oversold));
    // A refusal must carry what was available at that point.
    let wrong_available = [
        op(Call::Decrement(4), 0, 10, Answer::Value(6)),
        op(Call::Decrement(7), 20, 30, Answer::Insufficient(10)),
    ];
    assert!(!linearizable(INITIAL, &wrong_available));

    // Concurrent calls may be ordered either way; unknown ones may or may
    // not have happened.
    let concurrent = [
        op(Call::Increment(5), 0, 50, Answer::Value(15)),
        op(Call::Read, 10, 20, Answer::Value(10)),
        op(Call::Decrement(3), 5, 60, Answer::Unknown),
        op(Call::Read, 70, 80, Answer::Value(12)),
    ];
    assert!(linearizable(INITIAL, &concurrent));
    assert!(reads_out_of_bounds(INITIAL, &concurrent).is_empty());
    let unknown_skipped = [
        op(Call::Decrement(3), 5, 6, Answer::Unknown),
        op(Call::Read, 70, 80, Answer::Value(10)),
    ];
    assert!(linearizable(INITIAL, &unknown_skipped));
}

/// A deterministic stream of calls per client.
fn plan(client: u64, count: usize) -> Vec<Call> {
    let mut seed = client.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..count)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let amount = (seed % 3) as i64 + 1;
            match seed % 10 {
                0..=3 => Call::Decrement(amount),
                4..=5 => Call::Increment(amount),
                _ => Call::Read,
            }
        })
        .collect()
}

/// What goes wrong while the clients run.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// The leader is killed half way.
    KillLeader,
    /// The leader is cut off half way (a client keeps calling it) and the
    /// partition heals later.
    PartitionLeader,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_with_a_leader_crash_are_linearizable() {
    check_history("linearizable-kill", Fault::KillLeader).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_across_a_partition_are_linearizable() {
    check_history("linearizable-partition", Fault::PartitionLeader).await;
}

/// Four clients make 25 calls each on one counter while `fault` happens,
/// then a last read closes the history, which must be linearizable.
async fn check_history(name: &str, fault: Fault) {
    let mut cluster = Cluster::start(name, 3, 3, fast).await;
    let leader = cluster.leader(&[0, 1, 2]).await;
    settle(|| cluster.node(0).create("c", INITIAL, 0, None)).await;

    let start = Instant::now();
    let halfway = Arc::new(Notify::new());
    let late = Arc::new(Notify::new());
    let others: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let mut clients = JoinSet::new();
    for client in 0..4u64 {
        // A killed node has no clients; a cut-off one keeps one.
        let node = match (fault, client) {
            (Fault::PartitionLeader, 3) => leader,
            _ => others[client as usize % 2],
        };
        let counters = cluster.node(node).clone();
        let (halfway, late) = (halfway.clone(), late.clone());
        clients.spawn(async move {
            let mut history = Vec::new();
            for (n, call) in plan(client, 25).into_iter().enumerate() {
                if client == 0 && n == 12 {
                    halfway.notify_one();
                }
                if client == 0 && n == 20 {
                    late.notify_one();
                }
                let key = format!("client{client}-call{n}");
                let invoked = start.elapsed().as_nanos() as u64;
                let result = match call {
                    Call::Increment(by) => counters.increment("c", by, Some(&key)).await,
                    Call::Decrement(by) => counters.decrement("c", by, Some(&key)).await,
                    Call::Read => counters.read("c").await,
                };
                let returned = start.elapsed().as_nanos() as u64;
                let answer = match result {
                    Ok(value) => Answer::Value(value.value),
                    Err(CounterError::Insufficient { available, .. }) => {
                        Answer::Insufficient(available)
                    }
                    // A failed read has no effect: leave it out.
                    Err(CounterError::NoQuorum { .. }) if call == Call::Read => continue,
                    Err(err @ CounterError::NoQuorum { .. }) => {
                        eprintln!("unknown outcome: {err}");
                        Answer::Unknown
                    }
                    Err(err) => panic!("unexpected failure: {err}"),
                };
                history.push(Op {
                    call,
                    invoked,
                    returned,
                    answer,
                });
            }
            history
        });
    }
    halfway.notified().await;
    match fault {
        Fault::KillLeader => cluster.kill(leader).await,
        Fault::PartitionLeader => {
            cluster.partition(&[leader]);
            late.notified().await;
            cluster.heal();
        }
    }

    let mut history = Vec::new();
    while let Some(result) = clients.join_next().await {
        history.extend(result.unwrap());
    }
    // A last read after everything: every acknowledged change must be in it.
    let invoked = start.elapsed().as_nanos() as u64;
    let last = settle(|| cluster.node(others[0]).read("c")).await;
    history.push(Op {
        call: Call::Read,
        invoked,
        returned: start.elapsed().as_nanos() as u64,
        answer: Answer::Value(last.value),
    });
    let unknown = history
        .iter()
        .filter(|op| op.answer == Answer::Unknown)
        .count();
    let refused = history
        .iter()
        .filter(|op| matches!(op.answer, Answer::Insufficient(_)))
        .count();
    eprintln!(
        "{} calls answered, {unknown} unknown, {refused} refused",
        history.len()
    );
    assert!(
        history.len() >= 60,
        "most calls answered: {}",
        history.len()
    );
    let out_of_bounds = reads_out_of_bounds(INITIAL, &history);
    assert!(
        out_of_bounds.is_empty(),
        "reads out of bounds: {out_of_bounds:?}"
    );
    assert!(
        linearizable(INITIAL, &history),
        "not linearizable: {history:#?}"
    );
}
