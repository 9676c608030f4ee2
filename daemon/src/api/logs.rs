//! Log endpoints: a build's or a release's timeline, from any sequence number on and
//! followed while it is written, as text, NDJSON records or server-sent events (which
//! resume from `Last-Event-ID`); an app's runtime output; the pre-receive hook's stream.

use super::{ApiError, ApiResult, ApiState};
use crate::access::Caller;
use crate::logs::{Follower, Record};
use crate::pipeline::Outcome;
use crate::receive::HookMessage;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::sync::oneshot;

/// `?follow=true&after=SEQ&format=text|ndjson|sse` (the format otherwise comes from `Accept`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LogQuery {
    follow: Option<String>,
    after: Option<u64>,
    format: Option<String>,
    /// Runtime logs only: how many of the last lines to start with.
    tail: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Text,
    Ndjson,
    Sse,
}

impl LogQuery {
    fn format(&self, headers: &HeaderMap) -> ApiResult<Format> {
        let accept = headers.get(header::ACCEPT).and_then(|h| h.to_str().ok()).unwrap_or("");
        match self.format.as_deref() {
            Some("text") => Ok(Format::Text),
            Some("ndjson") => Ok(Format::Ndjson),
            Some("sse") => Ok(Format::Sse),
            Some(other) => Err(ApiError::BadRequest(format!("unknown log format {other:?}: use text, ndjson or sse"))),
            None if accept.contains("text/event-stream") => Ok(Format::Sse),
            None if accept.contains("application/x-ndjson") => Ok(Format::Ndjson),
            None => Ok(Format::Text),
        }
    }

    /// Server-sent events follow unless told not to; the others only when asked.
    fn follow(&self, format: Format) -> bool {
        match self.follow.as_deref() {
            Some(value) => !matches!(value, "false" | "0" | "no"),
            None => format == Format::Sse,
        }
    }

    /// Where to start: after `Last-Event-ID` (an SSE client reconnecting), else `after`.
    fn after(&self, headers: &HeaderMap) -> u64 {
        headers
            .get("last-event-id")
            .and_then(|h| h.to_str().ok())
            .and_then(|id| id.trim().parse().ok())
            .or(self.after)
            .unwrap_or(0)
    }
}

/// What a timeline belongs to, for its closing status.
#[derive(Debug, Clone)]
enum Owner {
    Build(i64),
    Release(crate::app::AppName, i64),
}

impl Owner {
    fn status(&self, state: &ApiState) -> serde_json::Value {
        let status = match self {
            Owner::Build(id) => state.apps.build_status(*id),
            Owner::Release(app, number) => state.apps.release_status(app, *number),
        };
        serde_json::json!({ "status": status })
    }
}

/// `GET /api/v1/apps/{app}/builds/{id}/log`.
pub(super) async fn build_log(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path((app, id)): Path<(String, String)>,
    Query(query): Query<LogQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (app, build) = state.apps.build(&caller, &app, &id)?;
    let path = state.apps.build_log(&app.name, build.id);
    timeline(state, &path, &format!("build {}", build.id), Owner::Build(build.id), query, headers).await
}

/// `GET /api/v1/apps/{app}/releases/{number}/log`.
pub(super) async fn release_log(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path((app, number)): Path<(String, String)>,
    Query(query): Query<LogQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (app, release) = state.apps.release(&caller, &app, &number)?;
    let number = release.number;
    let path = state.apps.release_log(&app.name, number);
    let owner = Owner::Release(app.name.clone(), number);
    timeline(state, &path, &format!("release {number}"), owner, query, headers).await
}

async fn timeline(
    state: Arc<ApiState>,
    path: &std::path::Path,
    what: &str,
    owner: Owner,
    query: LogQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let format = query.format(&headers)?;
    let follower = state
        .logs
        .follow(path, query.after(&headers), query.follow(format))
        .await
        .map_err(|e| ApiError::Internal(format!("cannot read {}: {e}", path.display())))?
        .ok_or_else(|| ApiError::NotFound(format!("the log of {what} is missing (deleted, or never written)")))?;
    let records = follower.into_stream().filter_map(|record| async move {
        // A read error ends the stream: the file is gone (the app was deleted).
        record.ok()
    });
    let end = async move { owner.status(&state) };
    Ok(respond(format, records, end))
}

