//! The Slitz client-area API (HostBill user API): HTTP Basic with the
//! account's email, JSON answers whose errors are `{"error":[...]}`, even
//! with status 200.

use std::time::Duration;

use chrono_tz::Tz;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::Value;

use super::{Upstream, UpstreamError, http_client, read_body};
use crate::{
    configuration::{SlitzSettings, UpstreamSettings},
    normalize::Loose,
    telemetry::{REQUEST_ID_HEADER, current_request_id},
};

const UPSTREAM: Upstream = Upstream::Slitz;

pub struct SlitzClient {
    http: reqwest::Client,
    base_url: String,
    username: String,
    password: SecretString,
    timeout: Duration,
    zone: Tz,
    currency: String,
}

impl SlitzClient {
    pub fn new(settings: &SlitzSettings, upstream: &UpstreamSettings) -> anyhow::Result<Self> {
        Ok(Self {
            http: http_client(upstream)?,
            base_url: settings.base_url.as_str().trim_end_matches('/').to_owned(),
            username: settings.username.clone(),
            password: settings.password.clone(),
            timeout: Duration::from_millis(upstream.timeout_ms),
            zone: settings.timezone,
            currency: settings.currency.clone(),
        })
    }

    /// The zone Slitz's zone-less date-times are read in.
    pub fn zone(&self) -> Tz {
        self.zone
    }

    /// The currency of amounts Slitz sends without one.
    pub fn currency(&self) -> &str {
        &self.currency
    }

    /// `GET /details`: the account's registration details.
    pub async fn details(&self) -> Result<ClientDetails, UpstreamError> {
        let envelope: DetailsEnvelope = self.get("/details").await?;
        Ok(envelope.client)
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, UpstreamError> {
        let mut request = self
            .http
            .get(format!("{}{path}", self.base_url))
            .basic_auth(&self.username, Some(self.password.expose_secret()))
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(id) = current_request_id() {
            request = request.header(REQUEST_ID_HEADER.as_str(), id);
        }
        let response = request
            .send()
            .await
            .map_err(|e| UpstreamError::from_reqwest(UPSTREAM, self.timeout, &e))?;
        let status = response.status().as_u16();
        let body = read_body(UPSTREAM, self.timeout, response).await?;
        interpret(status, &body)
    }
}

/// HostBill's answer rules: a body with an `error` key is an error whatever
/// the status; `wronglogin` means the gateway's own credentials are wrong.
fn interpret<T: DeserializeOwned>(status: u16, body: &[u8]) -> Result<T, UpstreamError> {
    if status >= 500 {
        return Err(UpstreamError::Status {
            upstream: UPSTREAM,
            status,
        });
    }
    let value: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        match serde_json::from_slice(body) {
            Ok(value) => value,
            Err(_) if !(200..300).contains(&status) && status != 404 => {
                return Err(UpstreamError::Status {
                    upstream: UPSTREAM,
                    status,
                });
            }
            Err(e) => return Err(UpstreamError::malformed(UPSTREAM, format!("not JSON: {e}"))),
        }
    };
    if let Some(error) = value.get("error") {
        let messages: Vec<String> = match error {
            Value::Array(items) => items
                .iter()
                .map(|m| m.as_str().map_or_else(|| m.to_string(), str::to_owned))
                .collect(),
            Value::String(s) => vec![s.clone()],
            other => vec![other.to_string()],
        };
        let message = messages.join("; ");
        return Err(
            if status == 401
                || status == 403
                || messages
                    .iter()
                    .any(|m| m.eq_ignore_ascii_case("wronglogin"))
            {
                UpstreamError::CredentialsRejected {
                    upstream: UPSTREAM,
                    detail: message,
                }
            } else if status == 404 {
                UpstreamError::NotFound {
                    upstream: UPSTREAM,
                    detail: message,
                }
            } else {
                UpstreamError::Rejected {
                    upstream: UPSTREAM,
                    message,
                }
            },
        );
    }
    match status {
        200..=299 => serde_json::from_value(value)
            .map_err(|e| UpstreamError::malformed(UPSTREAM, format!("unexpected shape: {e}"))),
        401 | 403 => Err(UpstreamError::CredentialsRejected {
            upstream: UPSTREAM,
            detail: format!("HTTP {status}"),
        }),
        404 => Err(UpstreamError::NotFound {
            upstream: UPSTREAM,
            detail: "slitz has no such record".to_owned(),
        }),
        _ => Err(UpstreamError::Status {
            upstream: UPSTREAM,
            status,
        }),
    }
}

#[derive(Deserialize)]
struct DetailsEnvelope {
    client: ClientDetails,
}

/// `GET /details` → `client`, as Slitz sends it. The last five fields are
/// not in the document's example but are what `POST /details` sets.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ClientDetails {
    pub id: Loose,
    pub email: Loose,
    pub lastlogin: Loose,
    pub ip: Loose,
    pub host: Loose,
    pub status: Loose,
    pub parent_id: Loose,
    pub firstname: Loose,
    pub lastname: Loose,
    pub companyname: Loose,
    pub address1: Loose,
    pub address2: Loose,
    pub city: Loose,
    pub state: Loose,
    pub postcode: Loose,
    pub country: Loose,
    pub phonenumber: Loose,
    pub datecreated: Loose,
    pub language: Loose,
    pub company: Loose,
    pub credit: Loose,
    pub privileges: Option<Value>,
    #[serde(rename = "type")]
    pub account_type: Loose,
    pub vateu: Loose,
    pub orgpersonnr: Loose,
    pub mobilephone: Loose,
    pub referens: Loose,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(status: u16, body: &str) -> UpstreamError {
        interpret::<Value>(status, body.as_bytes()).unwrap_err()
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
        assert_eq!(interpret::<Value>(200, b"").unwrap(), Value::Null);
        assert_eq!(interpret::<Option<Value>>(200, b"  \n").unwrap(), None);
    }

    #[test]
    fn the_documented_details_example_parses() {
        let body = r#"{"client":{"id":"20408","email":"email@example.com","lastlogin":"2015-09-17 09:00:20","ip":"10.10.10.100","host":"unknown","status":"Active","parent_id":"0","firstname":"John","lastname":"Doe","companyname":"Company name","address1":"Addres 1","address2":"Addres 2","city":"City","state":"Alabama","postcode":"Post code","country":"US","phonenumber":"+01.222444111","datecreated":"2015-03-16","language":"english","company":"1","credit":"0.0000","privileges":null}}"#;
        let details: DetailsEnvelope = interpret(200, body.as_bytes()).unwrap();
        assert_eq!(details.client.id.raw(), Some("20408"));
        assert_eq!(details.client.vateu.raw(), None);
    }
}
