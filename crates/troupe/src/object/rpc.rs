//! JSON-RPC 2.0 on the wire, and what an object is to the library: the
//! [`Object`] trait, [`Params`], [`RpcError`] and [`Description`]. No I/O.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;
use std::future::Future;
use std::pin::Pin;

/// An error of a remote call, as JSON-RPC 2.0 carries it: a code, a
/// message and optional data.
///
/// The standard codes have constructors ([`RpcError::method_not_found`],
/// [`RpcError::invalid_params`], [`RpcError::internal`]); an application
/// error has a code of the application's choice
/// ([`RpcError::application`]). Any `std::error::Error` converts into an
/// application error with code [`RpcError::APPLICATION`] and its text as
/// the message, so that methods returning `Result<T, E>` work with `?`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RpcError {
    /// The code: standard (`-32700`, `-32600` to `-32603`) or the
    /// application's.
    pub code: i64,
    /// What went wrong, for people.
    pub message: String,
    /// More about it, as the object chose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl RpcError {
    /// The request is not valid JSON.
    pub const PARSE_ERROR: i64 = -32700;
    /// The JSON is not a valid request.
    pub const INVALID_REQUEST: i64 = -32600;
    /// No such method (or attribute).
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// The parameters do not fit the method.
    pub const INVALID_PARAMS: i64 = -32602;
    /// The object failed inside (a panic in a method, say).
    pub const INTERNAL_ERROR: i64 = -32603;
    /// The code of an application error converted from a
    /// `std::error::Error` or a string.
    pub const APPLICATION: i64 = 1;

    /// An error with any code.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        RpcError {
            code,
            message: message.into(),
            data: None,
        }
    }

    /// The same error carrying `data`.
    #[must_use]
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    /// `-32601`: the object has no method `method`.
    pub fn method_not_found(method: &str) -> Self {
        RpcError::new(
            Self::METHOD_NOT_FOUND,
            format!("method not found: {method}"),
        )
    }

    /// `-32602`: the parameters do not fit.
    pub fn invalid_params(why: impl fmt::Display) -> Self {
        RpcError::new(Self::INVALID_PARAMS, format!("invalid params: {why}"))
    }

    /// `-32603`: the object failed inside.
    pub fn internal(why: impl fmt::Display) -> Self {
        RpcError::new(Self::INTERNAL_ERROR, format!("internal error: {why}"))
    }

    /// `-32700`: not JSON.
    pub fn parse_error(why: impl fmt::Display) -> Self {
        RpcError::new(Self::PARSE_ERROR, format!("parse error: {why}"))
    }

    /// `-32600`: JSON, but not a request.
    pub fn invalid_request(why: impl fmt::Display) -> Self {
        RpcError::new(Self::INVALID_REQUEST, format!("invalid request: {why}"))
    }

    /// An application error with its own code.
    pub fn application(code: i64, message: impl Into<String>) -> Self {
        RpcError::new(code, message)
    }

    /// Whether the code is one of JSON-RPC's own (`-32768` to `-32000`).
    pub fn is_standard(&self) -> bool {
        (-32768..=-32000).contains(&self.code)
    }
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (code {})", self.message, self.code)
    }
}

// Not `std::error::Error`, so that every error type converts into it (as
// `anyhow::Error` does): `?` works in methods that return `RpcError`.
impl<E: std::error::Error> From<E> for RpcError {
    fn from(e: E) -> Self {
        RpcError::new(Self::APPLICATION, e.to_string())
    }
}

/// The parameters of a call: none, positional or named.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Params {
    /// No `params` member.
    #[default]
    None,
    /// `params` is an array.
    Array(Vec<Value>),
    /// `params` is an object.
    Object(Map<String, Value>),
}

impl Params {
    /// The parameters of a request's `params` member (`None` when absent).
    ///
    /// # Errors
    /// `-32600` when `params` is neither an array nor an object.
    pub fn from_value(params: Option<Value>) -> Result<Self, RpcError> {
        match params {
            None => Ok(Params::None),
            Some(Value::Array(a)) => Ok(Params::Array(a)),
            Some(Value::Object(o)) => Ok(Params::Object(o)),
            Some(other) => Err(RpcError::invalid_request(format!(
                "params must be an array or an object, not {}",
                kind_of(&other)
            ))),
        }
    }

    /// Back to a JSON value (`None` for no parameters).
    pub fn into_value(self) -> Option<Value> {
        match self {
            Params::None => None,
            Params::Array(a) => Some(Value::Array(a)),
            Params::Object(o) => Some(Value::Object(o)),
        }
    }

    /// The parameter at `index`, or named `name`, as a `T`. A missing one
    /// is taken as `null`, so that an `Option` parameter may be left out.
    ///
    /// # Errors
    /// `-32602` when it is missing (and `T` is not an `Option`) or does not
    /// decode as a `T`.
    pub fn arg<T: serde::de::DeserializeOwned>(
        &self,
        index: usize,
        name: &str,
    ) -> Result<T, RpcError> {
        let value = match self {
            Params::None => None,
            Params::Array(a) => a.get(index),
            Params::Object(o) => o.get(name),
        };
        let missing = value.is_none();
        T::deserialize(value.unwrap_or(&Value::Null)).map_err(|e| {
            if missing {
                RpcError::invalid_params(format!("missing parameter {name}"))
            } else {
                RpcError::invalid_params(format!("parameter {name}: {e}"))
            }
        })
    }

