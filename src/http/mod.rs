//! The HTTP shim (axum): liveness, readiness and the seed's JSON documents,
//! serialised from the same `operations` calls that gRPC converts.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::auth::{AuthError, Authenticator, Role};
use crate::classify::Classify;
use crate::operations::Operations;
use crate::service::ServiceError;

mod console;

/// Largest request body the shim reads.
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;
/// Documents (and /metrics) computed at once; more get 503 at once.
pub(crate) const MAX_CONCURRENT_DOCUMENTS: usize = 16;
/// Longest a document may take before the shim answers 504.
pub(crate) const DOCUMENT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone)]
struct Shim {
    operations: Arc<Operations>,
    /// No caller tokens are configured (auth off).
    auth_open: bool,
}

/// The one HTTP error type: bad input keeps its message, internals become
/// a generic answer. A service or auth error is kept as it is until axum
/// turns it into the response; it is classified and logged there, once.
#[derive(Debug)]
pub(crate) struct HttpError(Failure);

#[derive(Debug)]
enum Failure {
    /// A service or auth error, answered by its class.
    Classified(Box<dyn Classify + Send + Sync>),
    /// The shim's own answer (bad body, shed, timed out).
    Plain { status: StatusCode, message: String },
}

impl HttpError {
    fn plain(status: StatusCode, message: impl Into<String>) -> HttpError {
        HttpError(Failure::Plain { status, message: message.into() })
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let (status, message) = match self.0 {
            Failure::Classified(e) => {
                let class = e.classify_and_log();
                (class.http, class.message.into_owned())
            }
            Failure::Plain { status, message } => (status, message),
        };
        (status, Json(json!({ "error": message }))).into_response()
    }
}

impl From<ServiceError> for HttpError {
    fn from(e: ServiceError) -> HttpError {
        HttpError(Failure::Classified(Box::new(e)))
    }
}

impl From<AuthError> for HttpError {
    fn from(e: AuthError) -> HttpError {
        HttpError(Failure::Classified(Box::new(e)))
    }
}

async fn require_admin(
    State(auth): State<Authenticator>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Result<Response, HttpError> {
    let header = headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
    auth.authorize(header, Role::Admin)?;
    // With no caller tokens a browser on another origin could change state
    // without a preflight: a POST whose Origin is not this shim is refused.
    if auth.is_open() && request.method() != axum::http::Method::GET && !same_origin(&headers) {
        return Err(HttpError::plain(
            StatusCode::FORBIDDEN,
            "cross-origin request refused: no caller tokens are configured, so only this origin may change state",
        ));
    }
    Ok(next.run(request).await)
}

/// Whether a request's `Origin` (when it sends one) names the host it was
/// sent to. Clients other than browsers send none.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin.to_str().ok().and_then(|o| o.split_once("://")).map(|(_, rest)| rest);
    matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
}

/// Bounds the expensive routes: a concurrency cap (shed, not queued) and a timeout.
async fn bounded(State(permits): State<Arc<Semaphore>>, request: Request, next: Next) -> Response {
    let Ok(_permit) = permits.try_acquire() else {
        let busy = HttpError::plain(StatusCode::SERVICE_UNAVAILABLE, "too many concurrent requests");
        return ([(header::RETRY_AFTER, "1")], busy).into_response();
    };
    match tokio::time::timeout(DOCUMENT_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => HttpError::plain(StatusCode::GATEWAY_TIMEOUT, "timed out").into_response(),
    }
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(shim): State<Shim>) -> Result<Response, HttpError> {
    // Rules that load nothing would let every request through behind
    // Envoy's fail-open: not ready, saying why (the peer's
    // HEALTHY_WITH_AT_LEAST_ONE_CONFIG_LOADED).
    if let Some(reason) = shim.operations.rls_not_ready() {
        return Ok(
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "not ready", "reason": reason }))).into_response()
        );
    }
    let stats = shim.operations.queue_stats().await?;
    Ok(Json(json!({ "status": "ready", "load": stats.load() })).into_response())
}

