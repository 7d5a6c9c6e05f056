//! `/v1/account`: the Slitz client-area account (upstream `GET /details`).

use actix_web::{HttpRequest, HttpResponse, get, patch, web};
use chrono::{DateTime, FixedOffset, NaiveDate};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use std::sync::Arc;

use super::{AuthErrors, UpstreamErrors, slitz_malformed, text_problem};
use crate::{
    auth::{Caller, Scope},
    cache::{self, CacheKey, CacheStatus, Cached, ResponseCache, Route},
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
/// one). Required fields cannot be blank; `""` or `null` clears an optional one.
/// Text is trimmed of surrounding spaces; control characters are refused.
#[derive(Debug, Default, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"city": "Lund", "zipcode": "222 20", "mobile_phone": "+46701112233"}))]
pub struct AccountChanges {
    #[schema(
        nullable = false,
        max_length = 100,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^ \u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub first_name: Option<String>,
    #[schema(
        nullable = false,
        max_length = 100,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^ \u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub last_name: Option<String>,
    /// Optional.
    #[schema(max_length = 255, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    pub company_name: Option<String>,
    #[schema(
        nullable = false,
        max_length = 255,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^ \u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub address: Option<String>,
    /// Optional.
    #[schema(max_length = 255, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    pub address2: Option<String>,
    #[schema(
        nullable = false,
        max_length = 100,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^ \u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub city: Option<String>,
    /// Optional.
    #[schema(max_length = 100, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    pub state: Option<String>,
    #[schema(
        nullable = false,
        max_length = 20,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^ \u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub zipcode: Option<String>,
    /// ISO 3166-1 alpha-2, upper case.
    #[schema(
        nullable = false,
        max_length = 2,
        pattern = r"^(?:AD|AE|AF|AG|AI|AL|AM|AO|AQ|AR|AS|AT|AU|AW|AX|AZ|BA|BB|BD|BE|BF|BG|BH|BI|BJ|BL|BM|BN|BO|BQ|BR|BS|BT|BV|BW|BY|BZ|CA|CC|CD|CF|CG|CH|CI|CK|CL|CM|CN|CO|CR|CU|CV|CW|CX|CY|CZ|DE|DJ|DK|DM|DO|DZ|EC|EE|EG|EH|ER|ES|ET|FI|FJ|FK|FM|FO|FR|GA|GB|GD|GE|GF|GG|GH|GI|GL|GM|GN|GP|GQ|GR|GS|GT|GU|GW|GY|HK|HM|HN|HR|HT|HU|ID|IE|IL|IM|IN|IO|IQ|IR|IS|IT|JE|JM|JO|JP|KE|KG|KH|KI|KM|KN|KP|KR|KW|KY|KZ|LA|LB|LC|LI|LK|LR|LS|LT|LU|LV|LY|MA|MC|MD|ME|MF|MG|MH|MK|ML|MM|MN|MO|MP|MQ|MR|MS|MT|MU|MV|MW|MX|MY|MZ|NA|NC|NE|NF|NG|NI|NL|NO|NP|NR|NU|NZ|OM|PA|PE|PF|PG|PH|PK|PL|PM|PN|PR|PS|PT|PW|PY|QA|RE|RO|RS|RU|RW|SA|SB|SC|SD|SE|SG|SH|SI|SJ|SK|SL|SM|SN|SO|SR|SS|ST|SV|SX|SY|SZ|TC|TD|TF|TG|TH|TJ|TK|TL|TM|TN|TO|TR|TT|TV|TW|TZ|UA|UG|UM|US|UY|UZ|VA|VC|VE|VG|VI|VN|VU|WF|WS|YE|YT|ZA|ZM|ZW)$",
        example = "SE"
    )]
    pub country: Option<String>,
    /// With its country prefix, e.g. `+46.701234567` or `+46 70 123 45 67` (7 to 15 digits).
    #[schema(
        nullable = false,
        max_length = 30,
        pattern = r"^\+[0-9](?:[ .()-]{0,2}[0-9]){6,14}$",
        example = "+46.701234567"
    )]
    pub phone: Option<String>,
    /// Optional; with its country prefix, for SMS notices.
    #[schema(
        max_length = 30,
        pattern = r"^(?:\+[0-9](?:[ .()-]{0,2}[0-9]){6,14})?$",
        example = "+46701112233"
    )]
    pub mobile_phone: Option<String>,
    /// Optional.
    #[schema(max_length = 50, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    pub account_type: Option<String>,
    /// Optional; EU VAT number, e.g. `SE556677889901`.
    #[schema(
        max_length = 15,
        pattern = r"^(?:[A-Z]{2}[0-9A-Z+*.]{2,13})?$",
        example = "SE556677889901"
    )]
    pub eu_vat_number: Option<String>,
    /// Optional; organisation or personal identity number.
    #[schema(max_length = 20, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    pub org_number: Option<String>,
    /// Optional; your reference on invoices.
    #[schema(max_length = 100, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    pub reference: Option<String>,
}

