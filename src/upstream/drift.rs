//! Upstream drift: an answer whose shape is not the documented one. Each
//! operation's documented answer lives in `documented/{dna,slitz}.json`, as
//! the upstream document shows it; every successful answer is compared with
//! it before it is read. A field the gateway does not know, a field it
//! expects but is missing, and a field whose JSON type changed are each
//! counted (`gateway_upstream_drift_total{upstream,operation,kind}`) and
//! warned about once per hour per (operation, field, kind). The answer is
//! still read as well as it can be: drift is a signal, not a failure.
//!
//! `null` is accepted for any field (both upstreams say "no value" that way),
//! and a field documented as `null` may hold any type.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{LazyLock, Mutex, PoisonError},
    time::{Duration, Instant},
};

use serde_json::{Map, Value};

use super::{Upstream, operation::ClientOperation};

/// How often one drift is warned about again.
const WARN_EVERY: Duration = Duration::from_secs(3600);

/// At most this many (operation, field, kind) are remembered per upstream;
/// past it, new ones are counted but not logged until old ones expire, so
/// an upstream sending ever-new field names cannot grow memory or flood logs.
const REMEMBERED: usize = 1024;

/// Path of a field inside an answer: `client.id`, `invoices[].total`.
pub type FieldPath = String;

/// What changed about one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, strum::IntoStaticStr)]
#[strum(serialize_all = "lowercase")]
pub enum Kind {
    /// A field the document does not show.
    Unknown,
    /// A field the document shows, absent.
    Missing,
    /// A field whose JSON type is not the documented one.
    Retyped,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// One difference between an answer and its documented shape.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    pub field: FieldPath,
    pub kind: Kind,
    /// For `Retyped`: the documented type and the one received.
    pub types: Option<(&'static str, &'static str)>,
}

/// A documented answer, read from its example: each value stands for its
/// JSON type, an array for arrays of its first element, `null` for any.
#[derive(Debug, Clone, PartialEq)]
enum Shape {
    Any,
    Scalar(&'static str),
    Array(Box<Shape>),
    Object(Vec<Field>),
}

#[derive(Debug, Clone, PartialEq)]
struct Field {
    name: String,
    optional: bool,
    shape: Shape,
}

impl Shape {
    fn of(example: &Value) -> Shape {
        match example {
            Value::Null => Shape::Any,
            Value::Array(items) => items
                .first()
                .map_or(Shape::Any, |first| Shape::Array(Box::new(Shape::of(first)))),
            Value::Object(map) => Shape::Object(
                map.iter()
                    .filter(|(name, _)| !name.starts_with("//"))
                    .map(|(name, value)| {
                        let (name, optional) = match name.strip_suffix('?') {
                            Some(bare) => (bare, true),
                            None => (name.as_str(), false),
                        };
                        Field {
                            name: name.to_owned(),
                            optional,
                            shape: Shape::of(value),
                        }
                    })
                    .collect(),
            ),
            scalar => Shape::Scalar(type_name(scalar)),
        }
    }

