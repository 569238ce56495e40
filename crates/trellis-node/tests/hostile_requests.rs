//! Random requests against one in-process node: whatever the path, query
//! and body, the answer is a success or a 4xx with a JSON error, never a
//! 5xx, and what a write answers is what a read then returns.
//!
//! The number of cases comes from `TRELLIS_PROPTEST_CASES` (default 256),
//! as for every property test in the workspace.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::OnceLock;

use common::{start_node, Http, TestNode};
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use trellis_node::client::encode;

fn harness() -> &'static TestNode {
    static HARNESS: OnceLock<TestNode> = OnceLock::new();
    HARNESS.get_or_init(|| {
        start_node("hostile", |config| {
            // Small limits, so that random input reaches them.
            config.api.max_body_bytes = 2048;
            config.api.max_json_depth = 4;
            config.store.max_key_bytes = 40;
            config.store.max_fields = 8;
            config.store.max_record_bytes = 1024;
        })
    })
}

/// Text that exercises names: empty, dots, control characters, unicode,
/// upper case, over the limits.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just(".".to_owned()),
        Just("a..b".to_owned()),
        Just("a.b".to_owned()),
        Just("_sys".to_owned()),
        Just("\u{0}".to_owned()),
        "[a-z]{1,6}",
        "[a-z]{1,3}\\.[a-z]{1,3}",
        "\\PC{0,12}",
        ".{0,60}",
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e300f64..1e300).prop_map(|f| json!(f)),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((text(), inner), 0..6)
                .prop_map(|fields| Value::Object(fields.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A field name: mostly a few shared ones (so ops meet existing fields of
/// other types), sometimes anything.
fn field() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec!["visits", "name", "address.city", "address", "tags", "vip"])
            .prop_map(str::to_owned),
        1 => text(),
    ]
}

/// A leaf JSON value.
fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(|f| json!(f)),
        "[a-z]{0,6}".prop_map(Value::String),
    ]
}

/// A well-formed op most of the time; otherwise anything.
fn op() -> impl Strategy<Value = Value> {
    let valid = (
        prop::sample::select(vec![
            "set", "unset", "incr", "add", "remove", "enable", "disable",
        ]),
        field(),
        leaf(),
        prop_oneof![
            Just(None),
            any::<i64>().prop_map(Some),
            (-5i64..5).prop_map(Some)
        ],
    )
        .prop_map(|(name, field, value, by)| match name {
            "set" | "add" | "remove" => json!({"op": name, "field": field, "value": value}),
            "incr" => match by {
                Some(by) => json!({"op": name, "field": field, "by": by}),
                None => json!({"op": name, "field": field}),
            },
            _ => json!({"op": name, "field": field}),
        });
    let anything = (
        prop::sample::select(vec!["set", "incr", "add", "enable", "explode", ""]),
        prop_oneof![field().prop_map(Value::String), json_value()],
        prop::option::of(json_value()),
        prop::option::of(json_value()),
    )
        .prop_map(|(name, field, value, by)| {
            let mut op = json!({"op": name, "field": field});
            if let Some(value) = value {
                op["value"] = value;
            }
            if let Some(by) = by {
                op["by"] = by;
            }
            op
        });
    prop_oneof![8 => valid, 1 => anything]
}

/// A record body: mostly an object of known fields, sometimes anything.
fn record_body() -> impl Strategy<Value = Value> {
    let value = prop_oneof![
        4 => leaf(),
        1 => json_value(),
    ];
    prop_oneof![
        4 => prop::collection::vec((field(), value), 0..6).prop_map(|fields| {
            let mut object = Map::new();
            for (name, value) in fields {
                // "address.city" as a nested object, the way a client writes it.
                match name.split_once('.') {
                    Some((outer, inner)) if !outer.is_empty() && !inner.is_empty() => {
                        object.insert(outer.to_owned(), json!({ inner: value }));
                    }
                    _ => {
                        object.insert(name, value);
                    }
                }
            }
            Value::Object(object)
        }),
        1 => json_value(),
    ]
}

#[derive(Debug, Clone)]
enum Request {
    Put(Value),
    PutBytes(Vec<u8>),
    Patch(Value),
    Get(String),
    Delete,
    List(String),
    Changes(String),
}

