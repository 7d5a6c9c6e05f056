//! `/v1/overview`: one call for a dashboard. Fans out concurrently, through
//! the cache, to the account, balance, invoices, services, tickets and
//! domains, and answers one summary; a source that fails is named in
//! `errors` and the rest still answer.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, ResponseError, http::header, web};
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Serialize, de::DeserializeOwned};
use utoipa::ToSchema;

use super::{Listing, Page, account, billing, domains, services, support};
use crate::{
    cache::{CacheStatus, Cached, ResponseCache},
    configuration::OverviewSettings,
    error::{ApiError, Problem},
    model::{Account, Balance, DomainSummary, InvoiceSummary, ServiceSummary, TicketSummary},
    normalize::Money,
    upstream::slitz::SlitzClient,
};

/// Who the account is.
#[derive(Debug, Serialize, ToSchema)]
pub struct OverviewAccount {
    pub id: i64,
    /// First and last name.
    pub name: Option<String>,
    pub company_name: Option<String>,
    pub email: Option<String>,
}

/// Invoices not yet paid.
#[derive(Debug, Serialize, ToSchema)]
pub struct UnpaidInvoices {
    pub count: usize,
    /// The amount due, one entry per currency.
    pub totals: Vec<Money>,
    pub items: Vec<InvoiceSummary>,
}

/// Services counted by status.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceCounts {
    pub total: usize,
    /// e.g. `{"active": 2, "suspended": 1}`.
    pub by_status: BTreeMap<String, usize>,
}

/// Tickets not closed, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct OpenTickets {
    pub count: usize,
    pub items: Vec<TicketSummary>,
}

/// A domain that expires soon.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExpiringDomain {
    pub id: i64,
    pub name: Option<String>,
    pub expires_on: NaiveDate,
    /// Whole days from today (in the configured zone) to the expiry date.
    pub days_left: i64,
    pub autorenew: Option<bool>,
}

/// Domains expiring within `overview.expiring_days`, soonest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExpiringDomains {
    pub within_days: u32,
    pub items: Vec<ExpiringDomain>,
}

/// A source of the overview that did not answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct SourceError {
    /// `account`, `balance`, `invoices`, `services`, `tickets` or `domains`.
    pub source: &'static str,
    /// The status the source's own route would have answered.
    pub status: u16,
    pub title: String,
}

/// The dashboard summary. Each section is `null` when its source failed; such
/// sources are listed in `errors` and `partial` is `true`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "account": {"id": 20408, "name": "Anna Lindqvist", "company_name": "Lindqvist Konsult AB", "email": "anna.lindqvist@example.se"},
    "balance": {"amount": "573.50", "currency": "SEK"},
    "credit": {"amount": "0.00", "currency": "SEK"},
    "unpaid_invoices": {"count": 1, "totals": [{"amount": "149.00", "currency": "SEK"}], "items": [
        {"id": 310002, "number": "SLZ-2026-0102", "status": "unpaid", "issued_on": "2026-11-03", "due_on": "2026-11-17",
         "pay_before_on": "2026-11-17", "paid_at": null, "total": {"amount": "149.00", "currency": "SEK"}, "merged_into_id": null}]},
    "services": {"total": 3, "by_status": {"active": 2, "suspended": 1}},
    "open_tickets": null,
    "expiring_domains": {"within_days": 30, "items": [
        {"id": 548, "name": "lindqvist.se", "expires_on": "2026-12-05", "days_left": 12, "autorenew": false}]},
    "partial": true,
    "errors": [{"source": "tickets", "status": 502, "title": "The upstream failed"}]
}))]
pub struct Overview {
    pub account: Option<OverviewAccount>,
    pub balance: Option<Money>,
    pub credit: Option<Money>,
    pub unpaid_invoices: Option<UnpaidInvoices>,
    pub services: Option<ServiceCounts>,
    pub open_tickets: Option<OpenTickets>,
    pub expiring_domains: Option<ExpiringDomains>,
    /// `true` when at least one source failed.
    pub partial: bool,
    pub errors: Vec<SourceError>,
}

type Fetched = Result<(std::sync::Arc<Cached>, CacheStatus), ApiError>;

fn read<T: DeserializeOwned>(fetched: Fetched) -> Result<T, ApiError> {
    let (entry, _) = fetched?;
    serde_json::from_slice(&entry.body).map_err(|e| {
        ApiError::Internal(anyhow::Error::new(e).context("Failed to read a cached answer"))
    })
}

/// A source's value, or its failure noted in `errors`.
fn keep<T>(
    errors: &mut Vec<SourceError>,
    source: &'static str,
    result: Result<T, ApiError>,
) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(error) => {
            if let ApiError::Upstream(e) = &error {
                e.log();
            }
            errors.push(SourceError {
                source,
                status: error.status_code().as_u16(),
                title: error.to_problem().title,
            });
            None
        }
    }
}

fn unpaid(page: Page<InvoiceSummary>) -> UnpaidInvoices {
    let items: Vec<InvoiceSummary> = page
        .items
        .into_iter()
        .filter(|i| i.status.as_deref() == Some("unpaid"))
        .collect();
    let mut sums: BTreeMap<String, Decimal> = BTreeMap::new();
    for money in items.iter().filter_map(|i| i.total.as_ref()) {
        if let Ok(amount) = money.amount.parse::<Decimal>() {
            let sum = sums.entry(money.currency.clone()).or_default();
            *sum = sum.saturating_add(amount);
        }
    }
    UnpaidInvoices {
        count: items.len(),
        totals: sums
            .into_iter()
            .map(|(currency, sum)| Money::new(sum, &currency))
            .collect(),
        items,
    }
}

