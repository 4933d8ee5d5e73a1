//! Reading the `impl` block: which methods are exported and as what, with
//! the checks that give a clear compile error where the generated code
//! would give a confusing one.

use crate::text::{doc_summary, type_text};
use proc_macro2::TokenStream;
use std::collections::BTreeMap;
use syn::ext::IdentExt;
use syn::parse::Parser;
use syn::{
    Attribute, FnArg, GenericArgument, GenericParam, Ident, ImplItem, ImplItemFn, ItemImpl, LitStr,
    Pat, PathArguments, ReturnType, Token, Type, Visibility,
};

/// The names the generated client takes for itself.
const CLIENT_OWN: [&str; 3] = ["new", "connect", "inner"];

/// What `#[troupe::object(...)]` says.
pub(crate) struct Options {
    /// `client = "Name"`: the name of the typed client.
    pub client: Option<Ident>,
}

impl Options {
    /// Reads the attribute's arguments.
    pub(crate) fn parse(args: TokenStream) -> syn::Result<Self> {
        let mut client = None;
        let parser = syn::meta::parser(|meta| {
            if meta.path.is_ident("client") {
                let lit: LitStr = meta.value()?.parse()?;
                let ident = lit.parse::<Ident>().map_err(|_| {
                    syn::Error::new(
                        lit.span(),
                        "`client` takes the name of a type, such as \"CameraClient\"",
                    )
                })?;
                if client.replace(ident).is_some() {
                    return Err(meta.error("`client` is given twice"));
                }
                Ok(())
            } else {
                Err(meta.error(
                    "unknown option of #[troupe::object]: the only one is `client = \"Name\"`",
                ))
            }
        });
        parser.parse2(args)?;
        Ok(Options { client })
    }
}

/// An object: its type, its client, what it exports.
pub(crate) struct Model {
    /// The type served, as written after `impl`.
    pub self_ty: Type,
    /// Its name, for introspection.
    pub type_name: String,
    /// The name of the typed client.
    pub client: Ident,
    /// The `///` docs of the `impl` block.
    pub docs: Vec<Attribute>,
    /// Exported methods, sorted by name.
    pub methods: Vec<Exported>,
    /// Attributes, sorted by name.
    pub attributes: Vec<Attr>,
}

/// An exported method, getter or setter.
pub(crate) struct Exported {
    /// The method's name in Rust (the client's method has it too).
    pub ident: Ident,
    /// Its name on the wire: the method's, or the attribute's.
    pub name: String,
    /// Whether it is an `async fn`.
    pub is_async: bool,
    /// Its parameters, after the receiver.
    pub params: Vec<Param>,
    /// What it returns.
    pub ret: Returns,
    /// Its `///` docs.
    pub docs: Vec<Attribute>,
    /// Their first paragraph.
    pub summary: String,
}

/// A parameter of an exported method.
pub(crate) struct Param {
    /// Its name in Rust.
    pub ident: Ident,
    /// Its name on the wire (raw identifiers without `r#`).
    pub name: String,
    /// Its type.
    pub ty: Type,
}

/// What an exported method returns.
pub(crate) struct Returns {
    /// The value sent back: the `T` of `Result<T, E>`, `()` for nothing.
    pub ty: Type,
    /// Whether it returns a `Result` whose `Err` is an error of the call.
    pub fallible: bool,
    /// Whether the value is written `()` (or not written at all).
    pub unit: bool,
}

/// An attribute: a getter and maybe a setter.
pub(crate) struct Attr {
    /// Its name on the wire.
    pub name: String,
    /// `#[troupe(get)]`.
    pub getter: Exported,
    /// `#[troupe(set)]`, if it is writable.
    pub setter: Option<Exported>,
}

/// What `#[troupe(...)]` on a method says.
enum Role {
    /// `get` or `get = "name"`.
    Get(Option<LitStr>),
    /// `set` or `set = "name"`.
    Set(Option<LitStr>),
    /// `skip`.
    Skip,
}

