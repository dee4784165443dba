//! OneBot v11 messages: the CQ-code string form, the segment-array form, and their mapping to
//! the crate's WebQQ text form (`[face:N]` markers, protocol::content).
//!
//! CQ escaping, as the standard has it: in text `&` `[` `]` become `&amp;` `&#91;` `&#93;`;
//! inside a CQ code's parameter value `,` also becomes `&#44;`.
//!
//! WebQQ can carry text and built-in faces only. An `at` has no structured form on WebQQ and
//! is written as text (`@name `); `image`, `record` and every other segment are refused with
//! a reason rather than dropped.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One segment: `{"type": "...", "data": {...}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub data: Map<String, Value>,
}

impl Segment {
    pub fn text(t: &str) -> Segment {
        let mut data = Map::new();
        data.insert("text".into(), Value::String(t.to_string()));
        Segment {
            kind: "text".into(),
            data,
        }
    }

    pub fn face(id: u32) -> Segment {
        let mut data = Map::new();
        data.insert("id".into(), Value::String(id.to_string()));
        Segment {
            kind: "face".into(),
            data,
        }
    }

    /// A data value as text (numbers and booleans as written), if present.
    pub fn get(&self, key: &str) -> Option<String> {
        match self.data.get(key)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
}

/// Escapes text for a CQ string (`in_param`: inside a CQ code's parameter value).
pub fn escape(s: &str, in_param: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '[' => out.push_str("&#91;"),
            ']' => out.push_str("&#93;"),
            ',' if in_param => out.push_str("&#44;"),
            c => out.push(c),
        }
    }
    out
}

/// Reverses [`escape`] (both forms).
pub fn unescape(s: &str) -> String {
    s.replace("&#44;", ",")
        .replace("&#91;", "[")
        .replace("&#93;", "]")
        .replace("&amp;", "&")
}

/// Parses a CQ string into segments. Text between codes becomes `text` segments; a `[CQ:`
/// without its closing `]` stays text.
pub fn parse_cq(s: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find("[CQ:") {
        let Some(len) = rest[start..].find(']') else {
            break;
        };
        if start > 0 {
            out.push(Segment::text(&unescape(&rest[..start])));
        }
        let body = &rest[start + 4..start + len];
        let mut parts = body.split(',');
        let kind = parts.next().unwrap_or("").trim().to_string();
        let mut data = Map::new();
        for p in parts {
            if let Some((k, v)) = p.split_once('=') {
                data.insert(k.to_string(), Value::String(unescape(v)));
            }
        }
        out.push(Segment { kind, data });
        rest = &rest[start + len + 1..];
    }
    if !rest.is_empty() {
        out.push(Segment::text(&unescape(rest)));
    }
    out
}

/// Writes segments as a CQ string.
pub fn to_cq(segs: &[Segment]) -> String {
    let mut out = String::new();
    for s in segs {
        if s.kind == "text" {
            out.push_str(&escape(&s.get("text").unwrap_or_default(), false));
            continue;
        }
        out.push_str("[CQ:");
        out.push_str(&s.kind);
        for (k, v) in &s.data {
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            out.push(',');
            out.push_str(k);
            out.push('=');
            out.push_str(&escape(&v, true));
        }
        out.push(']');
    }
    out
}

/// The `message` parameter of a send: a CQ string (plain text with `auto_escape`), an array
/// of segments, or one segment object.
pub fn from_param(v: &Value, auto_escape: bool) -> Result<Vec<Segment>, String> {
    match v {
        Value::String(s) if auto_escape => Ok(vec![Segment::text(s)]),
        Value::String(s) => Ok(parse_cq(s)),
        Value::Array(items) => items
            .iter()
            .map(|i| {
                serde_json::from_value::<Segment>(i.clone())
                    .map_err(|e| format!("message segment {i}: {e}"))
            })
            .collect(),
        Value::Object(_) => serde_json::from_value::<Segment>(v.clone())
            .map(|s| vec![s])
            .map_err(|e| format!("message segment: {e}")),
        other => Err(format!(
            "`message` must be a string or an array of segments, not {other}"
        )),
    }
}

/// A received message in the crate's text form (`[face:N]` markers) as segments.
pub fn from_webqq_text(text: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut rest = text;
    let mut pending = String::new();
    while let Some(pos) = rest.find("[face:") {
        let after = &rest[pos + 6..];
        let digits: String = after.chars().take_while(|c| c.is_ascii_digit()).collect();
        let closed =
            !digits.is_empty() && digits.len() <= 3 && after[digits.len()..].starts_with(']');
        if closed {
            pending.push_str(&rest[..pos]);
            if !pending.is_empty() {
                out.push(Segment::text(&pending));
                pending.clear();
            }
            out.push(Segment::face(digits.parse().unwrap_or(0)));
            rest = &after[digits.len() + 1..];
        } else {
            pending.push_str(&rest[..pos + 6]);
            rest = after;
        }
    }
    pending.push_str(rest);
    if !pending.is_empty() {
        out.push(Segment::text(&pending));
    }
    out
}

