//! The HTTP resources WHEP and WHIP share (RFC 9725): the page at `/`, the
//! bearer token, an offer POSTed to the endpoint, `DELETE` and `PATCH` of a
//! session's resource, the CORS preflight, and refusals that say why.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

use tokio::sync::oneshot;

use crate::http::{Request, Response};

/// Live sessions by id; sending on a session's channel ends it.
pub(crate) type Sessions = Mutex<HashMap<String, oneshot::Sender<()>>>;

/// One server's endpoint: `/whep` or `/whip`.
pub(crate) struct Endpoint<'a> {
    pub path: &'static str,
    /// The built-in page served at `/`.
    pub page: &'a str,
    pub token: Option<&'a str>,
    pub sessions: &'a Sessions,
}

/// Answers `request`; an authorised offer POSTed to the endpoint goes to `start`.
pub(crate) async fn route<F, Fut>(endpoint: Endpoint<'_>, request: &Request, start: F) -> Response
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Response>,
{
    let path = request.path.trim_end_matches('/');
    let session = path.strip_prefix(endpoint.path).and_then(|rest| rest.strip_prefix('/'));
    match (request.method.as_str(), path, session) {
        ("OPTIONS", _, _) => preflight("POST, DELETE, PATCH, OPTIONS"),
        ("GET" | "HEAD", "" | "/index.html", _) => {
            Response::new(200, "text/html; charset=utf-8", endpoint.page.to_string())
        }
        _ if !request.authorized(endpoint.token) => {
            Response::text(401, "missing or wrong token (send Authorization: Bearer TOKEN)")
                .with_header("WWW-Authenticate", "Bearer")
        }
        ("POST", p, _) if p == endpoint.path => start().await,
        ("DELETE", _, Some(id)) => match endpoint.sessions.lock().unwrap().remove(id) {
            Some(stop) => {
                let _ = stop.send(());
                Response::empty(200)
            }
            None => Response::text(404, format!("no session '{id}' (it ended, or never existed)")),
        },
        ("PATCH", _, Some(id)) => {
            if endpoint.sessions.lock().unwrap().contains_key(id) {
                Response::text(405, "trickle ICE is not supported: send the offer after gathering completes")
            } else {
                Response::text(404, format!("no session '{id}'"))
            }
        }
        (_, p, _) if p == endpoint.path => {
            Response::text(405, "POST an SDP offer (Content-Type: application/sdp) here")
                .with_header("Allow", "POST, OPTIONS")
        }
        _ => Response::text(
            404,
            format!("nothing at {}; the page is at / and the endpoint at {}", request.path, endpoint.path),
        ),
    }
}

/// A CORS preflight answer (players on other origins POST offers to us).
fn preflight(methods: &str) -> Response {
    Response::empty(204)
        .with_header("Access-Control-Allow-Methods", methods)
        .with_header("Access-Control-Allow-Headers", "Authorization, Content-Type, If-Match")
        .with_header("Accept-Post", "application/sdp")
}
