//! Hostile bytes into every decoder the replication path exposes.
//!
//! The first input byte picks a type; the rest is handed to
//! `codec::decode_with_limit(bytes, 1 MiB)`. Whatever decodes is merged
//! into a valid state built through the public API, and the target checks:
//!
//! - a decoded value re-encodes canonically: `decode(encode(x)) == x`;
//! - merging it is idempotent: merging it twice equals merging it once;
//! - the merged state round-trips through the codec unchanged;
//! - the read side (`Record::to_json`, winners, values, digests) and the
//!   mutators still work on the merged state without panicking;
//! - no single allocation made while handling the input is out of
//!   proportion to the input's size (see [`Tracking`]).
//!
//! Any panic, failed assertion or out-of-proportion allocation is a crash.

#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt::Debug;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;
use trellis_crdt::codec;
use trellis_crdt::{
    Atom, AwSet, Causal, CausalContext, Dot, EwFlag, FieldPath, GCounter, Lattice, MvReg, Op,
    OrMap, PnCounter, Record, ReplicaId, ResetCounter, Timestamp,
};

/// The decode limit the target passes: inputs above it must be refused.
const LIMIT: usize = 1 << 20;

// ---------------------------------------------------------------------------
// Allocation guard
// ---------------------------------------------------------------------------

/// The global allocator: the system allocator, recording the largest
/// single request since the last [`reset_largest`].
///
/// A length prefix that makes the decoder reserve a huge buffer up front
/// does not show in RSS (fresh pages are zero and untouched), so
/// libFuzzer's `-rss_limit_mb` cannot see it, and `-malloc_limit_mb` only
/// works with a sanitizer's allocator. Recording request sizes catches it
/// with `--sanitizer none` too.
struct Tracking;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

fn note(size: usize) {
    LARGEST.fetch_max(size, Ordering::Relaxed);
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged; the only addition is an atomic store of the requested size.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

fn reset_largest() {
    LARGEST.store(0, Ordering::Relaxed);
}

/// Whether the allocation check is on. `TRELLIS_FUZZ_ALLOC_CHECK=0` turns
/// it off, to keep fuzzing for other bugs past a known allocation finding.
fn alloc_check_enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| std::env::var("TRELLIS_FUZZ_ALLOC_CHECK").map_or(true, |v| v != "0"))
}

/// Fails if one allocation since [`reset_largest`] was larger than a
/// generous multiple of the input: a decoded structure costs a few dozen
/// bytes of memory per input byte, and serde's up-front reservations are
/// capped at 1 MiB.
fn check_allocations(input_len: usize, stage: &str) {
    if !alloc_check_enabled() {
        return;
    }
    let largest = LARGEST.load(Ordering::Relaxed);
    let budget = (2 << 20) + 64 * input_len;
    assert!(
        largest <= budget,
        "{stage}: a {input_len}-byte input caused a single allocation of {largest} bytes \
         (budget {budget}); a length prefix is trusted before the bytes behind it are checked"
    );
}

// ---------------------------------------------------------------------------
// The types under test
// ---------------------------------------------------------------------------

/// A decodable type, a valid state of it to merge into, and read-side and
/// mutator calls to run on a merged state.
trait Subject: Clone + PartialEq + Debug + Serialize + DeserializeOwned {
    /// A valid state built through the public API.
    fn base() -> Self;
    /// The join.
    fn join(&mut self, other: Self);
    /// Reads and mutates a (possibly hostile) state; must not panic.
    fn exercise(&self);
}

fn r(id: u64) -> ReplicaId {
    ReplicaId(id)
}

fn t(time: u64) -> Timestamp {
    Timestamp(time)
}

fn path(name: &str) -> FieldPath {
    FieldPath::top(name).expect("a non-empty name is a valid path")
}

/// Runs a delta mutator on a copy of `state` and checks that merging its
/// delta again changes nothing.
fn exercise_causal<S: trellis_crdt::DotStore + Debug>(
    state: &Causal<S>,
    mutator: impl FnOnce(&S, &CausalContext) -> Causal<S>,
) {
    let mut after = state.clone();
    let delta = after.apply(mutator);
    assert_eq!(
        after.clone().merged(delta),
        after,
        "merging a mutator's delta a second time changed the state"
    );
    let _ = after.digest();
}

