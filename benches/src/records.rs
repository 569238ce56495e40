//! The record workload.
//!
//! A collection of [`RECORDS`] records with the 8 register fields of
//! [`FIELDS`] is written by [`ORIGIN`](crate::ORIGIN): 100 000 field writes,
//! each record created by one batch of its 8 writes. The collection is
//! copied to two replicas; each then writes `percent`% × 100 000 field
//! slots concurrently, every write a new string value. Each replica draws
//! its (record, field) slots independently, so some slots are written by
//! both replicas and end up with two concurrent values.
//!
//! Implementations, each built through its public API:
//! - Trellis: `BTreeMap<String, Record>`, the record key to its
//!   [`Record`], merged key by key with [`Lattice::merge`] (what the store
//!   does). Writes are `Record::apply(&Op::Set { .. })` with
//!   [`HybridClock`] timestamps.
//! - crdts: `Map<String, Map<String, MVReg<String, u64>, u64>, u64>`, one
//!   observed-remove map of records, each a map of multi-value registers:
//!   the same shape and semantics (a record is a map of fields; a field
//!   keeps concurrent values; removing a record is an observed remove).
//! - automerge, one document per record: a map of the 8 fields at the
//!   document root. Like a Trellis record, each record carries its own
//!   causal history and the collection merges document by document. A
//!   record's creation is one change; each later field write is one change.
//! - automerge, one document for the collection: the root map holds a map
//!   object per record. Same changes as above.

use std::collections::{BTreeMap, BTreeSet};

use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, ObjId, ObjType, ReadDoc, ROOT};
use crdts::{CmRDT, CvRDT, MVReg};
use trellis_crdt::{Atom, FieldPath, HybridClock, Lattice, Op, Record, ReplicaId, Timestamp};

use crate::{replica, Rng, ORIGIN, SITE_A, SITE_B};

/// Records in the collection.
pub const RECORDS: u32 = 12_500;

/// The fields of every record.
pub const FIELDS: [&str; 8] = [
    "name", "email", "phone", "company", "stage", "owner", "city", "source",
];

/// Wall-clock milliseconds at which the workload starts (2026-01-01 UTC),
/// so that timestamps have a realistic size when encoded.
pub const START_MS: u64 = 1_767_225_600_000;

/// One field write.
#[derive(Clone, Debug)]
pub struct Write {
    /// Index of the record, `0..RECORDS`.
    pub record: u32,
    /// Index into [`FIELDS`].
    pub field: usize,
    /// The new value.
    pub value: String,
    /// The writer's hybrid-clock reading.
    pub time: Timestamp,
}

/// The key of record `index`.
pub fn record_key(index: u32) -> String {
    format!("lead-{index:06}")
}

/// The data of one record benchmark.
#[derive(Clone, Debug)]
pub struct RecordWorkload {
    /// Records in the collection.
    pub records: u32,
    /// Concurrent writes, in percent of the base writes, per replica.
    pub percent: u32,
    /// The origin's writes, record by record (8 per record).
    pub base: Vec<Write>,
    /// Replica A's concurrent writes (one change each).
    pub a: Vec<Write>,
    /// Replica B's concurrent writes (one change each).
    pub b: Vec<Write>,
}

