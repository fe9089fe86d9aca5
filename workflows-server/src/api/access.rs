//! Who may call the API: the name a request is addressed to (`Host`), the page that sends it
//! (`Origin`, `Sec-Fetch-Site`), and the token it bears (`Authorization`).
//!
//! Checked in that order, before any route runs, so that a refused request has done nothing:
//!
//! 1. `Host`: while the server listens on loopback only, a request must be addressed to a
//!    loopback name (or one of [`Config::allowed_hosts`]). A web page whose domain an attacker
//!    points at 127.0.0.1 (DNS rebinding) names that domain, and is refused.
//! 2. Origin: a request a browser sends from a page of another origin is refused unless
//!    [`Config::cors`] allows that origin. This covers what CORS does not: the "simple"
//!    requests (a form, a `text/plain` POST) that a browser sends without a preflight and
//!    that would otherwise start or answer runs even though the page cannot read the answer.
//!    Following a link to the page (a top-level GET navigation) is always allowed.
//! 3. Token: with [`Auth::Tokens`], every route but `GET /health` and the page needs
//!    `Authorization: Bearer <token>`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;
use crate::config::{Auth, Config, Cors, Tokens};

/// The rules of one server, built from its [`Config`] once.
#[derive(Debug)]
pub(crate) struct Access {
    /// `None`: any `Host` is accepted.
    hosts: Option<Hosts>,
    origins: Origins,
    /// `None`: no token is needed.
    tokens: Option<Tokens>,
}

#[derive(Debug)]
struct Hosts {
    /// Lower case, without a port.
    names: Vec<String>,
    /// The loopback names are accepted too.
    loopback: bool,
}

#[derive(Debug)]
enum Origins {
    /// The server's own, and these (`scheme://host[:port]`, lower case).
    Own(Vec<String>),
    /// Any: nothing is refused for its origin.
    Any,
}

impl Access {
    /// The rules `config` asks for. `listening` is the address the server listens on, when it
    /// binds one itself (`None` for routes served by the user's app, which checks `Host` only
    /// against [`Config::allowed_hosts`], if any are given).
    pub(crate) fn new(config: &Config, listening: Option<SocketAddr>) -> Arc<Access> {
        let loopback = listening.is_some_and(|addr| addr.ip().is_loopback());
        let hosts = (loopback || !config.allowed_hosts.is_empty()).then(|| Hosts {
            names: config
                .allowed_hosts
                .iter()
                .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
                .collect(),
            loopback,
        });
        let origins = match &config.cors {
            Cors::SameOrigin => Origins::Own(Vec::new()),
            Cors::Origins(list) => {
                Origins::Own(list.iter().map(|o| o.to_ascii_lowercase()).collect())
            }
            Cors::AnyOrigin | Cors::Off => Origins::Any,
        };
        let tokens = match &config.auth {
            Auth::Tokens(tokens) => Some(tokens.clone()),
            Auth::LoopbackOnly | Auth::Off => None,
        };
        Arc::new(Access {
            hosts,
            origins,
            tokens,
        })
    }

