//! A scripted Canopy for unit tests: answers per id, in order (the last answer repeats), and
//! counts calls.

use crate::ports::canopy::{CanopyApi, CanopyError, PullJson, ReconnectToken};
use async_trait::async_trait;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
pub struct Script {
    pub pulls: HashMap<String, Vec<Result<Value, CanopyError>>>,
    pub tokens: HashMap<String, Vec<Result<ReconnectToken, CanopyError>>>,
    pub pull_calls: usize,
    pub token_calls: usize,
}

/// Clones share the script.
#[derive(Debug, Clone, Default)]
pub struct ScriptedCanopy(pub Arc<Mutex<Script>>);

fn next<T: Clone>(answers: &mut Vec<T>) -> Option<T> {
    if answers.len() > 1 {
        Some(answers.remove(0))
    } else {
        answers.first().cloned()
    }
}

impl ScriptedCanopy {
    pub fn script(&self) -> std::sync::MutexGuard<'_, Script> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Answers GET pull for `pull_id` with these, in order.
    pub fn pull_answers(&self, pull_id: &str, answers: Vec<Result<Value, CanopyError>>) {
        self.script().pulls.insert(pull_id.to_owned(), answers);
    }

    /// Answers the reconnect-token call for `monitoring_id` with these, in order.
    pub fn token_answers(
        &self,
        monitoring_id: &str,
        answers: Vec<Result<ReconnectToken, CanopyError>>,
    ) {
        self.script()
            .tokens
            .insert(monitoring_id.to_owned(), answers);
    }
}

#[async_trait]
impl CanopyApi for ScriptedCanopy {
    /// Unscripted pulls answer a small successful pull.
    async fn get_pull(&self, pull_id: &str) -> Result<PullJson, CanopyError> {
        let answer = {
            let mut script = self.script();
            script.pull_calls += 1;
            script.pulls.get_mut(pull_id).and_then(next)
        };
        let pull =
            answer.unwrap_or_else(|| Ok(json!({"pull_id": pull_id, "status": "SUCCESS"})))?;
        Ok(PullJson::from_value(&pull))
    }

    /// Unscripted monitorings have no token: Canopy's NOT_FOUND.
    async fn reconnect_token(&self, monitoring_id: &str) -> Result<ReconnectToken, CanopyError> {
        let mut script = self.script();
        script.token_calls += 1;
        script
            .tokens
            .get_mut(monitoring_id)
            .and_then(next)
            .unwrap_or(Err(CanopyError::Permanent {
                status: 404,
                code: "NOT_FOUND".to_owned(),
            }))
    }
}
