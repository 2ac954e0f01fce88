//! Server-Sent Events: each stream sends its page's JSON once at the start
//! and again after every change of the snapshot. A stream holds one
//! `watch::Receiver` (one slot): changes that arrive while a page is slow to
//! read are merged into the next send, so an open page never queues up.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde_json::Value;

use super::{App, view};

/// The SSE event name the pages listen to.
pub const SNAPSHOT: &str = "snapshot";

fn stream(
    app: Arc<App>,
    build: impl Fn(&App) -> Value + Send + Sync + 'static,
) -> impl Stream<Item = Result<Event, Infallible>> + Send {
    let rx = app.store.subscribe();
    let build = Arc::new(build);
    // State: the app, the change signal, the last page sent (without its
    // `now`), so changes elsewhere in the snapshot send nothing.
    futures::stream::unfold((app, rx, None::<String>), move |(app, mut rx, last)| {
        let build = build.clone();
        async move {
            loop {
                if last.is_some() && rx.changed().await.is_err() {
                    return None;
                }
                rx.borrow_and_update();
                let mut v = build(&app);
                let now = v.as_object_mut().and_then(|o| o.remove("now"));
                let body = v.to_string();
                if last.as_deref() == Some(body.as_str()) {
                    continue;
                }
                if let (Some(o), Some(now)) = (v.as_object_mut(), now) {
                    o.insert("now".into(), now);
                }
                let ev = Event::default().event(SNAPSHOT).data(v.to_string());
                return Some((Ok(ev), (app, rx, Some(body))));
            }
        }
    })
}

fn sse<S>(s: S) -> impl IntoResponse
where
    S: Stream<Item = Result<Event, Infallible>> + Send + 'static,
{
    Sse::new(s).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// `GET /api/stream`: the list page.
pub(super) async fn list_stream(State(app): State<Arc<App>>) -> impl IntoResponse {
    sse(stream(app, |a| {
        view::list(&a.store.read(), jiff::Timestamp::now())
    }))
}

/// `GET /api/rollouts/{ns}/{name}/stream`: one rollout (`null` while it
/// does not exist).
pub(super) async fn rollout_stream(
    State(app): State<Arc<App>>,
    Path((ns, name)): Path<(String, String)>,
) -> impl IntoResponse {
    let key = (ns, name);
    sse(stream(app, move |a| {
        view::rollout(
            &a.store.read(),
            &key,
            jiff::Timestamp::now(),
            a.opts.read_only,
        )
        .unwrap_or(Value::Null)
    }))
}
