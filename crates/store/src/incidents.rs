//! Incidents: declaring, the transitions of their status, roles, responders, updates, notes
//! and the timeline that records each of them.
//!
//! Every change is one transaction: the incident row changes only if it is still in the state
//! the change expects (a conditional `UPDATE … WHERE status = …` or `version = …`), then the
//! timeline entry and the audit entry are written. Two people acknowledging at once therefore
//! yield one acknowledgement; a stale edit is refused instead of overwriting.
//! On PostgreSQL each change also sends `NOTIFY heliograph_incidents, '<number>'`, delivered to
//! every replica when the transaction commits.

use chrono::{DateTime, Utc};
use heliograph_domain::{IncidentRole, IncidentStatus, Phase, Severity};
use serde::Serialize;

use crate::audit::{Change, record};
use crate::services::Service;
use crate::users::User;
use crate::{Audit, Result, Store, StoreError, Tx, read, tx};

/// The PostgreSQL channel that carries incident numbers on every change.
pub const NOTIFY_CHANNEL: &str = "heliograph_incidents";

/// One numbered problem being handled.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Incident {
    pub id: i64,
    pub number: i64,
    pub title: String,
    /// Markdown as typed.
    pub description: String,
    /// The description rendered and sanitized when it was written (safe to show unescaped).
    pub description_html: String,
    #[sqlx(try_from = "String")]
    pub severity: Severity,
    #[sqlx(try_from = "String")]
    pub status: IncidentStatus,
    pub phase: Option<String>,
    pub commander_id: Option<i64>,
    pub comms_lead_id: Option<i64>,
    pub scribe_id: Option<i64>,
    pub declared_by: Option<i64>,
    pub triggered_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// Grows by one with every change; edits must name the version they started from.
    pub version: i64,
    pub updated_at: DateTime<Utc>,
}

macro_rules! incident_columns {
    () => {
        "id, number, title, description, description_html, severity, status, phase, commander_id, comms_lead_id, scribe_id, declared_by, \
         triggered_at, acknowledged_at, resolved_at, version, updated_at"
    };
}

macro_rules! incident_columns_i {
    () => {
        "i.id, i.number, i.title, i.description, i.description_html, i.severity, i.status, i.phase, i.commander_id, i.comms_lead_id, i.scribe_id, \
         i.declared_by, i.triggered_at, i.acknowledged_at, i.resolved_at, i.version, i.updated_at"
    };
}

/// Appends the list filter's conditions (only those that are set, so each query shape can
/// use its indexes) to a query builder whose WHERE clause is open.
macro_rules! push_filter {
    ($qb:ident, $f:ident) => {
        if let Some(status) = $f.status {
            $qb.push(" AND i.status = ").push_bind(status);
        }
        if $f.open_only {
            $qb.push(" AND i.status IN ('triggered', 'acknowledged')");
        }
        if let Some(severity) = $f.severity {
            $qb.push(" AND i.severity = ").push_bind(severity);
        }
        if let Some(service_id) = $f.service_id {
            $qb.push(" AND EXISTS (SELECT 1 FROM incident_services s WHERE s.incident_id = i.id AND s.service_id = ").push_bind(service_id).push(")");
        }
        if let Some(team_id) = $f.team_id {
            $qb.push(" AND EXISTS (SELECT 1 FROM incident_services s JOIN services v ON v.id = s.service_id WHERE s.incident_id = i.id AND v.team_id = ")
                .push_bind(team_id)
                .push(")");
        }
        if let Some(from) = $f.from {
            $qb.push(" AND i.triggered_at >= ").push_bind(from);
        }
        if let Some(to) = $f.to {
            $qb.push(" AND i.triggered_at < ").push_bind(to);
        }
        if let Some(number) = $f.number {
            $qb.push(" AND i.number = ").push_bind(number);
        }
        for word in &$f.words {
            $qb.push(" AND LOWER(i.title) LIKE ").push_bind(word.clone()).push(" ESCAPE '\\'");
        }
    };
}

/// Which part of the open-first list a query fetches.
#[derive(Clone, Copy)]
enum Part {
    Open,
    Resolved,
    AsFiltered,
}

/// One entry of an incident's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, sqlx::FromRow)]
pub struct TimelineEntry {
    pub id: i64,
    pub incident_id: i64,
    pub at: DateTime<Utc>,
    pub actor_user_id: Option<i64>,
    pub actor: String,
    /// declared, acknowledged, resolved, reopened, severity_changed, status_update, note,
    /// role_assigned, responder_added, edited
    pub kind: String,
    pub body: String,
    /// For notes and updates: the Markdown body rendered and sanitized when written.
    pub body_html: String,
    pub phase: Option<String>,
}

/// What is needed to declare an incident.
#[derive(Debug, Clone)]
pub struct NewIncident {
    pub title: String,
    pub description: String,
    /// `description` rendered and sanitized by the caller.
    pub description_html: String,
    pub severity: Severity,
    pub service_ids: Vec<i64>,
    pub commander_id: Option<i64>,
}

/// An incident with the people and services around it.
#[derive(Debug, Clone, Serialize)]
pub struct IncidentDetail {
    pub incident: Incident,
    pub services: Vec<Service>,
    pub responders: Vec<User>,
    pub commander: Option<User>,
    pub comms_lead: Option<User>,
    pub scribe: Option<User>,
}

/// Filters of the incident list; each narrows it when set.
#[derive(Debug, Clone, Default)]
pub struct IncidentFilter {
    pub status: Option<IncidentStatus>,
    /// Open = triggered or acknowledged.
    pub open_only: bool,
    pub severity: Option<Severity>,
    pub service_id: Option<i64>,
    pub team_id: Option<i64>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// A number ("42" or "#42") or words that must all appear in the title.
    pub search: Option<String>,
}

/// A row of the incident list.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct IncidentRow {
    #[sqlx(flatten)]
    pub incident: Incident,
    pub commander_name: Option<String>,
}

