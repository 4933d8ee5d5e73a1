//! `#[troupe::object]`: the dispatch it writes, driven through the
//! `Object` trait and through `serve_body` (JSON-RPC bodies), with no
//! network. The typed client needs a network to be called (troupe-testkit
//! does that); here its signatures are checked by the compiler.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::future::Future;
use std::time::Duration;
use troupe::object::{serve_body, Object, ParamInfo, Params, RpcError};

/// Every await in these tests is bounded by this.
const LIMIT: Duration = Duration::from_secs(10);

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: not within {LIMIT:?}"))
}

#[derive(Debug, thiserror::Error)]
enum CameraError {
    #[error("the shutter is jammed")]
    Jammed,
}

/// What a camera is set to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Settings {
    gain: u8,
    mode: String,
}

/// A camera with a shutter.
struct Camera {
    open: bool,
    jammed: bool,
    exposure: f64,
    frames: u32,
    tags: Vec<String>,
    settings: Settings,
}

/// A camera.
#[troupe::object]
impl Camera {
    /// Opens the shutter.
    ///
    /// Waits until it is open.
    pub async fn open_shutter(&mut self) -> Result<(), CameraError> {
        tokio::task::yield_now().await;
        if self.jammed {
            return Err(CameraError::Jammed);
        }
        self.open = true;
        Ok(())
    }

    /// Whether the shutter is open.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Frames per second now.
    pub fn frame_rate(&self) -> f64 {
        1.0 / self.exposure
    }

    /// Grabs `count` frames,
    /// tagged or not.
    pub fn grab(&mut self, count: u32, tag: Option<String>) -> Result<Vec<u8>, RpcError> {
        if !self.open {
            return Err(RpcError::application(42, "the shutter is closed"));
        }
        self.frames += count;
        self.tags.extend(tag);
        Ok(vec![7; count as usize])
    }

    /// The tags so far.
    pub async fn tags(&self) -> Vec<String> {
        self.tags.clone()
    }

    pub fn reset(&mut self) {
        self.frames = 0;
    }

    /// Applies settings; the old ones back.
    pub fn apply(&mut self, mut settings: Settings) -> Settings {
        settings.mode.make_ascii_lowercase();
        std::mem::replace(&mut self.settings, settings)
    }

    /// The exposure time, in seconds.
    #[troupe(get)]
    pub fn exposure(&self) -> f64 {
        self.exposure
    }

    /// Sets the exposure time.
    #[troupe(set)]
    pub fn set_exposure(&mut self, value: f64) -> Result<(), RpcError> {
        if value <= 0.0 {
            return Err(RpcError::invalid_params("the exposure is positive"));
        }
        self.exposure = value;
        Ok(())
    }

    /// Frames grabbed since the last reset.
    #[troupe(get)]
    pub fn frames(&self) -> u32 {
        self.frames
    }

    #[troupe(get = "shutter")]
    pub async fn shutter_state(&self) -> String {
        if self.open { "open" } else { "closed" }.to_string()
    }

    /// Moves the shutter.
    #[troupe(set = "shutter")]
    pub async fn move_shutter(&mut self, state: String) -> Result<(), CameraError> {
        match state.as_str() {
            "open" => self.open_shutter().await,
            _ => {
                self.open = false;
                Ok(())
            }
        }
    }

    #[troupe(skip)]
    pub fn helper(&self) -> u8 {
        1
    }

    #[allow(dead_code)]
    fn private_helper(&self) -> u8 {
        2
    }

    pub fn new() -> Self {
        Camera {
            open: false,
            jammed: false,
            exposure: 0.5,
            frames: 0,
            tags: Vec::new(),
            settings: Settings {
                gain: 1,
                mode: "auto".into(),
            },
        }
    }
}

/// A point; its client has another name, a method returns `Self`, and one
/// is a raw identifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Point {
    x: i32,
    y: i32,
}

#[troupe::object(client = "Plotter")]
impl Point {
    /// The point moved by `(dx, dy)`.
    pub fn moved(&self, dx: i32, dy: i32) -> Self {
        Point {
            x: self.x + dx,
            y: self.y + dy,
        }
    }

    /// What it is.
    pub fn r#type(&self) -> String {
        "point".into()
    }

    /// Moves it.
    pub fn r#move(&mut self, r#to: Point) {
        *self = to;
    }

    #[troupe(get)]
    pub fn x(&self) -> i32 {
        self.x
    }
}

