//! `/v1/account`: the Slitz client-area account (upstream `GET /details`).

use actix_web::{get, web};
use chrono::{DateTime, FixedOffset, NaiveDate};
use chrono_tz::Tz;
use serde::Serialize;
use utoipa::ToSchema;

use super::{AuthErrors, UpstreamErrors};
use crate::{
    auth::{Caller, Scope},
    error::ApiError,
    normalize::{Money, NormalizeError},
    upstream::{
        Upstream, UpstreamError,
        slitz::{ClientDetails, SlitzClient},
    },
};

/// The account behind the gateway's Slitz login.
#[derive(Debug, Serialize, ToSchema)]
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
/// configured with: names, address, contact, credit and last login.
#[utoipa::path(
    tag = "account",
    responses(
        (status = 200, description = "The account.", body = Account),
        AuthErrors,
        UpstreamErrors,
    ),
    security(("api_key" = ["read"]))
)]
#[get("/account")]
pub(crate) async fn get_account(
    caller: Caller,
    slitz: web::Data<SlitzClient>,
) -> Result<web::Json<Account>, ApiError> {
    caller.require(Scope::Read)?;
    let details = slitz.details().await?;
    let account = Account::from_slitz(details, slitz.zone(), slitz.currency())
        .map_err(|e| UpstreamError::from((Upstream::Slitz, e)))?;
    Ok(web::Json(account))
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

    #[test]
    fn a_broken_id_is_an_error_naming_the_field() {
        let details: ClientDetails =
            serde_json::from_value(serde_json::json!({"id": "x"})).unwrap();
        let err = Account::from_slitz(details, Tz::UTC, "SEK").unwrap_err();
        assert_eq!(err.field, "id");
    }
}
