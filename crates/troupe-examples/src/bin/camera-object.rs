//! `camera-object`: a remote object, the serving side of `camera-client`.
//!
//! This application serves a simulated camera (`troupe_examples::camera`)
//! as the remote object `camera`, or under the id given as its first
//! argument. The id is unique in the realm: a second server of it fails
//! with "name taken". Methods `open_shutter`, `close_shutter`,
//! `grab(count)` (application error 10 while the shutter is closed) and
//! `status`; attributes `exposure` (read-write, seconds), `fps` and
//! `shutter_open` (read-only). It says it is running once it serves (its
//! app has `starting_time = "manual"`), prints what the camera does, and
//! serves until it is asked to stop: it handles stop requests itself
//! (`This::on_stop`), finishes the call at hand, and ends `stopped`.
//!
//! `camera-client` starts it; or run it alone and drive it from the
//! console:
//!
//! ```console
//! $ troupe start camera-object
//! 7
//! $ troupe describe camera
//! $ troupe call camera open_shutter
//! null
//! $ troupe attr camera exposure 0.05
//! $ troupe call camera grab 2
//! $ troupe stop camera-object
//! 7 camera-object stopped (exit code 0)
//! ```

use troupe::This;
use troupe_examples::camera::{Camera, DEFAULT_ID};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let this = This::init().await?;
    let mut stop = this.on_stop().await?;
    let id = std::env::args()
        .nth(1)
        .unwrap_or_else(|| DEFAULT_ID.to_string());
    let session = this.server().session().clone();
    let mut object = troupe::object::serve(&session, &id, Camera::new()).await?;
    // Its app starts manually (`starting_time = "manual"`): running means
    // serving, and a camera whose id is taken ends in error, never running.
    this.set_running().await?;
    println!("serving the camera as object {id}");

    tokio::select! {
        () = stop.wait() => {}
        // The id was lost to an older claim, or the session closed.
        e = object.closed() => return Err(e.into()),
    }
    object.stop().await;
    println!("stopped serving {id}");
    Ok(())
}
