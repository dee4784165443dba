//! Message `content`: the received codec (WEBQQ.md §7.1), the sent encoding (§7.2) and the
//! 720-byte splitter (§7.2 "Length").
//!
//! Text form used throughout the crate: plain text with faces written `[face:N]`, pictures
//! rendered as placeholders (`[图片]`, `[offpic]`...).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Longest piece of text per message, in UTF-8 bytes (§7.2: ≈720 bytes, longer texts were
/// truncated or failed).
pub const MAX_PIECE_BYTES: usize = 720;

/// The placeholder for an E3 message whose picture was stripped (§7.1: by 2018 a picture
/// arrived as a content holding only the font item; Mojo rendered it "[图片]").
pub const PICTURE_PLACEHOLDER: &str = "[图片]";

/// The font item (§7.1). Kept as received; `size` was a number or a string.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Font {
    pub name: String,
    pub size: u32,
    pub color: String,
    /// bold, italic, underline
    pub style: [u8; 3],
}

impl Default for Font {
    /// What the official page sent (§7.2): 宋体 10, black, plain.
    fn default() -> Self {
        Font {
            name: "宋体".into(),
            size: 10,
            color: "000000".into(),
            style: [0, 0, 0],
        }
    }
}

impl Font {
    fn from_json(v: &Value) -> Font {
        let d = Font::default();
        let size = match v.get("size") {
            Some(Value::Number(n)) => n.as_u64().map(|n| n.min(1000) as u32),
            Some(Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        };
        let mut style = [0u8; 3];
        if let Some(Value::Array(a)) = v.get("style") {
            for (i, x) in a.iter().take(3).enumerate() {
                style[i] = x.as_u64().map(|n| n.min(1) as u8).unwrap_or(0);
            }
        }
        Font {
            name: v
                .get("name")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or(d.name),
            size: size.unwrap_or(d.size),
            color: v
                .get("color")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or(d.color),
            style,
        }
    }

    fn to_json(&self) -> Value {
        json!(["font", {"name": self.name, "size": self.size, "style": self.style, "color": self.color}])
    }
}

/// One item of a message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Part {
    /// Text, `\r\n` normalised to `\n`, HTML entities unescaped.
    Text(String),
    /// Built-in emoticon (`["face", id]`); since 2018-04 always 0 on receipt.
    Face(u32),
    /// Friend picture (`["offpic", {file_path}]`), fetched via `get_offpic2` (§9).
    OffPic { file_path: String },
    /// Custom face / group picture (`["cface", {...}]` or `["cface", name, ""]`).
    CFace { name: String },
    /// A picture the E3 server stripped (content = font only).
    StrippedPicture,
    /// Any other item (`sendfile`...), kept by its tag.
    Other { tag: String },
}

/// A decoded `content` array.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Content {
    pub font: Option<Font>,
    pub parts: Vec<Part>,
}

impl Content {
    /// Decodes a received `content` (§7.1). Fails only when `content` is not an array.
    pub fn from_json(v: &Value) -> Result<Content, String> {
        let items = v
            .as_array()
            .ok_or_else(|| "content is not an array".to_string())?;
        let mut font = None;
        let mut parts = Vec::new();
        for item in items {
            match item {
                Value::String(s) => parts.push(Part::Text(html_unescape(&s.replace("\r\n", "\n")))),
                Value::Array(a) => {
                    let tag = a.first().and_then(Value::as_str).unwrap_or("");
                    let arg = a.get(1).unwrap_or(&Value::Null);
                    match tag {
                        "font" => font = Some(Font::from_json(arg)),
                        "face" => {
                            let id = match arg {
                                Value::Number(n) => n.as_u64(),
                                Value::String(s) => s.parse().ok(),
                                _ => None,
                            };
                            match id.and_then(|n| u32::try_from(n).ok()) {
                                Some(id) => parts.push(Part::Face(id)),
                                None => parts.push(Part::Other { tag: "face".into() }),
                            }
                        }
                        "offpic" => parts.push(Part::OffPic {
                            file_path: arg
                                .get("file_path")
                                .and_then(Value::as_str)
                                .unwrap_or("")
                                .to_string(),
                        }),
                        "cface" => parts.push(Part::CFace {
                            name: match arg {
                                Value::String(s) => s.clone(),
                                o => o
                                    .get("name")
                                    .and_then(Value::as_str)
                                    .unwrap_or("")
                                    .to_string(),
                            },
                        }),
                        other => parts.push(Part::Other {
                            tag: other.chars().take(32).collect(),
                        }),
                    }
                }
                // numbers, objects, null: not seen in real content; keep a marker
                _ => parts.push(Part::Other { tag: "?".into() }),
            }
        }
        if parts.is_empty() {
            parts.push(Part::StrippedPicture);
        }
        Ok(Content { font, parts })
    }

