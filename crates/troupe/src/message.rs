//! [`Message`]: what publishers, subscribers, requesters and responders
//! exchange.

use crate::error::{Error, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt;
use std::sync::OnceLock;
pub use troupe_protocol::frame::Content;
use zenoh::bytes::ZBytes;

/// One message of a pattern: a body with its content type, and an optional
/// header (the first part of a two-part message).
///
/// Build one from bytes, text, JSON or numeric arrays, and read it back the
/// same way; the content type travels with it, so the receiver needs no
/// agreement made elsewhere:
///
/// ```
/// use troupe::Message;
/// let m = Message::f64s(&[1.5, -2.0]).with_header(b"run 12");
/// assert_eq!(m.to_f64s().unwrap(), vec![1.5, -2.0]);
/// assert_eq!(m.header(), Some(&b"run 12"[..]));
/// assert!(m.as_text().is_err()); // not text
/// let j = Message::json(&serde_json::json!({"x": 1})).unwrap();
/// assert_eq!(j.to_json::<serde_json::Value>().unwrap()["x"], 1);
/// ```
#[derive(Clone)]
pub struct Message {
    content: Content,
    header: Option<Vec<u8>>,
    body: Body,
    /// A contiguous copy of a body that arrived in several slices, made the
    /// first time the body is read as bytes.
    flat: OnceLock<Vec<u8>>,
    /// A shared body as a Zenoh buffer, made the first time it is asked for.
    zenoh: OnceLock<ZBytes>,
}

/// Where a message's body is. Both are reference-counted, so sending,
/// receiving and cloning a message never copy it.
#[derive(Clone)]
pub(crate) enum Body {
    /// As Zenoh carries it.
    Zenoh(ZBytes),
    /// A part of a buffer that other messages share: the messages of a
    /// received batch.
    Shared(bytes::Bytes),
}

impl Body {
    pub(crate) fn len(&self) -> usize {
        match self {
            Body::Zenoh(z) => z.len(),
            Body::Shared(b) => b.len(),
        }
    }
}

impl From<ZBytes> for Body {
    fn from(z: ZBytes) -> Self {
        Body::Zenoh(z)
    }
}

impl From<Vec<u8>> for Body {
    fn from(v: Vec<u8>) -> Self {
        Body::Zenoh(v.into())
    }
}

impl PartialEq for Message {
    fn eq(&self, other: &Self) -> bool {
        self.content == other.content && self.header == other.header && self.body() == other.body()
    }
}

impl Eq for Message {}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Message");
        d.field("content", &self.content);
        if let Some(h) = &self.header {
            d.field("header_len", &h.len());
        }
        match self.content {
            Content::Text | Content::Json if self.len() <= 256 => {
                d.field("body", &String::from_utf8_lossy(self.body()))
            }
            _ => d.field("body_len", &self.len()),
        };
        d.finish()
    }
}

impl Message {
    pub(crate) fn from_parts(
        content: Content,
        header: Option<Vec<u8>>,
        body: impl Into<Body>,
    ) -> Self {
        Self {
            content,
            header,
            body: body.into(),
            flat: OnceLock::new(),
            zenoh: OnceLock::new(),
        }
    }

    /// Opaque bytes held in a Zenoh buffer, taken without a copy: a
    /// payload kept by the application and sent many times costs nothing
    /// per send (clone the `ZBytes`: it is reference-counted).
    pub fn zbytes(body: ZBytes) -> Self {
        Self::from_parts(Content::Bytes, None, body)
    }

    /// Opaque bytes.
    pub fn bytes(body: impl Into<Vec<u8>>) -> Self {
        Self::from_parts(Content::Bytes, None, body.into())
    }

    /// UTF-8 text.
    pub fn text(body: impl Into<String>) -> Self {
        Self::from_parts(Content::Text, None, body.into().into_bytes())
    }

    /// `value` as a JSON document.
    ///
    /// # Errors
    /// [`Error::Invalid`] when `value` cannot be serialised.
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<Self> {
        let body = serde_json::to_vec(value)
            .map_err(|e| Error::Invalid(format!("cannot encode message as JSON: {e}")))?;
        Ok(Self::from_parts(Content::Json, None, body))
    }