impl Subject for Record {
    fn base() -> Self {
        let doc = json!({"name": "Ada", "stage": "new", "address": {"city": "London"}});
        let mut a = Record::from_json(&doc, r(1), t(1)).expect("a valid document");
        let mut b = a.clone();
        let ops_b = [
            Op::Increment {
                path: path("visits"),
                by: 3,
            },
            Op::Add {
                path: path("tags"),
                element: "vip".into(),
            },
        ];
        b.apply_all(&ops_b, r(2), t(2)).expect("valid ops");
        let ops_a = [
            Op::Set {
                path: path("stage"),
                value: "qualified".into(),
            },
            Op::Enable {
                path: path("active"),
            },
        ];
        a.apply_all(&ops_a, r(1), t(3)).expect("valid ops");
        a.merge(b);
        a
    }

    fn join(&mut self, other: Self) {
        self.merge(other);
    }

    fn exercise(&self) {
        let rendered = self.to_json();
        assert!(rendered.is_object(), "a record renders as an object");
        for (_, field) in self.fields() {
            let _ = field.to_json();
            let _ = field.visible_kind();
        }
        let _ = (self.exists(), self.digest(), self.context().is_empty());
        let ops = [
            Op::Set {
                path: path("stage"),
                value: Atom::Int(7),
            },
            Op::Increment {
                path: path("visits"),
                by: -1,
            },
            Op::Add {
                path: FieldPath::new(["address", "tags"]).expect("valid"),
                element: Atom::Null,
            },
            Op::Discard {
                path: path("tags"),
                element: "vip".into(),
            },
            Op::Disable {
                path: path("active"),
            },
            Op::Remove {
                path: path("address"),
            },
        ];
        let mut after = self.clone();
        let delta = after.apply_all(&ops, r(3), t(9)).expect("valid ops");
        assert_eq!(
            after.clone().merged(delta),
            after,
            "merging the ops' delta a second time changed the record"
        );
        let _ = after.to_json();
        let deleted = after.delete();
        assert!(!after.exists(), "a deleted record holds no field");
        let _ = deleted.to_json();
    }
}

impl Subject for Causal<AwSet<u64>> {
    fn base() -> Self {
        let mut a = Causal::<AwSet<u64>>::default();
        a.apply(|set, cx| set.add(cx, r(1), 1));
        a.apply(|set, cx| set.add(cx, r(1), 2));
        let mut b = a.clone();
        b.apply(|set, cx| set.add(cx, r(2), 3));
        a.apply(|set, _| set.remove(&2));
        a.merge(b);
        a
    }

    fn join(&mut self, other: Self) {
        self.merge(other);
    }

    fn exercise(&self) {
        let _ = (
            self.store.len(),
            self.store.contains(&1),
            self.store.iter().count(),
        );
        exercise_causal(self, |set, cx| set.add(cx, r(3), 2));
        exercise_causal(self, |set, _| set.remove(&3));
        exercise_causal(self, |set, _| set.clear());
    }
}

impl Subject for Causal<AwSet<Atom>> {
    fn base() -> Self {
        let mut a = Causal::<AwSet<Atom>>::default();
        a.apply(|set, cx| set.add(cx, r(1), "vip".into()));
        a.apply(|set, cx| set.add(cx, r(1), Atom::Float(trellis_crdt::F64(-0.0))));
        let mut b = a.clone();
        b.apply(|set, cx| set.add(cx, r(2), Atom::Json("[1,2]".into())));
        a.apply(|set, _| set.remove(&"vip".into()));
        a.merge(b);
        a
    }

    fn join(&mut self, other: Self) {
        self.merge(other);
    }

    fn exercise(&self) {
        let _ = self.store.iter().map(Atom::to_json).count();
        exercise_causal(self, |set, cx| set.add(cx, r(3), Atom::Bool(true)));
        exercise_causal(self, |set, _| set.remove(&Atom::Null));
        exercise_causal(self, |set, _| set.clear());
    }
}

