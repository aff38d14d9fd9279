//! Go templates for `--format`, on top of `gtmpl`, with docker's template functions
//! (json, join, split, lower, upper, title, truncate, pad, print, println) and Go's way of
//! printing values (`[a b]`, `map[k:v]`, `<nil>`, `<no value>`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use gtmpl::{Context, Func, FuncError, Value};

use super::json::{write_go_string, Json};
use super::typed::{typed_value, Field, Forms};

/// Name of the function appended to every printing action so values print as Go prints
/// them; gtmpl's own printing uses Rust's debug forms for arrays and maps.
const PRINT_FUNC: &str = "__print";

/// A template failed to parse or to execute.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TemplateError(pub String);

/// The data a template runs over, plus the JSON encoding of each of its objects and
/// arrays so that `json` writes the daemon's field order rather than a sorted one.
#[derive(Debug, Clone)]
pub struct Data {
    value: Value,
    json_forms: Rc<Vec<(Value, String)>>,
    print_forms: Rc<Vec<(Value, String)>>,
    zero_for_missing: bool,
}

impl Data {
    /// The raw view docker falls back to for `inspect`: the JSON decoded into Go maps with
    /// `missingkey=error`, where a JSON null prints as `<no value>`.
    pub fn raw(doc: &Json) -> Data {
        let mut forms = Forms::default();
        let value = convert(doc, Mode::Raw, &mut forms);
        Data::with_forms(value, forms)
    }

    /// The typed view of a JSON document whose Go struct is described by `fields`.
    pub fn typed(doc: &Json, fields: &'static [Field]) -> Data {
        let (value, forms) = typed_value(doc, fields);
        Data {
            zero_for_missing: true,
            ..Data::with_forms(value, forms)
        }
    }

    fn with_forms(value: Value, forms: Forms) -> Data {
        Data {
            value,
            json_forms: Rc::new(forms.json),
            print_forms: Rc::new(forms.print),
            zero_for_missing: false,
        }
    }

    /// A row of string fields, as docker's formatter contexts expose them; `json` writes
    /// the fields sorted by name with HTML escaping, as Go's `json.Marshal` of a map does.
    pub fn from_fields(fields: &[(&str, String)]) -> Data {
        Data::from_fields_with_json(fields, fields)
    }

    /// A row whose JSON form differs from what templates see (docker's search rows print
    /// "[OK]" but marshal "true").
    pub fn from_fields_with_json(
        fields: &[(&str, String)],
        json_fields: &[(&str, String)],
    ) -> Data {
        let map: HashMap<String, Value> = fields
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.clone())))
            .collect();
        let mut sorted: Vec<&(&str, String)> = json_fields.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        let mut text = String::from("{");
        for (i, (k, v)) in sorted.iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            write_go_string(&mut text, k, true);
            text.push(':');
            write_go_string(&mut text, v, true);
        }
        text.push('}');
        let value = Value::Object(map);
        Data {
            json_forms: Rc::new(vec![(value.clone(), text)]),
            print_forms: Rc::new(Vec::new()),
            zero_for_missing: false,
            value,
        }
    }

    /// A row of template values whose `json` encoding is `json` (for rows with fields
    /// that are not strings, such as a nil `Platform`).
    pub fn from_values(fields: Vec<(&str, Value)>, json: String) -> Data {
        let map: HashMap<String, Value> = fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let value = Value::Object(map);
        Data {
            json_forms: Rc::new(vec![(value.clone(), json)]),
            print_forms: Rc::new(Vec::new()),
            zero_for_missing: false,
            value,
        }
    }

    /// Table headers: a map from field name to column title.
    pub fn header(columns: &[(&str, &str)]) -> Data {
        let map: HashMap<String, Value> = columns
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect();
        Data {
            value: Value::Map(map),
            json_forms: Rc::new(Vec::new()),
            print_forms: Rc::new(Vec::new()),
            zero_for_missing: false,
        }
    }

    /// Data wrapping a list of other data under one field name (`{{range .Images}}`).
    pub fn with_lists(lists: Vec<(&str, Vec<Data>)>) -> Data {
        let mut map = HashMap::new();
        let mut forms = Vec::new();
        let mut print_forms = Vec::new();
        let mut text = String::from("{");
        for (i, (name, items)) in lists.into_iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            write_go_string(&mut text, name, false);
            text.push_str(":[");
            let mut values = Vec::new();
            for (j, item) in items.into_iter().enumerate() {
                if j > 0 {
                    text.push(',');
                }
                if let Some((_, t)) = item.json_forms.iter().find(|(v, _)| *v == item.value) {
                    text.push_str(t);
                }
                forms.extend(item.json_forms.iter().cloned());
                print_forms.extend(item.print_forms.iter().cloned());
                values.push(item.value);
            }
            text.push(']');
            map.insert(name.to_string(), Value::Array(values));
        }
        text.push('}');
        let value = Value::Object(map);
        forms.push((value.clone(), text));
        Data {
            value,
            json_forms: Rc::new(forms),
            print_forms: Rc::new(print_forms),
            zero_for_missing: false,
        }
    }
}

