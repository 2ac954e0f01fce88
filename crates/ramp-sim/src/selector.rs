//! Label and field selectors, as the apiserver reads them from `?labelSelector=`
//! and `?fieldSelector=` and as `LabelSelector` objects (`matchLabels`,
//! `matchExpressions`) appear in specs.

use std::fmt;

use serde_json::Value;

/// A selector that could not be parsed; the text names the selector and the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// A `labelSelector` query string or `LabelSelector` object is invalid.
    #[error("invalid label selector {selector:?}: {reason}")]
    Label {
        /// The selector as given (the query string, or the object as JSON).
        selector: String,
        /// What is wrong.
        reason: String,
    },
    /// A `fieldSelector` query string is invalid.
    #[error("invalid field selector {selector:?}: {reason}")]
    Field {
        /// The selector as given.
        selector: String,
        /// What is wrong.
        reason: String,
    },
}

/// The operator of one label requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operator {
    /// `key=value`, `key==value`.
    Equals,
    /// `key!=value`: the label is absent or has another value.
    NotEquals,
    /// `key in (a,b)`, `matchExpressions` `In`.
    In,
    /// `key notin (a,b)`, `matchExpressions` `NotIn`: absent or another value.
    NotIn,
    /// `key`, `matchExpressions` `Exists`.
    Exists,
    /// `!key`, `matchExpressions` `DoesNotExist`.
    DoesNotExist,
    /// `key>5`: the label is an integer greater than the value.
    GreaterThan,
    /// `key<5`: the label is an integer less than the value.
    LessThan,
}

/// One requirement of a [`LabelSelector`]; all requirements must hold.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Requirement {
    /// The label key.
    pub key: String,
    /// How the label is compared.
    pub operator: Operator,
    /// The values (one for `=`, `!=`, `>`, `<`; a set for `in`/`notin`; none otherwise).
    pub values: Vec<String>,
}

impl Requirement {
    /// Whether the labels (an object of strings; anything else counts as no
    /// labels) satisfy this requirement.
    pub fn matches(&self, labels: &Value) -> bool {
        let value = labels.get(&self.key).and_then(Value::as_str);
        let in_values = |v: &str| self.values.iter().any(|x| x == v);
        let compare = |v: Option<&str>, ord: std::cmp::Ordering| {
            let (Some(v), Some(bound)) = (v, self.values.first()) else {
                return false;
            };
            match (v.parse::<i64>(), bound.parse::<i64>()) {
                (Ok(a), Ok(b)) => a.cmp(&b) == ord,
                _ => false,
            }
        };
        match self.operator {
            Operator::Equals | Operator::In => value.is_some_and(in_values),
            Operator::NotEquals | Operator::NotIn => !value.is_some_and(in_values),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::GreaterThan => compare(value, std::cmp::Ordering::Greater),
            Operator::LessThan => compare(value, std::cmp::Ordering::Less),
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let first = self.values.first().map(String::as_str).unwrap_or("");
        match self.operator {
            Operator::Equals => write!(f, "{}={first}", self.key),
            Operator::NotEquals => write!(f, "{}!={first}", self.key),
            Operator::In => write!(f, "{} in ({})", self.key, self.values.join(",")),
            Operator::NotIn => write!(f, "{} notin ({})", self.key, self.values.join(",")),
            Operator::Exists => write!(f, "{}", self.key),
            Operator::DoesNotExist => write!(f, "!{}", self.key),
            Operator::GreaterThan => write!(f, "{}>{first}", self.key),
            Operator::LessThan => write!(f, "{}<{first}", self.key),
        }
    }
}

/// A label selector: a conjunction of [`Requirement`]s. The empty selector
/// matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

/// Checks a label key: an optional DNS-subdomain prefix and `/`, then a name
/// of at most 63 characters of alphanumerics, `-`, `_`, `.`, starting and
/// ending alphanumeric.
fn check_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        let ok = !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            });
        if !ok {
            return Err(format!(
                "key {key:?}: the prefix must be a lowercase DNS subdomain"
            ));
        }
    }
    if name.is_empty() {
        return Err(format!("key {key:?}: the name part must not be empty"));
    }
    check_name_chars(name).map_err(|e| format!("key {key:?}: {e}"))
}

