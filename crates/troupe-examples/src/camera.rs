//! A simulated camera, shared on the network as a remote object with
//! `#[troupe::object]`: the object that `camera-object` serves and that
//! `camera-client` drives through the typed client [`CameraClient`].
//!
//! - Methods: [`open_shutter`](Camera::open_shutter),
//!   [`close_shutter`](Camera::close_shutter), [`grab`](Camera::grab)
//!   (refused with the application error [`SHUTTER_CLOSED`] while the
//!   shutter is closed) and [`status`](Camera::status).
//! - Attributes: `exposure` (read-write, in seconds, from [`MIN_EXPOSURE`]
//!   to [`MAX_EXPOSURE`]; anything else is refused with `-32602`, invalid
//!   params), `fps` (read-only: one frame per exposure, at most
//!   [`MAX_FPS`]) and `shutter_open` (read-only).
//!
//! Grabbing takes the time the frames would: `count / fps` seconds, at most
//! [`MAX_GRAB_TIME`] per call. The object is served one call at a time, so
//! it needs no locks. Each change is printed on standard output: that is
//! the serving instance's log.

use serde::{Deserialize, Serialize};
use std::time::Duration;
use troupe::object::RpcError;

/// The object id `camera-object` serves under when given none.
pub const DEFAULT_ID: &str = "camera";

/// The application error code of [`Camera::grab`] while the shutter is
/// closed.
pub const SHUTTER_CLOSED: i64 = 10;

/// The shortest exposure accepted, in seconds (1 µs).
pub const MIN_EXPOSURE: f64 = 1e-6;

/// The longest exposure accepted, in seconds.
pub const MAX_EXPOSURE: f64 = 10.0;

/// The sensor's readout limit: no more frames per second than this, however
/// short the exposure.
pub const MAX_FPS: f64 = 100.0;

/// The longest a grab may take; a longer one is refused (grab fewer frames).
pub const MAX_GRAB_TIME: Duration = Duration::from_secs(2);

/// The exposure of a new camera, in seconds.
pub const INITIAL_EXPOSURE: f64 = 0.01;

/// Width of a frame, in pixels.
pub const WIDTH: u32 = 640;

/// Height of a frame, in pixels.
pub const HEIGHT: u32 = 480;

/// The largest pixel value (a 12-bit sensor).
pub const FULL_SCALE: u16 = 4095;

/// The exposure at which the simulated scene fills the sensor, in seconds.
const SATURATION: f64 = 0.08;

/// One frame grabbed by the camera (its pixels are left out: a simulated
/// scene of uniform brightness).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Frame {
    /// Its number: 1 for the first frame the camera ever grabbed.
    pub number: u64,
    /// The exposure it was taken with, in seconds.
    pub exposure: f64,
    /// Width, in pixels.
    pub width: u32,
    /// Height, in pixels.
    pub height: u32,
    /// The mean pixel value, 0 to [`FULL_SCALE`].
    pub mean_level: u16,
}

/// What [`Camera::status`] tells.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// Whether the shutter is open.
    pub shutter_open: bool,
    /// The exposure, in seconds.
    pub exposure: f64,
    /// Frames per second at this exposure.
    pub fps: f64,
    /// Frames grabbed since the camera started.
    pub frames_grabbed: u64,
}

/// A simulated camera: a shutter, an exposure time, and frames.
#[derive(Debug, Clone, PartialEq)]
pub struct Camera {
    shutter_open: bool,
    exposure: f64,
    frames_grabbed: u64,
}

impl Default for Camera {
    fn default() -> Self {
        Camera::new()
    }
}

impl Camera {
    /// A camera with its shutter closed and an exposure of
    /// [`INITIAL_EXPOSURE`].
    pub fn new() -> Self {
        Camera {
            shutter_open: false,
            exposure: INITIAL_EXPOSURE,
            frames_grabbed: 0,
        }
    }
}

#[troupe::object]
impl Camera {
    /// Opens the shutter (nothing happens if it is open).
    pub fn open_shutter(&mut self) {
        if !self.shutter_open {
            self.shutter_open = true;
            println!("shutter opened");
        }
    }

    /// Closes the shutter (nothing happens if it is closed).
    pub fn close_shutter(&mut self) {
        if self.shutter_open {
            self.shutter_open = false;
            println!("shutter closed");
        }
    }

    /// Grabs `count` frames, taking the time they take (`count / fps`).
    ///
    /// Refused with error 10 (shutter closed) while the shutter is closed,
    /// and with invalid params for no frames or a grab longer than 2 s.
    pub async fn grab(&mut self, count: u32) -> Result<Vec<Frame>, RpcError> {
        if count == 0 {
            return Err(RpcError::invalid_params("count must be at least 1"));
        }
        let time = f64::from(count) / self.fps();
        if time > MAX_GRAB_TIME.as_secs_f64() {
            return Err(RpcError::invalid_params(format!(
                "{count} frames at {} fps take {time:.1} s, more than the {} s a grab may \
                 take: grab fewer",
                self.fps(),
                MAX_GRAB_TIME.as_secs()
            )));
        }
        if !self.shutter_open {
            println!("grab of {count} refused: shutter closed");
            return Err(RpcError::application(
                SHUTTER_CLOSED,
                "shutter closed: call open_shutter first",
            ));
        }
        tokio::time::sleep(Duration::from_secs_f64(time)).await;
        let level = (self.exposure / SATURATION).min(1.0) * f64::from(FULL_SCALE);
        let frames: Vec<Frame> = (1..=u64::from(count))
            .map(|i| Frame {
                number: self.frames_grabbed + i,
                exposure: self.exposure,
                width: WIDTH,
                height: HEIGHT,
                mean_level: level.round() as u16,
            })
            .collect();
        self.frames_grabbed += u64::from(count);
        let frames_word = if count == 1 { "frame" } else { "frames" };
        println!(
            "grabbed {count} {frames_word} (total {}) at {} s",
            self.frames_grabbed, self.exposure
        );
        Ok(frames)
    }