async fn capacity_calculation(State(shim): State<Shim>) -> Result<impl IntoResponse, HttpError> {
    Ok(Json(shim.operations.capacity_calculation().await?))
}

async fn system_status(State(shim): State<Shim>) -> Result<impl IntoResponse, HttpError> {
    Ok(Json(shim.operations.system_status().await?))
}

async fn circuit_breakers(State(shim): State<Shim>) -> Result<impl IntoResponse, HttpError> {
    Ok(Json(shim.operations.circuit_breakers().await?))
}

async fn reset_circuit_breaker(
    State(shim): State<Shim>,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, HttpError> {
    let reset = shim.operations.reset_circuit_breaker(&name).await?;
    Ok(Json(json!({ "circuit_name": reset.circuit_name, "state": reset.circuit.state.as_str() })))
}

/// Reads a JSON body; malformed JSON is a 400 naming the problem. A
/// missing Content-Type is read as JSON (curl without `-H`) only when
/// caller tokens are configured: without them it is a 415 like any other
/// type, since a browser sends a body without one cross-origin and without
/// a preflight.
fn json_body(headers: &HeaderMap, body: &[u8], auth_open: bool) -> Result<serde_json::Value, HttpError> {
    if auth_open && !headers.contains_key(header::CONTENT_TYPE) {
        return Err(HttpError::plain(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "body: expected Content-Type: application/json (required while no caller tokens are configured)",
        ));
    }
    if let Some(content_type) = headers.get(header::CONTENT_TYPE) {
        let essence = content_type.to_str().unwrap_or_default().split(';').next().unwrap_or_default().trim();
        let json = essence.eq_ignore_ascii_case("application/json")
            || essence.get(..12).is_some_and(|t| t.eq_ignore_ascii_case("application/"))
                && essence.to_ascii_lowercase().ends_with("+json");
        if !json {
            return Err(HttpError::plain(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "body: expected Content-Type: application/json",
            ));
        }
    }
    // Bad input, answered by its class like any other.
    serde_json::from_slice(body).map_err(|e| ServiceError::invalid("body", format!("not valid JSON: {e}")).into())
}

async fn validate_config(State(shim): State<Shim>, headers: HeaderMap, body: Bytes) -> Result<Response, HttpError> {
    let review = shim.operations.review_config(&json_body(&headers, &body, shim.auth_open)?);
    let status = if review.valid { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    Ok((status, Json(review)).into_response())
}

async fn update_config(State(shim): State<Shim>, headers: HeaderMap, body: Bytes) -> Result<Response, HttpError> {
    let update = shim.operations.update_config(&json_body(&headers, &body, shim.auth_open)?).await?;
    let status = if update.applied { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    Ok((status, Json(update)).into_response())
}

async fn environment(State(shim): State<Shim>) -> Json<serde_json::Value> {
    Json(json!(shim.operations.environment()))
}

async fn throttling(State(shim): State<Shim>) -> Result<impl IntoResponse, HttpError> {
    Ok(Json(json!({ "throttling_by_period": shim.operations.throttling_stats().await? })))
}

async fn alerts(State(shim): State<Shim>) -> Json<serde_json::Value> {
    Json(json!({ "alerts": shim.operations.alerts() }))
}

async fn metrics(State(shim): State<Shim>) -> Result<Response, HttpError> {
    let text = shim.operations.metrics_text().await?;
    Ok(([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response())
}

/// The shim's routes, over the operator layer (the shim serves no data plane).
pub(crate) fn router(operations: Arc<Operations>, auth: Authenticator) -> Router {
    let shim = Shim { operations, auth_open: auth.is_open() };
    let console_pages = console::pages(!auth.is_open());
    let admin = Router::new()
        .route("/monitoring/system", get(system_status))
        .route("/admin/circuit-breakers", get(circuit_breakers))
        .route("/admin/circuit-breakers/{circuit_name}/reset", post(reset_circuit_breaker))
        .route("/admin/gateway/validate-config", post(validate_config))
        .route("/admin/gateway/update-config", post(update_config))
        .route("/debug/capacity-calculation", get(capacity_calculation))
        .route("/debug/environment", get(environment))
        .route("/debug/rls-config", get(|State(shim): State<Shim>| async move { Json(shim.operations.rls_config()) }))
        .route("/monitoring/throttling", get(throttling))
        .route("/monitoring/alerts", get(alerts))
        .merge(console::documents())
        .route_layer(middleware::from_fn_with_state(auth, require_admin));
    let documents = Router::new()
        .route("/metrics", get(metrics))
        .merge(admin)
        .route_layer(middleware::from_fn_with_state(Arc::new(Semaphore::new(MAX_CONCURRENT_DOCUMENTS)), bounded));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(documents)
        .merge(console_pages)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::map_response(json_errors))
        .with_state(shim)
}

/// Every error the shim answers has a JSON body `{"error": …}`, also the
/// ones axum writes itself (a body over the limit: 413, an unknown route:
/// 404, a wrong method: 405), which come as plain text or empty. Answers
/// below 400 and JSON answers pass untouched.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if status.as_u16() < 400 || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_BODY_BYTES).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let message = match text.trim() {
        "" => status.canonical_reason().unwrap_or("error").to_owned(),
        text => text.to_owned(),
    };
    let mut answer = (status, Json(json!({ "error": message }))).into_response();
    // Keep what the caller may act on (Allow on a 405, Retry-After).
    for name in [header::ALLOW, header::RETRY_AFTER] {
        if let Some(value) = parts.headers.get(&name) {
            answer.headers_mut().insert(name, value.clone());
        }
    }
    answer
}

#[cfg(test)]
mod tests {
    //! One test per error class at the HTTP edge: the status and the JSON
    //! body the caller reads.
    use super::*;
    use crate::store::StoreError;

    async fn answered(e: impl Into<HttpError>) -> (u16, serde_json::Value) {
        let response = e.into().into_response();
        let status = response.status().as_u16();
        let body = axum::body::to_bytes(response.into_body(), MAX_BODY_BYTES).await.unwrap();
        (status, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn http_answers_bad_input_with_400_naming_the_field() {
        let e = ServiceError::invalid("subject", "must not be empty");
        assert_eq!(answered(e).await, (400, json!({ "error": "subject: must not be empty" })));
    }

    #[tokio::test]
    async fn http_answers_a_lease_not_held_with_409() {
        let e = ServiceError::FailedPrecondition("task t is not leased by lease l".into());
        assert_eq!(answered(e).await, (409, json!({ "error": "task t is not leased by lease l" })));
    }

    #[tokio::test]
    async fn http_answers_an_unknown_name_with_404() {
        let e = ServiceError::NotFound("no circuit named \"x\"".into());
        assert_eq!(answered(e).await, (404, json!({ "error": "no circuit named \"x\"" })));
    }

    #[tokio::test]
    async fn http_answers_an_unreachable_store_with_503_and_no_detail() {
        let e = ServiceError::from(StoreError::Unavailable("connection refused at 10.0.0.7:6379".into()));
        assert_eq!(answered(e).await, (503, json!({ "error": "state store unavailable; retry later" })));
    }

    #[tokio::test]
    async fn http_answers_an_unreadable_store_reply_with_500_and_no_detail() {
        let e = ServiceError::from(StoreError::Protocol("unexpected reply: Int(7)".into()));
        assert_eq!(answered(e).await, (500, json!({ "error": "internal error" })));
    }

    #[tokio::test]
    async fn http_answers_a_missing_token_with_401() {
        assert_eq!(
            answered(AuthError::Unauthenticated).await,
            (401, json!({ "error": "missing or unknown bearer token" }))
        );
    }

    #[tokio::test]
    async fn http_answers_a_wrong_role_with_403() {
        assert_eq!(
            answered(AuthError::PermissionDenied).await,
            (403, json!({ "error": "this token's role may not call this service" }))
        );
    }

    #[tokio::test]
    async fn http_answers_its_own_refusals_as_they_are() {
        let e = HttpError::plain(StatusCode::UNSUPPORTED_MEDIA_TYPE, "body: expected Content-Type: application/json");
        assert_eq!(answered(e).await, (415, json!({ "error": "body: expected Content-Type: application/json" })));
    }
}