/// Collects errors, so that one compilation shows them all.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, e: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }

    fn new_spanned(&mut self, at: impl quote::ToTokens, message: impl std::fmt::Display) {
        self.push(syn::Error::new_spanned(at, message));
    }
}

/// Reads `item`, removing the `#[troupe(...)]` attributes from it (also
/// when it fails, so that the caller can emit the block unchanged beside
/// the errors).
pub(crate) fn read(options: Options, item: &mut ItemImpl) -> syn::Result<Model> {
    let mut errors = Errors::default();
    if let Some((_, path, _)) = &item.trait_ {
        errors.new_spanned(
            path,
            "#[troupe::object] goes on an inherent impl block (`impl Camera { ... }`), \
             not on a trait impl",
        );
    }
    if !item.generics.params.is_empty() || item.generics.where_clause.is_some() {
        let at: &dyn quote::ToTokens = match &item.generics.where_clause {
            Some(w) if item.generics.params.is_empty() => w,
            _ => &item.generics,
        };
        errors.new_spanned(
            at,
            "#[troupe::object] does not support generic impl blocks: \
             serve a concrete type (`impl Camera<u8> { ... }`)",
        );
    }
    let type_ident = match &*item.self_ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last().map(|s| s.ident.clone()),
        _ => None,
    };
    if type_ident.is_none() {
        errors.new_spanned(
            &item.self_ty,
            "#[troupe::object] serves a named type (a struct or an enum)",
        );
    }

    let mut methods = BTreeMap::new();
    let mut getters: BTreeMap<String, Exported> = BTreeMap::new();
    let mut setters: Vec<Exported> = Vec::new();
    for member in &mut item.items {
        let ImplItem::Fn(f) = member else {
            if let Some(attrs) = attrs_mut(member) {
                for attr in take_troupe_attrs(attrs) {
                    errors.new_spanned(attr, "#[troupe(...)] goes on methods only");
                }
            }
            continue;
        };
        let role = match read_role(&mut f.attrs) {
            Ok(role) => role,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let exportable = matches!(f.vis, Visibility::Public(_)) && f.sig.receiver().is_some();
        match &role {
            Some(Role::Skip) => continue,
            None if !exportable => continue,
            Some(Role::Get(_) | Role::Set(_)) if !exportable => {
                errors.new_spanned(
                    &f.sig.ident,
                    "#[troupe(get)] and #[troupe(set)] go on `pub` methods \
                     that take `&self` or `&mut self`",
                );
                continue;
            }
            _ => {}
        }
        let exported = match read_fn(f) {
            Ok(e) => e,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let rust_name = exported.ident.unraw().to_string();
        if CLIENT_OWN.contains(&rust_name.as_str()) {
            errors.new_spanned(
                &exported.ident,
                format!(
                    "`{rust_name}` is a method of the generated client itself \
                     (`new`, `connect`, `inner`): rename this one or mark it #[troupe(skip)]"
                ),
            );
            continue;
        }
        match role {
            Some(Role::Skip) => {}
            None => {
                let ident = exported.ident.clone();
                if methods.insert(exported.name.clone(), exported).is_some() {
                    errors.new_spanned(ident, "two exported methods have this name");
                }
            }
            Some(Role::Get(name)) => match getter(f, exported, name) {
                Ok(g) => {
                    let (name, ident) = (g.name.clone(), g.ident.clone());
                    if let Some(first) = getters.insert(name.clone(), g) {
                        errors.new_spanned(
                            ident,
                            format!(
                                "attribute `{name}` has two getters: `{}` and this one",
                                first.ident
                            ),
                        );
                    }
                }
                Err(e) => errors.push(e),
            },
            Some(Role::Set(name)) => match setter(f, exported, name) {
                Ok(s) => setters.push(s),
                Err(e) => errors.push(e),
            },
        }
    }

    let mut attributes: BTreeMap<String, Attr> = getters
        .into_iter()
        .map(|(name, getter)| {
            let attr = Attr {
                name: name.clone(),
                getter,
                setter: None,
            };
            (name, attr)
        })
        .collect();
    for setter in setters {
        let Some(attr) = attributes.get_mut(&setter.name) else {
            errors.new_spanned(
                &setter.ident,
                format!(
                    "setter of attribute `{0}` without a getter: add \
                     `#[troupe(get)] pub fn {0}(&self) -> T` (write-only attributes are not supported)",
                    setter.name
                ),
            );
            continue;
        };
        if let Some(first) = &attr.setter {
            errors.new_spanned(
                &setter.ident,
                format!(
                    "attribute `{}` has two setters: `{}` and this one",
                    setter.name, first.ident
                ),
            );
            continue;
        }
        let (read, written) = (
            type_text(&attr.getter.ret.ty),
            type_text(&setter.params[0].ty),
        );
        if read != written {
            errors.new_spanned(
                &setter.params[0].ty,
                format!(
                    "the setter of `{}` takes `{written}` but its getter `{}` returns `{read}`",
                    setter.name, attr.getter.ident
                ),
            );
            continue;
        }
        attr.setter = Some(setter);
    }

    if let Some(e) = errors.0 {
        return Err(e);
    }
    let type_ident = type_ident.expect("checked above");
    let client = options
        .client
        .unwrap_or_else(|| Ident::new(&format!("{}Client", type_ident.unraw()), type_ident.span()));
    Ok(Model {
        self_ty: (*item.self_ty).clone(),
        type_name: type_ident.unraw().to_string(),
        client,
        docs: item
            .attrs
            .iter()
            .filter(|a| a.path().is_ident("doc"))
            .cloned()
            .collect(),
        methods: methods.into_values().collect(),
        attributes: attributes.into_values().collect(),
    })
}

/// Removes the `#[troupe(...)]` attributes of `item`'s members, for the
/// output beside errors that came before reading them.
pub(crate) fn strip(item: &mut ItemImpl) {
    for member in &mut item.items {
        if let Some(attrs) = attrs_mut(member) {
            take_troupe_attrs(attrs);
        }
    }
}

fn attrs_mut(member: &mut ImplItem) -> Option<&mut Vec<Attribute>> {
    match member {
        ImplItem::Fn(f) => Some(&mut f.attrs),
        ImplItem::Const(c) => Some(&mut c.attrs),
        ImplItem::Type(t) => Some(&mut t.attrs),
        ImplItem::Macro(m) => Some(&mut m.attrs),
        _ => None,
    }
}

/// Removes and returns the `#[troupe(...)]` attributes among `attrs`.
fn take_troupe_attrs(attrs: &mut Vec<Attribute>) -> Vec<Attribute> {
    let (ours, others) = std::mem::take(attrs)
        .into_iter()
        .partition(|a| a.path().is_ident("troupe"));
    *attrs = others;
    ours
}

/// Reads (and removes) the `#[troupe(...)]` of a method.
fn read_role(attrs: &mut Vec<Attribute>) -> syn::Result<Option<Role>> {
    const EXPECTED: &str = "expected #[troupe(get)], #[troupe(get = \"name\")], \
         #[troupe(set)], #[troupe(set = \"name\")] or #[troupe(skip)]";
    let mut role = None;
    for attr in take_troupe_attrs(attrs) {
        if !matches!(attr.meta, syn::Meta::List(_)) {
            return Err(syn::Error::new_spanned(attr, EXPECTED));
        }
        let mut found = false;
        attr.parse_nested_meta(|meta| {
            let name = |meta: &syn::meta::ParseNestedMeta| -> syn::Result<Option<LitStr>> {
                if meta.input.peek(Token![=]) {
                    let lit: LitStr = meta.value()?.parse()?;
                    if lit.value().is_empty() {
                        return Err(syn::Error::new(
                            lit.span(),
                            "an attribute's name is not empty",
                        ));
                    }
                    Ok(Some(lit))
                } else {
                    Ok(None)
                }
            };
            let this = if meta.path.is_ident("get") {
                Role::Get(name(&meta)?)
            } else if meta.path.is_ident("set") {
                Role::Set(name(&meta)?)
            } else if meta.path.is_ident("skip") {
                Role::Skip
            } else {
                return Err(meta.error(format!("unknown #[troupe(...)] option: {EXPECTED}")));
            };
            if role.replace(this).is_some() {
                return Err(meta.error("a method is one of get, set and skip, not several"));
            }
            found = true;
            Ok(())
        })?;
        if !found {
            return Err(syn::Error::new_spanned(attr, EXPECTED));
        }
    }
    Ok(role)
}

/// Reads an exportable method: its parameters and return type.
fn read_fn(f: &ImplItemFn) -> syn::Result<Exported> {
    let sig = &f.sig;
    if let Some(unsafety) = &sig.unsafety {
        return Err(syn::Error::new_spanned(
            unsafety,
            "an `unsafe fn` cannot be exported: mark it #[troupe(skip)]",
        ));
    }
    if let Some(g) = sig
        .generics
        .params
        .iter()
        .find(|g| !matches!(g, GenericParam::Lifetime(_)))
    {
        return Err(syn::Error::new_spanned(
            g,
            "a generic method cannot be exported (its parameters are decoded from JSON, \
             so their types must be concrete): mark it #[troupe(skip)]",
        ));
    }
    let mut params = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(r) => {
                if !matches!(*r.ty, Type::Reference(_)) {
                    return Err(syn::Error::new_spanned(
                        r,
                        "an exported method takes `&self` or `&mut self`, not `self` by value: \
                         the served object is lent to each call",
                    ));
                }
            }
            FnArg::Typed(pt) => {
                let ident = match &*pt.pat {
                    Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => p.ident.clone(),
                    other => {
                        return Err(syn::Error::new_spanned(
                            other,
                            "parameters of exported methods are plain names \
                             (they name the parameters of the remote call)",
                        ))
                    }
                };
                check_owned(&pt.ty, Place::Param)?;
                params.push(Param {
                    name: ident.unraw().to_string(),
                    ident,
                    ty: (*pt.ty).clone(),
                });
            }
        }
    }
    let ret = match &sig.output {
        ReturnType::Default => Returns {
            ty: syn::parse_quote!(()),
            fallible: false,
            unit: true,
        },
        ReturnType::Type(_, ty) => {
            let (value, fallible) = match result_ok_type(ty)? {
                Some(ok) => (ok.clone(), true),
                None => ((**ty).clone(), false),
            };
            check_owned(&value, Place::Return)?;
            Returns {
                unit: is_unit(&value),
                ty: value,
                fallible,
            }
        }
    };
    let docs: Vec<Attribute> = f
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .cloned()
        .collect();
    Ok(Exported {
        ident: sig.ident.clone(),
        name: sig.ident.unraw().to_string(),
        is_async: sig.asyncness.is_some(),
        params,
        ret,
        summary: doc_summary(&docs),
        docs,
    })
}

