//! `/v1/account`: the Slitz client-area account (upstream `GET /details`).

use actix_web::{HttpRequest, HttpResponse, get, patch, web};
use chrono::{DateTime, FixedOffset, NaiveDate};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use std::sync::Arc;

use super::{AuthErrors, UpstreamErrors, parse_body, slitz_malformed};
use crate::{
    auth::{Caller, Scope},
    cache::{self, CacheKey, CacheStatus, Cached, ResponseCache, Route},
    domain::{
        AccountField, AccountType, BodyHints, Change, City, CompanyName, CountryCode, OrgNumber,
        PersonName, Phone, Present, Reference, Region, StreetAddress, VatNumber, Zipcode,
    },
    error::{ApiError, FieldError, Problem},
    normalize::{Money, NormalizeError},
    upstream::{
        UpstreamError,
        slitz::{ClientDetails, SlitzClient},
    },
};

/// The account behind the gateway's Slitz login.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "id": 20408,
    "email": "anna.lindqvist@example.se",
    "status": "active",
    "first_name": "Anna",
    "last_name": "Lindqvist",
    "company_name": "Lindqvist Konsult AB",
    "is_company": true,
    "address": "Storgatan 12",
    "address2": null,
    "city": "Uppsala",
    "state": "Uppsala län",
    "zipcode": "753 20",
    "country": "SE",
    "phone": "+46.701234567",
    "mobile_phone": null,
    "language": "swedish",
    "account_type": null,
    "eu_vat_number": null,
    "org_number": null,
    "reference": null,
    "credit": {"amount": "0.00", "currency": "SEK"},
    "parent_id": null,
    "created_on": "2015-03-16",
    "last_login_at": "2026-11-20T09:00:20+01:00",
    "last_login_ip": "10.10.10.100",
    "last_login_host": "unknown",
    "privileges": null
}))]
pub struct Account {
    /// Slitz client id.
    pub id: i64,
    pub email: Option<String>,
    /// `active`, `inactive`, `closed`, …; unknown values pass through in snake_case.
    pub status: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub company_name: Option<String>,
    /// Whether the account is a company rather than a person (upstream `company`).
    pub is_company: Option<bool>,
    /// First address line (upstream `address1`).
    pub address: Option<String>,
    /// Second address line (upstream `address2`).
    pub address2: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    /// Postal code (upstream `postcode`), named as on every route.
    pub zipcode: Option<String>,
    /// ISO 3166-1 alpha-2 country code.
    pub country: Option<String>,
    /// Phone number as stored upstream (upstream `phonenumber`).
    pub phone: Option<String>,
    /// Mobile number for SMS notices, with country prefix (upstream `mobilephone`).
    pub mobile_phone: Option<String>,
    pub language: Option<String>,
    /// Account type (upstream `type`).
    pub account_type: Option<String>,
    /// EU VAT registration number (upstream `vateu`).
    pub eu_vat_number: Option<String>,
    /// Organisation or personal identity number (upstream `orgpersonnr`).
    pub org_number: Option<String>,
    /// The customer's own reference for invoices (upstream `referens`).
    pub reference: Option<String>,
    /// Account credit, in the configured currency.
    pub credit: Option<Money>,
    /// The parent account's id, if this is a sub-account.
    pub parent_id: Option<i64>,
    /// When the account was created (upstream `datecreated`).
    pub created_on: Option<NaiveDate>,
    /// Last client-area login (upstream `lastlogin`), in the configured zone.
    #[serde(serialize_with = "crate::normalize::opt_rfc3339")]
    pub last_login_at: Option<DateTime<FixedOffset>>,
    /// Address of the last login (upstream `ip`).
    pub last_login_ip: Option<String>,
    /// Host name of the last login (upstream `host`).
    pub last_login_host: Option<String>,
    /// Client-area privileges of a contact; `null` for the main account.
    #[schema(value_type = Option<Object>)]
    pub privileges: Option<serde_json::Value>,
}

impl Account {
    pub fn from_slitz(c: ClientDetails, zone: Tz, currency: &str) -> Result<Self, NormalizeError> {
        Ok(Self {
            id: c.id.id("id")?,
            email: c.email.text(),
            status: c.status.status(),
            first_name: c.firstname.text(),
            last_name: c.lastname.text(),
            company_name: c.companyname.text(),
            is_company: c.company.flag("company")?,
            address: c.address1.text(),
            address2: c.address2.text(),
            city: c.city.text(),
            state: c.state.text(),
            zipcode: c.postcode.text(),
            country: c.country.text(),
            phone: c.phonenumber.text(),
            mobile_phone: c.mobilephone.text(),
            language: c.language.text(),
            account_type: c.account_type.text(),
            eu_vat_number: c.vateu.text(),
            org_number: c.orgpersonnr.text(),
            reference: c.referens.text(),
            credit: c.credit.money("credit", currency)?,
            parent_id: c.parent_id.opt_id("parent_id")?,
            created_on: c.datecreated.date("datecreated")?,
            last_login_at: c.lastlogin.datetime("lastlogin", zone)?,
            last_login_ip: c.ip.text(),
            last_login_host: c.host.text(),
            privileges: c.privileges.filter(|p| !p.is_null()),
        })
    }
}

