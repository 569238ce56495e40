//! Two sites edit the same lead while cut off from each other, then merge.
//!
//! Run with `cargo run --release --example two_replicas`.

use serde_json::json;
use trellis_crdt::{codec, Atom, FieldPath, Lattice, Op, Record, ReplicaId, Timestamp};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let berlin = ReplicaId(0xbe);
    let lisbon = ReplicaId(0x15);

    // A lead arrives from the web form in Berlin and reaches Lisbon.
    let mut at_berlin = Record::from_json(
        &json!({"name": "Ada Lovelace", "stage": "new", "address": {"city": "London"}}),
        berlin,
        Timestamp::from_millis(1_000),
    )?;
    let mut at_lisbon = at_berlin.clone();
    println!("both sites:     {}", at_berlin.to_json());

    // The link drops. Each site keeps working.
    let path = |name: &str| FieldPath::top(name);
    let mut berlin_deltas = vec![at_berlin.apply(
        &Op::Set {
            path: path("stage")?,
            value: "qualified".into(),
        },
        berlin,
        Timestamp::from_millis(2_000),
    )?];
    berlin_deltas.push(at_berlin.apply(
        &Op::Add {
            path: path("tags")?,
            element: Atom::from("vip"),
        },
        berlin,
        Timestamp::from_millis(2_001),
    )?);
    let mut lisbon_deltas = vec![at_lisbon.apply(
        &Op::Set {
            path: path("stage")?,
            value: "contacted".into(),
        },
        lisbon,
        Timestamp::from_millis(2_500),
    )?];
    lisbon_deltas.push(at_lisbon.apply(
        &Op::Add {
            path: path("tags")?,
            element: Atom::from("spanish"),
        },
        lisbon,
        Timestamp::from_millis(2_501),
    )?);
    lisbon_deltas.push(at_lisbon.apply(
        &Op::Increment {
            path: path("calls")?,
            by: 1,
        },
        lisbon,
        Timestamp::from_millis(2_502),
    )?);
    println!("berlin, cut off: {}", at_berlin.to_json());
    println!("lisbon, cut off: {}", at_lisbon.to_json());

    // The link returns: each site merges the other's deltas, shipped as bytes.
    for delta in &lisbon_deltas {
        at_berlin.merge_delta(codec::decode(&codec::encode(delta))?);
    }
    for delta in &berlin_deltas {
        at_lisbon.merge_delta(codec::decode(&codec::encode(delta))?);
    }
    println!("after merge:    {}", at_berlin.to_json());

    let stage = at_berlin
        .field(&path("stage")?)
        .map(|field| field.register.siblings().count());
    println!(
        "stage has {} concurrent values; the later write wins the view",
        stage.unwrap_or(0)
    );
    println!("berlin digest:  {}", at_berlin.digest());
    println!("lisbon digest:  {}", at_lisbon.digest());
    assert_eq!(at_berlin, at_lisbon, "replicas must converge");
    println!("converged: equal state, equal digests");
    Ok(())
}
