//! Hostile bytes: what a peer sends goes through `codec::decode`, so every
//! type the engine decodes must turn random or corrupted bytes into `Ok` or
//! `Err`, never a panic, and must not trust a length prefix. Whatever does
//! decode must behave as a state: it re-encodes to itself and merges
//! idempotently into a valid state.
//!
//! This is the stable-toolchain, CI-sized companion of the cargo-fuzz
//! target `fuzz/fuzz_targets/decode_merge.rs`. Case counts come from
//! `TRELLIS_PROPTEST_CASES` (see `trellis_crdt::testing::config`).

use std::fmt::Debug;
use std::time::{Duration, Instant};

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use trellis_crdt::codec::{self, DecodeError, DEFAULT_DECODE_LIMIT, FORMAT_VERSION};
use trellis_crdt::testing::{
    atom, causal_context, config, counter_op, flag_op, record_op, register_op, replica_states,
    reset_counter_op, set_op, Operation, SetOp,
};
use trellis_crdt::{
    Atom, AwSet, Causal, CausalContext, EwFlag, GCounter, Lattice, MvReg, OrMap, PnCounter, Record,
    ReplicaId, ResetCounter, Timestamp,
};

// ---------------------------------------------------------------------------
// The decoded types
// ---------------------------------------------------------------------------

/// A map of named registers, as an embedder would build one.
type Profile = Causal<OrMap<String, MvReg<Atom>>>;

/// A type decoded from peers' bytes, with its join.
trait Decoded: Clone + PartialEq + Debug + Serialize + DeserializeOwned {
    /// Joins `other` into `self`.
    fn join(&mut self, other: Self);

    /// Read-side calls that must not panic on any decoded or merged state.
    fn read(&self) {}
}

macro_rules! lattice_decoded {
    ($($state:ty),* $(,)?) => {$(
        impl Decoded for $state {
            fn join(&mut self, other: Self) {
                self.merge(other);
            }
        }
    )*};
}

lattice_decoded!(
    Causal<AwSet<u64>>,
    Causal<AwSet<Atom>>,
    Causal<MvReg<Atom>>,
    Causal<EwFlag>,
    Causal<ResetCounter>,
    Profile,
    GCounter,
    PnCounter,
);

impl Decoded for Record {
    fn join(&mut self, other: Self) {
        self.merge(other);
    }

    fn read(&self) {
        assert!(self.to_json().is_object());
        for (_, field) in self.fields() {
            let _ = field.to_json();
        }
    }
}

impl Decoded for CausalContext {
    fn join(&mut self, other: Self) {
        self.union(&other);
    }
}

/// Decodes `bytes` as a `T`; if that succeeds, checks that the value
/// re-encodes to itself, merges idempotently into `base` (a valid state),
/// and that the merged state round-trips through the codec.
fn check_decoded<T: Decoded>(bytes: &[u8], base: &T) -> Result<(), TestCaseError> {
    let Ok(value) = codec::decode::<T>(bytes) else {
        return Ok(());
    };
    value.read();

    let encoded = codec::encode(&value);
    let back = codec::decode::<T>(&encoded).map_err(|err| {
        TestCaseError::fail(format!("a decoded value re-encodes to bad bytes: {err}"))
    })?;
    prop_assert_eq!(&back, &value, "decode(encode(x)) != x for a decoded x");
    prop_assert_eq!(
        codec::encode(&back),
        encoded,
        "re-encoding is not deterministic"
    );

    let mut once = base.clone();
    once.join(value.clone());
    let mut twice = once.clone();
    twice.join(value.clone());
    prop_assert_eq!(
        &twice,
        &once,
        "merging a decoded value twice differs from once"
    );
    once.read();

    // The other way round must not panic either.
    let mut reverse = value;
    reverse.join(base.clone());
    reverse.read();

    let merged = codec::decode::<T>(&codec::encode(&once)).map_err(|err| {
        TestCaseError::fail(format!("a merged state re-encodes to bad bytes: {err}"))
    })?;
    prop_assert_eq!(&merged, &once, "the merged state does not round-trip");
    Ok(())
}

// ---------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------

