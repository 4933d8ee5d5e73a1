//! `power-supply`: a device service, the serving side of `power-client`.
//!
//! This application serves a simulated power supply as the device `ps1`
//! (or the device given as its first argument) with two properties:
//!
//! - `current`: the setting, in amperes (get and set). A set outside
//!   0..=100 A, or of anything but a number, is refused with the reason.
//! - `measured`: what the supply delivers (get only; a set is refused). It
//!   follows the setting with a first-order lag (time constant 0.3 s) and a
//!   little noise (±0.02 A).
//!
//! The service is selector-aware: each selector (an accelerator cycle such
//! as `CYCLE1`, a user) has its own setting and its own measured value,
//! and a client subscribes to the selector it needs. While a selector's
//! `measured` is monitored, the supply polls it every 100 ms and publishes
//! it; it starts that polling when the first subscriber comes and stops it
//! when the last one goes (and says so on stdout). A new subscriber first
//! gets the current value (first-update policy `current`).
//!
//! Its settings (service name `power`, server id `ps`, selector-aware,
//! first update `current`) are in its `[app.device]` table in
//! `examples/troupe.toml`; the program gives the same at run time, used
//! only where the configuration leaves them unset. It says it is running
//! once it serves (`starting_time = "manual"`) and serves until asked to
//! stop (`This::on_stop`).
//!
//! `power-client` starts it; or run it alone and use the console:
//!
//! ```console
//! $ troupe start power-supply
//! 4
//! $ troupe devices
//! $ troupe set ps1/current 12.5 --selector CYCLE1
//! $ troupe get ps1/measured --selector CYCLE1
//! 12.49
//! $ troupe monitor ps1/measured --selector CYCLE1
//! $ troupe set ps1/current 120 --selector CYCLE1
//! troupe: error: refused: 120 A is out of range: the current is from 0 to 100 A
//! $ troupe stop power-supply
//! ```

use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use troupe::device::{
    DeviceError, DeviceHandler, DevicePublisher, DeviceService, FirstUpdate, MonitorEvent,
};
use troupe::This;

/// The device served when no argument names one.
const DEFAULT_DEVICE: &str = "ps1";

/// The highest current setting, in amperes.
const MAX_CURRENT: f64 = 100.0;

/// The time constant of the measured value's lag behind the setting.
const LAG: Duration = Duration::from_millis(300);

/// The noise on the measured value: up to this much either way, in
/// amperes.
const NOISE: f64 = 0.02;

/// How often a monitored `measured` is read and published.
const POLL: Duration = Duration::from_millis(100);

/// One selector's channel of the supply: its setting and its output.
#[derive(Debug)]
struct Channel {
    setting: f64,
    output: f64,
    at: Instant,
}

impl Channel {
    fn new() -> Self {
        Channel {
            setting: 0.0,
            output: 0.0,
            at: Instant::now(),
        }
    }

    /// The output now: the lag applied since the last reading.
    fn advance(&mut self, now: Instant) -> f64 {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        let decay = (-dt / LAG.as_secs_f64()).exp();
        self.output = self.setting + (self.output - self.setting) * decay;
        self.at = now;
        self.output
    }
}

/// The supply's channels, by selector (`None`: a client that gave none),
/// shared by the handler and the polling tasks.
#[derive(Debug, Clone)]
struct Supply {
    channels: Arc<Mutex<HashMap<Option<String>, Channel>>>,
    /// A small generator for the noise (xorshift).
    noise: Arc<Mutex<u64>>,
}

impl Supply {
    fn new() -> Self {
        let seed = seed();
        Supply {
            channels: Arc::default(),
            noise: Arc::new(Mutex::new(seed)),
        }
    }

    /// The measured current of `selector`, in amperes, rounded to 0.001 A.
    fn measure(&self, selector: Option<&str>) -> f64 {
        let output = {
            let mut channels = self.channels.lock().expect("channels");
            let ch = channels
                .entry(selector.map(str::to_string))
                .or_insert_with(Channel::new);
            ch.advance(Instant::now())
        };
        let noisy = (output + self.noise()).max(0.0);
        (noisy * 1000.0).round() / 1000.0
    }

    /// Uniform noise in -NOISE..NOISE.
    fn noise(&self) -> f64 {
        let mut x = self.noise.lock().expect("noise");
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        let unit = (*x >> 11) as f64 / (1u64 << 53) as f64;
        (unit * 2.0 - 1.0) * NOISE
    }

    /// The setting of `selector`.
    fn setting(&self, selector: Option<&str>) -> f64 {
        let channels = self.channels.lock().expect("channels");
        channels
            .get(&selector.map(str::to_string))
            .map_or(0.0, |c| c.setting)
    }

