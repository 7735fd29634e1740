//! Caller tokens → roles (docs/architecture.md §9): one check used by the gRPC
//! interceptors and the HTTP shim. Tokens are compared in constant time.

use std::fmt;

use subtle::ConstantTimeEq;

/// Caller tokens per role (docs/architecture.md §9).
#[derive(Clone, Default)]
pub struct Tokens {
    /// Tokens of the admin role.
    pub admin: Vec<String>,
    /// Tokens of the frontend role.
    pub frontend: Vec<String>,
    /// Tokens of the worker role.
    pub worker: Vec<String>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Tokens are never printed, only counted.
        f.debug_struct("Tokens")
            .field("admin", &self.admin.len())
            .field("frontend", &self.frontend.len())
            .field("worker", &self.worker.len())
            .finish()
    }
}

impl Tokens {
    /// Parses comma-separated token lists, ignoring blanks.
    pub fn parse_list(list: &str) -> Vec<String> {
        list.split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned).collect()
    }

    /// Whether no token at all is configured (auth off).
    pub fn is_empty(&self) -> bool {
        self.admin.is_empty() && self.frontend.is_empty() && self.worker.is_empty()
    }
}

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Frontends: the Admission service.
    Frontend,
    /// Chat workers: the Workers service.
    Worker,
    /// Super-admins: everything.
    Admin,
}

/// Why a call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No token, or one no role knows.
    #[error("missing or unknown bearer token")]
    Unauthenticated,
    /// A known token whose role may not call this service.
    #[error("this token's role may not call this service")]
    PermissionDenied,
}

/// Checks `authorization: Bearer <token>` against the configured tokens.
#[derive(Debug, Clone)]
pub struct Authenticator {
    tokens: Tokens,
}

impl Authenticator {
    /// With no token configured, every call is allowed (development only).
    pub fn new(tokens: Tokens) -> Authenticator {
        Authenticator { tokens }
    }

    /// Whether auth is off.
    pub fn is_open(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Authorizes a call that needs `required`, given the raw header value.
    pub fn authorize(&self, authorization: Option<&[u8]>, required: Role) -> Result<Role, AuthError> {
        if self.is_open() {
            return Ok(required);
        }
        let token = authorization
            .and_then(bearer_token)
            .map(<[u8]>::trim_ascii)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Unauthenticated)?;
        let role = self.role_of(token).ok_or(AuthError::Unauthenticated)?;
        if role == Role::Admin || role == required { Ok(role) } else { Err(AuthError::PermissionDenied) }
    }

    /// Every configured token is compared, so timing does not tell which
    /// list (or whether any) matched.
    fn role_of(&self, token: &[u8]) -> Option<Role> {
        let mut found = None;
        for (role, list) in [
            (Role::Admin, &self.tokens.admin),
            (Role::Frontend, &self.tokens.frontend),
            (Role::Worker, &self.tokens.worker),
        ] {
            for candidate in list {
                if bool::from(candidate.as_bytes().ct_eq(token)) && found.is_none() {
                    found = Some(role);
                }
            }
        }
        found
    }
}

/// The credentials of `Bearer <token>`; the scheme is matched without
/// regard to case (RFC 7235 §2.1).
fn bearer_token(header: &[u8]) -> Option<&[u8]> {
    let (scheme, token) = header.split_at_checked(7)?;
    scheme.eq_ignore_ascii_case(b"bearer ").then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Authenticator {
        Authenticator::new(Tokens { admin: vec!["adm".into()], frontend: vec!["fe".into()], worker: vec!["wk".into()] })
    }

    #[test]
    fn roles_follow_tokens() {
        let a = auth();
        assert_eq!(a.authorize(Some(b"Bearer fe"), Role::Frontend), Ok(Role::Frontend));
        assert_eq!(a.authorize(Some(b"Bearer wk"), Role::Frontend), Err(AuthError::PermissionDenied));
        assert_eq!(a.authorize(Some(b"Bearer fe"), Role::Admin), Err(AuthError::PermissionDenied));
        assert_eq!(a.authorize(Some(b"Bearer adm"), Role::Worker), Ok(Role::Admin));
    }

    #[test]
    fn missing_or_unknown_tokens_are_unauthenticated() {
        let a = auth();
        assert_eq!(a.authorize(None, Role::Frontend), Err(AuthError::Unauthenticated));
        assert_eq!(a.authorize(Some(b"Bearer nope"), Role::Frontend), Err(AuthError::Unauthenticated));
        assert_eq!(a.authorize(Some(b"fe"), Role::Frontend), Err(AuthError::Unauthenticated));
        assert_eq!(a.authorize(Some(b"Bearer "), Role::Frontend), Err(AuthError::Unauthenticated));
    }

    #[test]
    fn the_bearer_scheme_is_matched_in_any_case() {
        let a = auth();
        for header in [&b"Bearer fe"[..], b"bearer fe", b"BEARER fe", b"bEaReR fe"] {
            assert_eq!(a.authorize(Some(header), Role::Frontend), Ok(Role::Frontend), "{header:?}");
        }
        assert_eq!(a.authorize(Some(b"Basic fe"), Role::Frontend), Err(AuthError::Unauthenticated));
        assert_eq!(a.authorize(Some(b"Bearerfe"), Role::Frontend), Err(AuthError::Unauthenticated));
    }

    #[test]
    fn no_tokens_means_open() {
        let open = Authenticator::new(Tokens::default());
        assert_eq!(open.authorize(None, Role::Admin), Ok(Role::Admin));
    }
}
