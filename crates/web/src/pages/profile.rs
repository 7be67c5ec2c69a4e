//! Your own account: name, time zone, password, API tokens, and how you are paged:
//! contact methods, notification rules and working hours.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Weekday;
use heliograph_domain::working_hours::{day_code, parse_day};
use heliograph_domain::{DisplayName, Password, TimeOfDay, TimeZone, TokenName, WorkingHours};
use heliograph_store::StoreError;
use heliograph_store::contacts::{
    ContactKind, ContactMethod, MAX_DELAY_MINUTES, NewContactMethod, describe_rule,
    parse_delay_minutes, parse_label,
};
use heliograph_store::tokens::ApiToken;
use heliograph_store::users::UserPatch;
use serde::Deserialize;

use crate::auth::{self, Auth, Viewer};
use crate::csrf::CsrfForm;
use crate::error::render_with_status;
use crate::flash::redirect_with;
use crate::views::{FieldErrors, Shell, zone_names};
use crate::{AppError, AppState};

#[derive(Template)]
#[template(path = "profile/profile.html")]
struct ProfilePage {
    shell: Shell,
    name: String,
    time_zone: String,
    zones: &'static [&'static str],
    tokens: Vec<ApiToken>,
    errors: FieldErrors,
    password_errors: FieldErrors,
    token_name: String,
    token_errors: FieldErrors,
    notifications: Notifications,
}

/// The "Notifications" section: contact methods, rules and working hours, with the input
/// and errors of whichever of its forms was refused.
struct Notifications {
    account_email: String,
    methods: Vec<ContactMethod>,
    rules: Vec<RuleView>,
    kinds: [ContactKind; 3],
    contact: ContactInput,
    contact_errors: FieldErrors,
    rule_method: String,
    rule_delay: String,
    rule_errors: FieldErrors,
    hours: HoursInput,
    hours_errors: FieldErrors,
    /// "Now within your working hours" or when they next begin, in the person's zone.
    hours_status: String,
    max_delay: u16,
}

struct RuleView {
    id: i64,
    text: String,
}

#[derive(Default)]
struct ContactInput {
    kind: String,
    address: String,
    label: String,
}

struct HoursInput {
    /// (code, name, ticked) for Monday to Sunday.
    days: Vec<(&'static str, &'static str, bool)>,
    start: String,
    end: String,
    lead: String,
}

const WEEK: [(Weekday, &str); 7] = [
    (Weekday::Mon, "Monday"),
    (Weekday::Tue, "Tuesday"),
    (Weekday::Wed, "Wednesday"),
    (Weekday::Thu, "Thursday"),
    (Weekday::Fri, "Friday"),
    (Weekday::Sat, "Saturday"),
    (Weekday::Sun, "Sunday"),
];

impl HoursInput {
    fn of(hours: &WorkingHours) -> Self {
        HoursInput {
            days: WEEK
                .iter()
                .map(|(d, name)| (day_code(*d), *name, hours.works_on(*d)))
                .collect(),
            start: hours.start().to_string(),
            end: hours.end().to_string(),
            lead: hours.handoff_lead_minutes().to_string(),
        }
    }
}

#[derive(Template)]
#[template(path = "profile/token_created.html")]
pub(crate) struct TokenCreatedPage {
    pub shell: Shell,
    pub token: String,
    pub name: String,
    pub owner: String,
    pub back: &'static str,
}