/// How JSON objects and nulls become template values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// JSON kept as is inside a typed struct: objects are Go maps, missing keys give
    /// `<no value>`, null is nil.
    Nested,
    /// docker's raw inspect view: every object errors on missing keys, null is `<no value>`.
    Raw,
}

/// The template value of JSON nested in a typed struct (kept as the daemon sent it).
pub fn map_value(doc: &Json, forms: &mut Forms) -> Value {
    convert(doc, Mode::Nested, forms)
}

fn convert(doc: &Json, mode: Mode, forms: &mut Forms) -> Value {
    let value = match doc {
        Json::Null if mode == Mode::Raw => return Value::NoValue,
        Json::Null => return Value::Nil,
        Json::Bool(b) => return Value::Bool(*b),
        Json::Number(n) => {
            return if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::from(n.as_f64().unwrap_or(0.0))
            }
        }
        Json::String(s) => return Value::String(s.clone()),
        Json::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| convert(item, mode, forms))
                .collect(),
        ),
        Json::Object(fields) => {
            let map: HashMap<String, Value> = fields
                .iter()
                .map(|(k, v)| (k.clone(), convert(v, mode, forms)))
                .collect();
            if mode == Mode::Nested {
                Value::Map(map)
            } else {
                Value::Object(map)
            }
        }
    };
    // Go encodes the maps of the raw view with sorted keys.
    let json = if mode == Mode::Raw {
        sorted_json(doc)
    } else {
        doc.to_go_json(false)
    };
    forms.json.push((value.clone(), json));
    value
}

fn sorted_json(doc: &Json) -> String {
    match doc {
        Json::Object(fields) => {
            let mut sorted: Vec<&(String, Json)> = fields.iter().collect();
            sorted.sort_by(|a, b| a.0.cmp(&b.0));
            let mut out = String::from("{");
            for (i, (k, v)) in sorted.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_string(&mut out, k, false);
                out.push(':');
                out.push_str(&sorted_json(v));
            }
            out.push('}');
            out
        }
        Json::Array(items) => {
            let parts: Vec<String> = items.iter().map(sorted_json).collect();
            format!("[{}]", parts.join(","))
        }
        other => other.to_go_json(false),
    }
}

type FormList = Rc<Vec<(Value, String)>>;

