//! CEL for `when`: compiling with errors placed in the policy file, the `person` value, and
//! evaluation with errors that say which attribute is missing.
//!
//! The CEL parser reports positions as (line, column) within the expression, both from 1,
//! columns in characters. The expression is the *decoded* TOML string, so mapping back to
//! the file means walking the raw literal (delimiters, escapes, line-ending backslashes,
//! CRLF) to know which file byte each decoded character came from.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use cel::common::ast::{EntryExpr, Expr, IdedExpr, LiteralValue, operators};
use cel::objects::{Key, Map};
use cel::{Context, Env, ExecutionError, Program, Value};

use crate::people::Person;

/// A `when` that failed to compile, placed in the policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SyntaxError {
    pub line: usize,
    pub column: usize,
    pub message: String,
    /// The file line the error is on, for a caret under the column.
    pub snippet: String,
}

/// Compiles `when`, whose TOML literal (delimiters included) is `text[span]`.
pub(super) fn compile(
    env: &Env,
    when: &str,
    text: &str,
    span: std::ops::Range<usize>,
) -> Result<Program, Vec<SyntaxError>> {
    let errors = match env.compile(when) {
        Ok(program) => return Ok(program),
        Err(errors) => errors,
    };
    let raw = text.get(span.clone()).unwrap_or_default();
    // If decoding disagrees with toml's, point at the start of the literal rather than
    // somewhere wrong.
    let offsets = decode_literal(raw).filter(|(decoded, _)| decoded == when);
    let mut out = Vec::new();
    for e in errors.errors {
        let within = match (&offsets, e.pos) {
            (Some((decoded, offsets)), (line, column)) if line > 0 && column > 0 => {
                let index = char_index(decoded, line as usize, column as usize);
                offsets.get(index).copied().unwrap_or(raw.len())
            }
            _ => 0,
        };
        let (line, column) = line_col(text, span.start + within);
        out.push(SyntaxError {
            line,
            column,
            message: e.msg,
            snippet: text.lines().nth(line - 1).unwrap_or_default().to_owned(),
        });
    }
    Err(out)
}

