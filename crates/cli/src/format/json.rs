//! JSON that keeps the daemon's key order, Go-compatible encoding (`encoding/json`'s
//! escaping and compact form) and Go's `json.Indent` over raw text.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A JSON value whose objects keep their keys in document order.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    /// Parses JSON text.
    pub fn parse(text: &[u8]) -> Result<Json, serde_json::Error> {
        serde_json::from_slice(text)
    }

    /// The value of `key` in an object.
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Follows a path of object keys.
    pub fn path(&self, keys: &[&str]) -> Option<&Json> {
        keys.iter().try_fold(self, |value, key| value.get(key))
    }

    /// The string value, or "" for anything else.
    pub fn str(&self) -> &str {
        match self {
            Json::String(s) => s,
            _ => "",
        }
    }

    /// The integer value, or 0 for anything else.
    pub fn int(&self) -> i64 {
        match self {
            Json::Number(n) => n
                .as_i64()
                .or_else(|| n.as_f64().map(|f| f as i64))
                .unwrap_or(0),
            _ => 0,
        }
    }

    /// The boolean value, or false for anything else.
    pub fn bool(&self) -> bool {
        matches!(self, Json::Bool(true))
    }

    /// The array elements, or none.
    pub fn items(&self) -> &[Json] {
        match self {
            Json::Array(items) => items,
            _ => &[],
        }
    }

    /// The object fields in document order, or none.
    pub fn fields(&self) -> &[(String, Json)] {
        match self {
            Json::Object(fields) => fields,
            _ => &[],
        }
    }

    /// Go's `fmt.Print` rendering of the value as a text/template action prints it.
    pub fn go_text(&self) -> String {
        match self {
            Json::Null => "<nil>".to_string(),
            Json::Bool(b) => b.to_string(),
            Json::Number(n) => n.to_string(),
            Json::String(s) => s.clone(),
            Json::Array(items) => {
                let parts: Vec<String> = items.iter().map(Json::go_text).collect();
                format!("[{}]", parts.join(" "))
            }
            Json::Object(fields) => {
                let mut sorted: Vec<&(String, Json)> = fields.iter().collect();
                sorted.sort_by(|a, b| a.0.cmp(&b.0));
                let parts: Vec<String> = sorted
                    .iter()
                    .map(|(k, v)| format!("{k}:{}", v.go_text()))
                    .collect();
                format!("map[{}]", parts.join(" "))
            }
        }
    }

    /// Compact encoding as Go's `encoding/json` writes it; `escape_html` also escapes
    /// `<`, `>` and `&` as `json.Marshal` does.
    pub fn to_go_json(&self, escape_html: bool) -> String {
        let mut out = String::new();
        self.write_go_json(&mut out, escape_html);
        out
    }

    fn write_go_json(&self, out: &mut String, escape_html: bool) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Number(n) => out.push_str(&n.to_string()),
            Json::String(s) => write_go_string(out, s, escape_html),
            Json::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write_go_json(out, escape_html);
                }
                out.push(']');
            }
            Json::Object(fields) => {
                out.push('{');
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_go_string(out, k, escape_html);
                    out.push(':');
                    v.write_go_json(out, escape_html);
                }
                out.push('}');
            }
        }
    }
}

impl From<&str> for Json {
    fn from(s: &str) -> Json {
        Json::String(s.to_string())
    }
}

impl From<String> for Json {
    fn from(s: String) -> Json {
        Json::String(s)
    }
}

impl From<i64> for Json {
    fn from(n: i64) -> Json {
        Json::Number(n.into())
    }
}

impl From<bool> for Json {
    fn from(b: bool) -> Json {
        Json::Bool(b)
    }
}