/// Records in the asked format; `end` is the closing status (NDJSON and SSE say it).
fn respond(
    format: Format,
    records: impl Stream<Item = Record> + Send + 'static,
    end: impl std::future::Future<Output = serde_json::Value> + Send + 'static,
) -> Response {
    match format {
        Format::Text => {
            let body = records.map(|record| Ok::<_, Infallible>(Bytes::from(record.text + "\n")));
            ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], Body::from_stream(body)).into_response()
        }
        Format::Ndjson => {
            let lines = records
                .map(|record| line_of(&record))
                .chain(futures_util::stream::once(async move { line_of(&crate::wire::LogEnd { end: end.await }) }));
            let body = lines.map(Ok::<_, Infallible>);
            ([(header::CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(body)).into_response()
        }
        Format::Sse => {
            let events = records
                .map(|record| {
                    Event::default().id(record.seq.to_string()).json_data(&record).expect("a record serialises")
                })
                .chain(futures_util::stream::once(async move {
                    Event::default().event("end").json_data(end.await).expect("a status serialises")
                }))
                .map(Ok::<_, Infallible>);
            Sse::new(events).keep_alive(KeepAlive::default()).into_response()
        }
    }
}

/// One NDJSON line.
pub(super) fn line_of(value: &impl serde::Serialize) -> Bytes {
    let mut line = serde_json::to_vec(value).expect("log records serialise");
    line.push(b'\n');
    Bytes::from(line)
}

/// `GET /api/v1/apps/{app}/logs?tail=N&follow=true`: the output of the app's live
/// release (its container, or its pods), secrets masked.
pub(super) async fn runtime_logs(
    State(state): State<Arc<ApiState>>,
    caller: Caller,
    Path(app): Path<String>,
    Query(query): Query<LogQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let format = query.format(&headers)?;
    let output =
        state.apps.runtime_output(&caller, &app, query.tail.unwrap_or(100).min(10_000), query.follow(format)).await?;
    let (number, records) = (output.release, output.records);
    Ok(respond(format, records, async move { serde_json::json!({ "release": number }) }))
}

/// The pre-receive hook's stream: every line of the build's log from the first, as
/// NDJSON [`HookMessage`]s, until the outcome; then the verdict. `rest` is a second
/// reader of the same log, opened with `follower` (so it reads the file even if the app
/// is deleted meanwhile) and read only after the outcome.
pub(super) fn hook_stream(follower: Follower, rest: Follower, mut outcome: oneshot::Receiver<Outcome>) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        let mut follower = follower;
        let mut sent = 0;
        let mut result = None;
        loop {
            tokio::select! {
                record = follower.next() => match record {
                    Ok(Some(record)) => {
                        sent = record.seq;
                        if tx.send(line_of(&HookMessage::Line { line: record.text })).await.is_err() { return }
                    }
                    // The log is done or unreadable: the outcome says the rest.
                    _ => break,
                },
                end = &mut outcome => {
                    result = Some(end);
                    break;
                }
            }
        }
        let end = match result {
            Some(end) => end,
            None => outcome.await,
        };
        // Every line of the build is in the file before its outcome is sent: the rest is
        // read by a reader of its own. The follower's may hold a read that `select!` left
        // in flight, begun before the last lines were written; its end of file is not the
        // log's, and a push lost its "=====> Failed: …" line that way.
        drop(follower);
        let mut rest = rest;
        while let Ok(Some(record)) = rest.next().await {
            if record.seq > sent && tx.send(line_of(&HookMessage::Line { line: record.text })).await.is_err() {
                return;
            }
        }
        let end = match end {
            Ok(outcome) => HookMessage::End {
                ok: outcome.is_ok(),
                message: match &outcome {
                    Outcome::Failed { .. } => {
                        "=====> Push rejected: the app was not deployed; the running release keeps serving".to_string()
                    }
                    Outcome::Superseded { by } => {
                        format!("=====> Push rejected: build {by} of a newer push replaced it before it started")
                    }
                    _ => String::new(),
                },
            },
            Err(_) => HookMessage::End { ok: false, message: "hoist: the build stopped without a result".to_string() },
        };
        let _ = tx.send(line_of(&end)).await;
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|bytes| (Ok::<_, Infallible>(bytes), rx))
    });
    ([(header::CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(stream)).into_response()
}