/// How many incidents of each status match a filter (ignoring its status part).
#[derive(Debug, Clone, Default, Serialize)]
pub struct StatusCounts {
    pub triggered: i64,
    pub acknowledged: i64,
    pub resolved: i64,
}

/// Announces, once `tx` commits, that incident `number` changed (PostgreSQL; on SQLite the one
/// process publishes changes itself).
pub(crate) async fn notify(tx: &mut Tx, number: i64) -> Result<()> {
    if let Tx::Postgres(t) = tx {
        t.changed(number);
    }
    Ok(())
}

/// A timeline entry to write.
pub(crate) struct NewEntry<'a> {
    pub(crate) kind: &'a str,
    pub(crate) body: String,
    /// Rendered and sanitized Markdown for notes and updates; empty for system entries.
    pub(crate) body_html: &'a str,
    pub(crate) phase: Option<&'a str>,
}

pub(crate) async fn add_entry(
    tx: &mut Tx,
    incident_id: i64,
    at: DateTime<Utc>,
    audit: &Audit,
    entry: &NewEntry<'_>,
) -> Result<()> {
    tx!(tx, c => sqlx::query(
        "INSERT INTO timeline (incident_id, at, actor_user_id, actor, kind, body, body_html, phase) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(incident_id)
    .bind(at)
    .bind(audit.actor_user_id)
    .bind(&audit.actor)
    .bind(entry.kind)
    .bind(&entry.body)
    .bind(entry.body_html)
    .bind(entry.phase)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Several timeline entries as one statement (in order), each with its own actor.
pub(crate) fn entries_statement(
    incident_id: i64,
    at: DateTime<Utc>,
    entries: &[(&Audit, NewEntry<'_>)],
) -> (String, Vec<crate::batch::Arg>) {
    let mut sql = String::from(
        "INSERT INTO timeline (incident_id, at, actor_user_id, actor, kind, body, body_html, phase) VALUES ",
    );
    let mut args: Vec<crate::batch::Arg> = vec![incident_id.into(), at.into()];
    for (i, (audit, entry)) in entries.iter().enumerate() {
        let b = i * 6 + 2;
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!(
            "($1, $2, ${}, ${}, ${}, ${}, ${}, ${})",
            b + 1,
            b + 2,
            b + 3,
            b + 4,
            b + 5,
            b + 6
        ));
        args.extend([
            audit.actor_user_id.into(),
            audit.actor.as_str().into(),
            entry.kind.into(),
            entry.body.as_str().into(),
            entry.body_html.into(),
            entry.phase.into(),
        ]);
    }
    (sql, args)
}

/// What a caller of [`declare_in_with`] already knows or adds.
#[derive(Default)]
pub(crate) struct DeclareExtras<'a> {
    /// Entries written right after the `declared` one, as the declaring actor.
    pub(crate) entries: Vec<NewEntry<'a>>,
    /// The incident's services as (id, response targets, escalation policy), when the caller
    /// read them already (saves reading them again to start the escalation).
    pub(crate) services: Option<Vec<(i64, String, Option<i64>)>>,
}

/// Escapes `%`, `_` and `\` for a LIKE pattern.
fn like_escape(word: &str) -> String {
    let mut out = String::with_capacity(word.len() + 2);
    for ch in word.to_lowercase().chars() {
        if matches!(ch, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

/// Declares an incident inside an open transaction (the caller commits): the numbered row,
/// its services, the first timeline entry, the audit entry and the start of its escalation.
/// `extras` adds entries after the `declared` one (all written in one statement) and,
/// optionally, the services as the caller already read them.
pub(crate) async fn declare_in_with(
    tx: &mut Tx,
    new: &NewIncident,
    audit: &Audit,
    now: DateTime<Utc>,
    extras: DeclareExtras<'_>,
) -> Result<Incident> {
    let mut service_ids = new.service_ids.clone();
    service_ids.sort_unstable();
    service_ids.dedup();
    if let Some(known) = &extras.services
        && let Some(missing) = service_ids
            .iter()
            .find(|id| !known.iter().any(|s| s.0 == **id))
    {
        return Err(StoreError::Conflict(format!(
            "service {missing} does not exist"
        )));
    }
    // PostgreSQL numbers from a sequence, inside the insert (no row lock held to commit, no
    // round trip of its own); SQLite has one writer and a counter row.
    let sql = match tx {
        Tx::Postgres(_) => concat!(
            "INSERT INTO incidents (number, title, description, severity, status, commander_id, declared_by, triggered_at, updated_at, description_html)
             VALUES (nextval('incident_numbers'), $1, $2, $3, 'triggered', $4, $5, $6, $6, $7) RETURNING ", incident_columns!()),
        Tx::Sqlite(_) => concat!(
            "INSERT INTO incidents (number, title, description, severity, status, commander_id, declared_by, triggered_at, updated_at, description_html)
             VALUES ((SELECT value FROM counters WHERE name = 'incident_number') + 1, $1, $2, $3, 'triggered', $4, $5, $6, $6, $7) RETURNING ", incident_columns!()),
    };
    let incident: Incident = tx!(tx, c => sqlx::query_as(sql)
        .bind(&new.title)
        .bind(&new.description)
        .bind(new.severity.as_str())
        .bind(new.commander_id)
        .bind(audit.actor_user_id)
        .bind(now)
        .bind(&new.description_html)
        .fetch_one(c)
        .await)?;
    let mut batch = crate::batch::Batch::default();
    if let Tx::Sqlite(_) = tx {
        batch.push(
            "UPDATE counters SET value = value + 1 WHERE name = 'incident_number'",
            Vec::new(),
        );
    }
    let services = match extras.services {
        Some(known) => {
            for service_id in &service_ids {
                batch.push(
                    "INSERT INTO incident_services (incident_id, service_id) VALUES ($1, $2)",
                    vec![incident.id.into(), (*service_id).into()],
                );
            }
            known
        }
        None => {
            for service_id in &service_ids {
                tx!(tx, c => sqlx::query("INSERT INTO incident_services (incident_id, service_id) VALUES ($1, $2)")
                    .bind(incident.id)
                    .bind(service_id)
                    .execute(c)
                    .await
                    .map(|r| r.rows_affected()))
                .map_err(|e| match StoreError::from(e) {
                    StoreError::Conflict(_) => StoreError::Conflict(format!("service {service_id} does not exist")),
                    other => other,
                })?;
            }
            crate::paging::incident_services_for_escalation(tx, incident.id).await?
        }
    };
    declaration_rows(&mut batch, &incident, &services, audit, now, extras.entries);
    notify(tx, incident.number).await?;
    batch.run(tx).await?;
    Ok(incident)
}

/// The services of a declaration on PostgreSQL, by id, and the incident's id and number when
/// they all exist.
#[derive(sqlx::FromRow)]
struct ServicesAndIds {
    service_ids: Vec<i64>,
    targets: Vec<String>,
    policies: Vec<Option<i64>>,
    id: Option<i64>,
    number: Option<i64>,
}

/// One declaration on PostgreSQL, alone, in two statements that commit on their own: one
/// reads the services and, when they all exist, draws the incident's id and number; the other
/// writes the declaration (see [`declaration_with_ids`]). A policy assigned to a service
/// between the two applies from the next incident on, as it would to a transaction that read
/// the services just before the policy's commit. Declarations arriving together are written
/// together instead (see [`crate::declarations`]); the caller announces the incident.
pub(crate) async fn declare_incident_postgres(
    pool: &sqlx::PgPool,
    new: &NewIncident,
    audit: &Audit,
    now: DateTime<Utc>,
) -> Result<Incident> {
    let mut ids = new.service_ids.clone();
    ids.sort_unstable();
    ids.dedup();
    let ServicesAndIds {
        service_ids,
        targets,
        policies,
        id,
        number,
    } = sqlx::query_as(if ids.len() == 1 {
        // One service, the usual case, by equality: with `= ANY($1)` PostgreSQL planned the
        // statement anew on every call (its generic plan guesses ten elements), and the
        // planning cost more than the read.
        "SELECT coalesce(array_agg(s.id), '{}') AS service_ids,
                coalesce(array_agg(s.response_targets), '{}') AS targets,
                coalesce(array_agg(s.escalation_policy_id), '{}') AS policies,
                CASE WHEN count(*) = 1 THEN nextval('incidents_id_seq') END AS id,
                CASE WHEN count(*) = 1 THEN nextval('incident_numbers') END AS number
         FROM services s WHERE s.id = ($1::bigint[])[1]"
    } else {
        "SELECT coalesce(array_agg(s.id ORDER BY s.id), '{}') AS service_ids,
                coalesce(array_agg(s.response_targets ORDER BY s.id), '{}') AS targets,
                coalesce(array_agg(s.escalation_policy_id ORDER BY s.id), '{}') AS policies,
                CASE WHEN count(*) = cardinality($1::bigint[]) THEN nextval('incidents_id_seq') END AS id,
                CASE WHEN count(*) = cardinality($1::bigint[]) THEN nextval('incident_numbers') END AS number
         FROM services s WHERE s.id = ANY($1)"
    })
    .bind(&ids)
    .fetch_one(pool)
    .await?;
    let (Some(id), Some(number)) = (id, number) else {
        let missing = ids.iter().find(|id| !service_ids.contains(id)).copied();
        return Err(StoreError::Conflict(format!(
            "service {} does not exist",
            missing.unwrap_or_default()
        )));
    };
    let services: Vec<_> = service_ids
        .into_iter()
        .zip(targets)
        .zip(policies)
        .map(|((id, targets), policy)| (id, targets, policy))
        .collect();
    write_declaration_postgres(pool, (id, number), new, &services, audit, now).await
}

/// Writes one declaration on PostgreSQL whose id and number were drawn beforehand, in one
/// statement that commits on its own (see [`declaration_with_ids`]).
pub(crate) async fn write_declaration_postgres(
    pool: &sqlx::PgPool,
    ids: (i64, i64),
    new: &NewIncident,
    services: &[(i64, String, Option<i64>)],
    audit: &Audit,
    now: DateTime<Utc>,
) -> Result<Incident> {
    let (incident, batch) = declaration_with_ids(false, ids, new, services, audit, now, Vec::new());
    batch.fetch_postgres(pool, None).await?;
    Ok(incident)
}

/// The rows a declaration writes besides the incident and its services: the `declared`
/// entry and the caller's, the start of the escalation at epoch 1 (its level-1 job, or, with
/// nobody to page, the entry saying so and the response-target checks) and the audit entry.
fn declaration_rows(
    batch: &mut crate::batch::Batch,
    incident: &Incident,
    services: &[(i64, String, Option<i64>)],
    audit: &Audit,
    now: DateTime<Utc>,
    extra_entries: Vec<NewEntry<'_>>,
) {
    let mut entries: Vec<(&Audit, NewEntry<'_>)> = vec![(audit, declared_entry(incident))];
    entries.extend(extra_entries.into_iter().map(|e| (audit, e)));
    batch.push(
        "INSERT INTO incident_escalations (incident_id, epoch, level, repeat_no, updated_at) VALUES ($1, 1, 0, 0, $2)",
        vec![incident.id.into(), now.into()],
    );
    let (jobs, entry) = crate::paging::plan_escalation(incident, services, 1, now);
    for job in &jobs {
        let (sql, args) = crate::jobs::enqueue_statement(job, now);
        batch.push(sql, args);
    }
    let engine = crate::paging::engine_audit();
    if let Some(entry) = entry {
        entries.push((&engine, entry));
    }
    let (sql, args) = entries_statement(incident.id, now, &entries);
    batch.push(sql, args);
    let (sql, args) = crate::audit::record_statement(audit, now, declare_change(incident));
    batch.push(sql, args);
}

/// The first timeline entry of a declared incident.
pub(crate) fn declared_entry(incident: &Incident) -> NewEntry<'static> {
    NewEntry {
        kind: "declared",
        body: format!("Declared {} — {}", incident.severity, incident.title),
        body_html: "",
        phase: None,
    }
}

/// The audit log's entry for a declared incident.
pub(crate) fn declare_change(incident: &Incident) -> Change<'static> {
    let number = incident.number;
    Change::new(
        "incident.declare",
        "incident",
        number,
        format!(
            "declared #{number} {} {}",
            incident.severity, incident.title
        ),
    )
    .after(incident)
}

/// A declaration whose incident `id` and `number` were drawn beforehand, as a [`Batch`] to
/// run as one (one statement on PostgreSQL, one query string on SQLite): the incident, its
/// services and the rows of [`declaration_rows`]; with the incident as it will be stored.
/// On SQLite the caller reads the id and number in its transaction, and the batch moves the
/// counter on.
///
/// [`Batch`]: crate::batch::Batch
pub(crate) fn declaration_with_ids(
    sqlite: bool,
    (id, number): (i64, i64),
    new: &NewIncident,
    services: &[(i64, String, Option<i64>)],
    audit: &Audit,
    now: DateTime<Utc>,
    entries: Vec<NewEntry<'_>>,
) -> (Incident, crate::batch::Batch) {
    let incident = incident_with_ids((id, number), new, audit, now);
    let now = incident.triggered_at;
    let mut batch = crate::batch::Batch::default();
    batch.push(
        "INSERT INTO incidents (id, number, title, description, severity, status, commander_id, declared_by, triggered_at, updated_at, description_html)
         VALUES ($1, $2, $3, $4, $5, 'triggered', $6, $7, $8, $8, $9)",
        vec![
            id.into(),
            number.into(),
            new.title.as_str().into(),
            new.description.as_str().into(),
            new.severity.as_str().into(),
            new.commander_id.into(),
            audit.actor_user_id.into(),
            now.into(),
            new.description_html.as_str().into(),
        ],
    );
    if sqlite {
        batch.push(
            "UPDATE counters SET value = value + 1 WHERE name = 'incident_number'",
            Vec::new(),
        );
    }
    for (service_id, _, _) in services {
        batch.push(
            "INSERT INTO incident_services (incident_id, service_id) VALUES ($1, $2)",
            vec![id.into(), (*service_id).into()],
        );
    }
    declaration_rows(&mut batch, &incident, services, audit, now, entries);
    (incident, batch)
}

/// The incident a declaration with id and number drawn beforehand stores, as it will be
/// stored: PostgreSQL keeps microseconds, and the incident returned (and audited) must equal
/// its row.
pub(crate) fn incident_with_ids(
    (id, number): (i64, i64),
    new: &NewIncident,
    audit: &Audit,
    now: DateTime<Utc>,
) -> Incident {
    let now = DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now);
    Incident {
        id,
        number,
        title: new.title.clone(),
        description: new.description.clone(),
        description_html: new.description_html.clone(),
        severity: new.severity,
        status: IncidentStatus::Triggered,
        phase: None,
        commander_id: new.commander_id,
        comms_lead_id: None,
        scribe_id: None,
        declared_by: audit.actor_user_id,
        triggered_at: now,
        acknowledged_at: None,
        resolved_at: None,
        version: 1,
        updated_at: now,
    }
}

/// Declares an incident on PostgreSQL in one statement that commits on its own: the
/// declaration of [`declaration_with_ids`] (its `id` and `number` drawn beforehand, by the
/// statement that read what the declaration needs, with `nextval('incidents_id_seq')` and
/// `nextval('incident_numbers')`), and `tail`, statements written with it (each numbering its
/// parameters from `$1`). The last of `tail` is the statement's main part, whose one `i64`
/// column is returned, and may name the part before it `{prev}` (see
/// [`crate::batch::Batch::fetch_postgres`]). Nothing is written when any part fails (the
/// number drawn is then skipped, as PostgreSQL skips one for any rolled-back insert).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn declare_postgres(
    pool: &sqlx::PgPool,
    announcer: &crate::Announcer,
    ids: (i64, i64),
    new: &NewIncident,
    services: &[(i64, String, Option<i64>)],
    audit: &Audit,
    now: DateTime<Utc>,
    entries: Vec<NewEntry<'_>>,
    tail: Vec<(String, Vec<crate::batch::Arg>)>,
) -> Result<(Incident, Option<i64>)> {
    let (incident, mut batch) =
        declaration_with_ids(false, ids, new, services, audit, now, entries);
    let mut tail = tail;
    let main = tail.pop();
    for (sql, args) in tail {
        batch.push(sql, args);
    }
    let returned = batch.fetch_postgres(pool, main).await?;
    announcer.announce(vec![incident.number]);
    Ok((incident, returned))
}

/// A declaration on SQLite, grouped with other writes (see [`crate::group`]).
struct Declaration {
    new: NewIncident,
    audit: Audit,
    now: DateTime<Utc>,
}

impl crate::group::Unit for Declaration {
    type Output = Incident;

    fn run<'a>(
        &'a mut self,
        tx: &'a mut Tx,
    ) -> crate::group::BoxFuture<'a, Result<crate::group::Ran<Incident>>> {
        Box::pin(async move {
            // Read inside the transaction: whether a service has a policy decides, once and
            // for all, whether the incident escalates, so it must not race a policy being
            // assigned.
            let mut services = Vec::new();
            for id in &self.new.service_ids {
                let row: Option<(i64, String, Option<i64>)> = tx!(tx, c => sqlx::query_as(
                    "SELECT id, response_targets, escalation_policy_id FROM services WHERE id = $1")
                    .bind(id)
                    .fetch_optional(c)
                    .await)?;
                if let Some(row) = row
                    && !services
                        .iter()
                        .any(|s: &(i64, String, Option<i64>)| s.0 == row.0)
                {
                    services.push(row);
                }
            }
            services.sort_by_key(|s| s.0);
            let extras = DeclareExtras {
                entries: Vec::new(),
                services: Some(services),
            };
            let incident = declare_in_with(tx, &self.new, &self.audit, self.now, extras).await?;
            Ok(crate::group::Ran::Keep(incident))
        })
    }
}

impl Store {
    /// Declares an incident: the next number, status triggered, a `declared` timeline entry.
    pub async fn declare_incident(&self, new: &NewIncident, audit: &Audit) -> Result<Incident> {
        if let crate::Db::Postgres(pool, announcer) = self.db() {
            let declaration = crate::declarations::PgDeclaration {
                new: new.clone(),
                audit: audit.clone(),
                now: self.now(),
                announcer: announcer.clone(),
            };
            return self.declarations.send(pool, declaration).await?;
        }
        let crate::Db::Sqlite { write, .. } = self.db() else {
            unreachable!("PostgreSQL declared above")
        };
        let declaration = Declaration {
            new: new.clone(),
            audit: audit.clone(),
            now: self.now(),
        };
        self.group.run(write, declaration).await
    }

    /// The incident with this number.
    pub async fn incident(&self, number: i64) -> Result<Incident> {
        read!(self.db(), c => sqlx::query_as(concat!("SELECT ", incident_columns!(), " FROM incidents WHERE number = $1")).bind(number).fetch_one(c).await)
            .map_err(Into::into)
    }

    /// The incident with its services, responders and role holders.
    pub async fn incident_detail(&self, number: i64) -> Result<IncidentDetail> {
        let incident = self.incident(number).await?;
        let services: Vec<Service> = read!(self.db(), c => sqlx::query_as(
            "SELECT s.id, s.name, s.description, s.kind, s.workload_class, s.team_id, s.escalation_policy_id, s.response_targets, s.grouping_window_minutes, s.auto_resolve, s.severity_map, s.created_at, s.updated_at
             FROM services s JOIN incident_services i ON i.service_id = s.id WHERE i.incident_id = $1 ORDER BY s.name",
        )
        .bind(incident.id)
        .fetch_all(c)
        .await)?;
        let responders: Vec<User> = read!(self.db(), c => sqlx::query_as(
            "SELECT u.id, u.email, u.name, u.time_zone, u.role, u.disabled, u.created_at, u.updated_at
             FROM users u JOIN incident_responders r ON r.user_id = u.id WHERE r.incident_id = $1 ORDER BY r.added_at, u.id",
        )
        .bind(incident.id)
        .fetch_all(c)
        .await)?;
        let mut holders = Vec::new();
        for id in [
            incident.commander_id,
            incident.comms_lead_id,
            incident.scribe_id,
        ] {
            holders.push(match id {
                Some(id) => Some(self.user(id).await?),
                None => None,
            });
        }
        let scribe = holders.pop().flatten();
        let comms_lead = holders.pop().flatten();
        let commander = holders.pop().flatten();
        Ok(IncidentDetail {
            incident,
            services,
            responders,
            commander,
            comms_lead,
            scribe,
        })
    }

    /// The timeline, oldest first; `updates_only` keeps status updates alone.
    pub async fn timeline(
        &self,
        incident_id: i64,
        updates_only: bool,
    ) -> Result<Vec<TimelineEntry>> {
        // A timeline can hold thousands of entries. Fetched row by row, decoding dominates
        // (on SQLite each row also crosses from the driver's worker thread), so the database
        // aggregates the entries into one JSON array and serde reads it in one pass. The
        // aggregate functions differ between the dialects; the result does not.
        let (json,): (Option<String>,) = match self.db() {
            crate::Db::Sqlite { read, .. } => {
                sqlx::query_as(
                    "SELECT json_group_array(json_object('id', id, 'incident_id', incident_id, 'at', at,
                         'actor_user_id', actor_user_id, 'actor', actor, 'kind', kind, 'body', body,
                         'body_html', body_html, 'phase', phase) ORDER BY id)
                     FROM timeline WHERE incident_id = $1 AND ($2 = FALSE OR kind = 'status_update')",
                )
                .bind(incident_id)
                .bind(updates_only)
                .fetch_one(read)
                .await?
            }
            crate::Db::Postgres(pool, _) => {
                sqlx::query_as(
                    "SELECT json_agg(json_build_object('id', id, 'incident_id', incident_id, 'at', at,
                         'actor_user_id', actor_user_id, 'actor', actor, 'kind', kind, 'body', body,
                         'body_html', body_html, 'phase', phase) ORDER BY id)::text
                     FROM timeline WHERE incident_id = $1 AND ($2 = FALSE OR kind = 'status_update')",
                )
                .bind(incident_id)
                .bind(updates_only)
                .fetch_one(pool)
                .await?
            }
        };
        match json {
            None => Ok(Vec::new()),
            Some(json) => serde_json::from_str(&json).map_err(|e| {
                StoreError::Corrupt(format!("timeline of incident {incident_id}: {e}"))
            }),
        }
    }

    /// Runs one change of an incident: a conditional update, a timeline entry and an audit
    /// entry, in one transaction. `Ok(None)` when the condition no longer held.
    async fn change_incident(
        &self,
        number: i64,
        update: &'static str,
        bind: impl FnOnce(Binder) -> Binder,
        audit: &Audit,
        action: &str,
        entry: NewEntry<'_>,
    ) -> Result<Option<Incident>> {
        let now = self.now();
        let before = self.incident(number).await?;
        let mut tx = self.db().begin().await?;
        let binder = bind(Binder::new(number, now));
        let after: Option<Incident> =
            tx!(&mut tx, c => binder.apply(sqlx::query_as(update)).fetch_optional(c).await)?;
        let Some(after) = after else {
            return Ok(None);
        };
        add_entry(&mut tx, after.id, now, audit, &entry).await?;
        if action == "incident.reopen" {
            let services =
                crate::paging::incident_services_for_escalation(&mut tx, after.id).await?;
            if let Some(entry) =
                crate::paging::start_escalation(&mut tx, &after, &services, now).await?
            {
                add_entry(
                    &mut tx,
                    after.id,
                    now,
                    &crate::paging::engine_audit(),
                    &entry,
                )
                .await?;
            }
        }
        if action == "incident.resolve" && after.severity.at_least(Severity::Sev2) {
            let owner = after.commander_id.or(audit.actor_user_id);
            crate::postmortems::create_draft(&mut tx, &after, owner, audit, now).await?;
        }
        record(
            &mut tx,
            audit,
            now,
            Change::new(
                action,
                "incident",
                number,
                format!("#{number}: {}", entry.body),
            )
            .before(&before)
            .after(&after),
        )
        .await?;
        notify(&mut tx, number).await?;
        tx.commit().await?;
        Ok(Some(after))
    }

    /// Acknowledges a triggered incident. Only one of several simultaneous acknowledgements
    /// wins; the others get [`StoreError::Conflict`].
    pub async fn acknowledge_incident(&self, number: i64, audit: &Audit) -> Result<Incident> {
        let sql = concat!(
            "UPDATE incidents SET status = 'acknowledged', acknowledged_at = COALESCE(acknowledged_at, $2), version = version + 1, updated_at = $2
             WHERE number = $1 AND status = 'triggered' RETURNING ", incident_columns!());
        let done = self
            .change_incident(
                number,
                sql,
                |b| b,
                audit,
                "incident.acknowledge",
                NewEntry {
                    kind: "acknowledged",
                    body: format!("Acknowledged by {}", audit.actor),
                    body_html: "",
                    phase: None,
                },
            )
            .await?;
        done.ok_or_else(|| {
            StoreError::Conflict(format!(
                "#{number} is not triggered any more (already acknowledged or resolved)"
            ))
        })
    }

    /// Resolves an open incident.
    pub async fn resolve_incident(&self, number: i64, audit: &Audit) -> Result<Incident> {
        let sql = concat!(
            "UPDATE incidents SET status = 'resolved', resolved_at = $2, version = version + 1, updated_at = $2
             WHERE number = $1 AND status <> 'resolved' RETURNING ", incident_columns!());
        let done = self
            .change_incident(
                number,
                sql,
                |b| b,
                audit,
                "incident.resolve",
                NewEntry {
                    kind: "resolved",
                    body: format!("Resolved by {}", audit.actor),
                    body_html: "",
                    phase: None,
                },
            )
            .await?;
        done.ok_or_else(|| StoreError::Conflict(format!("#{number} is already resolved")))
    }

    /// Reopens a resolved incident (status triggered again; earlier timestamps stay as history).
    pub async fn reopen_incident(&self, number: i64, audit: &Audit) -> Result<Incident> {
        let sql = concat!(
            "UPDATE incidents SET status = 'triggered', version = version + 1, updated_at = $2
             WHERE number = $1 AND status = 'resolved' RETURNING ",
            incident_columns!()
        );
        let done = self
            .change_incident(
                number,
                sql,
                |b| b,
                audit,
                "incident.reopen",
                NewEntry {
                    kind: "reopened",
                    body: format!("Reopened by {}", audit.actor),
                    body_html: "",
                    phase: None,
                },
            )
            .await?;
        done.ok_or_else(|| StoreError::Conflict(format!("#{number} is not resolved")))
    }

    /// Changes the severity, with a reason for the timeline.
    pub async fn change_severity(
        &self,
        number: i64,
        severity: Severity,
        reason: &str,
        audit: &Audit,
    ) -> Result<Incident> {
        let before = self.incident(number).await?;
        if before.severity == severity {
            return Err(StoreError::Conflict(format!(
                "#{number} is already {severity}"
            )));
        }
        let sql = concat!(
            "UPDATE incidents SET severity = $3, version = version + 1, updated_at = $2
             WHERE number = $1 AND severity = $4 RETURNING ",
            incident_columns!()
        );
        let body = format!("Severity {} → {}: {}", before.severity, severity, reason);
        let done = self
            .change_incident(
                number,
                sql,
                |b| b.text(severity.as_str()).text(before.severity.as_str()),
                audit,
                "incident.severity",
                NewEntry {
                    kind: "severity_changed",
                    body,
                    body_html: "",
                    phase: None,
                },
            )
            .await?;
        done.ok_or_else(|| {
            StoreError::Conflict(format!(
                "the severity of #{number} changed meanwhile; reload and try again"
            ))
        })
    }

    /// Gives a role to a person (or takes it away with `None`).
    pub async fn assign_role(
        &self,
        number: i64,
        role: IncidentRole,
        user: Option<&User>,
        audit: &Audit,
    ) -> Result<Incident> {
        let sql = match role {
            IncidentRole::Commander => concat!(
                "UPDATE incidents SET commander_id = $3, version = version + 1, updated_at = $2 WHERE number = $1 RETURNING ",
                incident_columns!()
            ),
            IncidentRole::CommunicationsLead => concat!(
                "UPDATE incidents SET comms_lead_id = $3, version = version + 1, updated_at = $2 WHERE number = $1 RETURNING ",
                incident_columns!()
            ),
            IncidentRole::Scribe => concat!(
                "UPDATE incidents SET scribe_id = $3, version = version + 1, updated_at = $2 WHERE number = $1 RETURNING ",
                incident_columns!()
            ),
        };
        let body = match user {
            Some(u) => format!("{} is now {}", u.name, role.label().to_lowercase()),
            None => format!("{} unassigned", role.label()),
        };
        let id = user.map(|u| u.id);
        let done = self
            .change_incident(
                number,
                sql,
                |b| b.id(id),
                audit,
                "incident.role",
                NewEntry {
                    kind: "role_assigned",
                    body,
                    body_html: "",
                    phase: None,
                },
            )
            .await?;
        done.ok_or(StoreError::NotFound)
    }

    /// Adds a responder; adding someone twice is a conflict.
    pub async fn add_responder(&self, number: i64, user: &User, audit: &Audit) -> Result<()> {
        let incident = self.incident(number).await?;
        let now = self.now();
        let mut tx = self.db().begin().await?;
        tx!(&mut tx, c => sqlx::query("INSERT INTO incident_responders (incident_id, user_id, added_at) VALUES ($1, $2, $3)")
            .bind(incident.id)
            .bind(user.id)
            .bind(now)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))
        .map_err(|e| match StoreError::from(e) {
            StoreError::Conflict(_) => StoreError::Conflict(format!("{} is already a responder", user.name)),
            other => other,
        })?;
        tx!(&mut tx, c => sqlx::query("UPDATE incidents SET version = version + 1, updated_at = $2 WHERE id = $1")
            .bind(incident.id)
            .bind(now)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))?;
        let body = format!("{} added as a responder", user.name);
        let added = NewEntry {
            kind: "responder_added",
            body: body.clone(),
            body_html: "",
            phase: None,
        };
        add_entry(&mut tx, incident.id, now, audit, &added).await?;
        record(
            &mut tx,
            audit,
            now,
            Change::new(
                "incident.responder",
                "incident",
                number,
                format!("#{number}: {body}"),
            ),
        )
        .await?;
        notify(&mut tx, number).await?;
        tx.commit().await
    }

    /// Edits title and description, only if nobody changed the incident since `version`.
    pub async fn edit_incident(
        &self,
        number: i64,
        title: &str,
        description: &str,
        description_html: &str,
        version: i64,
        audit: &Audit,
    ) -> Result<Incident> {
        let sql = concat!(
            "UPDATE incidents SET title = $3, description = $4, description_html = $6, version = version + 1, updated_at = $2
             WHERE number = $1 AND version = $5 RETURNING ", incident_columns!());
        let done = self
            .change_incident(
                number,
                sql,
                |b| {
                    b.text(title)
                        .text(description)
                        .int(version)
                        .text(description_html)
                },
                audit,
                "incident.edit",
                NewEntry {
                    kind: "edited",
                    body: format!("Title and description edited; title: {title}"),
                    body_html: "",
                    phase: None,
                },
            )
            .await?;
        done.ok_or_else(|| StoreError::Conflict("Someone else changed this incident after you opened it. Your text is kept below; review the current version and save again.".into()))
    }

    /// Posts a status update in a phase; a `resolved` phase does not resolve the incident.
    pub async fn post_update(
        &self,
        number: i64,
        phase: Phase,
        message: &str,
        message_html: &str,
        audit: &Audit,
    ) -> Result<Incident> {
        let sql = concat!(
            "UPDATE incidents SET phase = $3, version = version + 1, updated_at = $2 WHERE number = $1 RETURNING ",
            incident_columns!()
        );
        let done = self
            .change_incident(
                number,
                sql,
                |b| b.text(phase.as_str()),
                audit,
                "incident.update",
                NewEntry {
                    kind: "status_update",
                    body: message.to_owned(),
                    body_html: message_html,
                    phase: Some(phase.as_str()),
                },
            )
            .await?;
        done.ok_or(StoreError::NotFound)
    }

    /// Adds a note to the timeline.
    pub async fn add_note(
        &self,
        number: i64,
        body: &str,
        body_html: &str,
        audit: &Audit,
    ) -> Result<Incident> {
        let sql = concat!(
            "UPDATE incidents SET version = version + 1, updated_at = $2 WHERE number = $1 RETURNING ",
            incident_columns!()
        );
        let done = self
            .change_incident(
                number,
                sql,
                |b| b,
                audit,
                "incident.note",
                NewEntry {
                    kind: "note",
                    body: body.to_owned(),
                    body_html,
                    phase: None,
                },
            )
            .await?;
        done.ok_or(StoreError::NotFound)
    }

    /// The service ids of incidents whose ids lie in `[lo, hi]`, as (incident id, service id).
    pub async fn incident_service_ids(&self, lo: i64, hi: i64) -> Result<Vec<(i64, i64)>> {
        read!(self.db(), c => sqlx::query_as(
            "SELECT incident_id, service_id FROM incident_services WHERE incident_id BETWEEN $1 AND $2 ORDER BY incident_id, service_id",
        )
        .bind(lo)
        .bind(hi)
        .fetch_all(c)
        .await)
        .map_err(Into::into)
    }

    /// A page of the incident list: open incidents first (most recent first), then resolved
    /// ones (most recent first). Each part is its own index-friendly query, so the list stays
    /// fast with hundreds of thousands of incidents.
    pub async fn incidents(
        &self,
        filter: &IncidentFilter,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<IncidentRow>> {
        Ok(self.incident_list(filter, limit, offset).await?.0)
    }

    /// A page of the list and the counts by status of everything the filter matches (the
    /// list page shows both; the counts also tell where the open part ends).
    pub async fn incident_list(
        &self,
        filter: &IncidentFilter,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<IncidentRow>, StatusCounts)> {
        let counts = self.incident_counts(filter).await?;
        if filter.status.is_some() || filter.open_only {
            let rows = self
                .incident_rows(filter, Part::AsFiltered, limit, offset)
                .await?;
            return Ok((rows, counts));
        }
        let open_total = counts.triggered + counts.acknowledged;
        let mut rows = Vec::new();
        if offset < open_total {
            rows = self
                .incident_rows(filter, Part::Open, limit, offset)
                .await?;
        }
        let missing = limit - rows.len() as i64;
        if missing > 0 {
            let resolved_offset = (offset - open_total).max(0);
            rows.extend(
                self.incident_rows(filter, Part::Resolved, missing, resolved_offset)
                    .await?,
            );
        }
        Ok((rows, counts))
    }

    async fn incident_rows(
        &self,
        filter: &IncidentFilter,
        part: Part,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<IncidentRow>> {
        let f = FilterBinds::from(filter);
        read!(self.db(), c => {
            let mut qb = sqlx::QueryBuilder::new(concat!(
                "SELECT ", incident_columns_i!(), ", u.name AS commander_name FROM incidents i LEFT JOIN users u ON u.id = i.commander_id WHERE TRUE"));
            push_filter!(qb, f);
            match part {
                Part::Open => { qb.push(" AND i.status IN ('triggered', 'acknowledged')"); }
                Part::Resolved => { qb.push(" AND i.status = 'resolved'"); }
                Part::AsFiltered => {}
            }
            qb.push(" ORDER BY i.triggered_at DESC, i.id DESC LIMIT ").push_bind(limit).push(" OFFSET ").push_bind(offset);
            qb.build_query_as::<IncidentRow>().fetch_all(c).await
        })
        .map_err(Into::into)
    }

    /// Incidents matching `filter`, newest (highest number) first, below `before` if given: the
    /// API's cursor pagination.
    pub async fn incidents_newest(
        &self,
        filter: &IncidentFilter,
        limit: i64,
        before: Option<i64>,
    ) -> Result<crate::Page<IncidentRow>> {
        let f = FilterBinds::from(filter);
        let rows: Vec<IncidentRow> = read!(self.db(), c => {
            let mut qb = sqlx::QueryBuilder::new(concat!(
                "SELECT ", incident_columns_i!(), ", u.name AS commander_name FROM incidents i LEFT JOIN users u ON u.id = i.commander_id WHERE TRUE"));
            push_filter!(qb, f);
            if let Some(before) = before {
                qb.push(" AND i.number < ").push_bind(before);
            }
            qb.push(" ORDER BY i.number DESC LIMIT ").push_bind(limit + 1);
            qb.build_query_as::<IncidentRow>().fetch_all(c).await
        })?;
        Ok(crate::Page::from_rows(rows, limit, |r| r.incident.number))
    }

    /// Counts by status of the incidents matching `filter` (whatever its status part says).
    pub async fn incident_counts(&self, filter: &IncidentFilter) -> Result<StatusCounts> {
        let f = FilterBinds::from(&IncidentFilter {
            status: None,
            open_only: false,
            ..filter.clone()
        });
        let rows: Vec<(String, i64)> = read!(self.db(), c => {
            let mut qb = sqlx::QueryBuilder::new("SELECT i.status, COUNT(*) FROM incidents i WHERE TRUE");
            push_filter!(qb, f);
            qb.push(" GROUP BY i.status");
            qb.build_query_as::<(String, i64)>().fetch_all(c).await
        })?;
        let mut counts = StatusCounts::default();
        for (status, n) in rows {
            match status.as_str() {
                "triggered" => counts.triggered = n,
                "acknowledged" => counts.acknowledged = n,
                _ => counts.resolved = n,
            }
        }
        Ok(counts)
    }
}

/// The list filter as bind values.
struct FilterBinds {
    status: Option<&'static str>,
    open_only: bool,
    severity: Option<&'static str>,
    service_id: Option<i64>,
    team_id: Option<i64>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    number: Option<i64>,
    words: Vec<String>,
}

impl From<&IncidentFilter> for FilterBinds {
    fn from(f: &IncidentFilter) -> Self {
        let search = f.search.as_deref().map(str::trim).filter(|s| !s.is_empty());
        let number = search.and_then(|s| s.trim_start_matches('#').parse::<i64>().ok());
        let words = search
            .filter(|_| number.is_none())
            .map(|s| {
                s.split_whitespace()
                    .take(8)
                    .map(|w| format!("%{}%", like_escape(w)))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        FilterBinds {
            status: f.status.map(IncidentStatus::as_str),
            open_only: f.open_only,
            severity: f.severity.map(Severity::as_str),
            service_id: f.service_id,
            team_id: f.team_id,
            from: f.from,
            to: f.to,
            number,
            words,
        }
    }
}

/// Extra parameters for a change's UPDATE, after $1 (number) and $2 (now).
pub(crate) struct Binder {
    number: i64,
    now: DateTime<Utc>,
    extra: Vec<Bind>,
}

enum Bind {
    Text(String),
    Int(i64),
    Id(Option<i64>),
}

impl Binder {
    fn new(number: i64, now: DateTime<Utc>) -> Self {
        Binder {
            number,
            now,
            extra: Vec::new(),
        }
    }
    fn text(mut self, v: &str) -> Self {
        self.extra.push(Bind::Text(v.to_owned()));
        self
    }
    fn int(mut self, v: i64) -> Self {
        self.extra.push(Bind::Int(v));
        self
    }
    fn id(mut self, v: Option<i64>) -> Self {
        self.extra.push(Bind::Id(v));
        self
    }
    fn apply<'q, DB, O>(
        self,
        q: sqlx::query::QueryAs<'q, DB, O, <DB as sqlx::Database>::Arguments<'q>>,
    ) -> sqlx::query::QueryAs<'q, DB, O, <DB as sqlx::Database>::Arguments<'q>>
    where
        DB: sqlx::Database,
        i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
        Option<i64>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
        String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
        DateTime<Utc>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    {
        let mut q = q.bind(self.number).bind(self.now);
        for b in self.extra {
            q = match b {
                Bind::Text(v) => q.bind(v),
                Bind::Int(v) => q.bind(v),
                Bind::Id(v) => q.bind(v),
            };
        }
        q
    }
}

/// A PostgreSQL connection LISTENing for incident changes from every replica.
pub struct IncidentListener(sqlx::postgres::PgListener);

impl IncidentListener {
    /// The number of the next incident that changed. An error means the connection was lost;
    /// calling again reconnects.
    pub async fn recv(&mut self) -> Result<Option<i64>> {
        let n = self.0.recv().await?;
        Ok(n.payload().parse().ok())
    }
}

impl Store {
    /// On PostgreSQL, a listener for incident changes; on SQLite (one process) `None`.
    pub async fn incident_listener(&self) -> Result<Option<IncidentListener>> {
        match self.db() {
            crate::Db::Postgres(pool, _) => {
                let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
                listener.listen(NOTIFY_CHANNEL).await?;
                Ok(Some(IncidentListener(listener)))
            }
            crate::Db::Sqlite { .. } => Ok(None),
        }
    }
}
