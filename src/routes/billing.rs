//! `/v1/billing`: balance and invoices (Slitz `GET /balance`, `GET /invoice`,
//! `GET /invoice/{id}`).

use actix_web::{HttpRequest, HttpResponse, get, web};
use chrono::{DateTime, FixedOffset, NaiveDate};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use std::sync::Arc;

use super::{
    AuthErrors, BadRequest, ListQuery, Listing, NotFound, Page, UpstreamErrors, account::Account,
    cached_listing, parse_id, slitz_malformed,
};
use crate::{
    auth::{Caller, Scope},
    cache::{self, CacheKey, CacheStatus, Cached, ResponseCache, Route},
    error::ApiError,
    normalize::{Loose, Money, NormalizeError, opt_rfc3339},
    upstream::slitz::{self, SlitzClient},
};

/// What the account owes and holds.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "balance": {"amount": "573.50", "currency": "SEK"},
    "credit": {"amount": "0.00", "currency": "SEK"}
}))]
pub struct Balance {
    /// Total of unpaid invoices (upstream `acc_balance`), in the configured currency.
    pub balance: Option<Money>,
    /// Credit on the account (upstream `acc_credit`).
    pub credit: Option<Money>,
}

/// An invoice as listed.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "id": 310002, "number": "SLZ-2026-0102", "status": "unpaid",
    "issued_on": "2026-11-03", "due_on": "2026-11-17", "pay_before_on": "2026-11-17",
    "paid_at": null, "total": {"amount": "149.00", "currency": "SEK"}, "merged_into_id": null
}))]
pub struct InvoiceSummary {
    pub id: i64,
    /// The invoice number as printed; not always numeric, so a string.
    pub number: Option<String>,
    /// `paid`, `unpaid`, `cancelled`, `refunded`, …
    pub status: Option<String>,
    /// Invoice date (upstream `date`).
    pub issued_on: Option<NaiveDate>,
    /// Due date (upstream `duedate`).
    pub due_on: Option<NaiveDate>,
    /// Last day to pay (upstream `paybefore`).
    pub pay_before_on: Option<NaiveDate>,
    /// When it was paid (upstream `datepaid`); `null` while unpaid.
    #[serde(serialize_with = "opt_rfc3339")]
    pub paid_at: Option<DateTime<FixedOffset>>,
    pub total: Option<Money>,
    /// The invoice this one was merged into (upstream `merge_id`).
    pub merged_into_id: Option<i64>,
}

/// One line of an invoice.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvoiceItem {
    pub id: i64,
    pub invoice_id: Option<i64>,
    /// What is billed: `hosting`, `domain`, … (upstream `type`).
    pub item_type: Option<String>,
    /// The billed service or domain's id (upstream `item_id`).
    pub item_id: Option<i64>,
    pub description: Option<String>,
    /// Unit amount.
    pub amount: Option<Money>,
    /// Whether tax applies to the line.
    pub taxed: Option<bool>,
    /// Quantity as a decimal string (upstream `qty`), e.g. `"1"`.
    #[schema(example = "1")]
    pub quantity: Option<String>,
    /// Line total (upstream `linetotal`).
    pub line_total: Option<Money>,
}

/// An invoice with its lines and the billed account.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 303090, "number": "2015-09-25", "status": "paid",
    "issued_on": "2015-08-05", "due_on": "2015-08-05", "pay_before_on": "2015-08-05",
    "paid_at": "2015-09-10T13:13:37+02:00",
    "total": {"amount": "58.50", "currency": "USD"}, "merged_into_id": null,
    "subtotal": {"amount": "58.50", "currency": "USD"}, "credit": {"amount": "0.00", "currency": "USD"},
    "tax": {"amount": "0.00", "currency": "USD"}, "tax_rate": "22",
    "tax2": {"amount": "0.00", "currency": "USD"}, "tax_rate2": "0", "tax_exempt": false,
    "rate": "1", "rate2": "0", "rate3": "1", "notes": null,
    "items": [{"id": 264330, "invoice_id": 303090, "item_type": "hosting", "item_id": 33334,
               "description": "Hosting - Starter Hosting (2015.08.05 - 2015.09.04)",
               "amount": {"amount": "58.50", "currency": "USD"}, "taxed": false, "quantity": "1",
               "line_total": {"amount": "58.50", "currency": "USD"}}],
    "client": null
}))]
pub struct Invoice {
    #[serde(flatten)]
    pub summary: InvoiceSummary,
    pub subtotal: Option<Money>,
    /// Credit applied to the invoice.
    pub credit: Option<Money>,
    pub tax: Option<Money>,
    /// Tax rate in percent, as a decimal string (upstream `taxrate`).
    pub tax_rate: Option<String>,
    /// Second tax (upstream `tax2`).
    pub tax2: Option<Money>,
    /// Second tax rate in percent (upstream `taxrate2`).
    pub tax_rate2: Option<String>,
    /// Whether the account is exempt from tax (upstream `taxexempt`).
    pub tax_exempt: Option<bool>,
    /// Upstream currency rates (HostBill `rate`, `rate2`, `rate3`), as decimal strings.
    pub rate: Option<String>,
    pub rate2: Option<String>,
    pub rate3: Option<String>,
    pub notes: Option<String>,
    pub items: Vec<InvoiceItem>,
    /// The billed account as Slitz recorded it on the invoice.
    pub client: Option<Account>,
}