impl Subject for Causal<MvReg<Atom>> {
    fn base() -> Self {
        let mut a = Causal::<MvReg<Atom>>::default();
        a.apply(|reg, cx| reg.write(cx, r(1), t(1), "ada".into()));
        let mut b = a.clone();
        a.apply(|reg, cx| reg.write(cx, r(1), t(5), Atom::Int(1)));
        b.apply(|reg, cx| reg.write(cx, r(2), t(4), "grace".into()));
        a.merge(b);
        a
    }

    fn join(&mut self, other: Self) {
        self.merge(other);
    }

    fn exercise(&self) {
        let _ = (
            self.store.winner().map(Atom::to_json),
            self.store.siblings().count(),
        );
        exercise_causal(self, |reg, cx| reg.write(cx, r(3), t(9), Atom::Null));
        exercise_causal(self, |reg, _| reg.clear());
    }
}

impl Subject for Causal<EwFlag> {
    fn base() -> Self {
        let mut a = Causal::<EwFlag>::default();
        a.apply(|flag, cx| flag.enable(cx, r(1)));
        let mut b = a.clone();
        a.apply(|flag, _| flag.disable());
        b.apply(|flag, cx| flag.enable(cx, r(2)));
        a.merge(b);
        a
    }

    fn join(&mut self, other: Self) {
        self.merge(other);
    }

    fn exercise(&self) {
        let _ = self.store.is_enabled();
        exercise_causal(self, |flag, cx| flag.enable(cx, r(3)));
        exercise_causal(self, |flag, _| flag.disable());
    }
}

impl Subject for Causal<ResetCounter> {
    fn base() -> Self {
        let mut a = Causal::<ResetCounter>::default();
        a.apply(|c, cx| c.add(cx, r(1), 5));
        let mut b = a.clone();
        b.apply(|c, cx| c.add(cx, r(2), -2));
        a.apply(|c, _| c.reset());
        a.apply(|c, cx| c.add(cx, r(1), 7));
        a.merge(b);
        a
    }

    fn join(&mut self, other: Self) {
        self.merge(other);
    }

    fn exercise(&self) {
        let _ = self.store.value();
        exercise_causal(self, |c, cx| c.add(cx, r(3), i64::MIN));
        exercise_causal(self, |c, cx| c.add(cx, r(1), i64::MAX));
        exercise_causal(self, |c, _| c.reset());
    }
}

type Profile = OrMap<String, MvReg<Atom>>;

impl Subject for Causal<Profile> {
    fn base() -> Self {
        let mut a = Causal::<Profile>::default();
        a.apply(|map, cx| {
            map.update(cx, "name".into(), |reg, cx| {
                reg.write(cx, r(1), t(1), "Ada".into())
            })
        });
        let mut b = a.clone();
        a.apply(|map, _| map.remove(&"name".to_string()));
        b.apply(|map, cx| {
            map.update(cx, "name".into(), |reg, cx| {
                reg.write(cx, r(2), t(2), "Grace".into())
            })
        });
        b.apply(|map, cx| {
            map.update(cx, "email".into(), |reg, cx| {
                reg.write(cx, r(2), t(3), "g@example.invalid".into())
            })
        });
        a.merge(b);
        a
    }

    fn join(&mut self, other: Self) {
        self.merge(other);
    }

    fn exercise(&self) {
        for (_, reg) in self.store.iter() {
            let _ = reg.winner().map(Atom::to_json);
        }
        exercise_causal(self, |map, cx| {
            map.update(cx, "name".into(), |reg, cx| {
                reg.write(cx, r(3), t(9), Atom::Bool(false))
            })
        });
        exercise_causal(self, |map, _| map.remove(&"email".to_string()));
        exercise_causal(self, |map, _| map.clear());
    }
}

impl Subject for GCounter {
    fn base() -> Self {
        let mut a = GCounter::default();
        let mut b = GCounter::default();
        a.increment(r(1), 3);
        b.increment(r(2), 4);
        a.merge(b);
        a
    }

    fn join(&mut self, other: Self) {
        self.merge(other);
    }

