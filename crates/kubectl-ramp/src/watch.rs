//! `status --watch`: kube watches on the Rollout and the objects around it;
//! every change redraws the tree. Exits when the rollout finishes: Ok for
//! Healthy, `Error::WatchFailed` for aborted, disabled or deleted.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::stream::{BoxStream, SelectAll};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use kube::api::DynamicObject;
use kube::runtime::{WatchStreamExt, watcher};
use ramp_api::names::{canary_service_name, canary_workload_name};
use ramp_api::{Rollout, RolloutPhase};
use serde_json::Value;

use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::model::{self, finished_healthy, phase, position};
use crate::render::{StatusInput, Style, render_status};

/// One change seen by a watch.
enum Update {
    Rollout(Option<Box<Rollout>>),
    Deployment(String, Option<Box<Deployment>>),
    Service(String, Option<Box<Service>>),
    Routing(String, Option<Value>),
    RolloutError(kube::runtime::watcher::Error),
    Ignored,
}

/// Maps a single-object watch (field selector on the name) to upserts and
/// deletes. A re-list (Init … InitDone) only reports the object gone when the
/// list did not contain it, so a reconnect never flashes "missing".
fn by_name<K, F>(
    stream: BoxStream<'static, watcher::Result<watcher::Event<K>>>,
    f: F,
) -> BoxStream<'static, Update>
where
    K: Send + 'static,
    F: Fn(Option<K>) -> Update + Send + Sync + 'static,
{
    let mut listed = false;
    stream
        .map(move |ev| match ev {
            Ok(watcher::Event::Apply(o)) => f(Some(o)),
            Ok(watcher::Event::InitApply(o)) => {
                listed = true;
                f(Some(o))
            }
            Ok(watcher::Event::Delete(_)) => f(None),
            Ok(watcher::Event::Init) => {
                listed = false;
                Update::Ignored
            }
            Ok(watcher::Event::InitDone) if !listed => f(None),
            Ok(watcher::Event::InitDone) | Err(_) => Update::Ignored,
        })
        .boxed()
}

fn config_for(name: &str) -> watcher::Config {
    watcher::Config::default().fields(&format!("metadata.name={name}"))
}

/// Where the terminal output goes and how it is drawn.
pub struct Screen {
    /// Redraw in place (a terminal) or append frames (a pipe).
    pub in_place: bool,
    /// Colours.
    pub style: Style,
}

struct State {
    rollout: Rollout,
    deployments: BTreeMap<String, Deployment>,
    services: BTreeMap<String, Service>,
    routing: BTreeMap<String, Value>,
}

impl State {
    fn frame(&self, style: Style) -> String {
        let deployments: Vec<Deployment> = self.deployments.values().cloned().collect();
        let services: Vec<Service> = self.services.values().cloned().collect();
        let routing: Vec<Value> = self.routing.values().cloned().collect();
        render_status(
            &StatusInput {
                rollout: &self.rollout,
                deployments: &deployments,
                services: &services,
                routing: &routing,
                now: jiff::Timestamp::now(),
                stall_seconds: crate::run::stall_threshold(),
            },
            style,
        )
    }

    fn workload(&self) -> Option<&Deployment> {
        self.deployments.get(&self.rollout.spec.workload_ref.name)
    }

    /// Ok(true) when finished Healthy; Err when finished otherwise.
    fn outcome(&self) -> Result<bool> {
        let ro = &self.rollout;
        let n = model::name(ro);
        if finished_healthy(ro, self.workload()) {
            return Ok(true);
        }
        match phase(ro) {
            Some(RolloutPhase::Aborted) => {
                let why = ro
                    .status
                    .as_ref()
                    .and_then(|s| s.message.as_deref())
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default();
                Err(Error::WatchFailed(format!(
                    "rollout '{n}' was aborted ({}){why}",
                    position(ro)
                )))
            }
            Some(RolloutPhase::Disabled) => Err(Error::WatchFailed(format!(
                "rollout '{n}' is disabled (spec.disabled: true); ramp no longer rolls it out"
            ))),
            _ => Ok(false),
        }
    }
}

fn draw(out: &mut impl std::io::Write, screen: &Screen, frame: &str, first: bool) -> Result<()> {
    let io = |e: std::io::Error| Error::Io(format!("writing to the terminal: {e}"));
    if screen.in_place {
        // Home, rewrite each line clearing its tail, then clear below: no flicker.
        let mut s = String::from(if first { "\x1b[2J\x1b[H" } else { "\x1b[H" });
        for line in frame.lines() {
            s.push_str(line);
            s.push_str("\x1b[K\n");
        }
        s.push_str("\x1b[J");
        out.write_all(s.as_bytes()).map_err(io)?;
    } else {
        if !first {
            out.write_all(b"\n").map_err(io)?;
        }
        out.write_all(frame.as_bytes()).map_err(io)?;
    }
    out.flush().map_err(io)
}

