//! The fallback JSON Schema of a `#[derive(Event)]` type that does not derive
//! `schemars::JsonSchema` (one that does gets `schemars`' exact schema instead: the runtime's
//! `schema.rs` picks), written from its fields at compile time, in
//! the shape pydantic gives (`title`, `type`, `properties`, `required`), so that a front end
//! can build a form for a start event or an answer. Field types are read from their syntax:
//! strings, booleans, numbers, options, sequences, maps and smart pointers are described;
//! any other type is left open (`{}`). The `#[serde(...)]` options that change the JSON form
//! are followed: `rename`, `rename_all`, `default`, `skip`, `skip_deserializing` and `flatten`.

use syn::{Attribute, Data, DeriveInput, Fields, GenericArgument, LitStr, PathArguments, Type};

/// A JSON value, as the schema is built.
pub(crate) enum Json {
    Bool(bool),
    Int(usize),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    fn obj(fields: &[(&str, Json)]) -> Vec<(String, Json)> {
        fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    fn ty(name: &str) -> Json {
        Json::Obj(vec![("type".into(), Json::Str(name.into()))])
    }

    fn any() -> Json {
        Json::Obj(Vec::new())
    }

    /// The compact JSON text.
    pub(crate) fn write(&self, out: &mut String) {
        match self {
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Int(n) => out.push_str(&n.to_string()),
            Json::Str(s) => {
                out.push('"');
                for c in s.chars() {
                    match c {
                        '"' => out.push_str("\\\""),
                        '\\' => out.push_str("\\\\"),
                        '\n' => out.push_str("\\n"),
                        '\r' => out.push_str("\\r"),
                        '\t' => out.push_str("\\t"),
                        c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                        c => out.push(c),
                    }
                }
                out.push('"');
            }
            Json::Arr(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write(out);
                }
                out.push(']');
            }
            Json::Obj(fields) => {
                out.push('{');
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    Json::Str(k.clone()).write(out);
                    out.push(':');
                    v.write(out);
                }
                out.push('}');
            }
        }
    }
}

impl Clone for Json {
    fn clone(&self) -> Self {
        match self {
            Json::Bool(b) => Json::Bool(*b),
            Json::Int(n) => Json::Int(*n),
            Json::Str(s) => Json::Str(s.clone()),
            Json::Arr(a) => Json::Arr(a.clone()),
            Json::Obj(o) => Json::Obj(o.clone()),
        }
    }
}

/// The `#[serde(...)]` options that matter here, of a container, field or variant.
#[derive(Default)]
struct Serde {
    rename: Option<String>,
    rename_all: Option<String>,
    default: bool,
    skip: bool,
    flatten: bool,
    transparent: bool,
}

fn serde_options(attrs: &[Attribute]) -> Serde {
    let mut out = Serde::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("serde")) {
        // Malformed options are serde's to report; whatever parses is used.
        let _ = attr.parse_nested_meta(|meta| {
            let name = meta
                .path
                .get_ident()
                .map(ToString::to_string)
                .unwrap_or_default();
            match name.as_str() {
                "rename" | "rename_all" => {
                    if let Ok(value) = meta.value() {
                        if let Ok(lit) = value.parse::<LitStr>() {
                            let slot = if name == "rename" {
                                &mut out.rename
                            } else {
                                &mut out.rename_all
                            };
                            *slot = Some(lit.value());
                        }
                    } else {
                        // `rename(deserialize = "...")`: the input form is what a schema describes.
                        let _ = meta.parse_nested_meta(|inner| {
                            if inner.path.is_ident("deserialize") {
                                let lit: LitStr = inner.value()?.parse()?;
                                if name == "rename" {
                                    out.rename = Some(lit.value());
                                } else {
                                    out.rename_all = Some(lit.value());
                                }
                            } else if let Ok(v) = inner.value() {
                                let _: LitStr = v.parse()?;
                            }
                            Ok(())
                        });
                    }
                }
                "default" => {
                    out.default = true;
                    if let Ok(v) = meta.value() {
                        let _: LitStr = v.parse()?;
                    }
                }
                "skip" | "skip_deserializing" => out.skip = true,
                "flatten" => out.flatten = true,
                "transparent" => out.transparent = true,
                _ => {
                    // Consume a value so that parsing goes on to the next option.
                    if let Ok(v) = meta.value() {
                        let _: syn::Expr = v.parse()?;
                    } else if meta.input.peek(syn::token::Paren) {
                        let _ = meta.parse_nested_meta(|inner| {
                            if let Ok(v) = inner.value() {
                                let _: syn::Expr = v.parse()?;
                            }
                            Ok(())
                        });
                    }
                }
            }
            Ok(())
        });
    }
    out
}

