//! Query and header parsing shared by handlers: docker's booleans, filters JSON (both the
//! `{"k":{"v":true}}` and the old `{"k":["v"]}` forms), repeated keys, X-Registry-Auth.

use axum::http::HeaderMap;
use base64::Engine as _;
use berth_engine::{AuthConfig, Filters};

use crate::error::ApiError;

/// Query parameters in order, repeated keys kept.
#[derive(Debug, Default)]
pub struct Query(pub Vec<(String, String)>);

impl Query {
    pub fn parse(raw: Option<&str>) -> Query {
        Query(url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()).into_owned().collect())
    }
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
    pub fn all(&self, key: &str) -> Vec<String> {
        self.0.iter().filter(|(k, _)| k == key).map(|(_, v)| v.clone()).collect()
    }
    /// docker's boolean: "1", "true", "True" are true; absent or "0"/"false"/"" are false.
    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("1" | "true" | "True" | "TRUE"))
    }
    pub fn filters(&self) -> Result<Filters, ApiError> {
        parse_filters(self.get("filters").unwrap_or(""))
    }
}

pub fn parse_filters(raw: &str) -> Result<Filters, ApiError> {
    let mut out = Filters::new();
    if raw.trim().is_empty() {
        return Ok(out);
    }
    let value: serde_json::Value =
        serde_json::from_str(raw).map_err(|e| ApiError::bad_request(format!("invalid filters {raw:?}: {e}")))?;
    let Some(map) = value.as_object() else {
        return Err(ApiError::bad_request(format!("invalid filters {raw:?}: expected a JSON object")));
    };
    for (key, values) in map {
        let list = match values {
            serde_json::Value::Object(set) => set.iter().filter(|(_, v)| v.as_bool() != Some(false)).map(|(k, _)| k.clone()).collect(),
            serde_json::Value::Array(items) => items.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
            _ => return Err(ApiError::bad_request(format!("invalid filters {raw:?}: values of {key:?} must be a set"))),
        };
        out.insert(key.clone(), list);
    }
    Ok(out)
}

/// Decodes the base64url JSON credentials docker sends; absent or empty means anonymous.
pub fn registry_auth(headers: &HeaderMap) -> Result<Option<AuthConfig>, ApiError> {
    let Some(raw) = headers.get("x-registry-auth").and_then(|v| v.to_str().ok()) else { return Ok(None) };
    decode_auth(raw)
}

pub fn decode_auth(raw: &str) -> Result<Option<AuthConfig>, ApiError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    let trimmed = raw.trim_end_matches('=');
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(trimmed)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(trimmed))
        .map_err(|e| ApiError::bad_request(format!("invalid X-Registry-Auth header: {e}")))?;
    let auth: AuthConfig =
        serde_json::from_slice(&bytes).map_err(|e| ApiError::bad_request(format!("invalid X-Registry-Auth header: {e}")))?;
    Ok(Some(auth))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_in_both_forms() {
        let f = parse_filters(r#"{"dangling":{"true":true},"label":["a=b","c"]}"#).unwrap();
        assert_eq!(f["dangling"], vec!["true"]);
        assert_eq!(f["label"], vec!["a=b", "c"]);
        assert!(parse_filters("[1]").is_err());
        assert!(parse_filters("{").is_err());
    }

    #[test]
    fn query_flags_and_repeats() {
        let q = Query::parse(Some("names=a&names=b%2Fc&quiet=1&all=0"));
        assert_eq!(q.all("names"), vec!["a", "b/c"]);
        assert!(q.flag("quiet"));
        assert!(!q.flag("all"));
    }
}
