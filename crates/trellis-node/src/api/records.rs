//! Records and collections.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use trellis_crdt::Record;
use trellis_store::{is_system_collection, Mutation, Scan, Store};

use super::patch::{check_kinds, parse_patch};
use super::wait::{answer_write, wait_after, WriteQuery};
use super::{input, ApiError, AppState};

/// Checks a collection name and (if given) a key against the store's
/// rules, and refuses system collections (`_members`), which Trellis
/// itself writes.
fn check_target(state: &AppState, collection: &str, key: Option<&str>) -> Result<(), ApiError> {
    if is_system_collection(collection) {
        return Err(ApiError::bad_request(
            "invalid_collection",
            format!(
                "{collection:?} is a system collection, kept by Trellis itself; \
                 collection names start with a letter"
            ),
        ));
    }
    state.limits.check_collection(collection)?;
    if let Some(key) = key {
        state.limits.check_key(key)?;
    }
    Ok(())
}

fn record_json(key: &str, record: &Record) -> Value {
    json!({"key": key, "value": record.to_json()})
}

/// `PUT /v1/collections/{c}/records/{key}`: replace the record with a
/// JSON object.
pub async fn put_record(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<WriteQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (collection, key) = input::path(path)?;
    let query = input::query(query)?;
    check_target(&state, &collection, Some(&key))?;
    let value = input::json(body, &state)?;
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "not_an_object",
            "the body must be a JSON object of fields, e.g. {\"name\": \"Ada\"}",
        ));
    }
    let mutation = Mutation::Put(value);
    answer_write(&state, &collection, &key, mutation, query, |record| {
        record_json(&key, record)
    })
    .await
}

/// `PATCH /v1/collections/{c}/records/{key}`: apply `{"ops": [...]}`.
pub async fn patch_record(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<WriteQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (collection, key) = input::path(path)?;
    let query = input::query(query)?;
    check_target(&state, &collection, Some(&key))?;
    let ops = parse_patch(input::json(body, &state)?)?;
    let current = state.store().get(&collection, &key)?;
    check_kinds(current.as_ref(), &ops)?;
    let mutation = Mutation::Patch(ops);
    answer_write(&state, &collection, &key, mutation, query, |record| {
        record_json(&key, record)
    })
    .await
}

/// Query of `GET …/records/{key}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetQuery {
    /// Also return the concurrent siblings of each register.
    #[serde(default)]
    conflicts: bool,
    /// A token a write returned: answer only once this site has it.
    after: Option<String>,
    /// How long to wait for `after`, e.g. `5s`; default 5 s.
    timeout: Option<String>,
}

/// `GET /v1/collections/{c}/records/{key}`: the record, or 404.
pub async fn get_record(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<GetQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let (collection, key) = input::path(path)?;
    let query = input::query(query)?;
    check_target(&state, &collection, Some(&key))?;
    if let Some(token) = &query.after {
        wait_after(&state, token, query.timeout.as_deref()).await?;
    }
    let record = state
        .store()
        .get(&collection, &key)?
        .filter(Record::exists)
        .ok_or_else(|| ApiError::not_found(format!("no record {key:?} in {collection:?}")))?;
    let mut body = record_json(&key, &record);
    if query.conflicts {
        body["conflicts"] = conflicts(&record);
    }
    Ok(Json(body))
}

/// Every register with concurrent values: dotted field → all values, the
/// winner first.
fn conflicts(record: &Record) -> Value {
    let mut found = Map::new();
    for (path, field) in record.fields() {
        let winner = field.register.winning();
        let mut values: Vec<_> = field
            .register
            .siblings()
            .map(|(_, stamped)| stamped)
            .collect();
        if values.len() < 2 {
            continue;
        }
        values.sort_by_key(|stamped| !winner.is_some_and(|w| std::ptr::eq(w, *stamped)));
        let rendered = values
            .iter()
            .map(|stamped| stamped.value.to_json())
            .collect();
        found.insert(path.to_string(), Value::Array(rendered));
    }
    Value::Object(found)
}

/// `DELETE /v1/collections/{c}/records/{key}`: an observed remove.
pub async fn delete_record(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<WriteQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let (collection, key) = input::path(path)?;
    let query = input::query(query)?;
    check_target(&state, &collection, Some(&key))?;
    let existed = state
        .store()
        .get(&collection, &key)?
        .is_some_and(|record| record.exists());
    if !existed {
        return Err(ApiError::not_found(format!(
            "no record {key:?} in {collection:?}"
        )));
    }
    answer_write(
        &state,
        &collection,
        &key,
        Mutation::Delete,
        query,
        |_| json!({"key": key, "deleted": true}),
    )
    .await
}

/// Query of the listing.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only keys starting with this.
    #[serde(default)]
    prefix: String,
    /// Only keys after this one (the previous page's `next`).
    after: Option<String>,
    /// At most this many records; default 100, at most 1000.
    limit: Option<usize>,
}

/// The most records one page returns.
const MAX_PAGE: usize = 1000;

/// `GET /v1/collections/{c}/records`: live records in key order, a page
/// at a time.
pub async fn list(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let collection = input::path(path)?;
    let query = input::query(query)?;
    check_target(&state, &collection, None)?;
    let limit = query.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::bad_request(
            "bad_query",
            format!("limit must be between 1 and {MAX_PAGE}"),
        ));
    }
    let page = state.store().scan(
        &collection,
        &Scan {
            prefix: query.prefix,
            after: query.after,
            limit,
        },
    )?;
    let records: Vec<Value> = page
        .records
        .iter()
        .map(|(key, record)| record_json(key, record))
        .collect();
    Ok(Json(json!({"records": records, "next": page.next})))
}

/// `GET /v1/collections`: every collection with its record count.
pub async fn collections(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let collections: Vec<Value> = state
        .store()
        .collections()?
        .into_iter()
        .filter(|info| !is_system_collection(&info.name))
        .map(|info| json!({"name": info.name, "count": info.live}))
        .collect();
    Ok(Json(json!({"collections": collections})))
}