/// Writes a JSON string literal with Go's escaping rules.
pub fn write_go_string(out: &mut String, s: &str, escape_html: bool) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' if escape_html => {
                let b = ch as u8;
                out.push_str("\\u00");
                out.push(HEX[(b >> 4) as usize] as char);
                out.push(HEX[(b & 0xf) as usize] as char);
            }
            c if (c as u32) < 0x20 => {
                let b = c as u8;
                out.push_str("\\u00");
                out.push(HEX[(b >> 4) as usize] as char);
                out.push(HEX[(b & 0xf) as usize] as char);
            }
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out.push('"');
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Json, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Json, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Json::Null, Json::Number))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Json, E> {
        Ok(Json::String(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Json, E> {
        Ok(Json::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Json, D::Error> {
        Json::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut fields: Vec<(String, Json)> = Vec::new();
        while let Some((key, value)) = map.next_entry::<String, Json>()? {
            // A repeated key keeps its last value, as Go's decoder does.
            if let Some(slot) = fields.iter_mut().find(|(k, _)| *k == key) {
                slot.1 = value;
            } else {
                fields.push((key, value));
            }
        }
        Ok(Json::Object(fields))
    }
}

/// Go's `json.Indent`: re-indents JSON text without touching string contents or numbers.
/// Empty arrays and objects stay `[]` and `{}`. The input must be valid JSON.
pub fn indent(raw: &[u8], prefix: &str, unit: &str) -> String {
    let mut out = String::with_capacity(raw.len() * 2);
    let mut depth = 0usize;
    let mut need_newline = false;
    let mut in_string = false;
    let mut escaped = false;
    let text = String::from_utf8_lossy(raw);
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.push_str(prefix);
        for _ in 0..depth {
            out.push_str(unit);
        }
    };
    for ch in text.chars() {
        if in_string {
            out.push(ch);
            if escaped {
                escaped = false;
            } else if ch == '\\' {
                escaped = true;
            } else if ch == '"' {
                in_string = false;
            }
            continue;
        }
        if ch.is_ascii_whitespace() {
            continue;
        }
        // The newline after an opening bracket is written only once an element follows.
        if need_newline && ch != ']' && ch != '}' {
            need_newline = false;
            depth += 1;
            newline(&mut out, depth);
        }
        match ch {
            '"' => {
                in_string = true;
                out.push(ch);
            }
            '{' | '[' => {
                out.push(ch);
                need_newline = true;
            }
            ',' => {
                out.push(ch);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            '}' | ']' => {
                if need_newline {
                    need_newline = false;
                } else {
                    depth = depth.saturating_sub(1);
                    newline(&mut out, depth);
                }
                out.push(ch);
            }
            c => out.push(c),
        }
    }
    out
}

/// Go's `json.Compact`: removes insignificant whitespace from JSON text.
pub fn compact(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    for ch in text.chars() {
        if in_string {
            out.push(ch);
            if escaped {
                escaped = false;
            } else if ch == '\\' {
                escaped = true;
            } else if ch == '"' {
                in_string = false;
            }
        } else if !ch.is_ascii_whitespace() {
            if ch == '"' {
                in_string = true;
            }
            out.push(ch);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_key_order() {
        let j = Json::parse(br#"{"b":1,"a":{"z":null,"y":[true,"x"]}}"#).unwrap();
        assert_eq!(
            j.to_go_json(false),
            r#"{"b":1,"a":{"z":null,"y":[true,"x"]}}"#
        );
        assert_eq!(j.path(&["a", "y"]).unwrap().items().len(), 2);
        assert_eq!(j.get("b").unwrap().int(), 1);
    }

    #[test]
    fn go_escaping() {
        let j = Json::String("<none>&\"\\\n\u{1}\u{2028}".into());
        assert_eq!(j.to_go_json(false), r#""<none>&\"\\\n\u0001\u2028""#);
        assert_eq!(
            j.to_go_json(true),
            r#""\u003cnone\u003e\u0026\"\\\n\u0001\u2028""#
        );
    }

    #[test]
    fn go_text_prints_like_fmt() {
        let j = Json::parse(br#"{"b":"2","a":["x","y"],"n":null,"e":[]}"#).unwrap();
        assert_eq!(j.go_text(), "map[a:[x y] b:2 e:[] n:<nil>]");
    }

    #[test]
    fn indents_like_go() {
        let raw = br#"[{"Id":"sha256:x","RepoDigests":[],"Config":{"Env":null,"Cmd":["sh"]},"Empty":{},"S":"a,b:\"c\" [ ]"}]"#;
        let expected = r#"[
    {
        "Id": "sha256:x",
        "RepoDigests": [],
        "Config": {
            "Env": null,
            "Cmd": [
                "sh"
            ]
        },
        "Empty": {},
        "S": "a,b:\"c\" [ ]"
    }
]"#;
        assert_eq!(indent(raw, "", "    "), expected);
        assert_eq!(indent(b"[]", "", "    "), "[]");
    }

    #[test]
    fn compacts() {
        assert_eq!(
            compact(b"[ {\"a\" : \"b c\" } ,\n 1 ]"),
            r#"[{"a":"b c"},1]"#
        );
    }
}