impl Notifications {
    async fn load(state: &AppState, auth: &Auth<Viewer>) -> Result<Self, AppError> {
        let user_id = auth.user.id;
        // The account email is the first email contact method; made on first view.
        state.store.ensure_default_contact(user_id).await?;
        let methods = state.store.contact_methods_of(user_id).await?;
        let rules = state
            .store
            .rules_of(user_id)
            .await?
            .into_iter()
            .filter_map(|r| {
                let method = methods.iter().find(|m| m.id == r.contact_method_id)?;
                Some(RuleView {
                    id: r.id,
                    text: describe_rule(method, r.delay_minutes),
                })
            })
            .collect();
        let hours = state.store.working_hours(user_id).await?;
        let tz = auth.user.time_zone.tz();
        let now = state.store.now();
        let hours_status = if hours.contains(now, tz) {
            "You are within your working hours now.".to_owned()
        } else {
            format!(
                "Your working hours next begin {}.",
                crate::views::format_in(&hours.next_start(now, tz), tz)
            )
        };
        Ok(Notifications {
            account_email: auth.user.email.to_string(),
            methods,
            rules,
            kinds: ContactKind::ALL,
            contact: ContactInput {
                kind: "email".into(),
                ..Default::default()
            },
            contact_errors: FieldErrors::default(),
            rule_method: String::new(),
            rule_delay: "0".into(),
            rule_errors: FieldErrors::default(),
            hours: HoursInput::of(&hours),
            hours_errors: FieldErrors::default(),
            hours_status,
            max_delay: MAX_DELAY_MINUTES,
        })
    }

    fn is_account(&self, method: &ContactMethod) -> bool {
        method.is_account_email(&self.account_email)
    }
}

impl ProfilePage {
    async fn load(state: &AppState, auth: &Auth<Viewer>, shell: Shell) -> Result<Self, AppError> {
        Ok(ProfilePage {
            shell,
            name: auth.user.name.to_string(),
            time_zone: auth.user.time_zone.to_string(),
            zones: zone_names(),
            tokens: state.store.tokens_of(auth.user.id).await?,
            errors: FieldErrors::default(),
            password_errors: FieldErrors::default(),
            token_name: String::new(),
            token_errors: FieldErrors::default(),
            notifications: Notifications::load(state, auth).await?,
        })
    }
}

pub async fn get(
    State(state): State<AppState>,
    auth: Auth<Viewer>,
    shell: Shell,
) -> Result<Response, AppError> {
    Ok(render_with_status(
        StatusCode::OK,
        &ProfilePage::load(&state, &auth, shell).await?,
    ))
}

#[derive(Deserialize)]
pub struct ProfileForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    time_zone: String,
}

pub async fn update(
    State(state): State<AppState>,
    auth: Auth<Viewer>,
    shell: Shell,
    CsrfForm(form): CsrfForm<ProfileForm>,
) -> Result<Response, AppError> {
    let mut errors = FieldErrors::default();
    let name = errors.check("name", DisplayName::parse(&form.name));
    let time_zone = errors.check("time_zone", TimeZone::parse(&form.time_zone));
    let (Some(name), Some(time_zone)) = (name, time_zone) else {
        let mut page = ProfilePage::load(&state, &auth, shell).await?;
        page.name = form.name;
        page.time_zone = form.time_zone;
        page.errors = errors;
        return Ok(render_with_status(StatusCode::UNPROCESSABLE_ENTITY, &page));
    };
    let patch = UserPatch {
        name: Some(name),
        time_zone: Some(time_zone),
        ..Default::default()
    };
    state
        .store
        .update_user(auth.user.id, &patch, &auth.audit())
        .await?;
    Ok(redirect_with("/profile", "success", "Profile saved."))
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    current: String,
    #[serde(default)]
    new: String,
    #[serde(default)]
    confirm: String,
}

pub async fn change_password(
    State(state): State<AppState>,
    auth: Auth<Viewer>,
    shell: Shell,
    CsrfForm(form): CsrfForm<PasswordForm>,
) -> Result<Response, AppError> {
    let mut errors = FieldErrors::default();
    let hash = state.store.password_hash(auth.user.id).await?;
    if !auth::verify_password(form.current.clone(), hash).await {
        errors.add("current", "This is not your current password");
    }
    let new = errors.check("new", Password::parse(&form.new));
    if new.is_some() && form.new != form.confirm {
        errors.add("confirm", "The two new passwords differ");
    }
    let (Some(new), true) = (new, errors.is_empty()) else {
        let mut page = ProfilePage::load(&state, &auth, shell).await?;
        page.password_errors = errors;
        return Ok(render_with_status(StatusCode::UNPROCESSABLE_ENTITY, &page));
    };
    let hash = auth::hash_password(new).await?;
    state
        .store
        .set_password(auth.user.id, &hash, Some(auth.session_id), &auth.audit())
        .await?;
    Ok(redirect_with(
        "/profile",
        "success",
        "Password changed. Your other sessions were signed out.",
    ))
}