/// Up to 511 random bytes, half the time behind the right version byte
/// and a packing byte (mostly plain, sometimes deflate).
fn random_bytes() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<bool>(),
        prop_oneof![3 => Just(codec::PLAIN), 1 => Just(codec::DEFLATE)],
        vec(any::<u8>(), 0..512),
    )
        .prop_map(|(versioned, packing, mut bytes)| {
            if versioned && bytes.len() >= 2 {
                bytes[0] = FORMAT_VERSION;
                bytes[1] = packing;
            }
            bytes
        })
}

/// bincode's variable-length integer for `u64::MAX`: a marker byte, then
/// eight bytes.
const U64_MAX_VARINT: [u8; 9] = [0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];

/// One corruption of an encoding. Offsets wrap around the current length.
#[derive(Clone, Debug)]
enum Mutation {
    /// Flip one bit.
    Flip { at: usize, bit: u8 },
    /// Overwrite one byte.
    Overwrite { at: usize, byte: u8 },
    /// Cut the input short.
    Truncate { at: usize },
    /// Insert bytes.
    Insert { at: usize, bytes: Vec<u8> },
    /// Delete a few bytes.
    Delete { at: usize, len: usize },
}

/// Bytes worth inserting: random ones, and length prefixes or integers at
/// the edges of bincode's varint encoding.
fn insertion() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => vec(any::<u8>(), 1..8),
        1 => Just(U64_MAX_VARINT.to_vec()),
        1 => Just(vec![0xfc, 0xff, 0xff, 0xff, 0xff]),
        1 => Just(vec![0xfb, 0xff, 0xff]),
        1 => Just(vec![0xfa]),
        1 => Just(vec![0x00]),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        2 => (any::<usize>(), prop_oneof![Just(0u8), Just(0xfa), Just(0xfd), Just(0xff), any::<u8>()])
            .prop_map(|(at, byte)| Mutation::Overwrite { at, byte }),
        1 => any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        2 => (any::<usize>(), insertion()).prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        1 => (any::<usize>(), 1usize..8).prop_map(|(at, len)| Mutation::Delete { at, len }),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for mutation in mutations {
        let len = bytes.len();
        match mutation {
            Mutation::Flip { at, bit } if len > 0 => bytes[at % len] ^= 1 << bit,
            Mutation::Overwrite { at, byte } if len > 0 => bytes[at % len] = *byte,
            Mutation::Truncate { at } => bytes.truncate(at % (len + 1)),
            Mutation::Insert {
                at,
                bytes: inserted,
            } => {
                let at = at % (len + 1);
                bytes.splice(at..at, inserted.iter().copied());
            }
            Mutation::Delete { at, len: count } if len > 0 => {
                let at = at % len;
                bytes.drain(at..(at + count).min(len));
            }
            _ => {}
        }
    }
    bytes
}

/// Two states of one system, from the testing kit: the first is encoded
/// and corrupted, the second is the valid state the result merges into.
fn two_states<S, O>(op: impl Strategy<Value = O>) -> impl Strategy<Value = (S, S)>
where
    S: Lattice + Debug,
    O: Operation<S>,
{
    replica_states::<S, O>(op).prop_map(|[a, b, _]| (a, b))
}

/// Set operations on `u64` elements whose encodings span several bytes.
fn u64_set_op() -> impl Strategy<Value = SetOp<u64>> + Clone {
    set_op().prop_map(|op| {
        let widen = |e: u8| u64::from(e) * 1_000_003;
        match op {
            SetOp::Add(e) => SetOp::Add(widen(e)),
            SetOp::Remove(e) => SetOp::Remove(widen(e)),
            SetOp::Clear => SetOp::Clear,
        }
    })
}

fn atom_set_op() -> impl Strategy<Value = SetOp<Atom>> + Clone {
    prop_oneof![
        4 => atom().prop_map(SetOp::Add),
        3 => atom().prop_map(SetOp::Remove),
        1 => Just(SetOp::Clear),
    ]
}

/// An operation on a [`Profile`].
#[derive(Clone, Debug)]
enum ProfileOp {
    Write(String, Atom),
    Remove(String),
    Clear,
}

impl Operation<Profile> for ProfileOp {
    fn apply_to(&self, state: &mut Profile, replica: ReplicaId, time: Timestamp) -> Profile {
        match self {
            ProfileOp::Write(key, value) => state.apply(|map, cx| {
                map.update(cx, key.clone(), |reg, cx| {
                    reg.write(cx, replica, time, value.clone())
                })
            }),
            ProfileOp::Remove(key) => state.apply(|map, _| map.remove(key)),
            ProfileOp::Clear => state.apply(|map, _| map.clear()),
        }
    }
}

