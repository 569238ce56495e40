//! The node's configuration: a TOML file, then `TRELLIS_…` environment
//! variables, then `--set key=value` flags, each overriding the one
//! before. Every key has a default except `data_dir`; an error names the
//! key and what is wrong with it.
//!
//! `trellis.example.toml` at the repository root documents every key.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Where config keys come from, for error messages.
const ENV_PREFIX: &str = "TRELLIS_";

/// Everything a node needs to run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// The node's data directory, made by `trellis init`: identity,
    /// certificates and data. Relative paths are taken from the working
    /// directory.
    pub data_dir: PathBuf,
    /// The HTTP API.
    #[serde(default)]
    pub api: ApiConfig,
    /// Replication between sites.
    #[serde(default)]
    pub peer: PeerConfig,
    /// Durable storage.
    #[serde(default)]
    pub store: StoreSection,
    /// Strongly consistent counters.
    #[serde(default)]
    pub counter: CounterSection,
    /// The consistency window: how old data from another site may be.
    #[serde(default)]
    pub consistency: ConsistencySection,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
}

/// `[api]`: the HTTP API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Where the API listens. Default `127.0.0.1:7380`. Binding anywhere
    /// but loopback requires `tokens`.
    pub listen: SocketAddr,
    /// Bearer tokens a client must present (`Authorization: Bearer …`).
    /// Empty: no authentication, and loopback only.
    pub tokens: Vec<String>,
    /// The largest request body, in bytes. Default 1 MiB.
    pub max_body_bytes: usize,
    /// The deepest nesting of a JSON body. Default 32.
    pub max_json_depth: usize,
    /// The most API connections open at once; more are closed as soon as
    /// they are accepted. Default 1024.
    pub max_connections: usize,
    /// A connection that sends or takes nothing for this long is closed.
    /// Default `30s`.
    #[serde(with = "duration_text")]
    pub idle_timeout: Duration,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 7380)),
            tokens: Vec::new(),
            max_body_bytes: 1 << 20,
            max_json_depth: 32,
            max_connections: 1024,
            idle_timeout: Duration::from_secs(30),
        }
    }
}

/// `[peer]`: replication between sites.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PeerConfig {
    /// The UDP address of the node's QUIC endpoint. Default `0.0.0.0:7400`.
    pub listen: SocketAddr,
    /// The address other sites dial. Default: `listen`, with
    /// `127.0.0.1` in place of an unspecified IP (set it when listening on
    /// `0.0.0.0` with other machines in the cluster).
    pub advertise: Option<SocketAddr>,
    /// Addresses of other sites to contact first; the rest are learned by
    /// gossip.
    pub seeds: Vec<SocketAddr>,
    /// How often anti-entropy reconciles with a peer. Default `1s`.
    #[serde(with = "duration_text")]
    pub reconcile_interval: Duration,
}

impl Default for PeerConfig {
    fn default() -> Self {
        PeerConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 7400)),
            advertise: None,
            seeds: Vec::new(),
            reconcile_interval: Duration::from_secs(1),
        }
    }
}

impl PeerConfig {
    /// The address written to the membership collection.
    pub fn advertised(&self, bound: SocketAddr) -> SocketAddr {
        if let Some(advertise) = self.advertise {
            return advertise;
        }
        if bound.ip().is_unspecified() {
            SocketAddr::from(([127, 0, 0, 1], bound.port()))
        } else {
            bound
        }
    }
}

/// How writes become durable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DurabilityMode {
    /// fsync before acknowledging (the default).
    #[default]
    Fsync,
    /// Acknowledge at once, fsync every `relaxed_sync_interval`: a crash
    /// loses up to that much acknowledged data (see docs/operations.md).
    Relaxed,
}

/// `[store]`: durable storage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSection {
    /// `fsync` (default) or `relaxed`.
    pub durability: DurabilityMode,
    /// With `relaxed`, how often data is forced to disk. Default `100ms`.
    #[serde(with = "duration_text")]
    pub relaxed_sync_interval: Duration,
    /// How far ahead of this node's clock a remote timestamp may be before
    /// it is refused. Default `60s`.
    #[serde(with = "duration_text")]
    pub max_clock_skew: Duration,
    /// Change-feed entries kept. Default 1 000 000.
    pub change_retention: u64,
    /// Longest key, in bytes. Default 512.
    pub max_key_bytes: usize,
    /// Largest record, encoded, in bytes. Default 1 MiB.
    pub max_record_bytes: usize,
    /// Most fields in one record. Default 1024.
    pub max_fields: usize,
    /// Milliseconds added to the system clock this node's hybrid clock
    /// reads. Leave it 0: it exists to test clock skew (the fault
    /// harness runs a node whose clock is off with it).
    pub clock_offset_ms: i64,
}

