//! The `#[troupe::object]` attribute macro: a Rust type's `impl` block
//! becomes a remote object, called with JSON-RPC 2.0 over troupe.
//!
//! Use it through the `troupe` crate, as `#[troupe::object]`: the code it
//! writes names `::troupe::...`. On an inherent `impl` block it writes,
//! beside the block (left as it is):
//!
//! - `impl troupe::object::Object for Type`: the dispatch of calls by name,
//!   with parameters by position or by name, attribute reads and writes,
//!   and the description that introspection shows (methods, parameters and
//!   their types as written, return types, the first paragraph of the
//!   docs; attributes, their types, whether they are writable);
//! - `TypeClient`, a typed client: one `async fn` per exported method and
//!   attribute, over the dynamic `troupe::object::ObjectClient`.
//!
//! Exported are the `pub` methods that take `&self` or `&mut self`, unless
//! marked `#[troupe(skip)]`. `#[troupe(get)]` makes a method the reader of
//! an attribute, `#[troupe(set)]` its writer. Mistakes (a reference
//! parameter, `self` by value, a setter without a getter, ...) are compile
//! errors that say what to write instead. See the macro's own docs for all
//! the rules.
//!
//! ```
//! use troupe::object::{Object, Params, RpcError};
//!
//! /// A camera.
//! pub struct Camera {
//!     exposure: f64,
//!     open: bool,
//! }
//!
//! #[troupe::object]
//! impl Camera {
//!     /// Opens the shutter.
//!     pub async fn open_shutter(&mut self) -> Result<(), RpcError> {
//!         if self.open {
//!             return Err(RpcError::application(2, "the shutter is open already"));
//!         }
//!         self.open = true;
//!         Ok(())
//!     }
//!
//!     /// Frames per second now.
//!     pub fn frame_rate(&self) -> f64 {
//!         1.0 / self.exposure
//!     }
//!
//!     /// The exposure time, in seconds.
//!     #[troupe(get)]
//!     pub fn exposure(&self) -> f64 {
//!         self.exposure
//!     }
//!
//!     #[troupe(set)]
//!     pub fn set_exposure(&mut self, value: f64) -> Result<(), RpcError> {
//!         if value <= 0.0 {
//!             return Err(RpcError::invalid_params("the exposure is positive"));
//!         }
//!         self.exposure = value;
//!         Ok(())
//!     }
//! }
//!
//! // What serving the object does with a call:
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let mut camera = Camera { exposure: 0.5, open: false };
//! let fps = camera.call("frame_rate", Params::None).await?;
//! assert_eq!(fps, serde_json::json!(2.0));
//! camera.set("exposure", serde_json::json!(0.25)).await?;
//! assert_eq!(camera.get("exposure").await?, serde_json::json!(0.25));
//! assert_eq!(camera.describe().methods[0].name, "frame_rate");
//! # Ok::<(), RpcError>(())
//! # }).unwrap();
//!
//! // And anywhere else on the network, with the typed client:
//! async fn remote(session: &troupe::Session) -> troupe::Result<()> {
//!     let camera = CameraClient::connect(session, "vnir");
//!     camera.open_shutter().await?;
//!     let fps: f64 = camera.frame_rate().await?;
//!     camera.set_exposure(0.02).await?;
//!     Ok(())
//! }
//! ```

mod emit;
mod model;
mod text;

use proc_macro2::TokenStream;
use quote::{quote, ToTokens};

