//! Docker's json-file lines: `{"log":"...","stream":"stdout","attrs":{...},"time":"..."}`,
//! encoded byte for byte as docker's hand-written marshaller does.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::Deserialize;

use crate::timefmt;
use crate::{Entry, Stream};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Which of Go's two JSON string encoders to copy.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Escaper {
    /// docker's `ffjsonWriteJSONBytesAsString`, used for `log` and `stream`.
    LogBytes,
    /// Go's `encoding/json`, used for `attrs`: adds `\t`, `\b`, `\f` short forms.
    GoJson,
}

fn push_escaped(out: &mut Vec<u8>, s: &[u8], escaper: Escaper) {
    out.push(b'"');
    for chunk in s.utf8_chunks() {
        let valid = chunk.valid().as_bytes();
        let mut start = 0;
        let mut i = 0;
        while i < valid.len() {
            let b = valid[i];
            if b < 0x80 {
                if b >= 0x20 && !matches!(b, b'\\' | b'"' | b'<' | b'>' | b'&') {
                    i += 1;
                    continue;
                }
                out.extend_from_slice(&valid[start..i]);
                match (b, escaper) {
                    (b'\\' | b'"', _) => out.extend_from_slice(&[b'\\', b]),
                    (b'\n', _) => out.extend_from_slice(b"\\n"),
                    (b'\r', _) => out.extend_from_slice(b"\\r"),
                    (b'\t', Escaper::GoJson) => out.extend_from_slice(b"\\t"),
                    (0x08, Escaper::GoJson) => out.extend_from_slice(b"\\b"),
                    (0x0c, Escaper::GoJson) => out.extend_from_slice(b"\\f"),
                    _ => out.extend_from_slice(&[
                        b'\\',
                        b'u',
                        b'0',
                        b'0',
                        HEX[usize::from(b >> 4)],
                        HEX[usize::from(b & 0xf)],
                    ]),
                }
                i += 1;
                start = i;
                continue;
            }
            // U+2028 and U+2029 (E2 80 A8/A9) end lines in JavaScript; Go escapes them.
            if b == 0xe2
                && valid.get(i + 1) == Some(&0x80)
                && matches!(valid.get(i + 2), Some(0xa8 | 0xa9))
            {
                out.extend_from_slice(&valid[start..i]);
                out.extend_from_slice(if valid[i + 2] == 0xa8 {
                    b"\\u2028"
                } else {
                    b"\\u2029"
                });
                i += 3;
                start = i;
                continue;
            }
            i += 1;
        }
        out.extend_from_slice(&valid[start..]);
        // Go decodes an invalid sequence one byte at a time, each as U+FFFD.
        for _ in chunk.invalid() {
            out.extend_from_slice(b"\\ufffd");
        }
    }
    out.push(b'"');
}

/// The `attrs` object as Go's `json.Marshal` of a `map[string]string` writes it (keys
/// sorted); empty when there are no attributes, so the key is left out.
pub(crate) fn encode_attrs(attrs: &BTreeMap<String, String>) -> Vec<u8> {
    let mut out = Vec::new();
    if attrs.is_empty() {
        return out;
    }
    out.push(b'{');
    for (i, (key, value)) in attrs.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_escaped(&mut out, key.as_bytes(), Escaper::GoJson);
        out.push(b':');
        push_escaped(&mut out, value.as_bytes(), Escaper::GoJson);
    }
    out.push(b'}');
    out
}

/// Appends one line (newline included) for a message. `None` when the time is outside
/// what RFC 3339 can express (docker refuses those too).
pub(crate) fn encode(
    out: &mut Vec<u8>,
    stream: Stream,
    log: &[u8],
    time: SystemTime,
    attrs: &[u8],
) -> Option<()> {
    out.push(b'{');
    // Like docker: an empty `log` is omitted.
    if !log.is_empty() {
        out.extend_from_slice(b"\"log\":");
        push_escaped(out, log, Escaper::LogBytes);
        out.push(b',');
    }
    out.extend_from_slice(b"\"stream\":\"");
    out.extend_from_slice(stream.as_str().as_bytes());
    out.extend_from_slice(b"\",");
    if !attrs.is_empty() {
        out.extend_from_slice(b"\"attrs\":");
        out.extend_from_slice(attrs);
        out.push(b',');
    }
    out.extend_from_slice(b"\"time\":\"");
    timefmt::push_rfc3339(out, time)?;
    out.extend_from_slice(b"\"}\n");
    Some(())
}

#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow, default)]
    log: Cow<'a, str>,
    #[serde(borrow, default)]
    stream: Cow<'a, str>,
    #[serde(borrow)]
    time: Option<Cow<'a, str>>,
    #[serde(default)]
    attrs: Option<BTreeMap<String, String>>,
}

/// Decodes one line (without its newline); the error is the reason it is corrupt.
pub(crate) fn decode(line: &[u8]) -> Result<Entry, String> {
    let parsed: Line = serde_json::from_slice(line).map_err(|e| format!("invalid json: {e}"))?;
    let stream = Stream::from_name(&parsed.stream)
        .ok_or_else(|| format!("unknown stream {:?}", parsed.stream))?;
    let time = parsed.time.ok_or("no time")?;
    let time = timefmt::parse_rfc3339(&time).ok_or_else(|| format!("invalid time {time:?}"))?;
    let line = parsed.log.into_owned().into_bytes();
    Ok(Entry {
        stream,
        time,
        partial: !line.ends_with(b"\n"),
        line,
        attrs: parsed.attrs.unwrap_or_default().into_iter().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_escape(s: &[u8]) -> String {
        let mut out = Vec::new();
        push_escaped(&mut out, s, Escaper::LogBytes);
        String::from_utf8(out).expect("escaped output is ascii-safe utf-8")
    }

    #[test]
    fn escapes_like_docker() {
        // Cases from moby's jsonlogbytes_test.go and what dockerd 20.10 wrote on this machine.
        assert_eq!(log_escape(b"hello\n"), r#""hello\n""#);
        assert_eq!(
            log_escape(b"tab\there <b>&amp; \"q\" back\\slash\r\n"),
            r#""tab\u0009here \u003cb\u003e\u0026amp; \"q\" back\\slash\r\n""#
        );
        assert_eq!(
            log_escape(b"\x01\x1b[31mred\xe2\x80\xa8x\xff\xfey\n"),
            r#""\u0001\u001b[31mred\u2028x\ufffd\ufffdy\n""#
        );
        assert_eq!(
            log_escape("\u{2029}é€😀\x7f".as_bytes()),
            "\"\\u2029é€😀\x7f\""
        );
        // A character cut in two by a 16 KiB split: each stray byte is one U+FFFD.
        assert_eq!(log_escape(b"a\xe2\x82"), r#""a\ufffd\ufffd""#);
        assert_eq!(log_escape(b"\xed\xa0\x80"), r#""\ufffd\ufffd\ufffd""#);
    }

    #[test]
    fn attrs_like_go_json_marshal() {
        let attrs: BTreeMap<String, String> =
            [("z", "last"), ("a", "t\tb\u{8}<x>&"), ("m", "\u{1}")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        assert_eq!(
            String::from_utf8(encode_attrs(&attrs)).expect("utf-8"),
            r#"{"a":"t\tb\b\u003cx\u003e\u0026","m":"\u0001","z":"last"}"#
        );
        assert!(encode_attrs(&BTreeMap::new()).is_empty());
    }
}