fn check_name_chars(name: &str) -> Result<(), String> {
    if name.len() > 63 {
        return Err("must be no more than 63 characters".to_string());
    }
    let b = name.as_bytes();
    let edge_ok = |c: u8| c.is_ascii_alphanumeric();
    let ok = b
        .iter()
        .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c))
        && b.first().copied().is_some_and(edge_ok)
        && b.last().copied().is_some_and(edge_ok);
    if ok {
        Ok(())
    } else {
        Err("must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character".to_string())
    }
}

fn check_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    check_name_chars(value).map_err(|e| format!("value {value:?}: {e}"))
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    Eq,
    DoubleEq,
    NotEq,
    Bang,
    Open,
    Close,
    Comma,
    Gt,
    Lt,
}

fn lex(input: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let chars: Vec<char> = input.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '=' if next == Some('=') => {
                tokens.push(Token::DoubleEq);
                i += 2;
                continue;
            }
            '=' => tokens.push(Token::Eq),
            '!' if next == Some('=') => {
                tokens.push(Token::NotEq);
                i += 2;
                continue;
            }
            '!' => tokens.push(Token::Bang),
            '(' => tokens.push(Token::Open),
            ')' => tokens.push(Token::Close),
            ',' => tokens.push(Token::Comma),
            '>' => tokens.push(Token::Gt),
            '<' => tokens.push(Token::Lt),
            _ => {
                let start = i;
                while i < chars.len() && !chars[i].is_whitespace() && !"=!(),<>".contains(chars[i])
                {
                    i += 1;
                }
                tokens.push(Token::Ident(chars[start..i].iter().collect()));
                continue;
            }
        }
        i += 1;
    }
    tokens
}

fn describe(t: Option<&Token>) -> String {
    match t {
        None => "the end".to_string(),
        Some(Token::Ident(s)) => format!("{s:?}"),
        Some(Token::Eq) => "'='".to_string(),
        Some(Token::DoubleEq) => "'=='".to_string(),
        Some(Token::NotEq) => "'!='".to_string(),
        Some(Token::Bang) => "'!'".to_string(),
        Some(Token::Open) => "'('".to_string(),
        Some(Token::Close) => "')'".to_string(),
        Some(Token::Comma) => "','".to_string(),
        Some(Token::Gt) => "'>'".to_string(),
        Some(Token::Lt) => "'<'".to_string(),
    }
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn at_end_of_requirement(&self) -> bool {
        matches!(self.peek(), None | Some(Token::Comma))
    }

    fn key(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Token::Ident(k)) if k != "in" && k != "notin" => {
                check_key(&k)?;
                Ok(k)
            }
            other => Err(format!(
                "expected a label key, found {}",
                describe(other.as_ref())
            )),
        }
    }

    /// A single value after `=`, `==` or `!=`; may be empty.
    fn single_value(&mut self) -> Result<String, String> {
        if self.at_end_of_requirement() {
            return Ok(String::new());
        }
        match self.next() {
            Some(Token::Ident(v)) => {
                check_value(&v)?;
                Ok(v)
            }
            other => Err(format!(
                "expected a value, found {}",
                describe(other.as_ref())
            )),
        }
    }

    fn value_set(&mut self, op: &str) -> Result<Vec<String>, String> {
        match self.next() {
            Some(Token::Open) => {}
            other => {
                return Err(format!(
                    "expected '(' after '{op}', found {}",
                    describe(other.as_ref())
                ));
            }
        }
        let mut values = Vec::new();
        loop {
            match self.peek() {
                Some(Token::Close) | Some(Token::Comma) => values.push(String::new()),
                Some(Token::Ident(v)) => {
                    let v = v.clone();
                    check_value(&v)?;
                    values.push(v);
                    self.pos += 1;
                }
                other => return Err(format!("expected a value, found {}", describe(other))),
            }
            match self.next() {
                Some(Token::Comma) => continue,
                Some(Token::Close) => break,
                other => {
                    return Err(format!(
                        "expected ',' or ')' in the values of '{op}', found {}",
                        describe(other.as_ref())
                    ));
                }
            }
        }
        if values.len() == 1 && values[0].is_empty() {
            return Err(format!("the values of '{op}' must not be empty"));
        }
        values.sort();
        values.dedup();
        Ok(values)
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        if self.peek() == Some(&Token::Bang) {
            self.pos += 1;
            let key = self.key()?;
            return Ok(Requirement {
                key,
                operator: Operator::DoesNotExist,
                values: Vec::new(),
            });
        }
        let key = self.key()?;
        if self.at_end_of_requirement() {
            return Ok(Requirement {
                key,
                operator: Operator::Exists,
                values: Vec::new(),
            });
        }
        let (operator, values) = match self.next() {
            Some(Token::Eq) | Some(Token::DoubleEq) => {
                (Operator::Equals, vec![self.single_value()?])
            }
            Some(Token::NotEq) => (Operator::NotEquals, vec![self.single_value()?]),
            Some(Token::Gt) | Some(Token::Lt) => {
                let op = if self.tokens[self.pos - 1] == Token::Gt {
                    Operator::GreaterThan
                } else {
                    Operator::LessThan
                };
                match self.next() {
                    Some(Token::Ident(v)) if v.parse::<i64>().is_ok() => (op, vec![v]),
                    other => {
                        return Err(format!(
                            "expected an integer after '>' or '<', found {}",
                            describe(other.as_ref())
                        ));
                    }
                }
            }
            Some(Token::Ident(w)) if w == "in" => (Operator::In, self.value_set("in")?),
            Some(Token::Ident(w)) if w == "notin" => (Operator::NotIn, self.value_set("notin")?),
            other => {
                return Err(format!(
                    "expected an operator after {key:?}, found {}",
                    describe(other.as_ref())
                ));
            }
        };
        Ok(Requirement {
            key,
            operator,
            values,
        })
    }
}

