//! Sparse fieldsets: `?fields=id,name,status` keeps only the named fields
//! of a read's answer. Dotted names select inside objects (`total.amount`)
//! and inside the objects of an array (`replies.author`); on a list the
//! selection applies to each item and the envelope (`total`, `page`,
//! `per_page`) stays.
//!
//! The names a route allows are read from its `200` schema in the OpenAPI
//! document, so they are what the route documents, never a second list.

use std::collections::{BTreeMap, BTreeSet};

use actix_web::dev::ResourceDef;
use serde_json::{Map, Value};

use actix_web::http::Method;

use crate::{error::FieldError, route_table::RouteSpec};

/// The query parameter.
pub const PARAMETER: &str = "fields";

/// The media type of an answer cut to `?fields=`: JSON whose members are
/// the route's, any of them left out. The document describes it with a
/// schema of its own (every `required` dropped below the list envelope), so
/// a cut answer is never checked against the whole answer's schema.
pub const PARTIAL_MEDIA_TYPE: &str = "application/vnd.gateway.partial+json";

/// How deep names go into nested objects; deeper members come whole with
/// the name above them.
const MAX_DEPTH: usize = 4;

/// The fields one route's answers can be cut to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fieldset {
    /// Every name a caller may ask for, dotted, in the schema's order.
    pub names: Vec<String>,
    /// Whether the answer is a page (`items` and its envelope).
    pub list: bool,
}

/// The document's schema for `schema`, following `$ref`s into `components`.
fn resolve<'a>(document: &'a Value, schema: &'a Value) -> &'a Value {
    let mut current = schema;
    for _ in 0..16 {
        match current.get("$ref").and_then(Value::as_str) {
            Some(reference) => {
                let name = reference.rsplit('/').next().unwrap_or_default();
                match document.pointer(&format!("/components/schemas/{name}")) {
                    Some(target) => current = target,
                    None => return current,
                }
            }
            None => return current,
        }
    }
    current
}

/// The properties of an object schema (through `allOf`, `oneOf` and
/// `anyOf`, as a nullable object is written), or of the items of an array.
fn properties<'a>(document: &'a Value, schema: &'a Value) -> Vec<(&'a str, &'a Value)> {
    let schema = resolve(document, schema);
    let mut found = Vec::new();
    if let Some(Value::Object(members)) = schema.get("properties") {
        found.extend(members.iter().map(|(k, v)| (k.as_str(), v)));
    }
    if let Some(items) = schema.get("items") {
        found.extend(properties(document, items));
    }
    for combinator in ["allOf", "oneOf", "anyOf"] {
        if let Some(Value::Array(parts)) = schema.get(combinator) {
            for part in parts {
                found.extend(properties(document, part));
            }
        }
    }
    found
}

fn collect(document: &Value, schema: &Value, prefix: &str, depth: usize, names: &mut Vec<String>) {
    for (name, member) in properties(document, schema) {
        let dotted = if prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{prefix}.{name}")
        };
        if names.contains(&dotted) {
            continue;
        }
        names.push(dotted.clone());
        if depth < MAX_DEPTH {
            collect(document, member, &dotted, depth.saturating_add(1), names);
        }
    }
}

/// The fieldset of an operation of `document`, from its `200` JSON schema;
/// `None` for one without an object answer.
pub fn of_operation(document: &Value, operation: &Value) -> Option<Fieldset> {
    let schema = operation.pointer("/responses/200/content/application~1json/schema")?;
    let root = resolve(document, schema);
    let top: BTreeSet<&str> = properties(document, root).iter().map(|(k, _)| *k).collect();
    // A page: numbered (`total`, `page`, `per_page`) or by cursor (`next_cursor`).
    let list = top.contains("items")
        && (["total", "page", "per_page"]
            .iter()
            .all(|k| top.contains(k))
            || top.contains("next_cursor"));
    let mut names = Vec::new();
    if list {
        let items = root.pointer("/properties/items")?;
        collect(document, items, "", 0, &mut names);
    } else {
        collect(document, root, "", 0, &mut names);
    }
    (!names.is_empty()).then_some(Fieldset { names, list })
}

/// Every read route of the API (a `GET` under `/v1/` answering JSON) and
/// its fieldset.
pub fn read_routes(
    document: &Value,
    routes: impl IntoIterator<Item = &'static RouteSpec>,
) -> Vec<(&'static RouteSpec, Fieldset)> {
    routes
        .into_iter()
        .filter(|route| route.method == Method::GET && route.path.starts_with("/v1/"))
        .filter_map(|route| {
            let path = route.path.replace('~', "~0").replace('/', "~1");
            let operation = document.pointer(&format!("/paths/{path}/get"))?;
            Some((route, of_operation(document, operation)?))
        })
        .collect()
}

