//! The generated code: the `Object` impl and the typed client.
//!
//! Generated names start with `__troupe` so that they cannot shadow the
//! user's parameters, and every path is absolute (`::troupe::...`,
//! `::std::...`). `serde_json` is reached through
//! `::troupe::__private`, so that the user's crate needs no dependency of
//! its own on it.

use crate::model::{Exported, Model, Returns};
use crate::text::type_text;
use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::visit_mut::VisitMut;
use syn::{LitStr, Type};

/// `impl ::troupe::object::Object for Type`.
pub(crate) fn object_impl(m: &Model) -> TokenStream {
    let self_ty = &m.self_ty;
    let describe = describe(m);
    let call = call(m);
    let attributes = if m.attributes.is_empty() {
        // The trait's defaults: no attributes.
        TokenStream::new()
    } else {
        let get = get(m);
        let set = set(m);
        quote!(#get #set)
    };
    quote! {
        impl ::troupe::object::Object for #self_ty {
            fn describe(&self) -> ::troupe::object::Description {
                #describe
            }

            #call

            #attributes
        }
    }
}

fn describe(m: &Model) -> TokenStream {
    let s = |text: &str| quote!(::std::string::String::from(#text));
    let type_name = s(&m.type_name);
    let methods = m.methods.iter().map(|e| {
        let name = s(&e.name);
        let params = e.params.iter().map(|p| {
            let name = s(&p.name);
            let ty = s(&type_text(&p.ty));
            quote!(::troupe::object::ParamInfo { name: #name, ty: #ty })
        });
        let returns = s(&type_text(&e.ret.ty));
        let doc = s(&e.summary);
        quote! {
            ::troupe::object::MethodInfo {
                name: #name,
                params: ::std::vec![#(#params),*],
                returns: #returns,
                doc: #doc,
            }
        }
    });
    let attributes = m.attributes.iter().map(|a| {
        let name = s(&a.name);
        let ty = s(&type_text(&a.getter.ret.ty));
        let writable = a.setter.is_some();
        let summary = match &a.setter {
            Some(setter) if a.getter.summary.is_empty() => &setter.summary,
            _ => &a.getter.summary,
        };
        let doc = s(summary);
        quote! {
            ::troupe::object::AttributeInfo {
                name: #name,
                ty: #ty,
                writable: #writable,
                doc: #doc,
            }
        }
    });
    quote! {
        ::troupe::object::Description {
            type_name: #type_name,
            methods: ::std::vec![#(#methods),*],
            attributes: ::std::vec![#(#attributes),*],
        }
    }
}

/// The call of `e` on `self` with `args`, awaited if it is async, and its
/// outcome as `Result<Value, RpcError>`.
fn invoke(e: &Exported, args: &[TokenStream]) -> TokenStream {
    let ident = &e.ident;
    let call = if e.is_async {
        quote!(self.#ident(#(#args),*).await)
    } else {
        quote!(self.#ident(#(#args),*))
    };
    encode(&e.ret, call)
}

/// `call` (a method's outcome) as `Result<Value, RpcError>`.
fn encode(ret: &Returns, call: TokenStream) -> TokenStream {
    let null = quote! {
        ::core::result::Result::<
            ::troupe::__private::serde_json::Value,
            ::troupe::object::RpcError,
        >::Ok(::troupe::__private::serde_json::Value::Null)
    };
    let to_json = |value: TokenStream| {
        quote! {
            ::troupe::__private::serde_json::to_value(&#value)
                .map_err(::troupe::object::RpcError::internal)
        }
    };
    match (ret.fallible, ret.unit) {
        (true, true) => quote! {
            match #call {
                ::core::result::Result::Ok(()) => #null,
                ::core::result::Result::Err(__troupe_e) => ::core::result::Result::Err(
                    ::troupe::object::RpcError::from(__troupe_e),
                ),
            }
        },
        (true, false) => {
            let json = to_json(quote!(__troupe_value));
            quote! {
                match #call {
                    ::core::result::Result::Ok(__troupe_value) => #json,
                    ::core::result::Result::Err(__troupe_e) => ::core::result::Result::Err(
                        ::troupe::object::RpcError::from(__troupe_e),
                    ),
                }
            }
        }
        (false, true) => quote! {
            #call;
            #null
        },
        (false, false) => to_json(call),
    }
}

fn call(m: &Model) -> TokenStream {
    let signature = quote! {
        fn call<'__troupe>(
            &'__troupe mut self,
            __troupe_method: &'__troupe str,
            __troupe_params: ::troupe::object::Params,
        ) -> ::troupe::object::CallFuture<'__troupe>
    };
    let not_found = quote! {
        ::core::result::Result::Err(::troupe::object::RpcError::method_not_found(__troupe_method))
    };
    if m.methods.is_empty() {
        return quote! {
            #signature {
                ::std::boxed::Box::pin(::core::future::ready(#not_found))
            }
        };
    }
    let arms = m.methods.iter().map(|e| {
        let name = &e.name;
        let names = e.params.iter().map(|p| &p.name);
        let args: Vec<TokenStream> = (0..e.params.len())
            .map(|i| {
                let arg = format_ident!("__troupe_arg{}", i);
                quote!(#arg)
            })
            .collect();
        let decode = e.params.iter().zip(&args).enumerate().map(|(i, (p, arg))| {
            let (ty, name) = (&p.ty, &p.name);
            quote! {
                let #arg = __troupe_params.arg::<#ty>(#i, #name)?;
            }
        });
        let run = invoke(e, &args);
        quote! {
            #name => {
                __troupe_params.expect_only(&[#(#names),*])?;
                #(#decode)*
                #run
            }
        }
    });
    quote! {
        #signature {
            ::std::boxed::Box::pin(async move {
                match __troupe_method {
                    #(#arms)*
                    _ => #not_found,
                }
            })
        }
    }
}

fn get(m: &Model) -> TokenStream {
    let arms = m.attributes.iter().map(|a| {
        let name = &a.name;
        let run = invoke(&a.getter, &[]);
        quote!(#name => { #run })
    });
    quote! {
        fn get<'__troupe>(
            &'__troupe mut self,
            __troupe_name: &'__troupe str,
        ) -> ::troupe::object::CallFuture<'__troupe> {
            ::std::boxed::Box::pin(async move {
                match __troupe_name {
                    #(#arms)*
                    _ => ::core::result::Result::Err(::troupe::object::no_attribute(__troupe_name)),
                }
            })
        }
    }
}

fn set(m: &Model) -> TokenStream {
    let writable = m.attributes.iter().filter_map(|a| {
        let setter = a.setter.as_ref()?;
        let name = &a.name;
        let ty = &setter.params[0].ty;
        let message = format_message(&format!("attribute {name}"));
        let arg = quote!(__troupe_arg0);
        let run = invoke(setter, std::slice::from_ref(&arg));
        Some(quote! {
            #name => {
                let #arg = ::troupe::__private::serde_json::from_value::<#ty>(__troupe_value)
                    .map_err(|__troupe_e| {
                        ::troupe::object::RpcError::invalid_params(::std::format!(#message))
                    })?;
                #run
            }
        })
    });
    let read_only: Vec<&str> = m
        .attributes
        .iter()
        .filter(|a| a.setter.is_none())
        .map(|a| a.name.as_str())
        .collect();
    let read_only = (!read_only.is_empty()).then(|| {
        quote! {
            #(#read_only)|* => ::core::result::Result::Err(
                ::troupe::object::read_only(__troupe_name),
            ),
        }
    });
    quote! {
        fn set<'__troupe>(
            &'__troupe mut self,
            __troupe_name: &'__troupe str,
            __troupe_value: ::troupe::__private::serde_json::Value,
        ) -> ::troupe::object::CallFuture<'__troupe> {
            ::std::boxed::Box::pin(async move {
                match __troupe_name {
                    #(#writable)*
                    #read_only
                    _ => ::core::result::Result::Err(::troupe::object::no_attribute(__troupe_name)),
                }
            })
        }
    }
}

/// A `format!` string `"{what}: {__troupe_e}"`, `what`'s braces escaped.
fn format_message(what: &str) -> LitStr {
    let what = what.replace('{', "{{").replace('}', "}}");
    LitStr::new(
        &format!("{what}: {{__troupe_e}}"),
        proc_macro2::Span::call_site(),
    )
}

/// Replaces `Self` by the served type, for the client's signatures (where
/// `Self` is the client).
struct ReplaceSelf<'a>(&'a Type);

impl VisitMut for ReplaceSelf<'_> {
    fn visit_type_mut(&mut self, ty: &mut Type) {
        if let Type::Path(p) = ty {
            if p.qself.is_none() && p.path.is_ident("Self") {
                *ty = self.0.clone();
                return;
            }
        }
        syn::visit_mut::visit_type_mut(self, ty);
    }
}

/// The docs of a client method: the object's, then `what` and `errors`.
fn client_docs(e: &Exported, what: &str, errors: &str) -> TokenStream {
    let own = &e.docs;
    let gap = (!own.is_empty()).then(|| quote!(#[doc = ""]));
    let what = format!(" {what}");
    let lines = errors.lines().map(|l| format!(" {l}"));
    quote! {
        #(#own)*
        #gap
        #[doc = #what]
        #[doc = ""]
        #[doc = " # Errors"]
        #(#[doc = #lines])*
    }
}

/// What a client method that goes through `ObjectClient::{via}` can fail
/// with.
fn call_errors(via: &str) -> String {
    format!(
        "As `ObjectClient::{via}`: `Error::Rpc` with the object's error, \
         `Error::NotFound` when no object has the id, `Error::Gone`, `Error::Timeout`;\n\
         `Error::Protocol` when the result does not decode."
    )
}

/// The typed client: a struct and its methods.
pub(crate) fn client(m: &Model) -> TokenStream {
    let client = &m.client;
    let type_name = &m.type_name;
    let owned = |ty: &Type| {
        let mut ty = ty.clone();
        ReplaceSelf(&m.self_ty).visit_type_mut(&mut ty);
        ty
    };
    let methods = m.methods.iter().map(|e| {
        let ident = &e.ident;
        let name = &e.name;
        let params: Vec<_> = e.params.iter().map(|p| &p.ident).collect();
        let tys = e.params.iter().map(|p| owned(&p.ty));
        let ret = owned(&e.ret.ty);
        let encode = e.params.iter().map(|p| {
            let ident = &p.ident;
            let message = format_message(&format!("parameter {}", p.name));
            quote! {
                ::troupe::__private::serde_json::to_value(&#ident).map_err(|__troupe_e| {
                    ::troupe::Error::Invalid(::std::format!(#message))
                })?
            }
        });
        let docs = client_docs(
            e,
            &format!("Calls `{name}` on the remote object."),
            &if e.params.is_empty() {
                call_errors("call_as")
            } else {
                call_errors("call_as")
                    + "\n`Error::Invalid` when a parameter does not encode as JSON."
            },
        );
        quote! {
            #docs
            #[allow(clippy::too_many_arguments)]
            pub async fn #ident(&self, #(#params: #tys),*) -> ::troupe::Result<#ret> {
                let __troupe_params = ::troupe::__private::serde_json::Value::Array(
                    ::std::vec![#(#encode),*],
                );
                self.inner.call_as::<#ret>(#name, __troupe_params).await
            }
        }
    });
    let attributes = m.attributes.iter().map(|a| {
        let name = &a.name;
        let getter = &a.getter.ident;
        let ty = owned(&a.getter.ret.ty);
        let get_docs = client_docs(
            &a.getter,
            &format!("Reads the attribute `{name}` of the remote object."),
            &call_errors("get_as"),
        );
        let set = a.setter.as_ref().map(|s| {
            let setter = &s.ident;
            let value = &s.params[0].ident;
            let message = format_message(&format!("attribute {name}"));
            let docs = client_docs(
                s,
                &format!("Writes the attribute `{name}` of the remote object."),
                "As `ObjectClient::set`: `Error::Rpc` with the object's error (`-32602` for \
                 a value of the wrong type), `Error::NotFound`, `Error::Gone`, `Error::Timeout`;\n\
                 `Error::Invalid` when the value does not encode as JSON.",
            );
            quote! {
                #docs
                pub async fn #setter(&self, #value: #ty) -> ::troupe::Result<()> {
                    let __troupe_value = ::troupe::__private::serde_json::to_value(&#value)
                        .map_err(|__troupe_e| ::troupe::Error::Invalid(::std::format!(#message)))?;
                    self.inner.set(#name, __troupe_value).await
                }
            }
        });
        quote! {
            #get_docs
            pub async fn #getter(&self) -> ::troupe::Result<#ty> {
                self.inner.get_as::<#ty>(#name).await
            }
            #set
        }
    });
    let own = &m.docs;
    let gap = (!own.is_empty()).then(|| quote!(#[doc = ""]));
    let what = format!(
        " Typed client of the remote object `{type_name}`, written by `#[troupe::object]`: \
         one method per exported method and attribute."
    );
    let new_doc = format!(" A client of a `{type_name}` through `client`.");
    let connect_doc = format!(
        " A client of the `{type_name}` served as `id`, through `session`. \
         Nothing is sent until the first call."
    );
    quote! {
        #(#own)*
        #gap
        #[doc = #what]
        #[derive(Clone, Debug)]
        pub struct #client {
            inner: ::troupe::object::ObjectClient,
        }

        // A program that serves the object need not call every method of
        // its client.
        #[allow(dead_code)]
        impl #client {
            #[doc = #new_doc]
            pub fn new(client: ::troupe::object::ObjectClient) -> Self {
                Self { inner: client }
            }

            #[doc = #connect_doc]
            pub fn connect(session: &::troupe::Session, id: &str) -> Self {
                Self::new(session.object(id))
            }

            /// The dynamic client under this one, to call by name.
            pub fn inner(&self) -> &::troupe::object::ObjectClient {
                &self.inner
            }

            #(#methods)*
            #(#attributes)*
        }
    }
}
