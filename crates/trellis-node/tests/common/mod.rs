//! What the node's integration tests share: scratch directories, a plain
//! HTTP client that can send any bytes with any method, and bounded
//! polling with a clear failure message.

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use trellis_node::{setup, DataDir, Node, NodeConfig};

/// A fresh directory under the target directory, removed on drop.
#[derive(Debug)]
pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// `target/tmp/<name>-<pid>`, emptied first. Directories of the same
    /// name left by test processes that are gone (a failed test keeps its
    /// directory to be looked at; a node shared by a whole test binary is
    /// never dropped) are removed.
    pub fn new(name: &str) -> ScratchDir {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR"));
        remove_stale(root, name);
        let path = root.join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        ScratchDir { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Removes `root/<name>-<pid>` for every pid that is no longer a process
/// (where `/proc` tells).
fn remove_stale(root: &Path, name: &str) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(pid) = file_name
            .to_str()
            .and_then(|n| n.strip_prefix(name))
            .and_then(|rest| rest.strip_prefix('-'))
            .filter(|pid| pid.parse::<u32>().is_ok())
        else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// A node running in this process, on its own runtime and scratch
/// directory (kept while it lives).
pub struct TestNode {
    /// The runtime the node runs on.
    pub runtime: tokio::runtime::Runtime,
    /// The node.
    pub node: Node,
    _dir: ScratchDir,
}

/// Starts a node for site `site` on loopback (API and QUIC on free
/// ports), with a fresh CA and data directory, after `adjust` has had
/// its say on the config.
pub fn start_node(site: &str, adjust: impl FnOnce(&mut NodeConfig)) -> TestNode {
    let dir = ScratchDir::new(site);
    let ca = dir.path().join("ca");
    setup::create_ca(&ca, "tests").unwrap();
    let data = DataDir::new(dir.path().join("data"));
    data.init(site).unwrap();
    setup::issue_node_cert(&ca, &data, Some(site)).unwrap();
    let mut config = NodeConfig::new(data.root());
    config.api.listen = ([127, 0, 0, 1], 0).into();
    config.peer.listen = ([127, 0, 0, 1], 0).into();
    adjust(&mut config);
    config.validate().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let node = runtime.block_on(Node::start(config)).unwrap();
    TestNode {
        runtime,
        node,
        _dir: dir,
    }
}

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// The `WWW-Authenticate` header, if any.
    pub www_authenticate: Option<String>,
    /// The body.
    pub body: String,
}

impl Reply {
    /// The body as JSON; panics with the body if it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|err| panic!("the body is not JSON ({err}): {:?}", self.body))
    }

    /// Asserts that this is an error answer `{"error": code, "message"}`
    /// with `status`, JSON typed.
    pub fn assert_error(&self, status: u16, code: &str, what: &str) {
        assert_eq!(self.status, status, "{what}: {self:?}");
        assert!(
            self.content_type
                .as_deref()
                .is_some_and(|t| t.starts_with("application/json")),
            "{what}: an error is JSON: {self:?}"
        );
        let body = self.json();
        let fields = body.as_object().expect("an error body is an object");
        assert_eq!(fields.len(), 2, "{what}: exactly error and message: {body}");
        assert_eq!(body["error"], code, "{what}: {body}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}: a message for people: {body}"
        );
    }

    /// The NDJSON lines of the body.
    pub fn ndjson(&self) -> Vec<Value> {
        self.body
            .lines()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|err| panic!("not a JSON line ({err}): {line:?}"))
            })
            .collect()
    }
}

/// A blocking HTTP/1.1 client that sends exactly what it is given.
#[derive(Clone)]
pub struct Http {
    agent: ureq::Agent,
    base: String,
    token: Option<String>,
}

impl Http {
    /// A client for the API at `base`, sending `token` as a bearer token
    /// if given.
    pub fn new(base: &str, token: Option<&str>) -> Http {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .allow_non_standard_methods(true)
            .timeout_global(Some(Duration::from_secs(90)))
            .build();
        Http {
            agent: ureq::Agent::new_with_config(config),
            base: base.trim_end_matches('/').to_owned(),
            token: token.map(str::to_owned),
        }
    }