/// An object that exports nothing.
struct Quiet;

#[troupe::object]
impl Quiet {
    #[allow(dead_code)]
    fn hidden(&self) {}
}

fn array(values: Value) -> Params {
    Params::from_value(Some(values)).expect("params")
}

async fn call(o: &mut impl Object, method: &str, params: Params) -> Result<Value, RpcError> {
    within(method, o.call(method, params)).await
}

async fn get(o: &mut impl Object, name: &str) -> Result<Value, RpcError> {
    within(name, o.get(name)).await
}

async fn set(o: &mut impl Object, name: &str, value: Value) -> Result<Value, RpcError> {
    within(name, o.set(name, value)).await
}

#[track_caller]
fn assert_error(r: Result<Value, RpcError>, code: i64, message: &str) {
    match r {
        Err(e) => {
            assert_eq!(e.code, code, "{e}");
            assert!(e.message.contains(message), "{e:?} lacks {message:?}");
        }
        Ok(v) => panic!("expected error {code} ({message}), got {v}"),
    }
}

#[tokio::test]
async fn positional_and_named_params() {
    let mut c = Camera::new();
    call(&mut c, "open_shutter", Params::None).await.unwrap();
    let r = call(&mut c, "grab", array(json!([2, "a"]))).await;
    assert_eq!(r.unwrap(), json!([7, 7]));
    let r = call(&mut c, "grab", array(json!({"tag": "b", "count": 1}))).await;
    assert_eq!(r.unwrap(), json!([7]));
    assert_eq!(c.frames, 3);
    assert_eq!(c.tags, ["a", "b"]);
    // A struct as a parameter and as a result.
    let r = call(
        &mut c,
        "apply",
        array(json!([{"gain": 3, "mode": "MANUAL"}])),
    )
    .await;
    assert_eq!(r.unwrap(), json!({"gain": 1, "mode": "auto"}));
    assert_eq!(
        c.settings,
        Settings {
            gain: 3,
            mode: "manual".into()
        }
    );
}

#[tokio::test]
async fn an_option_param_may_be_left_out() {
    let mut c = Camera::new();
    c.open = true;
    assert_eq!(
        call(&mut c, "grab", array(json!([1]))).await.unwrap(),
        json!([7])
    );
    let r = call(&mut c, "grab", array(json!({"count": 2}))).await;
    assert_eq!(r.unwrap(), json!([7, 7]));
    let r = call(&mut c, "grab", array(json!([1, null]))).await;
    assert_eq!(r.unwrap(), json!([7]));
    assert!(c.tags.is_empty());
    assert_eq!(c.frames, 4);
}

#[tokio::test]
async fn params_that_do_not_fit_are_invalid() {
    let mut c = Camera::new();
    c.open = true;
    let invalid = RpcError::INVALID_PARAMS;
    assert_error(
        call(&mut c, "grab", Params::None).await,
        invalid,
        "missing parameter count",
    );
    assert_error(
        call(&mut c, "grab", array(json!([]))).await,
        invalid,
        "missing parameter count",
    );
    assert_error(
        call(&mut c, "grab", array(json!({"tag": "x"}))).await,
        invalid,
        "missing parameter count",
    );
    assert_error(
        call(&mut c, "grab", array(json!(["two"]))).await,
        invalid,
        "parameter count",
    );
    assert_error(
        call(&mut c, "grab", array(json!([-1]))).await,
        invalid,
        "parameter count",
    );
    assert_error(
        call(&mut c, "grab", array(json!([1, 2]))).await,
        invalid,
        "parameter tag",
    );
    assert_error(
        call(&mut c, "grab", array(json!([1, "a", 3]))).await,
        invalid,
        "3 parameters given, at most 2 expected",
    );
    assert_error(
        call(&mut c, "grab", array(json!({"count": 1, "colour": "red"}))).await,
        invalid,
        "unknown parameter colour",
    );
    assert_error(
        call(&mut c, "is_open", array(json!([true]))).await,
        invalid,
        "1 parameters given, at most 0 expected",
    );
    assert_error(
        call(&mut c, "apply", array(json!([{"gain": 300, "mode": "x"}]))).await,
        invalid,
        "parameter settings",
    );
    // Nothing ran.
    assert_eq!(c.frames, 0);
}

