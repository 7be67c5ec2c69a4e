//! Declarations on PostgreSQL, several in two statements (see [`crate::together`]).
//!
//! Alone, a declaration is two statements: one reads its services and, when they all exist,
//! draws the incident's id and number; the other writes the incident, its services, the start
//! of its escalation, its first timeline entries and the audit entry (see
//! `declare_incident_postgres`). Together, the first statement reads and draws for the whole
//! group and the second writes the whole group, over arrays. A declaration naming a service
//! that does not exist is refused on its own, with no number drawn. If the writing statement
//! fails, each declaration is written alone with the id and number already drawn for it, so
//! one bad declaration neither fails the others nor makes them skip numbers.

use chrono::{DateTime, Utc};

use crate::group::BoxFuture;
use crate::incidents::{Incident, NewIncident};
use crate::{Audit, Result, StoreError};

/// One declaration to write (see [`crate::Store::declare_incident`]).
#[derive(Debug, Clone)]
pub(crate) struct PgDeclaration {
    pub(crate) new: NewIncident,
    pub(crate) audit: Audit,
    pub(crate) now: DateTime<Utc>,
    /// Tells the live pages of the new incident once it is written (here, so that happens
    /// even if the caller has gone).
    pub(crate) announcer: crate::Announcer,
}

/// A declaration's services as (id, response targets, escalation policy).
type Services = Vec<(i64, String, Option<i64>)>;

/// A declaration's services and, when they all exist, the id and number drawn for it.
type Drawn = (Services, Option<(i64, i64)>);

impl crate::together::Write for PgDeclaration {
    /// The incident as stored, or why this declaration was refused.
    type Answer = Result<Incident>;

    fn together<'a>(
        pool: &'a sqlx::PgPool,
        group: &'a [PgDeclaration],
    ) -> BoxFuture<'a, Result<Vec<Result<Incident>>>> {
        Box::pin(declare(pool, group))
    }

    fn alone<'a>(&'a self, pool: &'a sqlx::PgPool) -> BoxFuture<'a, Result<Result<Incident>>> {
        Box::pin(async move {
            let declared =
                crate::incidents::declare_incident_postgres(pool, &self.new, &self.audit, self.now)
                    .await;
            if let Ok(incident) = &declared {
                self.announcer.announce(vec![incident.number]);
            }
            Ok(declared)
        })
    }
}

/// Reads the services of `group` and draws ids and numbers: for each declaration, its
/// services (sorted by id) and, when they all exist, its id and number.
async fn draw(pool: &sqlx::PgPool, group: &[PgDeclaration]) -> Result<Vec<Drawn>> {
    let mut wanted: Vec<i32> = Vec::with_capacity(group.len());
    let (mut of, mut service_ids): (Vec<i32>, Vec<i64>) = (Vec::new(), Vec::new());
    for (ord, d) in group.iter().enumerate() {
        let mut ids = d.new.service_ids.clone();
        ids.sort_unstable();
        ids.dedup();
        wanted.push(ids.len() as i32);
        for id in ids {
            of.push(ord as i32);
            service_ids.push(id);
        }
    }
    type Row = (
        i32,
        Vec<i64>,
        Vec<String>,
        Vec<Option<i64>>,
        Option<i64>,
        Option<i64>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "WITH d AS (SELECT ord - 1 AS ord, wanted FROM unnest($1::int[]) WITH ORDINALITY AS d(wanted, ord)),
              x AS (SELECT * FROM unnest($2::int[], $3::bigint[]) AS x(ord, service_id))
         SELECT d.ord::int,
                coalesce(array_agg(s.id ORDER BY s.id) FILTER (WHERE s.id IS NOT NULL), '{}'),
                coalesce(array_agg(s.response_targets ORDER BY s.id) FILTER (WHERE s.id IS NOT NULL), '{}'),
                coalesce(array_agg(s.escalation_policy_id ORDER BY s.id) FILTER (WHERE s.id IS NOT NULL), '{}'),
                CASE WHEN count(s.id) = d.wanted THEN nextval('incidents_id_seq') END,
                CASE WHEN count(s.id) = d.wanted THEN nextval('incident_numbers') END
         FROM d LEFT JOIN x ON x.ord = d.ord LEFT JOIN services s ON s.id = x.service_id
         GROUP BY d.ord, d.wanted
         ORDER BY d.ord",
    )
    .bind(&wanted)
    .bind(&of)
    .bind(&service_ids)
    .fetch_all(pool)
    .await?;
    let mut drawn: Vec<Option<Drawn>> = vec![None; group.len()];
    for (ord, ids, targets, policies, id, number) in rows {
        let services = ids
            .into_iter()
            .zip(targets)
            .zip(policies)
            .map(|((id, targets), policy)| (id, targets, policy))
            .collect();
        if let Some(slot) = usize::try_from(ord).ok().and_then(|o| drawn.get_mut(o)) {
            *slot = Some((services, id.zip(number)));
        }
    }
    drawn
        .into_iter()
        .map(|d| {
            d.ok_or_else(|| StoreError::Corrupt("a declaration's services were not read".into()))
        })
        .collect()
}

