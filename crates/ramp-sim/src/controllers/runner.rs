//! The loop every controller runs: watch some resource types, turn events into
//! keys, reconcile each key when it is due, requeue on request or on error.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Duration;

use futures::stream::{self, BoxStream, SelectAll, StreamExt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::errors::ApiError;
use crate::resources::GroupResource;
use crate::store::{Delivered, Store, Watch, WatchOptions};

/// A namespaced object's key: (namespace, name).
pub(crate) type Key = (String, String);

/// A controller: what it watches, which keys an event concerns, and how it
/// brings one key to its desired state.
pub(crate) trait Reconciler: Send + 'static {
    /// Name for logs.
    const NAME: &'static str;

    /// The resource types to watch, in order; `keys_for` gets the index.
    fn watches(&self) -> Vec<GroupResource>;

    /// The keys to reconcile because of this event on `watches()[index]`.
    fn keys_for(&mut self, store: &Store, index: usize, event: &Delivered) -> Vec<Key>;

    /// Reconciles one key. `Ok(Some(d))` asks to be called again after `d`
    /// even without events.
    fn reconcile(&mut self, store: &Store, key: &Key) -> Result<Option<Duration>, ApiError>;
}

/// Keys waiting to be reconciled, each at most once, at its earliest due time.
#[derive(Default)]
pub(crate) struct WorkQueue {
    heap: BinaryHeap<Reverse<(Instant, Key)>>,
    due: HashMap<Key, Instant>,
}

impl WorkQueue {
    pub fn add(&mut self, key: Key, at: Instant) {
        match self.due.get(&key) {
            Some(existing) if *existing <= at => {}
            _ => {
                self.due.insert(key.clone(), at);
                self.heap.push(Reverse((at, key)));
            }
        }
    }

    pub fn next_deadline(&mut self) -> Option<Instant> {
        // Drop stale heap entries (superseded by an earlier time).
        while let Some(Reverse((at, key))) = self.heap.peek() {
            if self.due.get(key) == Some(at) {
                return Some(*at);
            }
            self.heap.pop();
        }
        None
    }

    pub fn pop_due(&mut self, now: Instant) -> Vec<Key> {
        let mut out = Vec::new();
        while let Some(at) = self.next_deadline() {
            if at > now {
                break;
            }
            if let Some(Reverse((_, key))) = self.heap.pop() {
                self.due.remove(&key);
                out.push(key);
            }
        }
        out
    }
}

/// Events of one resource type, for ever: starts with every existing object
/// as `ADDED`, and starts over the same way when the watch expires.
fn events(store: Store, gr: GroupResource) -> BoxStream<'static, Delivered> {
    stream::unfold(
        (store, gr, None::<Watch>),
        |(store, gr, mut watch)| async move {
            loop {
                let w = match watch.as_mut() {
                    Some(w) => w,
                    None => match store.watch(&gr, None, &WatchOptions::default()) {
                        Ok(w) => watch.insert(w),
                        Err(e) => {
                            tracing::warn!(resource = %gr, error = %e, "cannot watch; retrying");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            continue;
                        }
                    },
                };
                match w.next().await {
                    Some(Ok(d)) => return Some((d, (store, gr, watch))),
                    Some(Err(e)) => {
                        tracing::debug!(resource = %gr, error = %e, "watch expired; re-listing");
                        watch = None;
                    }
                    None => return None,
                }
            }
        },
    )
    .boxed()
}

/// Runs `r` until `cancel` fires.
pub(crate) async fn run<R: Reconciler>(store: Store, mut r: R, cancel: CancellationToken) {
    let mut streams: SelectAll<BoxStream<'static, (usize, Delivered)>> = stream::select_all(
        r.watches()
            .into_iter()
            .enumerate()
            .map(|(i, gr)| events(store.clone(), gr).map(move |d| (i, d)).boxed()),
    );
    let mut queue = WorkQueue::default();
    loop {
        let deadline = queue.next_deadline();
        tokio::select! {
            _ = cancel.cancelled() => break,
            Some((i, d)) = streams.next() => {
                let now = Instant::now();
                for key in r.keys_for(&store, i, &d) {
                    queue.add(key, now);
                }
            }
            _ = sleep_until(deadline) => {
                for key in queue.pop_due(Instant::now()) {
                    match r.reconcile(&store, &key) {
                        Ok(Some(after)) => queue.add(key, Instant::now() + after),
                        Ok(None) => {}
                        Err(e) => {
                            let backoff = if e.is_conflict() {
                                Duration::from_millis(5)
                            } else {
                                tracing::warn!(controller = R::NAME, namespace = %key.0, name = %key.1, error = %e, "reconcile failed");
                                Duration::from_millis(250)
                            };
                            queue.add(key, Instant::now() + backoff);
                        }
                    }
                }
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(n: &str) -> Key {
        ("ns".into(), n.into())
    }

    #[test]
    fn keys_are_deduplicated_at_their_earliest_time() {
        let t0 = Instant::now();
        let mut q = WorkQueue::default();
        q.add(k("a"), t0 + Duration::from_secs(10));
        q.add(k("a"), t0 + Duration::from_secs(1));
        q.add(k("a"), t0 + Duration::from_secs(5));
        q.add(k("b"), t0 + Duration::from_secs(3));
        assert_eq!(q.next_deadline(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(q.pop_due(t0 + Duration::from_secs(2)), vec![k("a")]);
        assert_eq!(q.pop_due(t0 + Duration::from_secs(2)), Vec::<Key>::new());
        assert_eq!(q.pop_due(t0 + Duration::from_secs(20)), vec![k("b")]);
        assert_eq!(q.next_deadline(), None);
    }
}