impl LabelSelector {
    /// Parses the query-string syntax: comma-separated requirements `a=b`,
    /// `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`, `a>1`, `a<1`,
    /// with any whitespace between tokens. The empty string selects everything.
    pub fn parse(selector: &str) -> Result<Self, SelectorError> {
        let err = |reason: String| SelectorError::Label {
            selector: selector.to_string(),
            reason,
        };
        let tokens = lex(selector);
        let mut parser = Parser { tokens, pos: 0 };
        let mut requirements = Vec::new();
        if parser.peek().is_none() {
            return Ok(LabelSelector::default());
        }
        loop {
            requirements.push(parser.requirement().map_err(err)?);
            match parser.next() {
                None => break,
                Some(Token::Comma) => {
                    if parser.peek().is_none() {
                        return Err(err("a requirement is missing after the last ','".into()));
                    }
                }
                other => {
                    return Err(err(format!(
                        "expected ',' or the end, found {}",
                        describe(other.as_ref())
                    )));
                }
            }
        }
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector { requirements })
    }

    /// Reads a `LabelSelector` object (`{matchLabels, matchExpressions}`).
    /// `null` and `{}` select everything; a caller for whom a missing selector
    /// selects nothing checks for `null` itself.
    pub fn from_json(selector: &Value) -> Result<Self, SelectorError> {
        let err = |reason: String| SelectorError::Label {
            selector: selector.to_string(),
            reason,
        };
        let obj = match selector {
            Value::Null => return Ok(LabelSelector::default()),
            Value::Object(o) => o,
            _ => return Err(err("a label selector must be an object".into())),
        };
        let mut requirements = Vec::new();
        match obj.get("matchLabels") {
            None | Some(Value::Null) => {}
            Some(Value::Object(labels)) => {
                for (k, v) in labels {
                    let Some(v) = v.as_str() else {
                        return Err(err(format!("matchLabels.{k} must be a string")));
                    };
                    check_key(k).map_err(&err)?;
                    check_value(v).map_err(&err)?;
                    requirements.push(Requirement {
                        key: k.clone(),
                        operator: Operator::Equals,
                        values: vec![v.to_string()],
                    });
                }
            }
            Some(_) => return Err(err("matchLabels must be an object".into())),
        }
        match obj.get("matchExpressions") {
            None | Some(Value::Null) => {}
            Some(Value::Array(exprs)) => {
                for (i, e) in exprs.iter().enumerate() {
                    let at = format!("matchExpressions[{i}]");
                    let key = e
                        .get("key")
                        .and_then(Value::as_str)
                        .ok_or_else(|| err(format!("{at}.key is required")))?;
                    check_key(key).map_err(|e| err(format!("{at}.{e}")))?;
                    let op = e
                        .get("operator")
                        .and_then(Value::as_str)
                        .ok_or_else(|| err(format!("{at}.operator is required")))?;
                    let mut values = Vec::new();
                    match e.get("values") {
                        None | Some(Value::Null) => {}
                        Some(Value::Array(vs)) => {
                            for v in vs {
                                let v = v
                                    .as_str()
                                    .ok_or_else(|| err(format!("{at}.values must be strings")))?;
                                check_value(v).map_err(|e| err(format!("{at}.{e}")))?;
                                values.push(v.to_string());
                            }
                        }
                        Some(_) => return Err(err(format!("{at}.values must be a list"))),
                    }
                    let operator = match op {
                        "In" => Operator::In,
                        "NotIn" => Operator::NotIn,
                        "Exists" => Operator::Exists,
                        "DoesNotExist" => Operator::DoesNotExist,
                        other => {
                            return Err(err(format!(
                                "{at}.operator: {other:?} is not a valid label selector operator (In, NotIn, Exists, DoesNotExist)"
                            )));
                        }
                    };
                    match operator {
                        Operator::In | Operator::NotIn if values.is_empty() => {
                            return Err(err(format!(
                                "{at}.values must be non-empty for the operator {op}"
                            )));
                        }
                        Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
                            return Err(err(format!(
                                "{at}.values must be empty for the operator {op}"
                            )));
                        }
                        _ => {}
                    }
                    values.sort();
                    values.dedup();
                    requirements.push(Requirement {
                        key: key.to_string(),
                        operator,
                        values,
                    });
                }
            }
            Some(_) => return Err(err("matchExpressions must be a list".into())),
        }
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector { requirements })
    }

    /// Whether the labels (an object of strings, or `null` for none) satisfy
    /// every requirement.
    pub fn matches(&self, labels: &Value) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Whether an object's `metadata.labels` satisfy every requirement.
    pub fn matches_object(&self, obj: &Value) -> bool {
        self.matches(obj.pointer("/metadata/labels").unwrap_or(&Value::Null))
    }

    /// True when the selector has no requirements (it matches everything).
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }
}