/// The text of the `///` comments.
fn docs(attrs: &[Attribute]) -> Option<String> {
    let lines: Vec<String> = attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            syn::Meta::NameValue(nv) => match &nv.value {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s),
                    ..
                }) => Some(s.value().trim().to_owned()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    let text = lines.join("\n").trim().to_owned();
    (!text.is_empty()).then_some(text)
}

/// `name` as serde's `rename_all = rule` writes it (Rust field names are snake_case, variant
/// names PascalCase).
fn rename(name: &str, rule: Option<&str>, is_variant: bool) -> String {
    let name = name.trim_start_matches("r#");
    let words: Vec<String> = if is_variant {
        let mut words = Vec::new();
        let mut current = String::new();
        for c in name.chars() {
            if c.is_uppercase() && !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            current.extend(c.to_lowercase());
        }
        words.push(current);
        words
    } else {
        name.split('_').map(str::to_owned).collect()
    };
    let capitalized = |w: &String| {
        let mut c = w.chars();
        c.next()
            .map(|f| f.to_uppercase().chain(c).collect::<String>())
            .unwrap_or_default()
    };
    match rule {
        // As serde applies them: to a field, "lowercase" leaves the name as it is and
        // "UPPERCASE" only uppercases it.
        Some("lowercase") if !is_variant => name.to_owned(),
        Some("UPPERCASE") if !is_variant => name.to_uppercase(),
        Some("lowercase") => words.concat(),
        Some("UPPERCASE") => words.concat().to_uppercase(),
        Some("PascalCase") => words.iter().map(capitalized).collect(),
        Some("camelCase") => {
            let mut out = words.first().cloned().unwrap_or_default();
            out.extend(words.iter().skip(1).map(capitalized));
            out
        }
        Some("snake_case") => words.join("_"),
        Some("SCREAMING_SNAKE_CASE") => words.join("_").to_uppercase(),
        Some("kebab-case") => words.join("-"),
        Some("SCREAMING-KEBAB-CASE") => words.join("-").to_uppercase(),
        _ => name.to_owned(),
    }
}

