//! `/v1/customers`: DNA residential customers (upstream `POST /residential/client`,
//! `/residential/client/{id}/activate`, `/suspend`). The DNA token is the
//! gateway's business; callers never see it.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::{BadRequest, UpstreamErrors, parse_body, parse_id};
use crate::{
    auth::Principal,
    context::{RequestScope, current_request_id},
    domain::{
        BillingDate, BodyHints, CustomerId, Email, Optional, PersonName, StreetAddress, Zipcode,
    },
    error::{ApiError, FieldError, Problem},
    events::{EventHub, EventType},
    idempotency::{IdempotencyStore, Stored},
    normalize::rfc3339,
    registry::{Intent, Operation, Outcome, Registry, RegistryError},
    upstream::{
        UpstreamError,
        dna::{DnaClient, DnaError, NewClient},
    },
};

/// A residential customer to create on DNA. The upstream flags
/// `same_billing_address` and `has_subreseller_id` are derived: leave out the
/// billing fields when billing goes to `address`, and `subreseller_id` when
/// there is no subreseller.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "start_billing_date": "2026-12-01", "customer_id": "CUST-2001", "email": "steve@example.com",
    "first_name": "Steve", "last_name": "Harris", "address": "126 Mendoza Avenue, apt 7A", "zipcode": "33134",
    "billing_address": "2121 Ponce de Leon", "billing_zipcode": "33308", "subreseller_id": "123"
}))]
pub struct NewCustomer {
    /// First day of billing, a real date `YYYY-MM-DD`.
    #[schema(inline)]
    start_billing_date: BillingDate,
    /// Your own id for the customer.
    #[schema(inline)]
    customer_id: CustomerId,
    /// Where DNA sends voicemail and notices.
    #[schema(inline)]
    email: Email,
    #[schema(inline)]
    first_name: PersonName,
    #[schema(inline)]
    last_name: PersonName,
    #[schema(inline)]
    address: StreetAddress,
    #[schema(inline)]
    zipcode: Zipcode,
    /// Billing address when it differs from `address`; requires `billing_zipcode`.
    /// Left out or `null`: billing goes to `address`.
    #[serde(default, skip_serializing_if = "Optional::is_absent")]
    #[schema(inline)]
    billing_address: Optional<StreetAddress>,
    /// Requires `billing_address`. Left out or `null`: none.
    #[serde(default, skip_serializing_if = "Optional::is_absent")]
    #[schema(inline)]
    billing_zipcode: Optional<Zipcode>,
    /// Your reseller's id, when the customer belongs to one. Left out or
    /// `null`: none.
    #[serde(default, skip_serializing_if = "Optional::is_absent")]
    #[schema(inline)]
    subreseller_id: Optional<CustomerId>,
}

impl BodyHints for NewCustomer {
    fn unknown_field(name: &str) -> Option<&'static str> {
        match name {
            "same_billing_address" => Some(
                "is derived: leave out billing_address and billing_zipcode when billing goes to address",
            ),
            "has_subreseller_id" => Some("is derived: send subreseller_id when there is one"),
            _ => Some("is not a field of a new customer"),
        }
    }

    fn across_fields(members: &Map<String, Value>) -> Vec<(&'static str, &'static str)> {
        // `null` is absent, as for the fields themselves.
        let sent = |name: &str| members.get(name).is_some_and(|v| !v.is_null());
        match (sent("billing_address"), sent("billing_zipcode")) {
            (true, false) => vec![("billing_zipcode", "is required with billing_address")],
            (false, true) => vec![("billing_address", "is required with billing_zipcode")],
            _ => Vec::new(),
        }
    }
}

impl NewCustomer {
    /// Parses a body: every field by its type and the billing pair, every
    /// fault named in one 422.
    fn parse(body: Value) -> Result<Self, ApiError> {
        parse_body(body)
    }
}