    /// The text form: text as is, faces `[face:N]`, pictures as placeholders.
    pub fn text(&self) -> String {
        let mut s = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => s.push_str(t),
                Part::Face(n) => {
                    s.push_str("[face:");
                    s.push_str(&n.to_string());
                    s.push(']');
                }
                Part::OffPic { .. } | Part::CFace { .. } | Part::StrippedPicture => {
                    s.push_str(PICTURE_PLACEHOLDER)
                }
                Part::Other { tag } => {
                    s.push('[');
                    s.push_str(tag);
                    s.push(']');
                }
            }
        }
        s
    }

    /// Parses the crate's text form into parts for sending: `[face:N]` (N canonical decimal,
    /// at most 3 digits) becomes a face, everything else is text.
    pub fn from_text(text: &str) -> Content {
        let mut parts = Vec::new();
        let mut buf = String::new();
        let mut rest = text;
        while let Some(pos) = rest.find("[face:") {
            let after = &rest[pos + 6..];
            let digits: &str = &after[..after
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(after.len())];
            let canonical = !digits.is_empty()
                && digits.len() <= 3
                && (digits == "0" || !digits.starts_with('0'));
            if canonical && after[digits.len()..].starts_with(']') {
                buf.push_str(&rest[..pos]);
                if !buf.is_empty() {
                    parts.push(Part::Text(std::mem::take(&mut buf)));
                }
                parts.push(Part::Face(digits.parse().unwrap_or(0)));
                rest = &after[digits.len() + 1..];
            } else {
                buf.push_str(&rest[..pos + 6]);
                rest = after;
            }
        }
        buf.push_str(rest);
        if !buf.is_empty() {
            parts.push(Part::Text(buf));
        }
        Content {
            font: Some(Font::default()),
            parts,
        }
    }

    /// The `content` string of a send body (§7.2): the JSON array of the parts followed by
    /// exactly one font item LAST, serialised to a string (it is then put into `r` and
    /// serialised again: double encoding).
    pub fn to_send_json(&self) -> String {
        let mut arr: Vec<Value> = Vec::with_capacity(self.parts.len() + 1);
        for p in &self.parts {
            match p {
                Part::Text(t) => arr.push(Value::String(t.clone())),
                Part::Face(n) => arr.push(json!(["face", n])),
                // pictures cannot be sent in E3 (§7.2); send their placeholder text
                other => arr.push(Value::String(
                    Content {
                        font: None,
                        parts: vec![other.clone()],
                    }
                    .text(),
                )),
            }
        }
        arr.push(self.font.clone().unwrap_or_default().to_json());
        Value::Array(arr).to_string()
    }
}

/// The send `content` string for a text in the crate's text form.
pub fn encode_send(text: &str) -> String {
    Content::from_text(text).to_send_json()
}