#[derive(Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    name: String,
}

/// The prefix shown in token lists: enough to tell tokens apart, useless to an attacker.
pub fn token_prefix(token: &str) -> String {
    token.chars().take(10).collect()
}

/// A new API token: `hg_` and 43 URL-safe characters.
pub fn new_api_token() -> String {
    format!("hg_{}", auth::new_secret())
}

pub async fn create_token(
    State(state): State<AppState>,
    auth: Auth<Viewer>,
    shell: Shell,
    CsrfForm(form): CsrfForm<TokenForm>,
) -> Result<Response, AppError> {
    let mut errors = FieldErrors::default();
    let Some(name) = errors.check("token_name", TokenName::parse(&form.name)) else {
        let mut page = ProfilePage::load(&state, &auth, shell).await?;
        page.token_name = form.name;
        page.token_errors = errors;
        return Ok(render_with_status(StatusCode::UNPROCESSABLE_ENTITY, &page));
    };
    let token = new_api_token();
    state
        .store
        .create_token(
            auth.user.id,
            &name,
            &auth::hash_secret(&token),
            &token_prefix(&token),
            &auth.audit(),
        )
        .await?;
    Ok(render_with_status(
        StatusCode::OK,
        &TokenCreatedPage {
            shell,
            token,
            name: name.to_string(),
            owner: auth.user.email.to_string(),
            back: "/profile",
        },
    ))
}

#[derive(Deserialize)]
pub struct Empty {}