impl RecordWorkload {
    /// The workload for `records` records and `percent`% concurrent writes
    /// per replica (fixed seeds: every call returns the same data).
    pub fn new(records: u32, percent: u32) -> Self {
        let slots = u64::from(records) * FIELDS.len() as u64;
        let mut clock = HybridClock::new(std::time::Duration::from_secs(60));
        let mut base = Vec::with_capacity(usize::try_from(slots).unwrap_or(0));
        for record in 0..records {
            for (field, name) in FIELDS.iter().enumerate() {
                let wall = START_MS + base.len() as u64;
                base.push(Write {
                    record,
                    field,
                    value: format!("{name}:{record:06}:0000"),
                    time: clock.tick(wall),
                });
            }
        }
        let edits = |seed: u64| {
            let count = usize::try_from(slots * u64::from(percent) / 100).unwrap_or(0);
            let mut clock = HybridClock::new(std::time::Duration::from_secs(60));
            let mut rng = Rng::new(seed);
            rng.distinct(0, slots, count)
                .into_iter()
                .enumerate()
                .map(|(n, slot)| {
                    let record = u32::try_from(slot / FIELDS.len() as u64).unwrap_or(0);
                    let field = usize::try_from(slot % FIELDS.len() as u64).unwrap_or(0);
                    let version = seed % 16 * 1000 + (n as u64 % 1000);
                    Write {
                        record,
                        field,
                        value: format!("{}:{record:06}:{version:04}", FIELDS[field]),
                        time: clock.tick(START_MS + 10_000_000 + n as u64),
                    }
                })
                .collect()
        };
        RecordWorkload {
            records,
            percent,
            base,
            a: edits(0xa0 + u64::from(percent)),
            b: edits(0xb0 + u64::from(percent)),
        }
    }
}

/// Trellis: a collection of records.
pub type OurCollection = BTreeMap<String, Record>;

/// The field paths of [`FIELDS`].
fn paths() -> Vec<FieldPath> {
    FIELDS
        .iter()
        .map(|name| FieldPath::top(*name).expect("field names are valid paths"))
        .collect()
}

/// Writes into a Trellis collection, one `Record::apply` per write.
pub fn ours_write(collection: &mut OurCollection, id: ReplicaId, writes: &[Write]) {
    let paths = paths();
    for write in writes {
        let op = Op::Set {
            path: paths[write.field].clone(),
            value: Atom::Str(write.value.clone()),
        };
        collection
            .entry(record_key(write.record))
            .or_default()
            .apply(&op, id, write.time)
            .expect("the workload's operations are valid");
    }
}

/// The two diverged Trellis replicas.
pub fn ours_diverged(workload: &RecordWorkload) -> (OurCollection, OurCollection) {
    let mut base = OurCollection::new();
    ours_write(&mut base, replica(ORIGIN), &workload.base);
    let mut a = base.clone();
    ours_write(&mut a, replica(SITE_A), &workload.a);
    let mut b = base;
    ours_write(&mut b, replica(SITE_B), &workload.b);
    (a, b)
}

/// The merge being measured: key by key, with `Lattice::merge`.
pub fn ours_merge(mut into: OurCollection, other: OurCollection) -> OurCollection {
    for (key, record) in other {
        into.entry(key).or_default().merge(record);
    }
    into
}

/// Every record's fields and their concurrent values, for comparing
/// implementations.
pub type Contents = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

/// The contents of a Trellis collection.
pub fn ours_contents(collection: &OurCollection) -> Contents {
    collection
        .iter()
        .map(|(key, record)| {
            let fields = record
                .fields()
                .map(|(path, field)| {
                    let values = field
                        .register
                        .siblings()
                        .map(|(_, stamped)| match &stamped.value {
                            Atom::Str(text) => text.clone(),
                            other => format!("{other:?}"),
                        })
                        .collect();
                    (path.to_string(), values)
                })
                .collect();
            (key.clone(), fields)
        })
        .collect()
}

/// crdts: one record.
pub type PeerRecord = crdts::Map<String, MVReg<String, u64>, u64>;
/// crdts: the collection, an observed-remove map of records.
pub type PeerCollection = crdts::Map<String, PeerRecord, u64>;

/// Writes into the crdts collection, one operation per write.
pub fn peer_write(collection: &mut PeerCollection, actor: u64, writes: &[Write]) {
    for write in writes {
        let ctx = collection.read_ctx().derive_add_ctx(actor);
        let op = collection.update(record_key(write.record), ctx, |record, ctx| {
            record.update(FIELDS[write.field], ctx, |register, ctx| {
                register.write(write.value.clone(), ctx)
            })
        });
        collection.apply(op);
    }
}

