//! Query strings and GitHub's page-number paging with its `Link` header.
//!
//! `per_page` defaults to 30 and is capped at 100; `page` starts at 1. The `Link` header
//! lists `prev`, `next`, `last`, `first` in that order, omits the ones that do not apply,
//! and is absent when everything fits on one page. Its URLs use GitHub's id-based paths
//! (`/repositories/{id}/...`, `/organizations/{id}/...`) and keep the caller's other
//! query parameters in their order, with `page` replaced or appended.

use crate::http;

pub const DEFAULT_PER_PAGE: usize = 30;
pub const MAX_PER_PAGE: usize = 100;

/// A request's query string, kept raw for rebuilding and decoded for lookups.
#[derive(Debug, Default)]
pub struct Query {
    /// The `key=value` pairs as sent, so `Link` URLs repeat them to the letter.
    pairs: Vec<(String, String)>,
    decoded: Vec<(String, String)>,
}

impl Query {
    pub fn parse(raw: Option<&str>) -> Self {
        let pairs = raw
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((k, v)) => (k.to_owned(), v.to_owned()),
                None => (p.to_owned(), String::new()),
            })
            .collect();
        let decoded = http::query_pairs(raw);
        Self { pairs, decoded }
    }

    /// The first value of `key`, decoded.
    pub fn get(&self, key: &str) -> Option<String> {
        http::query_value(&self.decoded, key).map(str::to_owned)
    }

    fn number(&self, key: &str) -> Option<usize> {
        self.get(key)
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|n| *n > 0)
    }

    /// The query with `page` set to `page`.
    fn with_page(&self, page: usize) -> String {
        let mut replaced = false;
        let mut parts: Vec<String> = self
            .pairs
            .iter()
            .map(|(k, v)| {
                if k == "page" {
                    replaced = true;
                    format!("page={page}")
                } else {
                    format!("{k}={v}")
                }
            })
            .collect();
        if !replaced {
            parts.push(format!("page={page}"));
        }
        parts.join("&")
    }
}

/// One page of `items` and its `Link` header value; `link_url` is the absolute URL of
/// the list without a query.
pub fn paginate<T>(items: Vec<T>, query: &Query, link_url: &str) -> (Vec<T>, Option<String>) {
    let per_page = query
        .number("per_page")
        .unwrap_or(DEFAULT_PER_PAGE)
        .min(MAX_PER_PAGE);
    let page = query.number("page").unwrap_or(1);
    let total = items.len();
    let last = total.div_ceil(per_page).max(1);
    let link = (total > per_page || page > 1).then(|| {
        let url = |p: usize| format!("<{link_url}?{}>", query.with_page(p));
        let mut rels = Vec::new();
        if page > 1 {
            rels.push(format!("{}; rel=\"prev\"", url(page - 1)));
        }
        if page < last {
            rels.push(format!("{}; rel=\"next\"", url(page + 1)));
            rels.push(format!("{}; rel=\"last\"", url(last)));
        }
        if page > 1 {
            rels.push(format!("{}; rel=\"first\"", url(1)));
        }
        rels.join(", ")
    });
    let skip = (page - 1).saturating_mul(per_page);
    let items = items.into_iter().skip(skip).take(per_page).collect();
    (items, link)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_header_has_githubs_shape_on_first_middle_and_last_pages() {
        let url = "http://h/repositories/7/collaborators";
        let q = Query::parse(Some("affiliation=direct&per_page=2"));
        let (items, link) = paginate((1..=5).collect(), &q, url);
        assert_eq!(items, vec![1, 2]);
        assert_eq!(
            link.as_deref(),
            Some(
                "<http://h/repositories/7/collaborators?affiliation=direct&per_page=2&page=2>; rel=\"next\", \
                 <http://h/repositories/7/collaborators?affiliation=direct&per_page=2&page=3>; rel=\"last\""
            )
        );
        let q = Query::parse(Some("page=2&per_page=2"));
        let (items, link) = paginate((1..=5).collect(), &q, url);
        assert_eq!(items, vec![3, 4]);
        assert_eq!(
            link.as_deref(),
            Some(
                "<http://h/repositories/7/collaborators?page=1&per_page=2>; rel=\"prev\", \
                 <http://h/repositories/7/collaborators?page=3&per_page=2>; rel=\"next\", \
                 <http://h/repositories/7/collaborators?page=3&per_page=2>; rel=\"last\", \
                 <http://h/repositories/7/collaborators?page=1&per_page=2>; rel=\"first\""
            )
        );
        let q = Query::parse(Some("per_page=2&page=3"));
        let (items, link) = paginate((1..=5).collect(), &q, url);
        assert_eq!(items, vec![5]);
        let link = link.unwrap_or_default();
        assert!(!link.contains("next") && link.contains("prev") && link.contains("first"));
    }

    #[test]
    fn one_page_has_no_link_and_per_page_is_defaulted_and_capped() {
        let (items, link) = paginate((0..30).collect::<Vec<_>>(), &Query::parse(None), "u");
        assert_eq!((items.len(), link), (30, None));
        let (items, _) = paginate((0..31).collect::<Vec<_>>(), &Query::parse(None), "u");
        assert_eq!(items.len(), 30);
        let q = Query::parse(Some("per_page=500"));
        let (items, _) = paginate((0..250).collect::<Vec<_>>(), &q, "u");
        assert_eq!(items.len(), 100);
        let q = Query::parse(Some("per_page=abc&page=0"));
        let (items, _) = paginate((0..40).collect::<Vec<_>>(), &q, "u");
        assert_eq!(items.len(), 30);
    }
}