pub async fn revoke_token(
    State(state): State<AppState>,
    auth: Auth<Viewer>,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, AppError> {
    let id = super::parse_id(&id)?;
    let token = state.store.token(id).await?;
    if token.user_id != auth.user.id {
        return Err(AppError::NotFound);
    }
    state.store.revoke_token(id, &auth.audit()).await?;
    Ok(redirect_with(
        "/profile",
        "success",
        format!("Token \"{}\" revoked.", token.name),
    ))
}

/// Re-renders the profile with a refused Notifications form.
async fn refused(
    state: &AppState,
    auth: &Auth<Viewer>,
    shell: Shell,
    status: StatusCode,
    edit: impl FnOnce(&mut Notifications),
) -> Result<Response, AppError> {
    let mut page = ProfilePage::load(state, auth, shell).await?;
    edit(&mut page.notifications);
    Ok(render_with_status(status, &page))
}

#[derive(Deserialize)]
pub struct ContactForm {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    address: String,
    #[serde(default)]
    label: String,
}

/// Adds an email address or a webhook URL to the signed-in person's contact methods.
pub async fn add_contact(
    State(state): State<AppState>,
    auth: Auth<Viewer>,
    shell: Shell,
    CsrfForm(form): CsrfForm<ContactForm>,
) -> Result<Response, AppError> {
    let mut errors = FieldErrors::default();
    let kind = errors.check("contact_kind", form.kind.parse::<ContactKind>());
    let address =
        kind.and_then(|k| errors.check("contact_address", k.parse_address(&form.address)));
    let label = errors.check("contact_label", parse_label(&form.label));
    let mut status = StatusCode::UNPROCESSABLE_ENTITY;
    if let (Some(kind), Some(address)) = (kind, address.as_ref()) {
        let existing = state.store.contact_methods_of(auth.user.id).await?;
        if existing
            .iter()
            .any(|m| m.kind == kind && &m.address == address)
        {
            errors.add(
                "contact_address",
                format!(
                    "{} {address} is already one of your contact methods",
                    kind.label()
                ),
            );
            status = StatusCode::CONFLICT;
        }
    }
    let input = ContactInput {
        kind: form.kind.clone(),
        address: form.address.clone(),
        label: form.label.clone(),
    };
    let (Some(kind), Some(address), Some(label), true) = (kind, address, label, errors.is_empty())
    else {
        return refused(&state, &auth, shell, status, |n| {
            n.contact = input;
            n.contact_errors = errors;
        })
        .await;
    };
    let new = NewContactMethod {
        kind,
        address,
        label,
    };
    match state
        .store
        .add_contact_method(auth.user.id, &new, &auth.audit())
        .await
    {
        Ok(method) => Ok(redirect_with(
            "/profile#notifications",
            "success",
            format!(
                "{} {} added. Send it a test to verify it.",
                method.kind.label(),
                method.address
            ),
        )),
        Err(StoreError::Conflict(message)) => {
            refused(&state, &auth, shell, StatusCode::CONFLICT, |n| {
                n.contact = input;
                n.contact_errors.add("contact_address", message);
            })
            .await
        }
        Err(e) => Err(e.into()),
    }
}

/// The signed-in person's contact method `raw_id`; anyone else's is not found.
async fn own_method(
    state: &AppState,
    auth: &Auth<Viewer>,
    raw_id: &str,
) -> Result<ContactMethod, AppError> {
    let id = super::parse_id(raw_id)?;
    let method = state.store.contact_method(id).await?;
    if method.user_id != auth.user.id {
        return Err(AppError::NotFound);
    }
    Ok(method)
}

/// Deletes a contact method and its rules (never the last email address).
pub async fn delete_contact(
    State(state): State<AppState>,
    auth: Auth<Viewer>,
    shell: Shell,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, AppError> {
    let method = own_method(&state, &auth, &id).await?;
    match state
        .store
        .delete_contact_method(auth.user.id, method.id, &auth.audit())
        .await
    {
        Ok(()) => Ok(redirect_with(
            "/profile#notifications",
            "success",
            format!("{} {} deleted.", method.kind.label(), method.address),
        )),
        Err(StoreError::Conflict(message)) => {
            refused(&state, &auth, shell, StatusCode::CONFLICT, |n| {
                n.contact_errors.add("contact_list", message);
            })
            .await
        }
        Err(e) => Err(e.into()),
    }
}

/// Asks the engine to send a test notification to one contact method.
pub async fn test_contact(
    State(state): State<AppState>,
    auth: Auth<Viewer>,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, AppError> {
    let method = own_method(&state, &auth, &id).await?;
    match state
        .store
        .request_test_notification(method.id, &auth.audit())
        .await
    {
        Ok(_) => Ok(redirect_with(
            "/profile#notifications",
            "success",
            format!(
                "Test sent to {} — check your inbox; the method is marked verified when delivery succeeds.",
                method.address
            ),
        )),
        Err(StoreError::Conflict(message)) => {
            Ok(redirect_with("/profile#notifications", "error", message))
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub struct RuleForm {
    #[serde(default)]
    contact_method_id: String,
    #[serde(default)]
    delay_minutes: String,
}

/// Adds a rule: a contact method and how many minutes after the page to use it.
pub async fn add_rule(
    State(state): State<AppState>,
    auth: Auth<Viewer>,
    shell: Shell,
    CsrfForm(form): CsrfForm<RuleForm>,
) -> Result<Response, AppError> {
    let mut errors = FieldErrors::default();
    let method_id = form
        .contact_method_id
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0);
    if method_id.is_none() {
        errors.add("rule_method", "Choose one of your contact methods");
    }
    let delay = errors.check("rule_delay", parse_delay_minutes(&form.delay_minutes));
    let keep = |n: &mut Notifications, errors: FieldErrors| {
        n.rule_method = form.contact_method_id.clone();
        n.rule_delay = form.delay_minutes.clone();
        n.rule_errors = errors;
    };
    let (Some(method_id), Some(delay)) = (method_id, delay) else {
        return refused(
            &state,
            &auth,
            shell,
            StatusCode::UNPROCESSABLE_ENTITY,
            |n| keep(n, errors),
        )
        .await;
    };
    // Someone else's contact method (or none at all) is not found, as at its own address.
    let method = own_method(&state, &auth, &method_id.to_string()).await?;
    match state
        .store
        .add_notification_rule(auth.user.id, method.id, delay, &auth.audit())
        .await
    {
        Ok(rule) => Ok(redirect_with(
            "/profile#notifications",
            "success",
            format!(
                "Rule added: {}.",
                describe_rule(&method, rule.delay_minutes)
            ),
        )),
        Err(StoreError::Conflict(message)) => {
            let mut errors = FieldErrors::default();
            errors.add("rule_delay", message);
            refused(&state, &auth, shell, StatusCode::CONFLICT, |n| {
                keep(n, errors)
            })
            .await
        }
        Err(e) => Err(e.into()),
    }
}

/// Deletes one of the signed-in person's rules.
pub async fn delete_rule(
    State(state): State<AppState>,
    auth: Auth<Viewer>,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, AppError> {
    let id = super::parse_id(&id)?;
    state
        .store
        .delete_notification_rule(auth.user.id, id, &auth.audit())
        .await?;
    Ok(redirect_with(
        "/profile#notifications",
        "success",
        "Rule deleted.",
    ))
}

#[derive(Deserialize)]
pub struct HoursForm {
    #[serde(default)]
    days: Vec<String>,
    #[serde(default)]
    start: String,
    #[serde(default)]
    end: String,
    #[serde(default)]
    handoff_lead_minutes: String,
}

/// Saves working hours (in the person's own zone) and the handoff notice lead time.
pub async fn save_working_hours(
    State(state): State<AppState>,
    auth: Auth<Viewer>,
    shell: Shell,
    CsrfForm(form): CsrfForm<HoursForm>,
) -> Result<Response, AppError> {
    let mut errors = FieldErrors::default();
    let mut days = Vec::new();
    for raw in &form.days {
        if let Some(day) = errors.check("work_days", parse_day(raw)) {
            days.push(day);
        }
    }
    let start = errors.check("work_start", TimeOfDay::parse(&form.start));
    let end = errors.check("work_end", TimeOfDay::parse(&form.end));
    let lead = form
        .handoff_lead_minutes
        .trim()
        .parse::<u16>()
        .ok()
        .filter(|m| *m <= heliograph_domain::working_hours::MAX_HANDOFF_LEAD_MINUTES);
    if lead.is_none() {
        errors.add(
            "handoff_lead_minutes",
            format!(
                "Lead time must be a whole number of minutes from 0 to {}",
                heliograph_domain::working_hours::MAX_HANDOFF_LEAD_MINUTES
            ),
        );
    }
    let hours = match (start, end, lead, errors.is_empty()) {
        (Some(start), Some(end), Some(lead), true) => {
            match WorkingHours::new(days, start, end, lead) {
                Ok(hours) => Some(hours),
                Err(e) => {
                    let field = if form.days.is_empty() {
                        "work_days"
                    } else if start >= TimeOfDay::END_OF_DAY {
                        "work_start"
                    } else {
                        "work_end"
                    };
                    errors.add(field, e.to_string());
                    None
                }
            }
        }
        _ => None,
    };
    let Some(hours) = hours else {
        let input = HoursInput {
            days: WEEK
                .iter()
                .map(|(d, name)| {
                    let code = day_code(*d);
                    (code, *name, form.days.iter().any(|raw| raw.trim() == code))
                })
                .collect(),
            start: form.start,
            end: form.end,
            lead: form.handoff_lead_minutes,
        };
        return refused(
            &state,
            &auth,
            shell,
            StatusCode::UNPROCESSABLE_ENTITY,
            |n| {
                n.hours = input;
                n.hours_errors = errors;
            },
        )
        .await;
    };
    state
        .store
        .set_working_hours(auth.user.id, &hours, &auth.audit())
        .await?;
    Ok(redirect_with(
        "/profile#working-hours",
        "success",
        "Working hours saved.",
    ))
}