fn currency_of(raw: &Loose, default: &str) -> String {
    raw.text().unwrap_or_else(|| default.to_owned())
}

fn decimal_text(raw: &Loose, field: &'static str) -> Result<Option<String>, NormalizeError> {
    Ok(raw.decimal(field)?.map(|d| d.to_string()))
}

impl InvoiceSummary {
    fn from_slitz(
        i: &slitz::InvoiceSummary,
        zone: Tz,
        default_currency: &str,
    ) -> Result<Self, NormalizeError> {
        let currency = currency_of(&i.currency, default_currency);
        Ok(Self {
            id: i.id.id("id")?,
            number: i.number.text(),
            status: i.status.status(),
            issued_on: i.date.date("date")?,
            due_on: i.duedate.date("duedate")?,
            pay_before_on: i.paybefore.date("paybefore")?,
            paid_at: i.datepaid.datetime("datepaid", zone)?,
            total: i.total.money("total", &currency)?,
            merged_into_id: i.merge_id.opt_id("merge_id")?,
        })
    }
}

impl Invoice {
    fn from_slitz(
        i: slitz::InvoiceDetail,
        zone: Tz,
        default_currency: &str,
    ) -> Result<Self, NormalizeError> {
        let currency = currency_of(&i.currency, default_currency);
        let summary = InvoiceSummary::from_slitz(
            &slitz::InvoiceSummary {
                id: i.id.clone(),
                date: i.date.clone(),
                duedate: i.duedate.clone(),
                paybefore: i.paybefore.clone(),
                total: i.total.clone(),
                datepaid: i.datepaid.clone(),
                status: i.status.clone(),
                merge_id: i.merge_id.clone(),
                number: i.number.clone(),
                currency: i.currency.clone(),
            },
            zone,
            default_currency,
        )?;
        let items = i
            .items
            .iter()
            .map(|item| {
                Ok(InvoiceItem {
                    id: item.id.id("items.id")?,
                    invoice_id: item.invoice_id.opt_id("items.invoice_id")?,
                    item_type: item.item_type.status(),
                    item_id: item.item_id.opt_id("items.item_id")?,
                    description: item.description.text(),
                    amount: item.amount.money("items.amount", &currency)?,
                    taxed: item.taxed.flag("items.taxed")?,
                    quantity: decimal_text(&item.qty, "items.qty")?,
                    line_total: item.linetotal.money("items.linetotal", &currency)?,
                })
            })
            .collect::<Result<Vec<_>, NormalizeError>>()?;
        let client = i
            .client
            .map(|c| Account::from_slitz(c, zone, default_currency))
            .transpose()?;
        Ok(Self {
            summary,
            subtotal: i.subtotal.money("subtotal", &currency)?,
            credit: i.credit.money("credit", &currency)?,
            tax: i.tax.money("tax", &currency)?,
            tax_rate: decimal_text(&i.taxrate, "taxrate")?,
            tax2: i.tax2.money("tax2", &currency)?,
            tax_rate2: decimal_text(&i.taxrate2, "taxrate2")?,
            tax_exempt: i.taxexempt.flag("taxexempt")?,
            rate: decimal_text(&i.rate, "rate")?,
            rate2: decimal_text(&i.rate2, "rate2")?,
            rate3: decimal_text(&i.rate3, "rate3")?,
            notes: i.notes.text(),
            items,
            client,
        })
    }
}

/// Balance and credit
///
/// The total of unpaid invoices and the credit on the account. Cached.
#[utoipa::path(
    tag = "billing",
    responses(
        (status = 200, description = "Balance and credit.", body = Balance),
        (status = 304, description = "Not modified since the ETag in If-None-Match."),
        AuthErrors,
        UpstreamErrors,
    ),
    security(("api_key" = ["read"]))
)]
#[get("/billing/balance")]
pub(crate) async fn get_balance(
    req: HttpRequest,
    caller: Caller,
    slitz: web::Data<SlitzClient>,
    cache: web::Data<ResponseCache>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::Read)?;
    let (entry, status) = cached_balance(&slitz, &cache).await?;
    Ok(cache::respond(&req, &entry, status))
}

/// The balance, through the cache.
pub(crate) async fn cached_balance(
    slitz: &SlitzClient,
    cache: &ResponseCache,
) -> Result<(Arc<Cached>, CacheStatus), ApiError> {
    cache
        .get_or_load(CacheKey::new(Route::Balance, ""), || async {
            let b = slitz.balance().await?;
            Ok(Balance {
                balance: b
                    .acc_balance
                    .money("acc_balance", slitz.currency())
                    .map_err(slitz_malformed)?,
                credit: b
                    .acc_credit
                    .money("acc_credit", slitz.currency())
                    .map_err(slitz_malformed)?,
            })
        })
        .await
}

