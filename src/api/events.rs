//! `GET /api/events`: the status snapshot's changes as server-sent events.
//!
//! Each event is one JSON object: `{"id","account","kind","changed","status"}`, where `kind`
//! is `snapshot` (the stream's first events, one per account, so a client needs no other
//! call), `changed` (`changed` lists the fields that did, `status` is the row after it) or
//! `removed`. The SSE `id:` is the object's `id`. The changes come from the broadcast every
//! writer of the snapshot publishes into ([`crate::fleet::status::feed`]); a client too slow
//! to keep up is sent a fresh snapshot rather than silently missing changes.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::stream::{self, Stream, StreamExt};
use tokio::sync::broadcast::error::RecvError;

use super::ApiState;
use crate::fleet::status::{feed, view, Change, StatusMap};

/// One `snapshot` event per account, sorted by id.
fn snapshot(map: &StatusMap) -> Vec<Change> {
    let mut rows: Vec<(String, serde_json::Value)> = map
        .iter()
        .map(|e| (e.key().clone(), view(e.value())))
        .collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    rows.into_iter()
        .map(|(account, status)| Change {
            id: feed().next_id(),
            account,
            kind: "snapshot",
            changed: Vec::new(),
            status: Some(status),
        })
        .collect()
}

fn event(c: &Change) -> Event {
    Event::default()
        .id(c.id.to_string())
        .data(serde_json::to_string(c).unwrap_or_else(|_| "{}".into()))
}

/// The handler.
pub async fn events(
    State(s): State<ApiState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    // Subscribe before reading the snapshot: a change in between is sent twice (harmless,
    // the row is replaced), never lost.
    let rx = feed().subscribe();
    let first = snapshot(&s.status);
    let map = s.status.clone();
    let live = stream::unfold((rx, map), |(mut rx, map)| async move {
        let batch = match rx.recv().await {
            Ok(c) => vec![c],
            Err(RecvError::Lagged(_)) => snapshot(&map),
            Err(RecvError::Closed) => return None,
        };
        Some((batch, (rx, map)))
    })
    .flat_map(stream::iter);
    let all = stream::iter(first)
        .chain(live)
        .map(|c| Ok::<_, Infallible>(event(&c)));
    Sse::new(all).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