/// The two diverged crdts replicas.
pub fn peer_diverged(workload: &RecordWorkload) -> (PeerCollection, PeerCollection) {
    let mut base = PeerCollection::default();
    peer_write(&mut base, ORIGIN, &workload.base);
    let mut a = base.clone();
    peer_write(&mut a, SITE_A, &workload.a);
    let mut b = base;
    peer_write(&mut b, SITE_B, &workload.b);
    (a, b)
}

/// The merge being measured.
pub fn peer_merge(mut into: PeerCollection, other: PeerCollection) -> PeerCollection {
    into.merge(other);
    into
}

/// The contents of a crdts collection.
pub fn peer_contents(collection: &PeerCollection) -> Contents {
    collection
        .iter()
        .map(|entry| {
            let (key, record) = entry.val;
            let fields = record
                .iter()
                .map(|field| {
                    let (name, register) = field.val;
                    (name.clone(), register.read().val.into_iter().collect())
                })
                .collect();
            (key.clone(), fields)
        })
        .collect()
}

/// The automerge actor of a replica: the same 8 bytes as its id.
pub fn am_actor(id: u64) -> ActorId {
    ActorId::from(id.to_be_bytes().as_slice())
}

/// automerge: a collection of documents, one per record.
pub type AmDocs = BTreeMap<String, AutoCommit>;

/// Writes into per-record documents: the origin's 8 writes of a record are
/// one change (its creation); every other write is its own change.
pub fn am_docs_write(docs: &mut AmDocs, id: u64, writes: &[Write], batch: usize) {
    let actor = am_actor(id);
    for chunk in writes.chunks(batch) {
        let doc = docs.entry(record_key(chunk[0].record)).or_default();
        if doc.get_actor() != &actor {
            doc.set_actor(actor.clone());
        }
        for write in chunk {
            debug_assert_eq!(write.record, chunk[0].record);
            doc.put(ROOT, FIELDS[write.field], write.value.as_str())
                .expect("putting a string into a map cannot fail");
        }
        doc.commit();
    }
}

/// The two diverged per-record-document replicas.
pub fn am_docs_diverged(workload: &RecordWorkload) -> (AmDocs, AmDocs) {
    let mut base = AmDocs::new();
    am_docs_write(&mut base, ORIGIN, &workload.base, FIELDS.len());
    let mut a = base.clone();
    am_docs_write(&mut a, SITE_A, &workload.a, 1);
    let mut b = base;
    am_docs_write(&mut b, SITE_B, &workload.b, 1);
    (a, b)
}

/// The merge being measured: document by document.
pub fn am_docs_merge(mut into: AmDocs, mut other: AmDocs) -> AmDocs {
    for (key, doc) in &mut other {
        into.entry(key.clone())
            .or_default()
            .merge(doc)
            .expect("merging documents of one history cannot fail");
    }
    into
}

fn am_values(doc: &AutoCommit, obj: &ObjId, field: &str) -> BTreeSet<String> {
    doc.get_all(obj, field)
        .expect("reading a map cannot fail")
        .into_iter()
        .map(|(value, _)| {
            value
                .as_str()
                .map_or_else(|| format!("{value:?}"), str::to_owned)
        })
        .collect()
}

/// The contents of per-record documents.
pub fn am_docs_contents(docs: &AmDocs) -> Contents {
    docs.iter()
        .map(|(key, doc)| {
            let fields = doc
                .keys(ROOT)
                .map(|field| {
                    let values = am_values(doc, &ROOT, &field);
                    (field, values)
                })
                .collect();
            (key.clone(), fields)
        })
        .collect()
}

/// automerge: one document for the whole collection, with the object id
/// of each record's map (ids are stable across copies of the document).
#[derive(Clone, Debug)]
pub struct AmDoc {
    /// The document.
    pub doc: AutoCommit,
    /// The map object of record `i`.
    pub objects: Vec<ObjId>,
}

