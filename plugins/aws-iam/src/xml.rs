//! Reading IAM's XML answers: element texts by local name (IAM puts everything in the
//! `https://iam.amazonaws.com/doc/2010-05-08/` namespace), paging markers and the error
//! envelope.
//!
//! Must never: panic on a body, or quote more than a short prefix of one in an error.

use portcullis_sdk::{Error, Result};
use roxmltree::{Document, Node};

/// A parsed IAM response body.
pub struct Xml<'a> {
    doc: Document<'a>,
}

/// One `<member>` (or any element) of a parsed response.
#[derive(Clone, Copy)]
pub struct Element<'a, 'input> {
    node: Node<'a, 'input>,
}

impl<'a> Xml<'a> {
    pub fn parse(text: &'a str) -> Result<Self> {
        Document::parse(text).map(|doc| Xml { doc }).map_err(|e| {
            Error::transient(format!(
                "IAM sent a body that is not XML ({e}): {}",
                prefix(text)
            ))
        })
    }

    pub fn root(&self) -> Element<'_, 'a> {
        Element {
            node: self.doc.root_element(),
        }
    }
}

impl<'a, 'input> Element<'a, 'input> {
    /// The first descendant element named `name` (local name).
    pub fn find(self, name: &str) -> Option<Element<'a, 'input>> {
        self.node
            .descendants()
            .find(|n| n.is_element() && n.tag_name().name() == name)
            .map(|node| Element { node })
    }

    /// This element's own text (`<member>alias</member>`).
    pub fn node_text(self) -> Option<&'a str> {
        self.node.text().map(str::trim)
    }

    /// The text of the first descendant element named `name`.
    pub fn text(self, name: &str) -> Option<&'a str> {
        self.find(name).and_then(|e| e.node.text()).map(str::trim)
    }

    /// The `<member>` children of the first descendant named `list`.
    pub fn members(self, list: &str) -> Vec<Element<'a, 'input>> {
        self.find(list)
            .map(|l| {
                l.node
                    .children()
                    .filter(|n| n.is_element() && n.tag_name().name() == "member")
                    .map(|node| Element { node })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The marker of the next page: set only when `IsTruncated` is `true`.
    pub fn next_marker(self) -> Option<String> {
        let truncated = self.text("IsTruncated") == Some("true");
        self.text("Marker")
            .filter(|m| truncated && !m.is_empty())
            .map(str::to_owned)
    }
}

/// The `Code` and `Message` of an IAM error body. AWS sends
/// `<ErrorResponse><Error><Code>`; some emulators add an `<Errors>` level, so the first
/// `Error` element with a `Code` is taken.
pub fn error(text: &str) -> Option<(String, String)> {
    let doc = Document::parse(text).ok()?;
    let error = doc
        .descendants()
        .find(|n| n.is_element() && n.tag_name().name() == "Error")?;
    let child = |name: &str| {
        error
            .children()
            .find(|n| n.is_element() && n.tag_name().name() == name)
            .and_then(|n| n.text())
            .map(|t| t.trim().to_owned())
    };
    Some((child("Code")?, child("Message").unwrap_or_default()))
}

/// The first characters of a body, for error messages.
pub fn prefix(text: &str) -> String {
    const CHARS: usize = 200;
    let mut out: String = text.chars().take(CHARS).collect();
    if text.chars().nth(CHARS).is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = r#"<ListAttachedUserPoliciesResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">
  <ListAttachedUserPoliciesResult>
    <AttachedPolicies>
      <member><PolicyName>ReadOnlyAccess</PolicyName><PolicyArn>arn:aws:iam::aws:policy/ReadOnlyAccess</PolicyArn></member>
      <member><PolicyName>PowerUserAccess</PolicyName><PolicyArn>arn:aws:iam::aws:policy/PowerUserAccess</PolicyArn></member>
    </AttachedPolicies>
    <IsTruncated>true</IsTruncated>
    <Marker>m-2</Marker>
  </ListAttachedUserPoliciesResult>
  <ResponseMetadata><RequestId>r-1</RequestId></ResponseMetadata>
</ListAttachedUserPoliciesResponse>"#;

    #[test]
    fn members_and_markers_are_read_by_local_name() {
        let xml = Xml::parse(LIST).expect("parses");
        let arns: Vec<_> = xml
            .root()
            .members("AttachedPolicies")
            .into_iter()
            .filter_map(|m| m.text("PolicyArn"))
            .collect();
        assert_eq!(
            arns,
            [
                "arn:aws:iam::aws:policy/ReadOnlyAccess",
                "arn:aws:iam::aws:policy/PowerUserAccess"
            ]
        );
        assert_eq!(xml.root().next_marker().as_deref(), Some("m-2"));
        let last = LIST.replace("<IsTruncated>true", "<IsTruncated>false");
        assert_eq!(
            Xml::parse(&last).expect("parses").root().next_marker(),
            None
        );
    }

    #[test]
    fn error_envelopes_with_and_without_an_errors_level() {
        let aws = r#"<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>Sender</Type><Code>NoSuchEntity</Code><Message>The user with name bob cannot be found.</Message></Error><RequestId>r</RequestId></ErrorResponse>"#;
        assert_eq!(
            error(aws),
            Some((
                "NoSuchEntity".into(),
                "The user with name bob cannot be found.".into()
            ))
        );
        let moto = "<ErrorResponse><Errors><Error><Code>Throttling</Code><Message>Rate exceeded</Message></Error></Errors></ErrorResponse>";
        assert_eq!(
            error(moto),
            Some(("Throttling".into(), "Rate exceeded".into()))
        );
        assert_eq!(error("not xml"), None);
        assert!(Xml::parse("<unclosed>").is_err());
    }
}