/// The account
///
/// Registration details of the client-area account the gateway is
/// configured with: names, address, contact, credit and last login. Cached.
#[utoipa::path(
    tag = "account",
    responses(
        (status = 200, description = "The account.", body = Account),
        (status = 304, description = "Not modified since the ETag in If-None-Match."),
        AuthErrors,
        UpstreamErrors,
    ),
    security(("api_key" = ["read"]))
)]
#[get("/account")]
pub(crate) async fn get_account(
    req: HttpRequest,
    caller: Caller,
    slitz: web::Data<SlitzClient>,
    cache: web::Data<ResponseCache>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::Read)?;
    let (entry, status) = cached_account(&slitz, &cache).await?;
    Ok(cache::respond(&req, &entry, status))
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
    CacheKey::new(Route::Account, "")
}

async fn fetch_account(slitz: &SlitzClient) -> Result<Account, ApiError> {
    let details = slitz.details().await?;
    Account::from_slitz(details, slitz.zone(), slitz.currency()).map_err(slitz_malformed)
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

/// Change the account
///
/// Changes the named fields and answers with the account as Slitz then has it.
/// Only fields whose value differs are sent to Slitz; a request that changes
/// nothing makes no upstream write. `email` cannot be changed here: it is the
/// login the gateway uses.
#[utoipa::path(
    tag = "account",
    request_body(content = AccountChanges, content_type = "application/json"),
    responses(
        (status = 200, description = "The account after the change.", body = Account),
        (status = 400, description = "The body is not JSON.", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is larger than `server.max_body_bytes`.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not `application/json`.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is not valid or Slitz refused the change; `errors` names the fields. Nothing was changed.",
         body = Problem, content_type = "application/problem+json"),
        AuthErrors,
        UpstreamErrors,
    ),
    security(("api_key" = ["write"]))
)]
#[patch("/account")]
pub(crate) async fn patch_account(
    caller: Caller,
    body: web::Json<serde_json::Value>,
    slitz: web::Data<SlitzClient>,
    cache: web::Data<ResponseCache>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::Write)?;
    let changes: AccountChanges = parse_body(body.into_inner())?;
    let changes = changes.changes();
    if changes.is_empty() {
        return Err(ApiError::invalid_fields(vec![FieldError::new(
            "body",
            "names no field to change",
        )]));
    }
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
            errors: vec![FieldError::new("body", message)],
        },
        other => other.into(),
    })?;
    // The account and the invoices that embed it are now out of date.
    cache.invalidate(&account_key()).await;
    cache.invalidate_route(Route::Invoice);
    let (entry, _) = cache
        .get_or_load(account_key(), || fetch_account(&slitz))
        .await?;
    Ok(no_store(HttpResponse::Ok())
        .content_type("application/json")
        .body(entry.body.clone()))
}

fn no_store(mut builder: actix_web::HttpResponseBuilder) -> actix_web::HttpResponseBuilder {
    builder.insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"));
    builder
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_normalizes() {
        let raw = serde_json::json!({
            "id": "20408", "email": "email@example.com", "lastlogin": "2015-09-17 09:00:20",
            "ip": "10.10.10.100", "host": "unknown", "status": "Active", "parent_id": "0",
            "firstname": "John", "lastname": "Doe", "companyname": "Company name",
            "address1": "Addres 1", "address2": "Addres 2", "city": "City", "state": "Alabama",
            "postcode": "Post code", "country": "US", "phonenumber": "+01.222444111",
            "datecreated": "2015-03-16", "language": "english", "company": "1",
            "credit": "0.0000", "privileges": null
        });
        let details: ClientDetails = serde_json::from_value(raw).unwrap();
        let account = Account::from_slitz(details, chrono_tz::Europe::Stockholm, "SEK").unwrap();
        let json = serde_json::to_value(&account).unwrap();
        assert_eq!(json["id"], 20408);
        assert_eq!(json["first_name"], "John");
        assert_eq!(json["status"], "active");
        assert_eq!(json["is_company"], true);
        assert_eq!(json["zipcode"], "Post code");
        assert_eq!(
            json["credit"],
            serde_json::json!({"amount": "0.00", "currency": "SEK"})
        );
        assert_eq!(json["parent_id"], serde_json::Value::Null);
        assert_eq!(json["created_on"], "2015-03-16");
        assert_eq!(json["last_login_at"], "2015-09-17T09:00:20+02:00");
        assert_eq!(json["privileges"], serde_json::Value::Null);
        let utc = Account::from_slitz(
            serde_json::from_value(
                serde_json::json!({"id": "1", "lastlogin": "2015-09-17 09:00:20"}),
            )
            .unwrap(),
            Tz::UTC,
            "SEK",
        )
        .unwrap();
        assert_eq!(
            serde_json::to_value(&utc).unwrap()["last_login_at"],
            "2015-09-17T09:00:20+00:00"
        );
        assert!(json.get("firstname").is_none());
    }

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

    #[test]
    fn a_broken_id_is_an_error_naming_the_field() {
        let details: ClientDetails =
            serde_json::from_value(serde_json::json!({"id": "x"})).unwrap();
        let err = Account::from_slitz(details, Tz::UTC, "SEK").unwrap_err();
        assert_eq!(err.field, "id");
    }
}