    /// An array of doubles.
    pub fn f64s(values: &[f64]) -> Self {
        let body: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        Self::from_parts(Content::F64s, None, body)
    }

    /// An array of 32-bit integers.
    pub fn i32s(values: &[i32]) -> Self {
        let body: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        Self::from_parts(Content::I32s, None, body)
    }

    /// The same message with a header: a two-part message.
    #[must_use]
    pub fn with_header(mut self, header: impl Into<Vec<u8>>) -> Self {
        self.header = Some(header.into());
        self
    }

    /// The content type of the body.
    pub fn content(&self) -> Content {
        self.content
    }

    /// The header (first part) of a two-part message.
    pub fn header(&self) -> Option<&[u8]> {
        self.header.as_deref()
    }

    /// The body as bytes, whatever its content type.
    pub fn body(&self) -> &[u8] {
        let z = match &self.body {
            Body::Shared(b) => return b,
            Body::Zenoh(z) => z,
        };
        let mut slices = z.slices();
        match (slices.next(), slices.next()) {
            (None, _) => &[],
            (Some(one), None) => one,
            _ => self.flat.get_or_init(|| z.to_bytes().into_owned()),
        }
    }

    /// The body's length in bytes.
    pub fn len(&self) -> usize {
        self.body.len()
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.body.len() == 0
    }

    /// The body as a Zenoh buffer (no copy of the bytes).
    pub fn payload(&self) -> &ZBytes {
        match &self.body {
            Body::Zenoh(z) => z,
            Body::Shared(b) => self.zenoh.get_or_init(|| ZBytes::from(b.clone())),
        }
    }

    /// The body, consumed (a copy only when it is shared or in slices).
    pub fn into_body(self) -> Vec<u8> {
        match (self.flat.into_inner(), self.body) {
            (Some(flat), _) => flat,
            (None, Body::Zenoh(z)) => z.to_bytes().into_owned(),
            (None, Body::Shared(b)) => Vec::from(b),
        }
    }

    /// The body as a Zenoh buffer, consumed (no copy of the bytes).
    pub(crate) fn into_payload(self) -> ZBytes {
        match (self.zenoh.into_inner(), self.body) {
            (Some(z), _) | (None, Body::Zenoh(z)) => z,
            (None, Body::Shared(b)) => ZBytes::from(b),
        }
    }

    /// The body as text: a text or JSON message.
    ///
    /// # Errors
    /// [`Error::Invalid`] for another content type or a body that is not
    /// UTF-8.
    pub fn as_text(&self) -> Result<&str> {
        match self.content {
            Content::Text | Content::Json => std::str::from_utf8(self.body())
                .map_err(|e| Error::Invalid(format!("message is not UTF-8: {e}"))),
            other => Err(mismatch("text", other)),
        }
    }

    /// The body decoded from JSON.
    ///
    /// # Errors
    /// [`Error::Invalid`] for another content type or a body that is not a
    /// `T`.
    pub fn to_json<T: DeserializeOwned>(&self) -> Result<T> {
        match self.content {
            Content::Json => serde_json::from_slice(self.body())
                .map_err(|e| Error::Invalid(format!("message is not the JSON expected: {e}"))),
            other => Err(mismatch("json", other)),
        }
    }

    /// The body as doubles.
    ///
    /// # Errors
    /// [`Error::Invalid`] for another content type or a body whose length is
    /// not a multiple of 8.
    pub fn to_f64s(&self) -> Result<Vec<f64>> {
        self.numbers(Content::F64s, f64::from_le_bytes)
    }

    /// The body as 32-bit integers.
    ///
    /// # Errors
    /// [`Error::Invalid`] for another content type or a body whose length is
    /// not a multiple of 4.
    pub fn to_i32s(&self) -> Result<Vec<i32>> {
        self.numbers(Content::I32s, i32::from_le_bytes)
    }