/// Index (in characters) of (line, column) in `source`, both from 1. A column past the end
/// of its line (the parser's "at end of input") gives the line's end.
fn char_index(source: &str, line: usize, column: usize) -> usize {
    let mut index = 0;
    let mut current = 1;
    let mut chars = source.chars().peekable();
    while current < line {
        match chars.next() {
            Some('\n') => {
                current += 1;
                index += 1;
            }
            Some(_) => index += 1,
            None => return index,
        }
    }
    let mut col = 1;
    while col < column {
        match chars.next() {
            Some('\n') | None => return index,
            Some(_) => {
                index += 1;
                col += 1;
            }
        }
    }
    index
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub(super) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

/// Decodes a TOML string literal (with its delimiters) into its value and, for each
/// character of the value, the byte offset in `raw` it came from, plus one entry for the
/// end (the closing delimiter). `None` when `raw` is not a string literal this understands.
fn decode_literal(raw: &str) -> Option<(String, Vec<usize>)> {
    let (delimiter, basic) = if raw.starts_with("\"\"\"") {
        ("\"\"\"", true)
    } else if raw.starts_with("'''") {
        ("'''", false)
    } else if raw.starts_with('"') {
        ("\"", true)
    } else if raw.starts_with('\'') {
        ("'", false)
    } else {
        return None;
    };
    let multiline = delimiter.len() == 3;
    let start = delimiter.len();
    let end = raw.len().checked_sub(delimiter.len())?;
    if end < start || !raw.ends_with(delimiter) {
        return None;
    }
    let body = &raw[start..end];
    let mut decoded = String::new();
    let mut offsets = Vec::new();
    let mut chars = body.char_indices().peekable();
    // A newline right after the opening delimiter is not part of the value.
    if multiline {
        if body.starts_with("\r\n") {
            chars.next();
            chars.next();
        } else if body.starts_with('\n') {
            chars.next();
        }
    }
    while let Some((i, c)) = chars.next() {
        let at = start + i;
        match c {
            '\r' if multiline && matches!(chars.peek(), Some((_, '\n'))) => {
                // CRLF in a multi-line string is a newline.
                chars.next();
                decoded.push('\n');
                offsets.push(at);
            }
            '\\' if basic => {
                let (_, escape) = chars.next()?;
                let simple = match escape {
                    'b' => Some('\u{8}'),
                    't' => Some('\t'),
                    'n' => Some('\n'),
                    'f' => Some('\u{c}'),
                    'r' => Some('\r'),
                    'e' => Some('\u{1b}'),
                    '"' => Some('"'),
                    '\\' => Some('\\'),
                    _ => None,
                };
                if let Some(ch) = simple {
                    decoded.push(ch);
                    offsets.push(at);
                    continue;
                }
                let digits = match escape {
                    'x' => 2,
                    'u' => 4,
                    'U' => 8,
                    ' ' | '\t' | '\r' | '\n' if multiline => {
                        // Line-ending backslash: trims all whitespace up to the next
                        // non-whitespace character.
                        while matches!(chars.peek(), Some((_, ' ' | '\t' | '\r' | '\n'))) {
                            chars.next();
                        }
                        continue;
                    }
                    _ => return None,
                };
                let mut hex = String::new();
                for _ in 0..digits {
                    hex.push(chars.next()?.1);
                }
                let ch = char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?;
                decoded.push(ch);
                offsets.push(at);
            }
            _ => {
                decoded.push(c);
                offsets.push(at);
            }
        }
    }
    offsets.push(end);
    Some((decoded, offsets))
}

/// The top-level attributes `program` reads: `person.x` and `person["x"]`. A missing key
/// among these is a missing attribute; any other is missing inside a nested value.
pub(super) fn person_attributes(program: &Program) -> BTreeSet<String> {
    fn is_person(expr: &IdedExpr) -> bool {
        matches!(&expr.expr, Expr::Ident(name) if name == "person")
    }
    fn walk(expr: &IdedExpr, out: &mut BTreeSet<String>) {
        match &expr.expr {
            Expr::Select(select) => {
                if is_person(&select.operand) {
                    out.insert(select.field.clone());
                }
                walk(&select.operand, out);
            }
            Expr::Call(call) => {
                if call.func_name == operators::INDEX
                    && let [operand, key] = call.args.as_slice()
                    && is_person(operand)
                    && let Expr::Literal(LiteralValue::String(key)) = &key.expr
                {
                    out.insert(key.inner().to_owned());
                }
                if let Some(target) = &call.target {
                    walk(target, out);
                }
                call.args.iter().for_each(|arg| walk(arg, out));
            }
            Expr::Comprehension(c) => {
                for part in [
                    &c.iter_range,
                    &c.accu_init,
                    &c.loop_cond,
                    &c.loop_step,
                    &c.result,
                ] {
                    walk(part, out);
                }
            }
            Expr::List(list) => list.elements.iter().for_each(|e| walk(e, out)),
            Expr::Map(map) => map.entries.iter().for_each(|e| walk_entry(&e.expr, out)),
            Expr::Struct(st) => st.entries.iter().for_each(|e| walk_entry(&e.expr, out)),
            Expr::Unspecified | Expr::Ident(_) | Expr::Literal(_) => {}
        }
    }
    fn walk_entry(entry: &EntryExpr, out: &mut BTreeSet<String>) {
        match entry {
            EntryExpr::StructField(field) => walk(&field.value, out),
            EntryExpr::MapEntry(entry) => {
                walk(&entry.key, out);
                walk(&entry.value, out);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(program.expression(), &mut out);
    out
}

/// A JSON attribute as a CEL value: integers stay integers so `person.level >= 3` works.
fn json_to_cel(value: &serde_json::Value) -> Value {
    match value {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Int(i)
            } else if let Some(u) = n.as_u64() {
                Value::UInt(u)
            } else {
                Value::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        serde_json::Value::String(s) => Value::String(Arc::new(s.clone())),
        serde_json::Value::Array(items) => {
            Value::List(Arc::new(items.iter().map(json_to_cel).collect()))
        }
        serde_json::Value::Object(fields) => Value::Map(Map {
            map: Arc::new(
                fields
                    .iter()
                    .map(|(k, v)| (Key::String(Arc::new(k.clone())), json_to_cel(v)))
                    .collect(),
            ),
        }),
    }
}

/// The `person` map: every attribute, plus `id` and `name` (absent without a name).
fn person_value(person: &Person) -> Value {
    let mut map: HashMap<Key, Value> = HashMap::with_capacity(person.attributes.len() + 2);
    for (key, value) in &person.attributes {
        map.insert(Key::String(Arc::new(key.clone())), json_to_cel(value));
    }
    map.insert(
        Key::String(Arc::new("id".to_owned())),
        Value::String(Arc::new(person.id.clone())),
    );
    if let Some(name) = &person.name {
        map.insert(
            Key::String(Arc::new("name".to_owned())),
            Value::String(Arc::new(name.clone())),
        );
    }
    Value::Map(Map { map: Arc::new(map) })
}

/// One person, ready to have every rule evaluated against them: the `person` value is
/// built once and shared by all rules.
pub(super) struct Evaluator {
    context: Context<'static, 'static>,
}

/// Why a `when` did not give a bool.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum EvalFailure {
    /// The person has no such key (`person.team`), or a nested map lacks it.
    NoSuchKey(String),
    NotBool(String),
    Other(String),
}

impl Evaluator {
    pub fn new(env: Arc<Env>, person: &Person) -> Evaluator {
        let mut context = Context::with_env(env);
        context.add_variable_from_value("person", person_value(person));
        Evaluator { context }
    }

    pub fn matches(&self, program: &Program) -> Result<bool, EvalFailure> {
        match program.execute(&self.context) {
            Ok(Value::Bool(b)) => Ok(b),
            Ok(other) => Err(EvalFailure::NotBool(other.type_of().to_string())),
            Err(ExecutionError::NoSuchKey(key)) => Err(EvalFailure::NoSuchKey(key.to_string())),
            Err(ExecutionError::UndeclaredReference(name)) => Err(EvalFailure::Other(format!(
                "undeclared reference to `{name}` (the only variable is `person`)"
            ))),
            Err(e) => Err(EvalFailure::Other(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_every_literal_kind_with_offsets() {
        let (value, offsets) = decode_literal("'a b'").expect("literal");
        assert_eq!(value, "a b");
        assert_eq!(offsets, [1, 2, 3, 4]);

        let (value, offsets) = decode_literal(r#""a\n\u00e9b""#).expect("basic");
        assert_eq!(value, "a\néb");
        assert_eq!(offsets, [1, 2, 4, 10, 11]);

        let (value, offsets) = decode_literal("'''\nab\r\nc'''").expect("multi-line literal");
        assert_eq!(value, "ab\nc");
        assert_eq!(offsets, [4, 5, 6, 8, 9]);

        let (value, offsets) = decode_literal("\"\"\"\\\n   a \\\n  b\"\"\"").expect("ml basic");
        assert_eq!(value, "a b");
        assert_eq!(offsets, [8, 9, 14, 15]);

        assert!(decode_literal("42").is_none());
        assert!(decode_literal(r#""\q""#).is_none());
    }

    #[test]
    fn finds_the_top_level_attributes_a_program_reads() {
        let env = Env::stdlib();
        let program = env
            .compile(
                "has(person.team) && person['level'] > 1 && person.manager.email == 'x' \
                 && person.groups.exists(g, g == person.dept) && [person.a].size() == 1",
            )
            .expect("compiles");
        let found: Vec<_> = person_attributes(&program).into_iter().collect();
        assert_eq!(found, ["a", "dept", "groups", "level", "manager", "team"]);
    }

    #[test]
    fn char_index_clamps_to_line_end() {
        let source = "ab\ncd";
        assert_eq!(char_index(source, 1, 1), 0);
        assert_eq!(char_index(source, 2, 2), 4);
        assert_eq!(char_index(source, 1, 9), 2);
        assert_eq!(char_index(source, 2, 9), 5);
    }

    #[test]
    fn line_col_counts_characters() {
        let text = "é\nxé y";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 3), (2, 1));
        assert_eq!(line_col(text, 6), (2, 3));
    }
}
