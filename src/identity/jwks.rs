//! The provider's signing keys: found by OpenID discovery, fetched once and
//! kept. A token naming a `kid` the gateway does not hold asks for a fresh
//! copy, at most once per `jwks_refetch_seconds` for the whole instance and
//! coalesced (callers arriving while a fetch runs wait for it instead of
//! fetching again). A failed fetch keeps the keys already held, so tokens
//! signed with them keep working while the provider is down.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use arc_swap::ArcSwap;
use jsonwebtoken::{
    Algorithm, DecodingKey,
    jwk::{AlgorithmParameters, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse},
};
use serde::Deserialize;
use url::Url;

/// One usable key: what verifies with it, and which algorithms it may.
pub(super) struct Key {
    pub decoding: DecodingKey,
    /// The algorithms a token signed with this key may name: the JWK's own
    /// `alg` when it says one, else those of its key type (within
    /// [`super::ALLOWED`]).
    pub algorithms: Vec<Algorithm>,
}

type Keys = HashMap<String, Arc<Key>>;

/// Where the provider's endpoints are, as its discovery document says.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct Endpoints {
    pub authorization_endpoint: Url,
    pub token_endpoint: Url,
    #[serde(default)]
    pub end_session_endpoint: Option<Url>,
    #[serde(default)]
    pub userinfo_endpoint: Option<Url>,
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Vec<String>,
}

pub(super) struct Jwks {
    http: reqwest::Client,
    issuer: Url,
    refetch_every: Duration,
    keys: ArcSwap<Keys>,
    endpoints: arc_swap::ArcSwapOption<Endpoints>,
    /// When the last fetch started; held while one runs, so callers queue
    /// behind it instead of fetching again.
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
}

/// What a fetch came to, for `gateway_jwks_fetches_total{outcome}`.
#[derive(Debug)]
pub(super) struct FetchError(pub String);

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: Url,
    #[serde(flatten)]
    endpoints: Option<Endpoints>,
}

impl Jwks {
    pub(super) fn new(http: reqwest::Client, issuer: Url, refetch_every: Duration) -> Self {
        Self {
            http,
            issuer,
            refetch_every,
            keys: ArcSwap::from_pointee(Keys::new()),
            endpoints: arc_swap::ArcSwapOption::empty(),
            last_fetch: tokio::sync::Mutex::new(None),
        }
    }

    /// The key `kid` names: held, or fetched when allowed.
    pub(super) async fn key(&self, kid: &str) -> Option<Arc<Key>> {
        if let Some(key) = self.keys.load().get(kid) {
            return Some(Arc::clone(key));
        }
        let mut last = self.last_fetch.lock().await;
        // Someone else's fetch may have brought it while this one waited.
        if let Some(key) = self.keys.load().get(kid) {
            return Some(Arc::clone(key));
        }
        if last.is_some_and(|at| at.elapsed() < self.refetch_every) {
            return None;
        }
        *last = Some(Instant::now());
        self.refresh().await;
        self.keys.load().get(kid).cloned()
    }

    /// The provider's endpoints: as last discovered, or discovered now when
    /// never yet (at most once per interval).
    pub(super) async fn endpoints(&self) -> Option<Arc<Endpoints>> {
        if let Some(endpoints) = self.endpoints.load_full() {
            return Some(endpoints);
        }
        self.warm().await;
        self.endpoints.load_full()
    }

    /// The HTTP client it fetches with (timeouts, no redirects).
    pub(super) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Fetches the keys now (at start, so the first token need not wait),
    /// unless a fetch ran within the interval.
    pub(super) async fn warm(&self) {
        let mut last = self.last_fetch.lock().await;
        if last.is_some_and(|at| at.elapsed() < self.refetch_every) {
            return;
        }
        *last = Some(Instant::now());
        self.refresh().await;
    }

    async fn refresh(&self) {
        match self.fetch().await {
            Ok((keys, endpoints)) => {
                if let Some(endpoints) = endpoints {
                    self.endpoints.store(Some(Arc::new(endpoints)));
                }
                metrics::counter!("gateway_jwks_fetches_total", "outcome" => "ok").increment(1);
                tracing::info!(
                    keys = keys.len(),
                    "fetched the identity provider's signing keys"
                );
                self.keys.store(Arc::new(keys));
            }
            Err(FetchError(detail)) => {
                metrics::counter!("gateway_jwks_fetches_total", "outcome" => "error").increment(1);
                tracing::warn!(
                    detail,
                    held = self.keys.load().len(),
                    "could not fetch the identity provider's signing keys; keeping those held"
                );
            }
        }
    }

    async fn fetch(&self) -> Result<(Keys, Option<Endpoints>), FetchError> {
        let issuer = self.issuer.as_str().trim_end_matches('/');
        let discovery: Discovery = get_json(
            &self.http,
            &format!("{issuer}/.well-known/openid-configuration"),
        )
        .await?;
        // OpenID Connect Discovery 1.0, 4.3: the document names the same issuer.
        if discovery.issuer.trim_end_matches('/') != issuer {
            return Err(FetchError(format!(
                "discovery names issuer `{}`, not `{issuer}`",
                discovery.issuer
            )));
        }
        let set: JwkSet = get_json(&self.http, discovery.jwks_uri.as_str()).await?;
        let keys = set
            .keys
            .iter()
            .filter_map(|jwk| Some((jwk.common.key_id.clone()?, Arc::new(usable(jwk)?))))
            .collect();
        Ok((keys, discovery.endpoints))
    }
}

async fn get_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
) -> Result<T, FetchError> {
    let answer = http
        .get(url)
        .send()
        .await
        .map_err(|e| FetchError(format!("{url}: {e}")))?;
    if !answer.status().is_success() {
        return Err(FetchError(format!("{url} answered {}", answer.status())));
    }
    answer
        .json()
        .await
        .map_err(|e| FetchError(format!("{url}: {e}")))
}

/// A signing key the gateway will verify with: an RSA, EC or OKP public key
/// meant for signatures; symmetric keys (`oct`) and encryption keys never.
fn usable(jwk: &Jwk) -> Option<Key> {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return None;
    }
    let family: &[Algorithm] = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => &[
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ],
        AlgorithmParameters::EllipticCurve(_) => &[Algorithm::ES256, Algorithm::ES384],
        AlgorithmParameters::OctetKeyPair(_) => &[Algorithm::EdDSA],
        _ => return None,
    };
    let algorithms = match jwk.common.key_algorithm {
        None => family.to_vec(),
        Some(named) => {
            let named = signing_algorithm(named)?;
            if !family.contains(&named) {
                return None;
            }
            vec![named]
        }
    };
    let decoding = DecodingKey::from_jwk(jwk).ok()?;
    Some(Key {
        decoding,
        algorithms,
    })
}

fn signing_algorithm(named: KeyAlgorithm) -> Option<Algorithm> {
    Some(match named {
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}