/// The read routes, found by request path, with their fieldsets.
pub struct Fieldsets {
    routes: Vec<(ResourceDef, Fieldset)>,
}

impl Fieldsets {
    pub fn from_document(
        document: &Value,
        routes: impl IntoIterator<Item = &'static RouteSpec>,
    ) -> Self {
        Self {
            routes: read_routes(document, routes)
                .into_iter()
                .map(|(route, set)| (ResourceDef::new(route.path), set))
                .collect(),
        }
    }

    /// The fieldset of the read route serving `path`, if one does. The
    /// route table orders `/domains/availability` before `/domains/{id}`,
    /// as the server does.
    pub fn find(&self, path: &str) -> Option<&Fieldset> {
        self.routes
            .iter()
            .find(|(def, _)| def.is_match(path))
            .map(|(_, set)| set)
    }
}

/// A parsed `?fields=`: the names asked for, as a tree (`total.amount`
/// under `total`). An empty subtree keeps the member whole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection(BTreeMap<String, Selection>);

impl Selection {
    /// Reads `raw` (comma-separated names) against a route's fieldset.
    /// Every unknown name is named in one error, with the names allowed.
    pub fn parse(raw: &str, set: &Fieldset) -> Result<Self, FieldError> {
        if raw.trim().is_empty() {
            return Err(FieldError::parameter(
                PARAMETER,
                format!(
                    "names no field; name one or more of: {}",
                    set.names.join(", ")
                ),
            ));
        }
        let mut unknown = Vec::new();
        let mut repeated = Vec::new();
        let mut seen = BTreeSet::new();
        let mut tree = Selection::default();
        // The document says: an array of the route's names, each once
        // (`uniqueItems`), none empty; anything else is refused, not guessed at.
        for name in raw.split(',').map(str::trim) {
            if !seen.insert(name) {
                if !repeated.contains(&name) {
                    repeated.push(name);
                }
                continue;
            }
            if name.is_empty() || !set.names.iter().any(|n| n == name) {
                unknown.push(name);
                continue;
            }
            tree.insert(name);
        }
        let mut problems = Vec::new();
        if !unknown.is_empty() {
            let quoted: Vec<String> = unknown.iter().map(|n| format!("`{n}`")).collect();
            problems.push(format!(
                "names {} that this answer does not have",
                quoted.join(", ")
            ));
        }
        if !repeated.is_empty() {
            let quoted: Vec<String> = repeated.iter().map(|n| format!("`{n}`")).collect();
            problems.push(format!("names {} more than once", quoted.join(", ")));
        }
        if !problems.is_empty() {
            return Err(FieldError::parameter(
                PARAMETER,
                format!(
                    "{}; the fields are: {}",
                    problems.join(" and "),
                    set.names.join(", ")
                ),
            ));
        }
        Ok(tree)
    }

    fn insert(&mut self, dotted: &str) {
        let mut node = self;
        let mut keys = dotted.split('.').peekable();
        while let Some(key) = keys.next() {
            let whole = keys.peek().is_none();
            let child = node.0.entry(key.to_owned()).or_default();
            if whole {
                // `total` after (or before) `total.amount` keeps all of it.
                child.0.clear();
                child.0.insert(WHOLE.to_owned(), Selection::default());
                return;
            }
            if child.0.contains_key(WHOLE) {
                return;
            }
            node = child;
        }
    }

    /// `value` cut to this selection; a list keeps its envelope and cuts
    /// each item.
    pub fn apply(&self, value: Value, list: bool) -> Value {
        match (list, value) {
            (true, Value::Object(mut page)) => {
                if let Some(items) = page.remove("items") {
                    page.insert("items".to_owned(), self.cut(items));
                }
                Value::Object(page)
            }
            (_, value) => self.cut(value),
        }
    }

    fn cut(&self, value: Value) -> Value {
        if self.0.contains_key(WHOLE) || self.0.is_empty() {
            return value;
        }
        match value {
            Value::Object(members) => {
                let mut kept = Map::new();
                for (key, member) in members {
                    if let Some(sub) = self.0.get(&key) {
                        kept.insert(key, sub.cut(member));
                    }
                }
                Value::Object(kept)
            }
            Value::Array(items) => Value::Array(items.into_iter().map(|v| self.cut(v)).collect()),
            other => other,
        }
    }
}

