//! Services: the things a team runs.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use heliograph_domain::{ServiceKind, Severity, WorkloadClass};
use serde::{Deserialize, Serialize};

use crate::audit::{Change, record};
use crate::{Audit, Result, Store, StoreError, read, tx};

/// A service, e.g. "llm-gateway (inference, real-time)".
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Service {
    pub id: i64,
    pub name: String,
    pub description: String,
    #[sqlx(try_from = "String")]
    pub kind: ServiceKind,
    #[sqlx(try_from = "String")]
    pub workload_class: WorkloadClass,
    pub team_id: Option<i64>,
    /// The policy that pages people for this service's incidents.
    pub escalation_policy_id: Option<i64>,
    #[sqlx(try_from = "String")]
    pub response_targets: ResponseTargets,
    /// Alerts arriving within this many minutes of an open incident's last alert join it
    /// (0: off).
    pub grouping_window_minutes: i64,
    /// Whether resolving all of an incident's alerts resolves the incident.
    pub auto_resolve: bool,
    #[sqlx(try_from = "String")]
    pub severity_map: SeverityMap,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The editable fields of a service, already validated.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceFields {
    pub name: String,
    pub description: String,
    pub kind: ServiceKind,
    pub workload_class: WorkloadClass,
    pub team_id: Option<i64>,
    pub escalation_policy_id: Option<i64>,
    pub response_targets: ResponseTargets,
    /// 0 to [`MAX_GROUPING_WINDOW_MINUTES`]; 0 turns grouping off.
    pub grouping_window_minutes: i64,
    pub auto_resolve: bool,
    pub severity_map: SeverityMap,
}

/// The longest grouping window, in minutes (a day).
pub const MAX_GROUPING_WINDOW_MINUTES: i64 = 1440;

/// The alert severities, in order.
pub const ALERT_SEVERITIES: [&str; 4] = ["critical", "error", "warning", "info"];

/// The incident severity an alert severity maps to unless the service says otherwise.
pub fn default_incident_severity(alert: &str) -> Severity {
    match alert {
        "critical" => Severity::Sev1,
        "error" => Severity::Sev2,
        "warning" => Severity::Sev3,
        _ => Severity::Sev4,
    }
}

/// A service's mapping from alert severity (critical, error, warning, info) to incident
/// severity, stored as JSON text (`{"critical": "SEV1", "warning": "SEV2"}`); missing keys use
/// [`default_incident_severity`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SeverityMap(pub BTreeMap<String, Severity>);

impl SeverityMap {
    /// The incident severity for alert severity `alert`.
    pub fn get(&self, alert: &str) -> Severity {
        self.0
            .get(alert)
            .copied()
            .unwrap_or_else(|| default_incident_severity(alert))
    }

    /// The JSON text stored in the database.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }
}

impl TryFrom<String> for SeverityMap {
    type Error = serde_json::Error;

    fn try_from(text: String) -> std::result::Result<Self, Self::Error> {
        serde_json::from_str(&text)
    }
}

/// How quickly incidents of one severity should be acknowledged and resolved (`None`: no
/// target).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseTarget {
    #[serde(default)]
    pub acknowledge_minutes: Option<u32>,
    #[serde(default)]
    pub resolve_minutes: Option<u32>,
}

impl ResponseTarget {
    /// Whether neither target is set.
    pub fn is_empty(&self) -> bool {
        self.acknowledge_minutes.is_none() && self.resolve_minutes.is_none()
    }
}

/// A service's response targets by severity, stored as JSON text
/// (`{"SEV1": {"acknowledge_minutes": 5, "resolve_minutes": 60}}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ResponseTargets(pub BTreeMap<Severity, ResponseTarget>);

impl ResponseTargets {
    /// The target for `severity`, if any is set.
    pub fn get(&self, severity: Severity) -> Option<&ResponseTarget> {
        self.0.get(&severity).filter(|t| !t.is_empty())
    }

    /// The JSON text stored in the database.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }
}

impl TryFrom<String> for ResponseTargets {
    type Error = serde_json::Error;

    fn try_from(text: String) -> std::result::Result<Self, Self::Error> {
        serde_json::from_str(&text)
    }
}

macro_rules! service_columns {
    () => {
        "id, name, description, kind, workload_class, team_id, escalation_policy_id, response_targets, grouping_window_minutes, auto_resolve, severity_map, created_at, updated_at"
    };
}

fn named(err: sqlx::Error, name: &str) -> StoreError {
    match StoreError::from(err) {
        StoreError::Conflict(m)
            if m.contains("name") || m.contains("UNIQUE") || m.contains("services") =>
        {
            StoreError::Conflict(format!("a service named {name} already exists"))
        }
        StoreError::Conflict(_) => {
            StoreError::Conflict("the owning team or the escalation policy does not exist".into())
        }
        other => other,
    }
}