fn profile_op() -> impl Strategy<Value = ProfileOp> + Clone {
    prop_oneof![
        5 => ("[a-c]{1,3}", atom()).prop_map(|(key, value)| ProfileOp::Write(key, value)),
        2 => "[a-c]{1,3}".prop_map(ProfileOp::Remove),
        1 => Just(ProfileOp::Clear),
    ]
}

// ---------------------------------------------------------------------------
// Properties, one module per type
// ---------------------------------------------------------------------------

macro_rules! hostile_properties {
    ($name:ident, $state:ty, $states:expr) => {
        mod $name {
            use super::*;

            proptest! {
                #![proptest_config(config())]

                /// Random bytes decode to `Ok` or `Err`, never a panic, and
                /// whatever decodes behaves as a state.
                #[test]
                fn random_bytes_decode_safely(
                    (_, base) in $states,
                    bytes in random_bytes(),
                ) {
                    check_decoded::<$state>(&bytes, &base)?;
                }

                /// Valid encodings with flipped, overwritten, inserted or
                /// deleted bytes, or cut short, decode safely too.
                #[test]
                fn corrupted_encodings_decode_safely(
                    (source, base) in $states,
                    mutations in vec(mutation(), 1..4),
                ) {
                    let bytes = mutate(codec::encode(&source), &mutations);
                    check_decoded::<$state>(&bytes, &base)?;
                }
            }
        }
    };
}

hostile_properties!(record, Record, two_states::<Record, _>(record_op()));
hostile_properties!(
    aw_set_u64,
    Causal<AwSet<u64>>,
    two_states::<Causal<AwSet<u64>>, _>(u64_set_op())
);
hostile_properties!(
    aw_set_atom,
    Causal<AwSet<Atom>>,
    two_states::<Causal<AwSet<Atom>>, _>(atom_set_op())
);
hostile_properties!(
    register,
    Causal<MvReg<Atom>>,
    two_states::<Causal<MvReg<Atom>>, _>(register_op())
);
hostile_properties!(
    ew_flag,
    Causal<EwFlag>,
    two_states::<Causal<EwFlag>, _>(flag_op())
);
hostile_properties!(
    reset_counter,
    Causal<ResetCounter>,
    two_states::<Causal<ResetCounter>, _>(reset_counter_op())
);
hostile_properties!(profile, Profile, two_states::<Profile, _>(profile_op()));
hostile_properties!(gcounter, GCounter, two_states::<GCounter, _>(counter_op()));
hostile_properties!(
    pn_counter,
    PnCounter,
    two_states::<PnCounter, _>(counter_op())
);
hostile_properties!(
    causal_context,
    CausalContext,
    (causal_context(), causal_context())
);

// ---------------------------------------------------------------------------
// Compressed encodings
// ---------------------------------------------------------------------------

/// A set large enough that its encoding is compressed.
fn large_set() -> Causal<AwSet<u64>> {
    let mut set = Causal::<AwSet<u64>>::default();
    for element in 0..3_000u64 {
        let replica = ReplicaId(0x5eed_0000_0000_0001 + element % 3);
        set.apply(|s, cx| s.add(cx, replica, element * 7));
    }
    set
}

/// A record large enough that its encoding is compressed.
fn large_record() -> Record {
    let mut record = Record::default();
    for field in 0..400u32 {
        let path = trellis_crdt::FieldPath::top(format!("field{field}")).expect("a valid name");
        let value = Atom::from(format!("value {field} of a large record"));
        let replica = ReplicaId(u64::from(field % 2) + 0x7777_0000_0000_0000);
        record
            .apply(
                &trellis_crdt::Op::Set { path, value },
                replica,
                Timestamp(u64::from(field) << 16),
            )
            .expect("a valid write");
    }
    record
}

/// The encodings of [`large_set`] and [`large_record`], built once.
fn large_encodings() -> &'static (Vec<u8>, Vec<u8>) {
    static ENCODINGS: std::sync::OnceLock<(Vec<u8>, Vec<u8>)> = std::sync::OnceLock::new();
    ENCODINGS.get_or_init(|| (codec::encode(&large_set()), codec::encode(&large_record())))
}

