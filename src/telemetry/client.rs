//! The client's address: the peer, or, behind proxies the gateway trusts
//! (`server.trusted_proxies`), the address they say they forward for.

use std::net::IpAddr;

/// Peers whose `X-Forwarded-For` is believed (`server.trusted_proxies`).
pub struct TrustedProxies(pub Vec<ipnet::IpNet>);

impl TrustedProxies {
    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's address: the peer, unless the peer is a trusted proxy, in
    /// which case the right-most `X-Forwarded-For` entry that is not itself a
    /// trusted proxy (entries further left could be forged by the client).
    pub fn client_ip(&self, peer: Option<IpAddr>, forwarded_for: Option<&str>) -> Option<IpAddr> {
        let peer = peer?;
        if !self.trusts(peer) {
            return Some(peer);
        }
        let Some(chain) = forwarded_for else {
            return Some(peer);
        };
        let mut client = peer;
        for hop in chain.rsplit(',') {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) => {
                    client = ip;
                    if !self.trusts(ip) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        Some(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxies = TrustedProxies(vec![
            "127.0.0.1/32".parse().unwrap(),
            "10.0.0.0/8".parse().unwrap(),
        ]);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // An untrusted peer's header is ignored.
        assert_eq!(
            proxies.client_ip(Some(ip("203.0.113.9")), Some("1.2.3.4")),
            Some(ip("203.0.113.9"))
        );
        // Through two trusted proxies, the first untrusted hop from the right is the client.
        assert_eq!(
            proxies.client_ip(
                Some(ip("127.0.0.1")),
                Some("6.6.6.6, 198.51.100.7, 10.1.2.3")
            ),
            Some(ip("198.51.100.7"))
        );
        assert_eq!(
            proxies.client_ip(Some(ip("127.0.0.1")), None),
            Some(ip("127.0.0.1"))
        );
        assert_eq!(
            proxies.client_ip(Some(ip("127.0.0.1")), Some("garbage")),
            Some(ip("127.0.0.1"))
        );
    }
}
