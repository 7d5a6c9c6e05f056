//! Every call each upstream client makes, as a type: [`SlitzOperation`] and
//! [`DnaOperation`]. A client's circuit breakers, drift watch and policy are
//! made for its own enum (so a Slitz call cannot be counted against a DNA
//! breaker, and an operation cannot be misspelt), and a route declares the
//! calls it makes with them ([`Operation`], in `RouteSpec::upstream`).
//!
//! Each variant's name in metrics, logs, `/healthz` and the documented
//! answers of `documented/*.json` is its method and path template
//! (`GET /invoice/{id}`), given once here through strum.
//!
//! A leaf: it names configuration's `Upstream` and nothing else.

use std::{fmt::Debug, hash::Hash};

use strum::{IntoStaticStr, VariantArray};

use crate::configuration::Upstream;

/// What a client's policy, breakers and drift watch need of its operations.
pub trait ClientOperation:
    Copy + Eq + Ord + Hash + Debug + Send + Sync + 'static + Into<&'static str> + VariantArray
{
    /// The upstream the operations are calls to.
    const UPSTREAM: Upstream;

    /// The operation's place in [`VariantArray::VARIANTS`].
    fn index(self) -> usize;

    /// Method and path template: the `operation` label.
    fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Every call the Slitz client makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, IntoStaticStr, VariantArray)]
pub enum SlitzOperation {
    #[strum(serialize = "GET /details")]
    GetDetails,
    #[strum(serialize = "POST /details")]
    PostDetails,
    #[strum(serialize = "GET /balance")]
    GetBalance,
    #[strum(serialize = "GET /invoice")]
    ListInvoices,
    #[strum(serialize = "GET /invoice/{id}")]
    GetInvoice,
    #[strum(serialize = "GET /tickets")]
    ListTickets,
    #[strum(serialize = "GET /tickets/{number}")]
    GetTicket,
    #[strum(serialize = "GET /domain")]
    ListDomains,
    #[strum(serialize = "GET /domain/{id}")]
    GetDomain,
    #[strum(serialize = "POST /domainorder/status")]
    DomainAvailability,
    #[strum(serialize = "GET /service")]
    ListServices,
    #[strum(serialize = "GET /service/{id}")]
    GetService,
}

impl ClientOperation for SlitzOperation {
    const UPSTREAM: Upstream = Upstream::Slitz;

    fn index(self) -> usize {
        self as usize
    }
}

/// Every call the DNA client makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, IntoStaticStr, VariantArray)]
pub enum DnaOperation {
    /// The password grant and the refresh grant.
    #[strum(serialize = "POST /oauth/token")]
    Token,
    #[strum(serialize = "POST /residential/client")]
    CreateClient,
    /// `activate` or `suspend`.
    #[strum(serialize = "POST /residential/client/{id}/{action}")]
    ChangeStatus,
}

impl ClientOperation for DnaOperation {
    const UPSTREAM: Upstream = Upstream::Dna;

    fn index(self) -> usize {
        self as usize
    }
}

/// An upstream call a route makes, of either client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    Slitz(SlitzOperation),
    Dna(DnaOperation),
}

impl Operation {
    pub fn upstream(self) -> Upstream {
        match self {
            Self::Slitz(_) => Upstream::Slitz,
            Self::Dna(_) => Upstream::Dna,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Slitz(operation) => operation.as_str(),
            Self::Dna(operation) => operation.as_str(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn indexed<O: ClientOperation>() {
        for (i, operation) in O::VARIANTS.iter().enumerate() {
            assert_eq!(operation.index(), i, "{operation:?}");
            let (method, path) = operation.as_str().split_once(' ').expect("method and path");
            assert!(matches!(method, "GET" | "POST"), "{operation:?}");
            assert!(path.starts_with('/'), "{operation:?}");
        }
    }

    #[test]
    fn each_operation_is_its_place_and_a_method_and_path() {
        indexed::<SlitzOperation>();
        indexed::<DnaOperation>();
        assert_eq!(
            Operation::Dna(DnaOperation::ChangeStatus).as_str(),
            "POST /residential/client/{id}/{action}"
        );
        assert_eq!(
            Operation::Slitz(SlitzOperation::GetInvoice).upstream(),
            Upstream::Slitz
        );
    }
}
