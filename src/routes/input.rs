//! Reading a request's body and query string into their parsed types,
//! reporting every field at fault in one answer.
//!
//! The types stay serde types whose fields parse themselves (`Email`,
//! `Optional<Zipcode>`, …): a valid request is one `Deserialize`, as
//! before. Only when it fails does [`accumulate`] look further: it notes
//! the error, takes the member at fault out of the input and deserializes
//! again, until what is left parses or only missing fields remain. serde's
//! derived `Deserialize` reads every member before it checks for missing
//! ones, so by then every member sent has been judged; the missing ones
//! come from the type's own schema (`required`), which utoipa derives from
//! the same struct. At most one retry per member sent, and only on the
//! error path.
//!
//! Rules across fields (a billing address needs its zip code) are checked
//! on the input as sent, so their errors come with the others.

use std::future::{Ready, ready};

use actix_web::{FromRequest, HttpRequest, dev::Payload};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use utoipa::{
    ToSchema,
    openapi::{RefOr, Schema},
};

use crate::{
    domain::BodyHints,
    error::{ApiError, FieldError, field_in_serde_message},
};

/// The query parameter the fieldset layer reads (`?fields=`); no route's
/// own query type sees it.
pub(crate) const FIELDS_PARAMETER: &str = "fields";

/// Where the input came from: it decides how a field is named in `errors`
/// (a JSON pointer for the body, a parameter name for the query) and the
/// status (422 for a body, 400 for a query string).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Body,
    Query,
}

impl Source {
    fn error(self, field: impl Into<String>, message: impl Into<String>) -> FieldError {
        match self {
            Self::Body => FieldError::body(field, message),
            Self::Query => FieldError::parameter(field, message),
        }
    }
}

/// Deserializes a JSON body into its parsed type. Every member that does
/// not parse, every required one missing, every unknown one and every rule
/// across fields broken is named in one 422, by its JSON pointer.
pub(crate) fn parse_body<T>(body: Value) -> Result<T, ApiError>
where
    T: DeserializeOwned + ToSchema + BodyHints,
{
    // serde would also read a struct from an array of its fields in order.
    let Value::Object(members) = body else {
        return Err(ApiError::invalid_fields(vec![FieldError::body(
            "body",
            "must be a JSON object",
        )]));
    };
    accumulate::<T>(members, &required_of::<T>(), Source::Body).map_err(ApiError::invalid_fields)
}

/// The members a body type requires, from its schema.
fn required_of<T: ToSchema>() -> Vec<String> {
    match T::schema() {
        RefOr::T(Schema::Object(object)) => object.required,
        _ => Vec::new(),
    }
}

/// A route's query string, read into its parsed type (every parameter
/// optional), with every parameter at fault named in one 400. `fields` is
/// left to the fieldset layer. A parameter given twice is refused rather
/// than one of its values picked.
pub(crate) struct Query<T>(pub T);

impl<T> std::ops::Deref for Query<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned + BodyHints> FromRequest for Query<T> {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(parse_query(req.query_string()).map(Query))
    }
}

pub(crate) fn parse_query<T: DeserializeOwned + BodyHints>(raw: &str) -> Result<T, ApiError> {
    let mut parameters = Map::new();
    let mut errors = Vec::new();
    for (name, value) in url::form_urlencoded::parse(raw.as_bytes()) {
        if name == FIELDS_PARAMETER {
            continue;
        }
        if parameters.contains_key(name.as_ref()) {
            if !errors.iter().any(|e: &FieldError| e.field == name) {
                errors.push(FieldError::parameter(
                    name.as_ref(),
                    "is given more than once",
                ));
            }
            continue;
        }
        parameters.insert(name.into_owned(), Value::String(value.into_owned()));
    }
    for error in &errors {
        parameters.remove(&error.field);
    }
    match accumulate::<T>(parameters, &[], Source::Query) {
        Ok(query) if errors.is_empty() => Ok(query),
        Ok(_) => Err(ApiError::bad_parameters(errors)),
        Err(more) => {
            errors.extend(more);
            Err(ApiError::bad_parameters(errors))
        }
    }
}