/// Checks a getter: no parameters; its name.
fn getter(f: &ImplItemFn, mut g: Exported, name: Option<LitStr>) -> syn::Result<Exported> {
    if !g.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &f.sig.inputs,
            "a getter (#[troupe(get)]) takes nothing but `&self` or `&mut self`",
        ));
    }
    if let Some(name) = name {
        g.name = name.value();
    }
    Ok(g)
}

/// Checks a setter: one parameter, nothing returned; its name.
fn setter(f: &ImplItemFn, mut s: Exported, name: Option<LitStr>) -> syn::Result<Exported> {
    if s.params.len() != 1 {
        return Err(syn::Error::new_spanned(
            &f.sig.inputs,
            "a setter (#[troupe(set)]) takes `&mut self` (or `&self`) and the new value, \
             nothing more",
        ));
    }
    if !s.ret.unit {
        return Err(syn::Error::new_spanned(
            &f.sig.output,
            "a setter (#[troupe(set)]) returns nothing or `Result<(), E>`",
        ));
    }
    s.name = match name {
        Some(name) => name.value(),
        None => match s.name.strip_prefix("set_") {
            Some(rest) if !rest.is_empty() => rest.to_string(),
            _ => {
                return Err(syn::Error::new_spanned(
                    &f.sig.ident,
                    "cannot tell which attribute this sets: name the method `set_<attribute>` \
                     or say it: #[troupe(set = \"attribute\")]",
                ))
            }
        },
    };
    Ok(s)
}