/// Unescapes the HTML entities the server put in received text (§7.1: `&lt; &gt; &amp;
/// &nbsp;`, plus `&quot; &#39;` and numeric forms). Unknown entities stay as they are.
pub fn html_unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('&') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos..];
        let end = after.bytes().take(12).position(|b| b == b';');
        let decoded = end.and_then(|end| {
            let name = &after[1..end];
            let c = match name {
                "lt" => Some('<'),
                "gt" => Some('>'),
                "amp" => Some('&'),
                "quot" => Some('"'),
                "apos" | "#39" => Some('\''),
                "nbsp" => Some(' '),
                n if n.starts_with("#x") || n.starts_with("#X") => u32::from_str_radix(&n[2..], 16)
                    .ok()
                    .and_then(char::from_u32),
                n if n.starts_with('#') => n[1..].parse().ok().and_then(char::from_u32),
                _ => None,
            };
            c.map(|c| (c, end + 1))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &after[len..];
            }
            None => {
                out.push('&');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Splits text into pieces of at most [`MAX_PIECE_BYTES`] UTF-8 bytes whose concatenation is
/// the input. A cut goes after the last whitespace in the last 100 bytes of the window
/// (pandolia's rule, §7.2), else at the last character boundary; never inside a character and
/// never inside a `[face:N]` marker.
pub fn split_text(text: &str) -> Vec<String> {
    split_text_at(text, MAX_PIECE_BYTES)
}

/// [`split_text`] with another limit (≥ 16 bytes so a face marker always fits).
pub fn split_text_at(text: &str, max: usize) -> Vec<String> {
    let max = max.max(16);
    let mut pieces = Vec::new();
    let mut rest = text;
    while rest.len() > max {
        // last char boundary ≤ max
        let mut cut = max;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        // prefer a whitespace cut in the last 100 bytes of the window
        let mut window_start = cut.saturating_sub(100);
        while !rest.is_char_boundary(window_start) {
            window_start += 1;
        }
        if let Some((i, c)) = rest[window_start..cut]
            .char_indices()
            .rev()
            .find(|(_, c)| c.is_whitespace())
        {
            cut = window_start + i + c.len_utf8();
        }
        // never cut a face marker in two: a marker is at most 10 bytes (`[face:123]`)
        let lo = cut.saturating_sub(10);
        if let Some(open) = rest.as_bytes()[lo..cut]
            .iter()
            .rposition(|&b| b == b'[')
            .map(|i| lo + i)
        {
            if let Some(len) = face_marker_len(&rest[open..]) {
                if open + len > cut && open > 0 {
                    cut = open;
                }
            }
        }
        if cut == 0 {
            // cannot happen with max ≥ 16, but never loop forever
            cut = rest
                .char_indices()
                .nth(1)
                .map(|(i, _)| i)
                .unwrap_or(rest.len());
        }
        pieces.push(rest[..cut].to_string());
        rest = &rest[cut..];
    }
    if !rest.is_empty() || pieces.is_empty() {
        pieces.push(rest.to_string());
    }
    pieces
}

/// Length of the `[face:N]` marker at the start of `s`, if there is one.
fn face_marker_len(s: &str) -> Option<usize> {
    let after = s.strip_prefix("[face:")?;
    let digits = after.bytes().take_while(u8::is_ascii_digit).count();
    ((1..=3).contains(&digits) && after.as_bytes().get(digits) == Some(&b']'))
        .then_some(6 + digits + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_section_7_items() {
        let v: Value = serde_json::from_str(
            r#"[["font",{"name":"宋体","size":"10","style":[0,1,0],"color":"000000"}],"a &lt;b&gt; &amp;&nbsp;c\r\nd",["face",14]," ",["offpic",{"success":1,"file_path":"/x"}],["cface","n.jpg",""],["sendfile",1]]"#,
        )
        .unwrap();
        let c = Content::from_json(&v).unwrap();
        assert_eq!(c.font.as_ref().unwrap().size, 10);
        assert_eq!(c.font.as_ref().unwrap().style, [0, 1, 0]);
        assert_eq!(c.text(), "a <b> & c\nd[face:14] [图片][图片][sendfile]");
        let only_font: Value = serde_json::from_str(r#"[["font",{}]]"#).unwrap();
        assert_eq!(Content::from_json(&only_font).unwrap().text(), "[图片]");
        assert!(Content::from_json(&json!({"a":1})).is_err());
    }

    #[test]
    fn send_encoding_puts_font_last_and_faces_as_items() {
        let s = encode_send("hello [face:14] world\n[face:x]");
        let v: Value = serde_json::from_str(&s).unwrap();
        let a = v.as_array().unwrap();
        assert_eq!(a[0], json!("hello "));
        assert_eq!(a[1], json!(["face", 14]));
        assert_eq!(a[2], json!(" world\n[face:x]"));
        assert_eq!(a.last().unwrap()[0], json!("font"));
        assert_eq!(a.len(), 4);
    }

    #[test]
    fn splitter_prefers_whitespace_and_respects_characters() {
        let text = "词".repeat(500); // 1500 bytes, no whitespace
        let p = split_text(&text);
        assert!(p.iter().all(|s| s.len() <= 720));
        assert_eq!(p.concat(), text);
        assert_eq!(p[0].len(), 720);
        let words = "hello world ".repeat(100); // 1200 bytes
        let p = split_text(&words);
        assert!(p[0].ends_with(' '));
        assert_eq!(p.concat(), words);
        assert_eq!(split_text(""), vec![String::new()]);
        let faces = format!("{}[face:123]", "a".repeat(715));
        let p = split_text(&faces);
        assert_eq!(p[1], "[face:123]");
    }
}