fn request() -> impl Strategy<Value = Request> {
    let query = prop_oneof![
        Just(String::new()),
        "[a-z]{1,8}=[a-zA-Z0-9%.+-]{0,8}".prop_map(|q| format!("?{q}")),
        (
            prop_oneof![
                Just("limit"),
                Just("since"),
                Just("wait"),
                Just("prefix"),
                Just("after"),
                Just("conflicts")
            ],
            prop_oneof![
                Just("-1".to_owned()),
                Just("0".to_owned()),
                Just("true".to_owned()),
                Just("1e9".to_owned()),
                "[0-9]{1,22}",
                "\\PC{0,6}".prop_map(|s| encode(&s))
            ],
        )
            .prop_map(|(name, value)| format!("?{name}={value}")),
    ];
    prop_oneof![
        3 => record_body().prop_map(Request::Put),
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(Request::PutBytes),
        3 => prop_oneof![
            6 => prop::collection::vec(op(), 0..4).prop_map(|ops| json!({"ops": ops})),
            1 => json_value(),
        ]
        .prop_map(Request::Patch),
        1 => query.clone().prop_map(Request::Get),
        1 => Just(Request::Delete),
        1 => query.clone().prop_map(Request::List),
        // Long polls are covered elsewhere; these wait at most 0.1 s.
        1 => query.prop_map(|q| Request::Changes(q.replace("wait=", "wait_="))),
    ]
}

fn collection() -> impl Strategy<Value = String> {
    // Valid names start with "pt", so they never meet other tests' data.
    prop_oneof![
        8 => Just("pt".to_owned()),
        1 => Just("_members".to_owned()),
        1 => Just(String::new()),
        2 => text().prop_map(|s| format!("pt{s}")),
        1 => text(),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => "[a-c]{1,2}",
        2 => text(),
        1 => "k{35,45}",
    ]
}

/// The answer is a success or a JSON error with a 4xx; returns it.
fn check_answer(
    http: &Http,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
) -> Result<common::Reply, TestCaseError> {
    let reply = http
        .try_send(method, path, body)
        .map_err(|err| TestCaseError::fail(format!("{method} {path}: {err}")))?;
    prop_assert!(
        matches!(reply.status, 200 | 400 | 404 | 405 | 409 | 413),
        "{method} {path} {:?}: {reply:?}",
        body.map(String::from_utf8_lossy)
    );
    if reply.status != 200 {
        let error: Value = serde_json::from_str(&reply.body).map_err(|err| {
            TestCaseError::fail(format!("{method} {path}: not JSON ({err}): {reply:?}"))
        })?;
        prop_assert!(
            error["error"].is_string() && error["message"].is_string(),
            "{method} {path}: {reply:?}"
        );
        prop_assert_eq!(error.as_object().map(Map::len), Some(2));
    }
    Ok(reply)
}

proptest! {
    #![proptest_config(trellis_crdt::testing::config())]

    #[test]
    fn random_requests_get_a_success_or_a_json_4xx_and_writes_read_back(
        collection in collection(),
        key in key(),
        request in request(),
    ) {
        let http = Http::new(&harness().node.api_url(), None);
        let record = format!("/v1/collections/{}/records/{}", encode(&collection), encode(&key));
        let (method, path, body) = match &request {
            Request::Put(value) => ("PUT", record.clone(), Some(value.to_string().into_bytes())),
            Request::PutBytes(bytes) => ("PUT", record.clone(), Some(bytes.clone())),
            Request::Patch(value) => ("PATCH", record.clone(), Some(value.to_string().into_bytes())),
            Request::Get(query) => ("GET", format!("{record}{query}"), None),
            Request::Delete => ("DELETE", record.clone(), None),
            Request::List(query) => (
                "GET",
                format!("/v1/collections/{}/records{query}", encode(&collection)),
                None,
            ),
            Request::Changes(query) => ("GET", format!("/v1/changes{query}"), None),
        };
        let reply = check_answer(&http, method, &path, body.as_deref())?;
        if reply.status == 200 && matches!(method, "PUT" | "PATCH") {
            let written = reply.json()["value"].clone();
            let read = check_answer(&http, "GET", &record, None)?;
            if read.status == 404 {
                // Only a record with no fields left reads as absent.
                prop_assert_eq!(written, json!({}));
            } else {
                prop_assert_eq!(read.json()["value"].clone(), written);
            }
        }
    }
}