#[tokio::test]
async fn only_exported_methods_are_found() {
    let mut c = Camera::new();
    assert_eq!(c.helper(), 1, "skipped, but still a method of the type");
    for method in [
        "fly",
        "helper",
        "private_helper",
        "new",
        "exposure",
        "set_exposure",
        "",
    ] {
        assert_error(
            call(&mut c, method, Params::None).await,
            RpcError::METHOD_NOT_FOUND,
            &format!("method not found: {method}"),
        );
    }
    let mut q = Quiet;
    assert_error(
        call(&mut q, "hidden", Params::None).await,
        RpcError::METHOD_NOT_FOUND,
        "hidden",
    );
    assert_error(
        get(&mut q, "x").await,
        RpcError::METHOD_NOT_FOUND,
        "attribute not found: x",
    );
    assert_error(
        set(&mut q, "x", json!(1)).await,
        RpcError::METHOD_NOT_FOUND,
        "attribute not found: x",
    );
    let d = q.describe();
    assert_eq!(d.type_name, "Quiet");
    assert!(d.methods.is_empty() && d.attributes.is_empty());
}

#[tokio::test]
async fn application_errors_keep_their_code_and_message() {
    let mut c = Camera::new();
    // An `RpcError` keeps its code.
    let r = call(&mut c, "grab", array(json!([1]))).await;
    assert_eq!(r, Err(RpcError::application(42, "the shutter is closed")));
    // Any `std::error::Error` is code 1 with its text.
    c.jammed = true;
    let r = call(&mut c, "open_shutter", array(json!([]))).await;
    assert_eq!(
        r,
        Err(RpcError::new(
            RpcError::APPLICATION,
            "the shutter is jammed"
        ))
    );
    assert!(!c.open);
}

#[tokio::test]
async fn async_and_sync_methods_change_and_read_the_state() {
    let mut c = Camera::new();
    assert_eq!(
        call(&mut c, "is_open", Params::None).await.unwrap(),
        json!(false)
    );
    // Async, `&mut self`, `Result<(), E>`: null.
    assert_eq!(
        call(&mut c, "open_shutter", Params::None).await.unwrap(),
        Value::Null
    );
    // Sync, `&self`.
    assert_eq!(
        call(&mut c, "is_open", Params::None).await.unwrap(),
        json!(true)
    );
    assert_eq!(
        call(&mut c, "frame_rate", Params::None).await.unwrap(),
        json!(2.0)
    );
    call(&mut c, "grab", array(json!([5, "x"]))).await.unwrap();
    // Async, `&self`.
    assert_eq!(
        call(&mut c, "tags", Params::None).await.unwrap(),
        json!(["x"])
    );
    assert_eq!(get(&mut c, "frames").await.unwrap(), json!(5));
    // Sync, `&mut self`, returns nothing: null.
    assert_eq!(
        call(&mut c, "reset", Params::None).await.unwrap(),
        Value::Null
    );
    assert_eq!(get(&mut c, "frames").await.unwrap(), json!(0));
}

#[tokio::test]
async fn attributes_are_read_and_written() {
    let mut c = Camera::new();
    assert_eq!(get(&mut c, "exposure").await.unwrap(), json!(0.5));
    assert_eq!(
        set(&mut c, "exposure", json!(0.25)).await.unwrap(),
        Value::Null
    );
    assert_eq!(get(&mut c, "exposure").await.unwrap(), json!(0.25));
    assert_eq!(c.exposure, 0.25);
    // A value of the wrong type, and one the setter refuses.
    assert_error(
        set(&mut c, "exposure", json!("fast")).await,
        RpcError::INVALID_PARAMS,
        "attribute exposure: invalid type",
    );
    assert_error(
        set(&mut c, "exposure", json!(-1.0)).await,
        RpcError::INVALID_PARAMS,
        "the exposure is positive",
    );
    assert_eq!(c.exposure, 0.25);
    // Read-only.
    assert_error(
        set(&mut c, "frames", json!(3)).await,
        RpcError::INVALID_PARAMS,
        "attribute frames is read-only",
    );
    // Unknown; methods are not attributes.
    for name in ["nope", "grab", "shutter_state", "move_shutter"] {
        assert_error(
            get(&mut c, name).await,
            RpcError::METHOD_NOT_FOUND,
            &format!("attribute not found: {name}"),
        );
        assert_error(
            set(&mut c, name, json!(1)).await,
            RpcError::METHOD_NOT_FOUND,
            &format!("attribute not found: {name}"),
        );
    }
    // Named accessors, async, with a fallible setter.
    assert_eq!(get(&mut c, "shutter").await.unwrap(), json!("closed"));
    set(&mut c, "shutter", json!("open")).await.unwrap();
    assert_eq!(get(&mut c, "shutter").await.unwrap(), json!("open"));
    c.jammed = true;
    set(&mut c, "shutter", json!("closed")).await.unwrap();
    assert_eq!(
        set(&mut c, "shutter", json!("open")).await,
        Err(RpcError::new(1, "the shutter is jammed"))
    );
}

