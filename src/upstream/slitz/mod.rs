//! The Slitz client-area API (HostBill user API): HTTP Basic with the
//! account's email, JSON answers whose errors are `{"error":[...]}`, even
//! with status 200.

use std::time::Duration;

use chrono_tz::Tz;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{
    Answer, Upstream, UpstreamError, breaker::Breakers, drift::Watch, exchange, http_client,
    operation::SlitzOperation, policy::Policy,
};
use crate::{
    configuration::{SlitzSettings, UpstreamSettings},
    domain::AccountField,
    model,
};

mod wire;

use wire::{
    AvailabilityEnvelope, BalanceEnvelope, Context, DetailsEnvelope, DomainEnvelope,
    DomainsEnvelope, InvoiceEnvelope, InvoicesEnvelope, Normalize, ServiceEnvelope,
    ServicesEnvelope, TicketEnvelope, TicketsEnvelope,
};

const UPSTREAM: Upstream = Upstream::Slitz;

use SlitzOperation::*;

pub struct SlitzClient {
    policy: Policy<SlitzOperation>,
    http: reqwest::Client,
    base_url: String,
    username: String,
    password: SecretString,
    timeout: Duration,
    context: Context,
    drift: Watch<SlitzOperation>,
}

impl SlitzClient {
    pub fn new(settings: &SlitzSettings, upstream: &UpstreamSettings) -> anyhow::Result<Self> {
        Ok(Self {
            policy: Policy::new(upstream),
            http: http_client(upstream)?,
            base_url: settings.base_url.as_str().trim_end_matches('/').to_owned(),
            username: settings.username.clone(),
            password: settings.password.clone(),
            timeout: Duration::from_millis(upstream.timeout_ms),
            context: Context {
                zone: settings.timezone,
                currency: settings.currency.clone(),
            },
            drift: Watch::default(),
        })
    }

    /// The circuit breakers: the whole upstream's and each operation's.
    pub fn breakers(&self) -> &Breakers<SlitzOperation> {
        self.policy.breakers()
    }

    /// The calls allowed in flight now (`max_concurrency`, or the adaptive limit under it).
    pub fn concurrency_limit(&self) -> usize {
        self.policy.concurrency_limit()
    }

    /// The zone Slitz's zone-less date-times are read in.
    pub fn zone(&self) -> Tz {
        self.context.zone
    }

    /// A wire answer as the gateway's resource; one that does not normalize
    /// is a malformed answer, naming the field.
    fn normalize<W: Normalize>(&self, wire: W) -> Result<W::Api, UpstreamError> {
        wire.normalize(&self.context)
            .map_err(|e| UpstreamError::from((UPSTREAM, e)))
    }

    /// `GET /details`: the account's registration details.
    pub async fn details(&self) -> Result<model::Account, UpstreamError> {
        let envelope: DetailsEnvelope = self.get(GetDetails, "/details").await?;
        self.normalize(envelope.client)
    }

    /// `POST /details`: sets the given fields (`""` clears one). Not
    /// retried: the caller decides.
    pub async fn update_details(
        &self,
        fields: &[(AccountField, &str)],
    ) -> Result<(), UpstreamError> {
        let form: Vec<(&str, String)> = fields
            .iter()
            .map(|(field, value)| (details_field(*field), (*value).to_owned()))
            .collect();
        let _: serde_json::Value = self.post(PostDetails, "/details", &form, false).await?;
        Ok(())
    }

    /// `GET /balance`.
    pub async fn balance(&self) -> Result<model::Balance, UpstreamError> {
        let envelope: BalanceEnvelope = self.get(GetBalance, "/balance").await?;
        self.normalize(envelope)
    }

    /// `GET /invoice`.
    pub async fn invoices(&self) -> Result<Vec<model::InvoiceSummary>, UpstreamError> {
        let envelope: InvoicesEnvelope = self.get(ListInvoices, "/invoice").await?;
        self.normalize(envelope.invoices.unwrap_or_default())
    }

    /// `GET /invoice/{id}`: the invoice, its items and the billed account.
    pub async fn invoice(&self, id: i64) -> Result<model::Invoice, UpstreamError> {
        let envelope: InvoiceEnvelope = self
            .get_record(GetInvoice, &format!("/invoice/{id}"))
            .await?;
        self.normalize(envelope.invoice)
    }

    /// `GET /tickets`.
    pub async fn tickets(&self) -> Result<Vec<model::TicketSummary>, UpstreamError> {
        let envelope: TicketsEnvelope = self.get(ListTickets, "/tickets").await?;
        self.normalize(envelope.tickets.unwrap_or_default())
    }

    /// `GET /tickets/{number}`: the ticket and its replies.
    pub async fn ticket(&self, number: i64) -> Result<model::Ticket, UpstreamError> {
        let envelope: TicketEnvelope = self
            .get_record(GetTicket, &format!("/tickets/{number}"))
            .await?;
        self.normalize(envelope)
    }

