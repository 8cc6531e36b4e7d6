//! Okta object ids (`00u…` users, `00g…` groups) as they go into URL paths.
//! Must never: let anything but letters and digits into a path segment.

use portcullis_sdk::{Error, Result};

/// `id` if it looks like an Okta id; `what` names it in the error ("user", "group").
pub fn id<'a>(id: &'a str, what: &str) -> Result<&'a str> {
    if !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(id)
    } else {
        Err(Error::invalid_request(format!(
            "{id:?} is not an Okta {what} id (letters and digits, like `00u1ero7vZFVEIYLWPBN`); use the id, not a login or name"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(id("00u1ero7vZFVEIYLWPBN", "user").is_ok());
        for bad in ["", "a@b.com", "../x", "00g 1", "00g%2F", &"a".repeat(65)] {
            assert!(
                matches!(id(bad, "group"), Err(Error::InvalidRequest(m)) if m.contains("group")),
                "{bad}"
            );
        }
    }
}