#[test]
fn large_states_are_compressed_and_round_trip() {
    for bytes in [codec::encode(&large_set()), codec::encode(&large_record())] {
        assert_eq!(bytes[..2], [FORMAT_VERSION, codec::DEFLATE]);
    }
    assert_eq!(
        codec::decode::<Causal<AwSet<u64>>>(&codec::encode(&large_set())).unwrap(),
        large_set()
    );
    assert_eq!(
        codec::decode::<Record>(&codec::encode(&large_record())).unwrap(),
        large_record()
    );
}

proptest! {
    #![proptest_config(config())]

    /// Corrupted compressed encodings (the stream, its length, its
    /// checksum) decode safely: an error, or a value that behaves as a
    /// state.
    #[test]
    fn corrupted_compressed_set_decodes_safely(mutations in vec(mutation(), 1..4)) {
        let bytes = mutate(large_encodings().0.clone(), &mutations);
        check_decoded::<Causal<AwSet<u64>>>(&bytes, &Causal::default())?;
    }

    #[test]
    fn corrupted_compressed_record_decodes_safely(mutations in vec(mutation(), 1..4)) {
        let bytes = mutate(large_encodings().1.clone(), &mutations);
        check_decoded::<Record>(&bytes, &Record::default())?;
    }
}

// ---------------------------------------------------------------------------
// The set layout: replica references and counter differences
// ---------------------------------------------------------------------------

/// Words of a set element's dots: references past the replicas named so
/// far, new replicas, lone references (a column cut short), counter
/// differences that wrap below 1 or past `MAX_COUNTER`.
fn set_words() -> impl Strategy<Value = Vec<u64>> {
    vec(
        prop_oneof![
            4 => 0u64..4,
            1 => Just(u64::MAX),
            1 => Just(u64::MAX - 1),
            1 => Just(1u64 << 63),
            1 => any::<u64>(),
        ],
        0..10,
    )
}

proptest! {
    #![proptest_config(config())]

    /// Hand-built set bodies with arbitrary words: bad replica references,
    /// replicas named twice, dots cut off before their counter, and
    /// counters out of range are errors; whatever decodes behaves as a
    /// state.
    #[test]
    fn hostile_set_words_decode_safely(
        entries in vec((0u64..8, set_words()), 0..8),
        (_, base) in two_states::<Causal<AwSet<u64>>, _>(u64_set_op()),
    ) {
        let bytes = codec::encode(&(entries, CausalContext::new()));
        check_decoded::<Causal<AwSet<u64>>>(&bytes, &base)?;
    }
}

#[test]
fn a_set_referring_to_an_unnamed_replica_is_refused() {
    // Element 1 with a dot of replica reference 1, before any is named.
    let bytes = codec::encode(&(vec![(1u64, vec![1u64, 2])], CausalContext::new()));
    let err = codec::decode::<Causal<AwSet<u64>>>(&bytes).unwrap_err();
    assert!(err.to_string().contains("refers to replica 1"), "{err}");
    // The same element naming its replica first decodes.
    let bytes = codec::encode(&(vec![(1u64, vec![0u64, 77, 2])], CausalContext::new()));
    let set = codec::decode::<Causal<AwSet<u64>>>(&bytes).expect("a valid set");
    assert!(set.store.contains(&1));
    assert!(set.context.contains(&trellis_crdt::Dot::new(77, 1)));
}

// ---------------------------------------------------------------------------
// Length prefixes and input size
// ---------------------------------------------------------------------------

/// How long one hostile decode may take, even in a debug build on a busy
/// machine: a claimed length must be refused, not acted on.
const QUICKLY: Duration = Duration::from_secs(1);

/// The version and plain packing bytes, `prefix`, then a length prefix
/// claiming `u64::MAX`.
fn claiming_u64_max_after(prefix: &[u8]) -> Vec<u8> {
    let mut bytes = vec![FORMAT_VERSION, codec::PLAIN];
    bytes.extend_from_slice(prefix);
    bytes.extend_from_slice(&U64_MAX_VARINT);
    bytes
}

/// Decodes each prefix followed by a `u64::MAX` length claim as a `T`, and
/// expects a quick `Malformed`.
fn assert_huge_claims_refused<T: Decoded>(what: &str, prefixes: &[&[u8]]) {
    for prefix in prefixes {
        let bytes = claiming_u64_max_after(prefix);
        let started = Instant::now();
        let result = codec::decode::<T>(&bytes);
        let took = started.elapsed();
        assert!(
            matches!(result, Err(DecodeError::Malformed(_))),
            "{what}: a u64::MAX length claim after {prefix:02x?} gave {result:?}"
        );
        assert!(
            took < QUICKLY,
            "{what}: refusing a u64::MAX length claim after {prefix:02x?} took {took:?}"
        );
    }
}

