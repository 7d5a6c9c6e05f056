//! `/v1/account`: the Slitz client-area account (upstream `GET /details`).

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use utoipa::ToSchema;

use std::sync::Arc;

use super::{UpstreamErrors, parse_body};
use crate::{
    cache::{self, CacheKey, CacheStatus, Cached, ResponseCache},
    domain::{
        AccountField, AccountType, BodyHints, Change, City, CompanyName, CountryCode, OrgNumber,
        PersonName, Phone, Present, Reference, Region, StreetAddress, VatNumber, Zipcode,
    },
    error::{ApiError, FieldError, Problem},
    events::{EventHub, EventType, changed_members},
    model::Account,
    upstream::{UpstreamError, slitz::SlitzClient},
};

crate::endpoint! {
    /// The account
    ///
    /// Registration details of the client-area account the gateway is
    /// configured with: names, address, contact, credit and last login. Cached.
    #[route(get "/v1/account", scopes = [Read], cached = Account, upstream = [Slitz(GetDetails)], ok = (Account, "The account."))]
    #[openapi(tag = "account",)]
    #[responses(UpstreamErrors)]
    pub(crate) async fn get_account(
        slitz: web::Data<SlitzClient>,
        cache: web::Data<ResponseCache>,
    ) -> Result<HttpResponse, ApiError> {
        let (entry, status) = cached_account(&slitz, &cache).await?;
        Ok(cache::respond(&entry, status))
    }
}

/// The account, through the cache.
pub(crate) async fn cached_account(
    slitz: &SlitzClient,
    cache: &ResponseCache,
) -> Result<(Arc<Cached>, CacheStatus), ApiError> {
    cache
        .get_or_load(account_key(), || fetch_account(slitz))
        .await
}

fn account_key() -> CacheKey {
    CacheKey::new(get_account::CACHE, "")
}

async fn fetch_account(slitz: &SlitzClient) -> Result<Account, ApiError> {
    Ok(slitz.details().await?)
}

/// Fields `PATCH /v1/account` may change; send only those to change (at least
/// one). Required fields cannot be cleared; `""` or `null` clears an optional
/// one. Free text is trimmed of surrounding spaces; control characters are refused.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"city": "Lund", "zipcode": "222 20", "mobile_phone": "+46701112233"}))]
pub struct AccountChanges {
    #[serde(default)]
    #[schema(inline)]
    first_name: Present<PersonName>,
    #[serde(default)]
    #[schema(inline)]
    last_name: Present<PersonName>,
    /// Optional.
    #[serde(default)]
    #[schema(inline)]
    company_name: Change<CompanyName>,
    #[serde(default)]
    #[schema(inline)]
    address: Present<StreetAddress>,
    /// Optional.
    #[serde(default)]
    #[schema(inline)]
    address2: Change<StreetAddress>,
    #[serde(default)]
    #[schema(inline)]
    city: Present<City>,
    /// Optional.
    #[serde(default)]
    #[schema(inline)]
    state: Change<Region>,
    #[serde(default)]
    #[schema(inline)]
    zipcode: Present<Zipcode>,
    /// ISO 3166-1 alpha-2, upper case.
    #[serde(default)]
    #[schema(inline)]
    country: Present<CountryCode>,
    /// With its country prefix, e.g. `+46.701234567` or `+46 70 123 45 67` (7 to 15 digits).
    #[serde(default)]
    #[schema(inline)]
    phone: Present<Phone>,
    /// Optional; with its country prefix, for SMS notices.
    #[serde(default)]
    #[schema(inline)]
    mobile_phone: Change<Phone>,
    /// Optional.
    #[serde(default)]
    #[schema(inline)]
    account_type: Change<AccountType>,
    /// Optional; EU VAT number, e.g. `SE556677889901`.
    #[serde(default)]
    #[schema(inline)]
    eu_vat_number: Change<VatNumber>,
    /// Optional; organisation or personal identity number.
    #[serde(default)]
    #[schema(inline)]
    org_number: Change<OrgNumber>,
    /// Optional; your reference on invoices.
    #[serde(default)]
    #[schema(inline)]
    reference: Change<Reference>,
}

