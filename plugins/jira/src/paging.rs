//! The `nextPage` links of `GET /project/search`, checked as soon as the page that carries
//! one is read, and the base-URL check that cursors share with them.
//!
//! A link is followed only if it lies under the app's base URL (same scheme, host and
//! port, a path under the base path, no `.`/`..` segments that would climb out of it) and
//! moves forward (it is not the page's own URL, and its `startAt` is past the page's). A
//! foreign link fails at once, naming the origin it points at: turned into a cursor it
//! would be refused only when the host brought it back a call later, and by then the
//! listing has nothing to show for the pages it read. A link that does not move forward
//! would list the same projects for ever.
//!
//! The host's egress allowlist already keeps requests on the app's origin; the path check
//! is ours alone, for a base URL with a path (a Jira behind a reverse proxy at `/jira`).
//! Must never: let a link outside the base URL or back to its own page become a cursor.

use portcullis_sdk::{Error, Result};

/// How much of a server-supplied URL an error shows.
const SHOWN: usize = 200;

/// The next page to read after the search page at `current` (whose body said it starts
/// at `current_start`), from its `nextPage` link under `base`.
pub fn next(link: &str, current: &str, current_start: Option<u64>, base: &str) -> Result<String> {
    if let Some(why) = outside(link, base) {
        return Err(Error::invalid_request(format!(
            "Jira's project search page {} names a nextPage link that is not under the base URL {base}: {why}; refusing to follow it. A Jira site links only to itself: check the base URL (and any proxy in front of Jira that rewrites links)",
            shown(current)
        )));
    }
    let next_start = start_at(link);
    let backwards = matches!((current_start, next_start), (Some(at), Some(to)) if to <= at);
    if link == current || backwards {
        let moves = match (current_start, next_start) {
            (Some(at), Some(to)) => format!(" (startAt {at}, then {to})"),
            _ => String::new(),
        };
        return Err(Error::transient(format!(
            "Jira's project search page {} names {} as its next page, which does not move past it{moves}; following it would list the same projects for ever, so the listing stops here. Retry later; if it persists, Jira is misbehaving",
            shown(current),
            if link == current {
                "itself".to_owned()
            } else {
                shown(link)
            },
        )));
    }
    Ok(link.to_owned())
}

/// Why `url` is not under `base` (an absolute URL without a trailing slash), or `None`
/// when it is.
pub fn outside(url: &str, base: &str) -> Option<String> {
    // Spaces and controls would split our cursors, and URL parsers drop tabs and
    // newlines, so `.<TAB>.` would become `..` after this check.
    if !url.chars().all(|c| c.is_ascii_graphic()) {
        return Some("it holds spaces, control or non-ASCII characters".to_owned());
    }
    let (Some(link), Some(base)) = (Parts::of(url), Parts::of(base)) else {
        return Some("it is not an absolute URL".to_owned());
    };
    if !link.scheme.eq_ignore_ascii_case(base.scheme)
        || !link.authority.eq_ignore_ascii_case(base.authority)
    {
        return Some(format!(
            "it points at {}",
            shown(&format!("{}://{}", link.scheme, link.authority))
        ));
    }
    let base_path = base.path.trim_end_matches('/');
    if !link.path.starts_with(&format!("{base_path}/")) {
        return Some(format!(
            "its path {} is outside the base path {base_path}/",
            shown(link.path)
        ));
    }
    // `%2e` is a dot to URL parsers, and `\` a slash in http(s) URLs.
    let climbs = link.path.split(['/', '\\']).any(|segment| {
        let segment = segment.to_ascii_lowercase().replace("%2e", ".");
        segment == "." || segment == ".."
    });
    if climbs {
        return Some(format!(
            "its path {} holds a `.` or `..` segment",
            shown(link.path)
        ));
    }
    None
}

/// `scheme://authority/path?query#fragment`, split without decoding.
struct Parts<'a> {
    scheme: &'a str,
    authority: &'a str,
    path: &'a str,
}