/// Watches the rollout until it finishes.
pub async fn watch(
    cluster: &Cluster,
    name: &str,
    timeout: Option<Duration>,
    screen: &Screen,
) -> Result<()> {
    let ro = cluster.get_rollout(name).await?;
    let related = cluster.related(&ro).await?;
    let mut state = State {
        deployments: related
            .deployments
            .into_iter()
            .filter_map(|d| d.metadata.name.clone().map(|n| (n, d)))
            .collect(),
        services: related
            .services
            .into_iter()
            .filter_map(|s| s.metadata.name.clone().map(|n| (n, s)))
            .collect(),
        routing: related
            .routing
            .into_iter()
            .map(|v| {
                let key = format!(
                    "{}/{}",
                    v.get("kind").and_then(Value::as_str).unwrap_or_default(),
                    v.pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                );
                (key, v)
            })
            .collect(),
        rollout: ro,
    };

    let mut streams: SelectAll<BoxStream<'static, Update>> = SelectAll::new();
    let ns = cluster.namespace.clone();
    let client = cluster.client.clone();
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), &ns);
    let mut listed = false;
    streams.push(
        watcher(rollouts, config_for(name))
            .default_backoff()
            .map(move |ev| match ev {
                Ok(watcher::Event::Apply(o)) => Update::Rollout(Some(Box::new(o))),
                Ok(watcher::Event::InitApply(o)) => {
                    listed = true;
                    Update::Rollout(Some(Box::new(o)))
                }
                Ok(watcher::Event::Delete(_)) => Update::Rollout(None),
                Ok(watcher::Event::Init) => {
                    listed = false;
                    Update::Ignored
                }
                Ok(watcher::Event::InitDone) if !listed => Update::Rollout(None),
                Ok(watcher::Event::InitDone) => Update::Ignored,
                Err(e) => Update::RolloutError(e),
            })
            .boxed(),
    );
    let workload = state.rollout.spec.workload_ref.name.clone();
    for d in [workload.clone(), canary_workload_name(&workload)] {
        let api: Api<Deployment> = Api::namespaced(client.clone(), &ns);
        let key = d.clone();
        streams.push(by_name(
            watcher(api, config_for(&d)).default_backoff().boxed(),
            move |o| Update::Deployment(key.clone(), o.map(Box::new)),
        ));
    }
    if let Some(r) = state
        .rollout
        .spec
        .strategy
        .canary
        .as_ref()
        .and_then(|c| c.traffic_routings.first())
        .cloned()
    {
        for s in [r.service.clone(), canary_service_name(&r.service)] {
            let api: Api<Service> = Api::namespaced(client.clone(), &ns);
            let key = s.clone();
            streams.push(by_name(
                watcher(api, config_for(&s)).default_backoff().boxed(),
                move |o| Update::Service(key.clone(), o.map(Box::new)),
            ));
        }
        // Every routing object: customNetworkRefs and gateway.httpRouteName.
        for n in &r.routing_refs() {
            let api = cluster.routing_api(n);
            let key = format!("{}/{}", n.kind, n.name);
            streams.push(by_name(
                watcher(api, config_for(&n.name))
                    .default_backoff()
                    .map_ok(|ev| match ev {
                        watcher::Event::Apply(o) => watcher::Event::Apply(to_json(o)),
                        watcher::Event::InitApply(o) => watcher::Event::InitApply(to_json(o)),
                        watcher::Event::Delete(o) => watcher::Event::Delete(to_json(o)),
                        watcher::Event::Init => watcher::Event::Init,
                        watcher::Event::InitDone => watcher::Event::InitDone,
                    })
                    .boxed(),
                move |o| Update::Routing(key.clone(), o),
            ));
        }
    }

    let mut stdout = std::io::stdout();
    let mut last = state.frame(screen.style);
    draw(&mut stdout, screen, &last, true)?;
    if state.outcome()? {
        return Ok(());
    }
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut rollout_errors = 0u32;
    loop {
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => futures::future::pending().await,
            }
        };
        let changed = tokio::select! {
            u = streams.next() => match u {
                None => return Err(Error::Api(format!("the watch on rollout '{name}' ended"))),
                Some(Update::Rollout(Some(r))) => { rollout_errors = 0; state.rollout = *r; true }
                Some(Update::Rollout(None)) => {
                    return Err(Error::WatchFailed(format!("rollout '{name}' was deleted")));
                }
                Some(Update::Deployment(k, o)) => upsert(&mut state.deployments, k, o.map(|b| *b)),
                Some(Update::Service(k, o)) => upsert(&mut state.services, k, o.map(|b| *b)),
                Some(Update::Routing(k, o)) => upsert(&mut state.routing, k, o.filter(|v| !v.is_null())),
                Some(Update::RolloutError(e)) => {
                    rollout_errors += 1;
                    if let watcher::Error::InitialListFailed(kube::Error::Api(s))
                        | watcher::Error::WatchStartFailed(kube::Error::Api(s)) = &e
                        && s.code == 403
                    {
                        return Err(Error::Forbidden(format!(
                            "forbidden: you may not watch rollouts (API group {}) in namespace '{ns}'",
                            ramp_api::names::GROUP
                        )));
                    }
                    if rollout_errors == 5 {
                        eprintln!("warning: the watch on rollout '{name}' keeps failing ({e}); retrying");
                    }
                    false
                }
                Some(Update::Ignored) => false,
            },
            _ = tick.tick(), if screen.in_place => true,
            () = sleep => {
                let now = position(&state.rollout);
                let extra = if phase(&state.rollout) == Some(RolloutPhase::Healthy) {
                    format!(
                        "; deployment '{}' is paused or not fully rolled out",
                        state.rollout.spec.workload_ref.name
                    )
                } else {
                    String::new()
                };
                return Err(Error::WatchFailed(format!(
                    "timed out waiting for rollout '{name}' to finish (now {now}{extra})"
                )));
            }
        };
        if !changed {
            continue;
        }
        let frame = state.frame(screen.style);
        if frame != last {
            draw(&mut stdout, screen, &frame, false)?;
            last = frame;
        }
        if state.outcome()? {
            return Ok(());
        }
    }
}

fn to_json(o: DynamicObject) -> Value {
    serde_json::to_value(o).unwrap_or(Value::Null)
}

fn upsert<T>(map: &mut BTreeMap<String, T>, key: String, v: Option<T>) -> bool {
    match v {
        Some(v) => {
            map.insert(key, v);
        }
        None => {
            map.remove(&key);
        }
    }
    true
}
