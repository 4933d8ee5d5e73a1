//! The expansion, token stream in, token stream out: its compile errors
//! (what the user reads) and its shape. What the generated code does is
//! tested in `crates/troupe/tests/object_macro.rs`.

use super::expand;

/// Expands `#[troupe::object(attr)] item` into the items it writes.
fn items(attr: &str, item: &str) -> Vec<syn::Item> {
    let out = expand(attr.parse().unwrap(), item.parse().unwrap());
    syn::parse2::<syn::File>(out)
        .expect("the expansion parses as items")
        .items
}

/// The messages of the `compile_error!`s of the expansion.
fn errors(attr: &str, item: &str) -> Vec<String> {
    items(attr, item)
        .into_iter()
        .filter_map(|i| match i {
            syn::Item::Macro(m)
                if m.mac.path.is_ident("compile_error")
                    || m.mac
                        .path
                        .segments
                        .last()
                        .is_some_and(|s| s.ident == "compile_error") =>
            {
                Some(m.mac.parse_body::<syn::LitStr>().unwrap().value())
            }
            _ => None,
        })
        .collect()
}

/// Checks that expanding gives one error, containing `expected`.
#[track_caller]
fn fails(attr: &str, item: &str, expected: &str) {
    let errors = errors(attr, item);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].contains(expected),
        "{:?} lacks {expected:?}",
        errors[0]
    );
}

