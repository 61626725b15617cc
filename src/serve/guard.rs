//! Who may talk to the server: the Host header (against DNS rebinding) and the optional token.
//!
//! **Host.** A web page on `evil.example` whose name the attacker re-points at 127.0.0.1 can
//! make the browser send requests to a local server, with `Host: evil.example`, and read the
//! answers (same origin, as far as the browser knows). So the server answers only requests
//! whose Host names it: `localhost`, `127.0.0.1`, `[::1]`, the address it was bound to (`--host`)
//! and the names given with `--allow-host`, with any port. When bound to a non-loopback address
//! (`--host 0.0.0.0`, a LAN address) any IP-address Host is accepted as well: a browser sends
//! one only when it connected to that very address, which rebinding cannot fake. A request
//! without a Host header (HTTP/1.0 tools; browsers always send one) is let through. Others get
//! 421 with a one-line JSON error. `--allow-host '*'` turns the check off.
//!
//! **Token.** With `--token` (or `STN_SERVE_TOKEN`), every `/api/` request needs
//! `Authorization: Bearer TOKEN` or the `stn_token` cookie, else 401. The page at `/` holds
//! nothing secret and stays open; opening `/?token=TOKEN` sets the cookie (HttpOnly,
//! SameSite=Strict) and redirects to `/`, after which the page's own requests carry it.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error;

/// The cookie that carries the token for the page's requests.
pub const TOKEN_COOKIE: &str = "stn_token";

/// The checks, built once from the options.
#[derive(Debug)]
pub struct Guard {
    /// Lowercased host names (IPv6 addresses in brackets), without ports.
    hosts: Vec<String>,
    /// Any IP-address Host is fine (non-loopback binds).
    any_ip: bool,
    /// No Host check at all (`--allow-host '*'`).
    any_host: bool,
    token: Option<String>,
}

/// Whether `token` can be used: 8 to 256 characters, letters, digits and `-._~` only (safe in
/// a URL, a header and a cookie without escaping).
pub fn valid_token(token: &str) -> bool {
    (8..=256).contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// `name` as the Host check compares it: lowercased, IPv6 addresses in brackets, no port.
fn normalize(name: &str) -> String {
    let name = name.trim().to_ascii_lowercase();
    if name.parse::<std::net::Ipv6Addr>().is_ok() {
        return format!("[{name}]");
    }
    host_name(&name).unwrap_or(&name).to_string()
}

/// The name part of a Host header value (`name`, `name:port`, `[v6]`, `[v6]:port`), or `None`
/// when it is malformed.
fn host_name(value: &str) -> Option<&str> {
    let (name, port) = if value.starts_with('[') {
        let end = value.find(']')?;
        let rest = &value[end + 1..];
        (
            &value[..=end],
            rest.strip_prefix(':')
                .map_or((!rest.is_empty()).then_some(""), Some),
        )
    } else {
        match value.rsplit_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (value, None),
        }
    };
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    (port_ok && !name.is_empty()).then_some(name.trim_end_matches('.'))
}

/// Whether `name` (as from [`host_name`]) is an IP address.
fn is_ip(name: &str) -> bool {
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>().is_ok()
}

impl Guard {
    /// The checks for a server bound to `bind_host` (as given to `--host`), answering also to
    /// `allowed` names, with an optional token.
    pub fn new(bind_host: &str, allowed: &[String], token: Option<String>) -> Self {
        let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "[::1]"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        hosts.push(normalize(bind_host));
        hosts.extend(allowed.iter().map(|h| normalize(h)));
        let bare = bind_host.trim_start_matches('[').trim_end_matches(']');
        let any_ip = match bare.parse::<IpAddr>() {
            Ok(ip) => !ip.is_loopback(),
            // A name: whatever it resolves to, clients may use the machine's addresses.
            Err(_) => !bare.eq_ignore_ascii_case("localhost"),
        };
        Self {
            hosts,
            any_ip,
            any_host: allowed.iter().any(|h| h.trim() == "*"),
            token,
        }
    }

