//! The gateway's own resources, as every route answers them: normalized
//! (snake_case, integer ids, dates, RFC 3339 date-times with an offset,
//! money as a decimal string and a currency) and documented for OpenAPI.
//! The upstream clients build them from their private wire types; routes
//! serve them. A leaf but for the normalized scalars it is made of.

use chrono::{DateTime, FixedOffset, NaiveDate};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::normalize::{Money, opt_rfc3339};

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

/// A ticket as listed.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "number": 437928, "subject": "Mail stops arriving after 18:00", "status": "open",
    "department": "Support Tickets", "created_at": "2026-11-21T12:01:45+01:00", "read_by_client": true
}))]
pub struct TicketSummary {
    /// The ticket number (upstream `ticket_number`); the id of the ticket routes.
    pub number: i64,
    pub subject: Option<String>,
    /// `open`, `answered`, `customer_reply`, `closed`, …
    pub status: Option<String>,
    /// Department (upstream `deptname`).
    pub department: Option<String>,
    /// When it was opened (upstream `date`).
    #[serde(serialize_with = "opt_rfc3339")]
    pub created_at: Option<DateTime<FixedOffset>>,
    /// Whether the client has read the latest reply (upstream `client_read`).
    pub read_by_client: Option<bool>,
}

/// One message in a ticket.
#[derive(Debug, Serialize, ToSchema)]
pub struct TicketReply {
    pub id: i64,
    /// Who wrote it (upstream `name`).
    pub author: Option<String>,
    /// `admin` (staff) or `client` (upstream `type`).
    pub author_type: Option<String>,
    #[serde(serialize_with = "opt_rfc3339")]
    pub created_at: Option<DateTime<FixedOffset>>,
    pub body: Option<String>,
    /// Delivery status, e.g. `sent`.
    pub status: Option<String>,
}

/// A ticket with every reply, oldest first.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "number": 437928, "subject": "Mail stops arriving after 18:00", "status": "open",
    "department": "Support Tickets", "created_at": "2026-11-21T12:01:45+01:00", "read_by_client": true,
    "name": "Anna Lindqvist", "email": "anna.lindqvist@example.se",
    "replies": [{"id": 57, "author": "Anna Lindqvist", "author_type": "client",
                 "created_at": "2026-11-21T12:01:45+01:00", "body": "Since Monday no mail arrives after 18:00.",
                 "status": "sent"}]
}))]
pub struct Ticket {
    #[serde(flatten)]
    pub summary: TicketSummary,
    /// Who opened it.
    pub name: Option<String>,
    pub email: Option<String>,
    pub replies: Vec<TicketReply>,
}

/// A domain as listed.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "id": 548, "name": "lindqvist.se", "status": "active", "expires_on": "2026-12-05",
    "days_to_expiry": 12, "created_on": "2015-08-04",
    "recurring_amount": {"amount": "99.50", "currency": "SEK"}, "period_years": 1, "autorenew": false
}))]
pub struct DomainSummary {
    pub id: i64,
    pub name: Option<String>,
    /// `active`, `expired`, `pending_transfer`, …
    pub status: Option<String>,
    /// Expiry date (upstream `expires`).
    pub expires_on: Option<NaiveDate>,
    /// Days until expiry as Slitz counts them (upstream `daytoexpire`).
    pub days_to_expiry: Option<i64>,
    /// Registration date (upstream `date_created`).
    pub created_on: Option<NaiveDate>,
    /// Renewal price, in the configured currency.
    pub recurring_amount: Option<Money>,
    /// Registration period in years (upstream `period`).
    pub period_years: Option<i64>,
    /// Whether the domain renews by itself.
    pub autorenew: Option<bool>,
}

/// A domain with billing dates, protection and name servers.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 548, "name": "lindqvist.se", "status": "active", "created_on": "2015-08-04",
    "expires_on": "2026-12-05", "next_due_on": "2026-12-05", "next_invoice_on": "2026-11-28",
    "first_payment": {"amount": "99.50", "currency": "SEK"},
    "recurring_amount": {"amount": "99.50", "currency": "SEK"}, "period_years": 1,
    "id_protection": false, "autorenew": false,
    "nameservers": ["ns1.slitz.se", "ns2.slitz.se", "ns3.slitz.se"]
}))]
pub struct Domain {
    pub id: i64,
    pub name: Option<String>,
    pub status: Option<String>,
    pub created_on: Option<NaiveDate>,
    pub expires_on: Option<NaiveDate>,
    /// Next payment due (upstream `next_due`).
    pub next_due_on: Option<NaiveDate>,
    /// Next invoice date (upstream `next_invoice`).
    pub next_invoice_on: Option<NaiveDate>,
    /// First payment (upstream `firstpayment`).
    pub first_payment: Option<Money>,
    pub recurring_amount: Option<Money>,
    pub period_years: Option<i64>,
    /// WHOIS privacy (upstream `idprotection`).
    pub id_protection: Option<bool>,
    pub autorenew: Option<bool>,
    /// Name servers, blanks dropped.
    pub nameservers: Vec<String>,
}

/// A service as listed.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "id": 33301, "name": "Starter Hosting", "domain": "lindqvist.se", "category": "Hosting",
    "category_slug": "hosting", "status": "active", "billing_cycle": "monthly",
    "next_due_on": "2026-12-18", "total": {"amount": "149.00", "currency": "SEK"}
}))]
pub struct ServiceSummary {
    pub id: i64,
    /// Product name.
    pub name: Option<String>,
    /// The domain the service is for, if any.
    pub domain: Option<String>,
    pub category: Option<String>,
    /// URL-safe category name (upstream `category_url`).
    pub category_slug: Option<String>,
    /// `active`, `suspended`, `terminated`, `pending`, …
    pub status: Option<String>,
    /// `monthly`, `quarterly`, `annually`, … (upstream `billingcycle`).
    pub billing_cycle: Option<String>,
    /// Next payment due (upstream `next_due`).
    pub next_due_on: Option<NaiveDate>,
    /// Recurring price, in the configured currency.
    pub total: Option<Money>,
}

/// Credentials Slitz stores on a service. Only for keys with the `secrets` scope.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceCredentials {
    pub username: Option<String>,
    pub password: Option<String>,
    /// Root password (upstream `rootpassword`).
    pub root_password: Option<String>,
}

/// A service with its billing dates; `credentials` only for the `secrets` scope.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 33301, "name": "Starter Hosting", "label": null, "domain": "lindqvist.se", "status": "active",
    "billing_cycle": "monthly", "created_on": "2025-10-19", "next_due_on": "2026-12-18",
    "next_invoice_on": "2026-12-13", "first_payment": {"amount": "149.00", "currency": "SEK"},
    "total": {"amount": "149.00", "currency": "SEK"}
}))]
pub struct Service {
    pub id: i64,
    pub name: Option<String>,
    /// The customer's own label for the service.
    pub label: Option<String>,
    pub domain: Option<String>,
    pub status: Option<String>,
    pub billing_cycle: Option<String>,
    /// Order date (upstream `date_created`).
    pub created_on: Option<NaiveDate>,
    pub next_due_on: Option<NaiveDate>,
    /// Next invoice date (upstream `next_invoice`).
    pub next_invoice_on: Option<NaiveDate>,
    /// First payment (upstream `firstpayment`).
    pub first_payment: Option<Money>,
    /// Recurring price.
    pub total: Option<Money>,
    /// Present only for keys with the `secrets` scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credentials: Option<ServiceCredentials>,
}
