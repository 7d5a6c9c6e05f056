//! What the change stream carries, as types: the event types (named once,
//! by strum), the data of a change and of a reset (whose schemas the
//! document derives from these), and `?types=`.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// The kinds of event: the SSE `event:` name and the `type` of its data,
/// `resource.change`. Named once, by `strum`: printed, parsed and listed
/// from the same attribute; the doc comment is the document's description.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
    strum::EnumMessage,
)]
pub enum EventType {
    /// A customer was created through the gateway.
    #[strum(serialize = "customer.created")]
    CustomerCreated,
    /// A customer was activated through the gateway.
    #[strum(serialize = "customer.activated")]
    CustomerActivated,
    /// A customer was suspended through the gateway.
    #[strum(serialize = "customer.suspended")]
    CustomerSuspended,
    /// The account was changed through the gateway.
    #[strum(serialize = "account.updated")]
    AccountUpdated,
    /// A new invoice appeared in Slitz.
    #[strum(serialize = "invoice.created")]
    InvoiceCreated,
    /// An invoice changed in Slitz (its status, its total…).
    #[strum(serialize = "invoice.updated")]
    InvoiceUpdated,
    /// A new support ticket appeared in Slitz.
    #[strum(serialize = "ticket.created")]
    TicketCreated,
    /// A ticket changed in Slitz (a reply, its status…).
    #[strum(serialize = "ticket.updated")]
    TicketUpdated,
    /// A new service appeared in Slitz.
    #[strum(serialize = "service.created")]
    ServiceCreated,
    /// A service changed in Slitz (suspended, renewed…).
    #[strum(serialize = "service.updated")]
    ServiceUpdated,
    /// A new domain appeared in Slitz.
    #[strum(serialize = "domain.created")]
    DomainCreated,
    /// A domain changed in Slitz (its status, its expiry…).
    #[strum(serialize = "domain.updated")]
    DomainUpdated,
}

impl EventType {
    pub const ALL: &'static [EventType] = <Self as strum::VariantArray>::VARIANTS;

    /// The SSE `event:` name: `resource.change`.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// What the event says happened, for the document.
    pub fn description(self) -> &'static str {
        strum::EnumMessage::get_documentation(&self).unwrap_or_default()
    }

    pub(crate) fn parse(name: &str) -> Option<Self> {
        name.parse().ok()
    }
}

impl Serialize for EventType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl utoipa::PartialSchema for EventType {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        let described: Vec<String> = Self::ALL
            .iter()
            .map(|t| format!("`{}`: {}", t.as_str(), t.description()))
            .collect();
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .enum_values(Some(Self::ALL.iter().map(|t| t.as_str())))
            .description(Some(format!(
                "What changed, `resource.change` (also the SSE `event:` name). {}",
                described.join(" ")
            )))
            .into()
    }
}

impl utoipa::ToSchema for EventType {}

/// The `data` of a change event of `GET /v1/events`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChangeEvent {
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// The record's id (a ticket's number).
    pub id: i64,
    /// Each field that changed, with its new value, normalized as the
    /// record's route answers it; every field for `*.created`.
    #[schema(value_type = Object, additional_properties = true)]
    pub changed: Map<String, Value>,
    /// When the gateway saw the change.
    #[schema(value_type = String, format = DateTime)]
    pub seen_at: String,
}

/// Why a stream says `event: reset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ResetReason {
    /// `Last-Event-ID` names no event this gateway knows.
    UnknownId,
    /// `Last-Event-ID` is older than the events kept (`events.replay`).
    TooOld,
    /// This reader fell too far behind (`events.buffer`); its stream ends.
    FellBehind,
    /// The gateway lost events it should have heard (Redis); the stream ends.
    Interrupted,
}

/// The `data` of `event: reset`: events were missed (a `Last-Event-ID` too
/// old or from before a restart, or a reader too slow): refetch what you
/// show, then follow the stream.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ResetEvent {
    pub reason: ResetReason,
    pub detail: &'static str,
}

/// `?types=`: the event types a subscriber wants. Each comma-separated item
/// is a type (`ticket.updated`), a resource's every type (`invoice.*`) or
/// `*`. Parses itself, so an unknown item is a 400 naming it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeFilter(Vec<EventType>);

impl TypeFilter {
    pub fn all() -> Self {
        Self(EventType::ALL.to_vec())
    }

    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut wanted = Vec::new();
        let mut unknown = Vec::new();
        for item in raw.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let matching: Vec<EventType> = EventType::ALL
                .iter()
                .copied()
                .filter(|t| {
                    item == "*"
                        || t.as_str() == item
                        || item
                            .strip_suffix(".*")
                            .is_some_and(|resource| t.as_str().split('.').next() == Some(resource))
                })
                .collect();
            if matching.is_empty() {
                unknown.push(format!("`{item}`"));
            }
            for t in matching {
                if !wanted.contains(&t) {
                    wanted.push(t);
                }
            }
        }
        if !unknown.is_empty() {
            let known: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
            return Err(format!(
                "names {} that is no event type; the types are: {} (or `resource.*`, or `*`)",
                unknown.join(", "),
                known.join(", ")
            ));
        }
        if wanted.is_empty() {
            return Err("names no event type; leave it out for every type".to_owned());
        }
        Ok(Self(wanted))
    }

    pub fn wants(&self, event_type: EventType) -> bool {
        self.0.contains(&event_type)
    }
}

impl<'de> Deserialize<'de> for TypeFilter {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}