    fn numbers<const N: usize, T>(&self, want: Content, f: fn([u8; N]) -> T) -> Result<Vec<T>> {
        if self.content != want {
            return Err(mismatch(want.as_str(), self.content));
        }
        if self.len() % N != 0 {
            return Err(Error::Invalid(format!(
                "{} message of {} bytes: not a multiple of {N}",
                want.as_str(),
                self.len()
            )));
        }
        Ok(self
            .body()
            .chunks_exact(N)
            .map(|c| f(c.try_into().expect("chunk of N")))
            .collect())
    }

    /// The body for people: text as it is, JSON compact, arrays as JSON
    /// arrays, bytes as text when they are UTF-8, else in hex.
    pub fn display(&self) -> String {
        match self.content {
            Content::Text | Content::Json => String::from_utf8_lossy(self.body()).into_owned(),
            Content::F64s => match self.to_f64s() {
                Ok(v) => serde_json::to_string(&v).unwrap_or_default(),
                Err(_) => hex(self.body()),
            },
            Content::I32s => match self.to_i32s() {
                Ok(v) => serde_json::to_string(&v).unwrap_or_default(),
                Err(_) => hex(self.body()),
            },
            Content::Bytes => match std::str::from_utf8(self.body()) {
                Ok(s) => s.to_string(),
                Err(_) => hex(self.body()),
            },
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn mismatch(want: &str, got: Content) -> Error {
    Error::Invalid(format!("message is {}, not {want}", got.as_str()))
}

impl From<&str> for Message {
    fn from(s: &str) -> Self {
        Message::text(s)
    }
}

impl From<String> for Message {
    fn from(s: String) -> Self {
        Message::text(s)
    }
}

impl From<Vec<u8>> for Message {
    fn from(b: Vec<u8>) -> Self {
        Message::bytes(b)
    }
}

impl From<&[u8]> for Message {
    fn from(b: &[u8]) -> Self {
        Message::bytes(b)
    }
}

impl<const N: usize> From<&[u8; N]> for Message {
    fn from(b: &[u8; N]) -> Self {
        Message::bytes(&b[..])
    }
}

impl From<ZBytes> for Message {
    fn from(b: ZBytes) -> Self {
        Message::zbytes(b)
    }
}

impl From<&[f64]> for Message {
    fn from(v: &[f64]) -> Self {
        Message::f64s(v)
    }
}

impl From<&[i32]> for Message {
    fn from(v: &[i32]) -> Self {
        Message::i32s(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_content_round_trips() {
        let t = Message::from("héllo");
        assert_eq!(t.as_text().unwrap(), "héllo");
        assert_eq!(t.content(), Content::Text);
        let i = Message::i32s(&[1, -2, i32::MAX]);
        assert_eq!(i.to_i32s().unwrap(), vec![1, -2, i32::MAX]);
        assert_eq!(i.body().len(), 12);
        assert_eq!(i.display(), "[1,-2,2147483647]");
        let f = Message::from(&[0.5f64, f64::MIN][..]);
        assert_eq!(f.to_f64s().unwrap(), vec![0.5, f64::MIN]);
        let b = Message::from(&[0u8, 255][..]);
        assert_eq!(b.display(), "00ff");
        assert_eq!(Message::bytes("ok").display(), "ok");
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct P {
            x: u32,
        }
        let j = Message::json(&P { x: 3 }).unwrap();
        assert_eq!(j.to_json::<P>().unwrap(), P { x: 3 });
        assert_eq!(j.as_text().unwrap(), r#"{"x":3}"#);
    }

    #[test]
    fn mismatches_are_clear_errors() {
        let e = Message::text("x").to_f64s().unwrap_err();
        assert_eq!(e.to_string(), "invalid: message is text, not f64s");
        let e = Message::i32s(&[1]).to_json::<u8>().unwrap_err();
        assert_eq!(e.to_string(), "invalid: message is i32s, not json");
        let odd = Message::from_parts(Content::F64s, None, vec![0; 9]);
        assert!(odd
            .to_f64s()
            .unwrap_err()
            .to_string()
            .contains("multiple of 8"));
        assert_eq!(odd.display(), "000000000000000000");
        let bad = Message::from_parts(Content::Text, None, vec![0xff]);
        assert!(bad.as_text().is_err());
        assert!(Message::json(&"x").unwrap().to_json::<u32>().is_err());
    }
}
