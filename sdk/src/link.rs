//! RFC 8288 `Link` header parsing, for APIs that page with `rel="next"` (GitHub, Okta).
//!
//! Must never: split on every comma; a URI reference or a quoted parameter may contain
//! one.

use crate::http::Response;

/// One link-value: its target and the relation types of its `rel` parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub target: String,
    pub rels: Vec<String>,
}

/// The `rel="next"` target of the response's `Link` header(s), if any.
pub fn next_link(response: &Response) -> Option<String> {
    response
        .header_all("link")
        .find_map(|value| find_rel(value, "next"))
}

/// The target of the first link whose `rel` includes `rel` (case-insensitive).
pub fn find_rel(header: &str, rel: &str) -> Option<String> {
    parse(header)
        .into_iter()
        .find(|l| l.rels.iter().any(|r| r.eq_ignore_ascii_case(rel)))
        .map(|l| l.target)
}

/// Parses a `Link` header value into its link-values; malformed parts are skipped.
pub fn parse(header: &str) -> Vec<Link> {
    let mut links = Vec::new();
    let mut rest = header;
    loop {
        rest = rest.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
        let Some(after_lt) = rest.strip_prefix('<') else {
            break;
        };
        let Some(end) = after_lt.find('>') else {
            break;
        };
        let target = after_lt[..end].trim().to_owned();
        rest = &after_lt[end + 1..];
        let mut rels = Vec::new();
        // Parameters: `; name=value` or `; name="quoted, value"` up to the next
        // top-level comma.
        loop {
            rest = rest.trim_start();
            let Some(param) = rest.strip_prefix(';') else {
                break;
            };
            let param = param.trim_start();
            let name_end = param.find(['=', ';', ',']).unwrap_or(param.len());
            let name = param[..name_end].trim();
            rest = &param[name_end..];
            let mut value = String::new();
            if let Some(v) = rest.strip_prefix('=') {
                let v = v.trim_start();
                if let Some(quoted) = v.strip_prefix('"') {
                    let close = quoted.find('"').unwrap_or(quoted.len());
                    value = quoted[..close].to_owned();
                    rest = quoted.get(close + 1..).unwrap_or("");
                } else {
                    let end = v.find([';', ',']).unwrap_or(v.len());
                    value = v[..end].trim().to_owned();
                    rest = &v[end..];
                }
            }
            if name.eq_ignore_ascii_case("rel") && rels.is_empty() {
                rels = value.split_whitespace().map(str::to_owned).collect();
            }
        }
        links.push(Link { target, rels });
    }
    links
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_style_header() {
        let h = r#"<https://api.github.com/repositories/1/collaborators?per_page=100&page=2>; rel="next", <https://api.github.com/repositories/1/collaborators?per_page=100&page=5>; rel="last""#;
        assert_eq!(
            find_rel(h, "next").as_deref(),
            Some("https://api.github.com/repositories/1/collaborators?per_page=100&page=2")
        );
        assert_eq!(parse(h).len(), 2);
    }

    #[test]
    fn last_page_has_no_next() {
        let h = r#"<https://x/a?page=1>; rel="prev", <https://x/a?page=1>; rel="first""#;
        assert_eq!(find_rel(h, "next"), None);
    }

    #[test]
    fn multiple_rels_unquoted_and_commas_in_params() {
        let h =
            r#"<https://x/a,b?page=3>; title="a, b; c"; rel="last next", <https://x/p>; rel=prev"#;
        let links = parse(h);
        assert_eq!(links[0].target, "https://x/a,b?page=3");
        assert_eq!(links[0].rels, vec!["last", "next"]);
        assert_eq!(links[1].rels, vec!["prev"]);
        assert_eq!(find_rel(h, "NEXT").as_deref(), Some("https://x/a,b?page=3"));
    }

    #[test]
    fn garbage_yields_nothing() {
        assert!(parse("").is_empty());
        assert!(parse("not a link").is_empty());
        assert_eq!(find_rel("<https://x/unterminated; rel=next", "next"), None);
    }
}
