//! Log output: tracing to stderr, pretty or JSON, filtered by level.

use tracing_subscriber::EnvFilter;
use trellis_node::LogFormat;

/// Installs the global subscriber. `RUST_LOG`, if set, wins over `level`.
pub fn init(format: LogFormat, level: &str) -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.is_empty() => EnvFilter::try_new(spec),
        _ => EnvFilter::try_new(level),
    }
    .map_err(|err| anyhow::anyhow!("log.level {level:?} is not a valid filter: {err}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    installed.map_err(|err| anyhow::anyhow!("cannot set up logging: {err}"))
}