// Atom variant indices, in declaration order.
const ATOM_NULL: u8 = 0;
const ATOM_STR: u8 = 4;
const ATOM_JSON: u8 = 5;

/// A `u64::MAX` length claim in every collection of every decoded type:
/// maps, sequences, dot stores, strings and the context's two halves.
/// Each prefix is a valid encoding up to the claimed collection.
#[test]
fn length_prefixes_claiming_u64_max_elements_are_refused_quickly() {
    // A record field "a" (one path segment), before its four slots.
    const FIELD_A: &[u8] = &[1, 1, 1, b'a'];
    let record: &[&[u8]] = &[
        &[],                                         // fields map
        &[1],                                        // a path's segments
        &[1, 1],                                     // a path segment's bytes
        FIELD_A,                                     // register entries
        &[1, 1, 1, b'a', 1, 1, 1, 9, ATOM_STR],      // a register's string
        &[1, 1, 1, b'a', 1, 1, 1, 9, ATOM_JSON],     // a register's JSON text
        &[1, 1, 1, b'a', 0],                         // counter entries
        &[1, 1, 1, b'a', 0, 0],                      // set elements
        &[1, 1, 1, b'a', 0, 0, 1, ATOM_NULL],        // a set element's dots
        &[1, 1, 1, b'a', 0, 0, 1, ATOM_STR],         // a set element's string
        &[1, 1, 1, b'a', 0, 0, 0],                   // flag enablers
        &[1, 1, 1, b'a', 0, 0, 0, 0],                // context vector
        &[1, 1, 1, b'a', 0, 0, 0, 1, 1, 1, 1, 1, 1], // context cloud
        &[0],                                        // context vector, no field
        &[0, 0],                                     // context cloud, no field
    ];
    assert_huge_claims_refused::<Record>("Record", record);

    let context_only: &[&[u8]] = &[&[0], &[0, 0]];
    assert_huge_claims_refused::<Causal<AwSet<u64>>>(
        "Causal<AwSet<u64>>",
        &[&[], &[1, 7], context_only[0], context_only[1]],
    );
    assert_huge_claims_refused::<Causal<AwSet<Atom>>>(
        "Causal<AwSet<Atom>>",
        &[
            &[],
            &[1, ATOM_NULL],
            &[1, ATOM_STR],
            &[1, ATOM_JSON],
            context_only[0],
            context_only[1],
        ],
    );
    assert_huge_claims_refused::<Causal<MvReg<Atom>>>(
        "Causal<MvReg<Atom>>",
        &[
            &[],
            &[1, 1, 1, 9, ATOM_STR],
            &[1, 1, 1, 9, ATOM_JSON],
            context_only[0],
            context_only[1],
        ],
    );
    assert_huge_claims_refused::<Causal<EwFlag>>("Causal<EwFlag>", &[&[], &[0], &[0, 0]]);
    assert_huge_claims_refused::<Causal<ResetCounter>>(
        "Causal<ResetCounter>",
        &[&[], &[0], &[0, 0]],
    );
    assert_huge_claims_refused::<Profile>(
        "Causal<OrMap<String, MvReg<Atom>>>",
        &[
            &[],
            &[1],
            &[1, 1, b'k'],
            &[1, 1, b'k', 1, 1, 1, 9, ATOM_STR],
            &[1, 1, b'k', 1, 1, 1, 9, ATOM_JSON],
            context_only[0],
            context_only[1],
        ],
    );
    assert_huge_claims_refused::<GCounter>("GCounter", &[&[]]);
    assert_huge_claims_refused::<PnCounter>("PnCounter", &[&[], &[0]]);
    assert_huge_claims_refused::<CausalContext>("CausalContext", &[&[], &[0]]);
}

