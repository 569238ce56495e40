//! The fault harness's short run, as CI runs it: three `trellis`
//! processes behind fault-injecting UDP proxies, a workload at every
//! site, kill -9, pauses, partitions and bad weather, then the checks.
//! `TRELLIS_HARNESS_SECONDS` sets how long faults are injected (default
//! 45; the whole run takes about a minute more).

#![allow(clippy::unwrap_used)]

use std::process::Command;

use serde_json::Value;

#[test]
fn a_short_fault_run_loses_nothing() {
    let seconds = std::env::var("TRELLIS_HARNESS_SECONDS").unwrap_or_else(|_| "45".into());
    let summary = std::env::temp_dir().join(format!(
        "trellis-harness-summary-{}.json",
        std::process::id()
    ));
    let output = Command::new(env!("CARGO_BIN_EXE_trellis-harness"))
        .args(["--seed", "20261207", "--duration", &seconds, "--json"])
        .arg(&summary)
        .env("TRELLIS_BIN", env!("CARGO_BIN_EXE_trellis"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the harness found violations or failed:\n{stdout}\n{stderr}"
    );
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert_eq!(summary["violations"], serde_json::json!([]), "{stdout}");
    // The run did something worth checking.
    assert!(
        summary["operations"]["puts_acknowledged"].as_u64().unwrap() > 100,
        "{stdout}"
    );
    assert!(
        summary["operations"]["decrements_acknowledged"]
            .as_u64()
            .unwrap()
            > 10,
        "{stdout}"
    );
    let faults = summary["faults"].as_object().unwrap();
    assert!(faults.contains_key("window partition"), "{stdout}");
    assert!(
        faults.values().map(|n| n.as_u64().unwrap()).sum::<u64>() >= 4,
        "{stdout}"
    );
    assert!(summary["converged_after_heal_s"].is_number(), "{stdout}");
}
