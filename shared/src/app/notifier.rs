//! The reconnect notifier: once per episode (and per reminder), a fresh link to the consumer on
//! every configured channel.
//!
//! Episodes. An episode opens when intake records a MONITORING_RECONNECT for a monitoring with
//! none open (`reconnect_needed_since` on the monitoring) and closes when a refresh of that
//! monitoring completes (intake removes it). The notifier keeps an episode item per episode:
//! how many notices went out and when the next reminder is due.
//!
//! Send order: *claim, send, record*. Before sending on a channel the notifier claims the send
//! (a conditional write of `SENDING` with a lease) and marks it `SENT` after the provider
//! accepted it. Concurrent or redelivered messages find the claim and send nothing. A crash
//! between the provider's acceptance and `SENT` leaves an expired lease; the redelivered
//! message then sends again: a rare duplicate rather than a lost notice, because an unsent
//! reconnect link costs the integrator the account. The outbound webhook carries the send's
//! key as `webhook-id` so the receiver can drop that duplicate.

use crate::domain::contact::{reconnect_link, resolve_contact, ContactKeys, Templates};
use crate::domain::event::REDACTED;
use crate::domain::notice::{ChannelKind, NoticeRecord, SendClaim, SendKey};
use crate::domain::retry::RetryPolicy;
use crate::domain::time_fmt::format_ts;
use crate::domain::work::ReconnectJob;
use crate::ports::canopy::{CanopyApi, CanopyError};
use crate::ports::channel::{Channel, ChannelError, Notice};
use crate::ports::store::EpisodeStore;
use crate::ports::{Clock, PortError};
use std::time::Duration;

/// Notifier settings.
#[derive(Debug, Clone)]
pub struct NotifierConfig {
    pub contact_keys: ContactKeys,
    pub templates: Templates,
    /// Whitelabel link template, e.g. `https://app.example.com/reconnect?token={reconnect_token}`.
    pub link_template: Option<String>,
    pub reminder_delay: Duration,
    pub max_reminders: u32,
    /// Tries of the fresh-token call within one invocation before falling back.
    pub token_attempts: u32,
    pub token_retry_pause: Duration,
    /// All tries of the fresh-token call together (see [`crate::app::budget`]).
    pub token_budget: Duration,
    pub send_lease: Duration,
}

impl Default for NotifierConfig {
    fn default() -> Self {
        Self {
            contact_keys: ContactKeys::default(),
            templates: Templates::default(),
            link_template: None,
            reminder_delay: Duration::from_secs(3 * 24 * 3600),
            max_reminders: 2,
            token_attempts: 3,
            token_retry_pause: Duration::from_millis(200),
            token_budget: crate::app::budget::TOKEN_BUDGET,
            send_lease: crate::app::budget::SEND_LEASE,
        }
    }
}