/// A valid encoding of a state of each type with plenty of structure.
fn rich_encodings() -> Vec<(&'static str, Vec<u8>)> {
    let (r1, r2) = (ReplicaId(1), ReplicaId(2));
    let doc = serde_json::json!({
        "name": "Ada", "n": -3, "f": 0.5, "tags": ["x", {"k": 1}],
        "address": {"city": "London", "zip": null},
    });
    let mut record = Record::from_json(&doc, r1, Timestamp(1)).expect("a valid document");
    let mut other = record.clone();
    let path = |name: &str| trellis_crdt::FieldPath::top(name).expect("a valid path");
    let ops = [
        trellis_crdt::Op::Increment {
            path: path("visits"),
            by: 300,
        },
        trellis_crdt::Op::Add {
            path: path("labels"),
            element: "vip".into(),
        },
        trellis_crdt::Op::Enable { path: path("on") },
    ];
    other
        .apply_all(&ops, r2, Timestamp(2))
        .expect("valid operations");
    record.merge(other);

    let mut profile = Profile::default();
    profile.apply(|map, cx| {
        map.update(cx, "name".into(), |reg, cx| {
            reg.write(cx, r1, Timestamp(1), "Ada".into())
        })
    });
    let mut set = Causal::<AwSet<u64>>::default();
    set.apply(|s, cx| s.add(cx, r1, 1 << 40));
    set.apply(|s, cx| s.add(cx, r2, 3));
    let mut counter = PnCounter::default();
    counter.increment(r1, 70_000);
    counter.decrement(r2, 5);

    vec![
        ("Record", codec::encode(&record)),
        ("Profile", codec::encode(&profile)),
        ("AwSet<u64>", codec::encode(&set)),
        ("PnCounter", codec::encode(&counter)),
    ]
}

/// A `u64::MAX` varint inserted at every offset of valid encodings, or
/// replacing everything from that offset on: nothing panics, nothing
/// takes long, and what decodes behaves as a state.
#[test]
fn u64_max_at_every_offset_is_handled_quickly() {
    fn probe<T: Decoded + Default>(what: &str, bytes: &[u8]) {
        let base = T::default();
        for at in 1..=bytes.len() {
            for variant in [
                [&bytes[..at], &U64_MAX_VARINT[..], &bytes[at..]].concat(),
                [&bytes[..at], &U64_MAX_VARINT[..]].concat(),
            ] {
                let started = Instant::now();
                if let Err(err) = check_decoded::<T>(&variant, &base) {
                    panic!("{what}: {err} for input {variant:02x?}");
                }
                let took = started.elapsed();
                assert!(took < QUICKLY, "{what}: {variant:02x?} took {took:?}");
            }
        }
    }
    for (what, bytes) in rich_encodings() {
        match what {
            "Record" => probe::<Record>(what, &bytes),
            "Profile" => probe::<Profile>(what, &bytes),
            "AwSet<u64>" => probe::<Causal<AwSet<u64>>>(what, &bytes),
            _ => probe::<PnCounter>(what, &bytes),
        }
    }
}

/// An input one byte over the 64 MiB default limit is refused as
/// `TooLarge` before any of it is read, for every type.
#[test]
fn an_input_over_64_mib_is_too_large() {
    let bytes = vec![FORMAT_VERSION; DEFAULT_DECODE_LIMIT + 1];
    assert_eq!(DEFAULT_DECODE_LIMIT, 64 << 20);
    fn refused<T: Decoded>(what: &str, bytes: &[u8]) {
        let started = Instant::now();
        let result = codec::decode::<T>(bytes);
        assert_eq!(
            result,
            Err(DecodeError::TooLarge {
                len: DEFAULT_DECODE_LIMIT + 1,
                limit: DEFAULT_DECODE_LIMIT,
            }),
            "{what}"
        );
        assert!(started.elapsed() < QUICKLY, "{what}: refusing took long");
    }
    refused::<Record>("Record", &bytes);
    refused::<Causal<AwSet<u64>>>("Causal<AwSet<u64>>", &bytes);
    refused::<Causal<AwSet<Atom>>>("Causal<AwSet<Atom>>", &bytes);
    refused::<Causal<MvReg<Atom>>>("Causal<MvReg<Atom>>", &bytes);
    refused::<Causal<EwFlag>>("Causal<EwFlag>", &bytes);
    refused::<Causal<ResetCounter>>("Causal<ResetCounter>", &bytes);
    refused::<Profile>("Causal<OrMap<String, MvReg<Atom>>>", &bytes);
    refused::<GCounter>("GCounter", &bytes);
    refused::<PnCounter>("PnCounter", &bytes);
    refused::<CausalContext>("CausalContext", &bytes);

    // At exactly the limit the input is read (and is garbage).
    let at_limit = &bytes[..DEFAULT_DECODE_LIMIT];
    assert!(!matches!(
        codec::decode::<Record>(at_limit),
        Err(DecodeError::TooLarge { .. })
    ));
    // A caller's smaller limit is honoured the same way.
    assert_eq!(
        codec::decode_with_limit::<Record>(&bytes[..11], 10),
        Err(DecodeError::TooLarge { len: 11, limit: 10 })
    );
}

