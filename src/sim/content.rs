//! Message `content` in both directions (WEBQQ.md §7).
//!
//! Sent: the `content` field of a send body is a string holding a JSON array (double
//! encoding, §7.2) of text strings and `["face",N]` items with one font item. The simulator
//! decodes it into a readable text (`[face:N]` for faces, the font dropped) for `/sim/sent`.
//!
//! Received: the simulator builds the array real polls carried in E3 (§7.1): the font item
//! first, then the text, with `<`, `>` and `&` HTML-escaped as they reached recipients.

use serde_json::{json, Value};

/// Why a sent `content` is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum ContentError {
    /// `content` is not a string (§14.6: reject non-string content).
    NotAString,
    /// The string is not a JSON array.
    NotAnArray,
    /// An item is neither a string nor a known `[kind, ...]` item.
    BadItem,
}

/// A decoded sent message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// Text with faces as `[face:N]` and pictures as `[cface]` / `[offpic]`.
    pub text: String,
    /// UTF-8 length of the text parts only, which is what the ~720-byte limit measured.
    pub text_bytes: usize,
}

/// Decodes the `content` value of a send body.
pub fn decode_sent(content: &Value) -> Result<Decoded, ContentError> {
    let s = content.as_str().ok_or(ContentError::NotAString)?;
    let items: Value = serde_json::from_str(s).map_err(|_| ContentError::NotAnArray)?;
    let items = items.as_array().ok_or(ContentError::NotAnArray)?;
    let mut text = String::new();
    let mut text_bytes = 0;
    for item in items {
        match item {
            Value::String(t) => {
                text_bytes += t.len();
                text.push_str(t);
            }
            Value::Array(a) => match a.first().and_then(Value::as_str) {
                Some("font") => {}
                Some("face") => {
                    let id = a
                        .get(1)
                        .and_then(|v| {
                            v.as_i64()
                                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                        })
                        .ok_or(ContentError::BadItem)?;
                    text.push_str(&format!("[face:{id}]"));
                }
                Some("cface") => text.push_str("[cface]"),
                Some("offpic") => text.push_str("[offpic]"),
                _ => return Err(ContentError::BadItem),
            },
            _ => return Err(ContentError::BadItem),
        }
    }
    Ok(Decoded { text, text_bytes })
}

/// HTML-escapes what the real service escaped on delivery (§7.2, §14.6).
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// The font item every E3 poll put first (§7.1, §16).
pub fn default_font() -> Value {
    json!(["font", {"color": "000000", "name": "微软雅黑", "size": 10, "style": [0, 0, 0]}])
}

/// Builds a received `content` array from text in which `[face:N]` marks a face.
pub fn build_received(text: &str) -> Value {
    let mut items = vec![default_font()];
    let mut rest = text;
    let mut pending = String::new();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("[face:") {
            if let Some(end) = after.find(']') {
                if let Ok(id) = after[..end].parse::<u32>() {
                    if !pending.is_empty() {
                        items.push(Value::String(escape_html(&pending)));
                        pending.clear();
                    }
                    items.push(json!(["face", id]));
                    rest = &after[end + 1..];
                    continue;
                }
            }
        }
        let mut chars = rest.chars();
        if let Some(c) = chars.next() {
            pending.push(c);
        }
        rest = chars.as_str();
    }
    if !pending.is_empty() {
        items.push(Value::String(escape_html(&pending)));
    }
    Value::Array(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_faces_and_drops_font() {
        let c = Value::String(
            r#"["hello ",["face",14]," world",["font",{"name":"宋体","size":10,"style":[0,0,0],"color":"000000"}]]"#
                .into(),
        );
        let d = decode_sent(&c).unwrap();
        assert_eq!(d.text, "hello [face:14] world");
        assert_eq!(d.text_bytes, 12);
    }

    #[test]
    fn rejects_non_string_and_broken() {
        assert_eq!(decode_sent(&json!(["x"])), Err(ContentError::NotAString));
        assert_eq!(decode_sent(&json!("[x")), Err(ContentError::NotAnArray));
        assert_eq!(decode_sent(&json!("[1]")), Err(ContentError::BadItem));
    }

    #[test]
    fn builds_font_first_and_escapes() {
        let v = build_received("a<b [face:5]c");
        assert_eq!(v[0][0], "font");
        assert_eq!(v[1], "a&lt;b ");
        assert_eq!(v[2], json!(["face", 5]));
        assert_eq!(v[3], "c");
        assert_eq!(build_received("[face:x]")[1], "[face:x]");
    }
}
