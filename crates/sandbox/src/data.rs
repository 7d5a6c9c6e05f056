//! Credentials and seed data of the simulators. Shapes and types follow the
//! upstream documents: Slitz numbers as strings (and sometimes numbers), zero
//! dates for "never", `""` for empty, `"1"`/`"0"` flags.
#![allow(
    clippy::arithmetic_side_effects,
    reason = "seed data: small constants and today's date, computed once at start-up"
)]

use chrono::{Duration, NaiveDate};
use serde_json::{Value, json};

pub const DNA_CLIENT_ID: &str = "3";
pub const DNA_CLIENT_SECRET: &str = "sandbox-dna-client-secret";
pub const DNA_USERNAME: &str = "api@sandbox.example";
pub const DNA_PASSWORD: &str = "sandbox-dna-password";
pub const DNA_SCOPE: &str = "residential";

/// The zone of the sandbox account: its dates are written for this zone,
/// and the sandbox gateway reads them in it.
pub const ZONE: chrono_tz::Tz = chrono_tz::Europe::Stockholm;

pub const SLITZ_EMAIL: &str = "anna.lindqvist@example.se";
pub const SLITZ_PASSWORD: &str = "sandbox-slitz-password";

/// The gateway's client at the simulated identity provider (`/idp`).
pub const IDP_CLIENT_ID: &str = "gateway-web";
pub const IDP_CLIENT_SECRET: &str = "sandbox-idp-client-secret";

/// Someone who can log in at the simulated identity provider.
#[derive(Debug)]
pub struct Person {
    pub sub: &'static str,
    pub name: &'static str,
    pub email: &'static str,
    pub groups: &'static [&'static str],
}

/// The sandbox's people; sandbox mode maps `gateway-readers` to `read`,
/// `gateway-writers` to `read` and `write`, `gateway-admins` to every scope.
pub const PEOPLE: &[Person] = &[
    Person {
        sub: "alice",
        name: "Alice Andersson",
        email: "alice@example.com",
        groups: &["gateway-readers"],
    },
    Person {
        sub: "bob",
        name: "Bob Berg",
        email: "bob@example.com",
        groups: &["gateway-writers"],
    },
    Person {
        sub: "dana",
        name: "Dana Dahl",
        email: "dana@example.com",
        groups: &["gateway-admins"],
    },
    Person {
        sub: "carol",
        name: "Carol Carlsson",
        email: "carol@example.com",
        groups: &[],
    },
];

fn day(today: NaiveDate, offset: i64) -> String {
    (today + Duration::days(offset))
        .format("%Y-%m-%d")
        .to_string()
}

fn at(today: NaiveDate, offset: i64, time: &str) -> String {
    format!("{} {time}", day(today, offset))
}

pub(super) fn account(today: NaiveDate) -> Value {
    json!({
        "id": "20408",
        "email": SLITZ_EMAIL,
        "lastlogin": at(today, -3, "09:00:20"),
        "ip": "10.10.10.100",
        "host": "unknown",
        "status": "Active",
        "parent_id": "0",
        "firstname": "Anna",
        "lastname": "Lindqvist",
        "companyname": "Lindqvist Konsult AB",
        "address1": "Storgatan 12",
        "address2": "",
        "city": "Uppsala",
        "state": "Uppsala län",
        "postcode": "753 20",
        "country": "SE",
        "phonenumber": "+46.701234567",
        "datecreated": "2015-03-16",
        "language": "swedish",
        "company": "1",
        "credit": "0.0000",
        "privileges": null
    })
}

