//! Watch over HTTP: newline-delimited JSON events in a chunked response.
//!
//! The stream ends cleanly after `timeoutSeconds`, sends `BOOKMARK` events when asked
//! (`allowWatchBookmarks`), marks the end of `sendInitialEvents` with a bookmark annotated
//! `k8s.io/initial-events-end: "true"`, and reports a too-old resourceVersion **inside** the
//! stream as an `ERROR` event carrying a `410 Expired` Status (HTTP status stays 200, which is
//! what client-go and kube-rs expect in order to re-list).

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use serde_json::{Value, json};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

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
    /// A watcher that sent a chunk less than this long ago waits out the rest of the window
    /// before sending the next one, so that under a stream of writes every watcher wakes and
    /// writes to its socket once per window with everything that arrived meanwhile (bigger,
    /// fewer socket writes), instead of once per event. An event after a quiet window goes out
    /// at once: single changes are not delayed. Zero turns coalescing off.
    pub coalesce: Duration,
    /// Rendering.
    pub format: WatchFormat,
}

/// At most this many events are sent in one chunk (when more are already waiting).
const MAX_BATCH_EVENTS: usize = 128;
/// A chunk stops growing once it is this large.
const MAX_BATCH_BYTES: usize = 256 * 1024;
/// The default [`WatchStreamConfig::coalesce`].
pub const COALESCE_WINDOW: Duration = Duration::from_millis(20);

struct WatchState {
    store: Store,
    watch: Option<Watch>,
    pending_error: Option<ApiError>,
    cfg: WatchStreamConfig,
    /// `apiVersion` of the watched version (computed once, compared for every event).
    api_version: String,
    // The timers and the shutdown future live as long as the stream: creating them anew for
    // every event registers and removes a timer entry (a lock in tokio's timer driver) and a
    // waiter per event per watcher.
    deadline: Pin<Box<Sleep>>,
    next_bookmark: Pin<Box<Sleep>>,
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    /// When the last chunk of events went out, and the timer that waits out its window.
    last_sent: Option<Instant>,
    coalesce: Pin<Box<Sleep>>,
    sent_columns: bool,
    done: bool,
}

/// The `ERROR` event line for an error.
pub fn error_line(e: &ApiError) -> Bytes {
    encode_event_line("ERROR", &e.to_status())
}

