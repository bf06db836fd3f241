//! A local stand-in for the integrator's backend: receives the outbound webhook, verifies its
//! Standard Webhooks signature, and keeps what arrived. It can be told to answer errors first.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
struct Inner {
    received: Vec<(String, Value)>,
    rejected_signatures: usize,
    answers: VecDeque<u16>,
}

/// A running receiver; clones share its state.
#[derive(Clone)]
pub struct WebhookReceiver {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

impl WebhookReceiver {
    pub async fn start(secret: &str) -> std::io::Result<Self> {
        let verifier =
            Arc::new(standardwebhooks::Webhook::new(secret).map_err(std::io::Error::other)?);
        let inner = Arc::new(Mutex::new(Inner::default()));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let url = format!("http://{}/canopy-monitor/reconnect", listener.local_addr()?);
        let app = axum::Router::new()
            .fallback(receive)
            .with_state((verifier, inner.clone()));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { url, inner })
    }

    /// Answers these statuses to the next deliveries, then 204 again.
    pub fn answer_next(&self, statuses: &[u16]) {
        self.lock().answers.extend(statuses);
    }

    /// `(webhook-id, body)` of every delivery whose signature verified and that got a 2xx.
    pub fn received(&self) -> Vec<(String, Value)> {
        self.lock().received.clone()
    }

    pub fn rejected_signatures(&self) -> usize {
        self.lock().rejected_signatures
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

type ReceiverState = (Arc<standardwebhooks::Webhook>, Arc<Mutex<Inner>>);

async fn receive(
    State((verifier, inner)): State<ReceiverState>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let mut inner = inner.lock().unwrap_or_else(|p| p.into_inner());
    if verifier.verify(&body, &headers).is_err() {
        inner.rejected_signatures += 1;
        return StatusCode::UNAUTHORIZED;
    }
    if let Some(status) = inner.answers.pop_front() {
        return StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    }
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    inner
        .received
        .push((id, serde_json::from_slice(&body).unwrap_or(Value::Null)));
    StatusCode::NO_CONTENT
}

/// What moto's SES and SNS accepted: `(destination, subject, body)` of emails and
/// `(phone, message)` of SMS, read from moto's state dump.
/// moto's whole state. moto builds it while other requests change it, so a read can fail
/// mid-way; it is tried a few times.
async fn moto_state(endpoint: &str) -> Result<Value, String> {
    let mut last = String::new();
    for _ in 0..10 {
        let answer = async {
            reqwest::get(format!("{endpoint}/moto-api/data.json"))
                .await
                .map_err(|e| e.to_string())?
                .error_for_status()
                .map_err(|e| e.to_string())?
                .json::<Value>()
                .await
                .map_err(|e| e.to_string())
        }
        .await;
        match answer {
            Ok(state) => return Ok(state),
            Err(e) => last = e,
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    Err(last)
}

pub async fn moto_sent(
    endpoint: &str,
) -> Result<(Vec<(String, String, String)>, Vec<(String, String)>), String> {
    let data = moto_state(endpoint).await?;
    let emails = data["ses"]["Message"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|m| {
            let subject = m["subject"].as_str().unwrap_or_default().to_owned();
            let body = m["body"].as_str().unwrap_or_default().to_owned();
            m["destinations"]["ToAddresses"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a.as_str())
                .map(move |to| (to.to_owned(), subject.clone(), body.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    let sms = data["sns"]["SMS"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            (
                m["phone_number"].as_str().unwrap_or_default().to_owned(),
                m["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    Ok((emails, sms))
}