/// The canonical query-string form, e.g. `app=web,tier in (a,b)`.
impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

/// One requirement of a [`FieldSelector`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldRequirement {
    /// A dotted path into the object, e.g. `metadata.name` or `status.phase`.
    pub field: String,
    /// `true` for `!=`.
    pub negated: bool,
    /// The value compared with (unescaped).
    pub value: String,
}

impl FieldRequirement {
    /// Whether `obj` satisfies this requirement. The field's value is read by
    /// walking the dotted path; strings compare as they are, numbers and
    /// booleans by their JSON text, and a missing field (or `null`) reads as `""`.
    pub fn matches(&self, obj: &Value) -> bool {
        let mut cur = Some(obj);
        for part in self.field.split('.') {
            cur = cur.and_then(|v| v.get(part));
        }
        let actual = match cur {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            // Numbers and booleans compare by their JSON text.
            Some(v) => v.to_string(),
        };
        (actual == self.value) != self.negated
    }
}

impl fmt::Display for FieldRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = if self.negated { "!=" } else { "=" };
        let escaped = self
            .value
            .replace('\\', "\\\\")
            .replace(',', "\\,")
            .replace('=', "\\=");
        write!(f, "{}{op}{escaped}", self.field)
    }
}

/// A field selector: a conjunction of `field=value`, `field==value` and
/// `field!=value` terms over dotted paths into the object (`metadata.name`,
/// `metadata.namespace`, `spec.nodeName`, `status.phase`, `involvedObject.name`...).
/// In values, `\,`, `\=` and `\\` escape `,`, `=` and `\`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

/// Splits on commas that are not escaped with a backslash.
fn split_terms(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' {
            out.push(&s[start..i]);
            start = i + 1;
        }
    }
    out.push(&s[start..]);
    out
}

fn unescape(value: &str) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e @ ('\\' | ',' | '=')) => out.push(e),
                Some(e) => return Err(format!("invalid escape sequence '\\{e}' in {value:?}")),
                None => return Err(format!("{value:?} ends with an unfinished escape")),
            },
            ',' | '=' => {
                return Err(format!("unescaped {c:?} in the value {value:?}"));
            }
            other => out.push(other),
        }
    }
    Ok(out)
}