/// The rows of the declarations drawn, as columns.
#[derive(Default)]
struct Rows {
    incidents: Vec<Incident>,
    /// incident, service.
    services: (Vec<i64>, Vec<i64>),
    /// The jobs to enqueue.
    jobs: JobColumns,
    /// The timeline entries.
    entries: EntryColumns,
    /// The audit log's entries, a column each.
    audit: AuditColumns,
}

#[derive(Default)]
struct JobColumns {
    kind: Vec<&'static str>,
    payload: Vec<String>,
    run_at: Vec<DateTime<Utc>>,
    dedup_key: Vec<Option<String>>,
    created_at: Vec<DateTime<Utc>>,
}

#[derive(Default)]
struct EntryColumns {
    incident: Vec<i64>,
    at: Vec<DateTime<Utc>>,
    actor_user_id: Vec<Option<i64>>,
    actor: Vec<String>,
    kind: Vec<&'static str>,
    body: Vec<String>,
    body_html: Vec<&'static str>,
    phase: Vec<Option<&'static str>>,
}

#[derive(Default)]
struct AuditColumns {
    at: Vec<DateTime<Utc>>,
    actor_user_id: Vec<Option<i64>>,
    actor: Vec<String>,
    action: Vec<&'static str>,
    target_type: Vec<&'static str>,
    target_id: Vec<Option<String>>,
    summary: Vec<String>,
    before: Vec<Option<String>>,
    after: Vec<Option<String>>,
    client_addr: Vec<Option<String>>,
}

impl Rows {
    /// The rows of one declaration, as [`crate::incidents::declaration_with_ids`] writes
    /// them alone.
    fn add(&mut self, incident: Incident, services: &Services, audit: &Audit) {
        let now = incident.triggered_at;
        for (service_id, _, _) in services {
            self.services.0.push(incident.id);
            self.services.1.push(*service_id);
        }
        let (jobs, no_policy) = crate::paging::plan_escalation(&incident, services, 1, now);
        for job in jobs {
            let j = &mut self.jobs;
            j.kind.push(job.kind);
            j.payload.push(job.payload.to_string());
            j.run_at.push(job.run_at);
            j.dedup_key.push(job.dedup_key);
            j.created_at.push(now);
        }
        let engine = crate::paging::engine_audit();
        let entries = std::iter::once((audit, crate::incidents::declared_entry(&incident)))
            .chain(no_policy.map(|e| (&engine, e)));
        for (actor, entry) in entries {
            let e = &mut self.entries;
            e.incident.push(incident.id);
            e.at.push(now);
            e.actor_user_id.push(actor.actor_user_id);
            e.actor.push(actor.actor.clone());
            e.kind.push(entry.kind);
            e.body.push(entry.body);
            e.body_html.push(entry.body_html);
            e.phase.push(entry.phase);
        }
        let change = crate::incidents::declare_change(&incident);
        let a = &mut self.audit;
        a.at.push(now);
        a.actor_user_id.push(audit.actor_user_id);
        a.actor.push(audit.actor.clone());
        a.action.push(change.action);
        a.target_type.push(change.target_type);
        a.target_id.push(change.target_id);
        a.summary.push(change.summary);
        a.before.push(change.before.map(|v| v.to_string()));
        a.after.push(change.after.map(|v| v.to_string()));
        a.client_addr.push(audit.client_addr.clone());
        self.incidents.push(incident);
    }
}

/// Declares `group` in two statements; each declaration's incident or refusal.
async fn declare(pool: &sqlx::PgPool, group: &[PgDeclaration]) -> Result<Vec<Result<Incident>>> {
    let drawn = draw(pool, group).await?;
    let mut answers: Vec<Option<Result<Incident>>> = Vec::with_capacity(group.len());
    let mut rows = Rows::default();
    let mut written = Vec::new();
    for (index, (d, (services, ids))) in group.iter().zip(&drawn).enumerate() {
        let Some(ids) = ids else {
            let missing = d
                .new
                .service_ids
                .iter()
                .find(|id| !services.iter().any(|s| s.0 == **id))
                .copied()
                .unwrap_or_default();
            answers.push(Some(Err(StoreError::Conflict(format!(
                "service {missing} does not exist"
            )))));
            continue;
        };
        answers.push(None);
        written.push((index, *ids));
        rows.add(
            crate::incidents::incident_with_ids(*ids, &d.new, &d.audit, d.now),
            services,
            &d.audit,
        );
    }
    let incidents = std::mem::take(&mut rows.incidents);
    match write(pool, &incidents, &rows).await {
        Ok(()) => {
            if let Some(d) = group.first() {
                d.announcer
                    .announce(incidents.iter().map(|i| i.number).collect());
            }
            for ((index, _), incident) in written.into_iter().zip(incidents) {
                answers[index] = Some(Ok(incident));
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "writing declarations together failed; each is written alone");
            for (index, ids) in written {
                let (d, (services, _)) = (&group[index], &drawn[index]);
                let written = crate::incidents::write_declaration_postgres(
                    pool, ids, &d.new, services, &d.audit, d.now,
                )
                .await;
                if let Ok(incident) = &written {
                    d.announcer.announce(vec![incident.number]);
                }
                answers[index] = Some(written);
            }
        }
    }
    Ok(answers
        .into_iter()
        .map(|a| a.expect("an answer for every declaration"))
        .collect())
}