/// List invoices
///
/// Every invoice of the account, newest as Slitz orders them, optionally only
/// those with one status, one page at a time. Cached.
#[utoipa::path(
    tag = "billing",
    params(ListQuery),
    responses(
        (status = 200, description = "One page of invoices.", body = Page<InvoiceSummary>),
        (status = 304, description = "Not modified since the ETag in If-None-Match."),
        BadRequest,
        AuthErrors,
        UpstreamErrors,
    ),
    security(("api_key" = ["read"]))
)]
#[get("/billing/invoices")]
pub(crate) async fn list_invoices(
    req: HttpRequest,
    caller: Caller,
    query: web::Query<ListQuery>,
    slitz: web::Data<SlitzClient>,
    cache: web::Data<ResponseCache>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::Read)?;
    let listing = query.validate()?;
    let (entry, status) = cached_invoices(&slitz, &cache, &listing).await?;
    Ok(cache::respond(&req, &entry, status))
}

/// A listing of invoices, through the cache.
pub(crate) async fn cached_invoices(
    slitz: &SlitzClient,
    cache: &ResponseCache,
    listing: &Listing,
) -> Result<(Arc<Cached>, CacheStatus), ApiError> {
    let normalize = |i: &_| InvoiceSummary::from_slitz(i, slitz.zone(), slitz.currency());
    cached_listing(
        cache,
        Route::Invoices,
        listing,
        slitz.invoices(),
        normalize,
        |i| i.status.as_deref(),
    )
    .await
}

/// One invoice
///
/// An invoice with its line items, taxes and the billed account. Cached.
#[utoipa::path(
    tag = "billing",
    params(("id" = i64, Path, minimum = 1, description = "Invoice id.")),
    responses(
        (status = 200, description = "The invoice.", body = Invoice),
        (status = 304, description = "Not modified since the ETag in If-None-Match."),
        BadRequest,
        NotFound,
        AuthErrors,
        UpstreamErrors,
    ),
    security(("api_key" = ["read"]))
)]
#[get("/billing/invoices/{id}")]
pub(crate) async fn get_invoice(
    req: HttpRequest,
    caller: Caller,
    id: web::Path<String>,
    slitz: web::Data<SlitzClient>,
    cache: web::Data<ResponseCache>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::Read)?;
    let id = parse_id("id", &id)?;
    cache
        .serve(
            &req,
            CacheKey::new(Route::Invoice, id.to_string()),
            || async {
                let invoice = slitz.invoice(id).await?;
                Invoice::from_slitz(invoice, slitz.zone(), slitz.currency())
                    .map_err(slitz_malformed)
            },
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_invoice_normalizes() {
        let raw = serde_json::json!({
            "id": "303090", "status": "Paid", "date": "2015-08-05", "duedate": "2015-08-05",
            "paybefore": "2015-08-05", "datepaid": "2015-09-10 13:13:37", "number": "2015-09-25",
            "currency": "USD", "subtotal": 58.5, "credit": 0, "tax": 0, "taxrate": 22, "tax2": 0,
            "taxrate2": 0, "taxexempt": "0", "total": 58.5, "rate": 1, "rate2": 0, "rate3": 1,
            "notes": "",
            "items": [{"id": "264330", "invoice_id": "303090", "type": "Hosting", "item_id": "33334",
                       "description": "Hosting - Starter Hosting (2015.08.05 - 2015.09.04)",
                       "amount": "58.50", "taxed": "0", "qty": "1.00", "linetotal": "58.50"}]
        });
        let invoice = Invoice::from_slitz(
            serde_json::from_value(raw).unwrap(),
            chrono_tz::Europe::Stockholm,
            "SEK",
        )
        .unwrap();
        let json = serde_json::to_value(&invoice).unwrap();
        assert_eq!(json["id"], 303090);
        assert_eq!(json["number"], "2015-09-25");
        assert_eq!(json["status"], "paid");
        assert_eq!(
            json["total"],
            serde_json::json!({"amount": "58.50", "currency": "USD"})
        );
        assert_eq!(json["subtotal"]["amount"], "58.50");
        assert_eq!(json["credit"]["amount"], "0.00");
        assert_eq!(json["tax_rate"], "22");
        assert_eq!(json["tax_exempt"], false);
        assert_eq!(json["paid_at"], "2015-09-10T13:13:37+02:00");
        assert_eq!(json["notes"], serde_json::Value::Null);
        assert_eq!(json["items"][0]["item_type"], "hosting");
        assert_eq!(json["items"][0]["quantity"], "1");
        assert_eq!(json["items"][0]["taxed"], false);
        assert_eq!(json["items"][0]["line_total"]["amount"], "58.50");
    }

    #[test]
    fn an_unpaid_invoice_has_no_paid_at() {
        let raw = serde_json::json!({"id": "1", "datepaid": "0000-00-00 00:00:00", "total": "10.00", "status": "Unpaid"});
        let summary =
            InvoiceSummary::from_slitz(&serde_json::from_value(raw).unwrap(), Tz::UTC, "SEK")
                .unwrap();
        assert!(summary.paid_at.is_none());
        assert_eq!(summary.total.unwrap().currency, "SEK");
    }
}