impl BodyHints for AccountChanges {
    fn unknown_field(name: &str) -> Option<&'static str> {
        (name == "email").then_some(
            "cannot be changed through the gateway: it is the Slitz login the gateway \
             authenticates with (slitz.username); change it in the client area and update the configuration",
        )
    }
}

impl AccountChanges {
    /// Every field the request names, with its new value (`None` clears it).
    fn changes(&self) -> Vec<(AccountField, Option<&str>)> {
        fn set<T>(
            field: AccountField,
            value: &Present<T>,
            text: fn(&T) -> &str,
        ) -> Option<(AccountField, Option<&str>)> {
            value.get().map(|v| (field, Some(text(v))))
        }
        fn change<T>(
            field: AccountField,
            value: &Change<T>,
            text: fn(&T) -> &str,
        ) -> Option<(AccountField, Option<&str>)> {
            match value {
                Change::Keep => None,
                Change::Clear => Some((field, None)),
                Change::Set(v) => Some((field, Some(text(v)))),
            }
        }
        use AccountField as F;
        [
            set(F::FirstName, &self.first_name, PersonName::as_str),
            set(F::LastName, &self.last_name, PersonName::as_str),
            change(F::CompanyName, &self.company_name, CompanyName::as_str),
            set(F::Address, &self.address, StreetAddress::as_str),
            change(F::Address2, &self.address2, StreetAddress::as_str),
            set(F::City, &self.city, City::as_str),
            change(F::State, &self.state, Region::as_str),
            set(F::Zipcode, &self.zipcode, Zipcode::as_str),
            set(F::Country, &self.country, CountryCode::as_str),
            set(F::Phone, &self.phone, Phone::as_str),
            change(F::MobilePhone, &self.mobile_phone, Phone::as_str),
            change(F::AccountType, &self.account_type, AccountType::as_str),
            change(F::EuVatNumber, &self.eu_vat_number, VatNumber::as_str),
            change(F::OrgNumber, &self.org_number, OrgNumber::as_str),
            change(F::Reference, &self.reference, Reference::as_str),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

/// The account's value of a field the gateway can change.
fn current(account: &Account, field: AccountField) -> Option<&str> {
    use AccountField as F;
    match field {
        F::FirstName => account.first_name.as_deref(),
        F::LastName => account.last_name.as_deref(),
        F::CompanyName => account.company_name.as_deref(),
        F::Address => account.address.as_deref(),
        F::Address2 => account.address2.as_deref(),
        F::City => account.city.as_deref(),
        F::State => account.state.as_deref(),
        F::Zipcode => account.zipcode.as_deref(),
        F::Country => account.country.as_deref(),
        F::Phone => account.phone.as_deref(),
        F::MobilePhone => account.mobile_phone.as_deref(),
        F::AccountType => account.account_type.as_deref(),
        F::EuVatNumber => account.eu_vat_number.as_deref(),
        F::OrgNumber => account.org_number.as_deref(),
        F::Reference => account.reference.as_deref(),
    }
}

crate::endpoint! {
    /// Change the account
    ///
    /// Changes the named fields and answers with the account as Slitz then has it.
    /// Only fields whose value differs are sent to Slitz; a request that changes
    /// nothing makes no upstream write. `email` cannot be changed here: it is the
    /// login the gateway uses.
    #[route(patch "/v1/account", scopes = [Write], upstream = [Slitz(GetDetails), Slitz(PostDetails)],
        // The account, and the invoices that embed it.
        invalidates = [Account, Invoice], ok = (Account, "The account after the change."))]
    #[openapi(tag = "account", request_body(content = AccountChanges, content_type = "application/json"),)]
    #[responses((status = 400, description = "The body is not JSON.", body = Problem, content_type = "application/problem+json"), (status = 413, description = "The body is larger than `server.max_body_bytes`.", body = Problem, content_type = "application/problem+json"), (status = 415, description = "The body is not `application/json`.", body = Problem, content_type = "application/problem+json"), (status = 422, description = "A field is not valid or Slitz refused the change; `errors` names the fields. Nothing was changed.",
         body = Problem, content_type = "application/problem+json"), (status = 502, description = "Slitz failed, sent an unreadable answer, or rejected the gateway's own credentials (`upstream` names it).",
         body = Problem, content_type = "application/problem+json"), (status = 503, description = "Slitz cannot be reached; or, with `[redis]`, the gateway cannot reach Redis to tell the other instances about the change (type `urn:gateway:problem:shared-state-unavailable`): nothing was sent, retry after `Retry-After` seconds.",
         body = Problem, content_type = "application/problem+json"), (status = 504, description = "Slitz did not answer within the configured timeout.",
         body = Problem, content_type = "application/problem+json"))]
    pub(crate) async fn patch_account(
        body: web::Json<serde_json::Value>,
        slitz: web::Data<SlitzClient>,
        cache: web::Data<ResponseCache>,
        events: web::Data<EventHub>,
    ) -> Result<HttpResponse, ApiError> {
        let changes: AccountChanges = parse_body(body.into_inner())?;
        let changes = changes.changes();
        if changes.is_empty() {
            return Err(ApiError::invalid_fields(vec![FieldError::body(
                "body",
                "names no field to change",
            )]));
        }
        // With Redis, a change every instance cannot be told about is not made.
        cache.before_write().await?;
        // Compare with what Slitz has now, not with the cache, so nothing that
        // changed elsewhere is overwritten by accident and nothing unchanged is sent.
        let current_account = fetch_account(&slitz).await?;
        let changed: Vec<(AccountField, &str)> = changes
            .into_iter()
            .filter(|(field, value)| current(&current_account, *field) != *value)
            .map(|(field, value)| (field, value.unwrap_or_default()))
            .collect();
        if changed.is_empty() {
            return Ok(no_store(HttpResponse::Ok()).json(current_account));
        }
        slitz.update_details(&changed).await.map_err(|e| match e {
            UpstreamError::Rejected { message, .. } => ApiError::Unprocessable {
                detail: format!("slitz refused the change: {message}"),
                errors: vec![FieldError::body("body", message)],
            },
            other => other.into(),
        })?;
        // The account and the invoices that embed it are now out of date, here
        // and on every other instance, before this answers.
        cache
            .after_write(ENDPOINT.spec.invalidates)
            .await;
        let (entry, _) = cache
            .get_or_load(account_key(), || fetch_account(&slitz))
            .await?;
        publish_changes(&events, &current_account, &entry.body);
        Ok(no_store(HttpResponse::Ok())
            .content_type("application/json")
            .body(entry.body.clone()))
    }
}