impl WatchState {
    fn event_line(&mut self, d: &Delivered) -> Bytes {
        match self.cfg.format {
            WatchFormat::Object => {
                let av = self.api_version.as_str();
                if d.event.object.get("apiVersion").and_then(Value::as_str) == Some(av) {
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
            _ => (self.cfg.rt.kind.clone(), self.api_version.clone()),
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
        let bookmarks = self.cfg.bookmarks && !matches!(self.cfg.format, WatchFormat::Table(_));
        loop {
            let watch = self.watch.as_mut()?;
            tokio::select! {
                biased;
                _ = self.shutdown.as_mut() => return None,
                _ = self.deadline.as_mut() => return None,
                item = watch.next_item() => {
                    match item {
                        None => return None,
                        Some(Err(e)) => {
                            self.done = true;
                            return Some(error_line(&e));
                        }
                        Some(Ok(WatchItem::Event(d))) => {
                            let first = self.event_line(&d);
                            if !self.wait_out_window().await {
                                return None;
                            }
                            self.last_sent = Some(Instant::now());
                            return Some(self.append_ready(first, bookmarks));
                        }
                        Some(Ok(WatchItem::Signal(WatchSignal::InitialEventsEnd(rv)))) => {
                            if bookmarks {
                                return Some(self.bookmark_line(rv, true));
                            }
                        }
                    }
                }
                _ = self.next_bookmark.as_mut(), if bookmarks => {
                    let at = Instant::now() + self.cfg.bookmark_interval;
                    self.next_bookmark.as_mut().reset(at);
                    let rv = watch.bookmark_resource_version(&self.store);
                    return Some(self.bookmark_line(rv, false));
                }
            }
        }
    }

    /// Waits until the coalescing window has passed since the last chunk. `false` when the stream
    /// ends meanwhile (timeout or shutdown).
    async fn wait_out_window(&mut self) -> bool {
        let Some(last) = self.last_sent else {
            return true;
        };
        let until = last + self.cfg.coalesce;
        if self.cfg.coalesce.is_zero() || Instant::now() >= until {
            return true;
        }
        self.coalesce.as_mut().reset(until);
        tokio::select! {
            biased;
            _ = self.shutdown.as_mut() => false,
            _ = self.deadline.as_mut() => false,
            _ = self.coalesce.as_mut() => true,
        }
    }

    /// Appends the events that are already waiting to `first`, so that a watcher that is
    /// behind catches up with one write per batch instead of one per event.
    fn append_ready(&mut self, first: Bytes, bookmarks: bool) -> Bytes {
        let mut batch: Option<BytesMut> = None;
        for _ in 1..MAX_BATCH_EVENTS {
            let len = batch.as_ref().map_or(first.len(), BytesMut::len);
            if len >= MAX_BATCH_BYTES {
                break;
            }
            let Some(watch) = self.watch.as_mut() else {
                break;
            };
            let line = match watch.try_next_item() {
                None => break,
                Some(Ok(WatchItem::Event(d))) => self.event_line(&d),
                Some(Ok(WatchItem::Signal(WatchSignal::InitialEventsEnd(rv)))) => {
                    if !bookmarks {
                        continue;
                    }
                    self.bookmark_line(rv, true)
                }
                Some(Err(e)) => {
                    self.done = true;
                    error_line(&e)
                }
            };
            batch
                .get_or_insert_with(|| BytesMut::from(&first[..]))
                .extend_from_slice(&line);
            if self.done {
                break;
            }
        }
        match batch {
            Some(b) => b.freeze(),
            None => first,
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
        api_version: cfg.rt.api_version(&cfg.version),
        store,
        watch,
        pending_error,
        deadline: Box::pin(tokio::time::sleep_until(now + cfg.timeout)),
        next_bookmark: Box::pin(tokio::time::sleep_until(now + cfg.bookmark_interval)),
        cfg,
        shutdown: Box::pin(shutdown.cancelled_owned()),
        last_sent: None,
        coalesce: Box::pin(tokio::time::sleep_until(now)),
        sent_columns: false,
        done: false,
    };
    let stream = futures::stream::unfold(state, |mut st| async move {
        let chunk = st.next_chunk().await?;
        Some((Ok::<Bytes, std::io::Error>(chunk), st))
    });
    axum::body::Body::from_stream(stream)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::GroupResource;
    use crate::store::{WatchOptions, WriteOptions};
    use http_body_util::BodyExt;

    fn config_map(i: usize) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": format!("cm-{i:03}")}, "data": {"i": i.to_string()}})
    }

    /// (type, name) of every line of a chunk.
    fn events(chunk: &[u8]) -> Vec<(String, String)> {
        chunk
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| {
                let v: Value = serde_json::from_slice(l).unwrap();
                (
                    v["type"].as_str().unwrap().to_string(),
                    v["object"]["metadata"]["name"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                )
            })
            .collect()
    }

    /// A watch on ConfigMaps in `default` from now on, and the stream config for it.
    fn watch_from_now(
        store: &Store,
        timeout: Duration,
    ) -> (Result<Watch, ApiError>, WatchStreamConfig) {
        let gr = GroupResource::new("", "configmaps");
        let opts = WatchOptions {
            resource_version: Some(store.resource_version().to_string()),
            ..Default::default()
        };
        let cfg = WatchStreamConfig {
            rt: store.resource_type(&gr).unwrap(),
            version: "v1".into(),
            timeout,
            bookmarks: false,
            bookmark_interval: Duration::from_secs(60),
            format: WatchFormat::Object,
            coalesce: COALESCE_WINDOW,
        };
        (store.watch(&gr, Some("default"), &opts), cfg)
    }

    async fn next_chunk(body: &mut axum::body::Body) -> Option<Bytes> {
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .expect("watch body stalled")?;
        Some(frame.unwrap().into_data().unwrap())
    }

    #[tokio::test]
    async fn a_watcher_that_is_behind_catches_up_in_batches_in_order() {
        let store = Store::new();
        let gr = GroupResource::new("", "configmaps");
        let (watch, cfg) = watch_from_now(&store, Duration::from_millis(300));
        // 300 events wait before the stream is first polled.
        for i in 0..300 {
            store
                .create(
                    &gr,
                    Some("default"),
                    config_map(i),
                    &WriteOptions::default(),
                )
                .unwrap();
        }
        let mut body = watch_body(store.clone(), watch, cfg, CancellationToken::new());

        let first = events(&next_chunk(&mut body).await.unwrap());
        assert_eq!(
            first.len(),
            MAX_BATCH_EVENTS,
            "one chunk carries a full batch"
        );
        let mut seen = first;
        while seen.len() < 300 {
            let more = events(&next_chunk(&mut body).await.unwrap());
            assert!(!more.is_empty() && more.len() <= MAX_BATCH_EVENTS);
            seen.extend(more);
        }
        let want: Vec<(String, String)> = (0..300)
            .map(|i| ("ADDED".to_string(), format!("cm-{i:03}")))
            .collect();
        assert_eq!(seen, want, "every event once, in resourceVersion order");

        // Once caught up, a new event is sent on its own, right away.
        store
            .create(
                &gr,
                Some("default"),
                config_map(300),
                &WriteOptions::default(),
            )
            .unwrap();
        let alone = events(&next_chunk(&mut body).await.unwrap());
        assert_eq!(alone, vec![("ADDED".to_string(), "cm-300".to_string())]);

        // timeoutSeconds still ends the stream.
        assert!(next_chunk(&mut body).await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_is_sent_once_per_window_and_a_lone_event_at_once() {
        let store = Store::new();
        let (watch, cfg) = watch_from_now(&store, Duration::from_secs(60));
        let mut body = watch_body(store.clone(), watch, cfg, CancellationToken::new());
        fn create(s: &Store, i: usize) {
            let gr = GroupResource::new("", "configmaps");
            s.create(
                &gr,
                Some("default"),
                config_map(i),
                &WriteOptions::default(),
            )
            .unwrap();
        }
        let name = |i: usize| ("ADDED".to_string(), format!("cm-{i:03}"));

        // After a quiet period the first event goes out without waiting.
        create(&store, 0);
        let t0 = Instant::now();
        assert_eq!(events(&next_chunk(&mut body).await.unwrap()), vec![name(0)]);
        assert_eq!(Instant::now(), t0, "a lone event is not delayed");

        // A burst right after it: one event a millisecond. They go out together once the
        // window that started with the last chunk is over.
        let writer = store.clone();
        let burst = tokio::spawn(async move {
            for i in 1..=3 {
                tokio::time::sleep(Duration::from_millis(1)).await;
                create(&writer, i);
            }
        });
        let chunk = events(&next_chunk(&mut body).await.unwrap());
        assert_eq!(chunk, vec![name(1), name(2), name(3)]);
        assert_eq!(Instant::now(), t0 + COALESCE_WINDOW);
        burst.await.unwrap();

        // Quiet again for longer than the window: the next event is sent at once.
        tokio::time::sleep(COALESCE_WINDOW * 4).await;
        create(&store, 4);
        let t1 = Instant::now();
        assert_eq!(events(&next_chunk(&mut body).await.unwrap()), vec![name(4)]);
        assert_eq!(Instant::now(), t1);
    }

    #[tokio::test]
    async fn shutdown_ends_an_idle_watch() {
        let store = Store::new();
        let gr = GroupResource::new("", "configmaps");
        let watch = store.watch(&gr, None, &WatchOptions::default());
        let cfg = WatchStreamConfig {
            rt: store.resource_type(&gr).unwrap(),
            version: "v1".into(),
            timeout: Duration::from_secs(600),
            bookmarks: true,
            bookmark_interval: Duration::from_secs(600),
            format: WatchFormat::Object,
            coalesce: COALESCE_WINDOW,
        };
        let token = CancellationToken::new();
        let mut body = watch_body(store.clone(), watch, cfg, token.clone());
        let stop = token.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            stop.cancel();
        });
        assert!(next_chunk(&mut body).await.is_none());
    }
}
