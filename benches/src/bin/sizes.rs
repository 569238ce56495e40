//! Encoded sizes of the merged benchmark states, and a check that every
//! implementation reached the same contents at full size.
//!
//! Trellis encodes with `trellis_crdt::codec::encode` (which compresses
//! bodies of 16 KiB or more); crdts with bincode 2.0.1 serde in its
//! standard configuration; automerge with `AutoCommit::save` (its
//! compressed document format). "trellis, uncompressed" is the same codec
//! body left plain (bincode standard plus the two framing bytes), to show
//! what the layout alone gives.
//!
//! Run with `cargo run --release -p trellis-benches --bin sizes`.

use trellis_benches::records::{self, RecordWorkload, RECORDS};
use trellis_benches::set::{self, SetWorkload, SET_SIZE};
use trellis_benches::EDIT_PERCENTS;
use trellis_crdt::codec;

fn bincode_len<T: serde::Serialize>(value: &T) -> usize {
    bincode::serde::encode_to_vec(value, bincode::config::standard())
        .expect("crdts values serialize")
        .len()
}

fn ratio(peer: usize, ours: usize) -> String {
    format!("{:.2}", peer as f64 / ours as f64)
}

fn main() {
    println!("Set, 100 000 elements, two replicas merged (bytes):");
    println!();
    println!(
        "| edits per replica | elements | trellis | trellis, uncompressed | crdts (bincode) \
         | trellis / crdts | uncompressed / crdts |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for percent in EDIT_PERCENTS {
        let workload = SetWorkload::new(SET_SIZE, percent);
        let (a, b) = set::ours_diverged(&workload);
        let ours = set::ours_merge(a, b);
        let (a, b) = set::peer_diverged(&workload);
        let peer = set::peer_merge(a, b);
        let members = set::ours_members(&ours);
        assert_eq!(members, set::expected_members(&workload));
        assert_eq!(set::peer_members(&peer), members);
        let (ours_len, peer_len) = (codec::encode(&ours).len(), bincode_len(&peer));
        let plain_len = bincode_len(&ours) + 2;
        println!(
            "| {percent}% | {} | {ours_len} | {plain_len} | {peer_len} | {} | {} |",
            members.len(),
            ratio(ours_len, peer_len),
            ratio(plain_len, peer_len)
        );
    }

    println!();
    println!("Records, 12 500 × 8 fields, two replicas merged (bytes):");
    println!();
    println!(
        "| edits per replica | trellis | trellis, uncompressed | trellis, per-record encodings summed \
         | crdts (bincode) | automerge doc per record | automerge one doc | trellis / crdts \
         | uncompressed / crdts | per record / crdts | automerge one doc / trellis |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for percent in EDIT_PERCENTS {
        let workload = RecordWorkload::new(RECORDS, percent);
        let expected = records::expected_contents(&workload);

        let (a, b) = records::ours_diverged(&workload);
        let ours = records::ours_merge(a, b);
        assert_eq!(records::ours_contents(&ours), expected);
        let ours_len = codec::encode(&ours).len();
        let plain_len = bincode_len(&ours) + 2;
        let ours_split: usize = ours
            .iter()
            .map(|(key, record)| codec::encode(key).len() + codec::encode(record).len())
            .sum();
        drop(ours);

        let (a, b) = records::peer_diverged(&workload);
        let peer = records::peer_merge(a, b);
        assert_eq!(records::peer_contents(&peer), expected);
        let peer_len = bincode_len(&peer);
        drop(peer);

        let (a, b) = records::am_docs_diverged(&workload);
        let mut docs = records::am_docs_merge(a, b);
        assert_eq!(records::am_docs_contents(&docs), expected);
        let docs_len: usize = docs
            .iter_mut()
            .map(|(key, doc)| key.len() + doc.save().len())
            .sum();
        drop(docs);

        let (a, b) = records::am_doc_diverged(&workload);
        let mut doc = records::am_doc_merge(a.doc, b.doc);
        assert_eq!(records::am_doc_contents(&doc), expected);
        let doc_len = doc.save().len();

        println!(
            "| {percent}% | {ours_len} | {plain_len} | {ours_split} | {peer_len} | {docs_len} | {doc_len} \
             | {} | {} | {} | {} |",
            ratio(ours_len, peer_len),
            ratio(plain_len, peer_len),
            ratio(ours_split, peer_len),
            ratio(doc_len, ours_len)
        );
    }
}
