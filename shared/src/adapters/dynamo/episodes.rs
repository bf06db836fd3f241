//! Reconnect episodes, sends and reminders in DynamoDB.
//!
//! | item | pk | sk | holds |
//! |---|---|---|---|
//! | episode | `MONITORING#<id>` | `EPISODE#<started_at>` | notices sent, last outcome, job context; while a reminder is due: `gsi1pk = REMINDER`, `gsi1sk = <due at>#<monitoring>` |
//! | send | `MONITORING#<id>` | `SEND#<started_at>#<notice>#<channel>` | `SENDING` (lease) / `SENT` / `FAILED` |
//!
//! Index `gsi1` (sparse: only episodes with a reminder due have its keys) answers "which
//! reminders are due" with one Query.

use super::lease::{Claim, Lease};
use super::pulls::DATA_SK;
use super::{
    condition_failed, key, monitoring_pk, n, number, pull_pk, s, text, DynamoStore, STATE_SK,
};
use crate::adapters::aws::port_error;
use crate::domain::notice::{Episode, NoticeRecord, SendClaim, SendKey};
use crate::domain::pull_data::PullSummary;
use crate::domain::work::ReconnectJob;
use crate::ports::store::{DueReminder, EpisodeStore, ReminderStore};
use crate::ports::PortError;
use async_trait::async_trait;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use std::collections::HashMap;

/// A send claimed and not yet confirmed by the provider.
const SENDING: &str = "SENDING";
const SERVICE: &str = "dynamodb";
pub const REMINDER_INDEX: &str = "gsi1";
pub const REMINDER_PK: &str = "REMINDER";

fn episode_sk(started_at: &str) -> String {
    format!("EPISODE#{started_at}")
}
fn send_sk(key: &SendKey) -> String {
    format!(
        "SEND#{}#{:03}#{}",
        key.episode,
        key.notice,
        key.channel.as_str()
    )
}

