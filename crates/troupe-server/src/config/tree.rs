//! The configuration text as a tree that keeps the byte span of every key and
//! value, built with toml's spanned document API (`toml::de::DeTable`).
//!
//! `DeTable` keeps integers and floats as text and its tables in key order;
//! here the numbers are read (one that does not fit is an error, as it was for
//! toml 0.8) and the entries of each table are put back in file order, so that
//! the first unknown key reported is the first one in the file.

use std::ops::Range;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// A value and its span.
#[derive(Debug)]
pub(super) struct Item {
    pub(super) span: Range<usize>,
    pub(super) node: Node,
}

/// A TOML value whose children carry their spans.
#[derive(Debug)]
pub(super) enum Node {
    String(String),
    Integer(i64),
    Float(f64),
    Boolean(bool),
    Datetime,
    Array(Vec<Item>),
    Table(Vec<Entry>),
}

impl Node {
    /// The kind of value, for messages: "a string", "an integer", ...
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Node::String(_) => "a string",
            Node::Integer(_) => "an integer",
            Node::Float(_) => "a float",
            Node::Boolean(_) => "a boolean",
            Node::Datetime => "a date-time",
            Node::Array(_) => "an array",
            Node::Table(_) => "a table",
        }
    }
}

/// A key, its span and its value.
#[derive(Debug)]
pub(super) struct Entry {
    pub(super) key: String,
    pub(super) key_span: Range<usize>,
    pub(super) value: Item,
}

/// Why the text is not a TOML document the tree can hold: where (a byte range,
/// when known) and what.
#[derive(Debug)]
pub(super) struct SyntaxError {
    pub(super) span: Option<Range<usize>>,
    pub(super) message: String,
}

/// Parses `text` into the entries of its root table.
///
/// # Errors
/// The first error in file order: a TOML syntax error, or a number that does
/// not fit an `i64` or an `f64`.
pub(super) fn document(text: &str) -> Result<Vec<Entry>, SyntaxError> {
    // The recoverable parse returns every error, not the first one found: the
    // parser finds syntax errors before duplicate keys, wherever they are.
    let (root, errors) = DeTable::parse_recoverable(text);
    let mut errors: Vec<SyntaxError> = errors
        .iter()
        .map(|e| SyntaxError {
            span: e.span(),
            message: e.message().to_string(),
        })
        .collect();
    let entries = table(root.into_inner(), &mut errors);
    // The tree is faithful up to the first error: any later one may come from
    // the recovery, none earlier does.
    match errors
        .into_iter()
        .min_by_key(|e| e.span.as_ref().map_or(usize::MAX, |s| s.start))
    {
        Some(e) => Err(e),
        None => Ok(entries),
    }
}

/// The entries of `t`, in file order; numbers that do not fit go to `errors`.
fn table(t: DeTable<'_>, errors: &mut Vec<SyntaxError>) -> Vec<Entry> {
    let mut entries: Vec<Entry> = t
        .into_iter()
        .map(|(key, value)| Entry {
            key_span: key.span(),
            key: key.into_inner().into_owned(),
            value: item(value, errors),
        })
        .collect();
    entries.sort_by_key(|e| e.key_span.start);
    entries
}

/// `value` as an [`Item`]; a number that does not fit goes to `errors`.
fn item(value: Spanned<DeValue<'_>>, errors: &mut Vec<SyntaxError>) -> Item {
    let span = value.span();
    let mut error = |message: String| {
        errors.push(SyntaxError {
            span: Some(span.clone()),
            message,
        });
    };
    let node = match value.into_inner() {
        DeValue::String(s) => Node::String(s.into_owned()),
        DeValue::Integer(n) => match i64::from_str_radix(n.as_str(), n.radix()) {
            Ok(n) => Node::Integer(n),
            Err(e) => {
                error(e.to_string());
                Node::Integer(0)
            }
        },
        DeValue::Float(x) => match x.as_str().parse::<f64>() {
            // Too large a float parses as infinity; only `inf` may. As with
            // toml 0.8, a negative one (`-1e400`) stays `-inf`: no key takes a
            // float anyway, this only decides which error comes first.
            Ok(f) if f != f64::INFINITY || x.as_str().contains("inf") => Node::Float(f),
            _ => {
                error("invalid floating-point number".to_string());
                Node::Float(0.0)
            }
        },
        DeValue::Boolean(b) => Node::Boolean(b),
        DeValue::Datetime(_) => Node::Datetime,
        DeValue::Array(items) => Node::Array(items.into_iter().map(|v| item(v, errors)).collect()),
        DeValue::Table(t) => Node::Table(table(t, errors)),
    };
    Item { span, node }
}