/// Deserializes `members` into `T`, or names every member at fault.
fn accumulate<T>(
    mut members: Map<String, Value>,
    required: &[String],
    source: Source,
) -> Result<T, Vec<FieldError>>
where
    T: DeserializeOwned + BodyHints,
{
    let mut errors: Vec<FieldError> = T::across_fields(&members)
        .into_iter()
        .map(|(field, message)| source.error(field, message))
        .collect();
    let named = |errors: &[FieldError], field: &str| errors.iter().any(|e| e.field == field);
    // One pass per member at most, plus the last; bounded whatever happens.
    for _ in 0..=members.len() {
        // The clone is kept for the next pass: only the error path retries.
        let error = match serde_path_to_error::deserialize::<_, T>(Value::Object(members.clone())) {
            Ok(value) if errors.is_empty() => return Ok(value),
            Ok(_) => return Err(errors),
            Err(error) => error,
        };
        let message = error.inner().to_string();
        let path = error.path().to_string();
        match field_in_serde_message(&message) {
            Some(_) if message.starts_with("unknown field") => {
                // The name as sent, even with a backtick in it.
                let Some(field) = members
                    .keys()
                    .filter(|k| message.starts_with(&format!("unknown field `{k}`")))
                    .max_by_key(|k| k.len())
                    .cloned()
                else {
                    errors.push(source.error("body", message));
                    return Err(errors);
                };
                let hint = T::unknown_field(&field).map_or_else(
                    || match source {
                        Source::Body => "is not a field of this body".to_owned(),
                        Source::Query => "is not a parameter of this route".to_owned(),
                    },
                    str::to_owned,
                );
                members.remove(&field);
                errors.push(source.error(field, hint));
            }
            Some(_) if message.starts_with("missing field") => {
                // Every member sent has been read: what is left is missing.
                for field in required {
                    if !members.contains_key(field) && !named(&errors, field) {
                        errors.push(source.error(field.as_str(), "is required"));
                    }
                }
                if errors.is_empty() {
                    errors.push(source.error("body", message));
                }
                return Err(errors);
            }
            _ => {
                let removed = remove_at(&mut members, &path);
                if !named(&errors, &path) {
                    let field = if removed { path } else { "body".to_owned() };
                    errors.push(source.error(field, message));
                }
                if !removed {
                    return Err(errors);
                }
            }
        }
    }
    Err(errors)
}

/// Takes the member at a serde path (`email`, `billing.zipcode`) out of
/// `members`; false if there is none.
fn remove_at(members: &mut Map<String, Value>, path: &str) -> bool {
    if path.is_empty() || path == "." {
        return false;
    }
    let mut keys = path.split('.').peekable();
    let mut map = members;
    while let Some(key) = keys.next() {
        if keys.peek().is_none() {
            return map.remove(key).is_some();
        }
        match map.get_mut(key) {
            Some(Value::Object(inner)) => map = inner,
            _ => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;
    use crate::domain::{Email, Optional, Zipcode};

    #[derive(Debug, Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Form {
        #[schema(inline)]
        email: Email,
        #[schema(inline)]
        zipcode: Zipcode,
        #[serde(default)]
        #[schema(inline)]
        other_zipcode: Optional<Zipcode>,
    }

    impl BodyHints for Form {}

    fn fields(body: Value) -> Vec<(Option<String>, String)> {
        match parse_body::<Form>(body) {
            Ok(_) => Vec::new(),
            Err(ApiError::Unprocessable { errors, .. }) => {
                errors.into_iter().map(|e| (e.pointer, e.detail)).collect()
            }
            Err(other) => panic!("{other:?}"),
        }
    }

    fn pointers(body: Value) -> Vec<String> {
        let mut found: Vec<String> = fields(body).into_iter().filter_map(|(p, _)| p).collect();
        found.sort();
        found
    }

    #[test]
    fn every_field_at_fault_is_named_once() {
        let body = serde_json::json!({"email": "nope", "zipcode": 5, "other_zipcode": "", "x": 1});
        assert_eq!(
            pointers(body),
            ["#/email", "#/other_zipcode", "#/x", "#/zipcode"]
        );
        assert_eq!(pointers(serde_json::json!({})), ["#/email", "#/zipcode"]);
        assert_eq!(
            pointers(serde_json::json!({"email": 1})),
            ["#/email", "#/zipcode"]
        );
        assert_eq!(
            pointers(serde_json::json!({"email": "a@example.com", "zipcode": "12345"})),
            Vec::<String>::new()
        );
        assert_eq!(pointers(serde_json::json!([1, 2])), ["#"]);
    }

    #[test]
    fn a_missing_field_says_it_is_required() {
        let found = fields(serde_json::json!({"email": "a@example.com"}));
        assert_eq!(
            found,
            [(Some("#/zipcode".to_owned()), "is required".to_owned())]
        );
    }

    #[test]
    fn pointers_escape_as_rfc_6901_says() {
        assert_eq!(
            FieldError::body("a/b~c", "x").pointer.as_deref(),
            Some("#/a~1b~0c")
        );
        assert_eq!(
            FieldError::body("billing.zipcode", "x").pointer.as_deref(),
            Some("#/billing/zipcode")
        );
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Params {
        zipcode: Option<Zipcode>,
        email: Option<Email>,
    }

    impl BodyHints for Params {}

    fn parameters(raw: &str) -> Vec<String> {
        match parse_query::<Params>(raw) {
            Ok(_) => Vec::new(),
            Err(ApiError::BadRequest { errors, .. }) => {
                let mut names: Vec<String> =
                    errors.into_iter().filter_map(|e| e.parameter).collect();
                names.sort();
                names
            }
            Err(other) => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_parameter_at_fault_is_named_once() {
        assert_eq!(
            parameters("zipcode=%21%21&email=y&z=1"),
            ["email", "z", "zipcode"]
        );
        assert_eq!(parameters("zipcode=12345&zipcode=12345"), ["zipcode"]);
        assert_eq!(parameters("zipcode=12345&fields=a,b"), Vec::<String>::new());
        assert_eq!(parameters("%FF%FE=%80"), ["\u{fffd}\u{fffd}"]);
    }
}
