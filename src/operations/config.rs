//! Live configuration (docs/architecture.md §8): review, update and the pick-up of
//! another replica's update, and the `/debug/environment` document.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use super::{ConfigReview, ConfigUpdate, EnvironmentValue, Operations};
use crate::config::{FieldError, RuntimeConfig};
use crate::service::ServiceError;

impl Operations {
    /// Validates a partial runtime config (a JSON object) and previews the
    /// capacity it would give. Changes nothing.
    pub fn review_config(&self, change: &serde_json::Value) -> ConfigReview {
        let invalid = |errors: Vec<FieldError>| ConfigReview {
            valid: false,
            errors,
            warnings: Vec::new(),
            preview: None,
            config: None,
        };
        let Some(object) = change.as_object() else {
            return invalid(vec![FieldError {
                field: "body".into(),
                message: "must be a JSON object of runtime settings".into(),
            }]);
        };
        if let Some((field, _)) = object.iter().find(|(_, v)| v.is_null()) {
            return invalid(vec![FieldError { field: field.clone(), message: "must not be null".into() }]);
        }
        let overrides = match toml::Table::try_from(change) {
            Ok(table) => table,
            Err(e) => return invalid(vec![FieldError { field: "body".into(), message: e.to_string() }]),
        };
        let current = self.floodgate.runtime();
        let candidate = match current.merged(overrides) {
            Ok(candidate) => candidate,
            Err(e) => return invalid(vec![e]),
        };
        let errors = candidate.validate_live(self.payload_limit_at_start);
        if !errors.is_empty() {
            return invalid(errors);
        }
        let snapshot = self.floodgate.snapshot();
        let preview = self.capacity_report_for(&candidate, &snapshot);
        let warnings = crate::core::warnings::config(&crate::core::warnings::ConfigChange {
            capacity_before: snapshot.calculation.system_total,
            capacity_after: preview.totals.system_total,
            capacity_buffer: candidate.capacity_buffer,
            anonymous_threshold: candidate.anonymous_threshold,
            hard_limit_threshold: candidate.hard_limit_threshold,
        });
        ConfigReview { valid: true, errors: Vec::new(), warnings, preview: Some(preview), config: Some(candidate) }
    }

    /// Validates, stores a new version for every replica, applies it here.
    pub async fn update_config(&self, change: &serde_json::Value) -> Result<ConfigUpdate, ServiceError> {
        let review = self.review_config(change);
        let Some(config) = review.config else {
            return Ok(ConfigUpdate {
                applied: false,
                version: 0,
                errors: review.errors,
                warnings: review.warnings,
                capacity: None,
            });
        };
        let json = serde_json::to_string(&config).map_err(|e| ServiceError::invalid("body", e.to_string()))?;
        let version = self.floodgate.store_config(json).await?;
        self.apply_config(config, version);
        let snapshot = self.floodgate.refresh_snapshot().await?;
        Ok(ConfigUpdate {
            applied: true,
            version,
            errors: Vec::new(),
            warnings: review.warnings,
            capacity: Some(self.capacity_report(&snapshot)),
        })
    }

    fn apply_config(&self, config: RuntimeConfig, version: u64) {
        self.floodgate.apply_runtime(config);
        self.config_version.store(version, Ordering::Release);
        let message = format!("runtime config version {version} applied on replica {}", self.replica_id);
        self.lock_alerts().info("config_applied", message, self.floodgate.now_ms());
    }

    /// Picks up a config version another replica stored.
    pub async fn sync_config(&self) -> Result<(), ServiceError> {
        let Some(stored) = self.floodgate.load_config().await? else { return Ok(()) };
        if stored.version <= self.config_version() {
            return Ok(());
        }
        match serde_json::from_str::<RuntimeConfig>(&stored.json) {
            Ok(config) if config.validate().is_empty() => self.apply_config(config, stored.version),
            Ok(_) | Err(_) => {
                tracing::error!(version = stored.version, "stored runtime config is invalid; keeping the current one")
            }
        }
        Ok(())
    }

    /// The `/debug/environment` document: every effective setting with its
    /// source (default, profile, file, flag_or_env, update); secrets redacted.
    pub fn environment(&self) -> BTreeMap<String, EnvironmentValue> {
        let mut env: BTreeMap<String, EnvironmentValue> = self
            .environment
            .iter()
            .map(|(k, (value, source))| (k.clone(), EnvironmentValue { value: value.clone(), source: source.clone() }))
            .collect();
        // Runtime values as in force now: a live update shows as "update".
        if let Ok(toml::Value::Table(now)) = toml::Value::try_from(&*self.floodgate.runtime()) {
            let mut current = Vec::new();
            crate::config::flatten("runtime", &toml::Value::Table(now), &mut |k, v| current.push((k.to_owned(), v)));
            for (key, value) in current {
                let entry =
                    env.entry(key).or_insert(EnvironmentValue { value: String::new(), source: "profile".into() });
                if entry.value != value {
                    entry.value = value;
                    entry.source = "update".to_owned();
                }
            }
        }
        env.insert(
            "config_version".to_owned(),
            EnvironmentValue { value: self.config_version().to_string(), source: "store".into() },
        );
        env
    }

    /// The runtime config version in force (0 = from profile and file).
    pub fn config_version(&self) -> u64 {
        self.config_version.load(Ordering::Acquire)
    }
}