impl Default for StoreSection {
    fn default() -> Self {
        let store = trellis_store::StoreConfig::default();
        StoreSection {
            durability: DurabilityMode::Fsync,
            relaxed_sync_interval: Duration::from_millis(100),
            max_clock_skew: store.max_clock_skew,
            change_retention: store.change_retention,
            max_key_bytes: store.limits.max_key_bytes,
            max_record_bytes: store.limits.max_record_bytes,
            max_fields: store.limits.max_fields,
            clock_offset_ms: 0,
        }
    }
}

impl StoreSection {
    /// The store's own configuration.
    pub fn store_config(&self) -> trellis_store::StoreConfig {
        trellis_store::StoreConfig {
            durability: match self.durability {
                DurabilityMode::Fsync => trellis_store::Durability::Fsync,
                DurabilityMode::Relaxed => trellis_store::Durability::Relaxed {
                    interval: self.relaxed_sync_interval,
                },
            },
            limits: trellis_store::Limits {
                max_key_bytes: self.max_key_bytes,
                max_record_bytes: self.max_record_bytes,
                max_fields: self.max_fields,
            },
            change_retention: self.change_retention,
            max_clock_skew: self.max_clock_skew,
            clock_offset_ms: self.clock_offset_ms,
            ..trellis_store::StoreConfig::default()
        }
    }
}

/// `[counter]`: the strongly consistent counters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CounterSection {
    /// The voter sites of the counter group, as `"REPLICA_ID@ADDRESS"`
    /// (the id `trellis init` printed, the site's peer address): 1, 3 or
    /// 5 of them, the same list on every node. Empty: this cluster has no
    /// counters, and the counter routes answer 503.
    pub voters: Vec<String>,
    /// The longest a counter call may take before it fails with
    /// `no_quorum`. Default `5s`.
    #[serde(with = "duration_text")]
    pub request_timeout: Duration,
}

impl Default for CounterSection {
    fn default() -> Self {
        CounterSection {
            voters: Vec::new(),
            request_timeout: Duration::from_secs(5),
        }
    }
}

impl CounterSection {
    /// The voters by id, or the error naming the entry that does not parse.
    pub fn voter_map(&self) -> Result<BTreeMap<trellis_crdt::ReplicaId, SocketAddr>, ConfigError> {
        let mut voters = BTreeMap::new();
        for entry in &self.voters {
            let bad = |why: &str| ConfigError::Key {
                key: "counter.voters".into(),
                message: format!(
                    "{entry:?} {why}; write each voter as \"REPLICA_ID@ADDRESS\", \
                     e.g. \"3f2a9c0d1e4b5a67@10.0.1.5:7400\""
                ),
            };
            let (id, addr) = entry.split_once('@').ok_or_else(|| bad("has no '@'"))?;
            let id = u64::from_str_radix(id, 16)
                .ok()
                .filter(|id| *id != 0)
                .ok_or_else(|| bad("does not start with a 16-hex-digit replica id"))?;
            let addr: SocketAddr = addr
                .parse()
                .map_err(|_| bad("has no valid IP:PORT after '@'"))?;
            if voters.insert(trellis_crdt::ReplicaId(id), addr).is_some() {
                return Err(bad("lists a replica id twice"));
            }
        }
        if !voters.is_empty() && ![1, 3, 5].contains(&voters.len()) {
            return Err(ConfigError::Key {
                key: "counter.voters".into(),
                message: format!(
                    "lists {} sites; list 1, 3 or 5 (an odd number, so a majority survives losing a minority)",
                    voters.len()
                ),
            });
        }
        Ok(voters)
    }
}

/// `[consistency]`: the stated consistency window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsistencySection {
    /// How old data from any other site may be here: the node reports
    /// itself unhealthy (503 on /health, and in the metrics) when a peer
    /// has not completed a reconciliation with it for longer. Default
    /// `5m`.
    #[serde(with = "duration_text")]
    pub window: Duration,
    /// Tighter (or looser) windows for named collections, e.g.
    /// `leads = "1m"`. Reconciliation covers every collection at once, so
    /// the tightest window in force is the one checked.
    #[serde(with = "duration_map")]
    pub collections: BTreeMap<String, Duration>,
}

