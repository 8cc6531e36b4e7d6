//! Following Drive's page tokens without letting a misbehaving server make a call page
//! forever.
//!
//! Page tokens are opaque, so the only sign of a loop is a token coming back: inside one
//! call, a token this walk has already followed (Drive is sending us to a page we have
//! read); across calls, where the host carries the cursor, a `nextPageToken` equal to the
//! cursor the host passed in. Following either repeats pages until the host's per-call
//! limit ends the call, or for ever across calls. The answer is an error that names the
//! token: a listing that quietly stopped early would look complete, which is worse.
//! A walk is also capped at [`MAX_PAGES`], for a server that keeps minting fresh tokens.
//!
//! Both are `transient`: the request was fine and the server answered nonsense, as with
//! a malformed permission id; a later try may get a sane answer, and each try is bounded.
//! Must never: follow a token the walk has already followed.

use std::collections::HashSet;

use portcullis_sdk::{Error, Result};

use crate::api::FileId;

/// The most pages one in-call walk reads. Pages hold 100 permissions and Drive shares
/// one item with a few hundred accounts at most, so 50 pages is far beyond any real
/// list, and at a handful of host calls per page it ends well below the host's per-call
/// cap (1,000 by default), with an error that says why.
pub const MAX_PAGES: usize = 50;

/// How much of a token an error shows: enough to tell tokens apart in a log, not a
/// kilobyte of opaque text.
const SHOWN: usize = 32;

/// The tokens one in-call walk over a file's permissions has followed.
#[derive(Debug)]
pub struct Walk<'a> {
    file: &'a FileId,
    followed: HashSet<String>,
    pages: usize,
}

impl<'a> Walk<'a> {
    pub fn new(file: &'a FileId) -> Self {
        Self {
            file,
            followed: HashSet::new(),
            pages: 0,
        }
    }

    /// After reading a page that answered `next`: the token to follow, `None` when the
    /// list has ended, or an error when `next` was already followed or the walk has read
    /// [`MAX_PAGES`] pages.
    pub fn follow(&mut self, next: Option<String>) -> Result<Option<String>> {
        self.pages += 1;
        let Some(token) = next else {
            return Ok(None);
        };
        if self.followed.contains(&token) {
            return Err(Error::transient(format!(
                "Drive returned the same page token again ({}) while listing the permissions of file {}, after {} pages; following it would read the same pages for ever, so the call stops here. Retry later; if it persists, Drive is misbehaving for this file",
                shown(&token),
                self.file.as_str(),
                self.pages,
            )));
        }
        if self.pages >= MAX_PAGES {
            return Err(Error::transient(format!(
                "Drive's permission list of file {} did not end after {MAX_PAGES} pages of 100 (the next page token is {}); no real file has that many shares, so the call stops rather than page on. Retry later; if it persists, Drive is misbehaving for this file",
                self.file.as_str(),
                shown(&token),
            )));
        }
        self.followed.insert(token.clone());
        Ok(Some(token))
    }
}

/// For the one page the host asked for with `cursor`: `next` as the cursor to hand
/// back, or an error when it is `cursor` itself (handing it back would have the host
/// ask for this same page again, for ever).
pub fn next_cursor(
    file: &FileId,
    cursor: Option<&str>,
    next: Option<String>,
) -> Result<Option<String>> {
    match next {
        Some(token) if cursor == Some(token.as_str()) => Err(Error::transient(format!(
            "Drive returned the same page token again ({}) for the permissions of file {}: the page asked for with that token names itself as the next page, so the listing would never end. Restart the listing later; if it persists, Drive is misbehaving for this file",
            shown(&token),
            file.as_str(),
        ))),
        other => Ok(other),
    }
}

/// `token` quoted, cut to [`SHOWN`] characters.
fn shown(token: &str) -> String {
    let cut: String = token.chars().take(SHOWN).collect();
    if cut.len() < token.len() {
        format!("{cut:?}…")
    } else {
        format!("{cut:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> FileId {
        FileId::parse("1File").expect("a valid id")
    }

    fn transient(result: Result<Option<String>>) -> String {
        match result {
            Err(Error::Transient(m)) => m,
            other => panic!("expected a transient error, got {other:?}"),
        }
    }

    #[test]
    fn a_walk_follows_fresh_tokens_and_ends_with_the_list() {
        let file = file();
        let mut walk = Walk::new(&file);
        assert_eq!(walk.follow(Some("a".into())), Ok(Some("a".into())));
        assert_eq!(walk.follow(Some("b".into())), Ok(Some("b".into())));
        assert_eq!(walk.follow(None), Ok(None));
    }

    #[test]
    fn a_token_already_followed_ends_the_walk_naming_it() {
        let file = file();
        let mut walk = Walk::new(&file);
        assert!(walk.follow(Some("tok-a".into())).is_ok());
        // The page right after repeats its own token...
        let m = transient(walk.follow(Some("tok-a".into())));
        assert!(m.contains("same page token again"), "{m}");
        assert!(m.contains("\"tok-a\"") && m.contains("1File"), "{m}");
        // ...and a longer cycle (a -> b -> a) is caught the same way.
        let mut walk = Walk::new(&file);
        assert!(walk.follow(Some("tok-a".into())).is_ok());
        assert!(walk.follow(Some("tok-b".into())).is_ok());
        let m = transient(walk.follow(Some("tok-a".into())));
        assert!(m.contains("\"tok-a\""), "{m}");
    }

    #[test]
    fn a_walk_stops_at_the_page_cap() {
        let file = file();
        let mut walk = Walk::new(&file);
        for n in 1..MAX_PAGES {
            assert!(walk.follow(Some(format!("t{n}"))).is_ok(), "page {n}");
        }
        let m = transient(walk.follow(Some("one-more".into())));
        assert!(m.contains(&format!("{MAX_PAGES} pages")), "{m}");
        assert!(m.contains("\"one-more\""), "{m}");
        // The last page of a list that long still ends it normally.
        let mut walk = Walk::new(&file);
        for n in 1..MAX_PAGES {
            assert!(walk.follow(Some(format!("t{n}"))).is_ok());
        }
        assert_eq!(walk.follow(None), Ok(None));
    }

    #[test]
    fn the_host_cursor_must_not_come_back_as_the_next() {
        let file = file();
        assert_eq!(
            next_cursor(&file, None, Some("a".into())),
            Ok(Some("a".into()))
        );
        assert_eq!(
            next_cursor(&file, Some("a"), Some("b".into())),
            Ok(Some("b".into()))
        );
        assert_eq!(next_cursor(&file, Some("a"), None), Ok(None));
        let m = transient(next_cursor(&file, Some("a"), Some("a".into())));
        assert!(
            m.contains("same page token again") && m.contains("\"a\""),
            "{m}"
        );
    }

    #[test]
    fn long_tokens_are_cut_in_errors() {
        let long = "x".repeat(1000);
        let file = file();
        let m = transient(next_cursor(&file, Some(&long), Some(long.clone())));
        assert!(m.contains(&format!("{:?}…", "x".repeat(SHOWN))), "{m}");
        assert!(!m.contains(&"x".repeat(SHOWN + 1)), "{m}");
        assert_eq!(shown("short"), "\"short\"");
    }
}