/// A customer DNA created.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": 6519, "ns_domain": "harris6519.res.nexogy.com", "status": "pending", "customer_id": "CUST-2001"}))]
pub struct Customer {
    /// DNA's id for the customer; the `{id}` of activate and suspend.
    pub id: i64,
    /// The customer's DNA domain; keep it with the id.
    pub ns_domain: String,
    /// `pending` until activated.
    pub status: &'static str,
    /// Your id, as sent.
    pub customer_id: String,
}

/// The outcome of an activate or suspend.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": 6519, "status": "active", "changed_at": "2026-11-23T18:30:10+00:00"}))]
pub struct StatusChange {
    pub id: i64,
    /// `active` or `suspended`.
    pub status: &'static str,
    /// When DNA made the change (its timestamp), RFC 3339.
    #[serde(serialize_with = "rfc3339")]
    pub changed_at: DateTime<FixedOffset>,
}

/// DNA's field names back to the gateway's.
fn gateway_field(dna_field: &str) -> &str {
    match dna_field {
        "same_billing_address" => "billing_address",
        "has_subreseller_id" => "subreseller_id",
        other => other,
    }
}

fn dna_error(error: DnaError) -> ApiError {
    match error {
        DnaError::Upstream(e) => e.into(),
        DnaError::Invalid(v)
            if !v.errors.is_empty()
                && v.errors
                    .iter()
                    .all(|(_, m)| m.contains("already been taken")) =>
        {
            let errors: Vec<FieldError> = v
                .errors
                .iter()
                .map(|(field, message)| FieldError::body(gateway_field(field), message.clone()))
                .collect();
            ApiError::Duplicate {
                detail: format!(
                    "dna already has a customer with this {}",
                    errors
                        .iter()
                        .map(|e| e.field.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                errors,
            }
        }
        DnaError::Invalid(v) => {
            let errors: Vec<FieldError> = v
                .errors
                .iter()
                .map(|(field, message)| FieldError::body(gateway_field(field), message.clone()))
                .collect();
            ApiError::Unprocessable {
                detail: format!("dna refused the data: {}", v.message),
                errors,
            }
        }
    }
}

/// Whether DNA provably did not act on the request, so a retry with the same
/// Idempotency-Key may send it again.
fn provably_unprocessed(error: &ApiError) -> bool {
    matches!(
        error,
        ApiError::Unprocessable { .. }
            | ApiError::Duplicate { .. }
            | ApiError::RegistryUnavailable(_)
            | ApiError::Upstream(
                UpstreamError::Unreachable { .. } | UpstreamError::CredentialsRejected { .. }
            )
    )
}

/// A write's intent could not be recorded: nothing was sent.
fn registry_error(error: RegistryError) -> ApiError {
    tracing::warn!(%error, "a DNA write was refused: its intent could not be recorded");
    ApiError::RegistryUnavailable(
        "the customer registry cannot record this write now, so nothing was sent to DNA; retry later"
            .to_owned(),
    )
}

/// How the registry records a failed write: `refused` when DNA provably
/// did not act on it (it refused, or was never reached), else `unknown`.
fn failed(error: &ApiError) -> Outcome {
    let (problem_type, status) = error.classify();
    let (status, problem_type) = (status.as_u16(), problem_type.uri());
    let refused = provably_unprocessed(error)
        || matches!(
            error,
            ApiError::Upstream(
                UpstreamError::NotFound { .. }
                    | UpstreamError::Rejected { .. }
                    | UpstreamError::Throttled { .. }
                    | UpstreamError::CircuitOpen { .. }
                    | UpstreamError::Busy { .. }
            )
        );
    if refused {
        Outcome::Refused {
            status,
            problem_type,
        }
    } else {
        Outcome::Unknown {
            status,
            problem_type,
        }
    }
}

crate::endpoint! {
    /// Create a customer
    ///
    /// Creates a residential customer on DNA. Every field is checked before DNA is
    /// called. Send an `Idempotency-Key` to make retries safe: the same key and
    /// body replay the first answer without calling DNA again; the same key with
    /// another body is a 422; while the first request with the key is still being
    /// processed, a 409. A request whose outcome at DNA is unknown (a timeout, a
    /// DNA failure) is never sent again: its answer is replayed for its key.
    #[route(post "/v1/customers", scopes = [Write], upstream = [Dna(Token), Dna(CreateClient)])]
    #[openapi(tag = "customers", params(("Idempotency-Key" = Option<String>, Header, pattern = r"^[!-~]{1,255}$",
            description = "Any unique string (a UUID): retries with the same key never create a second customer. Remembered for 24 hours.")), request_body(content = NewCustomer, content_type = "application/json"),)]
    #[responses((status = 201, description = "Created.", body = Customer, headers(
            ("Location" = String, description = "/v1/customers/{id}"),
            ("Idempotent-Replayed" = String, description = "`true` when this is the stored answer of an earlier request with the same key"),
        )), BadRequest, (status = 409, description = "DNA already has a customer with this `customer_id` (type `urn:gateway:problem:duplicate`), or a request with this Idempotency-Key is still being processed (type `urn:gateway:problem:idempotency-key-in-use`; retry after `Retry-After` seconds).",
         body = Problem, content_type = "application/problem+json",
         headers(("Retry-After" = String))), (status = 413, description = "The body is larger than `server.max_body_bytes`.", body = Problem, content_type = "application/problem+json"), (status = 415, description = "The body is not `application/json`.", body = Problem, content_type = "application/problem+json"), (status = 422, description = "A field is not valid (checked here or by DNA), or the Idempotency-Key was used with another body; `errors` names the fields.",
         body = Problem, content_type = "application/problem+json"), UpstreamErrors)]
    pub(crate) async fn create_customer(
        req: HttpRequest,
        caller: Principal,
        body: web::Json<Value>,
        dna: web::Data<DnaClient>,
        keys: web::Data<IdempotencyStore>,
        events: web::Data<EventHub>,
        registry: web::Data<Registry>,
    ) -> Result<HttpResponse, ApiError> {
        let customer = NewCustomer::parse(body.into_inner())?;
        let key = IdempotencyStore::key_of(req.headers())?;
        // The validated request, so `{"a":1,"b":2}` and `{"b":2,"a":1}` are one body.
        let fingerprint = serde_json::to_vec(&customer).unwrap_or_default();
        let intent = Intent {
            operation: Operation::Create,
            principal: caller.name.to_string(),
            request_id: current_request_id().unwrap_or_default(),
            idempotency_key: key.clone(),
            customer_ref: Some(customer.customer_id.as_str().to_owned()),
            dna_id: None,
            request: serde_json::to_value(&customer).unwrap_or(Value::Null),
        };
        let write = async move {
            // Before anything is sent; if it cannot be recorded, nothing is.
            let recorded = registry.intend(intent).await.map_err(registry_error)?;
            let start_billing_date = customer.start_billing_date.as_str();
            let created = dna
                .create_client(&NewClient {
                    start_billing_date: &start_billing_date,
                    customer_id: customer.customer_id.as_str(),
                    email: customer.email.as_str(),
                    first_name: customer.first_name.as_str(),
                    last_name: customer.last_name.as_str(),
                    address: customer.address.as_str(),
                    zipcode: customer.zipcode.as_str(),
                    billing: customer
                        .billing_address
                        .get()
                        .map(StreetAddress::as_str)
                        .zip(customer.billing_zipcode.get().map(Zipcode::as_str)),
                    subreseller_id: customer.subreseller_id.get().map(CustomerId::as_str),
                })
                .await
                .map_err(dna_error);
            let created = match created {
                Ok(created) => created,
                Err(error) => {
                    registry.settle(recorded, failed(&error), || {}).await;
                    return Err(error);
                }
            };
            let answer = Customer {
                id: created.id,
                ns_domain: created.ns_domain,
                status: "pending",
                customer_id: customer.customer_id.as_str().to_owned(),
            };
            let answer_value = serde_json::to_value(&answer).unwrap_or(Value::Null);
            // Published once the registry has it. Only a create that was
            // made: a replay of its key publishes nothing.
            let announce = {
                let fields = answer_value.as_object().cloned();
                let id = answer.id;
                move || {
                    if let Some(fields) = fields {
                        events.publish(EventType::CustomerCreated, id, fields);
                    }
                }
            };
            registry
                .settle(
                    recorded,
                    Outcome::Succeeded {
                        dna_id: answer.id,
                        answer: answer_value,
                    },
                    announce,
                )
                .await;
            let body = serde_json::to_string(&answer).map_err(|e| ApiError::Internal(e.into()))?;
            Ok(Stored::Created {
                body,
                location: format!("/v1/customers/{}", answer.id),
            })
        };
        keys.write_once(&caller.name, key, &fingerprint, write, provably_unprocessed)
            .await
    }
}