impl Default for ConsistencySection {
    fn default() -> Self {
        ConsistencySection {
            window: Duration::from_secs(300),
            collections: BTreeMap::new(),
        }
    }
}

impl ConsistencySection {
    /// The tightest window in force, and the collection that sets it
    /// (`None` for the global one).
    pub fn tightest(&self) -> (Duration, Option<&str>) {
        self.collections
            .iter()
            .filter(|(_, window)| **window < self.window)
            .min_by_key(|(_, window)| **window)
            .map_or((self.window, None), |(name, window)| {
                (*window, Some(name.as_str()))
            })
    }
}

/// Log output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (the default).
    #[default]
    Pretty,
    /// One JSON object per line.
    Json,
}

/// `[log]`: logging.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `pretty` (default) or `json`.
    pub format: LogFormat,
    /// A tracing filter such as `info` or `trellis_gossip=debug,info`.
    /// Default `info`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Pretty,
            level: "info".into(),
        }
    }
}

/// A configuration that cannot be used, with the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("config file {path} is not valid TOML: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A `--set` flag is not `key=value`.
    #[error("--set {0:?}: write it as key=value, for example --set api.listen=127.0.0.1:7380")]
    BadFlag(String),
    /// A key has a bad value, or is unknown.
    #[error("config key {key}: {message}")]
    Key {
        /// The dotted key, e.g. `api.listen`.
        key: String,
        /// What is wrong and what to do.
        message: String,
    },
}

impl NodeConfig {
    /// The defaults for a node whose data lives in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        NodeConfig {
            data_dir: data_dir.into(),
            api: ApiConfig::default(),
            peer: PeerConfig::default(),
            store: StoreSection::default(),
            counter: CounterSection::default(),
            consistency: ConsistencySection::default(),
            log: LogConfig::default(),
        }
    }

    /// Reads `file` (if given), applies `TRELLIS_…` variables from `env`
    /// and then the `key=value` overrides, and validates the result.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &[String],
    ) -> Result<Self, ConfigError> {
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                text.parse::<toml::Table>()
                    .map_err(|err| ConfigError::Syntax {
                        path: path.to_owned(),
                        message: err.to_string(),
                    })?
            }
            None => toml::Table::new(),
        };
        let keys = known_keys();
        for (name, value) in env {
            let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let Some(key) = keys.get(&rest.to_ascii_lowercase()) else {
                continue;
            };
            set_key(&mut table, key, &value);
        }
        for flag in overrides {
            let (key, value) = flag
                .split_once('=')
                .ok_or_else(|| ConfigError::BadFlag(flag.clone()))?;
            let key = key.trim();
            if !keys.values().any(|known| known == key) {
                return Err(ConfigError::Key {
                    key: key.to_owned(),
                    message: format!(
                        "no such key; known keys: {}",
                        keys.values().cloned().collect::<Vec<_>>().join(", ")
                    ),
                });
            }
            set_key(&mut table, key, value);
        }
        let config: NodeConfig =
            serde_path_to_error::deserialize(table).map_err(|err| ConfigError::Key {
                key: match err.path().to_string() {
                    path if path == "." => "(top level)".into(),
                    path => path,
                },
                message: err.inner().to_string(),
            })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks values that parse but cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, message: String| {
            Err(ConfigError::Key {
                key: key.into(),
                message,
            })
        };
        if self.data_dir.as_os_str().is_empty() {
            return bad(
                "data_dir",
                "must name the directory `trellis init` made".into(),
            );
        }
        if self.api.tokens.is_empty() && !self.api.listen.ip().is_loopback() {
            return bad(
                "api.listen",
                format!(
                    "{} is not a loopback address, and no api.tokens are set: an open API may only \
                     listen on 127.0.0.1 or ::1; set api.tokens to listen elsewhere",
                    self.api.listen
                ),
            );
        }
        if self.api.tokens.iter().any(|token| token.len() < 16) {
            return bad(
                "api.tokens",
                "every token must be at least 16 characters; generate one with `openssl rand -hex 32`".into(),
            );
        }
        if self.api.max_connections == 0 || self.api.idle_timeout.is_zero() {
            return bad(
                "api.max_connections",
                "api.max_connections and api.idle_timeout must be above zero".into(),
            );
        }
        if self.api.max_body_bytes == 0 || self.api.max_json_depth == 0 {
            return bad(
                "api.max_body_bytes",
                "api.max_body_bytes and api.max_json_depth must be at least 1".into(),
            );
        }
        if self.peer.reconcile_interval.is_zero() {
            return bad(
                "peer.reconcile_interval",
                "must be longer than zero, e.g. \"1s\"".into(),
            );
        }
        if self.store.max_key_bytes == 0
            || self.store.max_record_bytes == 0
            || self.store.max_fields == 0
        {
            return bad(
                "store",
                "max_key_bytes, max_record_bytes and max_fields must be at least 1".into(),
            );
        }
        if self.store.change_retention == 0 {
            return bad("store.change_retention", "must be at least 1".into());
        }
        if self.consistency.window < Duration::from_secs(1)
            || self
                .consistency
                .collections
                .values()
                .any(|w| *w < Duration::from_secs(1))
        {
            return bad(
                "consistency.window",
                "consistency windows must be at least 1s (and a few reconciliation intervals, to be useful)".into(),
            );
        }
        if self.counter.request_timeout < Duration::from_millis(100) {
            return bad("counter.request_timeout", "must be at least 100ms".into());
        }
        self.counter.voter_map()?;
        Ok(())
    }
}