/// `account.updated`: each member of the account that differs from before
/// the write, with its value as the account now reads (normalized, as
/// `GET /v1/account` answers it).
fn publish_changes(events: &EventHub, before: &Account, after: &[u8]) {
    let (Ok(serde_json::Value::Object(before)), Ok(serde_json::Value::Object(after))) = (
        serde_json::to_value(before),
        serde_json::from_slice::<serde_json::Value>(after),
    ) else {
        return;
    };
    let id = after
        .get("id")
        .and_then(serde_json::Value::as_i64)
        .unwrap_or_default();
    let changed = changed_members(&before, &after);
    if !changed.is_empty() {
        events.publish(EventType::AccountUpdated, id, changed);
    }
}

fn no_store(mut builder: actix_web::HttpResponseBuilder) -> actix_web::HttpResponseBuilder {
    builder.insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"));
    builder
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn changes(json: serde_json::Value) -> Result<Vec<(AccountField, Option<String>)>, String> {
        match parse_body::<AccountChanges>(json) {
            Ok(c) => Ok(c
                .changes()
                .into_iter()
                .map(|(f, v)| (f, v.map(str::to_owned)))
                .collect()),
            Err(ApiError::Unprocessable { errors, .. }) => Err(errors
                .into_iter()
                .map(|e| e.field)
                .collect::<Vec<_>>()
                .join(",")),
            Err(other) => panic!("{other:?}"),
        }
    }

    #[test]
    fn valid_changes_pass_and_blank_optional_fields_clear() {
        let ok = changes(serde_json::json!({
            "city": " Lund ", "country": "SE", "phone": "+46.701234567", "mobile_phone": "+46 (0)70-111 22 33",
            "eu_vat_number": "SE556677889901", "address2": "", "state": null, "reference": "  "
        }))
        .unwrap();
        assert!(ok.contains(&(AccountField::City, Some("Lund".into()))));
        assert!(ok.contains(&(AccountField::Address2, None)));
        assert!(ok.contains(&(AccountField::State, None)));
        assert!(ok.contains(&(AccountField::Reference, None)));
        assert_eq!(ok.len(), 8);
    }

    #[test]
    fn each_bad_field_is_named() {
        for (field, value) in [
            ("country", serde_json::json!("Sweden")),
            ("phone", serde_json::json!("0701234567")),
            ("city", serde_json::json!("")),
            ("city", serde_json::json!(null)),
            ("first_name", serde_json::json!(5)),
            ("email", serde_json::json!("new@example.se")),
            ("nickname", serde_json::json!("x")),
            ("last_name", serde_json::json!("a\u{0}b")),
            ("reference", serde_json::json!("r".repeat(101))),
            ("eu_vat_number", serde_json::json!("12")),
            ("eu_vat_number", serde_json::json!("tº²R")),
        ] {
            let body = serde_json::json!({ field: value });
            assert_eq!(changes(body).unwrap_err(), field, "{field}: {value}");
        }
        assert_eq!(changes(serde_json::json!([])).unwrap_err(), "body");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        /// For any subset of the account's fields made invalid, the 422
        /// names exactly that subset, each by its JSON pointer.
        #[test]
        fn a_422_names_exactly_the_fields_made_invalid(
            mask in 1_u16..(1 << 15),
            ways in proptest::collection::vec(0_usize..5, 15),
        ) {
            let fields = [
                "first_name", "last_name", "company_name", "address", "address2", "city",
                "state", "zipcode", "country", "phone", "mobile_phone", "account_type",
                "eu_vat_number", "org_number", "reference",
            ];
            let bad = [
                serde_json::json!(5),
                serde_json::json!(false),
                serde_json::json!(["x"]),
                serde_json::json!("a\u{0}b"),
                Value::String("é".repeat(10_001)),
            ];
            let mut body = serde_json::json!({"city": "Lund"});
            let mut expected = std::collections::BTreeSet::new();
            for (i, name) in fields.iter().enumerate() {
                if mask & (1 << i) != 0 {
                    body[*name] = bad[ways[i]].clone();
                    expected.insert(format!("#/{name}"));
                }
            }
            match parse_body::<AccountChanges>(body) {
                Err(ApiError::Unprocessable { errors, .. }) => {
                    let named: Vec<String> = errors.iter().filter_map(|e| e.pointer.clone()).collect();
                    let set: std::collections::BTreeSet<String> = named.iter().cloned().collect();
                    proptest::prop_assert_eq!(named.len(), set.len(), "named twice: {:?}", named);
                    proptest::prop_assert_eq!(set, expected);
                }
                other => proptest::prop_assert!(false, "{other:?}"),
            }
        }
    }

    proptest::proptest! {
        /// Whatever text a caller puts in whichever field, the answer is a
        /// parsed change or a 422 naming that very field: never a panic.
        #[test]
        fn any_text_in_any_field_parses_or_names_the_field(
            field in proptest::sample::select(vec![
                "first_name", "last_name", "company_name", "address", "address2", "city",
                "state", "zipcode", "country", "phone", "mobile_phone", "account_type",
                "eu_vat_number", "org_number", "reference", "email", "nickname",
            ]),
            value in proptest::prelude::any::<String>(),
        ) {
            match changes(serde_json::json!({ field: value })) {
                Ok(changed) => proptest::prop_assert_eq!(changed.len(), 1),
                Err(named) => proptest::prop_assert_eq!(named, field),
            }
        }
    }

    /// The country list is written twice (the schema attribute needs a
    /// literal); this keeps the documented pattern and the check in step.
    #[test]
    fn the_documented_country_pattern_is_the_checked_list() {
        let doc = crate::openapi::document();
        let pattern =
            doc["components"]["schemas"]["AccountChanges"]["properties"]["country"]["pattern"]
                .as_str()
                .unwrap()
                .to_owned();
        let expected = format!(
            "^(?:{})$",
            crate::domain::ISO_3166_ALPHA2
                .split(' ')
                .collect::<Vec<_>>()
                .join("|")
        );
        assert_eq!(pattern, expected);
    }
}
