# Trellis task runner. `just` is optional: each recipe is one plain cargo command.

# Run every test (the README's test command; CI runs it too).
test:
    cargo test --workspace --all-features

# Formatting and lints, as CI checks them.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets --all-features -- -D warnings

# Criterion benchmarks, side by side with peer crates (see docs/benchmarks.md).
bench:
    cargo bench -p trellis-benches

# Fuzz one target for a while (needs cargo-fuzz; see fuzz/README.md).
fuzz target="decode_merge" seconds="60":
    cd fuzz && cargo fuzz run --sanitizer none {{target}} -- -max_total_time={{seconds}}

# API documentation for every crate.
doc:
    cargo doc --workspace --all-features --no-deps

# The main job: three sites on loopback; a write at one reaches the others.
demo:
    cargo run --release --bin trellis -- quickstart

# The embeddable CRDT crate alone: two replicas edit concurrently and merge.
crdt-demo:
    cargo run --release --example two_replicas

# A soak run of the property tests: 100k cases each.
soak:
    TRELLIS_PROPTEST_CASES=100000 cargo test --release --workspace --all-features