/// Every config key, by its environment name after `TRELLIS_` in lower
/// case (`api_listen` → `api.listen`).
fn known_keys() -> BTreeMap<String, String> {
    let mut keys = BTreeMap::new();
    let defaults = NodeConfig::new("data");
    let Ok(toml::Value::Table(table)) = toml::Value::try_from(&defaults) else {
        return keys;
    };
    collect_keys(&table, "", &mut keys);
    // Keys whose default is absent (`None`) do not serialize.
    keys.insert("peer_advertise".into(), "peer.advertise".into());
    keys
}

fn collect_keys(table: &toml::Table, prefix: &str, keys: &mut BTreeMap<String, String>) {
    for (name, value) in table {
        let key = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        match value {
            toml::Value::Table(inner) => collect_keys(inner, &key, keys),
            _ => {
                keys.insert(key.replace('.', "_"), key);
            }
        }
    }
}

/// Sets the dotted `key` in `table` to `text`, read as a TOML value if it
/// is one (a number, a boolean, an array) and as a string otherwise.
fn set_key(table: &mut toml::Table, key: &str, text: &str) {
    let value = format!("v = {text}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut parsed| parsed.remove("v"))
        .unwrap_or_else(|| toml::Value::String(text.to_owned()));
    let mut node = table;
    let mut parts: Vec<&str> = key.split('.').collect();
    let Some(last) = parts.pop() else {
        return;
    };
    for part in parts {
        let entry = node
            .entry(part.to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        let toml::Value::Table(inner) = entry else {
            return;
        };
        node = inner;
    }
    node.insert(last.to_owned(), value);
}

/// A table of durations written as text, e.g. `leads = "1m"`.
mod duration_map {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct Text(#[serde(with = "super::duration_text")] Duration);

    pub fn serialize<S: Serializer>(
        value: &BTreeMap<String, Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let texts: BTreeMap<&String, Text> = value.iter().map(|(k, v)| (k, Text(*v))).collect();
        texts.serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<BTreeMap<String, Duration>, D::Error> {
        let texts = BTreeMap::<String, Text>::deserialize(deserializer)?;
        Ok(texts.into_iter().map(|(k, Text(v))| (k, v)).collect())
    }
}

/// Durations written as text: `"250ms"`, `"1s"`, `"5m"`.
mod duration_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&humantime::format_duration(*value).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(&text).map_err(|err| {
            serde::de::Error::custom(format!(
                "{text:?} is not a duration ({err}); write it like \"500ms\", \"1s\" or \"5m\""
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn load(text: &str, env: &[(&str, &str)], flags: &[&str]) -> Result<NodeConfig, ConfigError> {
        let dir = std::env::temp_dir().join(format!("trellis-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{}.toml", blake3::hash(text.as_bytes()).to_hex()));
        std::fs::write(&path, text).unwrap();
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        let flags: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
        NodeConfig::load(Some(&path), env, &flags)
    }

    #[test]
    fn a_minimal_file_gets_the_defaults() {
        let config = load("data_dir = \"/var/lib/trellis\"", &[], &[]).unwrap();
        assert_eq!(config, NodeConfig::new("/var/lib/trellis"));
        assert_eq!(config.api.listen, "127.0.0.1:7380".parse().unwrap());
    }

    #[test]
    fn env_then_flags_override_the_file() {
        let config = load(
            "data_dir = \"d\"\n[api]\nlisten = \"127.0.0.1:1\"\n",
            &[
                ("TRELLIS_API_LISTEN", "127.0.0.1:2"),
                ("TRELLIS_PEER_SEEDS", "[\"10.0.0.1:7400\"]"),
                ("TRELLIS_STORE_MAX_KEY_BYTES", "100"),
                ("TRELLIS_PEER_ADVERTISE", "10.0.0.9:7400"),
                ("UNRELATED", "x"),
            ],
            &["api.listen=127.0.0.1:3", "peer.reconcile_interval=250ms"],
        )
        .unwrap();
        assert_eq!(config.api.listen, "127.0.0.1:3".parse().unwrap());
        assert_eq!(config.peer.seeds, vec!["10.0.0.1:7400".parse().unwrap()]);
        assert_eq!(config.store.max_key_bytes, 100);
        assert_eq!(
            config.peer.advertise,
            Some("10.0.0.9:7400".parse().unwrap())
        );
        assert_eq!(config.peer.reconcile_interval, Duration::from_millis(250));
    }

    #[test]
    fn collection_windows_parse_and_the_tightest_is_checked() {
        let config = load(
            "data_dir = \"d\"\n[consistency]\nwindow = \"5m\"\n[consistency.collections]\nleads = \"1m\"\nreports = \"1h\"\n",
            &[],
            &[],
        )
        .unwrap();
        assert_eq!(
            config.consistency.collections["leads"],
            Duration::from_secs(60)
        );
        assert_eq!(
            config.consistency.tightest(),
            (Duration::from_secs(60), Some("leads"))
        );
        assert_eq!(
            NodeConfig::new("d").consistency.tightest(),
            (Duration::from_secs(300), None)
        );
        let err = load(
            "data_dir = \"d\"\n[consistency.collections]\nleads = \"soon\"\n",
            &[],
            &[],
        );
        assert!(err
            .unwrap_err()
            .to_string()
            .contains("consistency.collections"));
    }

    #[test]
    fn errors_name_the_key() {
        let cases: [(&str, &[&str], &str); 7] = [
            (
                "data_dir = \"d\"\n[api]\nlisten = \"nowhere\"",
                &[],
                "api.listen",
            ),
            (
                "data_dir = \"d\"\n[peer]\nreconcile_interval = \"soon\"",
                &[],
                "peer.reconcile_interval",
            ),
            (
                "data_dir = \"d\"\n[api]\nlistne = \"127.0.0.1:1\"",
                &[],
                "listne",
            ),
            (
                "data_dir = \"d\"",
                &["api.listen=0.0.0.0:7380"],
                "api.listen",
            ),
            ("data_dir = \"d\"", &["no.such=1"], "no.such"),
            (
                "data_dir = \"d\"",
                &["counter.voters=[\"1@nowhere\"]"],
                "counter.voters",
            ),
            ("[api]", &[], "data_dir"),
        ];
        for (text, flags, key) in cases {
            let err = load(text, &[], flags).unwrap_err().to_string();
            assert!(err.contains(key), "{text:?} {flags:?}: {err}");
        }
        let err = load("data_dir = ", &[], &[]).unwrap_err().to_string();
        assert!(err.contains("not valid TOML"), "{err}");
        let err = load("data_dir = \"d\"", &[], &["nonsense"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("key=value"), "{err}");
    }

    #[test]
    fn the_example_file_holds_every_key_with_its_default() {
        let example = include_str!("../../../trellis.example.toml");
        let config = load(example, &[], &[]).unwrap();
        assert_eq!(config, NodeConfig::new("/var/lib/trellis"));
        for env_name in known_keys().values() {
            let leaf = env_name.rsplit('.').next().unwrap();
            assert!(
                example.contains(&format!("{leaf} =")),
                "the example lacks {env_name}"
            );
        }
    }

    #[test]
    fn a_public_api_needs_tokens() {
        let open = load(
            "data_dir = \"d\"\n[api]\nlisten = \"0.0.0.0:7380\"",
            &[],
            &[],
        );
        assert!(open.unwrap_err().to_string().contains("api.tokens"));
        let guarded = load(
            "data_dir = \"d\"\n[api]\nlisten = \"0.0.0.0:7380\"\ntokens = [\"0123456789abcdef0123\"]",
            &[],
            &[],
        );
        assert!(guarded.is_ok());
    }
}