/// Makes the methods of an inherent `impl` block callable remotely, with
/// JSON-RPC 2.0, and writes a typed client for them.
///
/// ```ignore
/// #[troupe::object]                         // or #[troupe::object(client = "Name")]
/// impl Camera {
///     /// Opens the shutter.                 // docs: shown by introspection
///     pub async fn open_shutter(&mut self) -> Result<(), CameraError> { ... }
///     pub fn grab(&mut self, count: u32, tag: Option<String>) -> Vec<u8> { ... }
///     #[troupe(get)] pub fn exposure(&self) -> f64 { ... }
///     #[troupe(set)] pub fn set_exposure(&mut self, value: f64) { ... }
///     #[troupe(skip)] pub fn helper(&self) {}  // not exported
///     fn private_helper(&self) {}              // not `pub`: not exported
///     pub fn new() -> Self { ... }             // no `self`: not exported
/// }
/// ```
///
/// # The object
///
/// The macro writes `impl troupe::object::Object for Camera`:
///
/// - **Methods.** Every `pub` method that takes `&self` or `&mut self`,
///   `async` or not, is called by its name. Its parameters come by position
///   (`[3, "a"]`) or by name (`{"count": 3, "tag": "a"}`), each decoded
///   from JSON as its type; an `Option` parameter may be left out. Extra,
///   missing or ill-typed parameters give `-32602` (invalid params), an
///   unknown method `-32601`. The value returned is sent as JSON. A method
///   returning `Result<T, E>` (any type named `Result`) sends `T`, and its
///   `Err` becomes the call's error through `RpcError::from`: an `RpcError`
///   keeps its code, any `std::error::Error` gets code `1` and its text.
/// - **Attributes.** `#[troupe(get)]` on a method without parameters makes
///   it the reader of the attribute of its name (`#[troupe(get = "name")]`
///   to choose); `#[troupe(set)]` on a method taking the value makes it
///   the writer of the attribute of its name less `set_`
///   (`#[troupe(set = "name")]` to choose). A setter returns nothing or
///   `Result<(), E>` and needs a getter of the same type; an attribute
///   without a setter is read-only.
/// - **Introspection.** `describe()` lists the methods and attributes,
///   sorted by name, with the types as written and the first paragraph of
///   each `///` doc.
///
/// The object is served one call at a time with `&mut self`, so the type
/// needs no locks; it must be `Send + 'static`, and async methods' futures
/// `Send`.
///
/// # The client
///
/// `pub struct CameraClient` (or the name given with `client = "..."`)
/// wraps a `troupe::object::ObjectClient`: `CameraClient::connect(&session,
/// "vnir")`, `new(object_client)`, `inner()`. It has one `pub async fn`
/// per exported method, of the same name and parameters, returning
/// `troupe::Result<T>`, and per attribute the getter and setter of the
/// same names. Docs are carried over.
///
/// # Compile errors
///
/// The macro refuses, with a message that says why: anything but an
/// inherent `impl` block; generic `impl` blocks and generic methods;
/// `self` by value; parameters or returned values that are references,
/// `impl Trait` or otherwise not owned (they travel as JSON, so they are
/// `Serialize + Deserialize` types such as `String`, `Vec<T>`, `f64`);
/// parameters that are patterns rather than names; a getter with
/// parameters, a setter without a getter or of another type; two getters
/// or setters of one attribute; exported methods named `new`, `connect` or
/// `inner` (the client's own); and any `#[troupe(...)]` it does not know.
///
/// ```compile_fail
/// # struct Camera;
/// #[troupe::object]
/// impl Camera {
///     // error: parameters of exported methods must be owned types
///     // (`Deserialize + Serialize`), not references: take `String` rather
///     // than `&str`, ...
///     pub fn label(&mut self, text: &str) {}
/// }
/// ```
///
/// ```compile_fail
/// # struct Camera;
/// #[troupe::object]
/// impl Camera {
///     // error: setter of attribute `gain` without a getter: ...
///     #[troupe(set)]
///     pub fn set_gain(&mut self, value: f64) {}
/// }
/// ```
#[proc_macro_attribute]
pub fn object(
    attr: proc_macro::TokenStream,
    item: proc_macro::TokenStream,
) -> proc_macro::TokenStream {
    expand(attr.into(), item.into()).into()
}

/// The whole expansion: on errors, the item unchanged (less our
/// attributes) and the errors, so that the rest of the crate still sees
/// the type's methods.
fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut block = match syn::parse2::<syn::Item>(item.clone()) {
        Ok(syn::Item::Impl(block)) => block,
        Ok(syn::Item::Trait(t)) => {
            let e = syn::Error::new_spanned(
                &t.ident,
                "#[troupe::object] on a trait is not supported: put it on the `impl` block \
                 of a type (`impl Camera { ... }`)",
            );
            return with_error(item, e);
        }
        Ok(_) => {
            let e = syn::Error::new(
                proc_macro2::Span::call_site(),
                "#[troupe::object] goes on an inherent `impl` block (`impl Camera { ... }`)",
            );
            return with_error(item, e);
        }
        Err(e) => return with_error(item, e),
    };
    let model = model::Options::parse(attr).and_then(|o| model::read(o, &mut block));
    match model {
        Ok(model) => {
            let object = emit::object_impl(&model);
            let client = emit::client(&model);
            quote!(#block #object #client)
        }
        Err(e) => {
            model::strip(&mut block);
            with_error(block.into_token_stream(), e)
        }
    }
}

fn with_error(item: TokenStream, e: syn::Error) -> TokenStream {
    let e = e.to_compile_error();
    quote!(#item #e)
}

#[cfg(test)]
mod tests;
