//! The CLI's side of hoistd's API: calls with the token, errors as exit codes, and
//! following an NDJSON log stream.

use anyhow::Context;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Exit codes scripts can rely on (also in `hoist --help` and README).
pub mod exit {
    /// Something else went wrong.
    pub const ERROR: i32 = 1;
    /// The command line was wrong (clap's own code).
    pub const USAGE: i32 = 2;
    /// hoistd cannot be reached.
    pub const UNREACHABLE: i32 = 3;
    /// No token, or a wrong one.
    pub const UNAUTHORIZED: i32 = 4;
    /// No such app, build or release.
    pub const NOT_FOUND: i32 = 5;
    /// hoistd refused the request as it is (bad input, a conflict).
    pub const REFUSED: i32 = 6;
    /// A build or release failed; what ran before keeps running.
    pub const FAILED: i32 = 7;
}

/// hoistd answered with an error, or could not be reached.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

impl Failure {
    pub fn new(code: i32, message: impl Into<String>) -> Failure {
        Failure { code, message: message.into() }
    }
}

#[derive(Clone)]
pub struct Client {
    pub url: String,
    pub token: String,
    pub http: reqwest::Client,
}

impl Client {
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<reqwest::Response> {
        let mut request = self.http.request(method, format!("{}{path}", self.url)).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|e| self.unreachable(e))?;
        Self::checked(response).await
    }

    pub fn unreachable(&self, error: reqwest::Error) -> Failure {
        Failure::new(
            exit::UNREACHABLE,
            format!("cannot reach hoistd at {}: {error}; is it running (bash deploy/run-hoistd), and is the URL right (hoist login URL)?", self.url),
        )
    }

    /// The response if it succeeded; otherwise hoistd's message with its exit code.
    pub async fn checked(response: reqwest::Response) -> anyhow::Result<reqwest::Response> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<hoist_wire::ErrorAnswer>(&text).map(|e| e.error).unwrap_or(text);
        let code = match status.as_u16() {
            401 => exit::UNAUTHORIZED,
            // Known, but without the role: refused, and the message says which is needed.
            403 => exit::REFUSED,
            404 => exit::NOT_FOUND,
            422 => exit::FAILED,
            400..=499 => exit::REFUSED,
            _ => exit::ERROR,
        };
        Err(Failure::new(code, format!("{message} (HTTP {})", status.as_u16())).into())
    }

    /// The answer as JSON (`null` for 204).
    pub async fn json(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let response = self.call(method, path, body).await?;
        if response.status() == reqwest::StatusCode::NO_CONTENT {
            return Ok(Value::Null);
        }
        response.json().await.context("hoistd's answer is not JSON")
    }

    /// The answer as one of the API's wire types.
    pub async fn typed<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<T> {
        let value = self.json(method, path, body).await?;
        serde_json::from_value(value)
            .with_context(|| format!("hoistd's answer to {path} is not what this hoist reads; is it a newer hoistd?"))
    }

    /// Reads an NDJSON log stream, calling `each` for every line; returns its closing
    /// `end` object (`null` when the stream stopped without one).
    pub async fn follow(&self, path: &str, mut each: impl FnMut(&str, Value)) -> anyhow::Result<Value> {
        let response = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .header(reqwest::header::ACCEPT, "application/x-ndjson")
            .send()
            .await;
        let response = response.map_err(|e| self.unreachable(e))?;
        let response = Self::checked(response).await?;
        let mut body = response.bytes_stream();
        let mut pending: Vec<u8> = Vec::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| Failure::new(exit::UNREACHABLE, format!("hoistd stopped sending: {e}")))?;
            pending.extend_from_slice(&chunk);
            while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                let text = String::from_utf8_lossy(&line).trim_end().to_string();
                let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                if let Some(end) = value.get("end") {
                    return Ok(end.clone());
                }
                each(&text, value);
            }
        }
        Ok(Value::Null)
    }
}

pub fn http_client(ca_cert: Option<&std::path::Path>) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder().connect_timeout(std::time::Duration::from_secs(10));
    if let Some(path) = ca_cert {
        let pem = std::fs::read(path).with_context(|| format!("cannot read the CA certificate {}", path.display()))?;
        let certificate = reqwest::Certificate::from_pem(&pem).context("the CA certificate is not PEM")?;
        builder = builder.tls_certs_merge([certificate]);
    }
    Ok(builder.build()?)
}
