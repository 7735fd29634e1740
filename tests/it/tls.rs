//! TLS and mutual TLS on both listeners, with certificates made for the test.

use crate::common;

use std::sync::Arc;

use common::pki::Pki;
use common::*;
use floodgate::config::Profile;
use floodgate::tls::TlsFiles;
use floodgate_client::pb;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

async fn tls_server(pki: &Pki, mutual: bool) -> Server {
    let mut s = settings(Profile::Production, "");
    s.tls = Some(TlsFiles {
        cert: pki.dir.join("server.pem"),
        key: pki.dir.join("server.key"),
        client_ca: mutual.then(|| pki.dir.join("ca.pem")),
    });
    start_with(s, Arc::new(floodgate::clock::SystemClock)).await
}

async fn grpc_over_tls(server: &Server, pki: &Pki, client_cert: bool) -> Result<u64, String> {
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&pki.ca_pem)).domain_name("localhost");
    if client_cert {
        tls = tls.identity(Identity::from_pem(&pki.client_cert_pem, &pki.client_key_pem));
    }
    let channel = Channel::from_shared(format!("https://{}", server.grpc))
        .unwrap()
        .tls_config(tls)
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| format!("{e:?}"))?;
    let mut admin = floodgate_client::Client::from_channel(channel, Some(ADMIN)).unwrap().admin();
    let calc = admin.get_capacity_calculation(pb::GetCapacityCalculationRequest {}).await.map_err(|e| e.to_string())?;
    Ok(calc.into_inner().totals.unwrap().system_total)
}

/// GET over HTTPS with rustls; the status code, or the handshake / IO error.
async fn https_get(server: &Server, pki: &Pki, path: &str, client_cert: bool) -> Result<u16, String> {
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(pki.ca_pem.as_bytes()).unwrap()).unwrap();
    let builder = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = if client_cert {
        let chain = vec![CertificateDer::from_pem_slice(pki.client_cert_pem.as_bytes()).unwrap()];
        let key = PrivateKeyDer::from_pem_slice(pki.client_key_pem.as_bytes()).unwrap();
        builder.with_client_auth_cert(chain, key).unwrap()
    } else {
        builder.with_no_client_auth()
    };
    let tcp = tokio::net::TcpStream::connect(server.http).await.map_err(|e| e.to_string())?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let mut tls =
        connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await.map_err(|e| e.to_string())?;
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {ADMIN}\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    tls.read_to_end(&mut response).await.map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&response);
    text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| format!("no status in {text:?}"))
}

#[tokio::test]
async fn tls_serves_grpc_and_http_and_refuses_plaintext() {
    let pki = Pki::new("frontend-1");
    let server = tls_server(&pki, false).await;
    assert_eq!(grpc_over_tls(&server, &pki, false).await, Ok(0));
    assert_eq!(https_get(&server, &pki, "/debug/capacity-calculation", false).await, Ok(200));
    assert_eq!(https_get(&server, &pki, "/healthz", false).await, Ok(200));
    // A plaintext client gets no answer from a TLS listener.
    let plain = floodgate_client::Client::connect(&server.grpc.to_string(), Some(ADMIN)).await;
    let refused = match plain {
        Err(_) => true,
        Ok(client) => client.admin().list_alerts(pb::ListAlertsRequest {}).await.is_err(),
    };
    assert!(refused, "plaintext gRPC must fail against TLS");
    assert_ne!(common::http::get(server.http, "/healthz", None).await.status, 200);
}

#[tokio::test]
async fn mutual_tls_requires_a_client_certificate_from_the_ca() {
    let pki = Pki::new("frontend-1");
    let server = tls_server(&pki, true).await;
    assert_eq!(grpc_over_tls(&server, &pki, true).await, Ok(0));
    assert!(grpc_over_tls(&server, &pki, false).await.is_err(), "no client certificate: refused");
    assert_eq!(https_get(&server, &pki, "/healthz", true).await, Ok(200));
    assert!(https_get(&server, &pki, "/healthz", false).await.is_err(), "no client certificate: refused");
}

#[test]
fn unreadable_or_bad_files_are_named() {
    let pki = Pki::new("frontend-1");
    let missing = TlsFiles { cert: pki.dir.join("nope.pem"), key: pki.dir.join("server.key"), client_ca: None };
    let err = floodgate::tls::Tls::load(&missing).err().expect("missing file");
    assert!(err.to_string().contains("nope.pem"), "{err}");
    std::fs::write(pki.dir.join("garbage.pem"), "not a certificate").unwrap();
    let garbage = TlsFiles { cert: pki.dir.join("garbage.pem"), key: pki.dir.join("server.key"), client_ca: None };
    let err = floodgate::tls::Tls::load(&garbage).err().expect("bad file");
    assert!(err.to_string().contains("garbage.pem"), "{err}");
}
