//! The operator console (issue 13): the page at `/ui/` (three assets built
//! into the binary, nothing fetched at run time) and the read-only JSON it
//! needs beyond the seed's documents: processes with heartbeat ages, the
//! per-minute decision series, circuits with their time to half-open, and
//! the live runtime config. The JSON routes are mounted behind the admin
//! check by `super::router`; `operations` builds their documents.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use super::{HttpError, Shim};
use crate::operations::{MinutesView, ProcessesView, QueuesView, RecoveryView, RuntimeConfigView};

const INDEX_HTML: &str = include_str!("../../console/index.html");
const APP_JS: &str = include_str!("../../console/app.js");
const STYLE_CSS: &str = include_str!("../../console/style.css");

/// Same-origin only: the page runs its own script and talks to its own host.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One asset, never cached (a new binary may serve a new page) and never framed.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

/// The page and its assets, open to anyone: they hold no data and no
/// token. `auth_required` tells the page whether to ask for the admin
/// token before it polls (so a development run works without one).
pub(super) fn pages(auth_required: bool) -> Router<Shim> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }))
        .route("/ui/app.js", get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }))
        .route("/ui/style.css", get(|| async { asset("text/css; charset=utf-8", STYLE_CSS) }))
        .route("/ui/session", get(move || async move { Json(SessionInfo { auth_required }) }))
}

/// The console's JSON; the caller puts them behind the admin check.
pub(super) fn documents() -> Router<Shim> {
    Router::new()
        .route("/monitoring/processes", get(processes))
        .route("/monitoring/throttling/minutes", get(throttling_minutes))
        .route("/monitoring/circuit-breakers/recovery", get(circuit_recovery))
        .route("/monitoring/queues", get(queues))
        .route("/monitoring/runtime-config", get(runtime_config))
}

/// `GET /ui/session`.
#[derive(Debug, Serialize)]
struct SessionInfo {
    auth_required: bool,
}

/// `GET /monitoring/processes`: the background's snapshot, no store call.
async fn processes(State(shim): State<Shim>) -> Json<ProcessesView> {
    Json(shim.operations.processes())
}

/// `GET /monitoring/throttling/minutes`: the last hour, read only.
async fn throttling_minutes(State(shim): State<Shim>) -> Result<Json<MinutesView>, HttpError> {
    Ok(Json(shim.operations.throttling_minutes().await?))
}

/// `GET /monitoring/circuit-breakers/recovery`.
async fn circuit_recovery(State(shim): State<Shim>) -> Result<Json<RecoveryView>, HttpError> {
    Ok(Json(shim.operations.circuit_recovery().await?))
}

/// `GET /monitoring/queues`.
async fn queues(State(shim): State<Shim>) -> Result<Json<QueuesView>, HttpError> {
    Ok(Json(shim.operations.queues().await?))
}

/// `GET /monitoring/runtime-config`.
async fn runtime_config(State(shim): State<Shim>) -> Json<RuntimeConfigView> {
    Json(shim.operations.runtime_config())
}