/// "first_name" → "First Name", as pydantic titles a field.
fn title(name: &str) -> String {
    name.split(['_', '-'])
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn type_args(args: &PathArguments) -> Vec<&Type> {
    match args {
        PathArguments::AngleBracketed(a) => a
            .args
            .iter()
            .filter_map(|g| match g {
                GenericArgument::Type(t) => Some(t),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn is_option(ty: &Type) -> bool {
    matches!(ty, Type::Path(p) if p.path.segments.last().is_some_and(|s| s.ident == "Option"))
}

/// A schema for `ty`, read from its syntax.
fn type_schema(ty: &Type) -> Json {
    match ty {
        Type::Reference(r) => type_schema(&r.elem),
        Type::Paren(p) => type_schema(&p.elem),
        Type::Group(g) => type_schema(&g.elem),
        Type::Array(a) => array(type_schema(&a.elem)),
        Type::Slice(s) => array(type_schema(&s.elem)),
        Type::Tuple(t) if t.elems.is_empty() => Json::ty("null"),
        Type::Tuple(t) => Json::Obj(Json::obj(&[
            ("type", Json::Str("array".into())),
            (
                "prefixItems",
                Json::Arr(t.elems.iter().map(type_schema).collect()),
            ),
            ("minItems", Json::Int(t.elems.len())),
            ("maxItems", Json::Int(t.elems.len())),
        ])),
        Type::Path(p) => {
            let Some(last) = p.path.segments.last() else {
                return Json::any();
            };
            let args = type_args(&last.arguments);
            let arg = |i: usize| args.get(i).map_or_else(Json::any, |t| type_schema(t));
            match last.ident.to_string().as_str() {
                "String" | "str" | "char" | "PathBuf" | "Path" | "OsString" => Json::ty("string"),
                "bool" => Json::ty("boolean"),
                "i8" | "i16" | "i32" | "i64" | "i128" | "isize" | "u8" | "u16" | "u32" | "u64"
                | "u128" | "usize" | "NonZeroU32" | "NonZeroU64" | "NonZeroUsize" => {
                    Json::ty("integer")
                }
                "f32" | "f64" => Json::ty("number"),
                "Vec" | "VecDeque" | "LinkedList" | "BinaryHeap" => array(arg(0)),
                "HashSet" | "BTreeSet" | "IndexSet" => {
                    let mut set = array(arg(0));
                    if let Json::Obj(fields) = &mut set {
                        fields.push(("uniqueItems".into(), Json::Bool(true)));
                    }
                    set
                }
                "Option" => Json::Obj(vec![(
                    "anyOf".into(),
                    Json::Arr(vec![arg(0), Json::ty("null")]),
                )]),
                // `Cow<'a, str>` has the lifetime first and the type next; `arg` skips lifetimes.
                "Box" | "Arc" | "Rc" | "Cow" | "Cell" | "RefCell" | "Mutex" | "RwLock" => arg(0),
                "HashMap" | "BTreeMap" | "IndexMap" => Json::Obj(Json::obj(&[
                    ("type", Json::Str("object".into())),
                    ("additionalProperties", arg(1)),
                ])),
                "Map" => Json::ty("object"),
                _ => Json::any(),
            }
        }
        _ => Json::any(),
    }
}

fn array(items: Json) -> Json {
    Json::Obj(Json::obj(&[
        ("type", Json::Str("array".into())),
        ("items", items),
    ]))
}

/// The schema of `input`, titled `name`, as compact JSON text.
pub(crate) fn schema_text(input: &DeriveInput, name: &str) -> String {
    let container = serde_options(&input.attrs);
    let mut schema: Vec<(String, Json)> = Vec::new();
    if let Some(doc) = docs(&input.attrs) {
        schema.push(("description".into(), Json::Str(doc)));
    }
    if let (true, Data::Struct(s)) = (container.transparent, &input.data) {
        // The JSON is the one field's own.
        let field = s.fields.iter().find(|f| !serde_options(&f.attrs).skip);
        if let Some(Json::Obj(inner)) = field.map(|f| type_schema(&f.ty)) {
            schema.extend(inner);
        }
        schema.insert(0, ("title".into(), Json::Str(name.to_owned())));
        let mut out = String::new();
        Json::Obj(schema).write(&mut out);
        return out;
    }
    match &input.data {
        Data::Struct(s) => match &s.fields {
            Fields::Named(fields) => {
                let mut properties = Vec::new();
                let mut required = Vec::new();
                let mut open = false;
                for field in &fields.named {
                    let options = serde_options(&field.attrs);
                    if options.skip {
                        continue;
                    }
                    if options.flatten {
                        open = true;
                        continue;
                    }
                    let rust_name = field
                        .ident
                        .as_ref()
                        .map(|i| i.to_string().trim_start_matches("r#").to_owned())
                        .unwrap_or_default();
                    let key = options.rename.clone().unwrap_or_else(|| {
                        rename(&rust_name, container.rename_all.as_deref(), false)
                    });
                    let mut property = vec![("title".to_owned(), Json::Str(title(&key)))];
                    if let Json::Obj(described) = type_schema(&field.ty) {
                        property.extend(described);
                    }
                    if let Some(doc) = docs(&field.attrs) {
                        property.push(("description".into(), Json::Str(doc)));
                    }
                    if !is_option(&field.ty) && !options.default && !container.default {
                        required.push(Json::Str(key.clone()));
                    }
                    properties.push((key, Json::Obj(property)));
                }
                schema.push(("properties".into(), Json::Obj(properties)));
                if !required.is_empty() {
                    schema.push(("required".into(), Json::Arr(required)));
                }
                if open {
                    schema.push(("additionalProperties".into(), Json::Bool(true)));
                }
                schema.push(("type".into(), Json::Str("object".into())));
            }
            Fields::Unnamed(fields) if fields.unnamed.len() == 1 => {
                if let Json::Obj(inner) = type_schema(&fields.unnamed[0].ty) {
                    schema.extend(inner);
                }
            }
            Fields::Unnamed(fields) => {
                let items: Vec<Json> = fields.unnamed.iter().map(|f| type_schema(&f.ty)).collect();
                schema.push(("type".into(), Json::Str("array".into())));
                schema.push(("minItems".into(), Json::Int(items.len())));
                schema.push(("maxItems".into(), Json::Int(items.len())));
                schema.push(("prefixItems".into(), Json::Arr(items)));
            }
            Fields::Unit => {
                schema.push(("properties".into(), Json::Obj(Vec::new())));
                schema.push(("type".into(), Json::Str("object".into())));
            }
        },
        Data::Enum(e) if e.variants.iter().all(|v| matches!(v.fields, Fields::Unit)) => {
            let names = e
                .variants
                .iter()
                .filter(|v| !serde_options(&v.attrs).skip)
                .map(|v| {
                    let options = serde_options(&v.attrs);
                    Json::Str(options.rename.unwrap_or_else(|| {
                        rename(&v.ident.to_string(), container.rename_all.as_deref(), true)
                    }))
                })
                .collect();
            schema.push(("enum".into(), Json::Arr(names)));
            schema.push(("type".into(), Json::Str("string".into())));
        }
        _ => {}
    }
    schema.insert(0, ("title".into(), Json::Str(name.to_owned())));
    let mut out = String::new();
    Json::Obj(schema).write(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema_of(src: &str) -> String {
        let input: DeriveInput = syn::parse_str(src).unwrap();
        schema_text(&input, &input.ident.to_string())
    }

    #[test]
    fn fields_become_properties_with_types_titles_and_required() {
        assert_eq!(
            schema_of(
                "/// Who to greet.\n struct Greet { first_name: String, times: Option<u32>, #[serde(default)] tags: Vec<String>, scores: std::collections::HashMap<String, f64> }"
            ),
            r#"{"title":"Greet","description":"Who to greet.","properties":{"first_name":{"title":"First Name","type":"string"},"times":{"title":"Times","anyOf":[{"type":"integer"},{"type":"null"}]},"tags":{"title":"Tags","type":"array","items":{"type":"string"}},"scores":{"title":"Scores","type":"object","additionalProperties":{"type":"number"}}},"required":["first_name","scores"],"type":"object"}"#
        );
    }

    #[test]
    fn serde_options_change_names_and_requirements() {
        assert_eq!(
            schema_of(
                r#"#[serde(rename_all = "camelCase")] struct A { user_id: u64, #[serde(rename = "x")] y: bool, #[serde(skip)] hidden: u8, #[serde(flatten)] rest: Map<String, Value>, other: Custom }"#
            ),
            r#"{"title":"A","properties":{"userId":{"title":"UserId","type":"integer"},"x":{"title":"X","type":"boolean"},"other":{"title":"Other"}},"required":["userId","x","other"],"additionalProperties":true,"type":"object"}"#
        );
        assert_eq!(
            schema_of(r#"#[serde(rename_all = "snake_case")] enum Mood { VeryHappy, Sad }"#),
            r#"{"title":"Mood","enum":["very_happy","sad"],"type":"string"}"#
        );
        assert_eq!(
            schema_of("struct Empty {}"),
            r#"{"title":"Empty","properties":{},"type":"object"}"#
        );
        assert_eq!(
            schema_of(
                r#"#[serde(rename_all = "UPPERCASE")] struct B { user_id: u8, r#type: String }"#
            ),
            r#"{"title":"B","properties":{"USER_ID":{"title":"USER ID","type":"integer"},"TYPE":{"title":"TYPE","type":"string"}},"required":["USER_ID","TYPE"],"type":"object"}"#
        );
        assert_eq!(
            schema_of(r#"#[serde(rename_all = "lowercase")] struct C { user_id: u8 }"#),
            r#"{"title":"C","properties":{"user_id":{"title":"User Id","type":"integer"}},"required":["user_id"],"type":"object"}"#
        );
        assert_eq!(
            schema_of("enum Kw { r#Loop, Other }"),
            r#"{"title":"Kw","enum":["Loop","Other"],"type":"string"}"#
        );
        assert_eq!(
            schema_of("#[serde(transparent)] struct Id { inner: u64 }"),
            r#"{"title":"Id","type":"integer"}"#
        );
    }

    #[test]
    fn text_is_escaped() {
        let mut out = String::new();
        Json::Str("a \"b\"\n\\".into()).write(&mut out);
        assert_eq!(out, r#""a \"b\"\n\\""#);
    }
}
