//! Socket options shared by every listener (the gRPC and HTTP servers in
//! `app`, the TLS acceptor in `tls`).

/// Turns `TCP_NODELAY` on for an accepted connection. The gRPC builder's
/// `tcp_nodelay` only applies to listeners tonic binds itself, not to an
/// incoming stream: with Nagle on, a response written while an earlier one
/// on the connection was unacknowledged waited for the client's delayed ACK
/// (40 ms on Linux), which was once the Redis worker cycle's p99 tail.
/// The HTTP shim's connections get it too: a JSON answer must not wait for
/// a delayed ACK either.
pub(crate) fn no_delay(tcp: &mut tokio::net::TcpStream) {
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(error = %e, "TCP_NODELAY not set");
    }
}
