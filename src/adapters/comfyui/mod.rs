//! ComfyUI's server API, as `comfyplat run` uses it: HTTP for the node definitions, uploads,
//! submission, queue, history, files and interrupts ([`Server`]), and the websocket of
//! events ([`socket`]).
//!
//! One [`Server`] serves one job, and keeps the cookies the server (the load balancer) sets
//! for all of that job's requests, the websocket included: ComfyUI keeps its queue and
//! history per pod, and the ALB's stickiness cookie (`AWSALB`) is what brings every request
//! of the job to the pod that runs it. A bearer token (the edge sign-in) goes on every
//! request and is never logged.
//!
//! Retries: reads (and the idempotent interrupt and queue deletion) are retried on 429,
//! 502, 503, 504 and on connection failures, a bounded number of times with backoff,
//! reporting each retry through the `notify` callback. The submission is sent once: when its
//! answer is lost, [`SubmitError::Lost`] tells the caller to look the prompt id up instead
//! of sending it again. Only a submission that provably never left (the connection was
//! refused) is sent again.

pub mod socket;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, HeaderMap, HeaderValue, SET_COOKIE};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use super::BoxError;
use super::call_progress::Notify;

/// Time to set up a TCP (and TLS) connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a JSON request may take (the full `/object_info` of a big install is ~1 MB).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest gap between two reads of a download's body, and an upload's whole time.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(600);
/// Attempts of a retried request, and the first backoff (doubled each time, capped).
pub const ATTEMPTS: u32 = 5;
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(4);

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("{what}: {url} answered {status}{}", body_excerpt(body))]
    Status {
        what: String,
        url: String,
        status: u16,
        body: String,
    },
    #[error("{what}: {url} refused the request ({status}): the platform's sign-in wants a token")]
    Unauthorized {
        what: String,
        url: String,
        status: u16,
    },
    #[error("{what}: could not reach {url}")]
    Unreachable {
        what: String,
        url: String,
        #[source]
        cause: BoxError,
    },
    #[error("{what}: {url} answered something that is not the JSON ComfyUI sends")]
    NotJson {
        what: String,
        url: String,
        #[source]
        cause: BoxError,
    },
    #[error("{what}: {path}")]
    Local {
        what: String,
        path: String,
        #[source]
        cause: std::io::Error,
    },
    #[error("the TLS setup failed")]
    Tls(#[source] BoxError),
}

impl ServerError {
    pub fn hint(&self) -> Option<String> {
        match self {
            ServerError::Unauthorized { .. } => Some(
                "pass the platform's token with `--token` or the COMFYPLAT_TOKEN environment variable"
                    .to_string(),
            ),
            ServerError::Unreachable { .. } => Some(
                "check the URL (`comfyplat output` prints the platform's) and that the platform is applied and healthy"
                    .to_string(),
            ),
            ServerError::Status { status: 502..=504, .. } => Some(
                "the load balancer found no healthy ComfyUI pod: check `kubectl -n comfyui get pods` and the pod's log"
                    .to_string(),
            ),
            _ => None,
        }
    }
}

fn body_excerpt(body: &str) -> String {
    let text = body.trim();
    if text.is_empty() || text.starts_with('<') {
        return String::new();
    }
    let short: String = text.chars().take(300).collect();
    format!(": {short}")
}

/// Why a submission did not give a prompt id.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The server validated the prompt and refused it (`400` with `error` and
    /// `node_errors`); nothing was queued.
    #[error("the server refused the workflow: {}", .error["message"].as_str().unwrap_or("(no message)"))]
    Rejected { error: Value, node_errors: Value },
    /// The request went out and no answer came back (a reset, a timeout, a gateway error):
    /// the prompt may be queued. Look its id up; never send it again.
    #[error("the answer to the submission was lost")]
    Lost(#[source] ServerError),
    #[error(transparent)]
    Failed(ServerError),
}

/// One job's connection to a ComfyUI server.
#[derive(Clone)]
pub struct Server {
    base: String,
    http: reqwest::Client,
    tls: Arc<rustls::ClientConfig>,
    token: Option<Arc<SecretString>>,
    cookies: Arc<Mutex<BTreeMap<String, String>>>,
    notify: Notify,
}

