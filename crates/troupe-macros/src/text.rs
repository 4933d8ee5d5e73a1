//! Text for introspection: types as written, and doc summaries.

use quote::ToTokens;
use syn::{Attribute, Expr, ExprLit, Lit, Meta, Type};

/// A type as a person writes it: `Option<String>`, `Vec<(u8, f64)>`,
/// `[u8; 4]`, rather than the token stream's `Option < String >`.
pub(crate) fn type_text(ty: &Type) -> String {
    let spaced = ty.to_token_stream().to_string();
    let mut out = String::with_capacity(spaced.len());
    let mut chars = spaced.chars().peekable();
    while let Some(c) = chars.next() {
        if c != ' ' {
            out.push(c);
            continue;
        }
        // A space stays only between two words (`dyn Trait`, `mut T`),
        // after a comma or a semicolon, and around `->` or `+`.
        let before = out.chars().last();
        let after = chars.peek().copied();
        let keep = match (before, after) {
            (Some(',' | ';' | '+'), _) | (_, Some('+' | '-')) => true,
            (Some('>'), _) => out.ends_with("->"),
            (Some(b), Some(a)) => is_word(b) && is_word(a),
            _ => false,
        };
        if keep {
            out.push(' ');
        }
    }
    out
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '\''
}

/// The lines of the `///` docs among `attrs`, one leading space removed
/// from each.
pub(crate) fn doc_lines(attrs: &[Attribute]) -> Vec<String> {
    let mut lines = Vec::new();
    for attr in attrs {
        if !attr.path().is_ident("doc") {
            continue;
        }
        if let Meta::NameValue(nv) = &attr.meta {
            if let Expr::Lit(ExprLit {
                lit: Lit::Str(s), ..
            }) = &nv.value
            {
                for line in s.value().split('\n') {
                    lines.push(line.strip_prefix(' ').unwrap_or(line).to_string());
                }
            }
        }
    }
    lines
}

/// The first paragraph of the `///` docs among `attrs`, its lines joined
/// by spaces; empty when there are none.
pub(crate) fn doc_summary(attrs: &[Attribute]) -> String {
    doc_lines(attrs)
        .iter()
        .map(|l| l.trim())
        .skip_while(|l| l.is_empty())
        .take_while(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(src: &str) -> String {
        type_text(&syn::parse_str(src).unwrap())
    }

    #[test]
    fn types_read_as_written() {
        assert_eq!(t("f64"), "f64");
        assert_eq!(t("Option<String>"), "Option<String>");
        assert_eq!(t("Vec<Vec<u8>>"), "Vec<Vec<u8>>");
        assert_eq!(
            t("std::collections::HashMap<String, (u8, f64)>"),
            "std::collections::HashMap<String, (u8, f64)>"
        );
        assert_eq!(t("[u8; 4]"), "[u8; 4]");
        assert_eq!(t("()"), "()");
        assert_eq!(
            t("Box<dyn Fn(u8) -> u8 + Send>"),
            "Box<dyn Fn(u8) -> u8 + Send>"
        );
        assert_eq!(t("Cow<'static, str>"), "Cow<'static, str>");
    }

    #[test]
    fn the_summary_is_the_first_paragraph() {
        let f: syn::ItemFn =
            syn::parse_str("///\n/// Opens the\n/// shutter.\n///\n/// Then waits.\nfn f() {}")
                .unwrap();
        assert_eq!(doc_summary(&f.attrs), "Opens the shutter.");
        let g: syn::ItemFn = syn::parse_str("#[inline] fn g() {}").unwrap();
        assert_eq!(doc_summary(&g.attrs), "");
    }
}