/// An activate or suspend: recorded, sent, settled. Detached from the
/// request (as a create is), so a caller hanging up cannot leave the
/// outcome unrecorded.
async fn change_status(
    id: &str,
    caller: &Principal,
    services: (
        web::Data<DnaClient>,
        web::Data<EventHub>,
        web::Data<Registry>,
    ),
    (operation, action, status, event): (Operation, &'static str, &'static str, EventType),
) -> Result<HttpResponse, ApiError> {
    let id = parse_id("id", id)?;
    let (dna, events, registry) = services;
    let intent = Intent {
        operation,
        principal: caller.name.to_string(),
        request_id: current_request_id().unwrap_or_default(),
        idempotency_key: None,
        customer_ref: None,
        dna_id: Some(id),
        request: serde_json::json!({}),
    };
    let write = async move {
        let recorded = registry.intend(intent).await.map_err(registry_error)?;
        let change = send_status(id, &dna, action, status).await;
        match &change {
            Ok(change) => {
                let answer = serde_json::to_value(change).unwrap_or(Value::Null);
                // Published once the registry has it.
                let announce = {
                    let fields = answer.as_object().cloned();
                    move || {
                        if let Some(mut fields) = fields {
                            fields.remove("id");
                            events.publish(event, id, fields);
                        }
                    }
                };
                let dna_id = id;
                registry
                    .settle(recorded, Outcome::Succeeded { dna_id, answer }, announce)
                    .await;
            }
            Err(error) => registry.settle(recorded, failed(error), || {}).await,
        }
        change
    };
    let task = tokio::spawn(RequestScope::current().run(write));
    match task.await {
        Ok(change) => Ok(HttpResponse::Ok().json(change?)),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(ApiError::Internal(anyhow::anyhow!(
            "the write task failed: {e}"
        ))),
    }
}