thread_local! {
    static JSON_FORMS: RefCell<Option<FormList>> = const { RefCell::new(None) };
    static PRINT_FORMS: RefCell<Option<FormList>> = const { RefCell::new(None) };
    /// Typed views index Go maps of strings, where a missing key yields "".
    static ZERO_FOR_MISSING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn lookup(
    forms: &'static std::thread::LocalKey<RefCell<Option<FormList>>>,
    value: &Value,
) -> Option<String> {
    forms.with(|forms| {
        forms.borrow().as_ref().and_then(|forms| {
            forms
                .iter()
                .find(|(v, _)| v == value)
                .map(|(_, text)| text.clone())
        })
    })
}

/// A parsed `--format` template.
pub struct Template {
    body: gtmpl::Template,
    header: Option<gtmpl::Template>,
}

impl Template {
    /// Parses a template with docker's functions.
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        Ok(Template {
            body: parse_with(source, &basic_functions())?,
            header: None,
        })
    }

    /// Parses a template that also renders table headers, with docker's header functions
    /// (which leave the column titles as they are).
    pub fn parse_table(source: &str) -> Result<Template, TemplateError> {
        Ok(Template {
            body: parse_with(source, &basic_functions())?,
            header: Some(parse_with(source, &header_functions())?),
        })
    }

    /// Runs the template over `data`.
    pub fn render(&self, data: &Data) -> Result<String, TemplateError> {
        let mut out = Vec::new();
        execute(&self.body, data, &mut out)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// Renders the header row; like docker, a failure keeps what was written so far.
    pub fn render_header(&self, data: &Data) -> String {
        let mut out = Vec::new();
        if let Some(header) = &self.header {
            let _ = execute(header, data, &mut out);
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

fn parse_with(source: &str, funcs: &[(&str, Func)]) -> Result<gtmpl::Template, TemplateError> {
    if let Some(line) = unclosed_action_line(source) {
        return Err(TemplateError(format!("template: :{line}: unclosed action")));
    }
    let mut template = gtmpl::Template::default();
    template.add_funcs(funcs);
    template
        .parse(rewrite(source))
        .map_err(|e| TemplateError(e.to_string()))?;
    Ok(template)
}

fn execute(
    template: &gtmpl::Template,
    data: &Data,
    out: &mut Vec<u8>,
) -> Result<(), TemplateError> {
    JSON_FORMS.with(|forms| *forms.borrow_mut() = Some(data.json_forms.clone()));
    PRINT_FORMS.with(|forms| *forms.borrow_mut() = Some(data.print_forms.clone()));
    ZERO_FOR_MISSING.with(|flag| flag.set(data.zero_for_missing));
    let result = template.execute(out, &Context::from(data.value.clone()));
    JSON_FORMS.with(|forms| *forms.borrow_mut() = None);
    PRINT_FORMS.with(|forms| *forms.borrow_mut() = None);
    result.map_err(|e| TemplateError(exec_message(&e)))
}

/// An execution error in Go's words where gtmpl's would dump whole values.
fn exec_message(e: &gtmpl::error::ExecError) -> String {
    use gtmpl::error::ExecError;
    match e {
        ExecError::NoFiledFor(field, _) => format!("map has no entry for key \"{field}\""),
        ExecError::InvalidRange(value) => {
            format!("range can't iterate over {}", go_text(value))
        }
        other => other.to_string(),
    }
}

fn basic_functions() -> Vec<(&'static str, Func)> {
    vec![
        (PRINT_FUNC, go_print as Func),
        ("json", json as Func),
        ("split", split as Func),
        ("join", join as Func),
        ("title", title as Func),
        ("lower", lower as Func),
        ("upper", upper as Func),
        ("pad", pad as Func),
        ("truncate", truncate as Func),
        ("print", print as Func),
        ("println", println as Func),
        ("index", index as Func),
        ("__is_map", is_map as Func),
        ("__keys", sorted_keys as Func),
        ("__single", single_entry as Func),
        ("__iterable", iterable as Func),
        ("__empty", is_empty as Func),
    ]
}

fn header_functions() -> Vec<(&'static str, Func)> {
    let mut funcs = basic_functions();
    for name in [
        "json", "split", "join", "title", "lower", "upper", "truncate",
    ] {
        if let Some(entry) = funcs.iter_mut().find(|(n, _)| *n == name) {
            entry.1 = header_identity as Func;
        }
    }
    funcs
}

/// Go's `fmt.Sprint` of one value.
pub fn go_text(value: &Value) -> String {
    match value {
        Value::NoValue => "<no value>".to_string(),
        other => nested_text(other),
    }
}

/// `fmt`'s `%v` of a value inside a slice, map or struct, where an absent interface
/// value prints as `<nil>`.
fn nested_text(value: &Value) -> String {
    if let Some(text) = lookup(&PRINT_FORMS, value) {
        return text;
    }
    match value {
        Value::NoValue => "<nil>".to_string(),
        Value::Nil => "<nil>".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(nested_text).collect();
            format!("[{}]", parts.join(" "))
        }
        Value::Object(map) | Value::Map(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .iter()
                .map(|k| format!("{k}:{}", nested_text(&map[*k])))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
        Value::Function(_) => "<func>".to_string(),
    }
}

fn one_arg<'a>(name: &str, args: &'a [Value]) -> Result<&'a Value, FuncError> {
    match args {
        [value] => Ok(value),
        _ => Err(FuncError::ExactlyXArgs(name.to_string(), 1)),
    }
}

fn string_arg(name: &str, value: &Value) -> Result<String, FuncError> {
    match value {
        Value::String(s) => Ok(s.clone()),
        other => Err(FuncError::Generic(format!(
            "wrong type for value; expected string; got {} in {name}",
            type_name(other)
        ))),
    }
}

fn int_arg(name: &str, value: &Value) -> Result<i64, FuncError> {
    match value {
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| FuncError::Generic(format!("{name}: number out of range"))),
        other => Err(FuncError::Generic(format!(
            "wrong type for value; expected int; got {} in {name}",
            type_name(other)
        ))),
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::NoValue | Value::Nil => "<nil>",
        Value::Bool(_) => "bool",
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) | Value::Map(_) => "map[string]interface {}",
        Value::Function(_) => "func",
    }
}

fn go_print(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(go_text(one_arg(PRINT_FUNC, args)?)))
}

/// Header variant of the string functions: the column title passes through unchanged,
/// and anything but a string fails as docker's string-typed header functions do.
fn header_identity(args: &[Value]) -> Result<Value, FuncError> {
    match args.first() {
        Some(Value::String(s)) => Ok(Value::String(s.clone())),
        Some(other) => Err(FuncError::Generic(format!(
            "wrong type for value; expected string; got {}",
            type_name(other)
        ))),
        None => Err(FuncError::AtLeastXArgs("function".to_string(), 1)),
    }
}

fn json(args: &[Value]) -> Result<Value, FuncError> {
    let value = one_arg("json", args)?;
    let known = match value {
        // Scalars encode the same whatever their origin.
        Value::Array(_) | Value::Map(_) | Value::Object(_) | Value::String(_) => {
            lookup(&JSON_FORMS, value)
        }
        _ => None,
    };
    Ok(Value::String(known.unwrap_or_else(|| value_to_json(value))))
}

/// Whether a value is a map (ranges over maps are rewritten to visit sorted keys).
fn is_map(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::Bool(matches!(
        one_arg("__is_map", args)?,
        Value::Map(_) | Value::Object(_)
    )))
}

/// A map's keys, sorted as Go's `range` visits them.
fn sorted_keys(args: &[Value]) -> Result<Value, FuncError> {
    match one_arg("__keys", args)? {
        Value::Map(map) | Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Ok(Value::Array(
                keys.into_iter().map(|k| Value::String(k.clone())).collect(),
            ))
        }
        other => Err(FuncError::Generic(format!(
            "range can't iterate over {}",
            go_text(other)
        ))),
    }
}