    /// The whole state at once: shutter, exposure, fps, frames grabbed.
    pub fn status(&self) -> Status {
        Status {
            shutter_open: self.shutter_open,
            exposure: self.exposure,
            fps: self.fps(),
            frames_grabbed: self.frames_grabbed,
        }
    }

    /// The exposure time, in seconds.
    #[troupe(get)]
    pub fn exposure(&self) -> f64 {
        self.exposure
    }

    /// Sets the exposure time, in seconds: from 1 µs to 10 s.
    #[troupe(set)]
    pub fn set_exposure(&mut self, value: f64) -> Result<(), RpcError> {
        if !(MIN_EXPOSURE..=MAX_EXPOSURE).contains(&value) {
            return Err(RpcError::invalid_params(format!(
                "the exposure is from {MIN_EXPOSURE} s to {MAX_EXPOSURE} s, not {value} s"
            )));
        }
        self.exposure = value;
        println!("exposure set to {value} s ({} fps)", self.fps());
        Ok(())
    }

    /// Frames per second: one frame per exposure, at most 100 (read-only).
    #[troupe(get)]
    pub fn fps(&self) -> f64 {
        (1.0 / self.exposure).min(MAX_FPS)
    }

    /// Whether the shutter is open (read-only).
    #[troupe(get)]
    pub fn shutter_open(&self) -> bool {
        self.shutter_open
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use troupe::object::{Object, Params};

    fn params(v: serde_json::Value) -> Params {
        Params::from_value(Some(v)).unwrap()
    }

    #[tokio::test]
    async fn grab_needs_an_open_shutter_and_a_sensible_count() {
        let mut camera = Camera::new();
        let closed = camera.call("grab", params(json!([2]))).await.unwrap_err();
        assert_eq!(closed.code, SHUTTER_CLOSED, "{closed}");
        assert!(closed.message.starts_with("shutter closed"), "{closed}");

        camera.call("open_shutter", Params::None).await.unwrap();
        let none = camera.call("grab", params(json!([0]))).await.unwrap_err();
        assert_eq!(none.code, RpcError::INVALID_PARAMS, "{none}");
        // 300 frames at 100 fps take 3 s: too long for one call.
        let long = camera.call("grab", params(json!({"count": 300}))).await;
        assert_eq!(long.unwrap_err().code, RpcError::INVALID_PARAMS);
        let negative = camera.call("grab", params(json!([-1]))).await;
        assert_eq!(negative.unwrap_err().code, RpcError::INVALID_PARAMS);

        let frames: Vec<Frame> =
            serde_json::from_value(camera.call("grab", params(json!([3]))).await.unwrap()).unwrap();
        let numbers: Vec<u64> = frames.iter().map(|f| f.number).collect();
        assert_eq!(numbers, [1, 2, 3]);
        // 0.01 s of a scene that fills the sensor in 0.08 s: an eighth.
        assert_eq!(frames[0].mean_level, 512);
        let more: Vec<Frame> =
            serde_json::from_value(camera.call("grab", params(json!([1]))).await.unwrap()).unwrap();
        assert_eq!(more[0].number, 4, "numbers go on");
    }

    #[tokio::test]
    async fn exposure_is_checked_and_fps_follows_it() {
        let mut camera = Camera::new();
        assert_eq!(camera.get("fps").await.unwrap(), json!(MAX_FPS));
        camera.set("exposure", json!(0.025)).await.unwrap();
        assert_eq!(camera.get("exposure").await.unwrap(), json!(0.025));
        assert_eq!(camera.get("fps").await.unwrap(), json!(40.0));
        for bad in [json!(0.0), json!(-1.0), json!(3600.0), json!("fast")] {
            let e = camera.set("exposure", bad.clone()).await.unwrap_err();
            assert_eq!(e.code, RpcError::INVALID_PARAMS, "{bad}: {e}");
        }
        assert_eq!(camera.get("exposure").await.unwrap(), json!(0.025));
        for read_only in ["fps", "shutter_open"] {
            let e = camera.set(read_only, json!(1)).await.unwrap_err();
            assert_eq!(e.code, RpcError::INVALID_PARAMS, "{e}");
        }
        let status: Status =
            serde_json::from_value(camera.call("status", Params::None).await.unwrap()).unwrap();
        assert_eq!(
            status,
            Status {
                shutter_open: false,
                exposure: 0.025,
                fps: 40.0,
                frames_grabbed: 0
            }
        );
    }

    #[test]
    fn introspection_shows_the_methods_and_attributes() {
        let d = Camera::new().describe();
        let methods: Vec<&str> = d.methods.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(methods, ["close_shutter", "grab", "open_shutter", "status"]);
        let attributes: Vec<(&str, bool)> = d
            .attributes
            .iter()
            .map(|a| (a.name.as_str(), a.writable))
            .collect();
        assert_eq!(
            attributes,
            [("exposure", true), ("fps", false), ("shutter_open", false)]
        );
        let grab = d.methods.iter().find(|m| m.name == "grab").unwrap();
        assert_eq!(grab.returns, "Vec<Frame>");
        assert_eq!(
            (grab.params[0].name.as_str(), grab.params[0].ty.as_str()),
            ("count", "u32")
        );
    }
}