#[test]
fn describe_lists_methods_and_attributes() {
    let d = Camera::new().describe();
    assert_eq!(d.type_name, "Camera");
    let names: Vec<&str> = d.methods.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "apply",
            "frame_rate",
            "grab",
            "is_open",
            "open_shutter",
            "reset",
            "tags"
        ]
    );
    let grab = &d.methods[2];
    let param = |name: &str, ty: &str| ParamInfo {
        name: name.into(),
        ty: ty.into(),
    };
    assert_eq!(
        grab.params,
        [param("count", "u32"), param("tag", "Option<String>")]
    );
    assert_eq!(grab.returns, "Vec<u8>");
    assert_eq!(grab.doc, "Grabs `count` frames, tagged or not.");
    let open = &d.methods[4];
    assert!(open.params.is_empty());
    assert_eq!(open.returns, "()");
    assert_eq!(open.doc, "Opens the shutter.", "the first paragraph only");
    let reset = &d.methods[5];
    assert_eq!((reset.returns.as_str(), reset.doc.as_str()), ("()", ""));
    assert_eq!(d.methods[0].params, [param("settings", "Settings")]);
    assert_eq!(d.methods[0].returns, "Settings");
    assert_eq!(d.methods[6].returns, "Vec<String>");

    let attrs: Vec<(&str, &str, bool, &str)> = d
        .attributes
        .iter()
        .map(|a| (a.name.as_str(), a.ty.as_str(), a.writable, a.doc.as_str()))
        .collect();
    assert_eq!(
        attrs,
        [
            ("exposure", "f64", true, "The exposure time, in seconds."),
            (
                "frames",
                "u32",
                false,
                "Frames grabbed since the last reset."
            ),
            // The getter has no docs: the setter's.
            ("shutter", "String", true, "Moves the shutter."),
        ]
    );

    let p = Point { x: 1, y: 2 }.describe();
    let names: Vec<&str> = p.methods.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        ["move", "moved", "type"],
        "raw identifiers lose their r#"
    );
    assert_eq!(p.methods[0].params, [param("to", "Point")]);
    assert_eq!(p.methods[1].returns, "Self");
    assert_eq!(p.attributes.len(), 1);
    assert!(!p.attributes[0].writable);
}

#[tokio::test]
async fn raw_identifiers_and_self() {
    let mut p = Point { x: 1, y: 2 };
    assert_eq!(
        call(&mut p, "type", Params::None).await.unwrap(),
        json!("point")
    );
    let r = call(&mut p, "moved", array(json!({"dy": 10, "dx": -1}))).await;
    assert_eq!(r.unwrap(), json!({"x": 0, "y": 12}));
    call(&mut p, "move", array(json!({"to": {"x": 5, "y": 6}})))
        .await
        .unwrap();
    assert_eq!(get(&mut p, "x").await.unwrap(), json!(5));
    assert_error(
        set(&mut p, "x", json!(1)).await,
        RpcError::INVALID_PARAMS,
        "read-only",
    );
}

/// Serves one JSON-RPC body on `o`: the answer as JSON.
async fn serve(o: &mut impl Object, body: Value) -> Value {
    let described = serde_json::to_value(o.describe()).unwrap();
    let body = serde_json::to_vec(&body).unwrap();
    let answer = within("serve_body", serve_body(o, &described, &body))
        .await
        .expect("an answer");
    serde_json::from_slice(&answer).unwrap()
}

