//! A tiny SOQL subset: `SELECT f1, f2 FROM Object WHERE a = 'x' [AND b = 'y' ...]`.
//! Keywords and field names are case-insensitive; literals are single-quoted with `\`
//! escapes. Anything else is `MALFORMED_QUERY`, as Salesforce answers a query it cannot
//! parse; unknown objects are `INVALID_TYPE` and unknown fields `INVALID_FIELD`.

/// A parsed query. Field names are as written; the caller resolves them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub fields: Vec<String>,
    pub object: String,
    /// `field = 'literal'` conditions, all of which must hold.
    pub conditions: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Literal(String),
    Comma,
    Equals,
}

fn tokens(text: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            ',' => {
                chars.next();
                out.push(Token::Comma);
            }
            '=' => {
                chars.next();
                out.push(Token::Equals);
            }
            '\'' => {
                chars.next();
                let mut literal = String::new();
                loop {
                    match chars.next() {
                        Some('\\') => match chars.next() {
                            Some('n') => literal.push('\n'),
                            Some('t') => literal.push('\t'),
                            Some(e @ ('\\' | '\'' | '"' | '_' | '%')) => literal.push(e),
                            _ => return Err("invalid escape sequence in string literal".into()),
                        },
                        Some('\'') => break,
                        Some(c) => literal.push(c),
                        None => return Err("unterminated string literal".into()),
                    }
                }
                out.push(Token::Literal(literal));
            }
            c if c.is_ascii_alphanumeric() || c == '_' || c == '.' => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
                        word.push(c);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push(Token::Word(word));
            }
            other => return Err(format!("unexpected token: '{other}'")),
        }
    }
    Ok(out)
}

fn keyword(token: Option<&Token>, word: &str) -> bool {
    matches!(token, Some(Token::Word(w)) if w.eq_ignore_ascii_case(word))
}

const KEYWORDS: [&str; 5] = ["select", "from", "where", "and", "or"];

fn name(token: Option<&Token>) -> Result<String, String> {
    match token {
        Some(Token::Word(w)) if !KEYWORDS.iter().any(|k| w.eq_ignore_ascii_case(k)) => {
            Ok(w.clone())
        }
        Some(other) => Err(format!("unexpected token: {other:?}")),
        None => Err("unexpected end of query".into()),
    }
}

/// Parses `text`, or explains (for a `MALFORMED_QUERY` message) why it cannot.
pub fn parse(text: &str) -> Result<Query, String> {
    let tokens = tokens(text)?;
    let mut at = tokens.iter();
    if !keyword(at.next(), "select") {
        return Err("unexpected token: expecting 'SELECT'".into());
    }
    let mut fields = vec![name(at.next())?];
    let mut next = at.next();
    while next == Some(&Token::Comma) {
        fields.push(name(at.next())?);
        next = at.next();
    }
    if !keyword(next, "from") {
        return Err("unexpected token: expecting 'FROM'".into());
    }
    let object = name(at.next())?;
    let mut conditions = Vec::new();
    let mut next = at.next();
    if keyword(next, "where") {
        loop {
            let field = name(at.next())?;
            if at.next() != Some(&Token::Equals) {
                return Err("only `field = 'value'` conditions are supported".into());
            }
            match at.next() {
                Some(Token::Literal(value)) => conditions.push((field, value.clone())),
                _ => return Err("expecting a quoted string literal".into()),
            }
            next = at.next();
            if !keyword(next, "and") {
                break;
            }
        }
    }
    match next {
        None => Ok(Query {
            fields,
            object,
            conditions,
        }),
        Some(token) => Err(format!("unexpected token: {token:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_subset() {
        let q = parse("select Id, AssigneeId from PermissionSetAssignment where PermissionSetId='0PS1' AND AssigneeId = '005\\'x'")
            .expect("parses");
        assert_eq!(q.fields, ["Id", "AssigneeId"]);
        assert_eq!(q.object, "PermissionSetAssignment");
        assert_eq!(
            q.conditions,
            [
                ("PermissionSetId".into(), "0PS1".into()),
                ("AssigneeId".into(), "005'x".into())
            ]
        );
        assert!(parse("SELECT Id FROM User").is_ok());
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            "",
            "SELECT FROM User",
            "SELECT Id FROM User WHERE Name = 'a' OR Name = 'b'",
            "SELECT Id FROM User WHERE Name = 'a",
            "SELECT Id FROM User WHERE Name != 'a'",
            "SELECT Id FROM User WHERE Name = 'a' OR Name != ''",
            "SELECT Id FROM User LIMIT 5",
            "DELETE FROM User",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