fn service_counts(page: Page<ServiceSummary>) -> ServiceCounts {
    let mut by_status = BTreeMap::new();
    for service in &page.items {
        let count: &mut usize = by_status
            .entry(service.status.clone().unwrap_or_else(|| "unknown".into()))
            .or_default();
        *count = count.saturating_add(1);
    }
    ServiceCounts {
        total: page.items.len(),
        by_status,
    }
}

fn open_tickets(page: Page<TicketSummary>) -> OpenTickets {
    let mut items: Vec<TicketSummary> = page
        .items
        .into_iter()
        .filter(|t| t.status.as_deref() != Some("closed"))
        .collect();
    items.sort_by_key(|t| std::cmp::Reverse(t.created_at));
    OpenTickets {
        count: items.len(),
        items,
    }
}

fn expiring(page: Page<DomainSummary>, today: NaiveDate, within_days: u32) -> ExpiringDomains {
    let mut items: Vec<ExpiringDomain> = page
        .items
        .into_iter()
        .filter_map(|d| {
            let expires_on = d.expires_on?;
            let days_left = expires_on.signed_duration_since(today).num_days();
            (0..=i64::from(within_days))
                .contains(&days_left)
                .then_some(ExpiringDomain {
                    id: d.id,
                    name: d.name,
                    expires_on,
                    days_left,
                    autorenew: d.autorenew,
                })
        })
        .collect();
    items.sort_by_key(|d| d.days_left);
    ExpiringDomains { within_days, items }
}

crate::endpoint! {
    /// Dashboard overview
    ///
    /// The account, balance and credit, unpaid invoices (count, total per currency,
    /// the invoices), services by status, open tickets (newest first) and domains
    /// expiring soon, in one call. Sources are read concurrently through the cache.
    /// A source that fails leaves its section `null` and is named in `errors`, with
    /// `partial: true`; the answer is a 503 problem only when every source failed.
    #[route(get "/v1/overview", scopes = [Read],
        // Assembled from the cached routes, each under its own entry.
        upstream = [
            Slitz(GetDetails),
            Slitz(GetBalance),
            Slitz(ListInvoices),
            Slitz(ListTickets),
            Slitz(ListDomains),
            Slitz(ListServices),
        ], ok = (Overview, "The summary; check `partial` and `errors`."))]
    #[openapi(tag = "overview",)]
    #[responses((status = 503, description = "No source answered; `errors` names each.", body = Problem, content_type = "application/problem+json"))]
    pub(crate) async fn get_overview(
        slitz: web::Data<SlitzClient>,
        cache: web::Data<ResponseCache>,
        settings: web::Data<OverviewSettings>,
    ) -> Result<HttpResponse, ApiError> {
        let all = Listing::all();
        let (account, balance, invoices, services, tickets, domains) = tokio::join!(
            account::cached_account(&slitz, &cache),
            billing::cached_balance(&slitz, &cache),
            billing::cached_invoices(&slitz, &cache, &all),
            services::cached_services(&slitz, &cache, &all),
            support::cached_tickets(&slitz, &cache, &all),
            domains::cached_domains(&slitz, &cache, &all),
        );
        let mut errors = Vec::new();
        let account: Option<Account> = keep(&mut errors, "account", read(account));
        let balance: Option<Balance> = keep(&mut errors, "balance", read(balance));
        let invoices: Option<Page<InvoiceSummary>> = keep(&mut errors, "invoices", read(invoices));
        let services: Option<Page<ServiceSummary>> = keep(&mut errors, "services", read(services));
        let tickets: Option<Page<TicketSummary>> = keep(&mut errors, "tickets", read(tickets));
        let domains: Option<Page<DomainSummary>> = keep(&mut errors, "domains", read(domains));
        if errors.len() == 6 {
            let detail = errors
                .iter()
                .map(|e| format!("{}: {}", e.source, e.title))
                .collect::<Vec<_>>()
                .join("; ");
            let mut problem = ApiError::NotReady(format!("no source answered ({detail})")).to_problem();
            problem.title = "No source of the overview answered".to_owned();
            return Ok(problem.with("errors", &errors).respond());
        }
        let today = chrono::Utc::now().with_timezone(&slitz.zone()).date_naive();
        let (balance, credit) = balance.map_or((None, None), |b| (b.balance, b.credit));
        let overview = Overview {
            account: account.map(|a| OverviewAccount {
                id: a.id,
                name: match (a.first_name, a.last_name) {
                    (Some(f), Some(l)) => Some(format!("{f} {l}")),
                    (f, l) => f.or(l),
                },
                company_name: a.company_name,
                email: a.email,
            }),
            balance,
            credit,
            unpaid_invoices: invoices.map(unpaid),
            services: services.map(service_counts),
            open_tickets: tickets.map(open_tickets),
            expiring_domains: domains.map(|d| expiring(d, today, settings.expiring_days)),
            partial: !errors.is_empty(),
            errors,
        };
        Ok(HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "private, no-cache"))
            .json(overview))
    }
}