async fn send_status(
    id: i64,
    dna: &DnaClient,
    action: &str,
    status: &'static str,
) -> Result<StatusChange, ApiError> {
    let timestamp = dna.change_status(id, action).await.map_err(dna_error)?;
    let changed_at = Utc
        .timestamp_opt(timestamp, 0)
        .single()
        .ok_or_else(|| {
            ApiError::Upstream(UpstreamError::malformed(
                crate::upstream::Upstream::Dna,
                "timestamp out of range",
            ))
        })?
        .fixed_offset();
    Ok(StatusChange {
        id,
        status,
        changed_at,
    })
}

crate::endpoint! {
    /// Activate a customer
    ///
    /// Activates a DNA customer by DNA's id (the `id` of the create answer).
    #[route(post "/v1/customers/{id}/activate", scopes = [Write],
        upstream = [Dna(Token), Dna(ChangeStatus)], ok = (StatusChange, "Active."))]
    #[openapi(tag = "customers", params(("id" = i64, Path, minimum = 1, description = "DNA customer id.")),)]
    #[responses(BadRequest, (status = 404, description = "DNA has no such customer.", body = Problem, content_type = "application/problem+json"), UpstreamErrors)]
    pub(crate) async fn activate_customer(
        id: web::Path<String>,
        caller: Principal,
        dna: web::Data<DnaClient>,
        events: web::Data<EventHub>,
        registry: web::Data<Registry>,
    ) -> Result<HttpResponse, ApiError> {
        let change = (Operation::Activate, "activate", "active", EventType::CustomerActivated);
        change_status(&id, &caller, (dna, events, registry), change).await
    }
}