/// The `T` of a return type whose last path segment is `Result<T, ...>`.
fn result_ok_type(ty: &Type) -> syn::Result<Option<&Type>> {
    let Type::Path(p) = ty else {
        return Ok(None);
    };
    let Some(last) = p.path.segments.last() else {
        return Ok(None);
    };
    if last.ident != "Result" {
        return Ok(None);
    }
    match &last.arguments {
        PathArguments::AngleBracketed(a) => match a.args.first() {
            Some(GenericArgument::Type(t)) => Ok(Some(t)),
            _ => Err(syn::Error::new_spanned(
                a,
                "expected the value type first: `Result<T, E>`",
            )),
        },
        _ => Err(syn::Error::new_spanned(
            last,
            "an exported method's `Result` needs its value type: `Result<T, E>`",
        )),
    }
}

fn is_unit(ty: &Type) -> bool {
    match ty {
        Type::Tuple(t) => t.elems.is_empty(),
        Type::Paren(p) => is_unit(&p.elem),
        _ => false,
    }
}

/// Where a type is, for messages.
#[derive(Clone, Copy)]
enum Place {
    Param,
    Return,
}

/// Checks that a parameter or returned type is owned and concrete: no
/// references (the values come from and go to JSON), no `impl Trait`.
fn check_owned(ty: &Type, place: Place) -> syn::Result<()> {
    let what = match place {
        Place::Param => {
            "parameters of exported methods must be owned types \
                         (`Deserialize + Serialize`)"
        }
        Place::Return => {
            "exported methods must return owned types \
                          (`Serialize + Deserialize`)"
        }
    };
    let fail = |at: &dyn quote::ToTokens, why: &str| {
        Err(syn::Error::new_spanned(at, format!("{what}, {why}")))
    };
    match ty {
        Type::Reference(r) => fail(
            r,
            "not references: take `String` rather than `&str`, `Vec<T>` rather than `&[T]`",
        ),
        Type::ImplTrait(t) => fail(t, "not `impl Trait`"),
        Type::TraitObject(t) => fail(t, "not trait objects"),
        Type::Ptr(p) => fail(p, "not raw pointers"),
        Type::BareFn(f) => fail(f, "not functions"),
        Type::Infer(i) => fail(i, "written out, not `_`"),
        Type::Path(p) => {
            if let Some(q) = &p.qself {
                check_owned(&q.ty, place)?;
            }
            for segment in &p.path.segments {
                if let PathArguments::AngleBracketed(a) = &segment.arguments {
                    for arg in &a.args {
                        if let GenericArgument::Type(t) = arg {
                            check_owned(t, place)?;
                        }
                    }
                }
            }
            Ok(())
        }
        Type::Tuple(t) => t.elems.iter().try_for_each(|t| check_owned(t, place)),
        Type::Array(a) => check_owned(&a.elem, place),
        Type::Slice(s) => check_owned(&s.elem, place),
        Type::Paren(p) => check_owned(&p.elem, place),
        Type::Group(g) => check_owned(&g.elem, place),
        _ => Ok(()),
    }
}