impl<'a> Parts<'a> {
    fn of(url: &'a str) -> Option<Self> {
        let (scheme, rest) = url.split_once("://")?;
        let end = rest.find(['/', '\\', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        let path = &tail[..tail.find(['?', '#']).unwrap_or(tail.len())];
        (!scheme.is_empty() && !authority.is_empty()).then_some(Self {
            scheme,
            authority,
            path,
        })
    }
}

/// The `startAt` query parameter of `url`, if it has one.
fn start_at(url: &str) -> Option<u64> {
    let query = url.split_once('?')?.1;
    let query = &query[..query.find('#').unwrap_or(query.len())];
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("startAt="))
        .and_then(|v| v.parse().ok())
}

/// `url`, cut to [`SHOWN`] characters.
fn shown(url: &str) -> String {
    let cut: String = url.chars().take(SHOWN).collect();
    if cut.len() < url.len() {
        format!("{cut}…")
    } else {
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "http://127.0.0.1:9";
    const SEARCH: &str = "/rest/api/3/project/search?maxResults=50";

    fn page(at: u64) -> String {
        format!("{BASE}{SEARCH}&startAt={at}")
    }

    #[test]
    fn links_under_the_base_url_are_followed() {
        assert_eq!(next(&page(50), &page(0), Some(0), BASE), Ok(page(50)));
        // The first page we ask for has no startAt; Jira's body says it starts at 0.
        let first = format!("{BASE}{SEARCH}&orderBy=key");
        assert_eq!(next(&page(50), &first, Some(0), BASE), Ok(page(50)));
        // Scheme and host compare without case; a base with a path keeps links under it.
        let upper = format!("HTTP://127.0.0.1:9{SEARCH}&startAt=50");
        assert!(next(&upper, &page(0), Some(0), BASE).is_ok());
        let proxied = "https://acme.example/jira";
        let link = format!("{proxied}{SEARCH}&startAt=50");
        assert!(next(&link, &format!("{proxied}{SEARCH}"), Some(0), proxied).is_ok());
    }

    #[test]
    fn a_foreign_link_is_refused_naming_its_origin() {
        for (link, named) in [
            (
                "https://evil.example/rest/api/3/project/search",
                "https://evil.example",
            ),
            (
                "https://127.0.0.1:9/rest/api/3/project/search",
                "https://127.0.0.1:9",
            ),
            (
                "http://127.0.0.1:10/rest/api/3/project/search",
                "http://127.0.0.1:10",
            ),
            ("http://127.0.0.1:9.evil/x", "http://127.0.0.1:9.evil"),
            (
                "http://127.0.0.1:9@evil.example/x",
                "http://127.0.0.1:9@evil.example",
            ),
        ] {
            match next(link, &page(0), Some(0), BASE) {
                Err(Error::InvalidRequest(m)) => {
                    assert!(m.contains(&format!("it points at {named}")), "{link}: {m}");
                    assert!(m.contains("not under the base URL"), "{m}");
                }
                other => panic!("{link}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_link_outside_the_base_path_is_refused() {
        let base = "https://acme.example/jira";
        for link in [
            "https://acme.example/rest/api/3/project/search",
            "https://acme.example/jiraX/rest/api/3/project/search",
            "https://acme.example/jira/../admin/search",
            "https://acme.example/jira/%2E%2e/admin",
            "https://acme.example/jira/.%2e\\admin",
            "https://acme.example/jira/./x",
            "https://acme.example/jira/.\t./admin",
            "https://acme.example/jira/a b",
            "/jira/rest/api/3/project/search",
        ] {
            assert!(
                outside(link, base).is_some(),
                "{link:?} is not under {base}"
            );
            assert!(
                matches!(
                    next(link, &format!("{base}{SEARCH}"), Some(0), base),
                    Err(Error::InvalidRequest(_))
                ),
                "{link:?}"
            );
        }
        assert_eq!(outside("https://acme.example/jira/x..y/", base), None);
        // A backslash ends the authority for URL parsers; what follows is no path of ours.
        assert!(outside("http://127.0.0.1:9\\@evil.example/x", BASE).is_some());
    }

    #[test]
    fn a_link_that_does_not_move_forward_is_a_loop() {
        let transient = |r: Result<String>| match r {
            Err(Error::Transient(m)) => m,
            other => panic!("expected transient, got {other:?}"),
        };
        // The page's own URL, whatever its body says.
        let m = transient(next(&page(50), &page(50), None, BASE));
        assert!(
            m.contains("as its next page") && m.contains("itself"),
            "{m}"
        );
        // The same page with its parameters in another order, and a step back.
        let reordered = format!("{BASE}/rest/api/3/project/search?startAt=50&maxResults=50");
        let m = transient(next(&reordered, &page(50), Some(50), BASE));
        assert!(m.contains("startAt 50, then 50"), "{m}");
        let m = transient(next(&page(0), &page(50), Some(50), BASE));
        assert!(m.contains("startAt 50, then 0"), "{m}");
        // Without a startAt to compare, only the URL itself counts.
        let other = format!("{BASE}/rest/api/3/project/search?page=2");
        assert_eq!(next(&other, &page(0), Some(0), BASE), Ok(other));
    }

    #[test]
    fn start_at_and_shown() {
        assert_eq!(start_at(&page(150)), Some(150));
        assert_eq!(start_at("http://x/a?startAt=7#startAt=9"), Some(7));
        assert_eq!(start_at("http://x/a?startAt=x"), None);
        assert_eq!(start_at("http://x/a"), None);
        let long = format!("https://{}", "e".repeat(500));
        assert_eq!(shown(&long).chars().count(), SHOWN + 1);
        assert_eq!(shown("short"), "short");
    }
}