/// A check of a field's exact form.
type Check = fn(&str) -> Result<(), &'static str>;

/// How one changeable field is checked and where it goes upstream.
struct Editable {
    name: &'static str,
    upstream: &'static str,
    max: usize,
    required: bool,
    /// `None`: free text, trimmed of spaces; `Some`: the exact form, untrimmed.
    check: Option<Check>,
    current: fn(&Account) -> Option<&str>,
}

/// `+`, a digit, then 6 to 14 more digits each after at most two of ` .()-`:
/// the grammar of the documented pattern, exactly.
fn phone(value: &str) -> Result<(), &'static str> {
    let message =
        "must be a phone number with its country prefix, e.g. +46.701234567 (7 to 15 digits)";
    let bytes = value.as_bytes();
    if bytes.first() != Some(&b'+') || !bytes.get(1).is_some_and(u8::is_ascii_digit) {
        return Err(message);
    }
    let (mut digits, mut separators) = (1, 0);
    for b in &bytes[2..] {
        if b.is_ascii_digit() {
            digits += 1;
            separators = 0;
        } else if b" .()-".contains(b) && separators < 2 {
            separators += 1;
        } else {
            return Err(message);
        }
    }
    if separators == 0 && (7..=15).contains(&digits) {
        Ok(())
    } else {
        Err(message)
    }
}

fn country(value: &str) -> Result<(), &'static str> {
    let known = value.len() == 2
        && value.bytes().all(|b| b.is_ascii_uppercase())
        && ISO_3166_ALPHA2.split(' ').any(|code| code == value);
    if known {
        Ok(())
    } else {
        Err("must be an ISO 3166-1 alpha-2 country code in upper case, e.g. SE")
    }
}

fn vat_number(value: &str) -> Result<(), &'static str> {
    let ok = (4..=15).contains(&value.len())
        && value[..2].bytes().all(|b| b.is_ascii_uppercase())
        && value[2..]
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b"+*.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(
            "must be an EU VAT number: a country prefix and 2 to 13 letters or digits, e.g. SE556677889901",
        )
    }
}

const EDITABLE: &[Editable] = &[
    Editable {
        name: "first_name",
        upstream: "firstname",
        max: 100,
        required: true,
        check: None,
        current: |a| a.first_name.as_deref(),
    },
    Editable {
        name: "last_name",
        upstream: "lastname",
        max: 100,
        required: true,
        check: None,
        current: |a| a.last_name.as_deref(),
    },
    Editable {
        name: "company_name",
        upstream: "companyname",
        max: 255,
        required: false,
        check: None,
        current: |a| a.company_name.as_deref(),
    },
    Editable {
        name: "address",
        upstream: "address1",
        max: 255,
        required: true,
        check: None,
        current: |a| a.address.as_deref(),
    },
    Editable {
        name: "address2",
        upstream: "address2",
        max: 255,
        required: false,
        check: None,
        current: |a| a.address2.as_deref(),
    },
    Editable {
        name: "city",
        upstream: "city",
        max: 100,
        required: true,
        check: None,
        current: |a| a.city.as_deref(),
    },
    Editable {
        name: "state",
        upstream: "state",
        max: 100,
        required: false,
        check: None,
        current: |a| a.state.as_deref(),
    },
    Editable {
        name: "zipcode",
        upstream: "postcode",
        max: 20,
        required: true,
        check: None,
        current: |a| a.zipcode.as_deref(),
    },
    Editable {
        name: "country",
        upstream: "country",
        max: 2,
        required: true,
        check: Some(country),
        current: |a| a.country.as_deref(),
    },
    Editable {
        name: "phone",
        upstream: "phonenumber",
        max: 30,
        required: true,
        check: Some(phone),
        current: |a| a.phone.as_deref(),
    },
    Editable {
        name: "mobile_phone",
        upstream: "mobilephone",
        max: 30,
        required: false,
        check: Some(phone),
        current: |a| a.mobile_phone.as_deref(),
    },
    Editable {
        name: "account_type",
        upstream: "type",
        max: 50,
        required: false,
        check: None,
        current: |a| a.account_type.as_deref(),
    },
    Editable {
        name: "eu_vat_number",
        upstream: "vateu",
        max: 15,
        required: false,
        check: Some(vat_number),
        current: |a| a.eu_vat_number.as_deref(),
    },
    Editable {
        name: "org_number",
        upstream: "orgpersonnr",
        max: 20,
        required: false,
        check: None,
        current: |a| a.org_number.as_deref(),
    },
    Editable {
        name: "reference",
        upstream: "referens",
        max: 100,
        required: false,
        check: None,
        current: |a| a.reference.as_deref(),
    },
];