impl DynamoStore {
    async fn get(
        &self,
        pk: String,
        sk: &str,
    ) -> Result<Option<HashMap<String, AttributeValue>>, PortError> {
        Ok(self
            .client()
            .get_item()
            .table_name(self.table())
            .set_key(Some(key(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| port_error(SERVICE, e))?
            .item)
    }

    /// Reads an episode item (for inspection and tests).
    pub async fn episode_item(
        &self,
        monitoring_id: &str,
        started_at: &str,
    ) -> Result<Option<HashMap<String, AttributeValue>>, PortError> {
        self.get(monitoring_pk(monitoring_id), &episode_sk(started_at))
            .await
    }
}

#[async_trait]
impl ReminderStore for DynamoStore {
    /// The start of the monitoring's open episode, if one is open.
    async fn open_episode_start(&self, monitoring_id: &str) -> Result<Option<String>, PortError> {
        Ok(self
            .get(monitoring_pk(monitoring_id), STATE_SK)
            .await?
            .and_then(|m| text(&m, "reconnect_needed_since")))
    }

    /// Episodes whose reminder is due at `now` (one Query on the sparse index).
    async fn due_reminders(&self, now: &str, limit: i32) -> Result<Vec<DueReminder>, PortError> {
        let items = self
            .client()
            .query()
            .table_name(self.table())
            .index_name(REMINDER_INDEX)
            .key_condition_expression("gsi1pk = :pk AND gsi1sk <= :now")
            .expression_attribute_values(":pk", s(REMINDER_PK))
            // `~` sorts after every character of a key, so keys due at `now` are included.
            .expression_attribute_values(":now", s(format!("{now}~")))
            .limit(limit)
            .send()
            .await
            .map_err(|e| port_error(SERVICE, e))?
            .items
            .unwrap_or_default();
        Ok(items
            .into_iter()
            .filter_map(|item| {
                let monitoring_id = text(&item, "monitoring_id")?;
                let started_at = text(&item, "started_at")?;
                let notices_sent = number(&item, "notices_sent").unwrap_or(0);
                let meta_data = item
                    .get("meta_data")
                    .and_then(|v| serde_dynamo::from_attribute_value(v.clone()).ok());
                Some(DueReminder {
                    due_key: text(&item, "gsi1sk")?,
                    job: ReconnectJob {
                        monitoring_id: monitoring_id.clone(),
                        source: text(&item, "source"),
                        pull_id: text(&item, "pull_id").unwrap_or_default(),
                        initial_pull_id: text(&item, "initial_pull_id"),
                        widget_id: text(&item, "widget_id"),
                        meta_data,
                        meta_data_pull_id: text(&item, "meta_data_pull_id"),
                        link: None,
                        event_key: format!("reminder:{monitoring_id}:{started_at}:{notices_sent}"),
                        requested_at: now.to_owned(),
                        notice: notices_sent,
                        episode: Some(started_at.clone()),
                    },
                    monitoring_id,
                    started_at,
                    notices_sent,
                })
            })
            .collect())
    }

    /// Takes a due reminder off the index; `false` if another run already did.
    async fn take_reminder(
        &self,
        due: &DueReminder,
        resolved_at: Option<&str>,
    ) -> Result<bool, PortError> {
        let mut update = String::from("REMOVE gsi1pk, gsi1sk, next_reminder_at");
        let mut request = self
            .client()
            .update_item()
            .table_name(self.table())
            .set_key(Some(key(
                monitoring_pk(&due.monitoring_id),
                episode_sk(&due.started_at),
            )))
            .condition_expression("gsi1sk = :due")
            .expression_attribute_values(":due", s(&due.due_key));
        if let Some(at) = resolved_at {
            update.push_str(" SET resolved_at = :at, episode_status = :resolved");
            request = request
                .expression_attribute_values(":at", s(at))
                .expression_attribute_values(":resolved", s("RESOLVED"));
        }
        match request.update_expression(update).send().await {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(port_error(SERVICE, e)),
        }
    }
}

#[async_trait]
impl EpisodeStore for DynamoStore {
    async fn open_episode(
        &self,
        job: &ReconnectJob,
        now: &str,
    ) -> Result<Option<Episode>, PortError> {
        // One read of the monitoring: its open episode and its latest stored pull.
        let monitoring = self
            .get(monitoring_pk(&job.monitoring_id), STATE_SK)
            .await?
            .unwrap_or_default();
        let Some(started_at) = text(&monitoring, "reconnect_needed_since") else {
            return Ok(None);
        };
        let mut item = key(monitoring_pk(&job.monitoring_id), episode_sk(&started_at));
        item.extend([
            ("monitoring_id".to_owned(), s(&job.monitoring_id)),
            ("started_at".to_owned(), s(&started_at)),
            ("opened_at".to_owned(), s(now)),
            ("episode_status".to_owned(), s("OPEN")),
            ("notices_sent".to_owned(), n(0)),
            ("pull_id".to_owned(), s(&job.pull_id)),
        ]);
        if let Some(v) = &job.initial_pull_id {
            item.insert("initial_pull_id".to_owned(), s(v));
        }
        if let Some(v) = &job.widget_id {
            item.insert("widget_id".to_owned(), s(v));
        }
        // Reminders are asked with the same source's keys as the first notice.
        if let Some(v) = &job.source {
            item.insert("source".to_owned(), s(v));
        }
        if let Some(v) = &job.meta_data_pull_id {
            item.insert("meta_data_pull_id".to_owned(), s(v));
        }
        if let Some(meta) = job
            .meta_data
            .as_ref()
            .and_then(|m| serde_dynamo::to_attribute_value(m).ok())
        {
            item.insert("meta_data".to_owned(), meta);
        }
        let result = self
            .client()
            .put_item()
            .table_name(self.table())
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let notices_sent = match result {
            Ok(_) => 0,
            Err(err) => match err.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(c)) => match c.item() {
                    Some(old) => number(old, "notices_sent").unwrap_or(0),
                    None => self
                        .episode_item(&job.monitoring_id, &started_at)
                        .await?
                        .and_then(|old| number(&old, "notices_sent"))
                        .unwrap_or(0),
                },
                _ => return Err(port_error(SERVICE, err)),
            },
        };
        Ok(Some(Episode {
            monitoring_id: job.monitoring_id.clone(),
            started_at,
            notices_sent,
            latest_data_pull_id: text(&monitoring, "latest_data_pull_id"),
        }))
    }

    async fn stored_meta_data(
        &self,
        pull_id: &str,
    ) -> Result<Option<serde_json::Value>, PortError> {
        self.pull_meta_data(pull_id).await
    }

    async fn pull_summary(&self, pull_ids: &[&str]) -> Result<Option<PullSummary>, PortError> {
        for candidate in pull_ids {
            if let Some(item) = self.get(pull_pk(candidate), DATA_SK).await? {
                return serde_dynamo::from_item(item).map(Some).map_err(|e| {
                    PortError::unavailable(SERVICE, format!("unreadable pull summary: {e}"))
                });
            }
        }
        Ok(None)
    }

