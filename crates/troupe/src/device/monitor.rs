//! The monitoring lifecycle of a device service: the subscriptions' tokens
//! followed, and `Started` / `Stopped` when a (device, property, selector)
//! gains its first or loses its last.

use super::service::{Core, Incoming};
use super::{MonitorEvent, Monitored};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use troupe_protocol::device as proto;
use zenoh::sample::{Sample, SampleKind};

/// A monitoring token must stay gone this long, and a query must not find
/// it, before its subscription counts as gone (a link that closes and
/// reopens withdraws tokens for a moment).
const GRACE: Duration = Duration::from_millis(200);

/// The bound of the query that confirms a token went away.
const CONFIRM: Duration = Duration::from_secs(2);

/// The subscriptions seen, per (device, property, selector): each client
/// with the generation of its last token put.
#[derive(Default)]
pub(super) struct Tracker {
    pub(super) clients: BTreeMap<Monitored, HashMap<String, u64>>,
    generation: u64,
}

/// The monitoring subscriber's callback: a client's token came or went.
pub(super) fn on_token(sample: &Sample, core: &Arc<Core>, runtime: &tokio::runtime::Handle) {
    let key = sample.key_expr().as_str();
    let mut chunks = key.rsplit('/');
    let (Some(client), Some(selector), Some(property), Some(device)) =
        (chunks.next(), chunks.next(), chunks.next(), chunks.next())
    else {
        return;
    };
    if core.check(device, property).is_err() {
        tracing::debug!(key, "a subscription to a property not served is ignored");
        return;
    }
    let selector = (selector != proto::NONE).then_some(selector);
    let monitored = Monitored {
        device: device.to_string(),
        property: property.to_string(),
        selector: core.effective(selector),
    };
    let mut tracker = core.tracker.lock().expect("tracker lock");
    match sample.kind() {
        SampleKind::Put => {
            tracker.generation += 1;
            let generation = tracker.generation;
            let clients = tracker.clients.entry(monitored.clone()).or_default();
            let first = clients.is_empty();
            clients.insert(client.to_string(), generation);
            if first {
                // Under the lock: events queue in the order of the changes.
                core.tx.push(Incoming::Monitor(started(monitored)));
            }
        }
        SampleKind::Delete => {
            let Some(generation) = tracker
                .clients
                .get(&monitored)
                .and_then(|c| c.get(client))
                .copied()
            else {
                return;
            };
            drop(tracker);
            let (core, key, client) = (core.clone(), key.to_string(), client.to_string());
            runtime.spawn(async move {
                tokio::time::sleep(GRACE).await;
                let there = crate::endpoint::any_token(&core.session, key, CONFIRM, |_| true).await;
                if matches!(there, Ok(Some(true))) {
                    return;
                }
                let mut tracker = core.tracker.lock().expect("tracker lock");
                let Some(clients) = tracker.clients.get_mut(&monitored) else {
                    return;
                };
                // A token put again meanwhile is a new subscription.
                if clients.get(&client) != Some(&generation) {
                    return;
                }
                clients.remove(&client);
                if clients.is_empty() {
                    tracker.clients.remove(&monitored);
                    core.tx.push(Incoming::Monitor(stopped(monitored)));
                }
            });
        }
    }
}

fn started(m: Monitored) -> MonitorEvent {
    MonitorEvent::Started {
        device: m.device,
        property: m.property,
        selector: m.selector,
    }
}

fn stopped(m: Monitored) -> MonitorEvent {
    MonitorEvent::Stopped {
        device: m.device,
        property: m.property,
        selector: m.selector,
    }
}