/// One rustls configuration (the AWS-LC provider kube and the AWS SDK use, the system's
/// roots) for HTTP and the websocket.
fn tls_config() -> Result<rustls::ClientConfig, ServerError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        // A system certificate rustls cannot parse is skipped, as browsers do.
        let _ = roots.add(cert);
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServerError::Tls(Box::new(e)))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// `a b/c` → `a%20b%2Fc`.
pub fn encode(text: &str) -> String {
    utf8_percent_encode(text, NON_ALPHANUMERIC).to_string()
}

fn retryable_status(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

fn backoff(attempt: u32) -> Duration {
    (FIRST_BACKOFF * 2u32.saturating_pow(attempt.saturating_sub(1))).min(MAX_BACKOFF)
}

impl Server {
    /// `base` is the platform's URL (`https://d111.cloudfront.net`, a path prefix allowed).
    pub fn new(
        base: &str,
        token: Option<SecretString>,
        notify: Notify,
    ) -> Result<Server, ServerError> {
        let tls = tls_config()?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls.clone())
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("comfyplat/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ServerError::Tls(Box::new(e)))?;
        Ok(Server {
            base: base.trim_end_matches('/').to_string(),
            http,
            tls: Arc::new(tls),
            token: token.map(Arc::new),
            cookies: Arc::default(),
            notify,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The headers every request of the job carries: the token and the cookies so far.
    fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(token) = &self.token
            && let Ok(mut value) =
                HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
        {
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        let cookie = self
            .cookies
            .lock()
            .map(|jar| {
                jar.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default();
        if !cookie.is_empty()
            && let Ok(value) = HeaderValue::from_str(&cookie)
        {
            headers.insert(COOKIE, value);
        }
        headers
    }

    /// Keeps the cookies of a response (`Set-Cookie: NAME=VALUE; attributes`).
    fn keep_cookies(&self, headers: &HeaderMap) {
        let Ok(mut jar) = self.cookies.lock() else {
            return;
        };
        for header in headers.get_all(SET_COOKIE) {
            let Ok(header) = header.to_str() else {
                continue;
            };
            let mut parts = header.split(';');
            let pair = parts.next().unwrap_or_default();
            let Some((name, value)) = pair.split_once('=') else {
                continue;
            };
            let (name, value) = (name.trim(), value.trim());
            // The attributes follow the pair: `Max-Age=0` is how a server deletes a cookie.
            let expired =
                value.is_empty() || parts.any(|a| a.trim().eq_ignore_ascii_case("max-age=0"));
            if name.is_empty() {
                continue;
            }
            if expired {
                jar.remove(name);
            } else {
                jar.insert(name.to_string(), value.to_string());
            }
        }
    }

    /// The names of the cookies kept so far (for tests and `-v`).
    pub fn cookie_names(&self) -> Vec<String> {
        self.cookies
            .lock()
            .map(|jar| jar.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn unreachable(&self, what: &str, path: &str, error: reqwest::Error) -> ServerError {
        ServerError::Unreachable {
            what: what.to_string(),
            url: self.url(path),
            cause: Box::new(error),
        }
    }

    /// Sends one request; `Ok` for any HTTP answer (its status, headers kept, body read).
    async fn send_once(
        &self,
        what: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<(String, Vec<u8>)>,
        timeout: Duration,
    ) -> Result<(u16, Vec<u8>), (ServerError, bool)> {
        let mut request = self
            .http
            .request(method, self.url(path))
            .headers(self.headers())
            .timeout(timeout);
        if let Some((content_type, bytes)) = body {
            request = request.header(CONTENT_TYPE, content_type).body(bytes);
        }
        let response = request.send().await.map_err(|e| {
            let sent = !e.is_connect();
            (self.unreachable(what, path, e), sent)
        })?;
        self.keep_cookies(response.headers());
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| (self.unreachable(what, path, e), true))?;
        Ok((status, bytes.to_vec()))
    }

    /// A request retried on gateway errors and lost connections; `Ok` with any other status.
    async fn send_retried(
        &self,
        what: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<(String, Vec<u8>)>,
        timeout: Duration,
    ) -> Result<(u16, Vec<u8>), ServerError> {
        let mut attempt = 1;
        loop {
            let outcome = self
                .send_once(what, method.clone(), path, body.clone(), timeout)
                .await;
            let why = match outcome {
                Ok((status, body)) if !retryable_status(status) => return Ok((status, body)),
                Ok((status, body)) => {
                    if attempt >= ATTEMPTS {
                        return Err(self.status_error(what, path, status, &body));
                    }
                    format!("{status}")
                }
                Err((error, _)) => {
                    if attempt >= ATTEMPTS {
                        return Err(error);
                    }
                    crate::errors::chain(&error)
                }
            };
            self.retry_after(&format!("{method} {path}"), &why, &mut attempt)
                .await;
        }
    }

    /// Says that `request` is tried again and why, waits the backoff, counts the attempt.
    async fn retry_after(&self, request: &str, why: &str, attempt: &mut u32) {
        (self.notify)(format!(
            "{request}: {why}; retrying (attempt {} of {ATTEMPTS})",
            *attempt + 1
        ));
        tokio::time::sleep(backoff(*attempt)).await;
        *attempt += 1;
    }

    fn status_error(&self, what: &str, path: &str, status: u16, body: &[u8]) -> ServerError {
        if matches!(status, 401 | 403) {
            return ServerError::Unauthorized {
                what: what.to_string(),
                url: self.url(path),
                status,
            };
        }
        ServerError::Status {
            what: what.to_string(),
            url: self.url(path),
            status,
            body: String::from_utf8_lossy(body).into_owned(),
        }
    }

    fn json(&self, what: &str, path: &str, body: &[u8]) -> Result<Value, ServerError> {
        serde_json::from_slice(body).map_err(|e| ServerError::NotJson {
            what: what.to_string(),
            url: self.url(path),
            cause: Box::new(e),
        })
    }

    /// A retried GET of JSON that must answer 200.
    pub async fn get_json(&self, what: &str, path: &str) -> Result<Value, ServerError> {
        let (status, body) = self
            .send_retried(what, reqwest::Method::GET, path, None, REQUEST_TIMEOUT)
            .await?;
        if status != 200 {
            return Err(self.status_error(what, path, status, &body));
        }
        self.json(what, path, &body)
    }

    /// A retried POST of JSON (for the idempotent ones: interrupt, queue deletion).
    async fn post_json(&self, what: &str, path: &str, body: &Value) -> Result<(), ServerError> {
        let (status, answer) = self
            .send_retried(
                what,
                reqwest::Method::POST,
                path,
                Some((
                    "application/json".to_string(),
                    body.to_string().into_bytes(),
                )),
                REQUEST_TIMEOUT,
            )
            .await?;
        if status != 200 {
            return Err(self.status_error(what, path, status, &answer));
        }
        Ok(())
    }

    pub async fn object_info(&self) -> Result<Value, ServerError> {
        self.get_json("reading the node definitions", "/object_info")
            .await
    }

    pub async fn queue(&self) -> Result<Value, ServerError> {
        self.get_json("reading the queue", "/queue").await
    }

    /// The job's history entry; `None` while the server has not written it.
    pub async fn history(&self, prompt_id: &str) -> Result<Option<Value>, ServerError> {
        let path = format!("/history/{}", encode(prompt_id));
        let mut all = self.get_json("reading the job's history", &path).await?;
        Ok(all.get_mut(prompt_id).map(Value::take))
    }

    /// Submits a prompt (`POST /prompt`), once; see [`SubmitError`].
    pub async fn submit(&self, body: &Value) -> Result<Value, SubmitError> {
        let what = "submitting the workflow";
        let bytes = body.to_string().into_bytes();
        let mut attempt = 1;
        let (status, answer) = loop {
            match self
                .send_once(
                    what,
                    reqwest::Method::POST,
                    "/prompt",
                    Some(("application/json".to_string(), bytes.clone())),
                    REQUEST_TIMEOUT,
                )
                .await
            {
                Ok(answer) => break answer,
                // Refused before anything was sent: sending again cannot queue it twice.
                Err((error, false)) if attempt < ATTEMPTS => {
                    self.retry_after("POST /prompt", &crate::errors::chain(&error), &mut attempt)
                        .await;
                }
                Err((error, false)) => return Err(SubmitError::Failed(error)),
                Err((error, true)) => return Err(SubmitError::Lost(error)),
            }
        };
        match status {
            200 => self
                .json(what, "/prompt", &answer)
                .map_err(SubmitError::Lost),
            400 => {
                let value = self
                    .json(what, "/prompt", &answer)
                    .map_err(SubmitError::Failed)?;
                Err(SubmitError::Rejected {
                    error: value.get("error").cloned().unwrap_or(Value::Null),
                    node_errors: value.get("node_errors").cloned().unwrap_or(json!({})),
                })
            }
            // A gateway's answer says nothing about whether the pod queued it.
            502..=504 => Err(SubmitError::Lost(
                self.status_error(what, "/prompt", status, &answer),
            )),
            _ => Err(SubmitError::Failed(
                self.status_error(what, "/prompt", status, &answer),
            )),
        }
    }

    /// Interrupts the prompt if it is the one running (targeted: another user's job is
    /// left alone).
    pub async fn interrupt(&self, prompt_id: &str) -> Result<(), ServerError> {
        self.post_json(
            "interrupting the job",
            "/interrupt",
            &json!({ "prompt_id": prompt_id }),
        )
        .await
    }

    /// Takes a pending prompt out of the queue.
    pub async fn delete_queued(&self, prompt_id: &str) -> Result<(), ServerError> {
        self.post_json(
            "taking the job out of the queue",
            "/queue",
            &json!({ "delete": [prompt_id] }),
        )
        .await
    }

    /// Uploads a file as ComfyUI's frontend does (`POST /upload/image`, multipart, to the
    /// `input` folder, renamed by the server on a name clash); returns the name to put in
    /// the node's input (`subfolder/name` when the server used a subfolder).
    pub async fn upload(&self, name: &str, bytes: Vec<u8>) -> Result<String, ServerError> {
        let what = format!("uploading {name}");
        let boundary = format!("comfyplat-{}", uuid::Uuid::new_v4().simple());
        let safe_name: String = name
            .chars()
            .map(|c| {
                if c == '"' || c == '\\' || c.is_control() {
                    '_'
                } else {
                    c
                }
            })
            .collect();
        let mut body = Vec::with_capacity(bytes.len() + 512);
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{safe_name}\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(&bytes);
        body.extend_from_slice(
            format!(
                "\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"type\"\r\n\r\ninput\r\n--{boundary}--\r\n"
            )
            .as_bytes(),
        );
        let content_type = format!("multipart/form-data; boundary={boundary}");
        let (status, answer) = self
            .send_retried(
                &what,
                reqwest::Method::POST,
                "/upload/image",
                Some((content_type, body)),
                UPLOAD_TIMEOUT,
            )
            .await?;
        if status != 200 {
            return Err(self.status_error(&what, "/upload/image", status, &answer));
        }
        let value = self.json(&what, "/upload/image", &answer)?;
        let uploaded = value
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or(name)
            .to_string();
        Ok(match value.get("subfolder").and_then(Value::as_str) {
            Some(sub) if !sub.is_empty() => format!("{sub}/{uploaded}"),
            _ => uploaded,
        })
    }

    /// Downloads one output (`GET /view`) to `dest` (through a temporary file next to it,
    /// renamed when complete); returns its size.
    pub async fn download(
        &self,
        filename: &str,
        subfolder: &str,
        kind: &str,
        dest: &Path,
    ) -> Result<u64, ServerError> {
        let path = format!(
            "/view?filename={}&subfolder={}&type={}",
            encode(filename),
            encode(subfolder),
            encode(kind)
        );
        let what = format!("downloading {filename}");
        let local = |cause: std::io::Error, p: &Path| ServerError::Local {
            what: what.clone(),
            path: p.display().to_string(),
            cause,
        };
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| local(e, parent))?;
        }
        let partial = dest.with_file_name(format!(
            ".{}.partial",
            dest.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        ));
        let mut attempt = 1;
        loop {
            let result = self.download_once(&what, &path, &partial).await;
            match result {
                Ok(size) => {
                    tokio::fs::rename(&partial, dest)
                        .await
                        .map_err(|e| local(e, dest))?;
                    return Ok(size);
                }
                Err((error, retry)) => {
                    let _ = tokio::fs::remove_file(&partial).await;
                    if !retry || attempt >= ATTEMPTS {
                        return Err(error);
                    }
                    self.retry_after(
                        &format!("GET {path}"),
                        &crate::errors::chain(&error),
                        &mut attempt,
                    )
                    .await;
                }
            }
        }
    }

    async fn download_once(
        &self,
        what: &str,
        path: &str,
        partial: &Path,
    ) -> Result<u64, (ServerError, bool)> {
        let mut response = self
            .http
            .get(self.url(path))
            .headers(self.headers())
            .timeout(UPLOAD_TIMEOUT)
            .send()
            .await
            .map_err(|e| (self.unreachable(what, path, e), true))?;
        self.keep_cookies(response.headers());
        let status = response.status().as_u16();
        if status != 200 {
            let body = response.bytes().await.unwrap_or_default();
            return Err((
                self.status_error(what, path, status, &body),
                retryable_status(status),
            ));
        }
        let local = |cause: std::io::Error| ServerError::Local {
            what: what.to_string(),
            path: partial.display().to_string(),
            cause,
        };
        let mut file = tokio::fs::File::create(partial)
            .await
            .map_err(|e| (local(e), false))?;
        let mut size = 0u64;
        loop {
            let chunk = tokio::time::timeout(READ_TIMEOUT, response.chunk())
                .await
                .map_err(|_| {
                    (
                        ServerError::Unreachable {
                            what: what.to_string(),
                            url: self.url(path),
                            cause: format!("no data for {} s", READ_TIMEOUT.as_secs()).into(),
                        },
                        true,
                    )
                })?
                .map_err(|e| (self.unreachable(what, path, e), true))?;
            let Some(chunk) = chunk else { break };
            size += chunk.len() as u64;
            file.write_all(&chunk)
                .await
                .map_err(|e| (local(e), false))?;
        }
        file.flush().await.map_err(|e| (local(e), false))?;
        file.sync_all().await.map_err(|e| (local(e), false))?;
        Ok(size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> Server {
        Server::new("http://127.0.0.1:1/base/", None, Arc::new(|_| {})).expect("a client")
    }

    #[test]
    fn cookies_of_every_response_are_kept_and_sent_back() {
        let server = server();
        assert_eq!(server.url("/queue"), "http://127.0.0.1:1/base/queue");
        let mut headers = HeaderMap::new();
        for cookie in [
            "AWSALB=abc; Expires=Tue, 01 Dec 2026 00:00:00 GMT; Path=/",
            "AWSALBCORS=abc; Expires=Tue, 01 Dec 2026 00:00:00 GMT; Path=/; SameSite=None; Secure",
            "gone=; Max-Age=0",
        ] {
            headers.append(SET_COOKIE, HeaderValue::from_static(cookie));
        }
        headers.append(SET_COOKIE, HeaderValue::from_static("old=abc; Path=/"));
        server.keep_cookies(&headers);
        let mut deleted = HeaderMap::new();
        deleted.append(
            SET_COOKIE,
            HeaderValue::from_static("old=abc; Max-Age=0; Path=/"),
        );
        server.keep_cookies(&deleted);
        assert_eq!(server.cookie_names(), ["AWSALB", "AWSALBCORS"]);
        assert_eq!(
            server.headers().get(COOKIE).and_then(|v| v.to_str().ok()),
            Some("AWSALB=abc; AWSALBCORS=abc")
        );
        assert!(server.headers().get(AUTHORIZATION).is_none());
    }

    #[test]
    fn the_token_is_sent_and_marked_sensitive() {
        let server = Server::new(
            "http://127.0.0.1:1",
            Some(SecretString::from("t0ken")),
            Arc::new(|_| {}),
        )
        .expect("a client");
        let headers = server.headers();
        let value = headers.get(AUTHORIZATION).expect("a header");
        assert!(value.is_sensitive());
        assert_eq!(value.to_str().ok(), Some("Bearer t0ken"));
        assert!(!format!("{headers:?}").contains("t0ken"));
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_millis(250));
        assert_eq!(backoff(2), Duration::from_millis(500));
        assert_eq!(backoff(9), MAX_BACKOFF);
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
    }
}
