//! A channel for unit tests: records what it was asked to send, and fails on demand.

use crate::domain::contact::{Contact, Templates};
use crate::domain::notice::ChannelKind;
use crate::ports::channel::{Channel, ChannelError, Notice};
use async_trait::async_trait;
use std::sync::{Arc, Mutex};

/// What the channel saw: one entry per send, with the link it carried.
#[derive(Debug, Default)]
pub struct Sent {
    pub notices: Vec<(String, u32, String)>,
    /// Answers for the next sends, in order; an empty list means success.
    pub failures: Vec<ChannelError>,
}

/// Clones share what was sent.
#[derive(Debug, Clone)]
pub struct RecordingChannel {
    pub kind: ChannelKind,
    pub sent: Arc<Mutex<Sent>>,
}

impl RecordingChannel {
    pub fn new(kind: ChannelKind) -> Self {
        Self {
            kind,
            sent: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Sent> {
        self.sent.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// (monitoring id, notice number, link) of each accepted send.
    pub fn notices(&self) -> Vec<(String, u32, String)> {
        self.lock().notices.clone()
    }

    /// The next sends fail with these, in order.
    pub fn fail_next(&self, failures: Vec<ChannelError>) {
        self.lock().failures = failures;
    }
}

#[async_trait]
impl Channel for RecordingChannel {
    fn kind(&self) -> ChannelKind {
        self.kind
    }

    fn reaches(&self, contact: &Contact) -> bool {
        match self.kind {
            ChannelKind::Email => contact.email.is_some(),
            ChannelKind::Sms => contact.phone.is_some(),
            ChannelKind::Webhook => true,
        }
    }

    async fn send(&self, notice: &Notice, _templates: &Templates) -> Result<(), ChannelError> {
        let mut sent = self.lock();
        if !sent.failures.is_empty() {
            return Err(sent.failures.remove(0));
        }
        sent.notices.push((
            notice.key.monitoring_id.clone(),
            notice.key.notice,
            notice.link.clone(),
        ));
        Ok(())
    }
}