/// What happened to one notify job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyOutcome {
    Notified(NoticeRecord),
    /// The episode is over (or this reminder belongs to an older one): nothing to send.
    Resolved,
    /// This notice number was already recorded.
    AlreadyNotified,
    /// Canopy says the monitoring cannot be reconnected (e.g. MONITORING_INACTIVE).
    NotReconnectable {
        code: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("no reconnect link: {0}")]
    NoLink(CanopyError),
    #[error("{channel} send failed, will retry: {reason}")]
    Channel {
        channel: &'static str,
        reason: String,
    },
    #[error("a send of this notice is in flight elsewhere for {0:?}")]
    InFlight(Duration),
    #[error(transparent)]
    Store(#[from] PortError),
    /// The job names a source this deployment does not have: retried, then dead-lettered.
    #[error(transparent)]
    UnknownSource(#[from] crate::domain::source::UnknownSource),
}

impl crate::domain::retry::RetryHint for NotifyError {
    fn retry_after(&self) -> Option<Duration> {
        match self {
            NotifyError::NoLink(e) => e.retry_after(),
            NotifyError::InFlight(left) => Some(*left),
            _ => None,
        }
    }
}

/// When the next reminder is due after notice `notice`, if any.
pub fn next_reminder(
    notice: u32,
    config: &NotifierConfig,
    now: time::OffsetDateTime,
) -> Option<String> {
    (notice < config.max_reminders).then(|| {
        let delay = time::Duration::try_from(config.reminder_delay).unwrap_or(time::Duration::DAY);
        format_ts(now + delay)
    })
}

pub struct ReconnectNotifier<S, A, C> {
    store: S,
    /// Each source's client: a fresh link is asked with the monitoring's own source's keys.
    canopy: crate::domain::source::Sources<A>,
    clock: C,
    channels: Vec<Box<dyn Channel>>,
    config: NotifierConfig,
}

impl<S: EpisodeStore, A: CanopyApi, C: Clock> ReconnectNotifier<S, A, C> {
    pub fn new(
        store: S,
        canopy: crate::domain::source::Sources<A>,
        clock: C,
        channels: Vec<Box<dyn Channel>>,
        config: NotifierConfig,
    ) -> Self {
        Self {
            store,
            canopy,
            clock,
            channels,
            config,
        }
    }

    pub fn channels(&self) -> Vec<ChannelKind> {
        self.channels.iter().map(|c| c.kind()).collect()
    }

    pub async fn notify(&self, job: &ReconnectJob) -> Result<NotifyOutcome, NotifyError> {
        let (source, canopy) = self.canopy.get(job.source.as_deref())?;
        let now = self.clock.now();
        let Some(episode) = self.store.open_episode(job, &format_ts(now)).await? else {
            return Ok(NotifyOutcome::Resolved);
        };
        if job
            .episode
            .as_deref()
            .is_some_and(|e| e != episode.started_at)
        {
            return Ok(NotifyOutcome::Resolved);
        }
        if job.notice < episode.notices_sent {
            return Ok(NotifyOutcome::AlreadyNotified);
        }

        let fresh = self.fresh_link(canopy, job).await;
        crate::app::metrics::canopy_answer(source.key_type, fresh.as_ref().err());
        let (token, link_source) = match fresh {
            Ok(t) => (t, "fresh"),
            Err(CanopyError::Permanent { code, .. }) => {
                return Ok(NotifyOutcome::NotReconnectable { code })
            }
            // The webhook's own link only when Canopy could not be reached: refused keys
            // (`Misconfigured`) may mean the webhook was forged with another source's secret,
            // and its link must not reach a consumer.
            Err(err @ CanopyError::Misconfigured { .. }) => return Err(NotifyError::NoLink(err)),
            Err(err) => match job
                .link
                .as_ref()
                .and_then(|l| Some((l.reconnect_url.clone()?, l.reconnect_token.clone()?)))
                // A redacted link (a replay of a stored body) is no link: never sent.
                .filter(|(url, token)| !url.contains(REDACTED) && !token.contains(REDACTED))
            {
                // The webhook's own link: older, but better than none.
                Some(fallback) if job.notice == 0 => {
                    tracing::warn!(monitoring_id = %job.monitoring_id, error = %err, "no fresh reconnect link; using the webhook's");
                    (fallback, "webhook")
                }
                _ => return Err(NotifyError::NoLink(err)),
            },
        };
        let link = reconnect_link(
            self.config.link_template.as_deref(),
            &token.0,
            &token.1,
            &job.monitoring_id,
        );
        // The monitoring's latest data first, else its initial pull.
        let candidates: Vec<&str> = [&episode.latest_data_pull_id, &job.initial_pull_id]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect();
        let summary = self.store.pull_summary(&candidates).await?;
        let stored_meta;
        let meta_data = match (&job.meta_data, &job.meta_data_pull_id) {
            (Some(inline), _) => Some(inline),
            (None, Some(pull_id)) => {
                stored_meta = self.store.stored_meta_data(pull_id).await?;
                stored_meta.as_ref()
            }
            (None, None) => None,
        };
        let contact = resolve_contact(meta_data, summary.as_ref(), &self.config.contact_keys);
        let carrier = summary.as_ref().and_then(|s| {
            s.insurance_provider_friendly_name
                .clone()
                .or_else(|| s.insurance_provider_name.clone())
        });

        let mut record = NoticeRecord {
            notice: job.notice,
            sent: Vec::new(),
            failed: Vec::new(),
            no_contact: false,
            link_source,
        };
        let reachable: Vec<&dyn Channel> = self
            .channels
            .iter()
            .map(|c| c.as_ref())
            .filter(|c| c.reaches(&contact))
            .collect();
        record.no_contact = contact.email.is_none() && contact.phone.is_none();
        let mut retry: Option<NotifyError> = None;
        for channel in reachable {
            let notice = Notice {
                key: SendKey {
                    monitoring_id: job.monitoring_id.clone(),
                    episode: episode.started_at.clone(),
                    notice: job.notice,
                    channel: channel.kind(),
                },
                pull_id: job.pull_id.clone(),
                contact: contact.clone(),
                carrier: carrier.clone(),
                link: link.clone(),
                meta_data: meta_data.cloned(),
            };
            match self.send_once(channel, &notice).await {
                Ok(SendResult::Sent) => record.sent.push(channel.kind()),
                Ok(SendResult::AlreadyDone) => {}
                Ok(SendResult::Failed(reason)) => record.failed.push((channel.kind(), reason)),
                Err(e) => retry = Some(e),
            }
        }
        if let Some(err) = retry {
            return Err(err);
        }
        let at = self.clock.now();
        self.store
            .record_notice(
                &episode,
                &record,
                &format_ts(at),
                next_reminder(job.notice, &self.config, at).as_deref(),
            )
            .await?;
        Ok(NotifyOutcome::Notified(record))
    }

    /// A fresh link from Canopy, tried a few times within [`NotifierConfig::token_budget`].
    async fn fresh_link(
        &self,
        canopy: &A,
        job: &ReconnectJob,
    ) -> Result<(String, String), CanopyError> {
        tokio::time::timeout(self.config.token_budget, self.fresh_link_tries(canopy, job))
            .await
            .unwrap_or_else(|_| {
                Err(CanopyError::RetryLater {
                    reason: "the reconnect token call ran past its budget".into(),
                    retry_after: None,
                })
            })
    }

    async fn fresh_link_tries(
        &self,
        canopy: &A,
        job: &ReconnectJob,
    ) -> Result<(String, String), CanopyError> {
        let backoff = RetryPolicy {
            base: self.config.token_retry_pause,
            cap: self.config.token_budget,
        };
        let mut last = None;
        for attempt in 0..self.config.token_attempts.max(1) {
            if attempt > 0 {
                tokio::time::sleep(backoff.backoff(attempt)).await;
            }
            match canopy.reconnect_token(&job.monitoring_id).await {
                Ok(t) => return Ok((t.reconnect_url, t.reconnect_token)),
                Err(e @ CanopyError::RetryLater { .. }) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or(CanopyError::RetryLater {
            reason: "no attempt".into(),
            retry_after: None,
        }))
    }

    async fn send_once(
        &self,
        channel: &dyn Channel,
        notice: &Notice,
    ) -> Result<SendResult, NotifyError> {
        let lease_id = uuid::Uuid::new_v4().to_string();
        let now = self.clock.now().unix_timestamp();
        let lease = i64::try_from(self.config.send_lease.as_secs()).unwrap_or(60);
        match self
            .store
            .claim_send(&notice.key, &lease_id, now, now + lease)
            .await?
        {
            SendClaim::Done => return Ok(SendResult::AlreadyDone),
            SendClaim::InFlight { lease_expires_at } => {
                return Err(NotifyError::InFlight(crate::app::budget::until_lease_ends(
                    lease_expires_at,
                    now,
                )));
            }
            SendClaim::Claimed => {}
        }
        let at = || format_ts(self.clock.now());
        match channel.send(notice, &self.config.templates).await {
            Ok(()) => {
                self.store
                    .finish_send(&notice.key, &lease_id, None, &at())
                    .await?;
                tracing::info!(monitoring_id = %notice.key.monitoring_id, channel = channel.kind().as_str(), notice = notice.key.notice, "reconnect notice sent");
                crate::app::metrics::notice(channel.kind().as_str(), "sent");
                Ok(SendResult::Sent)
            }
            Err(ChannelError::Permanent(reason)) => {
                self.store
                    .finish_send(&notice.key, &lease_id, Some(&reason), &at())
                    .await?;
                tracing::error!(monitoring_id = %notice.key.monitoring_id, channel = channel.kind().as_str(), %reason, "reconnect notice refused");
                crate::app::metrics::notice(channel.kind().as_str(), "failed");
                Ok(SendResult::Failed(reason))
            }
            Err(err @ (ChannelError::Retryable(_) | ChannelError::Account(_))) => {
                let reason = match err {
                    ChannelError::Account(reason) => {
                        tracing::error!(monitoring_id = %notice.key.monitoring_id, channel = channel.kind().as_str(), %reason,
                            "the sending account cannot send; an operator must act (retrying)");
                        reason
                    }
                    ChannelError::Retryable(reason) | ChannelError::Permanent(reason) => reason,
                };
                crate::app::metrics::notice(channel.kind().as_str(), "retry");
                if let Err(e) = self.store.release_send(&notice.key, &lease_id).await {
                    tracing::warn!(error = %e, "could not release the send claim");
                }
                Err(NotifyError::Channel {
                    channel: channel.kind().as_str(),
                    reason,
                })
            }
        }
    }
}

enum SendResult {
    Sent,
    AlreadyDone,
    Failed(String),
}