    /// Sets the current of `selector` (the output starts following).
    fn set(&self, selector: Option<&str>, amps: f64) {
        let mut channels = self.channels.lock().expect("channels");
        let ch = channels
            .entry(selector.map(str::to_string))
            .or_insert_with(Channel::new);
        ch.advance(Instant::now());
        ch.setting = amps;
    }
}

/// A seed for the noise: the clock's nanoseconds (never 0).
fn seed() -> u64 {
    let ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.subsec_nanos() as u64);
    ns | 1
}

/// The selector for people.
fn shown(selector: Option<&str>) -> &str {
    selector.unwrap_or("(no selector)")
}

/// The handler: the supply, and the polling tasks of the monitored
/// selectors.
struct Handler {
    supply: Supply,
    /// The polling task of each monitored selector's `measured`; shared
    /// with `main`, which stops what is left when the service stops.
    polling: Arc<Mutex<HashMap<Option<String>, tokio::task::JoinHandle<()>>>>,
}

impl DeviceHandler for Handler {
    async fn get(
        &mut self,
        _device: &str,
        property: &str,
        selector: Option<&str>,
    ) -> Result<Value, DeviceError> {
        match property {
            "current" => Ok(json!(self.supply.setting(selector))),
            "measured" => Ok(json!(self.supply.measure(selector))),
            other => Err(DeviceError::new(format!("no property {other}"))),
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
            return Err(DeviceError::new(format!(
                "{property} is read-only: set current instead"
            )));
        }
        let Some(amps) = value.as_f64() else {
            return Err(DeviceError::new(format!(
                "the current is a number of amperes, not {value}"
            )));
        };
        if !(0.0..=MAX_CURRENT).contains(&amps) {
            println!("{}: current {amps} A refused", shown(selector));
            return Err(DeviceError::new(format!(
                "{amps} A is out of range: the current is from 0 to {MAX_CURRENT} A"
            )));
        }
        self.supply.set(selector, amps);
        println!("{}: current set to {amps} A", shown(selector));
        if let Err(e) = publisher
            .publish(device, "current", selector, json!(amps))
            .await
        {
            eprintln!("power-supply: current not published: {e}");
        }
        Ok(())
    }

    async fn monitor(&mut self, event: MonitorEvent, publisher: &DevicePublisher) {
        let m = event.monitored();
        if m.property != "measured" {
            return;
        }
        let mut polling = self.polling.lock().expect("polling");
        if event.is_started() {
            let (supply, publisher) = (self.supply.clone(), publisher.clone());
            let (device, selector) = (m.device.clone(), m.selector.clone());
            let task = tokio::spawn(async move {
                let mut tick = tokio::time::interval(POLL);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let value = json!(supply.measure(selector.as_deref()));
                    let sel = selector.as_deref();
                    if let Err(e) = publisher.publish(&device, "measured", sel, value).await {
                        eprintln!("power-supply: measured not published: {e}");
                    }
                }
            });
            if let Some(old) = polling.insert(m.selector.clone(), task) {
                old.abort();
            }
            println!(
                "{}: measured is monitored: polling started",
                shown(m.selector.as_deref())
            );
        } else if let Some(task) = polling.remove(&m.selector) {
            task.abort();
            println!(
                "{}: measured is no longer monitored: polling stopped",
                shown(m.selector.as_deref())
            );
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let this = This::init().await?;
    let mut stop = this.on_stop().await?;
    let device = std::env::args()
        .nth(1)
        .unwrap_or_else(|| DEFAULT_DEVICE.to_string());
    let session = this.server().session().clone();
    let polling = Arc::default();
    let handler = Handler {
        supply: Supply::new(),
        polling: Arc::clone(&polling),
    };
    // [app.device] sets these; the program's values fill what it leaves
    // unset.
    let service = DeviceService::builder(&session)
        .name("power")
        .server_id("ps")
        .selector_aware(true)
        .first_update(FirstUpdate::Current)
        .device(&device, &["current", "measured"])
        .serve(handler)
        .await?;
    let s = service.settings();
    println!(
        "serving {device} (service {}, server id {}, prefix {}, selector-aware {}, first update {})",
        s.name, s.server_id, s.prefix, s.selector_aware, s.first_update
    );
    // Its app starts manually: running means serving.
    this.set_running().await?;
    stop.wait().await;
    service.stop().await;
    // What is still polled stops with the service.
    let mut left: Vec<_> = polling.lock().expect("polling").drain().collect();
    left.sort_by(|a, b| a.0.cmp(&b.0));
    for (selector, task) in left {
        task.abort();
        println!(
            "{}: polling stopped with the service",
            shown(selector.as_deref())
        );
    }
    println!("stopped serving {device}");
    Ok(())
}
