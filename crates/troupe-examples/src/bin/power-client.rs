//! `power-client`: a client of a device service, the other side of
//! `power-supply`.
//!
//! This application starts `power-supply` through its own server, linked
//! to itself, waits until it serves, and uses the device `ps1` through a
//! [`DeviceClient`]: it sets the current for two selectors (`CYCLE1` and
//! `CYCLE2`, each its own setting), reads one back, subscribes to the
//! measured value of `CYCLE1` and prints a few updates (the first one is
//! the value at the time of subscribing: the service's first-update policy
//! is `current`; the next ones follow the setting with the supply's lag),
//! shows that a current out of range and a set of the read-only `measured`
//! are refused with the device's reason, then stops the supply and waits
//! for its end.
//!
//! Run it from the console, with a server on the example configuration
//! (the measured values differ from run to run):
//!
//! ```console
//! $ troupe exec power-client
//! CYCLE1: current set to 10 A
//! CYCLE2: current set to 20 A
//! CYCLE2: current is 20 A (update #1)
//! CYCLE1 measured #0: 0.33 A
//! CYCLE1 measured #1: 3.17 A
//! CYCLE1 measured #2: 5.13 A
//! CYCLE1 measured #3: 6.51 A
//! CYCLE1 measured #4: 7.49 A
//! CYCLE1 measured #5: 8.21 A
//! CYCLE1: 150 A refused: ps1/current: 150 A is out of range: the current is from 0 to 100 A
//! CYCLE1: measured refused: ps1/measured: measured is read-only: set current instead
//! power-supply 5 stopped
//! ```

use serde_json::json;
use std::time::Duration;
use troupe::{DeviceClient, Error, State, This};

/// The deadline of each call, and of the wait for each update.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The device of `power-supply`.
const DEVICE: &str = "ps1";

/// How many updates of the measured value are printed (the first one
/// included).
const UPDATES: usize = 6;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let this = This::init().await?;
    let supply = this.start("power-supply", &[DEVICE]).await?;
    // The supply says it is running once it serves; one whose device is
    // taken ends in error instead.
    let state = supply
        .wait_for_state(&[State::Running], Some(CALL_TIMEOUT))
        .await?
        .state;
    anyhow::ensure!(
        state == State::Running,
        "power-supply {} ended before serving: {state}",
        supply.id()
    );
    let client = DeviceClient::new(this.server().session()).with_timeout(CALL_TIMEOUT);
    let current = format!("{DEVICE}/current");
    let measured = format!("{DEVICE}/measured");

    // Each selector has its own setting.
    for (selector, amps) in [("CYCLE1", 10.0), ("CYCLE2", 20.0)] {
        client.set(&current, json!(amps), Some(selector)).await?;
        println!("{selector}: current set to {amps} A");
    }
    let (value, header) = client.get(&current, Some("CYCLE2")).await?;
    let amps = value.as_f64().unwrap_or(f64::NAN);
    println!("CYCLE2: current is {amps} A (update #{})", header.seq);

    // The measured value of CYCLE1: the value now, then one update per
    // poll of the supply (it polls only while someone monitors).
    let mut updates = client.subscribe(&measured, Some("CYCLE1")).await?;
    for _ in 0..UPDATES {
        let update = updates.next(CALL_TIMEOUT).await?;
        let selector = update.header.selector.as_deref().unwrap_or("-");
        match update.value {
            Ok(v) => {
                let amps = v.as_f64().unwrap_or(f64::NAN);
                println!("{selector} measured #{}: {amps:.2} A", update.header.seq);
            }
            Err(e) => println!("{selector} measured #{}: error: {e}", update.header.seq),
        }
    }

    // The device refuses what it cannot do, and says why.
    match client.set(&current, json!(150), Some("CYCLE1")).await {
        Err(Error::Refused(reason)) => println!("CYCLE1: 150 A refused: {reason}"),
        other => anyhow::bail!("a current of 150 A was not refused: {other:?}"),
    }
    match client.set(&measured, json!(1), Some("CYCLE1")).await {
        Err(Error::Refused(reason)) => println!("CYCLE1: measured refused: {reason}"),
        other => anyhow::bail!("a set of measured was not refused: {other:?}"),
    }
    // Stopped while CYCLE1 is still monitored: the supply stops polling
    // with the service. (Dropping `updates` first would stop the polling
    // too, a moment later: the supply would see the subscription go.)
    let info = supply.stop_and_wait(Some(CALL_TIMEOUT)).await?;
    println!("power-supply {} {}", info.id, info.state);
    drop(updates);
    Ok(())
}
