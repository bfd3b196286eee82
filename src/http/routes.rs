//! Request → response, with no I/O: the server feeds it method and path.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Response, StatusCode};
use serde_json::json;

use super::status::{NodeStatus, VrfQuery};

const JSON: &str = "application/json";

/// The paths the endpoint serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// `GET /metrics`.
    Metrics,
    /// `GET /health`.
    Health,
    /// `GET /ready`.
    Ready,
    /// `GET /descriptor`.
    Descriptor,
    /// `GET /vrf/current`, `GET /vrf/{epoch}`.
    Vrf(VrfQuery),
    /// `GET /loops`.
    Loops,
}

impl Route {
    /// The route of `path` (without query string): `Err(NOT_FOUND)` for an
    /// unknown path, `Err(BAD_REQUEST)` for `/vrf/{epoch}` whose epoch is
    /// not a `u64`.
    pub fn parse(path: &str) -> Result<Route, StatusCode> {
        match path {
            "/metrics" => Ok(Route::Metrics),
            "/health" => Ok(Route::Health),
            "/ready" => Ok(Route::Ready),
            "/descriptor" => Ok(Route::Descriptor),
            "/loops" => Ok(Route::Loops),
            "/vrf/current" => Ok(Route::Vrf(VrfQuery::Current)),
            _ => match path.strip_prefix("/vrf/") {
                Some(epoch) if !epoch.is_empty() && !epoch.contains('/') => {
                    // Digits only: `u64::from_str` would also take "+5".
                    if !epoch.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(StatusCode::BAD_REQUEST);
                    }
                    epoch
                        .parse()
                        .map(|e| Route::Vrf(VrfQuery::Epoch(e)))
                        .map_err(|_| StatusCode::BAD_REQUEST)
                }
                _ => Err(StatusCode::NOT_FOUND),
            },
        }
    }
}

/// Answers one request. Only GET and HEAD are served (hyper leaves out the
/// body of a HEAD response); anything else on a known path is 405.
pub fn respond(method: &Method, path: &str, status: &dyn NodeStatus) -> Response<Full<Bytes>> {
    let route = match Route::parse(path) {
        Ok(route) => route,
        Err(code) => return error(code),
    };
    if method != Method::GET && method != Method::HEAD {
        let mut response = error(StatusCode::METHOD_NOT_ALLOWED);
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    match route {
        Route::Metrics => reply(
            StatusCode::OK,
            crate::metrics::CONTENT_TYPE,
            status.metrics().into(),
        ),
        Route::Health => {
            let health = status.health();
            if health.alive {
                json_reply(StatusCode::OK, json!({ "status": "alive" }))
            } else {
                let reason = health.reason.as_deref().unwrap_or("not alive");
                unavailable("dead", reason)
            }
        }
        Route::Ready => {
            let health = status.health();
            if health.ready {
                json_reply(StatusCode::OK, json!({ "status": "ready" }))
            } else {
                let reason = health.reason.as_deref().unwrap_or("not ready");
                unavailable("not_ready", reason)
            }
        }
        Route::Descriptor => match status.descriptor_json() {
            body if body.is_empty() => unavailable("not_ready", "no descriptor yet"),
            body => reply(StatusCode::OK, JSON, body.into()),
        },
        Route::Vrf(query) => match status.vrf(query) {
            Some(body) => reply(StatusCode::OK, JSON, body.into()),
            None => error(StatusCode::NOT_FOUND),
        },
        // 200 either way: "this node sends no loops" is an answer, and a
        // 404 would read as "this version has no /loops".
        Route::Loops => match status.loops() {
            Some(body) => reply(StatusCode::OK, JSON, body.into()),
            None => json_reply(StatusCode::OK, json!({ "enabled": false })),
        },
    }
}

fn unavailable(state: &str, reason: &str) -> Response<Full<Bytes>> {
    json_reply(
        StatusCode::SERVICE_UNAVAILABLE,
        json!({ "status": state, "reason": reason }),
    )
}

/// 404 with its JSON body.
pub(super) fn not_found() -> Response<Full<Bytes>> {
    error(StatusCode::NOT_FOUND)
}

/// `{"error": "<reason phrase>"}` with `code`.
fn error(code: StatusCode) -> Response<Full<Bytes>> {
    let reason = code.canonical_reason().unwrap_or("error");
    json_reply(code, json!({ "error": reason.to_ascii_lowercase() }))
}

fn json_reply(code: StatusCode, value: serde_json::Value) -> Response<Full<Bytes>> {
    reply(code, JSON, value.to_string().into())
}

fn reply(code: StatusCode, content_type: &'static str, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = code;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Health and metrics must never be answered from a cache.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::Health;

    struct Fake(Health);

    impl NodeStatus for Fake {
        fn health(&self) -> Health {
            self.0.clone()
        }
        fn descriptor_json(&self) -> Vec<u8> {
            b"{\"id\":\"ab\"}".to_vec()
        }
        fn metrics(&self) -> String {
            "# EOF\n".into()
        }
        fn vrf(&self, query: VrfQuery) -> Option<Vec<u8>> {
            (query == VrfQuery::Epoch(7)).then(|| b"{}".to_vec())
        }
    }

    fn alive() -> Fake {
        Fake(Health {
            alive: true,
            ready: true,
            reason: None,
        })
    }

    #[test]
    fn parses_paths() {
        assert_eq!(Route::parse("/metrics"), Ok(Route::Metrics));
        assert_eq!(
            Route::parse("/vrf/current"),
            Ok(Route::Vrf(VrfQuery::Current))
        );
        assert_eq!(Route::parse("/vrf/42"), Ok(Route::Vrf(VrfQuery::Epoch(42))));
        assert_eq!(Route::parse("/loops"), Ok(Route::Loops));
        assert_eq!(Route::parse("/vrf/x1"), Err(StatusCode::BAD_REQUEST));
        assert_eq!(Route::parse("/vrf/+1"), Err(StatusCode::BAD_REQUEST));
        assert_eq!(
            Route::parse("/vrf/99999999999999999999"),
            Err(StatusCode::BAD_REQUEST)
        );
        for path in [
            "/",
            "/metrics/",
            "/vrf/",
            "/vrf/1/2",
            "/vrf",
            "/loops/",
            "/healthz",
            "",
        ] {
            assert_eq!(Route::parse(path), Err(StatusCode::NOT_FOUND), "{path}");
        }
    }

    #[test]
    fn vrf_uses_the_trait_method() {
        let s = alive();
        assert_eq!(respond(&Method::GET, "/vrf/7", &s).status(), StatusCode::OK);
        assert_eq!(
            respond(&Method::GET, "/vrf/8", &s).status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            respond(&Method::GET, "/vrf/current", &s).status(),
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn methods_and_unknown_paths() {
        let s = alive();
        let post = respond(&Method::POST, "/health", &s);
        assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(post.headers()[ALLOW], "GET, HEAD");
        assert_eq!(
            respond(&Method::POST, "/nope", &s).status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            respond(&Method::HEAD, "/health", &s).status(),
            StatusCode::OK
        );
    }

    #[test]
    fn not_ready_is_503_with_reason() {
        let s = Fake(Health {
            alive: true,
            ready: false,
            reason: Some("shedding load".into()),
        });
        assert_eq!(
            respond(&Method::GET, "/health", &s).status(),
            StatusCode::OK
        );
        let ready = respond(&Method::GET, "/ready", &s);
        assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(ready.headers()[CONTENT_TYPE], JSON);
    }
}
