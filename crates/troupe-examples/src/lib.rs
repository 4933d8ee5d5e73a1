//! What the example programs share. Each program is one file of
//! `src/bin`; the remote object example's type lives here, so that its
//! server (`camera-object`) and its client (`camera-client`) use the same
//! definition: the object, its typed client and the types they exchange.
//!
//! ```no_run
//! use troupe_examples::camera::CameraClient;
//! # async fn demo(session: &troupe::Session) -> troupe::Result<()> {
//! let camera = CameraClient::connect(session, "camera");
//! camera.open_shutter().await?;
//! camera.set_exposure(0.025).await?;
//! let frames = camera.grab(3).await?;
//! # Ok(())
//! # }
//! ```

pub mod camera;
