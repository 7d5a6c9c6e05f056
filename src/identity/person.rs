//! Who a session is for and what the provider gave for it: what both
//! session stores (this instance's, and Redis's in `shared_sessions`) hold.

use std::collections::BTreeSet;

use base64::Engine;
use rand::Rng;
use secrecy::SecretString;

use crate::configuration::Scope;

/// Who logged in, as the provider's ID token said.
#[derive(Debug, Clone)]
pub struct Person {
    pub sub: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub scopes: BTreeSet<Scope>,
    /// The provider's session id, for back-channel logout.
    pub sid: Option<String>,
}

/// What the provider gave for the session: kept here only.
#[derive(Clone)]
pub struct Tokens {
    /// For RP-initiated logout's `id_token_hint`.
    pub id_token: SecretString,
    /// To renew the session; `None` when the provider issued none.
    pub refresh_token: Option<SecretString>,
    /// When to renew it (Unix seconds): three quarters into the access
    /// token's life; `None` without a refresh token.
    pub refresh_at: Option<u64>,
}

/// 32 random bytes, base64url: a state, a nonce, a PKCE verifier, a session id.
pub fn random_token() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
