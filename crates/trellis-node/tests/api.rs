//! The HTTP API in process: one `Node` on a scratch data directory,
//! driven over real HTTP on loopback. Each test uses its own collections,
//! so the tests run in parallel against the same node.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{mpsc, OnceLock};
use std::time::Duration;

use common::{check_exposition_format, record_path, start_node, Http, TestNode};
use serde_json::{json, Value};
use trellis_crdt::{Record, ReplicaId, Timestamp};
use trellis_store::{Origin, Store};

/// The node's bearer token.
const TOKEN: &str = "api-test-token-0123456789";
/// `api.max_body_bytes` of the test node.
const MAX_BODY: usize = 4096;
/// `api.max_json_depth` of the test node.
const MAX_DEPTH: usize = 8;
/// `store.max_key_bytes` of the test node.
const MAX_KEY: usize = 100;
/// `store.max_fields` of the test node.
const MAX_FIELDS: usize = 16;
/// `store.max_record_bytes` of the test node.
const MAX_RECORD: usize = 2048;

/// The one node every test talks to, started on first use.
fn harness() -> &'static TestNode {
    static HARNESS: OnceLock<TestNode> = OnceLock::new();
    HARNESS.get_or_init(|| {
        start_node("api-site", |config| {
            config.api.tokens = vec![TOKEN.into()];
            config.api.max_body_bytes = MAX_BODY;
            config.api.max_json_depth = MAX_DEPTH;
            config.store.max_key_bytes = MAX_KEY;
            config.store.max_fields = MAX_FIELDS;
            config.store.max_record_bytes = MAX_RECORD;
        })
    })
}

/// A client with the node's token.
fn api() -> Http {
    Http::new(&harness().node.api_url(), Some(TOKEN))
}

fn nested(depth: usize) -> Value {
    (0..depth).fold(json!(1), |inner, _| json!({ "n": inner }))
}

