//! [`Supply`]: a fake power supply, the device handler of the device tests
//! (served in-process, or by the fixture `device-service`).
//!
//! | property | get | set | while monitored |
//! | --- | --- | --- | --- |
//! | `current` | the setting (amperes, starts at 0) | a number from 0 to 10; refused otherwise, with the reason; publishes the new value | nothing |
//! | `measured` | the setting | refused: read-only | nothing |
//! | `counter` | the last count published for the selector (0 before any) | refused: read-only | publishes `1`, `2`, ... every tick, per selector |
//! | `broken` | fails: `sensor unplugged` | refused: read-only | publishes the error `sensor unplugged N` every tick |

use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use troupe::device::{DeviceError, DeviceHandler, DevicePublisher, MonitorEvent, Monitored};

/// The properties of each device of a [`Supply`].
pub const PROPERTIES: [&str; 4] = ["current", "measured", "counter", "broken"];

/// The highest current accepted, in amperes.
pub const LIMIT: f64 = 10.0;

/// A fake power supply; see the module docs.
#[derive(Debug)]
pub struct Supply {
    current: HashMap<String, f64>,
    counts: Arc<Mutex<HashMap<Monitored, u64>>>,
    pollers: HashMap<Monitored, tokio::task::JoinHandle<()>>,
    tick: Duration,
    events: Option<mpsc::UnboundedSender<MonitorEvent>>,
}

impl Supply {
    /// A supply whose pollers publish every `tick`.
    pub fn new(tick: Duration) -> Self {
        Supply {
            current: HashMap::new(),
            counts: Arc::default(),
            pollers: HashMap::new(),
            tick,
            events: None,
        }
    }

    /// Also sends every monitoring event to `events`.
    pub fn with_events(mut self, events: mpsc::UnboundedSender<MonitorEvent>) -> Self {
        self.events = Some(events);
        self
    }
}

impl Drop for Supply {
    fn drop(&mut self) {
        for p in self.pollers.values() {
            p.abort();
        }
    }
}

impl DeviceHandler for Supply {
    async fn get(
        &mut self,
        device: &str,
        property: &str,
        selector: Option<&str>,
    ) -> Result<Value, DeviceError> {
        match property {
            "current" | "measured" => Ok(json!(self.current.get(device).copied().unwrap_or(0.0))),
            "counter" => {
                let key = Monitored {
                    device: device.to_string(),
                    property: property.to_string(),
                    selector: selector.map(str::to_string),
                };
                let counts = self.counts.lock().expect("counts");
                Ok(json!(counts.get(&key).copied().unwrap_or(0)))
            }
            _ => Err(DeviceError::new("sensor unplugged")),
        }
    }

    async fn set(
        &mut self,
        device: &str,
        property: &str,
        selector: Option<&str>,
        value: Value,
        publisher: &DevicePublisher,
    ) -> Result<(), DeviceError> {
        if property != "current" {
            return Err(DeviceError::new(format!("{property} is read-only")));
        }
        let amps = value.as_f64().ok_or_else(|| {
            DeviceError::new(format!("expected a number of amperes, not {value}"))
        })?;
        if !(0.0..=LIMIT).contains(&amps) {
            return Err(DeviceError::new(format!(
                "{amps} A is outside the limits (0 to {LIMIT} A)"
            )));
        }
        self.current.insert(device.to_string(), amps);
        for p in ["current", "measured"] {
            if let Err(e) = publisher.publish(device, p, selector, json!(amps)).await {
                tracing::warn!(error = %e, "supply: update not published");
            }
        }
        Ok(())
    }

    async fn monitor(&mut self, event: MonitorEvent, publisher: &DevicePublisher) {
        let what = event.monitored();
        if let Some(events) = &self.events {
            let _ = events.send(event.clone());
        }
        if !event.is_started() {
            if let Some(p) = self.pollers.remove(&what) {
                p.abort();
            }
            return;
        }
        if !matches!(what.property.as_str(), "counter" | "broken") {
            return;
        }
        let (publisher, counts, tick, key) = (
            publisher.clone(),
            self.counts.clone(),
            self.tick,
            what.clone(),
        );
        let poller = tokio::spawn(async move {
            let mut every = tokio::time::interval(tick);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            every.tick().await;
            let mut n = 0u64;
            loop {
                every.tick().await;
                n += 1;
                let (d, p, s) = (&key.device, &key.property, key.selector.as_deref());
                let sent = if p == "counter" {
                    counts.lock().expect("counts").insert(key.clone(), n);
                    publisher.publish(d, p, s, json!(n)).await
                } else {
                    publisher
                        .publish_error(d, p, s, &format!("sensor unplugged {n}"))
                        .await
                };
                if let Err(e) = sent {
                    tracing::warn!(error = %e, "supply: update not published");
                }
            }
        });
        if let Some(old) = self.pollers.insert(what, poller) {
            old.abort();
        }
    }
}