    /// Checks that nothing beyond `names` was given: at most
    /// `names.len()` positional parameters, or only named ones in `names`.
    ///
    /// # Errors
    /// `-32602` naming the extra parameter.
    pub fn expect_only(&self, names: &[&str]) -> Result<(), RpcError> {
        match self {
            Params::None => Ok(()),
            Params::Array(a) if a.len() > names.len() => Err(RpcError::invalid_params(format!(
                "{} parameters given, at most {} expected",
                a.len(),
                names.len()
            ))),
            Params::Array(_) => Ok(()),
            Params::Object(o) => match o.keys().find(|k| !names.contains(&k.as_str())) {
                Some(extra) => Err(RpcError::invalid_params(format!(
                    "unknown parameter {extra}"
                ))),
                None => Ok(()),
            },
        }
    }
}

/// What kind of JSON value `v` is, for messages.
pub(crate) fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A parameter of a method, as introspection shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamInfo {
    /// Its name (what named calls use).
    pub name: String,
    /// Its type, as written in the source (`f64`, `Option<String>`).
    #[serde(rename = "type")]
    pub ty: String,
}

/// A method of an object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MethodInfo {
    /// Its name.
    pub name: String,
    /// Its parameters, in positional order.
    pub params: Vec<ParamInfo>,
    /// What it returns, as written in the source (`()` for nothing).
    pub returns: String,
    /// Its documentation (first paragraph of its doc comment), if any.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub doc: String,
}

/// An attribute of an object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttributeInfo {
    /// Its name.
    pub name: String,
    /// Its type, as written in the source.
    #[serde(rename = "type")]
    pub ty: String,
    /// Whether it can be written (`rpc.set`).
    pub writable: bool,
    /// Its documentation, if any.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub doc: String,
}

/// What an object offers: its methods and attributes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Description {
    /// The name of its type (for people).
    #[serde(rename = "type")]
    pub type_name: String,
    /// Its methods, sorted by name.
    pub methods: Vec<MethodInfo>,
    /// Its attributes, sorted by name.
    pub attributes: Vec<AttributeInfo>,
}

/// The future of a call into an [`Object`].
pub type CallFuture<'a> = Pin<Box<dyn Future<Output = Result<Value, RpcError>> + Send + 'a>>;

/// An object shared on the network: what
/// [`serve`](crate::object::serve) needs.
///
/// `#[troupe::object]` on an `impl` block writes this for you; write it by
/// hand for an object whose methods are only known at run time.
///
/// The object is served **one call at a time**, in the order the calls
/// arrive, with `&mut self`: it needs no locks of its own. A call that
/// takes long delays the ones behind it (their callers' timeouts still
/// hold).
pub trait Object: Send + 'static {
    /// Its methods and attributes.
    fn describe(&self) -> Description;

    /// Calls `method` with `params`.
    ///
    /// Unknown methods give [`RpcError::method_not_found`], parameters that
    /// do not fit give [`RpcError::invalid_params`].
    fn call<'a>(&'a mut self, method: &'a str, params: Params) -> CallFuture<'a>;

    /// Reads the attribute `name`.
    ///
    /// The default has none: [`RpcError::method_not_found`].
    fn get<'a>(&'a mut self, name: &'a str) -> CallFuture<'a> {
        Box::pin(std::future::ready(Err(no_attribute(name))))
    }

    /// Writes the attribute `name`; the result is `null` on success.
    ///
    /// The default has none: [`RpcError::method_not_found`].
    fn set<'a>(&'a mut self, name: &'a str, value: Value) -> CallFuture<'a> {
        let _ = value;
        Box::pin(std::future::ready(Err(no_attribute(name))))
    }
}

/// The error for an attribute that does not exist.
pub fn no_attribute(name: &str) -> RpcError {
    RpcError::new(
        RpcError::METHOD_NOT_FOUND,
        format!("attribute not found: {name}"),
    )
}

/// The error for an attribute that cannot be written.
pub fn read_only(name: &str) -> RpcError {
    RpcError::invalid_params(format!("attribute {name} is read-only"))
}

/// The reserved method that reads an attribute: params `{"name": ...}` or
/// `[name]`.
pub const GET: &str = "rpc.get";
/// The reserved method that writes an attribute: params
/// `{"name": ..., "value": ...}` or `[name, value]`.
pub const SET: &str = "rpc.set";
/// The reserved method that describes the object: no params.
pub const DESCRIBE: &str = "rpc.describe";

/// A JSON-RPC 2.0 request, as sent.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct RequestOut<'a> {
    pub jsonrpc: &'static str,
    pub method: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub params: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
}