// ---------------------------------------------------------------------------
// Regressions found by fuzzing
// ---------------------------------------------------------------------------
//
// Each reproducer below came from the cargo-fuzz target.

/// The bytes a lowercase hex string spells. The reproducers were found in
/// codec format 1; their bodies hold no set element, whose layout is the
/// only one that changed, so they are kept with format 3's framing (`03`
/// then the plain packing byte `00`).
fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&text[at..at + 2], 16).expect("valid hex"))
        .collect()
}

/// A context whose version vector holds `u64::MAX` for a replica that
/// also has a cloud dot: `compact` computes `u64::MAX + 1`.
#[test]
fn a_context_at_u64_max_with_a_cloud_dot_decodes_without_panic() {
    // vector {1: u64::MAX}, cloud {1:5}
    let bytes = unhex("03000101fdffffffffffffffff010105");
    let _ = codec::decode::<CausalContext>(&bytes);
}

/// A context whose version vector holds `u64::MAX - 1`: inserting the next
/// dot makes `absorb_cloud` compute `u64::MAX + 1`.
#[test]
fn inserting_the_last_dot_of_a_replica_does_not_panic() {
    // vector {1: u64::MAX - 1}, cloud {}
    let bytes = unhex("03000101fdfeffffffffffffff00");
    let Ok(mut context) = codec::decode::<CausalContext>(&bytes) else {
        return; // Refusing such a context is a fix too.
    };
    let next = context.next_dot(ReplicaId(1));
    context.insert(next);
    assert!(context.contains(&next));
}

/// A record delta whose context claims replica 3 has made `u64::MAX`
/// events. Merged in, replica 3 can no longer write: `next_dot` saturates
/// at a dot the context already holds, and the merge of the write's delta
/// overflows in `compact` (debug builds) or drops the write (release).
#[test]
fn a_replica_still_writes_after_merging_a_context_at_u64_max() {
    // store {}, context vector {3: u64::MAX}, cloud {}
    let Ok(hostile) = codec::decode::<Record>(&unhex("0300000103fdffffffffffffffff00")) else {
        return; // Refusing such a context is a fix too.
    };
    let mut record = Record::default();
    record.merge(hostile);
    let op = trellis_crdt::Op::Set {
        path: trellis_crdt::FieldPath::top("b").expect("a valid path"),
        value: Atom::Int(2),
    };
    if record.apply(&op, ReplicaId(3), Timestamp(2)).is_ok() {
        assert_eq!(
            record.to_json(),
            serde_json::json!({"b": 2}),
            "the write was lost"
        );
    }
}

/// A record whose register under "a" holds a sibling under dot `9:0`
/// (counter zero) stamped at `u64::MAX`. The dot never enters any context
/// (contexts drop zero counters), so no write, remove or delete can ever
/// take it out: the value is pinned for good.
#[test]
fn a_decoded_zero_counter_dot_can_be_overwritten_and_deleted() {
    let bytes = unhex("030001010161010900fdffffffffffffffff040470776e640000000000");
    let Ok(hostile) = codec::decode::<Record>(&bytes) else {
        return; // Refusing zero-counter dots is a fix too.
    };
    let mut record =
        Record::from_json(&serde_json::json!({"a": 1}), ReplicaId(1), Timestamp(1)).expect("valid");
    record.merge(hostile);
    let a = trellis_crdt::FieldPath::top("a").expect("a valid path");
    let set = trellis_crdt::Op::Set {
        path: a,
        value: Atom::Int(2),
    };
    record
        .apply(&set, ReplicaId(1), Timestamp(5))
        .expect("a valid op");
    assert_eq!(
        record.to_json(),
        serde_json::json!({"a": 2}),
        "the write did not replace the sibling it saw"
    );
    record.delete();
    assert!(
        !record.exists(),
        "a deleted record still renders {}",
        record.to_json()
    );
}