/// Writes the declarations drawn, in one statement that commits on its own.
async fn write(pool: &sqlx::PgPool, incidents: &[Incident], rows: &Rows) -> Result<()> {
    if incidents.is_empty() {
        return Ok(());
    }
    let int = |f: fn(&Incident) -> Option<i64>| incidents.iter().map(f).collect::<Vec<_>>();
    let text = |f: fn(&Incident) -> &str| incidents.iter().map(f).collect::<Vec<_>>();
    let at: Vec<DateTime<Utc>> = incidents.iter().map(|i| i.triggered_at).collect();
    let a = &rows.audit;
    sqlx::query(
        "WITH v AS (
           SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::timestamptz[], $9::text[])
             AS v(id, number, title, description, severity, commander_id, declared_by, at, description_html)),
         i AS (
           INSERT INTO incidents (id, number, title, description, severity, status, commander_id, declared_by, triggered_at, updated_at, description_html)
           SELECT id, number, title, description, severity, 'triggered', commander_id, declared_by, at, at, description_html FROM v),
         s AS (
           INSERT INTO incident_services (incident_id, service_id) SELECT * FROM unnest($10::bigint[], $11::bigint[])),
         e AS (
           INSERT INTO incident_escalations (incident_id, epoch, level, repeat_no, updated_at) SELECT id, 1, 0, 0, at FROM v),
         j AS (
           INSERT INTO jobs (kind, payload, run_at, dedup_key, created_at)
           SELECT * FROM unnest($12::text[], $13::text[], $14::timestamptz[], $15::text[], $16::timestamptz[])
           ON CONFLICT (dedup_key) DO NOTHING),
         t AS (
           INSERT INTO timeline (incident_id, at, actor_user_id, actor, kind, body, body_html, phase)
           SELECT incident_id, at, actor_user_id, actor, kind, body, body_html, phase
           FROM unnest($17::bigint[], $18::timestamptz[], $19::bigint[], $20::text[], $21::text[], $22::text[], $23::text[], $24::text[]) WITH ORDINALITY
             AS t(incident_id, at, actor_user_id, actor, kind, body, body_html, phase, ord)
           ORDER BY ord),
         a AS (
           INSERT INTO audit_log (at, actor_user_id, actor, action, target_type, target_id, summary, before, after, client_addr)
           SELECT * FROM unnest($25::timestamptz[], $26::bigint[], $27::text[], $28::text[], $29::text[], $30::text[], $31::text[], $32::text[], $33::text[], $34::text[]))
         SELECT 1",
    )
    .bind(int(|i| Some(i.id)))
    .bind(int(|i| Some(i.number)))
    .bind(text(|i| &i.title))
    .bind(text(|i| &i.description))
    .bind(text(|i| i.severity.as_str()))
    .bind(int(|i| i.commander_id))
    .bind(int(|i| i.declared_by))
    .bind(&at)
    .bind(text(|i| &i.description_html))
    .bind(&rows.services.0)
    .bind(&rows.services.1)
    .bind(&rows.jobs.kind)
    .bind(&rows.jobs.payload)
    .bind(&rows.jobs.run_at)
    .bind(&rows.jobs.dedup_key)
    .bind(&rows.jobs.created_at)
    .bind(&rows.entries.incident)
    .bind(&rows.entries.at)
    .bind(&rows.entries.actor_user_id)
    .bind(&rows.entries.actor)
    .bind(&rows.entries.kind)
    .bind(&rows.entries.body)
    .bind(&rows.entries.body_html)
    .bind(&rows.entries.phase)
    .bind(&a.at)
    .bind(&a.actor_user_id)
    .bind(&a.actor)
    .bind(&a.action)
    .bind(&a.target_type)
    .bind(&a.target_id)
    .bind(&a.summary)
    .bind(&a.before)
    .bind(&a.after)
    .bind(&a.client_addr)
    .execute(pool)
    .await?;
    Ok(())
}