    /// Adds what `value` at `path` does differently from this shape.
    fn compare(&self, value: &Value, path: &str, findings: &mut BTreeSet<Finding>) {
        if value.is_null() {
            return;
        }
        match (self, value) {
            (Shape::Any, _) => {}
            (Shape::Scalar(documented), _) if *documented == type_name(value) => {}
            (Shape::Array(item), Value::Array(items)) => {
                let path = format!("{path}[]");
                for each in items {
                    item.compare(each, &path, findings);
                }
            }
            (Shape::Object(fields), Value::Object(map)) => {
                compare_fields(fields, map, path, findings)
            }
            (documented, _) => {
                findings.insert(Finding {
                    field: path.to_owned(),
                    kind: Kind::Retyped,
                    types: Some((documented.type_name(), type_name(value))),
                });
            }
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            Shape::Any => "any",
            Shape::Scalar(name) => name,
            Shape::Array(_) => "array",
            Shape::Object(_) => "object",
        }
    }
}

fn compare_fields(
    fields: &[Field],
    map: &Map<String, Value>,
    path: &str,
    findings: &mut BTreeSet<Finding>,
) {
    let child = |name: &str| {
        if path.is_empty() {
            name.to_owned()
        } else {
            format!("{path}.{name}")
        }
    };
    for field in fields {
        match map.get(&field.name) {
            Some(value) => field.shape.compare(value, &child(&field.name), findings),
            None if field.optional => {}
            None => {
                findings.insert(Finding {
                    field: child(&field.name),
                    kind: Kind::Missing,
                    types: None,
                });
            }
        }
    }
    for name in map.keys() {
        if !fields.iter().any(|f| &f.name == name) {
            findings.insert(Finding {
                field: child(name),
                kind: Kind::Unknown,
                types: None,
            });
        }
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The documented answers of one upstream, by operation.
type Documented = HashMap<String, Shape>;

fn documented(text: &str) -> Documented {
    match serde_json::from_str::<Map<String, Value>>(text) {
        Ok(map) => map
            .iter()
            .filter(|(operation, _)| !operation.starts_with("//"))
            .map(|(operation, example)| (operation.clone(), Shape::of(example)))
            .collect(),
        // Checked by a unit test; at run time, no shape means no check.
        Err(_) => Documented::new(),
    }
}

static DNA: LazyLock<Documented> =
    LazyLock::new(|| documented(include_str!("documented/dna.json")));
static SLITZ: LazyLock<Documented> =
    LazyLock::new(|| documented(include_str!("documented/slitz.json")));

type Seen<O> = HashMap<(O, FieldPath, Kind), Instant>;

fn documented_for(upstream: Upstream) -> &'static Documented {
    match upstream {
        Upstream::Dna => &DNA,
        Upstream::Slitz => &SLITZ,
    }
}

/// Compares the answers of one client's operations `O` with their
/// documented shapes, counts what differs and warns about it at most once
/// an hour.
pub struct Watch<O: ClientOperation> {
    documented: &'static Documented,
    warned: Mutex<Seen<O>>,
}

impl<O: ClientOperation> Default for Watch<O> {
    fn default() -> Self {
        Self {
            documented: documented_for(O::UPSTREAM),
            warned: Mutex::new(Seen::new()),
        }
    }
}

impl<O: ClientOperation> Watch<O> {
    /// Compares a successful answer of `operation` with its documented shape.
    pub fn check(&self, operation: O, answer: &Value) {
        let findings = self.differences(operation, answer);
        if findings.is_empty() {
            return;
        }
        for finding in &findings {
            metrics::counter!(
                "gateway_upstream_drift_total",
                "upstream" => O::UPSTREAM.as_str(),
                "operation" => operation.as_str(),
                "kind" => finding.kind.as_str(),
            )
            .increment(1);
        }
        for finding in self.to_warn(operation, findings, Instant::now()) {
            let (documented, received) = finding.types.unwrap_or(("", ""));
            tracing::warn!(
                upstream = O::UPSTREAM.as_str(),
                operation = operation.as_str(),
                field = %finding.field,
                kind = finding.kind.as_str(),
                documented,
                received,
                "an upstream answer differs from its documented shape; answered as well as possible (warned once an hour)"
            );
        }
    }

    fn differences(&self, operation: O, answer: &Value) -> BTreeSet<Finding> {
        let mut findings = BTreeSet::new();
        if let Some(shape) = self.documented.get(operation.as_str()) {
            shape.compare(answer, "", &mut findings);
        }
        findings
    }

    /// The findings not warned about within the hour before `now`, now
    /// remembered as warned.
    fn to_warn(&self, operation: O, findings: BTreeSet<Finding>, now: Instant) -> Vec<Finding> {
        let mut warned = self.warned.lock().unwrap_or_else(PoisonError::into_inner);
        let due = |at: &Instant| now.saturating_duration_since(*at) >= WARN_EVERY;
        if warned.len() >= REMEMBERED {
            warned.retain(|_, at| !due(at));
        }
        findings
            .into_iter()
            .filter(|finding| {
                let key = (operation, finding.field.clone(), finding.kind);
                let warn = match warned.get(&key) {
                    Some(at) => due(at),
                    None => warned.len() < REMEMBERED,
                };
                if warn {
                    warned.insert(key, now);
                }
                warn
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::checked::later;
    use crate::upstream::operation::{
        DnaOperation,
        SlitzOperation::{self, GetBalance, GetDetails, ListInvoices},
    };

    fn finding(field: &str, kind: Kind, types: Option<(&'static str, &'static str)>) -> Finding {
        Finding {
            field: field.to_owned(),
            kind,
            types,
        }
    }

    /// Each operation of each client has a documented answer (so its
    /// drift is checked), and nothing else is documented.
    fn documented_exactly<O: ClientOperation>() {
        let documented = documented_for(O::UPSTREAM);
        let operations: BTreeSet<&str> = O::VARIANTS.iter().map(|o| o.as_str()).collect();
        let known: BTreeSet<&str> = documented.keys().map(String::as_str).collect();
        assert_eq!(known, operations);
        assert!(documented.values().all(|s| matches!(s, Shape::Object(_))));
    }

    #[test]
    fn every_operation_is_documented() {
        documented_exactly::<SlitzOperation>();
        documented_exactly::<DnaOperation>();
        assert_eq!(DNA.len(), 3);
        assert_eq!(SLITZ.len(), 12);
    }

    #[test]
    fn an_answer_as_documented_has_no_drift() {
        let watch = Watch::<SlitzOperation>::default();
        let answer = json!({"details": {"acc_balance": "1.00", "acc_credit": "0.00"}});
        assert!(watch.differences(GetBalance, &answer).is_empty());
        // Nulls stand for "no value" anywhere; optional fields may be absent.
        let answer = json!({"invoices": [{"id": "1", "date": null, "duedate": "", "paybefore": "",
            "total": "1", "datepaid": "", "status": "", "merge_id": "7", "number": "", "currency": ""}]});
        assert!(watch.differences(ListInvoices, &answer).is_empty());
        assert!(watch.differences(ListInvoices, &json!({})).is_empty());
    }

    #[test]
    fn each_kind_of_drift_is_found_with_its_path() {
        let watch = Watch::<SlitzOperation>::default();
        let answer = json!({
            "invoices": [
                {"id": 1, "date": "", "duedate": "", "paybefore": "", "total": "1", "datepaid": "",
                 "status": "", "merge_id": null, "number": "", "currency": "", "vat": "25"},
                {"id": 2, "date": "", "duedate": "", "paybefore": "", "total": "1", "datepaid": "",
                 "status": "", "merge_id": null, "number": "", "vat": "25"}
            ],
            "page": 1
        });
        let found: Vec<Finding> = watch
            .differences(ListInvoices, &answer)
            .into_iter()
            .collect();
        assert_eq!(
            found,
            [
                finding("invoices[].currency", Kind::Missing, None),
                finding("invoices[].id", Kind::Retyped, Some(("string", "number"))),
                finding("invoices[].vat", Kind::Unknown, None),
                finding("page", Kind::Unknown, None),
            ]
        );
        let found = watch.differences(ListInvoices, &json!({"invoices": {"id": "1"}}));
        assert_eq!(
            found.into_iter().collect::<Vec<_>>(),
            [finding(
                "invoices",
                Kind::Retyped,
                Some(("array", "object"))
            )]
        );
    }

    #[test]
    fn dna_answers_are_checked_unwrapped() {
        let watch = Watch::<DnaOperation>::default();
        let token =
            json!({"token_type": "Bearer", "expires_in": 1200, "access_token": "a", "scope": ""});
        let found: Vec<Finding> = watch
            .differences(DnaOperation::Token, &token)
            .into_iter()
            .collect();
        assert_eq!(found, [finding("scope", Kind::Unknown, None)]);
    }

    #[test]
    fn one_drift_is_warned_about_once_an_hour() {
        let watch = Watch::<SlitzOperation>::default();
        let answer = json!({"details": {"acc_balance": 1, "acc_credit": "0.00"}});
        let found = || watch.differences(GetBalance, &answer);
        let t0 = Instant::now();
        assert_eq!(watch.to_warn(GetBalance, found(), t0).len(), 1);
        assert!(watch.to_warn(GetBalance, found(), t0).is_empty());
        let almost = later(t0, Duration::from_secs(3599));
        assert!(watch.to_warn(GetBalance, found(), almost).is_empty());
        // Another operation with the same field is another drift.
        assert_eq!(watch.to_warn(GetDetails, found(), almost).len(), 1);
        let hour = later(t0, WARN_EVERY);
        assert_eq!(watch.to_warn(GetBalance, found(), hour).len(), 1);
    }

    #[test]
    fn ever_new_field_names_are_not_all_remembered() {
        let watch = Watch::<SlitzOperation>::default();
        let now = Instant::now();
        let mut warned: usize = 0;
        for i in 0..REMEMBERED.saturating_mul(2) {
            let answer =
                json!({"details": {"acc_balance": "1", "acc_credit": "0", format!("f{i}"): 1}});
            let found = watch.differences(GetBalance, &answer);
            warned = warned.saturating_add(watch.to_warn(GetBalance, found, now).len());
        }
        assert_eq!(warned, REMEMBERED);
        // An hour on, the old ones make room.
        let found = watch.differences(
            GetBalance,
            &json!({"details": {"acc_balance": "1", "acc_credit": "0", "new": 1}}),
        );
        assert_eq!(
            watch
                .to_warn(GetBalance, found, later(now, WARN_EVERY))
                .len(),
            1
        );
    }

    fn arbitrary_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<String>().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::btree_map(any::<String>(), inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Every value in an answer, and every field in a shape: a finding is
    /// about one of them.
    fn values(v: &Value) -> usize {
        match v {
            Value::Array(items) => items.iter().map(values).sum::<usize>().saturating_add(1),
            Value::Object(map) => map.values().map(values).sum::<usize>().saturating_add(1),
            _ => 1,
        }
    }

    fn fields(shape: &Shape) -> usize {
        match shape {
            Shape::Array(item) => fields(item),
            Shape::Object(fs) => fs.iter().map(|f| fields(&f.shape).saturating_add(1)).sum(),
            _ => 1,
        }
    }

    fn compared<O: ClientOperation>(answer: &Value) -> Result<(), TestCaseError> {
        let watch = Watch::<O>::default();
        for &operation in O::VARIANTS {
            let shape = &watch.documented[operation.as_str()];
            let found = watch.differences(operation, answer);
            prop_assert!(found.len() <= values(answer).saturating_add(fields(shape)));
            let wrapped = Value::Object(Map::from_iter([("x".to_owned(), answer.clone())]));
            watch.differences(operation, &wrapped);
        }
        Ok(())
    }

    proptest! {
        /// Any answer at all, with arbitrary Unicode field names, is compared
        /// without a panic, and finds at most one thing per value received
        /// or field documented.
        #[test]
        fn any_answer_is_compared_without_panicking(answer in arbitrary_json()) {
            compared::<SlitzOperation>(&answer)?;
            compared::<DnaOperation>(&answer)?;
        }
    }
}