#[test]
fn a_good_block_gives_the_block_the_object_and_the_client() {
    let items = items(
        "",
        r#"impl Camera {
            /// Opens.
            pub async fn open(&mut self) -> Result<(), E> { Ok(()) }
            #[troupe(get)] pub fn fps(&self) -> f64 { 1.0 }
            #[troupe(skip)] pub fn helper(&self) {}
            fn private(&self) {}
            pub fn new() -> Self { Camera }
        }"#,
    );
    assert_eq!(
        items.len(),
        4,
        "block, Object impl, client struct, client impl"
    );
    let syn::Item::Impl(block) = &items[0] else {
        panic!("the block comes first");
    };
    assert_eq!(block.items.len(), 5, "the block keeps all its members");
    let text = quote::quote!(#block).to_string();
    assert!(
        !text.contains("troupe"),
        "our attributes are removed: {text}"
    );
    let syn::Item::Impl(object) = &items[1] else {
        panic!("then the Object impl");
    };
    let trait_path = &object.trait_.as_ref().unwrap().1;
    assert_eq!(
        quote::quote!(#trait_path).to_string(),
        ":: troupe :: object :: Object"
    );
    assert!(matches!(&items[2], syn::Item::Struct(s) if s.ident == "CameraClient"));
    let syn::Item::Impl(client) = &items[3] else {
        panic!("then the client's methods");
    };
    let names: Vec<String> = client
        .items
        .iter()
        .filter_map(|i| match i {
            syn::ImplItem::Fn(f) => Some(f.sig.ident.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(names, ["new", "connect", "inner", "open", "fps"]);
}

#[test]
fn the_client_can_be_renamed() {
    let items = items("client = \"Remote\"", "impl Camera { pub fn f(&self) {} }");
    assert!(matches!(&items[2], syn::Item::Struct(s) if s.ident == "Remote"));
    fails("client = 3", "impl Camera {}", "expected string literal");
    fails(
        "client = \"not a name\"",
        "impl Camera {}",
        "takes the name of a type",
    );
    fails(
        "server = \"X\"",
        "impl Camera {}",
        "unknown option of #[troupe::object]",
    );
}

#[test]
fn only_inherent_impl_blocks() {
    fails("", "struct Camera;", "goes on an inherent `impl` block");
    fails(
        "",
        "trait Camera { fn f(&self); }",
        "on a trait is not supported",
    );
    fails(
        "",
        "impl Clone for Camera { fn clone(&self) -> Self { Camera } }",
        "not on a trait impl",
    );
    fails(
        "",
        "impl<T> Camera<T> { pub fn f(&self) {} }",
        "does not support generic impl blocks",
    );
    fails(
        "",
        "impl Camera<T> where T: Send { pub fn f(&self) {} }",
        "does not support generic impl blocks",
    );
    fails(
        "",
        "impl [u8] { pub fn f(&self) {} }",
        "serves a named type",
    );
    // A concrete instance of a generic type is fine.
    assert!(errors("", "impl Camera<u8> { pub fn f(&self) {} }").is_empty());
}

#[test]
fn self_by_value_is_refused() {
    fails(
        "",
        "impl Camera { pub fn f(self) {} }",
        "not `self` by value",
    );
    fails(
        "",
        "impl Camera { pub fn f(mut self) {} }",
        "not `self` by value",
    );
    fails(
        "",
        "impl Camera { pub fn f(self: Box<Self>) {} }",
        "not `self` by value",
    );
    assert!(errors("", "impl Camera { pub fn f(self: &Self) {} }").is_empty());
}

#[test]
fn parameters_and_results_are_owned() {
    fails(
        "",
        "impl Camera { pub fn f(&self, name: &str) {} }",
        "must be owned types",
    );
    fails(
        "",
        "impl Camera { pub fn f(&self, names: Vec<&'static str>) {} }",
        "not references",
    );
    fails(
        "",
        "impl Camera { pub fn f(&self, x: impl Into<u8>) {} }",
        "not `impl Trait`",
    );
    fails(
        "",
        "impl Camera { pub fn f(&self) -> &str { \"\" } }",
        "must return owned types",
    );
    fails(
        "",
        "impl Camera { pub fn f(&self) -> Result<&[u8], E> { todo!() } }",
        "must return owned types",
    );
    fails(
        "",
        "impl Camera { pub fn f(&self, (a, b): (u8, u8)) {} }",
        "plain names",
    );
    fails(
        "",
        "impl Camera { pub fn f(&self, _: u8) {} }",
        "plain names",
    );
    fails(
        "",
        "impl Camera { pub fn f<T>(&self, x: T) {} }",
        "a generic method cannot be exported",
    );
    fails(
        "",
        "impl Camera { pub unsafe fn f(&self) {} }",
        "`unsafe fn` cannot be exported",
    );
    fails(
        "",
        "impl Camera { pub fn f(&self) -> Result { todo!() } }",
        "needs its value type",
    );
    // The error of a `Result` may borrow; generic lifetimes are fine.
    assert!(errors(
        "",
        "impl Camera { pub fn f<'a>(&'a self) -> Result<u8, &'static str> { Ok(1) } }"
    )
    .is_empty());
    // Skipped and private methods are not checked.
    assert!(errors(
        "",
        "impl Camera { #[troupe(skip)] pub fn f(&self, a: &str) {} fn g(self) {} pub fn h(x: &str) {} }"
    )
    .is_empty());
}

#[test]
fn attributes_need_a_getter_and_agree_on_the_type() {
    fails(
        "",
        "impl Camera { #[troupe(set)] pub fn set_gain(&mut self, v: f64) {} }",
        "setter of attribute `gain` without a getter",
    );
    fails(
        "",
        "impl Camera { #[troupe(get)] pub fn gain(&self) -> f64 { 1.0 } \
         #[troupe(set)] pub fn set_gain(&mut self, v: u8) {} }",
        "the setter of `gain` takes `u8` but its getter `gain` returns `f64`",
    );
    fails(
        "",
        "impl Camera { #[troupe(get)] pub fn gain(&self, x: u8) -> f64 { 1.0 } }",
        "takes nothing but `&self`",
    );
    fails(
        "",
        "impl Camera { #[troupe(get)] pub fn gain(&self) -> f64 { 1.0 } \
         #[troupe(set)] pub fn set_gain(&mut self) {} }",
        "the new value, nothing more",
    );
    fails(
        "",
        "impl Camera { #[troupe(get)] pub fn gain(&self) -> f64 { 1.0 } \
         #[troupe(set)] pub fn set_gain(&mut self, v: f64) -> f64 { v } }",
        "returns nothing or `Result<(), E>`",
    );
    fails(
        "",
        "impl Camera { #[troupe(get)] pub fn gain(&self) -> f64 { 1.0 } \
         #[troupe(set)] pub fn change_gain(&mut self, v: f64) {} }",
        "cannot tell which attribute this sets",
    );
    // A setter named otherwise says which attribute it writes.
    assert!(errors(
        "",
        "impl Camera { #[troupe(get)] pub fn gain(&self) -> f64 { 1.0 } \
         #[troupe(set = \"gain\")] pub fn change_gain(&mut self, v: f64) -> Result<(), E> { Ok(()) } }",
    )
    .is_empty());
}

#[test]
fn two_exports_of_one_name_are_refused() {
    fails(
        "",
        "impl Camera { #[troupe(get)] pub fn gain(&self) -> f64 { 1.0 } \
         #[troupe(get = \"gain\")] pub fn read_gain(&self) -> f64 { 1.0 } }",
        "attribute `gain` has two getters",
    );
    fails(
        "",
        "impl Camera { #[troupe(get)] pub fn gain(&self) -> f64 { 1.0 } \
         #[troupe(set)] pub fn set_gain(&mut self, v: f64) {} \
         #[troupe(set = \"gain\")] pub fn change_gain(&mut self, v: f64) {} }",
        "attribute `gain` has two setters",
    );
    fails(
        "",
        "impl Camera { pub fn connect(&self) {} }",
        "`connect` is a method of the generated client itself",
    );
}

#[test]
fn unknown_troupe_attributes_are_refused() {
    fails(
        "",
        "impl Camera { #[troupe(hide)] pub fn f(&self) {} }",
        "unknown #[troupe(...)] option",
    );
    fails(
        "",
        "impl Camera { #[troupe] pub fn f(&self) {} }",
        "expected #[troupe(get)]",
    );
    fails(
        "",
        "impl Camera { #[troupe()] pub fn f(&self) {} }",
        "expected #[troupe(get)]",
    );
    fails(
        "",
        "impl Camera { #[troupe(get, skip)] pub fn f(&self) -> u8 { 1 } }",
        "not several",
    );
    fails(
        "",
        "impl Camera { #[troupe(get = \"\")] pub fn f(&self) -> u8 { 1 } }",
        "not empty",
    );
    fails(
        "",
        "impl Camera { #[troupe(skip)] const X: u8 = 1; }",
        "goes on methods only",
    );
    fails(
        "",
        "impl Camera { #[troupe(get)] fn f(&self) -> u8 { 1 } }",
        "go on `pub` methods that take `&self` or `&mut self`",
    );
}

#[test]
fn every_error_is_reported_at_once_and_the_block_kept() {
    let items = items(
        "",
        "impl Camera { pub fn f(self) {} pub fn g(&self, x: &str) {} #[troupe(nope)] pub fn h(&self) {} }",
    );
    let errors = errors("", "impl Camera { pub fn f(self) {} pub fn g(&self, x: &str) {} #[troupe(nope)] pub fn h(&self) {} }");
    assert_eq!(errors.len(), 3, "{errors:#?}");
    let syn::Item::Impl(block) = &items[0] else {
        panic!("the block is kept");
    };
    assert_eq!(block.items.len(), 3);
    let text = quote::quote!(#block).to_string();
    assert!(
        !text.contains("troupe"),
        "our attributes are removed: {text}"
    );
}