    /// Why a request addressed to `host` is refused, if it is.
    fn refuse_host(&self, host: Option<&str>) -> Option<ApiError> {
        let hosts = self.hosts.as_ref()?;
        // A client that names no host is not a browser (every browser sends `Host`).
        let host = host?;
        let name = host_name(host);
        if (hosts.loopback && is_loopback_name(&name)) || hosts.names.contains(&name) {
            return None;
        }
        Some(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "This server does not answer to the host `{name}`: address it by a loopback \
                 name (localhost, 127.0.0.1), or start it with `--allowed-host {name}` \
                 (Config::allowed_hosts) if that name is meant to reach it"
            ),
        ))
    }

    /// Why a request sent by a browser from another origin is refused, if it is.
    fn refuse_origin(&self, method: &Method, headers: &HeaderMap) -> Option<ApiError> {
        let Origins::Own(listed) = &self.origins else {
            return None;
        };
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let origin = match text(header::ORIGIN.as_str()) {
            Some(origin) => origin.to_ascii_lowercase(),
            None => {
                // Without `Origin`, a browser's cross-site request is a plain GET (an image, a
                // script, a link): refused unless it is a navigation to a page.
                let foreign = matches!(text("sec-fetch-site"), Some("cross-site" | "same-site"));
                let navigation =
                    method == Method::GET && text("sec-fetch-mode") == Some("navigate");
                if !foreign || navigation {
                    return None;
                }
                return Some(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "Requests from pages of other sites are not allowed",
                ));
            }
        };
        let own = text(header::HOST.as_str()).is_some_and(|host| {
            origin
                .split_once("://")
                .is_some_and(|(_, authority)| authority == host.to_ascii_lowercase())
        });
        if own || listed.contains(&origin) {
            return None;
        }
        Some(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "Requests from pages of the origin `{origin}` are not allowed: start the server \
                 with `--cors-origin {origin}` (Config::cors) to let that origin call it"
            ),
        ))
    }

    /// Why a request is not let in for want of a token, if it is not.
    fn refuse_token(&self, headers: &HeaderMap) -> Option<Response> {
        let tokens = self.tokens.as_ref()?;
        let presented = headers
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes)
            .and_then(|value| {
                let (scheme, token) = value.split_at_checked(7)?;
                scheme
                    .eq_ignore_ascii_case(b"bearer ")
                    .then(|| token.trim_ascii())
            });
        let detail = match presented {
            Some(token) if tokens.admit(token) => return None,
            Some(_) => "Invalid token",
            None => {
                "Not authenticated: this server needs an `Authorization: Bearer <token>` header"
            }
        };
        let mut response = ApiError::new(StatusCode::UNAUTHORIZED, detail).into_response();
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        Some(response)
    }
}

/// `Host` without its port, in lower case, without a trailing dot; an IPv6 address keeps its
/// brackets.
fn host_name(host: &str) -> String {
    let host = host.trim().to_ascii_lowercase();
    let name = if let Some(rest) = host.strip_prefix('[') {
        match rest.split_once(']') {
            Some((addr, _)) => format!("[{addr}]"),
            None => host.clone(),
        }
    } else {
        host.rsplit_once(':')
            .map_or(host.as_str(), |(name, _port)| name)
            .to_owned()
    };
    name.trim_end_matches('.').to_owned()
}

/// `localhost`, a name under `.localhost` (RFC 6761), or a loopback address.
fn is_loopback_name(name: &str) -> bool {
    if name == "localhost" || name.ends_with(".localhost") {
        return true;
    }
    let bare = name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(name);
    bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The `Host` a request is addressed to: its header, or the authority of an absolute URI.
fn host_of(request: &Request) -> Option<&str> {
    request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()))
}

/// The `Host` and origin checks, on every route.
pub(crate) async fn screen(
    State(access): State<Arc<Access>>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(refused) = access.refuse_host(host_of(&request)) {
        return refused.into_response();
    }
    if let Some(refused) = access.refuse_origin(request.method(), request.headers()) {
        return refused.into_response();
    }
    next.run(request).await
}

/// The token check, on every route but `/health` and the page.
pub(crate) async fn authenticate(
    State(access): State<Arc<Access>>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(refused) = access.refuse_token(request.headers()) {
        return refused;
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_lose_their_port_and_case() {
        assert_eq!(host_name("LocalHost:8080"), "localhost");
        assert_eq!(host_name("[::1]:8080"), "[::1]");
        assert_eq!(host_name("example.com."), "example.com");
        assert_eq!(host_name("127.0.0.1"), "127.0.0.1");
    }

    #[test]
    fn loopback_names_are_localhost_and_loopback_addresses() {
        for name in [
            "localhost",
            "app.localhost",
            "127.0.0.1",
            "127.8.9.10",
            "[::1]",
        ] {
            assert!(is_loopback_name(name), "{name}");
        }
        for name in [
            "example.com",
            "localhost.example.com",
            "10.0.0.1",
            "[::2]",
            "0.0.0.0",
        ] {
            assert!(!is_loopback_name(name), "{name}");
        }
    }
}