    /// The same client with another token (or none).
    pub fn with_token(&self, token: Option<&str>) -> Http {
        Http {
            token: token.map(str::to_owned),
            ..self.clone()
        }
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends `method` to `path` with `body` (sent as `application/json`).
    pub fn try_send(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<Reply, ureq::Error> {
        let mut request = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let response = match body {
            Some(bytes) => self.agent.run(
                request
                    .header("Content-Type", "application/json")
                    .body(bytes.to_vec())
                    .unwrap(),
            ),
            None => self.agent.run(request.body(()).unwrap()),
        }?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let status = response.status().as_u16();
        let content_type = header("content-type");
        let www_authenticate = header("www-authenticate");
        let body = response
            .into_body()
            .with_config()
            .limit(64 << 20)
            .read_to_string()?;
        Ok(Reply {
            status,
            content_type,
            www_authenticate,
            body,
        })
    }

    /// [`try_send`](Self::try_send), panicking on a transport error.
    pub fn send(&self, method: &str, path: &str, body: Option<&[u8]>) -> Reply {
        self.try_send(method, path, body)
            .unwrap_or_else(|err| panic!("{method} {}{path}: {err}", self.base))
    }

    /// GET `path`.
    pub fn get(&self, path: &str) -> Reply {
        self.send("GET", path, None)
    }

    /// Sends `value` as JSON.
    pub fn send_json(&self, method: &str, path: &str, value: &Value) -> Reply {
        self.send(method, path, Some(value.to_string().as_bytes()))
    }

    /// PUT a record; panics unless 200.
    pub fn put(&self, collection: &str, key: &str, value: &Value) -> Value {
        let reply = self.send_json("PUT", &record_path(collection, key), value);
        assert_eq!(reply.status, 200, "PUT {collection}/{key}: {reply:?}");
        reply.json()
    }

    /// GET a record: its `value`, or `None` on 404.
    pub fn record(&self, collection: &str, key: &str) -> Option<Value> {
        let reply = self.get(&record_path(collection, key));
        match reply.status {
            200 => Some(reply.json()["value"].clone()),
            404 => None,
            _ => panic!("GET {collection}/{key}: {reply:?}"),
        }
    }

    /// The change feed after `since`.
    pub fn changes(&self, since: u64, limit: usize) -> Vec<Value> {
        let reply = self.get(&format!("/v1/changes?since={since}&limit={limit}"));
        assert_eq!(reply.status, 200, "the change feed: {reply:?}");
        reply.ndjson()
    }
}

/// `/v1/collections/{c}/records/{key}`, percent-encoded.
pub fn record_path(collection: &str, key: &str) -> String {
    format!(
        "/v1/collections/{}/records/{}",
        trellis_node::client::encode(collection),
        trellis_node::client::encode(key)
    )
}

/// Polls `check` every 20 ms until it gives `Some`, or panics after
/// `limit` saying `what` did not happen and what `check` last saw.
pub fn wait_for<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        match check() {
            Ok(value) => return value,
            Err(last) if Instant::now() >= deadline => {
                panic!("{what}: not within {limit:?}; last seen: {last}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Checks every line of `text` against the Prometheus text exposition
/// format: comments are `# HELP name text` or `# TYPE name type`, each
/// family's TYPE comes before its samples, and a sample is a name of the
/// family (with `_total`, `_bucket`, `_sum`, `_count` as its type allows),
/// an optional label set of `name="escaped value"` pairs, and a float;
/// histogram buckets are cumulative and `+Inf` equals `_count`. Returns
/// the families and their types.
pub fn check_exposition_format(text: &str) -> BTreeMap<String, String> {
    fn is_name(name: &str) -> bool {
        let mut chars = name.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }
    fn parse_labels(mut rest: &str, line: &str) -> (Vec<(String, String)>, usize) {
        let mut labels = Vec::new();
        let mut used = 0;
        loop {
            if let Some(after) = rest.strip_prefix('}') {
                return (labels, used + 1 + (rest.len() - after.len() - 1));
            }
            let eq = rest
                .find('=')
                .unwrap_or_else(|| panic!("no = in labels: {line}"));
            let name = &rest[..eq];
            assert!(is_name(name), "label name {name:?}: {line}");
            let mut value = String::new();
            let mut chars = rest[eq + 1..].char_indices();
            assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "{line}");
            let mut end = None;
            while let Some((at, c)) = chars.next() {
                match c {
                    '\\' => match chars.next().map(|(_, c)| c) {
                        Some('\\') => value.push('\\'),
                        Some('"') => value.push('"'),
                        Some('n') => value.push('\n'),
                        other => panic!("bad escape {other:?}: {line}"),
                    },
                    '"' => {
                        end = Some(at);
                        break;
                    }
                    '\n' => panic!("raw newline in a label: {line}"),
                    c => value.push(c),
                }
            }
            let end = eq + 1 + end.unwrap_or_else(|| panic!("unterminated label: {line}")) + 1;
            labels.push((name.to_owned(), value));
            used += end;
            rest = &rest[end..];
            if let Some(after) = rest.strip_prefix(',') {
                used += 1;
                rest = after;
            }
        }
    }
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut helps = BTreeSet::new();
    // Histograms: the last bucket seen, the +Inf bucket and the count, by
    // family and labels.
    let mut buckets: BTreeMap<String, f64> = BTreeMap::new();
    let mut infinite: BTreeMap<String, f64> = BTreeMap::new();
    let mut counts: BTreeMap<String, f64> = BTreeMap::new();
    for line in text.lines() {
        if line == "# EOF" {
            continue;
        }
        if let Some(comment) = line.strip_prefix("# ") {
            let mut parts = comment.splitn(3, ' ');
            let (kind, name, rest) = (parts.next(), parts.next(), parts.next());
            let name = name.unwrap_or_else(|| panic!("a comment without a name: {line}"));
            assert!(is_name(name), "metric name {name:?}: {line}");
            match kind {
                Some("HELP") => {
                    assert!(helps.insert(name.to_owned()), "HELP twice: {line}");
                }
                Some("TYPE") => {
                    let kind = rest.unwrap_or_else(|| panic!("TYPE without a type: {line}"));
                    assert!(
                        [
                            "counter",
                            "gauge",
                            "histogram",
                            "summary",
                            "untyped",
                            "unknown"
                        ]
                        .contains(&kind),
                        "{line}"
                    );
                    assert!(
                        types.insert(name.to_owned(), kind.to_owned()).is_none(),
                        "TYPE twice: {line}"
                    );
                }
                Some("UNIT") => {}
                _ => panic!("a comment that is neither HELP nor TYPE: {line}"),
            }
            continue;
        }
        assert!(!line.is_empty(), "an empty line in the exposition");
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let name = &line[..name_end];
        assert!(is_name(name), "sample name {name:?}: {line}");
        let mut rest = &line[name_end..];
        let mut labels = Vec::new();
        if let Some(inner) = rest.strip_prefix('{') {
            let (parsed, used) = parse_labels(inner, line);
            labels = parsed;
            rest = &inner[used..];
        }
        let mut fields = rest
            .strip_prefix(' ')
            .unwrap_or_else(|| panic!("{line}"))
            .split(' ');
        let value = fields.next().unwrap_or_else(|| panic!("no value: {line}"));
        let parsed = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            number => number
                .parse::<f64>()
                .unwrap_or_else(|err| panic!("value {number:?} ({err}): {line}")),
        };
        if let Some(timestamp) = fields.next() {
            timestamp
                .parse::<i64>()
                .unwrap_or_else(|err| panic!("timestamp {timestamp:?} ({err}): {line}"));
        }
        assert!(fields.next().is_none(), "trailing text: {line}");
        let family = types
            .iter()
            .find(|(family, kind)| {
                let suffixes: &[&str] = match kind.as_str() {
                    "counter" => &["_total", ""],
                    "histogram" => &["_bucket", "_sum", "_count"],
                    "summary" => &["", "_sum", "_count"],
                    _ => &[""],
                };
                suffixes.iter().any(|s| name == format!("{family}{s}"))
            })
            .unwrap_or_else(|| panic!("a sample of no declared family: {line}"));
        if family.1 == "counter" || name.ends_with("_bucket") || name.ends_with("_count") {
            assert!(parsed >= 0.0, "a negative count: {line}");
        }
        if name.ends_with("_bucket") {
            let le = labels
                .iter()
                .find(|(name, _)| name == "le")
                .unwrap_or_else(|| panic!("a bucket without le: {line}"))
                .1
                .clone();
            let others: Vec<(String, String)> = labels
                .into_iter()
                .filter(|(name, _)| name != "le")
                .collect();
            let series = format!("{}{others:?}", family.0);
            let previous = buckets.insert(series.clone(), parsed);
            assert!(
                previous.is_none_or(|p| p <= parsed),
                "buckets of {series} are not cumulative: {line}"
            );
            if le == "+Inf" {
                infinite.insert(series, parsed);
            }
        } else if name.ends_with("_count") && family.1 == "histogram" {
            let series = format!("{}{labels:?}", family.0);
            counts.insert(series, parsed);
        }
    }
    assert_eq!(
        infinite, counts,
        "every histogram's +Inf bucket equals its _count"
    );
    types
}