/// Invoices as the detail route shows them (numbers as numbers there, as the
/// document's example does); the list route shows a subset as strings.
pub(super) fn invoices(today: NaiveDate) -> Vec<Value> {
    let invoice = |id: u64,
                   number: &str,
                   status: &str,
                   date: i64,
                   paid: Option<&str>,
                   currency: &str,
                   items: Vec<(u64, &str, &str, &str)>| {
        let subtotal: f64 = items
            .iter()
            .map(|(_, _, _, amount)| amount.parse::<f64>().unwrap_or(0.0))
            .sum();
        json!({
            "id": id.to_string(),
            "status": status,
            "date": day(today, date),
            "duedate": day(today, date + 14),
            "paybefore": day(today, date + 14),
            "datepaid": paid.map(str::to_owned).unwrap_or_else(|| "0000-00-00 00:00:00".to_owned()),
            "number": number,
            "currency": currency,
            "subtotal": subtotal,
            "credit": 0,
            "tax": 0,
            "taxrate": 25,
            "tax2": 0,
            "taxrate2": 0,
            "taxexempt": "0",
            "total": subtotal,
            "rate": 1,
            "rate2": 0,
            "rate3": 1,
            "notes": "",
            "merge_id": null,
            "items": items.iter().enumerate().map(|(i, (item_id, kind, description, amount))| json!({
                "id": (id * 10 + i as u64).to_string(),
                "invoice_id": id.to_string(),
                "type": kind,
                "item_id": item_id.to_string(),
                "description": description,
                "amount": amount,
                "taxed": "1",
                "qty": "1.00",
                "linetotal": amount
            })).collect::<Vec<_>>()
        })
    };
    let paid_at = |offset: i64| at(today, offset, "13:13:37");
    let mut documented = invoice(
        303090,
        "2015-09-25",
        "Paid",
        0,
        Some("2015-09-10 13:13:37"),
        "USD",
        vec![(
            33334,
            "Hosting",
            "Hosting - Starter Hosting (2015.08.05 - 2015.09.04)",
            "58.50",
        )],
    );
    // The document's own example, dates and all.
    if let Some(fields) = documented.as_object_mut() {
        for key in ["date", "duedate", "paybefore"] {
            fields.insert(key.into(), json!("2015-08-05"));
        }
    }
    vec![
        documented,
        invoice(
            310001,
            "SLZ-2026-0101",
            "Paid",
            -75,
            Some(&paid_at(-70)),
            "SEK",
            vec![
                (33301, "Hosting", "Starter Hosting (monthly)", "149.00"),
                (548, "Domain", "Domain renewal - lindqvist.se", "99.50"),
            ],
        ),
        invoice(
            310002,
            "SLZ-2026-0102",
            "Unpaid",
            -20,
            None,
            "SEK",
            vec![(33301, "Hosting", "Starter Hosting (monthly)", "149.00")],
        ),
        invoice(
            310003,
            "SLZ-2026-0103",
            "Unpaid",
            -5,
            None,
            "SEK",
            vec![
                (33337, "VPS", "VPS Medium (monthly)", "299.00"),
                (
                    549,
                    "Domain",
                    "Domain registration - konsult-lindqvist.com",
                    "125.5",
                ),
            ],
        ),
        invoice(
            310004,
            "SLZ-2026-0104",
            "Cancelled",
            -40,
            None,
            "SEK",
            vec![(33338, "Other", "Backup add-on", "49.00")],
        ),
    ]
}

pub(super) fn invoice_summary(invoice: &Value) -> Value {
    let total = invoice["total"].as_f64().unwrap_or(0.0);
    json!({
        "id": invoice["id"],
        "date": invoice["date"],
        "duedate": invoice["duedate"],
        "paybefore": invoice["paybefore"],
        "total": format!("{total:.2}"),
        "datepaid": invoice["datepaid"],
        "status": invoice["status"],
        "merge_id": invoice["merge_id"],
        "number": invoice["number"],
        "currency": invoice["currency"]
    })
}

/// Tickets with their replies.
pub(super) fn tickets(today: NaiveDate) -> Vec<(Value, Vec<Value>)> {
    vec![
        (
            json!({
                "date": at(today, -2, "12:01:45"), "ticket_number": "437928",
                "name": "Anna Lindqvist", "email": SLITZ_EMAIL,
                "subject": "Mail stops arriving after 18:00", "status": "Open",
                "client_read": "1", "deptname": "Support Tickets"
            }),
            vec![
                json!({"id": "57", "name": "Anna Lindqvist", "date": at(today, -2, "12:01:45"),
                       "body": "Since Monday no mail arrives after 18:00.", "status": "Sent", "type": "Client"}),
                json!({"id": "58", "name": "Support", "date": at(today, -1, "08:05:46"),
                       "body": "We are looking into the mail queue.", "status": "Sent", "type": "Admin"}),
            ],
        ),
        (
            json!({
                "date": at(today, -9, "16:30:00"), "ticket_number": "437811",
                "name": "Anna Lindqvist", "email": SLITZ_EMAIL,
                "subject": "Invoice address change", "status": "Answered",
                "client_read": "0", "deptname": "Billing"
            }),
            vec![
                json!({"id": "51", "name": "Anna Lindqvist", "date": at(today, -9, "16:30:00"),
                       "body": "Please put our new address on invoices.", "status": "Sent", "type": "Client"}),
                json!({"id": "52", "name": "Billing", "date": at(today, -8, "10:12:09"),
                       "body": "Done: change it under account details next time.", "status": "Sent", "type": "Admin"}),
            ],
        ),
        (
            json!({
                "date": "2025-11-02 09:15:00", "ticket_number": "401200",
                "name": "Anna Lindqvist", "email": SLITZ_EMAIL,
                "subject": "DNS for old-brand.se", "status": "Closed",
                "client_read": "1", "deptname": "Support Tickets"
            }),
            vec![
                json!({"id": "12", "name": "Anna Lindqvist", "date": "2025-11-02 09:15:00",
                        "body": "Please point old-brand.se at our new host.", "status": "Sent", "type": "Client"}),
            ],
        ),
    ]
}