/// Segments to the crate's text form for sending. `at_name` turns an `at`'s `qq` into the
/// name written after `@` (WebQQ has no structured mention). Anything WebQQ cannot carry is
/// refused with a reason.
pub fn to_webqq_text(
    segs: &[Segment],
    at_name: impl Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::new();
    for s in segs {
        match s.kind.as_str() {
            "text" => out.push_str(&s.get("text").unwrap_or_default()),
            "face" => {
                let id = s
                    .get("id")
                    .and_then(|i| i.parse::<u32>().ok())
                    .filter(|i| *i < 1000)
                    .ok_or_else(|| "face: `id` must be a WebQQ face number (0-999)".to_string())?;
                out.push_str(&format!("[face:{id}]"));
            }
            "at" => {
                let qq = s.get("qq").unwrap_or_default();
                let name = if qq == "all" {
                    "全体成员".to_string()
                } else {
                    at_name(&qq).ok_or_else(|| format!("at: no contact with user_id {qq}"))?
                };
                out.push('@');
                out.push_str(&name);
                out.push(' ');
            }
            "image" | "record" | "video" => {
                return Err(format!(
                    "WebQQ cannot send `{}` segments: only text, face and at (as text)",
                    s.kind
                ))
            }
            other => {
                return Err(format!(
                    "segment type `{other}` is not supported on WebQQ (text, face, at only)"
                ))
            }
        }
    }
    if out.is_empty() {
        return Err("empty message".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cq_round_trip_with_escaping() {
        let s = "a&b [x] [CQ:face,id=14]c,d[CQ:at,qq=123]";
        let segs = parse_cq(s);
        assert_eq!(segs.len(), 4);
        assert_eq!(segs[0], Segment::text("a&b [x] "));
        assert_eq!(segs[1].kind, "face");
        assert_eq!(segs[1].get("id").as_deref(), Some("14"));
        assert_eq!(segs[2], Segment::text("c,d"));
        assert_eq!(segs[3].get("qq").as_deref(), Some("123"));
        let back = to_cq(&segs);
        assert_eq!(back, "a&amp;b &#91;x&#93; [CQ:face,id=14]c,d[CQ:at,qq=123]");
        assert_eq!(parse_cq(&back), segs);
        // A comma inside a parameter value is escaped.
        let mut seg = Segment::text("");
        seg.kind = "share".into();
        seg.data.clear();
        seg.data.insert("title".into(), json!("a,b]"));
        assert_eq!(to_cq(&[seg.clone()]), "[CQ:share,title=a&#44;b&#93;]");
        assert_eq!(parse_cq(&to_cq(&[seg.clone()])), vec![seg]);
        // An unclosed code is text.
        assert_eq!(parse_cq("x[CQ:face"), vec![Segment::text("x[CQ:face")]);
    }

    #[test]
    fn params_in_every_form() {
        assert_eq!(
            from_param(&json!("[CQ:face,id=1]"), true).unwrap(),
            vec![Segment::text("[CQ:face,id=1]")]
        );
        assert_eq!(
            from_param(&json!("[CQ:face,id=1]"), false).unwrap()[0].kind,
            "face"
        );
        let arr = json!([{"type":"text","data":{"text":"hi"}},{"type":"face","data":{"id":5}}]);
        let segs = from_param(&arr, false).unwrap();
        assert_eq!(to_webqq_text(&segs, |_| None).unwrap(), "hi[face:5]");
        assert!(from_param(&json!(5), false).is_err());
        assert!(from_param(&json!([{"data":{}}]), false).is_err());
    }

    #[test]
    fn webqq_mapping() {
        let segs = from_webqq_text("hi [face:14][face:x] [face:1234]");
        assert_eq!(segs[0], Segment::text("hi "));
        assert_eq!(segs[1], Segment::face(14));
        assert_eq!(segs[2], Segment::text("[face:x] [face:1234]"));
        let at = parse_cq("[CQ:at,qq=7] hello [CQ:at,qq=all]");
        assert_eq!(
            to_webqq_text(&at, |q| (q == "7").then(|| "Bob".to_string())).unwrap(),
            "@Bob  hello @全体成员 "
        );
        let img = parse_cq("[CQ:image,file=x.png]");
        let e = to_webqq_text(&img, |_| None).unwrap_err();
        assert!(e.contains("image"), "{e}");
        assert!(to_webqq_text(&parse_cq("[CQ:record,file=a]"), |_| None).is_err());
        assert!(to_webqq_text(&parse_cq("[CQ:at,qq=9]"), |_| None).is_err());
        assert!(to_webqq_text(&[], |_| None).is_err());
    }
}