/// A key no JSON member can clash with in a parsed name: names hold no `.`.
const WHOLE: &str = ".";

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn set(list: bool) -> Fieldset {
        Fieldset {
            names: [
                "id",
                "name",
                "status",
                "total",
                "total.amount",
                "total.currency",
                "replies",
                "replies.author",
            ]
            .map(str::to_owned)
            .to_vec(),
            list,
        }
    }

    fn item() -> Value {
        json!({"id": 1, "name": "a", "status": "x", "total": {"amount": "1.00", "currency": "SEK"},
               "replies": [{"author": "b", "text": "t"}, {"author": "c", "text": "u"}], "other": 2})
    }

    #[test]
    fn a_selection_keeps_the_named_fields_and_dotted_ones_inside() {
        let s = Selection::parse("id, total.amount,replies.author", &set(false)).unwrap();
        assert_eq!(
            s.apply(item(), false),
            json!({"id": 1, "total": {"amount": "1.00"}, "replies": [{"author": "b"}, {"author": "c"}]})
        );
        let whole = Selection::parse("total.amount,total", &set(false)).unwrap();
        assert_eq!(
            whole.apply(item(), false),
            json!({"total": {"amount": "1.00", "currency": "SEK"}})
        );
    }

    #[test]
    fn a_list_keeps_its_envelope_and_cuts_each_item() {
        let page = json!({"items": [item(), item()], "total": 2, "page": 1, "per_page": 25});
        let s = Selection::parse("name", &set(true)).unwrap();
        assert_eq!(
            s.apply(page, true),
            json!({"items": [{"name": "a"}, {"name": "a"}], "total": 2, "page": 1, "per_page": 25})
        );
    }

    #[test]
    fn unknown_and_empty_names_are_refused_with_the_allowed_ones() {
        let error = Selection::parse("id,nope,total.x,nope", &set(false)).unwrap_err();
        assert_eq!(error.parameter.as_deref(), Some("fields"));
        assert!(
            error.detail.starts_with("names `nope`, `total.x` that"),
            "{}",
            error.detail
        );
        assert!(
            error.detail.contains("`nope` more than once"),
            "{}",
            error.detail
        );
        assert!(error.detail.ends_with("replies, replies.author"));
        assert!(Selection::parse(",, ", &set(false)).is_err());
        // The document says each name once and none empty: so does the server.
        for bad in ["id,id", "id,", ",id", "id,,name", "id, id"] {
            assert!(Selection::parse(bad, &set(false)).is_err(), "{bad}");
        }
        let twice = Selection::parse("id,name,id", &set(false)).unwrap_err();
        assert!(
            twice.detail.starts_with("names `id` more than once"),
            "{}",
            twice.detail
        );
    }

    #[test]
    fn names_come_from_the_documented_schema() {
        let document = crate::openapi::document();
        let sets: BTreeMap<&str, Fieldset> = read_routes(&document, crate::routes::routes())
            .into_iter()
            .map(|(route, set)| (route.name, set))
            .collect();
        let invoices = &sets["list_invoices"];
        assert!(invoices.list);
        for name in ["id", "status", "total", "total.amount", "total.currency"] {
            assert!(
                invoices.names.iter().any(|n| n == name),
                "{name}: {invoices:?}"
            );
        }
        assert!(
            !invoices
                .names
                .iter()
                .any(|n| n == "items" || n == "per_page")
        );
        assert!(!sets["get_account"].list);
        // Every read route answering JSON (the event stream answers SSE).
        let reads = crate::routes::routes()
            .filter(|r| {
                r.method == Method::GET && r.path.starts_with("/v1/") && r.name != "stream_events"
            })
            .count();
        assert_eq!(sets.len(), reads, "every read route has a fieldset");
    }

    proptest! {
        /// Any text at all as `?fields=`: a selection or an error naming
        /// the parameter, never a panic; a selection only keeps members.
        #[test]
        fn any_fields_text_parses_or_is_refused(raw in ".{0,80}") {
            match Selection::parse(&raw, &set(false)) {
                Ok(selection) => {
                    let cut = selection.apply(item(), false);
                    let cut = cut.as_object().unwrap();
                    prop_assert!(cut.keys().all(|k| item().get(k).is_some()));
                }
                Err(error) => prop_assert_eq!(error.parameter.as_deref(), Some("fields")),
            }
        }
    }
}