/// Domains in their detail shape; one expires within a month.
pub(super) fn domains(today: NaiveDate) -> Vec<Value> {
    vec![
        json!({
            "id": "548", "name": "lindqvist.se", "date_created": "2015-08-04",
            "firstpayment": "99.50", "recurring_amount": "99.50", "period": "1",
            "expires": day(today, 12), "status": "Active",
            "next_due": day(today, 12), "next_invoice": day(today, 5),
            "idprotection": "0",
            "nameservers": ["ns1.slitz.se", "ns2.slitz.se", "ns3.slitz.se", ""],
            "autorenew": "0"
        }),
        json!({
            "id": "549", "name": "konsult-lindqvist.com", "date_created": day(today, -160),
            "firstpayment": "125.50", "recurring_amount": "125.50", "period": "1",
            "expires": day(today, 205), "status": "Active",
            "next_due": day(today, 205), "next_invoice": day(today, 198),
            "idprotection": "1",
            "nameservers": ["ns1.slitz.se", "ns2.slitz.se", "", ""],
            "autorenew": "1"
        }),
        json!({
            "id": "412", "name": "old-brand.se", "date_created": "2019-02-01",
            "firstpayment": "99.00", "recurring_amount": "99.00", "period": "2",
            "expires": "2025-02-01", "status": "Expired",
            "next_due": "2025-02-01", "next_invoice": "0000-00-00",
            "idprotection": "0",
            "nameservers": ["", "", "", ""],
            "autorenew": "0"
        }),
    ]
}

pub(super) fn domain_summary(domain: &Value, today: NaiveDate) -> Value {
    let days = domain["expires"]
        .as_str()
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .map(|d| (d - today).num_days().max(0))
        .unwrap_or(0);
    json!({
        "id": domain["id"], "name": domain["name"], "expires": domain["expires"],
        "recurring_amount": domain["recurring_amount"], "date_created": domain["date_created"],
        "status": domain["status"], "period": domain["period"], "autorenew": domain["autorenew"],
        "daytoexpire": days.to_string()
    })
}

/// Services in their detail shape, some with credentials.
pub(super) fn services(today: NaiveDate) -> Vec<(Value, Value)> {
    let service = |id: &str,
                   domain: &str,
                   total: &str,
                   status: &str,
                   cycle: &str,
                   category: &str,
                   url: &str,
                   name: &str,
                   creds: (&str, &str, &str)| {
        let detail = json!({
            "id": id, "date_created": day(today, -400), "domain": domain,
            "firstpayment": total, "total": total, "billingcycle": cycle,
            "next_due": day(today, 25), "next_invoice": day(today, 20),
            "status": status, "label": "",
            "username": creds.0, "password": creds.1, "rootpassword": creds.2,
            "name": name
        });
        let summary = json!({
            "id": id, "domain": domain, "total": format!("{total}00"), "status": status,
            "billingcycle": cycle, "next_due": day(today, 25), "category": category,
            "category_url": url, "name": name
        });
        (detail, summary)
    };
    vec![
        service(
            "33301",
            "lindqvist.se",
            "149.00",
            "Active",
            "Monthly",
            "Hosting",
            "hosting",
            "Starter Hosting",
            ("lindqv01", "Xk3#pL9!qa", ""),
        ),
        service(
            "33337",
            "vps1.lindqvist.se",
            "299.00",
            "Active",
            "Monthly",
            "VPS",
            "vps",
            "VPS Medium",
            ("root", "", "Rt7$wQ2@zz"),
        ),
        service(
            "33338",
            "",
            "49.00",
            "Suspended",
            "Monthly",
            "Other",
            "other",
            "Backup add-on",
            ("", "", ""),
        ),
    ]
}

/// Names the domain registry says are taken, besides the account's own.
pub(super) const TAKEN_DOMAINS: &[&str] = &["example.com", "google.com", "slitz.se", "nexogy.com"];
