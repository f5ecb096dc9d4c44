//! The events websocket (`/ws?clientId=ID`), opened with the job's token and cookies (the
//! ALB's stickiness cookie brings it to the pod that runs the job). Binary frames (previews)
//! are skipped. A socket that says nothing is pinged; one that answers nothing at all for
//! [`SILENT_LIMIT`] is given up as dead, so a half-open connection never stalls a job.

use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use super::{Server, ServerError, encode};
use crate::workflow::Event;

/// Longest the upgrade may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// Quiet time after which the client pings.
const PING_AFTER: Duration = Duration::from_secs(15);
/// Quiet time (no frame, no pong) after which the socket counts as dead.
pub const SILENT_LIMIT: Duration = Duration::from_secs(45);

pub struct Socket {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// How a socket ended.
#[derive(Debug, thiserror::Error)]
pub enum SocketEnd {
    #[error("the server closed the websocket")]
    Closed,
    #[error("the websocket broke: {0}")]
    Broken(String),
    #[error("the websocket was silent for {} s", SILENT_LIMIT.as_secs())]
    Silent,
}

impl Server {
    /// Opens the events websocket for `client_id`.
    pub async fn open_socket(&self, client_id: &str) -> Result<Socket, ServerError> {
        let what = "opening the events websocket";
        let path = format!("/ws?clientId={}", encode(client_id));
        let url = self.url(&path);
        let ws_url = if let Some(rest) = url.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if let Some(rest) = url.strip_prefix("http://") {
            format!("ws://{rest}")
        } else {
            url.clone()
        };
        let unreachable = |cause: String| ServerError::Unreachable {
            what: what.to_string(),
            url: url.clone(),
            cause: cause.into(),
        };
        let mut request = ws_url
            .as_str()
            .into_client_request()
            .map_err(|e| unreachable(e.to_string()))?;
        request.headers_mut().extend(self.headers());
        let connector = Connector::Rustls(Arc::clone(&self.tls));
        let connect =
            tokio_tungstenite::connect_async_tls_with_config(request, None, false, Some(connector));
        let (stream, response) = match tokio::time::timeout(OPEN_TIMEOUT, connect).await {
            Err(_) => {
                return Err(unreachable(format!(
                    "no answer in {} s",
                    OPEN_TIMEOUT.as_secs()
                )));
            }
            Ok(Err(tokio_tungstenite::tungstenite::Error::Http(response))) => {
                self.keep_cookies(response.headers());
                let status = response.status().as_u16();
                let body = response.body().clone().unwrap_or_default();
                return Err(self.status_error(what, &path, status, &body));
            }
            Ok(Err(error)) => return Err(unreachable(error.to_string())),
            Ok(Ok(opened)) => opened,
        };
        self.keep_cookies(response.headers());
        Ok(Socket { stream })
    }
}

impl Socket {
    /// The next event; text frames that are not events and binary frames are skipped.
    pub async fn next_event(&mut self) -> Result<Event, SocketEnd> {
        let mut quiet = Duration::ZERO;
        loop {
            let frame = match tokio::time::timeout(PING_AFTER, self.stream.next()).await {
                Err(_) => {
                    quiet += PING_AFTER;
                    if quiet >= SILENT_LIMIT {
                        return Err(SocketEnd::Silent);
                    }
                    self.stream
                        .send(Message::Ping(Vec::new().into()))
                        .await
                        .map_err(|e| SocketEnd::Broken(e.to_string()))?;
                    continue;
                }
                Ok(None) => return Err(SocketEnd::Closed),
                Ok(Some(Err(error))) => return Err(SocketEnd::Broken(error.to_string())),
                Ok(Some(Ok(frame))) => frame,
            };
            quiet = Duration::ZERO;
            match frame {
                Message::Text(text) => {
                    if let Some(event) = Event::parse(text.as_str()) {
                        return Ok(event);
                    }
                }
                Message::Close(_) => return Err(SocketEnd::Closed),
                Message::Binary(_) | Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
            }
        }
    }

    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.stream.close(None)).await;
    }
}