    /// Whether a request with this Host header value may be answered.
    pub fn host_allowed(&self, value: Option<&str>) -> bool {
        let Some(value) = value else {
            return true;
        };
        if self.any_host {
            return true;
        }
        let lower = value.to_ascii_lowercase();
        let Some(name) = host_name(&lower) else {
            return false;
        };
        self.hosts.iter().any(|h| h == name) || (self.any_ip && is_ip(name))
    }

    /// Whether the request carries the token (always true without one).
    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        let bearer = headers
            .get_all(header::AUTHORIZATION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| {
                let (scheme, rest) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            });
        let cookies = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().strip_prefix(TOKEN_COOKIE)?.strip_prefix('='));
        bearer.chain(cookies).any(|t| same(t, token))
    }
}

/// Compares in time independent of where the strings differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The `token` query parameter of `query`, if any.
fn query_token(query: Option<&str>) -> Option<&str> {
    query?.split('&').find_map(|kv| kv.strip_prefix("token="))
}

/// Middleware: the Host check for every request, the token for `/api/` ones (and `/?token=`).
pub async fn check(State(guard): State<Arc<Guard>>, req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .map(|v| v.to_str().unwrap_or("\u{fffd}"));
    if !guard.host_allowed(host) {
        let shown: String = host.unwrap_or_default().chars().take(80).collect();
        return error(
            StatusCode::MISDIRECTED_REQUEST,
            format!(
                "this server does not answer to Host {shown:?} (DNS rebinding protection): \
                 use http://localhost, or start it with --allow-host NAME"
            ),
        );
    }
    let Some(token) = &guard.token else {
        return next.run(req).await;
    };
    let path = req.uri().path();
    if path == "/" {
        return match query_token(req.uri().query()) {
            None => next.run(req).await,
            Some(t) if same(t, token) => {
                // Keep the token out of the address bar and the history.
                let cookie = format!("{TOKEN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict");
                let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
                if let Ok(v) = HeaderValue::from_str(&cookie) {
                    r.headers_mut().insert(header::SET_COOKIE, v);
                }
                r
            }
            Some(_) => unauthorized("wrong token"),
        };
    }
    if path.starts_with("/api/") && !guard.authorized(req.headers()) {
        return unauthorized("missing or wrong token");
    }
    next.run(req).await
}

fn unauthorized(what: &str) -> Response {
    let mut r = error(
        StatusCode::UNAUTHORIZED,
        format!("{what}: send Authorization: Bearer TOKEN, or open /?token=TOKEN in the browser"),
    );
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_and_ports() {
        let g = Guard::new("127.0.0.1", &["my.box".into()], None);
        for ok in [
            "localhost",
            "localhost:8080",
            "LOCALHOST.:1",
            "127.0.0.1",
            "127.0.0.1:9",
            "[::1]",
            "[::1]:8080",
            "my.box:80",
        ] {
            assert!(g.host_allowed(Some(ok)), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example",
            "10.0.0.1",
            "localhost:",
            "localhost:abc",
            "[::1",
            "",
        ] {
            assert!(!g.host_allowed(Some(bad)), "{bad}");
        }
        assert!(g.host_allowed(None));
        let any = Guard::new("0.0.0.0", &[], None);
        assert!(any.host_allowed(Some("192.168.1.5:8080")));
        assert!(any.host_allowed(Some("[fe80::1]:8080")));
        assert!(!any.host_allowed(Some("evil.example")));
        assert!(Guard::new("::1", &[], None).host_allowed(Some("[::1]:1")));
        assert!(Guard::new("127.0.0.1", &["*".into()], None).host_allowed(Some("x")));
    }

    #[test]
    fn tokens() {
        assert!(valid_token("abcDEF12-_.~"));
        assert!(!valid_token("short"));
        assert!(!valid_token("has space in it"));
        let g = Guard::new("127.0.0.1", &[], Some("s3cret-token".into()));
        let mut h = HeaderMap::new();
        assert!(!g.authorized(&h));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer s3cret-token"),
        );
        assert!(g.authorized(&h));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer s3cret-tokeN"),
        );
        assert!(!g.authorized(&h));
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=b; stn_token=s3cret-token"),
        );
        assert!(g.authorized(&h));
        assert_eq!(query_token(Some("x=1&token=abc")), Some("abc"));
    }
}
