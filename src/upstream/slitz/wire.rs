//! Slitz's answers as HostBill sends them (string-typed numbers, sentinel
//! dates, `"1"`/`"0"` flags, empty strings) and how each becomes the
//! gateway's resource. Private to the Slitz client: routes never see these.

use chrono_tz::Tz;
use serde::Deserialize;
use serde_json::Value;

use crate::{
    model,
    normalize::{Loose, NormalizeError, non_empty},
};

/// What normalizing needs beyond the answer: the zone Slitz's zone-less
/// date-times are read in, and the currency of amounts sent without one.
#[derive(Debug, Clone)]
pub(super) struct Context {
    pub(super) zone: Tz,
    pub(super) currency: String,
}

/// A wire value turned into the gateway's resource; a value that is not
/// what its field promises is an error naming the field (a 502 upstream).
pub(super) trait Normalize {
    type Api;
    fn normalize(self, ctx: &Context) -> Result<Self::Api, NormalizeError>;
}

impl<T: Normalize> Normalize for Vec<T> {
    type Api = Vec<T::Api>;

    fn normalize(self, ctx: &Context) -> Result<Self::Api, NormalizeError> {
        self.into_iter().map(|item| item.normalize(ctx)).collect()
    }
}

impl Normalize for BalanceEnvelope {
    type Api = model::Balance;

    fn normalize(self, ctx: &Context) -> Result<model::Balance, NormalizeError> {
        Ok(model::Balance {
            balance: self
                .details
                .acc_balance
                .money("acc_balance", &ctx.currency)?,
            credit: self.details.acc_credit.money("acc_credit", &ctx.currency)?,
        })
    }
}

impl Normalize for ClientDetails {
    type Api = model::Account;