/// The one-entry map `{key: map[key]}`, ranged over to bind key, value and dot.
fn single_entry(args: &[Value]) -> Result<Value, FuncError> {
    let [map, Value::String(key)] = args else {
        return Err(FuncError::ExactlyXArgs("__single".to_string(), 2));
    };
    let value = match map {
        Value::Map(m) | Value::Object(m) => m.get(key).cloned().unwrap_or(Value::NoValue),
        _ => Value::NoValue,
    };
    Ok(Value::Map(HashMap::from([(key.clone(), value)])))
}

/// Whether ranging over the value visits nothing (its else branch runs).
fn is_empty(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::Bool(match one_arg("__empty", args)? {
        Value::Nil | Value::NoValue => true,
        Value::Array(items) => items.is_empty(),
        Value::Map(map) | Value::Object(map) => map.is_empty(),
        _ => false,
    }))
}

/// Ranging over nil visits nothing in Go; gtmpl would fail.
fn iterable(args: &[Value]) -> Result<Value, FuncError> {
    match one_arg("__iterable", args)? {
        Value::Nil | Value::NoValue => Ok(Value::Array(Vec::new())),
        other => Ok(other.clone()),
    }
}

/// Go's `index`: element of a slice, or a map's value (`<no value>` when absent).
fn index(args: &[Value]) -> Result<Value, FuncError> {
    let Some((first, keys)) = args.split_first() else {
        return Err(FuncError::AtLeastXArgs("index".to_string(), 1));
    };
    let mut current = first.clone();
    for key in keys {
        current = match (&current, key) {
            (Value::Array(items), Value::Number(n)) => {
                let i = n.as_i64().ok_or_else(|| {
                    FuncError::Generic("cannot index slice/array with nil".into())
                })?;
                if i < 0 || i as usize >= items.len() {
                    return Err(FuncError::Generic(format!(
                        "error calling index: index out of range: {i}"
                    )));
                }
                items[i as usize].clone()
            }
            (Value::Map(map) | Value::Object(map), Value::String(k)) => match map.get(k) {
                Some(v) => v.clone(),
                None if ZERO_FOR_MISSING.with(std::cell::Cell::get) => Value::String(String::new()),
                None => Value::NoValue,
            },
            (Value::Nil | Value::NoValue, _) => {
                return Err(FuncError::Generic(
                    "error calling index: index of untyped nil".to_string(),
                ))
            }
            (other, key) => {
                return Err(FuncError::Generic(format!(
                    "error calling index: cannot index {} with {}",
                    type_name(other),
                    type_name(key)
                )))
            }
        };
    }
    Ok(current)
}

/// Encodes a template value as Go's encoder does for maps: keys sorted, no HTML escaping.
fn value_to_json(value: &Value) -> String {
    let mut out = String::new();
    write_value_json(&mut out, value);
    out
}

fn write_value_json(out: &mut String, value: &Value) {
    match value {
        Value::NoValue | Value::Nil | Value::Function(_) => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_go_string(out, s, false),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value_json(out, item);
            }
            out.push(']');
        }
        Value::Object(map) | Value::Map(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_string(out, k, false);
                out.push(':');
                write_value_json(out, &map[*k]);
            }
            out.push('}');
        }
    }
}

fn split(args: &[Value]) -> Result<Value, FuncError> {
    let [s, sep] = args else {
        return Err(FuncError::ExactlyXArgs("split".to_string(), 2));
    };
    let s = string_arg("split", s)?;
    let sep = string_arg("split", sep)?;
    let parts: Vec<Value> = if sep.is_empty() {
        s.chars().map(|c| Value::String(c.to_string())).collect()
    } else {
        s.split(sep.as_str())
            .map(|p| Value::String(p.to_string()))
            .collect()
    };
    Ok(Value::Array(parts))
}

fn join(args: &[Value]) -> Result<Value, FuncError> {
    let [list, sep] = args else {
        return Err(FuncError::ExactlyXArgs("join".to_string(), 2));
    };
    let sep = string_arg("join", sep)?;
    match list {
        Value::Array(items) => Ok(Value::String(
            items.iter().map(go_text).collect::<Vec<_>>().join(&sep),
        )),
        Value::Nil | Value::NoValue => Ok(Value::String(String::new())),
        other => Err(FuncError::Generic(format!(
            "wrong type for value; expected []string; got {} in join",
            type_name(other)
        ))),
    }
}

fn lower(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(
        string_arg("lower", one_arg("lower", args)?)?.to_lowercase(),
    ))
}

fn upper(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(
        string_arg("upper", one_arg("upper", args)?)?.to_uppercase(),
    ))
}