impl FieldSelector {
    /// Parses `a=b,c!=d,e==f`. The empty string selects everything.
    pub fn parse(selector: &str) -> Result<Self, SelectorError> {
        let err = |reason: String| SelectorError::Field {
            selector: selector.to_string(),
            reason,
        };
        let mut requirements = Vec::new();
        if selector.trim().is_empty() {
            return Ok(FieldSelector::default());
        }
        for term in split_terms(selector) {
            let term = term.trim();
            if term.is_empty() {
                return Err(err("an empty term".to_string()));
            }
            // The first operator from the left wins; at one position `!=` and
            // `==` are preferred over `=`.
            let mut found = None;
            for (i, _) in term.char_indices() {
                let rest = &term[i..];
                if rest.starts_with("!=") {
                    found = Some((i, 2, true));
                } else if rest.starts_with("==") {
                    found = Some((i, 2, false));
                } else if rest.starts_with('=') {
                    found = Some((i, 1, false));
                }
                if found.is_some() {
                    break;
                }
            }
            let Some((at, len, negated)) = found else {
                return Err(err(format!(
                    "{term:?} is not of the form field=value, field==value or field!=value"
                )));
            };
            let field = term[..at].trim();
            if field.is_empty() {
                return Err(err(format!("{term:?} has no field name")));
            }
            if field.split('.').any(str::is_empty) || field.contains(char::is_whitespace) {
                return Err(err(format!("{field:?} is not a valid field path")));
            }
            let value = unescape(term[at + len..].trim()).map_err(&err)?;
            requirements.push(FieldRequirement {
                field: field.to_string(),
                negated,
                value,
            });
        }
        Ok(FieldSelector { requirements })
    }

    /// Whether the object satisfies every requirement.
    pub fn matches(&self, obj: &Value) -> bool {
        self.requirements.iter().all(|r| r.matches(obj))
    }

