//! A reconnect episode and its notices, as stored: the values the notifier, the episode store
//! and the notice channels share.

/// An open episode, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Episode {
    pub monitoring_id: String,
    /// The episode's id: when the reconnect was first needed.
    pub started_at: String,
    pub notices_sent: u32,
    /// The monitoring's latest stored pull, read with the episode (for contact details).
    pub latest_data_pull_id: Option<String>,
}

/// The channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelKind {
    Email,
    Sms,
    Webhook,
}

impl ChannelKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            ChannelKind::Email => "email",
            ChannelKind::Sms => "sms",
            ChannelKind::Webhook => "webhook",
        }
    }
}

/// Identifies one send: monitoring, episode, notice number, channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendKey {
    pub monitoring_id: String,
    pub episode: String,
    pub notice: u32,
    pub channel: ChannelKind,
}

impl SendKey {
    /// Stable text form; also the outbound webhook's `webhook-id`.
    pub fn id(&self) -> String {
        format!(
            "{}:{}:{}:{}",
            self.monitoring_id,
            self.episode,
            self.notice,
            self.channel.as_str()
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendClaim {
    Claimed,
    /// Sent (or failed permanently) before.
    Done,
    /// Another attempt holds the claim until `lease_expires_at` (Unix seconds).
    InFlight {
        lease_expires_at: i64,
    },
}

/// What a notice produced, recorded on the episode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeRecord {
    pub notice: u32,
    pub sent: Vec<ChannelKind>,
    pub failed: Vec<(ChannelKind, String)>,
    pub no_contact: bool,
    /// Where the link came from: `fresh` (Canopy) or `webhook` (fallback).
    pub link_source: &'static str,
}
