//! Request decoding every simulator shares: `application/x-www-form-urlencoded` query
//! strings and bodies, and percent-encoded path segments.
//!
//! Decoding is lossy (invalid UTF-8 becomes U+FFFD) and never fails: a simulator answers a
//! malformed request the way its API would, not with a decoding error. `+` means a space in
//! query strings and form bodies but not in paths.

use percent_encoding::percent_decode_str;

/// A query string's `key=value` pairs, decoded, in their order (repeated keys kept).
/// Empty pairs are skipped and a pair without `=` has an empty value.
pub(crate) fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    form_pairs(raw.unwrap_or_default().as_bytes())
}

/// The pairs of an `application/x-www-form-urlencoded` body, as [`query_pairs`] reads a
/// query string.
pub(crate) fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

/// The first value of `key` among `pairs`.
pub(crate) fn query_value<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// One path segment, percent-decoded (`+` stays a `+`).
pub(crate) fn path_segment(raw: &str) -> String {
    percent_decode_str(raw).decode_utf8_lossy().into_owned()
}

/// The decoded segments of a path after its leading `/`. Empty segments are kept
/// (`/a//b/` is `a`, ``, `b`, ``), so a stray slash matches no route.
pub(crate) fn path_segments(path: &str) -> Vec<String> {
    path.split('/').skip(1).map(path_segment).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn query_strings_decode_plus_and_percent_and_keep_order_and_repeats() {
        let q = query_pairs(Some("a=1+2&&b&c=%2B%20x=y&a=2&%E2%82%AC=%ff"));
        assert_eq!(
            q,
            pairs(&[
                ("a", "1 2"),
                ("b", ""),
                ("c", "+ x=y"),
                ("a", "2"),
                ("€", "\u{fffd}"),
            ])
        );
        assert_eq!(query_value(&q, "a"), Some("1 2"));
        assert_eq!(query_value(&q, "z"), None);
        assert!(query_pairs(None).is_empty());
        assert!(query_pairs(Some("")).is_empty());
    }

    #[test]
    fn path_segments_decode_percent_but_not_plus_and_keep_empty_ones() {
        assert_eq!(
            path_segments("/repos/a+b/c%20d//"),
            ["repos", "a+b", "c d", "", ""]
        );
        assert_eq!(path_segments("/"), [""]);
        assert_eq!(path_segment("%2F"), "/");
    }
}
