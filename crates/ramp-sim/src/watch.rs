//! Watch over HTTP: newline-delimited JSON events in a chunked response.
//!
//! The stream ends cleanly after `timeoutSeconds`, sends `BOOKMARK` events when asked
//! (`allowWatchBookmarks`), marks the end of `sendInitialEvents` with a bookmark annotated
//! `k8s.io/initial-events-end: "true"`, and reports a too-old resourceVersion **inside** the
//! stream as an `ERROR` event carrying a `410 Expired` Status (HTTP status stays 200, which is
//! what client-go and kube-rs expect in order to re-list).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::errors::ApiError;
use crate::resources::ResourceType;
use crate::store::{
    Delivered, INITIAL_EVENTS_END, Store, Watch, WatchItem, WatchSignal, encode_event_line,
};
use crate::table::{self, IncludeObject};

/// How watch events are rendered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchFormat {
    /// The objects themselves.
    Object,
    /// `PartialObjectMetadata`.
    Metadata,
    /// One-row `Table`s (kubectl get -w).
    Table(IncludeObject),
}

/// Parameters of one HTTP watch.
#[derive(Clone, Debug)]
pub struct WatchStreamConfig {
    /// The watched type.
    pub rt: Arc<ResourceType>,
    /// The requested version.
    pub version: String,
    /// End the stream after this long.
    pub timeout: Duration,
    /// Send periodic bookmarks (and the initial-events-end bookmark).
    pub bookmarks: bool,
    /// Interval between periodic bookmarks.
    pub bookmark_interval: Duration,
    /// Rendering.
    pub format: WatchFormat,
}

struct WatchState {
    store: Store,
    watch: Option<Watch>,
    pending_error: Option<ApiError>,
    cfg: WatchStreamConfig,
    deadline: Instant,
    next_bookmark: Instant,
    shutdown: CancellationToken,
    sent_columns: bool,
    done: bool,
}

/// The `ERROR` event line for an error.
pub fn error_line(e: &ApiError) -> Bytes {
    encode_event_line("ERROR", &e.to_status())
}

impl WatchState {
    fn api_version(&self) -> String {
        self.cfg.rt.api_version(&self.cfg.version)
    }

    fn event_line(&mut self, d: &Delivered) -> Bytes {
        match self.cfg.format {
            WatchFormat::Object => {
                let av = self.api_version();
                if d.event.object.get("apiVersion").and_then(Value::as_str) == Some(av.as_str()) {
                    d.encoded_line()
                } else {
                    let mut o = (*d.event.object).clone();
                    o["apiVersion"] = json!(av);
                    encode_event_line(d.kind.as_str(), &o)
                }
            }
            WatchFormat::Metadata => {
                encode_event_line(d.kind.as_str(), &table::partial_metadata(&d.event.object))
            }
            WatchFormat::Table(include) => {
                let rv = d
                    .event
                    .object
                    .pointer("/metadata/resourceVersion")
                    .cloned()
                    .unwrap_or(Value::Null);
                let with_columns = !self.sent_columns;
                self.sent_columns = true;
                let t = table::table(
                    &self.cfg.rt,
                    &self.cfg.version,
                    std::slice::from_ref(&d.event.object),
                    include,
                    json!({"resourceVersion": rv}),
                    with_columns,
                );
                encode_event_line(d.kind.as_str(), &t)
            }
        }
    }

    fn bookmark_line(&self, rv: u64, initial_end: bool) -> Bytes {
        let (kind, api_version) = match self.cfg.format {
            WatchFormat::Metadata => (
                "PartialObjectMetadata".to_string(),
                "meta.k8s.io/v1".to_string(),
            ),
            _ => (self.cfg.rt.kind.clone(), self.api_version()),
        };
        let mut meta = json!({"resourceVersion": rv.to_string(), "creationTimestamp": null});
        if initial_end {
            meta["annotations"] = json!({INITIAL_EVENTS_END: "true"});
        }
        encode_event_line(
            "BOOKMARK",
            &json!({"kind": kind, "apiVersion": api_version, "metadata": meta}),
        )
    }

    async fn next_chunk(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        if let Some(e) = self.pending_error.take() {
            self.done = true;
            return Some(error_line(&e));
        }
        loop {
            let bookmarks = self.cfg.bookmarks && !matches!(self.cfg.format, WatchFormat::Table(_));
            let watch = self.watch.as_mut()?;
            tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => return None,
                _ = tokio::time::sleep_until(self.deadline) => return None,
                item = watch.next_item() => {
                    match item {
                        None => return None,
                        Some(Err(e)) => {
                            self.done = true;
                            return Some(error_line(&e));
                        }
                        Some(Ok(WatchItem::Event(d))) => return Some(self.event_line(&d)),
                        Some(Ok(WatchItem::Signal(WatchSignal::InitialEventsEnd(rv)))) => {
                            if bookmarks {
                                return Some(self.bookmark_line(rv, true));
                            }
                        }
                    }
                }
                _ = tokio::time::sleep_until(self.next_bookmark), if bookmarks => {
                    self.next_bookmark = Instant::now() + self.cfg.bookmark_interval;
                    let rv = watch.bookmark_resource_version(&self.store);
                    return Some(self.bookmark_line(rv, false));
                }
            }
        }
    }
}

/// The response body of a watch. `watch` is the store watch or the error that prevented it
/// (a `410` becomes an in-stream `ERROR` event).
pub fn watch_body(
    store: Store,
    watch: Result<Watch, ApiError>,
    cfg: WatchStreamConfig,
    shutdown: CancellationToken,
) -> axum::body::Body {
    let now = Instant::now();
    let (watch, pending_error) = match watch {
        Ok(w) => (Some(w), None),
        Err(e) => (None, Some(e)),
    };
    let state = WatchState {
        store,
        watch,
        pending_error,
        deadline: now + cfg.timeout,
        next_bookmark: now + cfg.bookmark_interval,
        cfg,
        shutdown,
        sent_columns: false,
        done: false,
    };
    let stream = futures::stream::unfold(state, |mut st| async move {
        let chunk = st.next_chunk().await?;
        Some((Ok::<Bytes, std::io::Error>(chunk), st))
    });
    axum::body::Body::from_stream(stream)
}