    /// `GET /domain`.
    pub async fn domains(&self) -> Result<Vec<model::DomainSummary>, UpstreamError> {
        let envelope: DomainsEnvelope = self.get(ListDomains, "/domain").await?;
        self.normalize(envelope.domains.unwrap_or_default())
    }

    /// `GET /domain/{id}`.
    pub async fn domain(&self, id: i64) -> Result<model::Domain, UpstreamError> {
        let envelope: DomainEnvelope = self.get_record(GetDomain, &format!("/domain/{id}")).await?;
        self.normalize(envelope.details)
    }

    /// `POST /domainorder/status`: `{"details":{"status":"ok"}}` when the name
    /// can be registered, an empty body when it cannot.
    pub async fn domain_available(&self, name: &str) -> Result<bool, UpstreamError> {
        let answer: Option<AvailabilityEnvelope> = self
            // A question, not a change: safe to ask again.
            .post(
                DomainAvailability,
                "/domainorder/status",
                &[("name", name.to_owned())],
                true,
            )
            .await?;
        match answer {
            None => Ok(false),
            Some(a) => match a.details.and_then(|d| d.status.text()) {
                Some(status) if status.eq_ignore_ascii_case("ok") => Ok(true),
                Some(other) => Err(UpstreamError::malformed(
                    UPSTREAM,
                    format!("domain status `{other}`, expected `ok` or an empty body"),
                )),
                None => Err(UpstreamError::malformed(UPSTREAM, "domain status missing")),
            },
        }
    }

    /// `GET /service`.
    pub async fn services(&self) -> Result<Vec<model::ServiceSummary>, UpstreamError> {
        let envelope: ServicesEnvelope = self.get(ListServices, "/service").await?;
        self.normalize(envelope.services.unwrap_or_default())
    }

    /// `GET /service/{id}`, credentials included: the caller decides who sees them.
    pub async fn service(&self, id: i64) -> Result<model::Service, UpstreamError> {
        let envelope: ServiceEnvelope = self
            .get_record(GetService, &format!("/service/{id}"))
            .await?;
        self.normalize(envelope.service)
    }

    /// Reads are idempotent: retried on faults within the deadline.
    /// `operation` names the call in metrics: method and path template.
    async fn get<T: DeserializeOwned>(
        &self,
        operation: SlitzOperation,
        path: &str,
    ) -> Result<T, UpstreamError> {
        let url = format!("{}{path}", self.base_url);
        self.policy
            .run(operation, true, || {
                self.send(operation, self.http.get(&url))
            })
            .await
    }

    /// A read of one record by its id: an error saying the id is unknown is a 404.
    async fn get_record<T: DeserializeOwned>(
        &self,
        operation: SlitzOperation,
        path: &str,
    ) -> Result<T, UpstreamError> {
        self.get(operation, path).await.map_err(unknown_record)
    }

    /// HostBill reads parameters of a POST from the form body.
    async fn post<T: DeserializeOwned>(
        &self,
        operation: SlitzOperation,
        path: &str,
        form: &[(&str, String)],
        idempotent: bool,
    ) -> Result<T, UpstreamError> {
        let url = format!("{}{path}", self.base_url);
        self.policy
            .run(operation, idempotent, || {
                self.send(operation, self.http.post(&url).form(form))
            })
            .await
    }

    /// One call; a successful answer is compared with its documented shape.
    async fn send<T: DeserializeOwned>(
        &self,
        operation: SlitzOperation,
        request: reqwest::RequestBuilder,
    ) -> Result<T, UpstreamError> {
        let request = request.basic_auth(&self.username, Some(self.password.expose_secret()));
        interpret(exchange(UPSTREAM, self.timeout, request).await?, |answer| {
            self.drift.check(operation, answer);
        })
    }
}

/// What a Slitz answer means. HostBill says `wronglogin` (with status 200)
/// when the gateway's own credentials are wrong. `inspect` sees a
/// successful answer before it is read.
fn interpret<T: DeserializeOwned>(
    answer: Answer,
    inspect: impl FnOnce(&Value),
) -> Result<T, UpstreamError> {
    match answer {
        Answer::Success(body) => {
            let value: Value = if body.iter().all(u8::is_ascii_whitespace) {
                Value::Null
            } else {
                serde_json::from_slice(&body)
                    .map_err(|e| UpstreamError::malformed(UPSTREAM, format!("not JSON: {e}")))?
            };
            inspect(&value);
            serde_json::from_value(value)
                .map_err(|e| UpstreamError::malformed(UPSTREAM, format!("unexpected shape: {e}")))
        }
        Answer::Unauthenticated(detail) | Answer::Forbidden(detail) => {
            Err(UpstreamError::CredentialsRejected {
                upstream: UPSTREAM,
                detail,
            })
        }
        Answer::NotFound(message) => Err(UpstreamError::NotFound {
            upstream: UPSTREAM,
            detail: format!("slitz has no such record: {message}"),
        }),
        Answer::Invalid { message, .. } | Answer::Refused { message, .. } => {
            Err(UpstreamError::Rejected {
                upstream: UPSTREAM,
                message,
            })
        }
    }
}