    /// True when the selector has no requirements (it matches everything).
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The requirements in the order given.
    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.requirements
    }

    /// The value an `=`/`==` requirement demands of `field`, if there is one
    /// (e.g. `metadata.name`, to look one object up instead of scanning).
    pub fn required_value(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == field && !r.negated)
            .map(|r| r.value.as_str())
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels() -> Value {
        json!({"app": "web", "tier": "frontend", "env": "prod", "weight": "7", "example.com/team": "a"})
    }

    #[test]
    fn parses_and_matches_every_operator() {
        let l = labels();
        let cases = [
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app=api", false),
            ("app!=api", true),
            ("app!=web", false),
            ("missing!=x", true),
            ("tier in (frontend,backend)", true),
            ("tier in (backend)", false),
            ("missing in (x)", false),
            ("tier notin (backend)", true),
            ("tier notin (frontend)", false),
            ("missing notin (x)", true),
            ("app", true),
            ("missing", false),
            ("!missing", true),
            ("!app", false),
            ("weight>5", true),
            ("weight<5", false),
            ("app>5", false),
            ("example.com/team=a", true),
            ("app=web,tier=frontend", true),
            ("app=web,tier=backend", false),
            ("  app = web ,  tier in ( frontend , x ) , !missing  ", true),
            ("env=", false),
        ];
        for (sel, want) in cases {
            let s = LabelSelector::parse(sel).unwrap_or_else(|e| panic!("{sel}: {e}"));
            assert_eq!(s.matches(&l), want, "{sel:?}");
        }
        let s = LabelSelector::parse("env=").unwrap();
        assert!(s.matches(&json!({"env": ""})));
        assert!(!s.matches(&Value::Null));
        assert!(LabelSelector::parse("x!=y").unwrap().matches(&Value::Null));
    }

    #[test]
    fn label_selector_errors() {
        for (sel, reason) in [
            ("app=web,", "a requirement is missing after the last ','"),
            ("app in ()", "the values of 'in' must not be empty"),
            ("app in web", "expected '(' after 'in', found \"web\""),
            (
                "app in (a b)",
                "expected ',' or ')' in the values of 'in', found \"b\"",
            ),
            (
                "app web",
                "expected an operator after \"app\", found \"web\"",
            ),
            ("=web", "expected a label key, found '='"),
            ("app=a=b", "expected ',' or the end, found '='"),
            ("app>x", "expected an integer after '>' or '<', found \"x\""),
            (
                "-app=x",
                "key \"-app\": must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
            ),
            (
                "Bad_Prefix/app=x",
                "key \"Bad_Prefix/app\": the prefix must be a lowercase DNS subdomain",
            ),
            (
                "app=-x",
                "value \"-x\": must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
            ),
            (
                "app in (a",
                "expected ',' or ')' in the values of 'in', found the end",
            ),
        ] {
            let err = LabelSelector::parse(sel).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("invalid label selector {sel:?}: {reason}"),
                "{sel}"
            );
        }
        let long = format!("app={}", "a".repeat(64));
        assert!(LabelSelector::parse(&long).is_err());
    }

    #[test]
    fn label_selector_display_is_canonical() {
        let s = LabelSelector::parse("tier in (b, a),app=web,!gone,has,w>1").unwrap();
        assert_eq!(s.to_string(), "app=web,!gone,has,tier in (a,b),w>1");
        assert_eq!(LabelSelector::parse(&s.to_string()).unwrap(), s);
        assert!(LabelSelector::parse("").unwrap().is_empty());
        assert!(!s.is_empty());
    }

    #[test]
    fn label_selector_from_json() {
        let s = LabelSelector::from_json(&json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["frontend", "x"]},
                {"key": "env", "operator": "NotIn", "values": ["dev"]},
                {"key": "app", "operator": "Exists"},
                {"key": "gone", "operator": "DoesNotExist", "values": []}
            ]
        }))
        .unwrap();
        assert!(s.matches(&labels()));
        assert!(!s.matches(&json!({"app": "web", "tier": "frontend", "gone": "1"})));
        assert!(!s.matches(&json!({"app": "api", "tier": "frontend"})));
        assert!(s.matches_object(&json!({"metadata": {"labels": labels()}})));
        assert!(!s.matches_object(&json!({"metadata": {}})));

        assert!(LabelSelector::from_json(&Value::Null).unwrap().is_empty());
        assert!(
            LabelSelector::from_json(&json!({}))
                .unwrap()
                .matches(&Value::Null)
        );

        let err = LabelSelector::from_json(
            &json!({"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["x"]}]}),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains(
                "matchExpressions[0].operator: \"Equals\" is not a valid label selector operator"
            ),
            "{err}"
        );
        for bad in [
            json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}),
            json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}),
            json!({"matchExpressions": [{"operator": "Exists"}]}),
            json!({"matchLabels": {"a": 1}}),
            json!({"matchLabels": []}),
            json!("app=web"),
        ] {
            assert!(LabelSelector::from_json(&bad).is_err(), "{bad}");
        }
    }

    fn pod() -> Value {
        json!({
            "metadata": {"name": "web-1", "namespace": "prod"},
            "spec": {"nodeName": "node-a", "priority": 5, "hostNetwork": false},
            "status": {"phase": "Running"},
            "involvedObject": {"name": "a,b=c"}
        })
    }

    #[test]
    fn field_selector_matches_dotted_paths() {
        let p = pod();
        let cases = [
            ("", true),
            ("metadata.name=web-1", true),
            ("metadata.name==web-1", true),
            ("metadata.name=web-2", false),
            ("metadata.name!=web-2", true),
            ("metadata.namespace=prod,status.phase=Running", true),
            ("metadata.namespace=prod,status.phase!=Running", false),
            ("spec.nodeName=node-a", true),
            ("spec.priority=5", true),
            ("spec.hostNetwork=false", true),
            ("spec.missing=", true),
            ("spec.missing!=", false),
            ("spec.missing=x", false),
            (r"involvedObject.name=a\,b\=c", true),
            (" metadata.name = web-1 ", true),
        ];
        for (sel, want) in cases {
            let s = FieldSelector::parse(sel).unwrap_or_else(|e| panic!("{sel}: {e}"));
            assert_eq!(s.matches(&p), want, "{sel:?}");
        }
        let s = FieldSelector::parse("metadata.name=x,metadata.namespace!=y").unwrap();
        assert_eq!(s.required_value("metadata.name"), Some("x"));
        assert_eq!(s.required_value("metadata.namespace"), None);
        assert_eq!(s.to_string(), "metadata.name=x,metadata.namespace!=y");
        let escaped = FieldSelector::parse(r"involvedObject.name=a\,b\=c").unwrap();
        assert_eq!(escaped.requirements()[0].value, "a,b=c");
        assert_eq!(escaped.to_string(), r"involvedObject.name=a\,b\=c");
    }

    #[test]
    fn field_selector_errors() {
        for (sel, reason) in [
            (
                "metadata.name",
                "\"metadata.name\" is not of the form field=value, field==value or field!=value",
            ),
            ("=x", "\"=x\" has no field name"),
            ("a=b,", "an empty term"),
            ("a..b=c", "\"a..b\" is not a valid field path"),
            (r"a=b\x", r"invalid escape sequence '\x' in 'b\x'"),
            ("a=b=c", "unescaped '=' in the value \"b=c\""),
        ] {
            let err = FieldSelector::parse(sel).unwrap_err();
            let want = format!("invalid field selector {sel:?}: {reason}")
                .replace(r"'b\x'", &format!("{:?}", r"b\x"));
            assert_eq!(err.to_string(), want, "{sel}");
        }
    }
}