/// Checks a change request field by field, reporting every problem at once.
/// `None` in the result clears the field.
fn validate_changes(
    body: &serde_json::Map<String, serde_json::Value>,
) -> Result<Vec<(&'static Editable, Option<String>)>, ApiError> {
    let mut errors = Vec::new();
    let mut changes = Vec::new();
    for (name, value) in body {
        let Some(field) = EDITABLE.iter().find(|f| f.name == name) else {
            let message = if name == "email" {
                "cannot be changed through the gateway: it is the Slitz login the gateway \
                 authenticates with (slitz.username); change it in the client area and update the configuration"
                    .to_owned()
            } else {
                format!(
                    "is not a field of the account that can be changed; known: {}",
                    EDITABLE
                        .iter()
                        .map(|f| f.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            errors.push(FieldError::new(name.clone(), message));
            continue;
        };
        let raw = match value {
            serde_json::Value::Null => None,
            serde_json::Value::String(s) => Some(s.as_str()),
            _ => {
                errors.push(FieldError::new(name.clone(), "must be a string"));
                continue;
            }
        };
        let Some(raw) = raw.filter(|r| !r.is_empty() || field.required) else {
            if field.required {
                errors.push(FieldError::new(
                    name.clone(),
                    "is required and cannot be cleared",
                ));
            } else {
                changes.push((field, None));
            }
            continue;
        };
        if let Some(problem) = text_problem(raw, field.max) {
            errors.push(FieldError::new(name.clone(), problem));
        } else if let Some(check) = field.check {
            match check(raw) {
                Ok(()) => changes.push((field, Some(raw.to_owned()))),
                Err(message) => errors.push(FieldError::new(name.clone(), message)),
            }
        } else {
            match raw.trim_matches(' ') {
                "" if field.required => {
                    errors.push(FieldError::new(name.clone(), "must not be blank"))
                }
                "" => changes.push((field, None)),
                text => changes.push((field, Some(text.to_owned()))),
            }
        }
    }
    if body.is_empty() {
        errors.push(FieldError::new("body", "names no field to change"));
    }
    if errors.is_empty() {
        Ok(changes)
    } else {
        Err(ApiError::invalid_fields(errors))
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
    let serde_json::Value::Object(body) = body.into_inner() else {
        return Err(ApiError::Unprocessable {
            detail: "the body must be a JSON object of fields to change".into(),
            errors: vec![FieldError::new("body", "must be a JSON object")],
        });
    };
    let changes = validate_changes(&body)?;
    // Compare with what Slitz has now, not with the cache, so nothing that
    // changed elsewhere is overwritten by accident and nothing unchanged is sent.
    let current = fetch_account(&slitz).await?;
    let changed: Vec<(&'static str, String)> = changes
        .into_iter()
        .filter(|(field, value)| (field.current)(&current) != value.as_deref())
        .map(|(field, value)| (field.upstream, value.unwrap_or_default()))
        .collect();
    if changed.is_empty() {
        return Ok(no_store(HttpResponse::Ok()).json(current));
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

/// ISO 3166-1 alpha-2 codes.
const ISO_3166_ALPHA2: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW";

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

    fn changes(
        json: serde_json::Value,
    ) -> Result<Vec<(&'static str, Option<String>)>, Vec<String>> {
        let serde_json::Value::Object(map) = json else {
            panic!()
        };
        match validate_changes(&map) {
            Ok(c) => Ok(c.into_iter().map(|(f, v)| (f.name, v)).collect()),
            Err(ApiError::Unprocessable { errors, .. }) => {
                Err(errors.into_iter().map(|e| e.field).collect())
            }
            Err(other) => panic!("{other:?}"),
        }
    }

    #[test]
    fn valid_changes_pass_and_blank_optional_fields_clear() {
        let ok = changes(serde_json::json!({
            "city": " Lund ", "country": "SE", "phone": "+46.701234567", "mobile_phone": "+46 (0)70-111 22 33",
            "eu_vat_number": "SE556677889901", "address2": "", "state": null
        }))
        .unwrap();
        assert!(ok.contains(&("city", Some("Lund".into()))));
        assert!(ok.contains(&("address2", None)));
        assert!(ok.contains(&("state", None)));
    }

    #[test]
    fn every_bad_field_is_named_at_once() {
        let errors = changes(serde_json::json!({
            "country": "Sweden", "phone": "0701234567", "city": "", "first_name": 5,
            "email": "new@example.se", "nickname": "x", "last_name": "a\u{0}b",
            "reference": "r".repeat(101), "eu_vat_number": "12"
        }))
        .unwrap_err();
        for field in [
            "country",
            "phone",
            "city",
            "first_name",
            "email",
            "nickname",
            "last_name",
            "reference",
            "eu_vat_number",
        ] {
            assert!(errors.iter().any(|e| e == field), "{field} in {errors:?}");
        }
        assert_eq!(changes(serde_json::json!({})).unwrap_err(), vec!["body"]);
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
            ISO_3166_ALPHA2.split(' ').collect::<Vec<_>>().join("|")
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