/// A JSON-RPC 2.0 response, as received.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ResponseIn {
    #[serde(default)]
    pub result: Option<Value>,
    #[serde(default)]
    pub error: Option<RpcError>,
}

/// One request of a body, checked.
struct Call {
    id: Option<Value>,
    method: String,
    params: Params,
}

/// Checks one request of a body. `Err` carries the id (or `null`) to
/// answer with.
fn check(request: Value) -> Result<Call, (Value, RpcError)> {
    let Value::Object(mut o) = request else {
        return Err((
            Value::Null,
            RpcError::invalid_request(format!("a request is an object, not {}", kind_of(&request))),
        ));
    };
    // An id is a string, a number or null; a request without one is a
    // notification.
    let id = o.remove("id");
    let answer_id = id.clone().unwrap_or(Value::Null);
    if let Some(bad) = id
        .as_ref()
        .filter(|v| !matches!(v, Value::String(_) | Value::Number(_) | Value::Null))
    {
        return Err((
            Value::Null,
            RpcError::invalid_request(format!(
                "id must be a string or a number, not {}",
                kind_of(bad)
            )),
        ));
    }
    if o.get("jsonrpc") != Some(&Value::String("2.0".into())) {
        return Err((
            answer_id,
            RpcError::invalid_request("jsonrpc must be \"2.0\""),
        ));
    }
    let method = match o.remove("method") {
        Some(Value::String(m)) => m,
        Some(other) => {
            return Err((
                answer_id,
                RpcError::invalid_request(format!(
                    "method must be a string, not {}",
                    kind_of(&other)
                )),
            ))
        }
        None => return Err((answer_id, RpcError::invalid_request("no method"))),
    };
    let params = Params::from_value(o.remove("params")).map_err(|e| (answer_id.clone(), e))?;
    Ok(Call { id, method, params })
}

/// The response to a request with `id`.
fn response(id: Value, outcome: Result<Value, RpcError>) -> Value {
    match outcome {
        Ok(result) => serde_json::json!({"jsonrpc": "2.0", "result": result, "id": id}),
        Err(error) => serde_json::json!({"jsonrpc": "2.0", "error": error, "id": id}),
    }
}

/// Runs one checked call on `object`; the reserved `rpc.*` methods read and
/// write attributes and describe the object.
async fn run<O: Object + ?Sized>(
    object: &mut O,
    described: &Value,
    call: Call,
) -> Result<Value, RpcError> {
    let Call { method, params, .. } = call;
    match method.as_str() {
        GET => {
            params.expect_only(&["name"])?;
            let name: String = params.arg(0, "name")?;
            object.get(&name).await
        }
        SET => {
            params.expect_only(&["name", "value"])?;
            let name: String = params.arg(0, "name")?;
            let value = match &params {
                Params::Array(a) => a.get(1).cloned(),
                Params::Object(o) => o.get("value").cloned(),
                Params::None => None,
            }
            .ok_or_else(|| RpcError::invalid_params("missing parameter value"))?;
            object.set(&name, value).await
        }
        DESCRIBE => {
            params.expect_only(&[])?;
            Ok(described.clone())
        }
        _ => object.call(&method, params).await,
    }
}

/// Serves one JSON-RPC 2.0 body (a request, or a batch of them) on
/// `object`: the response body, or `None` when nothing is to be answered
/// (notifications only). `described` is the object's description as JSON.
///
/// A method that panics gives `-32603` to its caller, and the object goes
/// on serving.
pub async fn serve_body<O: Object + ?Sized>(
    object: &mut O,
    described: &Value,
    body: &[u8],
) -> Option<Vec<u8>> {
    let parsed: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return Some(encode(&response(
                Value::Null,
                Err(RpcError::parse_error(e)),
            )));
        }
    };
    match parsed {
        Value::Array(batch) if batch.is_empty() => Some(encode(&response(
            Value::Null,
            Err(RpcError::invalid_request("empty batch")),
        ))),
        Value::Array(batch) => {
            let mut answers = Vec::new();
            for request in batch {
                if let Some(answer) = serve_one(object, described, request).await {
                    answers.push(answer);
                }
            }
            (!answers.is_empty()).then(|| encode(&Value::Array(answers)))
        }
        request => serve_one(object, described, request)
            .await
            .map(|a| encode(&a)),
    }
}

/// Serves one request; its response, or `None` for a notification.
async fn serve_one<O: Object + ?Sized>(
    object: &mut O,
    described: &Value,
    request: Value,
) -> Option<Value> {
    match check(request) {
        Err((id, error)) => Some(response(id, Err(error))),
        Ok(call) => {
            let id = call.id.clone();
            let method = call.method.clone();
            let outcome = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(run(
                object, described, call,
            )))
            .await
            .unwrap_or_else(|panic| {
                let why = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".into());
                tracing::warn!(method, "a remote call panicked: {why}");
                Err(RpcError::internal(format!("{method} panicked: {why}")))
            });
            id.map(|id| response(id, outcome))
        }
    }
}

fn encode(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("a JSON value encodes")
}
