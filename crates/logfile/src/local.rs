//! berth's `local` format: a header, then length-prefixed records that also end with their
//! length, so a file can be walked from either end.
//!
//! ```text
//! header: "berthlg1" | u32 attrs_len | attrs as a JSON object (attrs_len bytes)
//! record: u32 len | u8 stream (1 stdout, 2 stderr) | u8 flags (bit 0: partial)
//!         | i64 unix nanoseconds | payload | u32 len          (len = 10 + payload length)
//! ```
//! Integers are big-endian. The payload keeps the line's newline, as json-file's `log` does.

use std::collections::BTreeMap;

use crate::{Entry, Stream};

pub(crate) const MAGIC: &[u8; 8] = b"berthlg1";
/// Magic and the attribute length.
pub(crate) const HEADER_FIXED: usize = 12;
/// Stream, flags and time.
const BODY_FIXED: usize = 10;
/// Both length fields and the fixed body.
pub(crate) const RECORD_OVERHEAD: usize = 8 + BODY_FIXED;
/// Longest body a reader accepts; the writer's are at most 16 KiB and a newline.
const MAX_BODY: usize = BODY_FIXED + (1 << 20);
/// Longest attribute block a reader accepts.
const MAX_ATTRS: usize = 1 << 20;
const FLAG_PARTIAL: u8 = 1;

pub(crate) fn encode_header(attrs: &BTreeMap<String, String>) -> Vec<u8> {
    let json = if attrs.is_empty() {
        Vec::new()
    } else {
        serde_json::to_vec(attrs).unwrap_or_default()
    };
    let mut out = Vec::with_capacity(HEADER_FIXED + json.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(json.len() as u32).to_be_bytes());
    out.extend_from_slice(&json);
    out
}

/// The header's total length once its first 12 bytes are known.
pub(crate) fn header_len(fixed: &[u8]) -> Result<usize, String> {
    if fixed.len() < HEADER_FIXED || &fixed[..8] != MAGIC {
        return Err("not a berth local log file (bad magic)".to_string());
    }
    let len = u32::from_be_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]) as usize;
    if len > MAX_ATTRS {
        return Err(format!("attribute block of {len} bytes is too large"));
    }
    Ok(HEADER_FIXED + len)
}

pub(crate) fn decode_header(header: &[u8]) -> Result<Vec<(String, String)>, String> {
    let json = &header[HEADER_FIXED.min(header.len())..];
    if json.is_empty() {
        return Ok(Vec::new());
    }
    let attrs: BTreeMap<String, String> =
        serde_json::from_slice(json).map_err(|e| format!("invalid attributes in header: {e}"))?;
    Ok(attrs.into_iter().collect())
}

pub(crate) fn encode_record(
    out: &mut Vec<u8>,
    stream: Stream,
    partial: bool,
    nanos: i64,
    payload: &[u8],
) {
    let len = ((BODY_FIXED + payload.len()) as u32).to_be_bytes();
    out.extend_from_slice(&len);
    out.push(match stream {
        Stream::Stdout => 1,
        Stream::Stderr => 2,
    });
    out.push(if partial { FLAG_PARTIAL } else { 0 });
    out.extend_from_slice(&nanos.to_be_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(&len);
}

/// Reads a length field.
pub(crate) fn read_len(bytes: &[u8]) -> Result<usize, String> {
    let len = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    if !(BODY_FIXED..=MAX_BODY).contains(&len) {
        return Err(format!("record length {len} out of range"));
    }
    Ok(len)
}

/// Checks the stream and flag bytes at the start of a body.
pub(crate) fn check_body_start(body: &[u8]) -> Result<(), String> {
    if !matches!(body[0], 1 | 2) {
        return Err(format!("unknown stream {}", body[0]));
    }
    if body[1] & !FLAG_PARTIAL != 0 {
        return Err(format!("unknown flags {:#x}", body[1]));
    }
    Ok(())
}

/// Decodes a whole record, both lengths included.
pub(crate) fn decode_record(record: &[u8], attrs: &[(String, String)]) -> Result<Entry, String> {
    let len = read_len(record)?;
    if record.len() != len + 8 {
        return Err("record length does not match".to_string());
    }
    let body = &record[4..4 + len];
    let trailer = read_len(&record[4 + len..])?;
    if trailer != len {
        return Err(format!(
            "leading length {len} and trailing length {trailer} differ"
        ));
    }
    check_body_start(body)?;
    let stream = if body[0] == 1 {
        Stream::Stdout
    } else {
        Stream::Stderr
    };
    let mut nanos = [0u8; 8];
    nanos.copy_from_slice(&body[2..10]);
    Ok(Entry {
        stream,
        time: crate::timefmt::from_unix_nanos(i64::from_be_bytes(nanos)),
        line: body[BODY_FIXED..].to_vec(),
        partial: body[1] & FLAG_PARTIAL != 0,
        attrs: attrs.to_vec(),
    })
}