    fn exercise(&self) {
        let _ = (self.value(), self.total_of(r(1)));
        let mut after = self.clone();
        let delta = after.increment(r(3), u64::MAX);
        assert_eq!(after.clone().merged(delta), after);
    }
}

impl Subject for PnCounter {
    fn base() -> Self {
        let mut a = PnCounter::default();
        let mut b = PnCounter::default();
        a.increment(r(1), 10);
        b.decrement(r(2), 3);
        a.merge(b);
        a
    }

    fn join(&mut self, other: Self) {
        self.merge(other);
    }

    fn exercise(&self) {
        let _ = self.value();
        let mut after = self.clone();
        let delta = after.decrement(r(3), u64::MAX);
        assert_eq!(after.clone().merged(delta), after);
    }
}

impl Subject for CausalContext {
    fn base() -> Self {
        let mut a = CausalContext::from_dots([Dot::new(1, 1), Dot::new(1, 2), Dot::new(1, 5)]);
        a.union(&CausalContext::from_dots([Dot::new(2, 3), Dot::new(2, 1)]));
        a
    }

    fn join(&mut self, other: Self) {
        self.union(&other);
    }

    fn exercise(&self) {
        for replica in [1, 2, 3] {
            let next = self.next_dot(r(replica));
            let _ = (self.contains(&next), self.max_counter(r(replica)));
            let mut grown = self.clone();
            grown.insert(next);
        }
        let _ = (self.vector().count(), self.cloud().count());
        // The context as a state's context, around a valid store.
        let state = Causal::new(Causal::<EwFlag>::base().store, self.clone());
        state.exercise();
    }
}

// ---------------------------------------------------------------------------
// The target
// ---------------------------------------------------------------------------

fn run<T: Subject>(bytes: &[u8]) {
    reset_largest();
    let decoded = codec::decode_with_limit::<T>(bytes, LIMIT);
    check_allocations(bytes.len(), "decoding");
    let decoded = match decoded {
        Ok(value) => value,
        Err(codec::DecodeError::TooLarge { len, limit }) => {
            assert!(
                len > limit && limit == LIMIT,
                "TooLarge for an input within the limit"
            );
            return;
        }
        Err(_) => return,
    };
    assert!(bytes.len() <= LIMIT, "an input above the limit decoded");

    // A decoded value is canonical: it re-encodes to bytes that decode to it.
    let encoded = codec::encode(&decoded);
    let back: T = codec::decode(&encoded).expect("a decoded value re-encodes to valid bytes");
    assert_eq!(back, decoded, "decode(encode(x)) != x for a decoded x");
    assert_eq!(
        codec::encode(&back),
        encoded,
        "re-encoding is not deterministic"
    );

    // Merged into a valid state, it merges idempotently.
    let base = T::base();
    let mut once = base.clone();
    once.join(decoded.clone());
    let mut twice = once.clone();
    twice.join(decoded.clone());
    assert_eq!(
        twice, once,
        "merging the decoded value twice differs from once"
    );

    // The other way round must not panic either.
    let mut reverse = decoded.clone();
    reverse.join(base);

    // The merged state round-trips through the codec.
    let merged_bytes = codec::encode(&once);
    let merged_back: T = codec::decode(&merged_bytes).expect("a merged state re-encodes");
    assert_eq!(merged_back, once, "the merged state does not round-trip");

    check_allocations(bytes.len(), "decoding, merging and re-encoding");

    decoded.exercise();
    once.exercise();
    reverse.exercise();
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    match selector % 10 {
        0 => run::<Record>(bytes),
        1 => run::<Causal<AwSet<u64>>>(bytes),
        2 => run::<Causal<AwSet<Atom>>>(bytes),
        3 => run::<Causal<MvReg<Atom>>>(bytes),
        4 => run::<Causal<EwFlag>>(bytes),
        5 => run::<Causal<ResetCounter>>(bytes),
        6 => run::<Causal<Profile>>(bytes),
        7 => run::<GCounter>(bytes),
        8 => run::<PnCounter>(bytes),
        _ => run::<CausalContext>(bytes),
    }
});
