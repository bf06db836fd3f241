//! Sources: the Canopy teams and key types one deployment serves.
//!
//! Canopy keeps sandbox and production apart: each has its own API keys (a call made with the
//! other's gets `400 INCORRECT_API_KEY_TYPE`) and its own webhook registrations, each with its
//! own signing secret. A deployment serves one or more *sources*, each a team id and a key
//! type with its keys and secrets. The source of a delivery is the one whose secret verified
//! it; it is recorded on the pull and the monitoring and carried in every queue message, so
//! each later call to Canopy is made with that source's keys.
//!
//! The first source is the *primary*: the one a single-source deployment has always had.
//! Records and messages written before sources existed name none and belong to it.

use std::fmt;

/// Canopy's two kinds of API keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyType {
    Production,
    Sandbox,
}

impl KeyType {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Production => "production",
            KeyType::Sandbox => "sandbox",
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for KeyType {
    type Err = SourceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "production" => Ok(KeyType::Production),
            "sandbox" => Ok(KeyType::Sandbox),
            other => Err(SourceError::KeyType(other.to_owned())),
        }
    }
}

/// One source: what names it and what Canopy calls it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// Ours: `[a-z0-9-]{1,32}`, kept on records and messages (see [`valid_name`]).
    pub name: String,
    /// Canopy's team id (sandbox and production of one team share it).
    pub team_id: String,
    pub key_type: KeyType,
}

/// The name of the primary source when none is configured.
pub const DEFAULT_PRIMARY_NAME: &str = "primary";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error("key type {0:?} is neither production nor sandbox")]
    KeyType(String),
    #[error("source name {0:?} must be 1 to 32 characters of a-z, 0-9 and -")]
    Name(String),
    #[error("source {0:?} has no team id")]
    TeamId(String),
    #[error("source {0:?} is configured twice (its name, or its team and key type)")]
    Duplicate(String),
    #[error("source entry {0:?} is not name=team_id:key_type")]
    Entry(String),
    #[error("no source is configured")]
    Empty,
}

/// A source name is short, lower-case and safe in a secret's name, a metric and a URL.
pub fn valid_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl Source {
    pub fn new(name: &str, team_id: &str, key_type: KeyType) -> Result<Self, SourceError> {
        if !valid_name(name) {
            return Err(SourceError::Name(name.to_owned()));
        }
        let team_id = team_id.trim();
        if team_id.is_empty() {
            return Err(SourceError::TeamId(name.to_owned()));
        }
        Ok(Self {
            name: name.to_owned(),
            team_id: team_id.to_owned(),
            key_type,
        })
    }
}

/// Parses the additional sources setting: `name=team_id:key_type`, comma-separated (the
/// template's `AdditionalSources`), e.g. `sandbox=6b1f...:sandbox,agency-b=91c2...:production`.
pub fn parse_additional_sources(value: &str) -> Result<Vec<Source>, SourceError> {
    value
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let (name, rest) = entry
                .split_once('=')
                .ok_or_else(|| SourceError::Entry(entry.to_owned()))?;
            let (team_id, key_type) = rest
                .rsplit_once(':')
                .ok_or_else(|| SourceError::Entry(entry.to_owned()))?;
            Source::new(name.trim(), team_id, key_type.parse()?)
        })
        .collect()
}

/// What a delivery's writes say about its source: its name, and whether it may claim a record
/// that names none. Only the primary may: such records were written before sources existed,
/// when the primary was the only source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceStamp {
    pub name: String,
    pub adopts_unnamed: bool,
}

/// Whether a write of `stamp` may touch a record that exists (`exists`) naming `stored`.
/// A pull or monitoring belongs to the source that first named it: another source's secret
/// must not move it to its own keys, nor rewrite its owner and contact data.
pub fn source_allows(stored: Option<&str>, exists: bool, stamp: &SourceStamp) -> bool {
    match stored {
        Some(s) => s == stamp.name,
        None => !exists || stamp.adopts_unnamed,
    }
}