impl Store {
    /// Creates a service.
    pub async fn create_service(&self, fields: &ServiceFields, audit: &Audit) -> Result<Service> {
        let now = self.now();
        let mut tx = self.db().begin().await?;
        let service: Service = tx!(&mut tx, c => sqlx::query_as(concat!(
            "INSERT INTO services (name, description, kind, workload_class, team_id, escalation_policy_id, response_targets, grouping_window_minutes, auto_resolve, severity_map, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) RETURNING ", service_columns!()))
            .bind(&fields.name)
            .bind(&fields.description)
            .bind(fields.kind.as_str())
            .bind(fields.workload_class.as_str())
            .bind(fields.team_id)
            .bind(fields.escalation_policy_id)
            .bind(fields.response_targets.to_json())
            .bind(fields.grouping_window_minutes)
            .bind(fields.auto_resolve)
            .bind(fields.severity_map.to_json())
            .bind(now)
            .fetch_one(c)
            .await)
        .map_err(|e| named(e, &fields.name))?;
        record(
            &mut tx,
            audit,
            now,
            Change::new(
                "service.create",
                "service",
                service.id,
                format!("created service {}", service.name),
            )
            .after(&service),
        )
        .await?;
        tx.commit().await?;
        Ok(service)
    }

    /// The service with this id.
    pub async fn service(&self, id: i64) -> Result<Service> {
        read!(self.db(), c => sqlx::query_as(concat!("SELECT ", service_columns!(), " FROM services WHERE id = $1")).bind(id).fetch_one(c).await)
            .map_err(Into::into)
    }

    /// The services paged by escalation policy `policy_id`, by name.
    pub async fn services_using_policy(&self, policy_id: i64) -> Result<Vec<Service>> {
        read!(self.db(), c => sqlx::query_as(concat!("SELECT ", service_columns!(), " FROM services WHERE escalation_policy_id = $1 ORDER BY name")).bind(policy_id).fetch_all(c).await)
            .map_err(Into::into)
    }

    /// Every service, by name.
    pub async fn services(&self) -> Result<Vec<Service>> {
        read!(self.db(), c => sqlx::query_as(concat!("SELECT ", service_columns!(), " FROM services ORDER BY name")).fetch_all(c).await)
            .map_err(Into::into)
    }

    /// Replaces a service's fields.
    pub async fn update_service(
        &self,
        id: i64,
        fields: &ServiceFields,
        audit: &Audit,
    ) -> Result<Service> {
        let before = self.service(id).await?;
        let now = self.now();
        let mut tx = self.db().begin().await?;
        let after: Service = tx!(&mut tx, c => sqlx::query_as(concat!(
            "UPDATE services SET name = $2, description = $3, kind = $4, workload_class = $5, team_id = $6,
             escalation_policy_id = $7, response_targets = $8, grouping_window_minutes = $9, auto_resolve = $10,
             severity_map = $11, updated_at = $12
             WHERE id = $1 RETURNING ", service_columns!()))
            .bind(id)
            .bind(&fields.name)
            .bind(&fields.description)
            .bind(fields.kind.as_str())
            .bind(fields.workload_class.as_str())
            .bind(fields.team_id)
            .bind(fields.escalation_policy_id)
            .bind(fields.response_targets.to_json())
            .bind(fields.grouping_window_minutes)
            .bind(fields.auto_resolve)
            .bind(fields.severity_map.to_json())
            .bind(now)
            .fetch_one(c)
            .await)
        .map_err(|e| named(e, &fields.name))?;
        record(
            &mut tx,
            audit,
            now,
            Change::new(
                "service.update",
                "service",
                id,
                format!("updated service {}", after.name),
            )
            .before(&before)
            .after(&after),
        )
        .await?;
        tx.commit().await?;
        Ok(after)
    }

    /// Deletes a service (incidents keep their history; the link to the service goes).
    pub async fn delete_service(&self, id: i64, audit: &Audit) -> Result<()> {
        let before = self.service(id).await?;
        let mut tx = self.db().begin().await?;
        tx!(&mut tx, c => sqlx::query("DELETE FROM services WHERE id = $1").bind(id).execute(c).await.map(|r| r.rows_affected()))?;
        record(
            &mut tx,
            audit,
            self.now(),
            Change::new(
                "service.delete",
                "service",
                id,
                format!("deleted service {}", before.name),
            )
            .before(&before),
        )
        .await?;
        tx.commit().await
    }
}