/// Writes into the one-document collection, with the same changes as
/// [`am_docs_write`]: a record's creation is one change, other writes one
/// change each.
pub fn am_doc_write(target: &mut AmDoc, id: u64, writes: &[Write], batch: usize) {
    let actor = am_actor(id);
    if target.doc.get_actor() != &actor {
        target.doc.set_actor(actor);
    }
    for chunk in writes.chunks(batch) {
        let index = chunk[0].record as usize;
        if index >= target.objects.len() {
            let obj = target
                .doc
                .put_object(ROOT, record_key(chunk[0].record), ObjType::Map)
                .expect("creating a map cannot fail");
            target.objects.push(obj);
        }
        for write in chunk {
            debug_assert_eq!(write.record, chunk[0].record);
            let obj = &target.objects[write.record as usize];
            target
                .doc
                .put(obj, FIELDS[write.field], write.value.as_str())
                .expect("putting a string into a map cannot fail");
        }
        target.doc.commit();
    }
}

/// The two diverged one-document replicas.
pub fn am_doc_diverged(workload: &RecordWorkload) -> (AmDoc, AmDoc) {
    let mut base = AmDoc {
        doc: AutoCommit::new(),
        objects: Vec::new(),
    };
    am_doc_write(&mut base, ORIGIN, &workload.base, FIELDS.len());
    let mut a = base.clone();
    am_doc_write(&mut a, SITE_A, &workload.a, 1);
    let mut b = base;
    am_doc_write(&mut b, SITE_B, &workload.b, 1);
    (a, b)
}

/// The merge being measured.
pub fn am_doc_merge(mut into: AutoCommit, mut other: AutoCommit) -> AutoCommit {
    into.merge(&mut other)
        .expect("merging documents of one history cannot fail");
    into
}

/// The contents of the one-document collection.
pub fn am_doc_contents(doc: &AutoCommit) -> Contents {
    doc.map_range(ROOT, ..)
        .map(|item| {
            let obj = item.id();
            let fields = doc
                .keys(&obj)
                .map(|field| {
                    let values = am_values(doc, &obj, &field);
                    (field, values)
                })
                .collect();
            (item.key.to_string(), fields)
        })
        .collect()
}

/// The contents every implementation must reach: each slot holds the
/// latest value of each replica that wrote it (both values when both
/// replicas wrote it concurrently).
pub fn expected_contents(workload: &RecordWorkload) -> Contents {
    fn slot<'c>(contents: &'c mut Contents, write: &Write) -> &'c mut BTreeSet<String> {
        contents
            .entry(record_key(write.record))
            .or_default()
            .entry(FIELDS[write.field].to_string())
            .or_default()
    }
    let mut contents = Contents::new();
    for write in &workload.base {
        slot(&mut contents, write).insert(write.value.clone());
    }
    for write in &workload.a {
        let values = slot(&mut contents, write);
        values.clear();
        values.insert(write.value.clone());
    }
    let a_slots: BTreeSet<(u32, usize)> = workload.a.iter().map(|w| (w.record, w.field)).collect();
    for write in &workload.b {
        let values = slot(&mut contents, write);
        if !a_slots.contains(&(write.record, write.field)) {
            values.clear();
        }
        values.insert(write.value.clone());
    }
    contents
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_implementation_reaches_the_same_contents() {
        let workload = RecordWorkload::new(60, 10);
        assert_eq!(workload.base.len(), 480);
        assert_eq!(workload.a.len(), 48);
        let expected = expected_contents(&workload);
        let (a, b) = ours_diverged(&workload);
        assert_eq!(ours_contents(&ours_merge(a, b)), expected);
        let (a, b) = peer_diverged(&workload);
        assert_eq!(peer_contents(&peer_merge(a, b)), expected);
        let (a, b) = am_docs_diverged(&workload);
        assert_eq!(am_docs_contents(&am_docs_merge(a, b)), expected);
        let (a, b) = am_doc_diverged(&workload);
        assert_eq!(am_doc_contents(&am_doc_merge(a.doc, b.doc)), expected);
    }
}