/// A JSON object of exactly `len` bytes.
fn padded_object(len: usize) -> Vec<u8> {
    let skeleton = r#"{"pad":""}"#.len();
    format!(r#"{{"pad":"{}"}}"#, "x".repeat(len - skeleton)).into_bytes()
}

/// A write's answer without its receipt (the causal token and the number
/// of sites holding the write), checking the receipt on the way: a lone
/// node holds its writes at one site.
fn receipt(mut answer: Value) -> Value {
    let fields = answer.as_object_mut().expect("an object");
    let token = fields.remove("token").expect("a write returns a token");
    assert!(
        token.as_str().is_some_and(|t| t.starts_with("t1.")),
        "{token}"
    );
    assert_eq!(fields.remove("sites"), Some(json!(1)));
    answer
}

#[test]
fn put_get_patch_delete_answer_as_documented() {
    let api = api();
    let lead = json!({"name": "Ada", "age": 36, "score": 1.5, "vip": false, "nick": null,
                      "tags": ["a", "b"], "address": {"city": "London", "geo": {"lat": 51}}});
    let put = api.send_json("PUT", &record_path("crud", "lead-1"), &lead);
    assert_eq!(put.status, 200, "{put:?}");
    assert_eq!(receipt(put.json()), json!({"key": "lead-1", "value": lead}));
    let get = api.get(&record_path("crud", "lead-1"));
    assert_eq!(get.status, 200, "{get:?}");
    assert_eq!(get.json(), json!({"key": "lead-1", "value": lead}));

    // A PUT replaces: fields it leaves out are gone.
    let replaced = api.put("crud", "lead-1", &json!({"name": "Ada L.", "stage": "new"}));
    assert_eq!(
        receipt(replaced),
        json!({"key": "lead-1", "value": {"name": "Ada L.", "stage": "new"}})
    );

    let ops = json!({"ops": [
        {"op": "set", "field": "address.city", "value": "Paris"},
        {"op": "unset", "field": "stage"},
        {"op": "incr", "field": "visits", "by": 5},
        {"op": "incr", "field": "visits", "by": -2},
        {"op": "incr", "field": "logins"},
        {"op": "add", "field": "tags", "value": "x"},
        {"op": "add", "field": "tags", "value": "y"},
        {"op": "remove", "field": "tags", "value": "x"},
        {"op": "enable", "field": "flags.vip"},
        {"op": "enable", "field": "newsletter"},
        {"op": "disable", "field": "newsletter"},
        {"op": "enable", "field": "consent"},
        {"op": "disable", "field": "consent"},
        {"op": "enable", "field": "consent"},
    ]});
    let patched = api.send_json("PATCH", &record_path("crud", "lead-1"), &ops);
    assert_eq!(patched.status, 200, "{patched:?}");
    let expected = json!({"name": "Ada L.", "address": {"city": "Paris"}, "visits": 3,
                          "logins": 1, "tags": ["y"], "flags": {"vip": true}, "consent": true});
    // A disabled flag holds no state: like an absent field, it is not shown.
    assert_eq!(
        receipt(patched.json()),
        json!({"key": "lead-1", "value": expected})
    );
    assert_eq!(api.record("crud", "lead-1"), Some(expected));

    // A PATCH of an absent record creates it.
    let created = api.send_json(
        "PATCH",
        &record_path("crud", "lead-2"),
        &json!({"ops": [{"op": "incr", "field": "visits", "by": 7}]}),
    );
    assert_eq!(created.status, 200, "{created:?}");
    assert_eq!(
        receipt(created.json()),
        json!({"key": "lead-2", "value": {"visits": 7}})
    );

    // Keys are any text: slashes, spaces, unicode (percent-encoded in the path).
    let odd = "a/b c?d#é";
    api.put("crud", odd, &json!({"ok": true}));
    let reply = api.get(&record_path("crud", odd));
    assert_eq!(reply.json()["key"], odd, "{reply:?}");

    let deleted = api.send("DELETE", &record_path("crud", "lead-1"), None);
    assert_eq!(deleted.status, 200, "{deleted:?}");
    assert_eq!(
        receipt(deleted.json()),
        json!({"key": "lead-1", "deleted": true})
    );
    api.get(&record_path("crud", "lead-1"))
        .assert_error(404, "not_found", "GET after DELETE");
    api.send("DELETE", &record_path("crud", "lead-1"), None)
        .assert_error(404, "not_found", "DELETE twice");
    api.get(&record_path("crud", "never-written")).assert_error(
        404,
        "not_found",
        "GET of an absent key",
    );
    api.get(&record_path("no-such-collection", "k"))
        .assert_error(404, "not_found", "GET in an absent collection");
    // A deleted record can be written again.
    api.put("crud", "lead-1", &json!({"name": "again"}));
    assert_eq!(api.record("crud", "lead-1"), Some(json!({"name": "again"})));
}

#[test]
fn listing_pages_in_key_order_with_prefix_and_after() {
    let api = api();
    let keys = ["b-2", "a-1", "b-1", "c-1", "b-3", "a-2"];
    for key in keys {
        api.put("listing", key, &json!({"k": key}));
    }
    api.put("listing", "gone", &json!({"k": "gone"}));
    assert_eq!(
        api.send("DELETE", &record_path("listing", "gone"), None)
            .status,
        200
    );

    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path = "/v1/collections/listing/records?limit=4".to_owned();
        if let Some(after) = &after {
            path.push_str(&format!("&after={after}"));
        }
        let page = api.get(&path);
        assert_eq!(page.status, 200, "{page:?}");
        let page = page.json();
        let records = page["records"].as_array().unwrap();
        assert!(records.len() <= 4, "{page}");
        for record in records {
            assert_eq!(record["value"]["k"], record["key"], "{record}");
            seen.push(record["key"].as_str().unwrap().to_owned());
        }
        pages += 1;
        match page["next"].as_str() {
            Some(next) => {
                assert_eq!(Some(next), seen.last().map(String::as_str), "{page}");
                after = Some(next.to_owned());
            }
            None => break,
        }
        assert!(pages < 10, "the listing does not end: {seen:?}");
    }
    let mut sorted: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    sorted.sort();
    assert_eq!(
        seen, sorted,
        "every live key once, in order, deleted ones left out"
    );

    let page = api.get("/v1/collections/listing/records?prefix=b-").json();
    let keys: Vec<&str> = page["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["b-1", "b-2", "b-3"]);
    assert_eq!(page["next"], Value::Null);
    let page = api
        .get("/v1/collections/listing/records?prefix=b-&after=b-1&limit=1")
        .json();
    assert_eq!(page["records"][0]["key"], "b-2", "{page}");
    assert_eq!(page["records"].as_array().unwrap().len(), 1, "{page}");
    let empty = api.get("/v1/collections/never-used/records");
    assert_eq!(empty.status, 200, "{empty:?}");
    assert_eq!(empty.json(), json!({"records": [], "next": null}));
}

#[test]
fn collections_lists_names_and_live_counts_without_system_collections() {
    let api = api();
    for key in ["1", "2", "3"] {
        api.put("colls-a", key, &json!({"x": 1}));
    }
    api.put("colls-b", "1", &json!({"x": 1}));
    assert_eq!(
        api.send("DELETE", &record_path("colls-a", "2"), None)
            .status,
        200
    );
    let reply = api.get("/v1/collections");
    assert_eq!(reply.status, 200, "{reply:?}");
    let counts: BTreeMap<String, Value> = reply.json()["collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap().to_owned(), c["count"].clone()))
        .collect();
    assert_eq!(counts.get("colls-a"), Some(&json!(2)), "{counts:?}");
    assert_eq!(counts.get("colls-b"), Some(&json!(1)), "{counts:?}");
    assert!(
        counts.keys().all(|name| !name.starts_with('_')),
        "system collections are Trellis's own: {counts:?}"
    );
    // The node did write its membership: it is just not listed.
    let status = api.get("/v1/status").json();
    assert!(
        status["collections"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "_members"),
        "{status}"
    );
}

/// One request that must be refused with `status` and `code`.
struct Bad {
    what: &'static str,
    method: &'static str,
    path: String,
    body: Option<Vec<u8>>,
    status: u16,
    code: &'static str,
}

fn bad(
    what: &'static str,
    method: &'static str,
    path: impl Into<String>,
    body: Option<Vec<u8>>,
    status: u16,
    code: &'static str,
) -> Bad {
    Bad {
        what,
        method,
        path: path.into(),
        body,
        status,
        code,
    }
}

fn bytes(value: Value) -> Option<Vec<u8>> {
    Some(value.to_string().into_bytes())
}

fn ops(ops: Value) -> Option<Vec<u8>> {
    bytes(json!({ "ops": ops }))
}

#[test]
fn bad_input_gets_a_4xx_with_a_json_error_and_never_a_5xx() {
    let api = api();
    api.put("bad", "k", &json!({"n": 1}));
    let rec = record_path("bad", "k");
    let long_key = "k".repeat(MAX_KEY + 1);
    let many_fields: serde_json::Map<String, Value> = (0..=MAX_FIELDS)
        .map(|i| (format!("f{i}"), json!(i)))
        .collect();
    let many_incrs: Vec<Value> = (0..=MAX_FIELDS)
        .map(|i| json!({"op": "incr", "field": format!("c{i}")}))
        .collect();
    let large_record = json!({"a": "x".repeat(MAX_RECORD), "b": 1});
    assert!(large_record.to_string().len() < MAX_BODY);
    let mut deep_array = json!(1);
    for _ in 0..=MAX_DEPTH {
        deep_array = json!([deep_array]);
    }
    // serde_json stops at 128 levels; this is within api.max_body_bytes.
    let very_deep = format!("{}1{}", "[".repeat(200), "]".repeat(200)).into_bytes();

    let cases = vec![
        // Bodies that are not JSON, too large, or not an object.
        bad(
            "malformed JSON",
            "PUT",
            &rec,
            Some(b"{\"a\":".to_vec()),
            400,
            "malformed_json",
        ),
        bad(
            "trailing garbage",
            "PUT",
            &rec,
            Some(b"{\"a\":1} x".to_vec()),
            400,
            "malformed_json",
        ),
        bad(
            "not UTF-8",
            "PUT",
            &rec,
            Some(vec![0xff, 0xfe, 0x7b]),
            400,
            "malformed_json",
        ),
        bad(
            "an empty body",
            "PUT",
            &rec,
            Some(Vec::new()),
            400,
            "malformed_json",
        ),
        bad(
            "a body over api.max_body_bytes",
            "PUT",
            &rec,
            Some(padded_object(MAX_BODY + 1)),
            413,
            "body_too_large",
        ),
        bad(
            "a PATCH body over api.max_body_bytes",
            "PATCH",
            &rec,
            Some(padded_object(MAX_BODY + 1)),
            413,
            "body_too_large",
        ),
        bad(
            "an array",
            "PUT",
            &rec,
            bytes(json!([1, 2])),
            400,
            "not_an_object",
        ),
        bad(
            "a string",
            "PUT",
            &rec,
            bytes(json!("lead")),
            400,
            "not_an_object",
        ),
        bad(
            "a number",
            "PUT",
            &rec,
            bytes(json!(42)),
            400,
            "not_an_object",
        ),
        bad(
            "null",
            "PUT",
            &rec,
            bytes(json!(null)),
            400,
            "not_an_object",
        ),
        bad(
            "nesting over api.max_json_depth",
            "PUT",
            &rec,
            bytes(nested(MAX_DEPTH + 1)),
            400,
            "too_deep",
        ),
        bad(
            "arrays nested over api.max_json_depth",
            "PUT",
            &rec,
            bytes(json!({"a": deep_array})),
            400,
            "too_deep",
        ),
        bad(
            "nesting past the JSON parser's own limit",
            "PUT",
            &rec,
            Some(very_deep),
            400,
            "malformed_json",
        ),
        bad(
            "an integer beyond i64",
            "PUT",
            &rec,
            Some(b"{\"n\": 9223372036854775808}".to_vec()),
            400,
            "invalid_value",
        ),
        bad(
            "an empty field name",
            "PUT",
            &rec,
            bytes(json!({"": 1})),
            400,
            "invalid_value",
        ),
        bad(
            "more fields than store.max_fields",
            "PUT",
            &rec,
            bytes(Value::Object(many_fields)),
            400,
            "too_many_fields",
        ),
        bad(
            "a record over store.max_record_bytes",
            "PUT",
            &rec,
            bytes(large_record),
            413,
            "record_too_large",
        ),
        // PATCH bodies of the wrong shape or types.
        bad(
            "PATCH without ops",
            "PATCH",
            &rec,
            bytes(json!({})),
            400,
            "invalid_body",
        ),
        bad(
            "PATCH with an unknown member",
            "PATCH",
            &rec,
            bytes(json!({"ops": [], "and": 1})),
            400,
            "invalid_body",
        ),
        bad(
            "ops not an array",
            "PATCH",
            &rec,
            bytes(json!({"ops": "set"})),
            400,
            "invalid_body",
        ),
        bad(
            "PATCH not an object",
            "PATCH",
            &rec,
            bytes(json!([{"op": "set"}])),
            400,
            "invalid_body",
        ),
        bad(
            "PATCH malformed",
            "PATCH",
            &rec,
            Some(b"{\"ops\": [".to_vec()),
            400,
            "malformed_json",
        ),
        bad(
            "PATCH nested too deep",
            "PATCH",
            &rec,
            bytes(json!({"ops": [{"op": "set", "field": "a", "value": nested(MAX_DEPTH)}]})),
            400,
            "too_deep",
        ),
        bad("no ops", "PATCH", &rec, ops(json!([])), 400, "invalid_ops"),
        bad(
            "an unknown op",
            "PATCH",
            &rec,
            ops(json!([{"op": "explode", "field": "n"}])),
            400,
            "invalid_body",
        ),
        bad(
            "an op without a name",
            "PATCH",
            &rec,
            ops(json!([{"field": "n"}])),
            400,
            "invalid_body",
        ),
        bad(
            "an op that is not an object",
            "PATCH",
            &rec,
            ops(json!(["set"])),
            400,
            "invalid_body",
        ),
        bad(
            "incr by text",
            "PATCH",
            &rec,
            ops(json!([{"op": "incr", "field": "c", "by": "one"}])),
            400,
            "invalid_body",
        ),
        bad(
            "incr by a fraction",
            "PATCH",
            &rec,
            ops(json!([{"op": "incr", "field": "c", "by": 1.5}])),
            400,
            "invalid_body",
        ),
        bad(
            "incr beyond i64",
            "PATCH",
            &rec,
            ops(json!([{"op": "incr", "field": "c", "by": u64::MAX}])),
            400,
            "invalid_body",
        ),
        bad(
            "a field that is a number",
            "PATCH",
            &rec,
            ops(json!([{"op": "set", "field": 5, "value": 1}])),
            400,
            "invalid_body",
        ),
        bad(
            "set without a value",
            "PATCH",
            &rec,
            ops(json!([{"op": "set", "field": "a"}])),
            400,
            "invalid_body",
        ),
        bad(
            "a member the op does not take",
            "PATCH",
            &rec,
            ops(json!([{"op": "enable", "field": "a", "value": 1}])),
            400,
            "invalid_body",
        ),
        bad(
            "set of an object",
            "PATCH",
            &rec,
            ops(json!([{"op": "set", "field": "a", "value": {"x": 1}}])),
            400,
            "invalid_ops",
        ),
        bad(
            "add of an object",
            "PATCH",
            &rec,
            ops(json!([{"op": "add", "field": "t", "value": {"x": 1}}])),
            400,
            "invalid_ops",
        ),
        bad(
            "an empty field",
            "PATCH",
            &rec,
            ops(json!([{"op": "set", "field": "", "value": 1}])),
            400,
            "invalid_ops",
        ),
        bad(
            "an empty path segment",
            "PATCH",
            &rec,
            ops(json!([{"op": "set", "field": "a..b", "value": 1}])),
            400,
            "invalid_ops",
        ),
        bad(
            "a set value beyond i64",
            "PATCH",
            &rec,
            Some(
                br#"{"ops": [{"op": "set", "field": "a", "value": 9223372036854775808}]}"#.to_vec(),
            ),
            400,
            "invalid_ops",
        ),
        bad(
            "more fields than store.max_fields by PATCH",
            "PATCH",
            &rec,
            ops(Value::Array(many_incrs)),
            400,
            "too_many_fields",
        ),
        // Keys and collections.
        bad(
            "an overlong key (GET)",
            "GET",
            record_path("bad", &long_key),
            None,
            400,
            "invalid_key",
        ),
        bad(
            "an overlong key (PUT)",
            "PUT",
            record_path("bad", &long_key),
            bytes(json!({"a": 1})),
            400,
            "invalid_key",
        ),
        bad(
            "an overlong key (PATCH)",
            "PATCH",
            record_path("bad", &long_key),
            ops(json!([{"op": "incr", "field": "c"}])),
            400,
            "invalid_key",
        ),
        bad(
            "an overlong key (DELETE)",
            "DELETE",
            record_path("bad", &long_key),
            None,
            400,
            "invalid_key",
        ),
        bad(
            "a key with a control character",
            "PUT",
            record_path("bad", "a\u{1}b"),
            bytes(json!({"a": 1})),
            400,
            "invalid_key",
        ),
        bad(
            "a key that is not UTF-8",
            "GET",
            "/v1/collections/bad/records/%FF%FE",
            None,
            400,
            "bad_path",
        ),
        bad(
            "a collection that is not UTF-8",
            "GET",
            "/v1/collections/%FF/records",
            None,
            400,
            "bad_path",
        ),
        bad(
            "a counter name that is not UTF-8",
            "GET",
            "/v1/counters/%FF",
            None,
            400,
            "bad_path",
        ),
        bad(
            "a counter name that is not UTF-8 (increment)",
            "POST",
            "/v1/counters/%FF/increment",
            bytes(json!({"by": 1})),
            400,
            "bad_path",
        ),
        bad(
            "a voter id that is not UTF-8",
            "DELETE",
            "/v1/counter-voters/%FF",
            None,
            400,
            "bad_path",
        ),
        bad(
            "an upper-case collection",
            "PUT",
            record_path("Leads", "k"),
            bytes(json!({"a": 1})),
            400,
            "invalid_collection",
        ),
        bad(
            "a collection starting with a digit",
            "PUT",
            record_path("1leads", "k"),
            bytes(json!({"a": 1})),
            400,
            "invalid_collection",
        ),
        bad(
            "a collection with a space",
            "GET",
            record_path("le ads", "k"),
            None,
            400,
            "invalid_collection",
        ),
        bad(
            "an overlong collection",
            "GET",
            record_path(&"c".repeat(65), "k"),
            None,
            400,
            "invalid_collection",
        ),
        bad(
            "a collection listed with a bad name",
            "GET",
            "/v1/collections/Bad/records",
            None,
            400,
            "invalid_collection",
        ),
        bad(
            "the system collection (GET)",
            "GET",
            record_path("_members", "k"),
            None,
            400,
            "invalid_collection",
        ),
        bad(
            "the system collection (PUT)",
            "PUT",
            record_path("_members", "k"),
            bytes(json!({"a": 1})),
            400,
            "invalid_collection",
        ),
        bad(
            "the system collection (PATCH)",
            "PATCH",
            record_path("_members", "k"),
            ops(json!([{"op": "incr", "field": "c"}])),
            400,
            "invalid_collection",
        ),
        bad(
            "the system collection (DELETE)",
            "DELETE",
            record_path("_members", "k"),
            None,
            400,
            "invalid_collection",
        ),
        bad(
            "the system collection (list)",
            "GET",
            "/v1/collections/_members/records",
            None,
            400,
            "invalid_collection",
        ),
        // Query strings.
        bad(
            "conflicts not a boolean",
            "GET",
            format!("{rec}?conflicts=maybe"),
            None,
            400,
            "bad_query",
        ),
        bad(
            "an unknown record parameter",
            "GET",
            format!("{rec}?fields=a"),
            None,
            400,
            "bad_query",
        ),
        bad(
            "list limit 0",
            "GET",
            "/v1/collections/bad/records?limit=0",
            None,
            400,
            "bad_query",
        ),
        bad(
            "list limit over 1000",
            "GET",
            "/v1/collections/bad/records?limit=1001",
            None,
            400,
            "bad_query",
        ),
        bad(
            "list limit not a number",
            "GET",
            "/v1/collections/bad/records?limit=ten",
            None,
            400,
            "bad_query",
        ),
        bad(
            "an unknown list parameter",
            "GET",
            "/v1/collections/bad/records?sort=desc",
            None,
            400,
            "bad_query",
        ),
        bad(
            "since negative",
            "GET",
            "/v1/changes?since=-1",
            None,
            400,
            "bad_query",
        ),
        bad(
            "since beyond u64",
            "GET",
            "/v1/changes?since=18446744073709551616",
            None,
            400,
            "bad_query",
        ),
        bad(
            "changes limit 0",
            "GET",
            "/v1/changes?limit=0",
            None,
            400,
            "bad_query",
        ),
        bad(
            "changes limit over 10000",
            "GET",
            "/v1/changes?limit=10001",
            None,
            400,
            "bad_query",
        ),
        bad(
            "wait over 60 s",
            "GET",
            "/v1/changes?wait=61",
            None,
            400,
            "bad_query",
        ),
        bad(
            "wait negative",
            "GET",
            "/v1/changes?wait=-1",
            None,
            400,
            "bad_query",
        ),
        bad(
            "wait NaN",
            "GET",
            "/v1/changes?wait=NaN",
            None,
            400,
            "bad_query",
        ),
        bad(
            "wait infinite",
            "GET",
            "/v1/changes?wait=inf",
            None,
            400,
            "bad_query",
        ),
        bad(
            "wait not a number",
            "GET",
            "/v1/changes?wait=soon",
            None,
            400,
            "bad_query",
        ),
        // Routes and methods.
        bad(
            "an unknown route",
            "GET",
            "/v1/nothing-here",
            None,
            404,
            "not_found",
        ),
        bad(
            "a route without /v1",
            "GET",
            "/collections",
            None,
            404,
            "not_found",
        ),
        bad(
            "an undocumented method",
            "POST",
            "/v1/collections",
            bytes(json!({})),
            405,
            "method_not_allowed",
        ),
        bad(
            "PUT on a listing",
            "PUT",
            "/v1/collections/bad/records",
            bytes(json!({})),
            405,
            "method_not_allowed",
        ),
    ];
    let mut failures = Vec::new();
    for case in &cases {
        let reply = api.send(case.method, &case.path, case.body.as_deref());
        let well_formed = reply
            .content_type
            .as_deref()
            .is_some_and(|t| t.starts_with("application/json"))
            && serde_json::from_str::<Value>(&reply.body).is_ok_and(|body| {
                body.as_object().is_some_and(|o| o.len() == 2)
                    && body["error"] == case.code
                    && body["message"].as_str().is_some_and(|m| !m.is_empty())
            });
        if reply.status != case.status || !well_formed {
            failures.push(format!(
                "{} ({} {}): expected {} {}, got {} {:?} {}",
                case.what,
                case.method,
                case.path.chars().take(80).collect::<String>(),
                case.status,
                case.code,
                reply.status,
                reply.content_type,
                reply.body.chars().take(300).collect::<String>()
            ));
        }
        assert!(
            reply.status < 500,
            "{}: a 5xx for bad input: {reply:?}",
            case.what
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {} bad requests were not refused as expected:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    // Nothing was written by any of them, and the node is well.
    assert_eq!(api.record("bad", "k"), Some(json!({"n": 1})));
    assert_eq!(
        api.get("/v1/collections/bad/records").json()["records"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(api.get("/health").status, 200);
}

#[test]
fn limits_admit_what_is_exactly_at_them() {
    let api = api();
    let body = padded_object(MAX_BODY);
    let reply = api.send("PUT", &record_path("limits", "body"), Some(&body));
    // The body is within api.max_body_bytes; the record is over
    // store.max_record_bytes, which is the store's refusal, not the API's.
    assert_eq!(reply.status, 413, "{reply:?}");
    assert_eq!(reply.json()["error"], "record_too_large", "{reply:?}");
    let reply = api.send(
        "PUT",
        &record_path("limits", "record"),
        Some(&padded_object(MAX_RECORD / 2)),
    );
    assert_eq!(reply.status, 200, "{reply:?}");
    let reply = api.send_json("PUT", &record_path("limits", "deep"), &nested(MAX_DEPTH));
    assert_eq!(reply.status, 200, "nesting at the limit: {reply:?}");
    let key = "k".repeat(MAX_KEY);
    let reply = api.send_json("PUT", &record_path("limits", &key), &json!({"a": 1}));
    assert_eq!(reply.status, 200, "a key at the limit: {reply:?}");
    let fields: serde_json::Map<String, Value> = (0..MAX_FIELDS)
        .map(|i| (format!("f{i}"), json!(i)))
        .collect();
    let reply = api.send_json(
        "PUT",
        &record_path("limits", "fields"),
        &Value::Object(fields),
    );
    assert_eq!(reply.status, 200, "fields at the limit: {reply:?}");
}

#[test]
fn an_op_whose_type_conflicts_with_the_field_gets_409() {
    let api = api();
    let rec = record_path("kinds", "k");
    api.put(
        "kinds",
        "k",
        &json!({"name": "Ada", "address": {"city": "Oslo"}}),
    );
    let setup = api.send_json(
        "PATCH",
        &rec,
        &json!({"ops": [
            {"op": "incr", "field": "visits"},
            {"op": "add", "field": "tags", "value": "t"},
            {"op": "enable", "field": "vip"},
        ]}),
    );
    assert_eq!(setup.status, 200, "{setup:?}");
    let before = api.record("kinds", "k").unwrap();
    let conflicts = [
        json!({"op": "incr", "field": "name"}),
        json!({"op": "add", "field": "name", "value": 1}),
        json!({"op": "enable", "field": "name"}),
        json!({"op": "set", "field": "visits", "value": 1}),
        json!({"op": "remove", "field": "visits", "value": 1}),
        json!({"op": "disable", "field": "tags"}),
        json!({"op": "incr", "field": "vip"}),
        json!({"op": "set", "field": "vip", "value": true}),
        // A value where a nested map is, and a field under a value.
        json!({"op": "set", "field": "address", "value": "Oslo"}),
        json!({"op": "incr", "field": "name.length"}),
    ];
    for op in conflicts {
        let reply = api.send_json("PATCH", &rec, &json!({"ops": [op.clone()]}));
        reply.assert_error(409, "field_type_conflict", &op.to_string());
        // The same op after a valid one in the same PATCH: nothing applies.
        let reply = api.send_json(
            "PATCH",
            &rec,
            &json!({"ops": [{"op": "incr", "field": "visits"}, op.clone()]}),
        );
        reply.assert_error(409, "field_type_conflict", &op.to_string());
    }
    assert_eq!(
        api.record("kinds", "k"),
        Some(before),
        "refused PATCHes change nothing"
    );
    // Unset first, then the new type, in one PATCH: accepted.
    let reply = api.send_json(
        "PATCH",
        &rec,
        &json!({"ops": [{"op": "unset", "field": "name"}, {"op": "incr", "field": "name", "by": 2},
                         {"op": "unset", "field": "address"}, {"op": "set", "field": "address", "value": "Oslo"}]}),
    );
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json()["value"]["name"], 2, "{reply:?}");
    assert_eq!(reply.json()["value"]["address"], "Oslo", "{reply:?}");
    // A PUT replaces the record, types and all.
    api.put("kinds", "k", &json!({"visits": "many"}));
    assert_eq!(api.record("kinds", "k"), Some(json!({"visits": "many"})));
}

#[test]
fn conflicts_true_shows_concurrent_values_winner_first() {
    let api = api();
    api.put("siblings", "k", &json!({"stage": "new", "owner": "ann"}));
    // A write made at another replica that had not seen ours, later in
    // time: it wins, and ours survives as a sibling.
    let other = ReplicaId(0x5eed_5eed_5eed_5eed);
    let later = Timestamp::from_millis(trellis_crdt::wall_clock_millis() + 1000);
    let remote = Record::from_json(&json!({"stage": "won"}), other, later).unwrap();
    let store = harness().node.gossip().store().clone();
    harness()
        .runtime
        .block_on(store.merge(
            "siblings",
            "k",
            remote,
            Origin {
                replica: other,
                time: later,
                full_state: false,
            },
        ))
        .unwrap();

    let plain = api.get(&record_path("siblings", "k"));
    assert_eq!(plain.status, 200, "{plain:?}");
    assert_eq!(
        plain.json(),
        json!({"key": "k", "value": {"stage": "won", "owner": "ann"}})
    );
    let with = api.get(&format!("{}?conflicts=true", record_path("siblings", "k")));
    assert_eq!(with.status, 200, "{with:?}");
    assert_eq!(
        with.json(),
        json!({"key": "k", "value": {"stage": "won", "owner": "ann"},
               "conflicts": {"stage": ["won", "new"]}})
    );
    let without = api.get(&format!("{}?conflicts=false", record_path("siblings", "k")));
    assert_eq!(without.json(), plain.json());
    // A later local write observes both and settles the register.
    api.send_json(
        "PATCH",
        &record_path("siblings", "k"),
        &json!({"ops": [{"op": "set", "field": "stage", "value": "lost"}]}),
    );
    let settled = api.get(&format!("{}?conflicts=true", record_path("siblings", "k")));
    assert_eq!(
        settled.json(),
        json!({"key": "k", "value": {"stage": "lost", "owner": "ann"}, "conflicts": {}})
    );
}

fn last_seq(api: &Http) -> u64 {
    api.get("/v1/status").json()["node"]["last_seq"]
        .as_u64()
        .unwrap()
}

#[test]
fn the_change_feed_pages_by_since_and_limit_and_long_polls() {
    let api = api();
    let start = last_seq(&api);
    for key in ["a", "b", "c", "d", "e"] {
        api.put("feed", key, &json!({"k": key}));
    }
    assert_eq!(
        api.send("DELETE", &record_path("feed", "c"), None).status,
        200
    );
    // Other tests write concurrently: read everything since `start` and
    // keep this test's collection.
    let all = api.changes(start, 10_000);
    let seqs: Vec<u64> = all.iter().map(|c| c["seq"].as_u64().unwrap()).collect();
    let expected: Vec<u64> = (start + 1..=start + seqs.len() as u64).collect();
    assert_eq!(
        seqs, expected,
        "sequence numbers go up by one, from since+1"
    );
    let ours: Vec<&Value> = all.iter().filter(|c| c["collection"] == "feed").collect();
    let keys: Vec<&str> = ours.iter().map(|c| c["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["a", "b", "c", "d", "e", "c"]);
    for change in &ours {
        let fields: BTreeSet<&str> = change
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        for field in ["seq", "collection", "key", "origin", "origin_time_ms"] {
            assert!(fields.contains(field), "{field} in {change}");
        }
        assert_eq!(
            change["origin"], "api-site",
            "the origin is the site's name"
        );
        assert!(change["origin_time_ms"].as_u64().unwrap() > 1_700_000_000_000);
    }
    let reply = api.get(&format!("/v1/changes?since={start}"));
    assert!(
        reply
            .content_type
            .as_deref()
            .is_some_and(|t| t.starts_with("application/x-ndjson")),
        "{reply:?}"
    );
    assert!(reply.body.ends_with('\n'), "one line per change");

    // `limit` pages; `since` resumes exactly after the last seq seen.
    let mut paged = Vec::new();
    let mut since = start;
    while since < start + seqs.len() as u64 {
        let page = api.changes(since, 2);
        assert!(!page.is_empty() && page.len() <= 2, "{page:?}");
        since = page.last().unwrap()["seq"].as_u64().unwrap();
        paged.extend(page);
    }
    // (Other tests may have written since: the pages go on past `all`.)
    assert_eq!(&paged[..all.len()], &all[..]);
    let past_the_end = api.get("/v1/changes?since=18446744073709551615");
    assert_eq!(past_the_end.status, 200);
    assert_eq!(past_the_end.body, "");

    // A short wait with nothing new answers empty.
    let now = api.changes(0, 10_000).last().unwrap()["seq"]
        .as_u64()
        .unwrap();
    let quiet = api.get(&format!("/v1/changes?since={}&wait=0.2", now + 1_000_000));
    assert_eq!((quiet.status, quiet.body.as_str()), (200, ""));

    // A long poll is answered by a change made while it waits.
    let (sent, received) = mpsc::channel();
    let poller = api.clone();
    let since = last_seq(&api);
    std::thread::spawn(move || {
        let reply = poller.get(&format!("/v1/changes?since={since}&wait=60"));
        let _ = sent.send(reply);
    });
    api.put("feed", "woken", &json!({"k": "woken"}));
    let reply = received
        .recv_timeout(Duration::from_secs(30))
        .expect("a long poll (wait=60) did not answer within 30 s of a new change");
    assert_eq!(reply.status, 200, "{reply:?}");
    let lines = reply.ndjson();
    assert!(!lines.is_empty(), "a long poll answered with no change");
    assert!(
        lines.iter().all(|c| c["seq"].as_u64().unwrap() > since),
        "{lines:?}"
    );
    // Other tests may have woken it first; the change is in the feed.
    let after = api.changes(since, 10_000);
    assert!(
        after
            .iter()
            .any(|c| c["collection"] == "feed" && c["key"] == "woken"),
        "{after:?}"
    );
}

#[test]
fn bearer_tokens_guard_every_route_but_health() {
    let api = api();
    let anonymous = api.with_token(None);
    let wrong = api.with_token(Some("not-the-token-0123456789"));
    let routes = [
        ("GET", "/v1/collections".to_owned()),
        ("GET", "/v1/collections/auth/records".to_owned()),
        ("GET", record_path("auth", "k")),
        ("PUT", record_path("auth", "k")),
        ("PATCH", record_path("auth", "k")),
        ("DELETE", record_path("auth", "k")),
        ("GET", "/v1/changes".to_owned()),
        ("GET", "/v1/status".to_owned()),
        ("GET", "/v1/openapi.json".to_owned()),
        ("GET", "/metrics".to_owned()),
    ];
    for (method, path) in &routes {
        let body = matches!(*method, "PUT" | "PATCH").then(|| b"{\"ops\": []}".to_vec());
        for (client, what) in [(&anonymous, "no token"), (&wrong, "a wrong token")] {
            let reply = client.send(method, path, body.as_deref());
            reply.assert_error(401, "unauthorized", &format!("{method} {path} with {what}"));
            assert_eq!(
                reply.www_authenticate.as_deref(),
                Some("Bearer"),
                "{reply:?}"
            );
        }
    }
    // The scheme is Bearer; the token alone, or another scheme, is refused.
    for header in [TOKEN.to_owned(), format!("Basic {TOKEN}")] {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let status = agent
            .get(format!("{}/v1/status", api.base()))
            .header("Authorization", &header)
            .call()
            .unwrap()
            .status()
            .as_u16();
        assert_eq!(status, 401, "Authorization: {header}");
    }
    assert_eq!(
        api.put("auth", "k", &json!({"a": 1}))["value"],
        json!({"a": 1})
    );
    assert_eq!(api.record("auth", "k"), Some(json!({"a": 1})));
    let health = anonymous.get("/health");
    assert_eq!(health.status, 200, "{health:?}");
    assert_eq!(health.json(), json!({"status": "ok"}));
}

#[test]
fn metrics_parse_as_prometheus_text_and_hold_the_documented_families() {
    let api = api();
    let scrape = |api: &Http| {
        let reply = api.get("/metrics");
        assert_eq!(reply.status, 200, "{reply:?}");
        assert!(
            reply
                .content_type
                .as_deref()
                .is_some_and(|t| t.starts_with("text/plain")
                    || t.starts_with("application/openmetrics-text")),
            "{reply:?}"
        );
        reply.body
    };
    let before = scrape(&api);
    for key in ["m1", "m2", "m3"] {
        api.put("metrics", key, &json!({"k": key}));
    }
    let text = scrape(&api);
    let types = check_exposition_format(&text);
    for (family, kind) in [
        ("trellis_store_writes_total", "counter"),
        ("trellis_store_batches_total", "counter"),
        ("trellis_peer_merges_total", "counter"),
        ("trellis_peer_antientropy_rounds_total", "counter"),
        ("trellis_peer_bytes_in_total", "counter"),
        ("trellis_peer_bytes_out_total", "counter"),
        ("trellis_peer_records_repaired_total", "counter"),
        ("trellis_peer_up", "gauge"),
        ("trellis_peer_last_sync_age_seconds", "gauge"),
        ("trellis_propagation_delay_seconds", "histogram"),
        ("trellis_records", "gauge"),
        ("trellis_change_seq", "gauge"),
    ] {
        assert_eq!(
            types.get(family).map(String::as_str),
            Some(kind),
            "family {family} in:\n{text}"
        );
    }

    let lines = |text: &str| text.lines().map(|l| Ok(l.to_owned())).collect::<Vec<_>>();
    let parsed = prometheus_parse::Scrape::parse(lines(&text).into_iter()).unwrap();
    let earlier = prometheus_parse::Scrape::parse(lines(&before).into_iter()).unwrap();
    let sample = |scrape: &prometheus_parse::Scrape, name: &str, label: (&str, &str)| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && s.labels.get(label.0) == Some(label.1))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                ref other => panic!("{name} is not a plain value: {other:?}"),
            })
            .unwrap_or_else(|| {
                panic!(
                    "no sample {name}{{{}=\"{}\"}} in:\n{text}",
                    label.0, label.1
                )
            })
    };
    let writes = sample(&parsed, "trellis_store_writes_total", ("site", "api-site"));
    let writes_before = sample(&earlier, "trellis_store_writes_total", ("site", "api-site"));
    assert!(
        writes >= writes_before + 3.0,
        "three writes counted: {writes_before} then {writes}"
    );
    assert_eq!(
        sample(&parsed, "trellis_records", ("collection", "metrics")),
        3.0
    );
    let seq = sample(&parsed, "trellis_change_seq", ("site", "api-site"));
    assert!(seq >= 3.0, "{seq}");
    assert!(
        parsed
            .docs
            .contains_key("trellis_propagation_delay_seconds"),
        "HELP of the histogram"
    );
}

/// The methods an OpenAPI path item may hold.
const METHODS: [&str; 5] = ["get", "put", "patch", "delete", "post"];

/// A documented path with every `{parameter}` filled in.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|segment| match segment {
            "{collection}" => "openapi",
            "{key}" => "k",
            s if s.starts_with('{') => "x1",
            s => s,
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[test]
fn the_openapi_document_and_the_router_agree() {
    let api = api();
    let served = api.get("/v1/openapi.json");
    assert_eq!(served.status, 200, "{served:?}");
    let document = served.json();
    assert_eq!(document, trellis_node::api::openapi_document());
    assert_eq!(
        document,
        serde_json::from_str::<Value>(trellis_node::api::OPENAPI_JSON).unwrap()
    );
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    let paths = document["paths"].as_object().unwrap();

    // The router's paths, from its source.
    let source = include_str!("../src/api/mod.rs");
    let routed: BTreeSet<String> = source
        .split(".route(")
        .skip(1)
        .map(|rest| {
            let rest = rest.trim_start();
            let rest = rest.strip_prefix('"').expect("a route path is a literal");
            rest[..rest.find('"').unwrap()].to_owned()
        })
        .collect();
    let documented: BTreeSet<String> = paths.keys().cloned().collect();
    assert_eq!(
        routed, documented,
        "src/api/mod.rs routes vs api/openapi.json paths"
    );

    let no_route = api.get("/v1/no-route-here");
    no_route.assert_error(404, "not_found", "the fallback");
    api.put("openapi", "k", &json!({"a": 1}));
    for (path, item) in paths {
        let url = concrete(path);
        for method in METHODS {
            let body = matches!(method, "put" | "patch" | "post").then(|| {
                if method == "patch" {
                    b"{\"ops\": [{\"op\": \"set\", \"field\": \"a\", \"value\": 2}]}".to_vec()
                } else {
                    b"{\"a\": 1}".to_vec()
                }
            });
            let reply = api.send(&method.to_uppercase(), &url, body.as_deref());
            if let Some(operation) = item.get(method) {
                assert_ne!(
                    reply.body, no_route.body,
                    "{method} {path} is documented but no route serves it"
                );
                assert!(
                    !reply.body.contains("method_not_allowed"),
                    "{method} {path} is documented but answers {reply:?}"
                );
                let statuses = operation["responses"].as_object().unwrap();
                assert!(
                    statuses.contains_key(&reply.status.to_string()),
                    "{method} {path} answers {}, which its responses ({:?}) do not document: {reply:?}",
                    reply.status,
                    statuses.keys().collect::<Vec<_>>()
                );
                // Put the record back for the next method.
                if method == "delete" {
                    api.put("openapi", "k", &json!({"a": 1}));
                }
            } else {
                reply.assert_error(
                    405,
                    "method_not_allowed",
                    &format!("{method} {path}, not documented"),
                );
            }
        }
    }
}

#[test]
fn status_describes_the_node_and_its_collections() {
    let api = api();
    api.put("status-a", "1", &json!({"a": 1}));
    let reply = api.get("/v1/status");
    assert_eq!(reply.status, 200, "{reply:?}");
    let status = reply.json();
    assert_eq!(status["node"]["name"], "api-site", "{status}");
    assert_eq!(status["node"]["id"].as_str().unwrap().len(), 16, "{status}");
    assert!(status["node"]["last_seq"].as_u64().unwrap() >= 1);
    assert_eq!(status["peers"], json!([]), "a node on its own has no peers");
    let ours = status["collections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "status-a")
        .unwrap_or_else(|| panic!("{status}"))
        .clone();
    assert_eq!(ours["count"], 1, "{ours}");
    assert_eq!(ours["digest"].as_str().unwrap().len(), 64, "{ours}");
    // The digest follows the contents.
    api.put("status-a", "2", &json!({"a": 2}));
    let status = api.get("/v1/status").json();
    let again = status["collections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "status-a")
        .unwrap()
        .clone();
    assert_eq!(again["count"], 2);
    assert_ne!(again["digest"], ours["digest"]);
}

#[test]
fn a_consumer_behind_the_retained_change_feed_gets_410_and_can_start_over() {
    let small = start_node("feed-retention", |config| {
        config.store.change_retention = 10;
    });
    let api = Http::new(&small.node.api_url(), None);
    for i in 0..30 {
        api.put("retained", &format!("k{i:02}"), &json!({"i": i}));
    }
    let last = api.get("/v1/status").json()["node"]["last_seq"]
        .as_u64()
        .unwrap();
    assert!(last >= 30, "{last}");
    api.get("/v1/changes?since=0").assert_error(
        410,
        "changes_truncated",
        "a feed read from before the retained range",
    );
    let kept = api.changes(last - 10, 100);
    let seqs: Vec<u64> = kept.iter().map(|c| c["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (last - 9..=last).collect::<Vec<_>>());
    // Starting over: the records themselves are all there, by listing.
    let page = api.get("/v1/collections/retained/records?limit=100").json();
    assert_eq!(page["records"].as_array().unwrap().len(), 30);
    small.runtime.block_on(small.node.shutdown());
}

#[test]
fn delete_is_an_observed_remove_a_concurrent_update_survives() {
    let api = api();
    let path = record_path("observed", "k");
    api.put("observed", "k", &json!({"name": "Ada", "stage": "new"}));
    assert_eq!(api.send("DELETE", &path, None).status, 200);
    api.get(&path)
        .assert_error(404, "not_found", "after the delete");
    // An update made at another replica that had not seen the delete (nor
    // the write before it) arrives afterwards: it survives the delete.
    let other = ReplicaId(0x0bad_cafe_0bad_cafe);
    let time = Timestamp::from_millis(trellis_crdt::wall_clock_millis());
    let concurrent = Record::from_json(&json!({"stage": "won"}), other, time).unwrap();
    let store = harness().node.gossip().store().clone();
    harness()
        .runtime
        .block_on(store.merge(
            "observed",
            "k",
            concurrent,
            Origin {
                replica: other,
                time,
                full_state: false,
            },
        ))
        .unwrap();
    assert_eq!(
        api.record("observed", "k"),
        Some(json!({"stage": "won"})),
        "the fields the delete observed stay deleted; the concurrent one survives"
    );
    let listed = api.get("/v1/collections/observed/records").json();
    assert_eq!(listed["records"][0]["key"], "k", "{listed}");
}

#[test]
fn the_exposition_check_refuses_malformed_metrics() {
    let good = "# HELP t_total Things.\n# TYPE t_total counter\nt_total{site=\"a \\\"b\\\"\"} 3\n\
                # TYPE d histogram\nd_bucket{p=\"x\",le=\"0.1\"} 1\nd_bucket{p=\"x\",le=\"+Inf\"} 2\n\
                d_sum{p=\"x\"} 0.3\nd_count{p=\"x\"} 2\n# EOF\n";
    check_exposition_format(good);
    let bad = [
        ("a sample of no declared family", "x 1\n"),
        ("a bad value", "# TYPE g gauge\ng{a=\"b\"} one\n"),
        ("an unterminated label", "# TYPE g gauge\ng{a=\"b} 1\n"),
        ("a bad escape", "# TYPE g gauge\ng{a=\"\\x\"} 1\n"),
        ("TYPE twice", "# TYPE g gauge\n# TYPE g gauge\ng 1\n"),
        ("a negative counter", "# TYPE c counter\nc_total -1\n"),
        (
            "buckets not cumulative",
            "# TYPE d histogram\nd_bucket{le=\"0.1\"} 2\nd_bucket{le=\"+Inf\"} 1\nd_count 1\n",
        ),
        (
            "+Inf is not the count",
            "# TYPE d histogram\nd_bucket{le=\"0.1\"} 1\nd_bucket{le=\"+Inf\"} 12\nd_count 2\n",
        ),
    ];
    for (what, text) in bad {
        let refused = std::panic::catch_unwind(|| check_exposition_format(text)).is_err();
        assert!(refused, "{what} was accepted: {text:?}");
    }
}