/// Team ids compared as Canopy's UUIDs are: case and surrounding space aside.
pub fn same_team(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

/// Why a source named by a record, a message or a caller cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("source {0:?} is not configured in this deployment")]
pub struct UnknownSource(pub String);

/// The sources of a deployment, each with its `T` (API client, signing secrets...). Never
/// empty; the first is the primary. A handful at most, so a list beats a map.
#[derive(Debug, Clone)]
pub struct Sources<T> {
    entries: Vec<(Source, T)>,
}

impl<T> Sources<T> {
    /// The sources in order, the primary first; names must be unique.
    pub fn new(entries: Vec<(Source, T)>) -> Result<Self, SourceError> {
        if entries.is_empty() {
            return Err(SourceError::Empty);
        }
        for (i, (source, _)) in entries.iter().enumerate() {
            if entries[..i].iter().any(|(s, _)| {
                s.name == source.name
                    || (same_team(&s.team_id, &source.team_id) && s.key_type == source.key_type)
            }) {
                return Err(SourceError::Duplicate(source.name.clone()));
            }
        }
        Ok(Self { entries })
    }

    /// The stamp of a delivery verified as `source`'s.
    pub fn stamp(&self, source: &Source) -> SourceStamp {
        SourceStamp {
            name: source.name.clone(),
            adopts_unnamed: self.primary().0.name == source.name,
        }
    }

    /// One source.
    pub fn single(source: Source, value: T) -> Self {
        Self {
            entries: vec![(source, value)],
        }
    }

    /// The source a record or message names; `None` (written before sources existed) is
    /// the primary.
    pub fn get(&self, name: Option<&str>) -> Result<(&Source, &T), UnknownSource> {
        match name {
            None => Ok(self.primary()),
            Some(name) => self
                .entries
                .iter()
                .find(|(s, _)| s.name == name)
                .map(|(s, v)| (s, v))
                .ok_or_else(|| UnknownSource(name.to_owned())),
        }
    }

    pub fn primary(&self) -> (&Source, &T) {
        let (s, v) = &self.entries[0];
        (s, v)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Source, &T)> {
        self.entries.iter().map(|(s, v)| (s, v))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// The names, for messages that list what is configured.
    pub fn names(&self) -> Vec<&str> {
        self.entries.iter().map(|(s, _)| s.name.as_str()).collect()
    }

    /// The same sources with each value mapped, or the first error.
    pub fn try_map<U, E>(
        self,
        mut f: impl FnMut(&Source, T) -> Result<U, E>,
    ) -> Result<Sources<U>, E> {
        let mut entries = Vec::with_capacity(self.entries.len());
        for (s, v) in self.entries {
            let u = f(&s, v)?;
            entries.push((s, u));
        }
        Ok(Sources { entries })
    }

    /// The same sources with each value mapped.
    pub fn map<U>(self, mut f: impl FnMut(&Source, T) -> U) -> Sources<U> {
        Sources {
            entries: self
                .entries
                .into_iter()
                .map(|(s, v)| {
                    let u = f(&s, v);
                    (s, u)
                })
                .collect(),
        }
    }
}

impl Source {
    /// A source for tests and single-source wiring that never looks at the team id.
    pub fn primary(team_id: &str) -> Self {
        Self {
            name: DEFAULT_PRIMARY_NAME.to_owned(),
            team_id: team_id.to_owned(),
            key_type: KeyType::Production,
        }
    }
}

/// A source and the secret a function reads for it.
///
/// The primary source is `CANOPY_TEAM_ID` with `CANOPY_KEY_TYPE` (default `production`),
/// named `CANOPY_SOURCE_NAME` (default `primary`), its secrets the stack's own
/// (`CANOPY_API_SECRET_ID`, `WEBHOOK_SECRET_ID`). Each additional source of
/// `CANOPY_ADDITIONAL_SOURCES` (`name=team_id:key_type,...`) keeps its secrets under
/// `{SOURCE_SECRET_PREFIX}{name}/api` and `.../webhook`: one secret per source and role, so
/// rotating one source's secret writes nothing another source reads, and each function's
/// role can be granted by name (intake reads no API keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSpec {
    pub source: Source,
    /// ARN or name of the secret.
    pub secret_id: String,
}

impl SourceSpec {
    /// A single-source deployment's one source (tests and the local runner).
    pub fn primary(team_id: &str, secret_id: &str) -> Self {
        Self {
            source: Source::primary(team_id),
            secret_id: secret_id.to_owned(),
        }
    }

    /// The secret name of an additional source: `{prefix}{name}/{role}` (`api` or `webhook`).
    pub fn additional_secret_name(prefix: &str, name: &str, role: &str) -> String {
        format!("{prefix}{name}/{role}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_additional_sources() {
        let sources =
            parse_additional_sources(" sandbox=team-1:sandbox , agency-b=team:2:production,")
                .unwrap();
        assert_eq!(
            sources,
            vec![
                Source::new("sandbox", "team-1", KeyType::Sandbox).unwrap(),
                // The key type is after the last colon; a team id is kept whole.
                Source::new("agency-b", "team:2", KeyType::Production).unwrap(),
            ]
        );
        assert!(parse_additional_sources("").unwrap().is_empty());
        assert_eq!(
            parse_additional_sources("sandbox=team-1"),
            Err(SourceError::Entry("sandbox=team-1".into()))
        );
        assert_eq!(
            parse_additional_sources("Sandbox=t:sandbox"),
            Err(SourceError::Name("Sandbox".into()))
        );
        assert_eq!(
            parse_additional_sources("s=t:staging"),
            Err(SourceError::KeyType("staging".into()))
        );
        assert_eq!(
            parse_additional_sources("s=:sandbox"),
            Err(SourceError::TeamId("s".into()))
        );
    }

    #[test]
    fn a_record_belongs_to_the_source_that_first_named_it() {
        let sandbox = SourceStamp {
            name: "sandbox".into(),
            adopts_unnamed: false,
        };
        let primary = SourceStamp {
            name: "primary".into(),
            adopts_unnamed: true,
        };
        assert!(source_allows(None, false, &sandbox), "a new record");
        assert!(source_allows(Some("sandbox"), true, &sandbox));
        assert!(!source_allows(Some("primary"), true, &sandbox));
        assert!(
            !source_allows(None, true, &sandbox),
            "a record from before sources"
        );
        assert!(source_allows(None, true, &primary));
        assert!(!source_allows(Some("sandbox"), true, &primary));
        assert!(same_team(" ABC-d ", "abc-D"));
    }

    #[test]
    fn names_are_unique_and_none_is_the_primary() {
        let p = Source::new("production", "t", KeyType::Production).unwrap();
        let s = Source::new("sandbox", "t", KeyType::Sandbox).unwrap();
        assert_eq!(
            Sources::new(vec![(p.clone(), 1), (p.clone(), 2)]).unwrap_err(),
            SourceError::Duplicate("production".into())
        );
        let sources = Sources::new(vec![(p.clone(), 1), (s.clone(), 2)]).unwrap();
        assert_eq!(sources.get(None).unwrap().1, &1);
        assert_eq!(sources.get(Some("sandbox")).unwrap().1, &2);
        assert_eq!(
            sources.get(Some("staging")).unwrap_err(),
            UnknownSource("staging".into())
        );
        assert_eq!(sources.names(), vec!["production", "sandbox"]);
        assert_eq!(Sources::<u8>::new(vec![]).unwrap_err(), SourceError::Empty);
    }
}
