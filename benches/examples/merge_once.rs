//! Builds one benchmark workload and runs its merge once: a target for
//! profilers, which should count the merge function only. For example:
//!
//! ```text
//! cargo build --release -p trellis-benches --example merge_once
//! valgrind --tool=callgrind --toggle-collect='*set::ours_merge*' \
//!     target/release/examples/merge_once set trellis 10
//! callgrind_annotate --inclusive=yes callgrind.out.<pid>
//! ```
//!
//! Arguments: the workload (`set` or `records`), the implementation
//! (`trellis`, `crdts`, and for records also `automerge-docs` or
//! `automerge-doc`), and the percentage of concurrent edits per replica.
//! The merge functions are `set::{ours,peer}_merge` and
//! `records::{ours,peer,am_docs,am_doc}_merge`.

use std::hint::black_box;
use std::process::ExitCode;

use automerge::ReadDoc;

use trellis_benches::records::{self, RecordWorkload, RECORDS};
use trellis_benches::set::{self, SetWorkload, SET_SIZE};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [workload, implementation, percent] = args.as_slice() else {
        eprintln!("usage: merge_once <set|records> <trellis|crdts|automerge-docs|automerge-doc> <percent>");
        return ExitCode::FAILURE;
    };
    let Ok(percent) = percent.parse::<u32>() else {
        eprintln!("the percentage must be a whole number, not {percent:?}");
        return ExitCode::FAILURE;
    };
    match (workload.as_str(), implementation.as_str()) {
        ("set", "trellis") => {
            let (a, b) = set::ours_diverged(&SetWorkload::new(SET_SIZE, percent));
            let merged = black_box(set::ours_merge(a, b));
            println!("{} elements", merged.store.len());
        }
        ("set", "crdts") => {
            let (a, b) = set::peer_diverged(&SetWorkload::new(SET_SIZE, percent));
            let merged = black_box(set::peer_merge(a, b));
            println!("{} elements", set::peer_members(&merged).len());
        }
        ("records", "trellis") => {
            let (a, b) = records::ours_diverged(&RecordWorkload::new(RECORDS, percent));
            let merged = black_box(records::ours_merge(a, b));
            println!("{} records", merged.len());
        }
        ("records", "crdts") => {
            let (a, b) = records::peer_diverged(&RecordWorkload::new(RECORDS, percent));
            let merged = black_box(records::peer_merge(a, b));
            println!("{} records", merged.len().val);
        }
        ("records", "automerge-docs") => {
            let (a, b) = records::am_docs_diverged(&RecordWorkload::new(RECORDS, percent));
            let merged = black_box(records::am_docs_merge(a, b));
            println!("{} records", merged.len());
        }
        ("records", "automerge-doc") => {
            let (a, b) = records::am_doc_diverged(&RecordWorkload::new(RECORDS, percent));
            let merged = black_box(records::am_doc_merge(a.doc, b.doc));
            println!("{} records", merged.length(automerge::ROOT));
        }
        (workload, implementation) => {
            eprintln!("no benchmark for {implementation:?} on workload {workload:?}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
