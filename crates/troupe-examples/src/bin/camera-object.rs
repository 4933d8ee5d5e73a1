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
//! It also shows the two other parts of the ROC model: after every call
//! that changes the camera it publishes the camera's state in the realm's
//! status tree under `camera.<id>` (`troupe status camera --follow`), and
//! it sends a log record for every call (`troupe logs --app camera-object`).
//! Both come from a wrapper around the camera, [`Reported`]: an
//! [`Object`] written by hand that passes each call on.
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

use serde_json::Value;
use troupe::object::{CallFuture, Description, Object, Params};
use troupe::status::StatusUpdater;
use troupe::This;
use troupe_examples::camera::{Camera, DEFAULT_ID};

/// The camera, with its state published in the status tree and a log
/// record for every call.
struct Reported {
    camera: Camera,
    status: StatusUpdater,
    /// Where in the tree: `camera.<id>`.
    path: String,
}

impl Reported {
    /// Logs what `what` did and publishes the camera's state.
    async fn report(&self, what: &str, ok: bool) {
        if ok {
            tracing::info!(call = what, "served");
        } else {
            tracing::warn!(call = what, "refused");
        }
        self.publish().await;
    }

    /// Publishes the camera's state.
    async fn publish(&self) {
        if let Err(e) = self.status.emit(&self.path, &self.camera.status()).await {
            tracing::warn!(error = %e, "camera state not published");
        }
    }
}

impl Object for Reported {
    fn describe(&self) -> Description {
        self.camera.describe()
    }

    fn call<'a>(&'a mut self, method: &'a str, params: Params) -> CallFuture<'a> {
        Box::pin(async move {
            let result = self.camera.call(method, params).await;
            self.report(method, result.is_ok()).await;
            result
        })
    }

    fn get<'a>(&'a mut self, name: &'a str) -> CallFuture<'a> {
        self.camera.get(name)
    }

    fn set<'a>(&'a mut self, name: &'a str, value: Value) -> CallFuture<'a> {
        Box::pin(async move {
            let result = self.camera.set(name, value).await;
            self.report(&format!("set {name}"), result.is_ok()).await;
            result
        })
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let this = This::init().await?;
    let mut stop = this.on_stop().await?;
    let id = std::env::args()
        .nth(1)
        .unwrap_or_else(|| DEFAULT_ID.to_string());
    let session = this.server().session().clone();
    // Log records go to the network only: this program's standard output
    // is its own story of what the camera does.
    let logs = troupe::log::init_with(
        &session,
        troupe::log::LogOptions {
            stderr: false,
            ..troupe::log::LogOptions::default()
        },
    )
    .await?;
    let camera = Reported {
        camera: Camera::new(),
        status: StatusUpdater::new(&session).await?,
        path: format!("camera.{id}"),
    };
    camera.publish().await;
    let mut object = troupe::object::serve(&session, &id, camera).await?;
    // Its app starts manually (`starting_time = "manual"`): running means
    // serving, and a camera whose id is taken ends in error, never running.
    this.set_running().await?;
    println!("serving the camera as object {id}");
    tracing::info!(id, "serving the camera");

    tokio::select! {
        () = stop.wait() => {}
        // The id was lost to an older claim, or the session closed.
        e = object.closed() => return Err(e.into()),
    }
    object.stop().await;
    tracing::info!("stopped serving");
    // What is still queued goes out before the process ends.
    logs.flush(std::time::Duration::from_secs(2)).await?;
    println!("stopped serving {id}");
    Ok(())
}
