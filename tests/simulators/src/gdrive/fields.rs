//! Google's partial-response `fields` selector: `a,b(c,d),e/f`, `*` for everything.
//! A response keeps only what the selector names; objects in arrays are filtered
//! element by element. Drive drops an unnamed `nextPageToken` too, which is why
//! connectors must ask for it.
//!
//! Simplified: unknown field names are not refused (Drive answers 400
//! `invalidParameter`); they select nothing.

use serde_json::{Map, Value};

/// A parsed selector: field name -> sub-selector (`None` = the whole value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector(Vec<(String, Option<Selector>)>);

impl Selector {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut chars: Vec<char> = text.chars().filter(|c| !c.is_whitespace()).collect();
        chars.reverse(); // pop from the front
        let selector = list(&mut chars)?;
        match chars.last() {
            None => Ok(selector),
            Some(c) => Err(format!("Invalid field selection {text}: unexpected {c:?}")),
        }
    }

    /// `value` reduced to the selected fields.
    pub fn apply(&self, value: &Value) -> Value {
        match value {
            Value::Array(items) => Value::Array(items.iter().map(|v| self.apply(v)).collect()),
            Value::Object(object) => {
                if self.0.iter().any(|(name, _)| name == "*") {
                    return value.clone();
                }
                let mut out = Map::new();
                for (name, sub) in &self.0 {
                    if let Some(v) = object.get(name) {
                        let v = sub.as_ref().map_or_else(|| v.clone(), |s| s.apply(v));
                        out.insert(name.clone(), v);
                    }
                }
                Value::Object(out)
            }
            other => other.clone(),
        }
    }
}

fn list(chars: &mut Vec<char>) -> Result<Selector, String> {
    let mut items = Vec::new();
    loop {
        items.push(item(chars)?);
        if chars.last() == Some(&',') {
            chars.pop();
        } else {
            return Ok(Selector(items));
        }
    }
}

fn item(chars: &mut Vec<char>) -> Result<(String, Option<Selector>), String> {
    let mut name = String::new();
    while let Some(&c) = chars.last() {
        if c.is_ascii_alphanumeric() || c == '_' || c == '*' {
            name.push(c);
            chars.pop();
        } else {
            break;
        }
    }
    if name.is_empty() {
        return Err("Invalid field selection: empty field name".into());
    }
    let sub = match chars.last() {
        Some('/') => {
            chars.pop();
            Some(Selector(vec![item(chars)?]))
        }
        Some('(') => {
            chars.pop();
            let sub = list(chars)?;
            if chars.pop() != Some(')') {
                return Err("Invalid field selection: missing `)`".into());
            }
            Some(sub)
        }
        _ => None,
    };
    Ok((name, sub))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selects_nested_fields() {
        let value = json!({
            "kind": "drive#permissionList",
            "nextPageToken": "t",
            "permissions": [{ "id": "1", "role": "reader", "kind": "drive#permission" }],
        });
        let s = Selector::parse("permissions(id,role)").expect("parses");
        assert_eq!(
            s.apply(&value),
            json!({ "permissions": [{ "id": "1", "role": "reader" }] })
        );
        let s = Selector::parse("nextPageToken, permissions/id").expect("parses");
        assert_eq!(
            s.apply(&value),
            json!({ "nextPageToken": "t", "permissions": [{ "id": "1" }] })
        );
        assert_eq!(Selector::parse("*").expect("parses").apply(&value), value);
        for bad in ["", "a(b", "a,,b", "a)b"] {
            assert!(Selector::parse(bad).is_err(), "{bad}");
        }
    }
}
