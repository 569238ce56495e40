//! Turns criterion's saved estimates into the markdown tables of
//! `docs/benchmarks.md`: the median of each benchmark and, for each peer,
//! the ratio peer / Trellis (above 1: Trellis is faster), both of the
//! medians and of the fastest samples. On a shared, noisy machine noise only
//! ever adds time, so the fastest samples are the less disturbed estimate.
//!
//! Run after `cargo bench -p trellis-benches`, with the criterion output
//! directory (`$CARGO_TARGET_DIR/criterion`, by default `target/criterion`):
//! `cargo run --release -p trellis-benches --bin criterion_table -- target/criterion`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// The Trellis implementation's name in every benchmark group.
const OURS: &str = "trellis";

/// The median and the fastest sample of one benchmark, in nanoseconds per
/// iteration.
#[derive(Clone, Copy, Debug)]
struct Timing {
    median: f64,
    fastest: f64,
}

fn read_json(path: &Path) -> Option<serde_json::Value> {
    serde_json::from_str(&fs::read_to_string(path).ok()?).ok()
}

fn timing(run: &Path) -> Option<Timing> {
    let median = read_json(&run.join("estimates.json"))?["median"]["point_estimate"].as_f64()?;
    let sample = read_json(&run.join("sample.json"))?;
    let iters = sample["iters"].as_array()?;
    let times = sample["times"].as_array()?;
    let fastest = iters
        .iter()
        .zip(times)
        .filter_map(|(iters, time)| Some(time.as_f64()? / iters.as_f64()?))
        .fold(f64::INFINITY, f64::min);
    Some(Timing { median, fastest })
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.is_dir() && path.file_name().is_some_and(|name| name != "report"))
        .collect();
    dirs.sort();
    dirs
}

fn name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn human(ns: f64) -> String {
    match ns {
        ns if ns >= 1e9 => format!("{:.2} s", ns / 1e9),
        ns if ns >= 1e6 => format!("{:.2} ms", ns / 1e6),
        ns if ns >= 1e3 => format!("{:.2} µs", ns / 1e3),
        ns => format!("{ns:.0} ns"),
    }
}

/// Sorts parameters such as `1pct`, `10pct`, `1000`, `100000` numerically.
fn parameter_order(parameter: &str) -> (u64, String) {
    let digits: String = parameter.chars().take_while(char::is_ascii_digit).collect();
    (digits.parse().unwrap_or(u64::MAX), parameter.to_owned())
}

fn main() {
    let root = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "target/criterion".to_owned()),
    );
    if !root.is_dir() {
        eprintln!(
            "no criterion output at {}: run `cargo bench -p trellis-benches` first, \
             and pass $CARGO_TARGET_DIR/criterion if you set CARGO_TARGET_DIR",
            root.display()
        );
        std::process::exit(1);
    }
    for group in subdirs(&root) {
        // implementation -> parameter -> timing
        let mut medians: BTreeMap<String, BTreeMap<String, Timing>> = BTreeMap::new();
        for implementation in subdirs(&group) {
            for parameter in subdirs(&implementation) {
                if let Some(found) = timing(&parameter.join("new")) {
                    medians
                        .entry(name(&implementation))
                        .or_default()
                        .insert(name(&parameter), found);
                }
            }
        }
        let Some(ours) = medians.remove(OURS) else {
            continue;
        };
        let peers: Vec<&String> = medians.keys().collect();
        println!("### {}", name(&group));
        println!();
        let mut header = format!("| parameter | {OURS} (median) |");
        let mut rule = String::from("|---|---:|");
        for peer in &peers {
            header.push_str(&format!(" {peer} (median) |"));
            rule.push_str("---:|");
        }
        for peer in &peers {
            header.push_str(&format!(" {peer} / {OURS}: median (fastest) |"));
            rule.push_str("---:|");
        }
        println!("{header}");
        println!("{rule}");
        let mut parameters: Vec<&String> = ours.keys().collect();
        parameters.sort_by_key(|parameter| parameter_order(parameter));
        for parameter in parameters {
            let mine = ours[parameter];
            let mut line = format!("| {parameter} | {} |", human(mine.median));
            for peer in &peers {
                let cell = medians[*peer]
                    .get(parameter)
                    .map_or("–".to_owned(), |theirs| human(theirs.median));
                line.push_str(&format!(" {cell} |"));
            }
            for peer in &peers {
                let cell = medians[*peer]
                    .get(parameter)
                    .map_or("–".to_owned(), |theirs| {
                        format!(
                            "{:.2} ({:.2})",
                            theirs.median / mine.median,
                            theirs.fastest / mine.fastest
                        )
                    });
                line.push_str(&format!(" {cell} |"));
            }
            println!("{line}");
        }
        println!();
    }
}