    async fn claim_send(
        &self,
        send: &SendKey,
        lease_id: &str,
        now: i64,
        lease_expires_at: i64,
    ) -> Result<SendClaim, PortError> {
        let mut item = key(monitoring_pk(&send.monitoring_id), send_sk(send));
        item.insert("channel".to_owned(), s(send.channel.as_str()));
        let lease = Lease {
            id: lease_id,
            expires_at: lease_expires_at,
        };
        Ok(match self.claim_lease(item, SENDING, &lease, now).await? {
            Claim::Taken => SendClaim::Claimed,
            Claim::Refused(old) => {
                let old = old.unwrap_or_default();
                if text(&old, "status").as_deref() == Some(SENDING) {
                    SendClaim::InFlight {
                        lease_expires_at: number(&old, "lease_expires_at")
                            .unwrap_or(lease_expires_at),
                    }
                } else {
                    SendClaim::Done
                }
            }
        })
    }

    async fn finish_send(
        &self,
        send: &SendKey,
        lease_id: &str,
        failure: Option<&str>,
        at: &str,
    ) -> Result<(), PortError> {
        let mut request = self
            .client()
            .update_item()
            .table_name(self.table())
            .set_key(Some(key(monitoring_pk(&send.monitoring_id), send_sk(send))))
            .condition_expression(super::HELD_BY_LEASE)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":lease", s(lease_id))
            .expression_attribute_values(":at", s(at));
        request = match failure {
            None => request
                .update_expression("SET #status = :sent, sent_at = :at REMOVE lease_expires_at")
                .expression_attribute_values(":sent", s("SENT")),
            Some(reason) => request
                .update_expression("SET #status = :failed, failed_at = :at, reason = :reason REMOVE lease_expires_at")
                .expression_attribute_values(":failed", s("FAILED"))
                .expression_attribute_values(":reason", s(reason)),
        };
        request.send().await.map_err(|e| port_error(SERVICE, e))?;
        Ok(())
    }

    async fn release_send(&self, send: &SendKey, lease_id: &str) -> Result<(), PortError> {
        self.release_lease(
            key(monitoring_pk(&send.monitoring_id), send_sk(send)),
            SENDING,
            lease_id,
        )
        .await
    }

    async fn record_notice(
        &self,
        episode: &Episode,
        record: &NoticeRecord,
        at: &str,
        next_reminder_at: Option<&str>,
    ) -> Result<(), PortError> {
        let sent: Vec<&str> = record.sent.iter().map(|c| c.as_str()).collect();
        let failed: Vec<String> = record
            .failed
            .iter()
            .map(|(c, r)| format!("{}: {r}", c.as_str()))
            .collect();
        let mut update = String::from(
            "SET notices_sent = :n, last_notice_at = :at, last_sent = :sent, last_failed = :failed, \
             no_contact = :no_contact, link_source = :link_source",
        );
        let mut request = self
            .client()
            .update_item()
            .table_name(self.table())
            .set_key(Some(key(
                monitoring_pk(&episode.monitoring_id),
                episode_sk(&episode.started_at),
            )))
            // Notices only move forward: a late duplicate does not rewind the count.
            .condition_expression("attribute_not_exists(notices_sent) OR notices_sent < :n")
            .expression_attribute_values(":n", n(record.notice + 1))
            .expression_attribute_values(":at", s(at))
            .expression_attribute_values(":sent", s(sent.join(",")))
            .expression_attribute_values(":failed", s(failed.join("; ")))
            .expression_attribute_values(":no_contact", AttributeValue::Bool(record.no_contact))
            .expression_attribute_values(":link_source", s(record.link_source));
        match next_reminder_at {
            Some(due) => {
                update.push_str(", next_reminder_at = :due, gsi1pk = :reminder, gsi1sk = :due_key");
                request = request
                    .expression_attribute_values(":due", s(due))
                    .expression_attribute_values(":reminder", s(REMINDER_PK))
                    .expression_attribute_values(
                        ":due_key",
                        s(format!(
                            "{due}#{}#{}",
                            episode.monitoring_id, episode.started_at
                        )),
                    );
            }
            None => update.push_str(" REMOVE next_reminder_at, gsi1pk, gsi1sk"),
        }
        match request.update_expression(update).send().await {
            Ok(_) => Ok(()),
            Err(e) if condition_failed(&e) => Ok(()),
            Err(e) => Err(port_error(SERVICE, e)),
        }
    }
}
