//! Registry search (`GET /v1/search`, the shape `docker search` shows).

use serde::{Deserialize, Serialize};

use crate::reference::DEFAULT_DOMAIN;

/// What `/v1/search` answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchResults {
    #[serde(default)]
    pub num_results: u64,
    #[serde(default)]
    pub query: String,
    #[serde(default)]
    pub results: Vec<SearchResult>,
}

/// One repository found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchResult {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub star_count: u64,
    #[serde(default)]
    pub is_official: bool,
    #[serde(default)]
    pub is_automated: bool,
}

/// Splits a `docker search` term into the registry to ask and the term to send:
/// `localhost:5000/app` -> (`localhost:5000`, `app`); `user/app` -> (`docker.io`, `user/app`).
pub fn split_search_term(term: &str) -> (String, String) {
    match term.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
            (first.to_string(), rest.to_string())
        }
        _ => (DEFAULT_DOMAIN.to_string(), term.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_terms() {
        assert_eq!(
            split_search_term("busybox"),
            ("docker.io".into(), "busybox".into())
        );
        assert_eq!(
            split_search_term("user/app"),
            ("docker.io".into(), "user/app".into())
        );
        assert_eq!(
            split_search_term("localhost/app"),
            ("localhost".into(), "app".into())
        );
        assert_eq!(
            split_search_term("reg.example.com:5000/a/b"),
            ("reg.example.com:5000".into(), "a/b".into())
        );
    }
}