/// Go's `strings.Title`: upper-cases the first letter of each word.
fn title(args: &[Value]) -> Result<Value, FuncError> {
    let s = string_arg("title", one_arg("title", args)?)?;
    let mut out = String::with_capacity(s.len());
    let mut prev = ' ';
    for c in s.chars() {
        if is_word_separator(prev) {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev = c;
    }
    Ok(Value::String(out))
}

fn is_word_separator(c: char) -> bool {
    if c.is_ascii() {
        return !(c.is_ascii_alphanumeric() || c == '_');
    }
    if c.is_alphanumeric() {
        return false;
    }
    c.is_whitespace()
}

fn pad(args: &[Value]) -> Result<Value, FuncError> {
    let [s, prefix, suffix] = args else {
        return Err(FuncError::ExactlyXArgs("pad".to_string(), 3));
    };
    let s = string_arg("pad", s)?;
    if s.is_empty() {
        return Ok(Value::String(s));
    }
    let prefix = int_arg("pad", prefix)?.max(0) as usize;
    let suffix = int_arg("pad", suffix)?.max(0) as usize;
    Ok(Value::String(format!(
        "{}{s}{}",
        " ".repeat(prefix),
        " ".repeat(suffix)
    )))
}

/// Truncates to at most `length` bytes (docker counts bytes), never inside a character.
fn truncate(args: &[Value]) -> Result<Value, FuncError> {
    let [s, length] = args else {
        return Err(FuncError::ExactlyXArgs("truncate".to_string(), 2));
    };
    let s = string_arg("truncate", s)?;
    let length = int_arg("truncate", length)?.max(0) as usize;
    if s.len() < length {
        return Ok(Value::String(s));
    }
    let mut end = length;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Ok(Value::String(s[..end].to_string()))
}

/// Go's `fmt.Sprint`: a space between operands when neither is a string.
fn print(args: &[Value]) -> Result<Value, FuncError> {
    let mut out = String::new();
    let mut prev_string = true;
    for (i, arg) in args.iter().enumerate() {
        let is_string = matches!(arg, Value::String(_));
        if i > 0 && !is_string && !prev_string {
            out.push(' ');
        }
        out.push_str(&go_text(arg));
        prev_string = is_string;
    }
    Ok(Value::String(out))
}

/// Go's `fmt.Sprintln`: operands separated by spaces, then a newline.
fn println(args: &[Value]) -> Result<Value, FuncError> {
    let parts: Vec<String> = args.iter().map(go_text).collect();
    Ok(Value::String(format!("{}\n", parts.join(" "))))
}

const KEYWORDS: [&str; 10] = [
    "if", "else", "end", "range", "with", "define", "template", "block", "break", "continue",
];

/// Rewrites a template so gtmpl runs it as Go would:
/// - every printing action gets `| __print`, so values print the way Go prints them;
/// - `range` over a map visits the keys in sorted order (gtmpl follows hash order): the
///   range becomes, when the value is a map, a range over its sorted keys with an inner
///   one-entry range that binds the variables and dot as the original did.
///
/// Control actions, declarations and comments are left alone; an unclosed action is left
/// for the parser to report.
pub fn rewrite(source: &str) -> String {
    let Some(tokens) = tokenize(source) else {
        return source.to_string();
    };
    let mut out = String::with_capacity(source.len() + 64);
    let mut counter = 0;
    emit(&tokens, &mut out, &mut counter);
    out
}

#[derive(Debug, Clone, Copy)]
enum Token<'a> {
    Text(&'a str),
    /// What is between `{{` and `}}`.
    Action(&'a str),
}

fn tokenize(source: &str) -> Option<Vec<Token<'_>>> {
    let mut tokens = Vec::new();
    let mut rest = source;
    while let Some(start) = rest.find("{{") {
        if start > 0 {
            tokens.push(Token::Text(&rest[..start]));
        }
        let after = &rest[start + 2..];
        let end = action_end(after)?;
        tokens.push(Token::Action(&after[..end]));
        rest = &after[end + 2..];
    }
    if !rest.is_empty() {
        tokens.push(Token::Text(rest));
    }
    Some(tokens)
}

/// The parts of an action: left trim marker, body, right trim marker.
fn split_trim(action: &str) -> (bool, &str, bool) {
    let (left, core) = match action.strip_prefix("- ") {
        Some(rest) => (true, rest),
        None => (false, action),
    };
    let (core, right) = match core.strip_suffix(" -") {
        Some(rest) => (rest, true),
        None => (core, false),
    };
    (left, core, right)
}

fn keyword(action: &str) -> &str {
    let (_, core, _) = split_trim(action);
    let core = core.trim_start();
    let len = core
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(core.len());
    &core[..len]
}

/// For the block opened at `start`: the index of its top-level `else` (if any) and of
/// its `end`.
fn block_extent(tokens: &[Token], start: usize) -> Option<(Option<usize>, usize)> {
    let mut depth = 0usize;
    let mut else_at = None;
    for (j, token) in tokens.iter().enumerate().skip(start + 1) {
        let Token::Action(action) = token else {
            continue;
        };
        match keyword(action) {
            "if" | "range" | "with" | "define" | "block" => depth += 1,
            "else" if depth == 0 && else_at.is_none() => else_at = Some(j),
            "end" if depth == 0 => return Some((else_at, j)),
            "end" => depth -= 1,
            _ => {}
        }
    }
    None
}

fn emit(tokens: &[Token], out: &mut String, counter: &mut usize) {
    let mut i = 0;
    while i < tokens.len() {
        match tokens[i] {
            Token::Text(text) => out.push_str(text),
            Token::Action(action) => {
                if keyword(action) == "range" {
                    if let Some((else_at, end_at)) = block_extent(tokens, i) {
                        emit_range(tokens, i, else_at, end_at, out, counter);
                        i = end_at + 1;
                        continue;
                    }
                }
                out.push_str("{{");
                out.push_str(&rewrite_action(action));
                out.push_str("}}");
            }
        }
        i += 1;
    }
}

fn emit_range(
    tokens: &[Token],
    start: usize,
    else_at: Option<usize>,
    end_at: usize,
    out: &mut String,
    counter: &mut usize,
) {
    let Token::Action(range_action) = tokens[start] else {
        return;
    };
    let action_at = |i: usize| match tokens[i] {
        Token::Action(a) => a,
        Token::Text(t) => t,
    };
    let (range_left, core, range_right) = split_trim(range_action);
    let spec = core.trim_start()["range".len()..].trim();
    let (vars, pipeline) = range_variables(spec);
    if pipeline.is_empty() {
        // Not a range we understand; let the parser judge it.
        for token in &tokens[start..=end_at] {
            match token {
                Token::Text(t) => out.push_str(t),
                Token::Action(a) => {
                    out.push_str("{{");
                    out.push_str(a);
                    out.push_str("}}");
                }
            }
        }
        return;
    }
    let n = *counter;
    *counter += 1;
    let body_end = else_at.unwrap_or(end_at);
    let mut body = String::new();
    emit(&tokens[start + 1..body_end], &mut body, counter);
    let mut else_body = String::new();
    if let Some(e) = else_at {
        emit(&tokens[e + 1..end_at], &mut else_body, counter);
    }
    let (else_left, else_right) = match else_at {
        Some(e) => {
            let (l, _, r) = split_trim(action_at(e));
            (l, r)
        }
        None => (false, false),
    };
    let (end_left, _, end_right) = split_trim(action_at(end_at));
    let trim = |on: bool| if on { "- " } else { "" };
    let rtrim = |on: bool| if on { " -" } else { "" };
    // The trim before whatever follows the body (else, or end).
    let body_close_left = if else_at.is_some() {
        else_left
    } else {
        end_left
    };

    // The ranged value is evaluated once, with the original dot. gtmpl runs a range's
    // else branch even after iterations, so "else" becomes an explicit emptiness test.
    out.push_str(&format!(
        "{{{{{}$__v{n} := {pipeline}}}}}",
        trim(range_left)
    ));
    if else_at.is_some() {
        out.push_str(&format!("{{{{if __empty $__v{n}{}}}}}", rtrim(else_right)));
        out.push_str(&else_body);
        out.push_str(&format!("{{{{{}else}}}}", trim(end_left)));
    }
    out.push_str(&format!("{{{{if __is_map $__v{n}}}}}"));
    out.push_str(&format!(
        "{{{{range $__k{n} := __keys $__v{n}}}}}{{{{range {vars}__single $__v{n} $__k{n}{}}}}}",
        rtrim(range_right)
    ));
    out.push_str(&body);
    out.push_str(&format!("{{{{{}end}}}}{{{{end}}}}", trim(body_close_left)));
    out.push_str("{{else}}");
    out.push_str(&format!(
        "{{{{range {vars}__iterable $__v{n}{}}}}}",
        rtrim(range_right)
    ));
    out.push_str(&body);
    out.push_str(&format!("{{{{{}end}}}}", trim(body_close_left)));
    out.push_str("{{end}}");
    if else_at.is_some() {
        out.push_str("{{end}}");
    }
    // The original end's right trim applies to the text after the whole construct.
    if end_right {
        out.push_str("{{- /* */ -}}");
    }
}

/// Splits `$k, $v := X` into ("$k, $v := ", "X"); no variables gives ("", spec).
fn range_variables(spec: &str) -> (String, String) {
    if spec.starts_with('$') {
        if let Some(pos) = spec.find(":=") {
            let vars = spec[..pos].trim();
            let is_vars = vars.split(',').all(|v| {
                v.trim().starts_with('$')
                    && v.trim()[1..]
                        .chars()
                        .all(|c| c.is_alphanumeric() || c == '_')
            });
            if is_vars {
                return (format!("{vars} := "), spec[pos + 2..].trim().to_string());
            }
        }
    }
    (String::new(), spec.to_string())
}

/// The line of the first action without its closing `}}`, as Go reports it.
fn unclosed_action_line(source: &str) -> Option<usize> {
    let mut offset = 0;
    while let Some(start) = source[offset..].find("{{") {
        let open = offset + start;
        match action_end(&source[open + 2..]) {
            Some(end) => offset = open + 2 + end + 2,
            None => return Some(source[..open].matches('\n').count() + 1),
        }
    }
    None
}

/// Byte offset of the closing `}}` of an action, skipping quoted text and comments.
fn action_end(action: &str) -> Option<usize> {
    let bytes = action.as_bytes();
    let mut i = 0;
    let trimmed_start = if action.starts_with("- ") { 2 } else { 0 };
    let body = action[trimmed_start..].trim_start();
    if body.starts_with("/*") {
        let comment_start = action.len() - body.len();
        let close = action[comment_start..].find("*/")? + comment_start + 2;
        return action[close..].find("}}").map(|p| p + close);
    }
    while i < bytes.len() {
        match bytes[i] {
            b'"' | b'\'' => {
                let quote = bytes[i];
                i += 1;
                while i < bytes.len() && bytes[i] != quote {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'`' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'`' {
                    i += 1;
                }
            }
            b'}' if bytes.get(i + 1) == Some(&b'}') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

fn rewrite_action(action: &str) -> String {
    let (lead, core) = match action.strip_prefix("- ") {
        Some(rest) => ("- ", rest),
        None => ("", action),
    };
    let (core, trail) = match core.strip_suffix(" -") {
        Some(rest) => (rest, " -"),
        None => (core, ""),
    };
    let body = core.trim();
    if body.is_empty() || body.starts_with("/*") || is_control(body) || is_declaration(body) {
        return action.to_string();
    }
    let trailing_ws = &core[core.trim_end().len()..];
    format!(
        "{lead}{} | {PRINT_FUNC}{trailing_ws}{trail}",
        core.trim_end()
    )
}

fn is_control(body: &str) -> bool {
    let word: String = body
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    KEYWORDS.contains(&word.as_str())
}

/// `$x := ...`, `$x = ...` or `$i, $v := ...`.
fn is_declaration(body: &str) -> bool {
    let mut rest = body;
    loop {
        let Some(after_dollar) = rest.strip_prefix('$') else {
            return false;
        };
        let name_len = after_dollar
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(after_dollar.len());
        rest = after_dollar[name_len..].trim_start();
        if let Some(more) = rest.strip_prefix(',') {
            rest = more.trim_start();
            continue;
        }
        return rest.starts_with(":=") || (rest.starts_with('=') && !rest.starts_with("=="));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(source: &str, doc: &str) -> String {
        let doc = Json::parse(doc.as_bytes()).unwrap();
        Template::parse(source)
            .unwrap()
            .render(&Data::raw(&doc))
            .unwrap()
    }

    #[test]
    fn rewrites_only_printing_actions() {
        assert_eq!(rewrite("{{.A}}"), "{{.A | __print}}");
        assert_eq!(
            rewrite("{{- .A -}} x {{ .B }}"),
            "{{- .A | __print -}} x {{ .B | __print }}"
        );
        assert_eq!(
            rewrite("{{if .A}}{{else if .B}}{{end}}"),
            "{{if .A}}{{else if .B}}{{end}}"
        );
        assert_eq!(rewrite("{{$x := .A}}"), "{{$x := .A}}");
        assert_eq!(rewrite("{{/* c */}}"), "{{/* c */}}");
        assert_eq!(
            rewrite(r#"{{join .A "}}"}}"#),
            r#"{{join .A "}}" | __print}}"#
        );
        assert_eq!(rewrite("{{.A"), "{{.A");
    }

    #[test]
    fn ranges_over_maps_visit_sorted_keys() {
        let doc = r#"{"M":{"b":"2","a":"1","c":"3"},"L":["x","y"],"E":{},"N":null}"#;
        assert_eq!(
            render("{{range $k, $v := .M}}{{$k}}={{$v}},{{end}}", doc),
            "a=1,b=2,c=3,"
        );
        assert_eq!(render("{{range .M}}{{.}}{{end}}", doc), "123");
        assert_eq!(render("{{range $v := .M}}{{$v}}{{end}}", doc), "123");
        assert_eq!(
            render(
                "{{range $i, $e := .L}}{{if $i}}, {{end}}{{$i}}{{$e}}{{end}}",
                doc
            ),
            "0x, 1y"
        );
        assert_eq!(render("{{range .E}}x{{else}}empty{{end}}", doc), "empty");
        assert_eq!(render("{{range .N}}x{{else}}none{{end}}", doc), "none");
        assert_eq!(
            render(
                "{{range $k, $v := .M}}{{range $.L}}{{$k}}{{.}} {{end}}{{end}}",
                doc
            ),
            "ax ay bx by cx cy "
        );
        assert_eq!(
            render("[ {{- range .L -}} {{.}} {{- end -}} ]", doc),
            "[xy]"
        );
        assert_eq!(
            render("[{{range .M -}} {{.}} {{- else}}e{{end}}]", doc),
            "[123]"
        );
    }

    #[test]
    fn prints_values_like_go() {
        let doc =
            r#"{"Tags":["a","b"],"Labels":{"z":"1","a":"2"},"Env":null,"Size":1986676,"S":"x"}"#;
        assert_eq!(
            render(
                "{{.Tags}} {{.Labels}} {{.Env}} {{.Size}} {{.S}} {{index .Labels \"missing\"}}",
                doc
            ),
            "[a b] map[a:2 z:1] <no value> 1986676 x <no value>"
        );
    }

    #[test]
    fn go_control_flow() {
        let doc = r#"{"S":"x","E":"","N":3,"L":["a"],"M":{"k":"v"},"Z":null}"#;
        assert_eq!(render("{{with .S}}<{{.}}>{{else}}none{{end}}", doc), "<x>");
        assert_eq!(render("{{with .E}}<{{.}}>{{else}}none{{end}}", doc), "none");
        assert_eq!(
            render(
                "{{if and .S .N}}both{{end}}{{if or .E .Z}}x{{else}}neither{{end}}",
                doc
            ),
            "bothneither"
        );
        assert_eq!(
            render(
                "{{if not .E}}empty{{end}} {{if eq .S \"x\"}}eq{{end}} {{if ne .N 4}}ne{{end}}",
                doc
            ),
            "empty eq ne"
        );
        assert_eq!(
            render("{{if lt .N 5}}lt{{end}} {{printf \"%s-%d\" .S .N}}", doc),
            "lt x-3"
        );
        assert_eq!(render("{{range .L}}{{.}}{{end -}}   !", doc), "a!");
        assert_eq!(
            render("{{$x := .S}}{{range .L}}{{$x}}{{.}}{{end}}", doc),
            "xa"
        );
        assert_eq!(render("{{index .M \"k\"}}{{index .L 0}}", doc), "va");
        assert_eq!(render("{{.M.k}}", doc), "v");
    }

    #[test]
    fn missing_top_level_field_is_an_error() {
        let doc = Json::parse(br#"{"A":1}"#).unwrap();
        let t = Template::parse("{{.Missing}}").unwrap();
        assert!(t.render(&Data::raw(&doc)).is_err());
        let nested = Template::parse("{{.A.Missing}}").unwrap();
        let doc = Json::parse(br#"{"A":{"B":1}}"#).unwrap();
        assert!(nested.render(&Data::raw(&doc)).is_err());
    }

    #[test]
    fn json_of_the_raw_view_sorts_keys_like_go_maps() {
        let doc = r#"{"Config":{"Cmd":["sh"],"Env":null,"Labels":{"b":"<x>","a":"y"}},"ApiVersion":"1.41"}"#;
        assert_eq!(
            render("{{json .Config}}", doc),
            r#"{"Cmd":["sh"],"Env":null,"Labels":{"a":"y","b":"<x>"}}"#
        );
        assert_eq!(render("{{.ApiVersion}}", doc), "1.41");
        assert_eq!(render(r#"{{json "a<b"}}"#, doc), r#""a<b""#);
    }

    #[test]
    fn docker_functions() {
        let doc = r#"{"S":"hello world","L":["x","y"],"E":""}"#;
        assert_eq!(render(r#"{{join .L ", "}}"#, doc), "x, y");
        assert_eq!(render(r#"{{split .S " "}}"#, doc), "[hello world]");
        assert_eq!(
            render("{{upper .S}} {{lower \"ABC\"}}", doc),
            "HELLO WORLD abc"
        );
        assert_eq!(render("{{title .S}}", doc), "Hello World");
        assert_eq!(
            render("{{truncate .S 5}}|{{truncate .S 50}}", doc),
            "hello|hello world"
        );
        assert_eq!(
            render("[{{pad .S 1 2}}][{{pad .E 1 2}}]", doc),
            "[ hello world  ][]"
        );
        assert_eq!(render("{{println .S .L}}", doc), "hello world [x y]\n");
        assert_eq!(render("{{print 1 2 \"a\" 3}}", doc), "1 2a3");
        assert_eq!(render("{{range .L}}<{{.}}>{{end}}", doc), "<x><y>");
        assert_eq!(render("{{len .L}}", doc), "2");
        assert_eq!(render("{{if eq .S \"hello world\"}}yes{{end}}", doc), "yes");
    }

    #[test]
    fn rows_and_headers() {
        let row = Data::from_fields(&[("Repository", "<none>".into()), ("ID", "abc".into())]);
        let t = Template::parse_table("{{.Repository}}\t{{.ID}}\t{{json .}}").unwrap();
        assert_eq!(
            t.render(&row).unwrap(),
            "<none>\tabc\t{\"ID\":\"abc\",\"Repository\":\"\\u003cnone\\u003e\"}"
        );
        let header = Data::header(&[("Repository", "REPOSITORY"), ("ID", "IMAGE ID")]);
        assert_eq!(t.render_header(&header), "REPOSITORY\tIMAGE ID\t");
        let t = Template::parse_table("{{.Repository}} {{.Nope}}").unwrap();
        assert_eq!(t.render_header(&header), "REPOSITORY <no value>");
    }

    #[test]
    fn parse_errors_are_reported() {
        assert_eq!(
            Template::parse("x\n{{.A}} {{.A").err(),
            Some(TemplateError("template: :2: unclosed action".to_string()))
        );
        assert!(Template::parse("{{nosuchfunc .A}}").is_err());
    }
}
