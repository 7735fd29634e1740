//! The HTTP shim (axum): liveness, readiness and the seed's JSON documents,
//! serialised from the same service calls that gRPC converts.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::auth::{AuthError, Authenticator, Role};
use crate::error::ServiceError;
use crate::service::Floodgate;

/// Largest request body the shim reads.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Clone)]
struct Shim {
    floodgate: Arc<Floodgate>,
}

/// The one HTTP error type: bad input keeps its message, internals are
/// logged and become a generic answer.
#[derive(Debug)]
pub struct HttpError {
    status: StatusCode,
    message: String,
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

impl From<ServiceError> for HttpError {
    fn from(e: ServiceError) -> HttpError {
        let status = match &e {
            ServiceError::InvalidArgument { .. } => StatusCode::BAD_REQUEST,
            ServiceError::FailedPrecondition(_) => StatusCode::CONFLICT,
            ServiceError::NotFound(_) => StatusCode::NOT_FOUND,
            ServiceError::Unavailable(store) => {
                tracing::warn!(error = %store, "HTTP call failed: state store unavailable");
                return HttpError {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    message: "state store unavailable".into(),
                };
            }
        };
        HttpError { status, message: e.to_string() }
    }
}

impl From<AuthError> for HttpError {
    fn from(e: AuthError) -> HttpError {
        let status = match e {
            AuthError::Unauthenticated => StatusCode::UNAUTHORIZED,
            AuthError::PermissionDenied => StatusCode::FORBIDDEN,
        };
        HttpError { status, message: e.to_string() }
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
    Ok(next.run(request).await)
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(shim): State<Shim>) -> Result<Json<serde_json::Value>, HttpError> {
    let stats = shim.floodgate.queue_stats().await?;
    Ok(Json(json!({ "status": "ready", "load": stats.load() })))
}

async fn capacity_calculation(State(shim): State<Shim>) -> Result<impl IntoResponse, HttpError> {
    Ok(Json(shim.floodgate.capacity_calculation().await?))
}

/// The shim's routes: open probes, and admin-only documents.
pub fn router(floodgate: Arc<Floodgate>, auth: Authenticator) -> Router {
    let shim = Shim { floodgate };
    let admin = Router::new()
        .route("/debug/capacity-calculation", get(capacity_calculation))
        .route_layer(middleware::from_fn_with_state(auth, require_admin));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(admin)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(shim)
}