/// HostBill answers a record that does not exist, or is not the caller's,
/// with an error saying the id is unknown or invalid, often with status 200:
/// on a read of one record, that is a 404.
fn unknown_record(error: UpstreamError) -> UpstreamError {
    match error {
        UpstreamError::Rejected { message, .. } if says_unknown(&message) => {
            UpstreamError::NotFound {
                upstream: UPSTREAM,
                detail: format!("slitz has no such record: {message}"),
            }
        }
        other => other,
    }
}

fn says_unknown(message: &str) -> bool {
    let m = message.to_lowercase();
    [
        "not found",
        "does not exist",
        "no such",
        "unknown",
        "invalid",
        "not yours",
        "access denied",
    ]
    .iter()
    .any(|phrase| m.contains(phrase))
}

/// The name `POST /details` knows a changeable field by.
fn details_field(field: AccountField) -> &'static str {
    use AccountField as F;
    match field {
        F::FirstName => "firstname",
        F::LastName => "lastname",
        F::CompanyName => "companyname",
        F::Address => "address1",
        F::Address2 => "address2",
        F::City => "city",
        F::State => "state",
        F::Zipcode => "postcode",
        F::Country => "country",
        F::Phone => "phonenumber",
        F::MobilePhone => "mobilephone",
        F::AccountType => "type",
        F::EuVatNumber => "vateu",
        F::OrgNumber => "orgpersonnr",
        F::Reference => "referens",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::classify;

    fn err(status: u16, body: &str) -> UpstreamError {
        classify(
            UPSTREAM,
            status,
            &reqwest::header::HeaderMap::new(),
            body.as_bytes().to_vec(),
        )
        .and_then(|answer| interpret::<Value>(answer, |_| {}))
        .unwrap_err()
    }

    #[test]
    fn wronglogin_with_status_200_is_rejected_credentials() {
        assert!(matches!(
            err(200, r#"{"error":["wronglogin"]}"#),
            UpstreamError::CredentialsRejected { .. }
        ));
    }

    #[test]
    fn an_error_body_with_404_is_not_found_and_other_errors_are_rejections() {
        assert!(matches!(
            err(404, r#"{"error":["Invoice not found"]}"#),
            UpstreamError::NotFound { .. }
        ));
        match err(200, r#"{"error":["Nothing to update"]}"#) {
            UpstreamError::Rejected { message, .. } => assert_eq!(message, "Nothing to update"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_unknown_id_said_with_status_200_is_not_found_on_a_record_read() {
        for body in [
            r#"{"error":["Invalid invoice id"]}"#,
            r#"{"error":["Ticket not found"]}"#,
            r#"{"error":["Unknown domain"]}"#,
        ] {
            assert!(
                matches!(
                    unknown_record(err(200, body)),
                    UpstreamError::NotFound { .. }
                ),
                "{body}"
            );
        }
        assert!(matches!(
            unknown_record(err(200, r#"{"error":["Database is down"]}"#)),
            UpstreamError::Rejected { .. }
        ));
        assert!(matches!(
            unknown_record(err(200, r#"{"error":["wronglogin"]}"#)),
            UpstreamError::CredentialsRejected { .. }
        ));
    }

    #[test]
    fn server_errors_and_garbage_are_told_apart() {
        assert!(matches!(
            err(500, "<html>"),
            UpstreamError::Status { status: 500, .. }
        ));
        assert!(matches!(
            err(200, r#"{"client": {"#),
            UpstreamError::Malformed { .. }
        ));
        assert!(matches!(
            err(401, ""),
            UpstreamError::CredentialsRejected { .. }
        ));
    }

    #[test]
    fn an_empty_body_reads_as_null() {
        let ok = |body: &str| {
            classify(
                UPSTREAM,
                200,
                &reqwest::header::HeaderMap::new(),
                body.as_bytes().to_vec(),
            )
            .unwrap()
        };
        assert_eq!(interpret::<Value>(ok(""), |_| {}).unwrap(), Value::Null);
        assert_eq!(
            interpret::<Option<Value>>(ok("  \n"), |_| {}).unwrap(),
            None
        );
    }

    #[test]
    fn the_documented_details_example_parses() {
        let body = r#"{"client":{"id":"20408","email":"email@example.com","lastlogin":"2015-09-17 09:00:20","ip":"10.10.10.100","host":"unknown","status":"Active","parent_id":"0","firstname":"John","lastname":"Doe","companyname":"Company name","address1":"Addres 1","address2":"Addres 2","city":"City","state":"Alabama","postcode":"Post code","country":"US","phonenumber":"+01.222444111","datecreated":"2015-03-16","language":"english","company":"1","credit":"0.0000","privileges":null}}"#;
        let details: DetailsEnvelope = interpret(
            classify(
                UPSTREAM,
                200,
                &reqwest::header::HeaderMap::new(),
                body.as_bytes().to_vec(),
            )
            .unwrap(),
            |_| {},
        )
        .unwrap();
        assert_eq!(details.client.id.raw(), Some("20408"));
        assert_eq!(details.client.vateu.raw(), None);
    }
}