crate::endpoint! {
    /// Suspend a customer
    ///
    /// Suspends a DNA customer by DNA's id.
    #[route(post "/v1/customers/{id}/suspend", scopes = [Write],
        upstream = [Dna(Token), Dna(ChangeStatus)], ok = (StatusChange, "Suspended."))]
    #[openapi(tag = "customers", params(("id" = i64, Path, minimum = 1, description = "DNA customer id.")),)]
    #[responses(BadRequest, (status = 404, description = "DNA has no such customer.", body = Problem, content_type = "application/problem+json"), UpstreamErrors)]
    pub(crate) async fn suspend_customer(
        id: web::Path<String>,
        caller: Principal,
        dna: web::Data<DnaClient>,
        events: web::Data<EventHub>,
        registry: web::Data<Registry>,
    ) -> Result<HttpResponse, ApiError> {
        let change = (Operation::Suspend, "suspend", "suspended", EventType::CustomerSuspended);
        change_status(&id, &caller, (dna, events, registry), change).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Parse;

    fn valid() -> Value {
        serde_json::json!({
            "start_billing_date": "2026-12-01", "customer_id": "C-1", "email": "s@example.com",
            "first_name": "Steve", "last_name": "Harris", "address": "126 Mendoza", "zipcode": "33134"
        })
    }

    fn field(v: Value) -> String {
        match NewCustomer::parse(v) {
            Err(ApiError::Unprocessable { errors, .. }) => errors
                .into_iter()
                .map(|e| e.field)
                .collect::<Vec<_>>()
                .join(","),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_complete_body_parses() {
        let c = NewCustomer::parse(valid()).unwrap();
        assert_eq!(c.customer_id.as_str(), "C-1");
        let mut with_ids = valid();
        with_ids["customer_id"] = serde_json::json!(1234);
        assert_eq!(
            field(with_ids),
            "customer_id",
            "ids are strings, as documented"
        );
        let mut with_null = valid();
        with_null["subreseller_id"] = serde_json::Value::Null;
        let parsed = NewCustomer::parse(with_null).unwrap();
        assert!(parsed.subreseller_id.is_absent(), "null reads as absent");
    }

    #[test]
    fn each_bad_field_is_named() {
        for (name, value) in [
            ("start_billing_date", serde_json::json!("2026-02-30")),
            ("customer_id", serde_json::json!("has space")),
            ("email", serde_json::json!("nope")),
            ("first_name", serde_json::json!("")),
            ("zipcode", serde_json::json!("!!")),
            ("same_billing_address", serde_json::json!(true)),
            ("extra", serde_json::json!(1)),
        ] {
            let mut body = valid();
            body[name] = value;
            assert_eq!(field(body), name);
        }
        for missing in ["last_name", "address"] {
            let mut body = valid();
            body.as_object_mut().unwrap().remove(missing);
            assert_eq!(field(body), missing);
        }
        let mut half = valid();
        half["billing_address"] = serde_json::json!("x");
        assert_eq!(field(half), "billing_zipcode");
    }

    /// A value no field of a body takes: the wrong JSON type, a control
    /// character, or far too long; `null` and leaving out only where the
    /// field is required.
    fn invalid(which: usize, required: bool) -> Option<Value> {
        let choices = [
            Some(serde_json::json!(5)),
            Some(serde_json::json!(true)),
            Some(serde_json::json!([])),
            Some(serde_json::json!({"a": 1})),
            Some(serde_json::json!("a\u{7}b")),
            Some(Value::String("é".repeat(10_001))),
        ];
        let for_required = [Some(Value::Null), None];
        let count = choices.len() + if required { for_required.len() } else { 0 };
        let which = which % count;
        choices
            .get(which)
            .cloned()
            .unwrap_or_else(|| for_required[which - choices.len()].clone())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        /// For any subset of a new customer's fields made invalid (each in
        /// its own way), the 422 names exactly that subset, each by its
        /// JSON pointer: never one at a time, never another field.
        #[test]
        fn a_422_names_exactly_the_fields_made_invalid(
            mask in 0_u16..(1 << 10),
            ways in proptest::collection::vec(0_usize..8, 10),
            unknown in proptest::option::of("[a-z]{1,8}x"),
        ) {
            let fields = [
                ("start_billing_date", true), ("customer_id", true), ("email", true),
                ("first_name", true), ("last_name", true), ("address", true), ("zipcode", true),
                ("billing_address", false), ("billing_zipcode", false), ("subreseller_id", false),
            ];
            let mut body = valid();
            body["billing_address"] = serde_json::json!("2121 Ponce de Leon");
            body["billing_zipcode"] = serde_json::json!("33308");
            body["subreseller_id"] = serde_json::json!("R-1");
            let mut expected = std::collections::BTreeSet::new();
            for (i, (name, required)) in fields.iter().enumerate() {
                if mask & (1 << i) != 0 {
                    match invalid(ways[i], *required) {
                        Some(value) => body[*name] = value,
                        None => { body.as_object_mut().unwrap().remove(*name); }
                    }
                    expected.insert(format!("#/{name}"));
                }
            }
            if let Some(name) = &unknown {
                body[name.as_str()] = serde_json::json!(1);
                expected.insert(format!("#/{name}"));
            }
            match NewCustomer::parse(body) {
                Ok(_) => proptest::prop_assert!(expected.is_empty()),
                Err(ApiError::Unprocessable { errors, .. }) => {
                    let named: Vec<String> = errors.iter().filter_map(|e| e.pointer.clone()).collect();
                    let set: std::collections::BTreeSet<String> = named.iter().cloned().collect();
                    proptest::prop_assert_eq!(named.len(), set.len(), "named twice: {:?}", named);
                    proptest::prop_assert_eq!(set, expected);
                }
                Err(other) => proptest::prop_assert!(false, "{other:?}"),
            }
        }
    }

    #[test]
    fn a_billing_pair_half_sent_is_named_with_the_other_faults() {
        let mut body = valid();
        body["billing_address"] = serde_json::json!("2121 Ponce de Leon");
        body["email"] = serde_json::json!("nope");
        assert_eq!(field(body), "billing_zipcode,email");
        let mut body = valid();
        body["billing_zipcode"] = serde_json::json!("33308");
        body["billing_address"] = Value::Null;
        assert_eq!(field(body), "billing_address");
    }

    proptest::proptest! {
        /// Arbitrary text in any field of a new customer is a customer or a
        /// 422 naming that field: never a panic, never another field.
        #[test]
        fn any_text_in_any_field_parses_or_names_the_field(
            field in proptest::sample::select(vec![
                "start_billing_date", "customer_id", "email", "first_name", "last_name",
                "address", "zipcode", "subreseller_id", "same_billing_address",
            ]),
            value in proptest::prelude::any::<String>(),
        ) {
            let mut body = valid();
            body[field] = Value::String(value);
            if let Err(error) = NewCustomer::parse(body) {
                let ApiError::Unprocessable { errors, .. } = error else {
                    return Err(proptest::test_runner::TestCaseError::fail(format!("{error:?}")));
                };
                proptest::prop_assert_eq!(errors.len(), 1);
                proptest::prop_assert_eq!(errors[0].field.as_str(), field);
            }
        }
    }

    #[test]
    fn dna_field_names_map_back() {
        assert_eq!(gateway_field("same_billing_address"), "billing_address");
        assert_eq!(gateway_field("has_subreseller_id"), "subreseller_id");
        assert_eq!(gateway_field("email"), "email");
    }

    #[test]
    fn emails_are_checked() {
        for ok in ["a@b.se", "first.last+tag@sub.example.com"] {
            assert!(Email::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a", "a@b", "@b.se", "a b@c.se", "a@b..se", "a@-b.se\n"] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }
}
