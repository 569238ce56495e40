//! A small blocking HTTP client for a node's API: what the CLI's `put`,
//! `get`, `patch`, `delete`, `ls`, `changes` and `status` subcommands use.
//! Plain HTTP (the API listens on loopback or behind a TLS proxy).

use std::time::Duration;

use serde_json::Value;

/// The largest answer read (a page of records, a batch of changes).
const MAX_ANSWER: u64 = 64 << 20;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The node answered with an error.
    #[error("{status} {code}: {message}")]
    Api {
        /// The HTTP status.
        status: u16,
        /// The API's error code.
        code: String,
        /// Its message.
        message: String,
    },
    /// The node could not be reached or answered nonsense.
    #[error("cannot talk to the node at {url}: {reason}; is it running (`trellis run`)?")]
    Transport {
        /// The URL asked for.
        url: String,
        /// Why.
        reason: String,
    },
}

/// A node's API at `base` (e.g. `http://127.0.0.1:7380`).
#[derive(Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("base", &self.base).finish()
    }
}

/// An answer: its status and body.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The body as text.
    pub body: String,
}

impl Client {
    /// A client for the node at `base`, presenting `token` if given.
    /// Requests time out after `timeout`.
    pub fn new(base: &str, token: Option<String>, timeout: Duration) -> Self {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .build();
        Client {
            base: base.trim_end_matches('/').to_owned(),
            token,
            agent: ureq::Agent::new_with_config(config),
        }
    }

    /// The URL of `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends `method` to `path` with an optional JSON body; returns the
    /// answer whatever its status.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, ClientError> {
        let url = self.url(path);
        let transport = |err: ureq::Error| ClientError::Transport {
            url: url.clone(),
            reason: err.to_string(),
        };
        let auth = self.token.as_ref().map(|token| format!("Bearer {token}"));
        macro_rules! with_auth {
            ($request:expr) => {{
                let request = $request;
                match &auth {
                    Some(value) => request.header("Authorization", value),
                    None => request,
                }
            }};
        }
        let response = match (method, body) {
            ("GET", _) => with_auth!(self.agent.get(&url)).call(),
            ("DELETE", _) => with_auth!(self.agent.delete(&url)).call(),
            ("PUT", Some(body)) => with_auth!(self.agent.put(&url)).send_json(body),
            ("PATCH", Some(body)) => with_auth!(self.agent.patch(&url)).send_json(body),
            ("POST", Some(body)) => with_auth!(self.agent.post(&url)).send_json(body),
            (method, _) => {
                return Err(ClientError::Transport {
                    url,
                    reason: format!("{method} is not a request this client makes"),
                })
            }
        }
        .map_err(transport)?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .with_config()
            .limit(MAX_ANSWER)
            .read_to_string()
            .map_err(transport)?;
        Ok(Answer { status, body })
    }

    /// Like [`send`](Self::send), expecting a 2xx JSON answer; an error
    /// answer becomes [`ClientError::Api`].
    pub fn json(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let answer = self.send(method, path, body)?;
        let value: Value = if answer.body.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&answer.body).map_err(|err| ClientError::Transport {
                url: self.url(path),
                reason: format!("the answer is not JSON: {err}"),
            })?
        };
        if (200..300).contains(&answer.status) {
            return Ok(value);
        }
        Err(ClientError::Api {
            status: answer.status,
            code: value["error"].as_str().unwrap_or("error").to_owned(),
            message: value["message"]
                .as_str()
                .map_or_else(|| answer.body.clone(), str::to_owned),
        })
    }
}

/// What [`encode`] escapes: everything but unreserved characters.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes a path segment or query value.
pub fn encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, SEGMENT).to_string()
}