    fn normalize(self, ctx: &Context) -> Result<model::Account, NormalizeError> {
        let (c, zone, currency) = (self, ctx.zone, ctx.currency.as_str());

        Ok(model::Account {
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

impl Normalize for InvoiceSummary {
    type Api = model::InvoiceSummary;

    fn normalize(self, ctx: &Context) -> Result<model::InvoiceSummary, NormalizeError> {
        let (i, zone, default_currency) = (self, ctx.zone, ctx.currency.as_str());

        let currency = currency_of(&i.currency, default_currency);
        Ok(model::InvoiceSummary {
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

impl Normalize for InvoiceDetail {
    type Api = model::Invoice;

    fn normalize(self, ctx: &Context) -> Result<model::Invoice, NormalizeError> {
        let (i, default_currency) = (self, ctx.currency.as_str());

        let currency = currency_of(&i.currency, default_currency);
        let summary = InvoiceSummary {
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
        }
        .normalize(ctx)?;
        let items = i
            .items
            .iter()
            .map(|item| {
                Ok(model::InvoiceItem {
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
        let client = i.client.map(|c| c.normalize(ctx)).transpose()?;
        Ok(model::Invoice {
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

impl Normalize for TicketSummary {
    type Api = model::TicketSummary;

    fn normalize(self, ctx: &Context) -> Result<model::TicketSummary, NormalizeError> {
        let (t, zone) = (self, ctx.zone);

        Ok(model::TicketSummary {
            number: t.ticket_number.id("ticket_number")?,
            subject: t.subject.text(),
            status: t.status.status(),
            department: t.deptname.text(),
            created_at: t.date.datetime("date", zone)?,
            read_by_client: t.client_read.flag("client_read")?,
        })
    }
}

impl Normalize for TicketEnvelope {
    type Api = model::Ticket;

    fn normalize(self, ctx: &Context) -> Result<model::Ticket, NormalizeError> {
        let (t, replies, zone) = (self.tickets, self.replies.unwrap_or_default(), ctx.zone);

        let summary = TicketSummary {
            client_read: t.client_read.clone(),
            ticket_number: t.ticket_number.clone(),
            date: t.date.clone(),
            deptname: t.deptname.clone(),
            subject: t.subject.clone(),
            status: t.status.clone(),
        }
        .normalize(ctx)?;
        let replies = replies
            .iter()
            .map(|r| {
                Ok(model::TicketReply {
                    id: r.id.id("replies.id")?,
                    author: r.name.text(),
                    author_type: r.reply_type.status(),
                    created_at: r.date.datetime("replies.date", zone)?,
                    body: r.body.text(),
                    status: r.status.status(),
                })
            })
            .collect::<Result<Vec<_>, NormalizeError>>()?;
        Ok(model::Ticket {
            summary,
            name: t.name.text(),
            email: t.email.text(),
            replies,
        })
    }
}

impl Normalize for DomainSummary {
    type Api = model::DomainSummary;

    fn normalize(self, ctx: &Context) -> Result<model::DomainSummary, NormalizeError> {
        let (d, currency) = (self, ctx.currency.as_str());

        Ok(model::DomainSummary {
            id: d.id.id("id")?,
            name: d.name.text(),
            status: d.status.status(),
            expires_on: d.expires.date("expires")?,
            days_to_expiry: d.daytoexpire.int("daytoexpire")?,
            created_on: d.date_created.date("date_created")?,
            recurring_amount: d.recurring_amount.money("recurring_amount", currency)?,
            period_years: d.period.int("period")?,
            autorenew: d.autorenew.flag("autorenew")?,
        })
    }
}

impl Normalize for DomainDetail {
    type Api = model::Domain;

    fn normalize(self, ctx: &Context) -> Result<model::Domain, NormalizeError> {
        let (d, currency) = (self, ctx.currency.as_str());

        Ok(model::Domain {
            id: d.id.id("id")?,
            name: d.name.text(),
            status: d.status.status(),
            created_on: d.date_created.date("date_created")?,
            expires_on: d.expires.date("expires")?,
            next_due_on: d.next_due.date("next_due")?,
            next_invoice_on: d.next_invoice.date("next_invoice")?,
            first_payment: d.firstpayment.money("firstpayment", currency)?,
            recurring_amount: d.recurring_amount.money("recurring_amount", currency)?,
            period_years: d.period.int("period")?,
            id_protection: d.idprotection.flag("idprotection")?,
            autorenew: d.autorenew.flag("autorenew")?,
            nameservers: non_empty(&d.nameservers),
        })
    }
}

impl Normalize for ServiceSummary {
    type Api = model::ServiceSummary;

    fn normalize(self, ctx: &Context) -> Result<model::ServiceSummary, NormalizeError> {
        let (s, currency) = (self, ctx.currency.as_str());

        Ok(model::ServiceSummary {
            id: s.id.id("id")?,
            name: s.name.text(),
            domain: s.domain.text(),
            category: s.category.text(),
            category_slug: s.category_url.text(),
            status: s.status.status(),
            billing_cycle: s.billingcycle.status(),
            next_due_on: s.next_due.date("next_due")?,
            total: s.total.money("total", currency)?,
        })
    }
}

impl Normalize for ServiceDetail {
    type Api = model::Service;

    fn normalize(self, ctx: &Context) -> Result<model::Service, NormalizeError> {
        let (s, currency) = (self, ctx.currency.as_str());

        Ok(model::Service {
            id: s.id.id("id")?,
            name: s.name.text(),
            label: s.label.text(),
            domain: s.domain.text(),
            status: s.status.status(),
            billing_cycle: s.billingcycle.status(),
            created_on: s.date_created.date("date_created")?,
            next_due_on: s.next_due.date("next_due")?,
            next_invoice_on: s.next_invoice.date("next_invoice")?,
            first_payment: s.firstpayment.money("firstpayment", currency)?,
            total: s.total.money("total", currency)?,
            credentials: Some(model::ServiceCredentials {
                username: s.username.text(),
                password: s.password.text(),
                root_password: s.rootpassword.text(),
            }),
        })
    }
}

fn currency_of(raw: &Loose, default: &str) -> String {
    raw.text().unwrap_or_else(|| default.to_owned())
}

fn decimal_text(raw: &Loose, field: &'static str) -> Result<Option<String>, NormalizeError> {
    Ok(raw.decimal(field)?.map(|d| d.to_string()))
}

#[derive(Deserialize)]
pub(super) struct DetailsEnvelope {
    pub(super) client: ClientDetails,
}

/// `GET /details` → `client`, as Slitz sends it. The last five fields are
/// not in the document's example but are what `POST /details` sets.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ClientDetails {
    pub(super) id: Loose,
    pub(super) email: Loose,
    pub(super) lastlogin: Loose,
    pub(super) ip: Loose,
    pub(super) host: Loose,
    pub(super) status: Loose,
    pub(super) parent_id: Loose,
    pub(super) firstname: Loose,
    pub(super) lastname: Loose,
    pub(super) companyname: Loose,
    pub(super) address1: Loose,
    pub(super) address2: Loose,
    pub(super) city: Loose,
    pub(super) state: Loose,
    pub(super) postcode: Loose,
    pub(super) country: Loose,
    pub(super) phonenumber: Loose,
    pub(super) datecreated: Loose,
    pub(super) language: Loose,
    pub(super) company: Loose,
    pub(super) credit: Loose,
    pub(super) privileges: Option<Value>,
    #[serde(rename = "type")]
    pub(super) account_type: Loose,
    pub(super) vateu: Loose,
    pub(super) orgpersonnr: Loose,
    pub(super) mobilephone: Loose,
    pub(super) referens: Loose,
}

#[derive(Deserialize)]
pub(super) struct BalanceEnvelope {
    pub(super) details: Balance,
}

/// `GET /balance` → `details`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Balance {
    pub(super) acc_balance: Loose,
    pub(super) acc_credit: Loose,
}

#[derive(Deserialize)]
pub(super) struct InvoicesEnvelope {
    pub(super) invoices: Option<Vec<InvoiceSummary>>,
}

/// `GET /invoice` → `invoices[]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct InvoiceSummary {
    pub(super) id: Loose,
    pub(super) date: Loose,
    pub(super) duedate: Loose,
    pub(super) paybefore: Loose,
    pub(super) total: Loose,
    pub(super) datepaid: Loose,
    pub(super) status: Loose,
    pub(super) merge_id: Loose,
    pub(super) number: Loose,
    pub(super) currency: Loose,
}

#[derive(Deserialize)]
pub(super) struct InvoiceEnvelope {
    pub(super) invoice: InvoiceDetail,
}

/// `GET /invoice/{id}` → `invoice`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct InvoiceDetail {
    pub(super) id: Loose,
    pub(super) status: Loose,
    pub(super) date: Loose,
    pub(super) duedate: Loose,
    pub(super) paybefore: Loose,
    pub(super) datepaid: Loose,
    pub(super) number: Loose,
    pub(super) currency: Loose,
    pub(super) subtotal: Loose,
    pub(super) credit: Loose,
    pub(super) tax: Loose,
    pub(super) taxrate: Loose,
    pub(super) tax2: Loose,
    pub(super) taxrate2: Loose,
    pub(super) taxexempt: Loose,
    pub(super) total: Loose,
    pub(super) rate: Loose,
    pub(super) rate2: Loose,
    pub(super) rate3: Loose,
    pub(super) notes: Loose,
    pub(super) merge_id: Loose,
    pub(super) items: Vec<InvoiceItem>,
    pub(super) client: Option<ClientDetails>,
}

/// `invoice.items[]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct InvoiceItem {
    pub(super) id: Loose,
    pub(super) invoice_id: Loose,
    #[serde(rename = "type")]
    pub(super) item_type: Loose,
    pub(super) item_id: Loose,
    pub(super) description: Loose,
    pub(super) amount: Loose,
    pub(super) taxed: Loose,
    pub(super) qty: Loose,
    pub(super) linetotal: Loose,
}

#[derive(Deserialize)]
pub(super) struct TicketsEnvelope {
    pub(super) tickets: Option<Vec<TicketSummary>>,
}

/// `GET /tickets` → `tickets[]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct TicketSummary {
    pub(super) client_read: Loose,
    pub(super) ticket_number: Loose,
    pub(super) date: Loose,
    pub(super) deptname: Loose,
    pub(super) subject: Loose,
    pub(super) status: Loose,
}

#[derive(Deserialize)]
pub(super) struct TicketEnvelope {
    pub(super) tickets: TicketDetail,
    pub(super) replies: Option<Vec<TicketReply>>,
}

/// `GET /tickets/{number}` → `tickets` (one ticket, despite the name).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct TicketDetail {
    pub(super) date: Loose,
    pub(super) ticket_number: Loose,
    pub(super) name: Loose,
    pub(super) email: Loose,
    pub(super) subject: Loose,
    pub(super) status: Loose,
    pub(super) client_read: Loose,
    pub(super) deptname: Loose,
}

/// `GET /tickets/{number}` → `replies[]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct TicketReply {
    pub(super) id: Loose,
    pub(super) name: Loose,
    pub(super) date: Loose,
    pub(super) body: Loose,
    pub(super) status: Loose,
    #[serde(rename = "type")]
    pub(super) reply_type: Loose,
}

#[derive(Deserialize)]
pub(super) struct DomainsEnvelope {
    pub(super) domains: Option<Vec<DomainSummary>>,
}

/// `GET /domain` → `domains[]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct DomainSummary {
    pub(super) id: Loose,
    pub(super) name: Loose,
    pub(super) expires: Loose,
    pub(super) recurring_amount: Loose,
    pub(super) date_created: Loose,
    pub(super) status: Loose,
    pub(super) period: Loose,
    pub(super) autorenew: Loose,
    pub(super) daytoexpire: Loose,
}

#[derive(Deserialize)]
pub(super) struct DomainEnvelope {
    pub(super) details: DomainDetail,
}

/// `GET /domain/{id}` → `details`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct DomainDetail {
    pub(super) id: Loose,
    pub(super) name: Loose,
    pub(super) date_created: Loose,
    pub(super) firstpayment: Loose,
    pub(super) recurring_amount: Loose,
    pub(super) period: Loose,
    pub(super) expires: Loose,
    pub(super) status: Loose,
    pub(super) next_due: Loose,
    pub(super) next_invoice: Loose,
    pub(super) idprotection: Loose,
    pub(super) nameservers: Vec<Loose>,
    pub(super) autorenew: Loose,
}

#[derive(Deserialize)]
pub(super) struct AvailabilityEnvelope {
    pub(super) details: Option<AvailabilityDetails>,
}

#[derive(Deserialize)]
pub(super) struct AvailabilityDetails {
    #[serde(default)]
    pub(super) status: Loose,
}

#[derive(Deserialize)]
pub(super) struct ServicesEnvelope {
    pub(super) services: Option<Vec<ServiceSummary>>,
}

/// `GET /service` → `services[]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ServiceSummary {
    pub(super) id: Loose,
    pub(super) domain: Loose,
    pub(super) total: Loose,
    pub(super) status: Loose,
    pub(super) billingcycle: Loose,
    pub(super) next_due: Loose,
    pub(super) category: Loose,
    pub(super) category_url: Loose,
    pub(super) name: Loose,
}

#[derive(Deserialize)]
pub(super) struct ServiceEnvelope {
    pub(super) service: ServiceDetail,
}

/// `GET /service/{id}` → `service`, credentials included.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ServiceDetail {
    pub(super) id: Loose,
    pub(super) date_created: Loose,
    pub(super) domain: Loose,
    pub(super) firstpayment: Loose,
    pub(super) total: Loose,
    pub(super) billingcycle: Loose,
    pub(super) next_due: Loose,
    pub(super) next_invoice: Loose,
    pub(super) status: Loose,
    pub(super) label: Loose,
    pub(super) username: Loose,
    pub(super) password: Loose,
    pub(super) rootpassword: Loose,
    pub(super) name: Loose,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(zone: Tz) -> Context {
        Context {
            zone,
            currency: "SEK".to_owned(),
        }
    }

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
        let account = details
            .normalize(&ctx(chrono_tz::Europe::Stockholm))
            .unwrap();
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
        let utc = serde_json::from_value::<ClientDetails>(
            serde_json::json!({"id": "1", "lastlogin": "2015-09-17 09:00:20"}),
        )
        .unwrap()
        .normalize(&ctx(Tz::UTC))
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
        let err = details.normalize(&ctx(Tz::UTC)).unwrap_err();
        assert_eq!(err.field, "id");
    }

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
        let invoice = serde_json::from_value::<InvoiceDetail>(raw)
            .unwrap()
            .normalize(&ctx(chrono_tz::Europe::Stockholm))
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
        let summary = serde_json::from_value::<InvoiceSummary>(raw)
            .unwrap()
            .normalize(&ctx(Tz::UTC))
            .unwrap();
        assert!(summary.paid_at.is_none());
        assert_eq!(summary.total.unwrap().currency, "SEK");
    }

    #[test]
    fn the_documented_domain_normalizes_dropping_blank_nameservers() {
        let raw = serde_json::json!({
            "id": "548", "name": "example.com", "date_created": "2015-08-04", "firstpayment": "10.00",
            "recurring_amount": "10.00", "period": "1", "expires": "2016-08-04", "status": "Active",
            "next_due": "2016-08-04", "next_invoice": "2016-07-28", "idprotection": "0",
            "nameservers": ["ns1.example.com", "ns2.example.com", "ns3.example.com", ""], "autorenew": "1"
        });
        let domain = serde_json::from_value::<DomainDetail>(raw)
            .unwrap()
            .normalize(&ctx(Tz::UTC))
            .unwrap();
        let json = serde_json::to_value(&domain).unwrap();
        assert_eq!(json["id"], 548);
        assert_eq!(json["nameservers"].as_array().unwrap().len(), 3);
        assert_eq!(json["autorenew"], true);
        assert_eq!(json["id_protection"], false);
        assert_eq!(json["period_years"], 1);
        assert_eq!(
            json["first_payment"],
            serde_json::json!({"amount": "10.00", "currency": "SEK"})
        );
    }

    fn detail() -> ServiceDetail {
        serde_json::from_value(serde_json::json!({
            "id": "33337", "date_created": "2015-09-02", "domain": "example.com", "firstpayment": "10.00",
            "total": "10.00", "billingcycle": "Monthly", "next_due": "2015-10-22", "next_invoice": "2015-10-20",
            "status": "Active", "label": "", "username": "u1", "password": "p1", "rootpassword": "", "name": "Starter Hosting"
        }))
        .unwrap()
    }

    #[test]
    fn a_service_keeps_its_credentials_for_the_route_to_guard() {
        let service = serde_json::to_value(detail().normalize(&ctx(Tz::UTC)).unwrap()).unwrap();
        assert_eq!(service["credentials"]["password"], "p1");
        assert_eq!(service["credentials"]["username"], "u1");
        assert_eq!(
            service["credentials"]["root_password"],
            serde_json::Value::Null
        );
        assert_eq!(service["billing_cycle"], "monthly");
        assert_eq!(service["label"], serde_json::Value::Null);
    }
}