#[tokio::test]
async fn json_rpc_bodies_reach_the_generated_dispatch() {
    let mut c = Camera::new();
    let a = serve(
        &mut c,
        json!({"jsonrpc": "2.0", "method": "open_shutter", "id": 1}),
    )
    .await;
    assert_eq!(a, json!({"jsonrpc": "2.0", "result": null, "id": 1}));
    let a = serve(
        &mut c,
        json!([
            {"jsonrpc": "2.0", "method": "grab", "params": {"count": 2}, "id": "a"},
            {"jsonrpc": "2.0", "method": "rpc.set", "params": ["exposure", 0.125], "id": "b"},
            {"jsonrpc": "2.0", "method": "rpc.get", "params": {"name": "exposure"}, "id": "c"},
            {"jsonrpc": "2.0", "method": "rpc.set", "params": ["frames", 1], "id": "d"},
            {"jsonrpc": "2.0", "method": "grab", "params": ["x"], "id": "e"},
            {"jsonrpc": "2.0", "method": "frame_rate", "id": "f"}
        ]),
    )
    .await;
    assert_eq!(a[0]["result"], json!([7, 7]));
    assert_eq!(a[1]["result"], Value::Null);
    assert_eq!(a[2]["result"], json!(0.125));
    assert_eq!(a[3]["error"]["code"], json!(-32602));
    assert_eq!(a[4]["error"]["code"], json!(-32602));
    assert_eq!(a[5]["result"], json!(8.0));
    let a = serve(
        &mut c,
        json!({"jsonrpc": "2.0", "method": "rpc.describe", "id": 2}),
    )
    .await;
    let described: troupe::object::Description =
        serde_json::from_value(a["result"].clone()).unwrap();
    assert_eq!(described, c.describe());
    assert_eq!(
        a["result"]["methods"][2]["params"][1],
        json!({"name": "tag", "type": "Option<String>"})
    );
    c.jammed = true;
    c.open = false;
    let a = serve(
        &mut c,
        json!({"jsonrpc": "2.0", "method": "open_shutter", "params": [], "id": 3}),
    )
    .await;
    assert_eq!(
        a["error"],
        json!({"code": 1, "message": "the shutter is jammed"})
    );
}

/// The typed clients, checked by the compiler only: calling them needs a
/// network (troupe-testkit's object tests do). Not called.
#[allow(dead_code)]
async fn typed_clients(session: &troupe::Session) -> troupe::Result<()> {
    let camera = CameraClient::connect(session, "vnir");
    let () = camera.open_shutter().await?;
    let _: bool = camera.is_open().await?;
    let _: f64 = camera.frame_rate().await?;
    let _: Vec<u8> = camera.grab(2, Some("tag".to_string())).await?;
    let _: Vec<u8> = camera.grab(2, None).await?;
    let _: Vec<String> = camera.tags().await?;
    let () = camera.reset().await?;
    let _: Settings = camera
        .apply(Settings {
            gain: 1,
            mode: "auto".into(),
        })
        .await?;
    let _: f64 = camera.exposure().await?;
    let () = camera.set_exposure(0.1).await?;
    let _: u32 = camera.frames().await?;
    let _: String = camera.shutter_state().await?;
    let () = camera.move_shutter("open".to_string()).await?;
    let dynamic: &troupe::ObjectClient = camera.inner();
    let again = CameraClient::new(dynamic.clone());
    let _ = again.clone();

    let plotter = Plotter::connect(session, "plot");
    let _: Point = plotter.moved(1, 2).await?;
    let _: String = plotter.r#type().await?;
    let () = plotter.r#move(Point { x: 0, y: 0 }).await?;
    let _: i32 = plotter.x().await?;
    Ok(())
}

#[test]
fn typed_clients_are_send_and_sync_handles() {
    fn handle<T: Clone + std::fmt::Debug + Send + Sync + 'static>() -> &'static str {
        std::any::type_name::<T>()
    }
    fn send_future<F: Future + Send>(_: fn(&troupe::Session) -> F) {}
    assert!(handle::<CameraClient>().ends_with("CameraClient"));
    assert!(handle::<Plotter>().ends_with("Plotter"));
    // The client's futures can be spawned.
    fn grab(s: &troupe::Session) -> impl Future<Output = troupe::Result<Vec<u8>>> + Send {
        let c = CameraClient::connect(s, "vnir");
        async move { c.grab(1, None).await }
    }
    send_future(grab);
}
