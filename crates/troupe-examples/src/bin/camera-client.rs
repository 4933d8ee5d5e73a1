//! `camera-client`: a remote object, the client side of `camera-object`.
//!
//! This application starts `camera-object` through its own server, linked
//! to itself, waits until it serves, and drives the camera through the typed client that
//! `#[troupe::object]` wrote (`CameraClient`): it opens the shutter, sets
//! the exposure, reads the frame rate, grabs frames, shows that a bad
//! exposure and a grab with the shutter closed are refused with JSON-RPC
//! errors, and makes one dynamic call by name (`status`). Then it stops the
//! camera and waits for its end. The object id is `camera`, or the first
//! argument.
//!
//! Run it from the console, with a server on the example configuration:
//!
//! ```console
//! $ troupe exec camera-client
//! shutter open: true
//! exposure 0.025 s: 40.0 fps
//! frame 1: 640x480, exposure 0.025 s, mean level 1280
//! frame 2: 640x480, exposure 0.025 s, mean level 1280
//! frame 3: 640x480, exposure 0.025 s, mean level 1280
//! exposure -1 refused: invalid params: the exposure is from 0.000001 s to 10 s, not -1 s (code -32602)
//! grab refused: shutter closed: call open_shutter first (code 10)
//! status: {"exposure":0.025,"fps":40.0,"frames_grabbed":3,"shutter_open":false}
//! camera-object 2 stopped
//! ```

use serde_json::json;
use std::time::Duration;
use troupe::{Error, State, This};
use troupe_examples::camera::{CameraClient, DEFAULT_ID, SHUTTER_CLOSED};

/// The deadline of each call; the first one also waits this long, at most,
/// for the camera to appear.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let this = This::init().await?;
    let id = std::env::args()
        .nth(1)
        .unwrap_or_else(|| DEFAULT_ID.to_string());
    let instance = this.start("camera-object", &[&id]).await?;
    let session = this.server().session().clone();
    let camera = CameraClient::new(session.object(&id).with_timeout(CALL_TIMEOUT));

    // The camera says it is running once it serves; one whose id is taken
    // ends in error instead. The first call then connects to it (waiting,
    // bounded, for the object to be seen from here).
    let state = instance
        .wait_for_state(&[State::Running], Some(CALL_TIMEOUT))
        .await?
        .state;
    anyhow::ensure!(
        state == State::Running,
        "camera-object {} ended before serving: {state}",
        instance.id()
    );
    camera.open_shutter().await?;
    println!("shutter open: {}", camera.shutter_open().await?);

    camera.set_exposure(0.025).await?;
    let (exposure, fps) = (camera.exposure().await?, camera.fps().await?);
    println!("exposure {exposure} s: {fps:.1} fps");
    for frame in camera.grab(3).await? {
        println!(
            "frame {}: {}x{}, exposure {} s, mean level {}",
            frame.number, frame.width, frame.height, frame.exposure, frame.mean_level
        );
    }

    match camera.set_exposure(-1.0).await {
        Err(Error::Rpc(e)) => println!("exposure -1 refused: {e}"),
        other => anyhow::bail!("an exposure of -1 s was not refused: {other:?}"),
    }
    camera.close_shutter().await?;
    match camera.grab(1).await {
        Err(Error::Rpc(e)) if e.code == SHUTTER_CLOSED => println!("grab refused: {e}"),
        other => anyhow::bail!("a grab with the shutter closed was not refused: {other:?}"),
    }

    // Any method by name, with JSON parameters: what the typed client does
    // underneath.
    let status = session.object(&id).call("status", json!([])).await?;
    println!("status: {status}");

    let info = instance.stop_and_wait(Some(CALL_TIMEOUT)).await?;
    println!("camera-object {} {}", info.id, info.state);
    Ok(())
}
