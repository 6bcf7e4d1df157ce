//! `/api/execute`: submit a run (202 at once with its job id), read a run's status and result,
//! a session's run history (newest first, paged), and the languages (`available` as the runners
//! report them). Members only; viewers may read results but not run. What a run streams into the
//! room is the socket's (`ws/run.rs`).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use storage::model::Session;
use storage::model::{ExecutionCursor, ExecutionRecord};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use workers::exec::LanguageInfo;

use super::extract::{ApiJson, ApiPath, ApiQuery, AuthUser};
use super::sessions::{member_session, role};
use super::views::iso;
use super::{ApiError, AppState, ErrorBody};
use crate::auth::Claims;
use crate::exec::{Submission, SubmitRefusal};
use protocol::chat::ChatUser;

const DEFAULT_LIMIT: u64 = 20;
const MAX_LIMIT: u64 = 100;

pub fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(execute))
        .routes(routes!(execution_status))
        .routes(routes!(execution_history))
        .routes(routes!(execution_languages))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExecuteRequest {
    session_id: String,
    /// A language id from `/api/execute/languages`; default: the session's language.
    language: Option<String>,
    /// The program; default: the session document's `code` text.
    code: Option<String>,
    stdin: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Queued {
    job_id: String,
    /// Always `queued`.
    status: &'static str,
}

/// Submit a run; its output streams into the session's room as it is produced. Editors and owners only.
#[utoipa::path(post, path = "/api/execute", tag = "execute", security(("bearer" = [])), request_body = ExecuteRequest,
    responses((status = 202, description = "Queued", body = Queued), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 413, description = "code_too_long or stdin_too_long", body = ErrorBody),
        (status = 429, description = "too_many_runs: the user's runs per minute or the queue's length", body = ErrorBody),
        (status = 503, description = "execution_unavailable", body = ErrorBody)))]
async fn execute(
    State(state): State<Arc<AppState>>,
    AuthUser(claims): AuthUser,
    ApiJson(request): ApiJson<ExecuteRequest>,
) -> Result<(StatusCode, Json<Queued>), ApiError> {
    let session = session_of(&state, &claims, &request.session_id).await?;
    // A member (checked above); running needs a role that may write, in a session not locked.
    if !role(&session, &claims).is_some_and(|role| role.can_write(&session)) {
        return Err(ApiError::with_status(
            StatusCode::FORBIDDEN,
            "read_only",
            "read-only: viewers and locked sessions may not run code",
        ));
    }
    let submission = Submission {
        room: session.id.clone(),
        session: Some(session),
        user: ChatUser { id: claims.sub, username: claims.username },
        language: request.language,
        code: request.code,
        stdin: request.stdin,
    };
    let job_id = state.executions.submit(submission).await.map_err(|refusal| {
        crate::telemetry::Metrics::get().execution_refused(refusal.code());
        ApiError::from(refusal)
    })?;
    Ok((StatusCode::ACCEPTED, Json(Queued { job_id, status: "queued" })))
}

/// A run as the API shows it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionView {
    job_id: String,
    session_id: String,
    user_id: String,
    language: String,
    /// queued | running | completed | failed | timed_out | cancelled
    status: String,
    exit_code: Option<i64>,
    /// Capped at the output limit.
    stdout: String,
    stderr: String,
    duration_ms: Option<u64>,
    timed_out: bool,
    oom_killed: bool,
    output_truncated: bool,
    /// Why the run failed when it is not the program's doing.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    created_at: String,
    started_at: Option<String>,
    finished_at: Option<String>,
}

impl From<ExecutionRecord> for ExecutionView {
    fn from(record: ExecutionRecord) -> Self {
        Self {
            job_id: record.id,
            session_id: record.session_id,
            user_id: record.user_id,
            language: record.language,
            status: record.status,
            exit_code: record.exit_code,
            stdout: record.stdout,
            stderr: record.stderr,
            duration_ms: record.duration_ms,
            timed_out: record.timed_out,
            oom_killed: record.oom_killed,
            output_truncated: record.truncated,
            error: record.error,
            created_at: iso(record.created_at),
            started_at: record.started_at.map(iso),
            finished_at: record.finished_at.map(iso),
        }
    }
}

/// A run's status and, once finished, its result. Members of its session only.
#[utoipa::path(get, path = "/api/execute/status/{jobId}", tag = "execute", security(("bearer" = [])),
    params(("jobId" = String, Path, description = "The job id from the submission")),
    responses((status = 200, description = "The run as stored (a run left running by a killed worker reads cancelled)", body = ExecutionView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn execution_status(
    State(state): State<Arc<AppState>>,
    AuthUser(claims): AuthUser,
    ApiPath(job_id): ApiPath<String>,
) -> Result<Json<ExecutionView>, ApiError> {
    if !storage::model::is_id(&job_id) {
        return Err(ApiError::invalid_path("jobId: a job id (24 hex digits)"));
    }
    let record = state.store.execution(&job_id).await?.ok_or_else(|| ApiError::not_found("execution"))?;
    session_of(&state, &claims, &record.session_id).await?;
    Ok(Json(settle_abandoned(record, &state).into()))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Runs per page, 1 to 100 (default 20).
    limit: Option<u64>,
    /// A job id: the page holds runs older than it (the `next` of the previous page).
    before: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ExecutionPage {
    /// Newest first.
    executions: Vec<ExecutionView>,
    /// Pass as `before` for the next (older) page; null when there is none.
    next: Option<String>,
}

/// A session's runs, newest first, a page at a time. Members only.
#[utoipa::path(get, path = "/api/execute/history/{sessionId}", tag = "execute", security(("bearer" = [])),
    params(("sessionId" = String, Path, description = "Session id"), HistoryQuery),
    responses((status = 200, description = "One page of runs, newest first", body = ExecutionPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn execution_history(
    State(state): State<Arc<AppState>>,
    AuthUser(claims): AuthUser,
    ApiPath(session_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> Result<Json<ExecutionPage>, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid_query(format!("limit: must be between 1 and {MAX_LIMIT}")));
    }
    let session = session_of(&state, &claims, &session_id).await?;
    let cursor = match &query.before {
        None => None,
        Some(before) => {
            let unknown = || ApiError::invalid_query("before: no such run in this session");
            if !storage::model::is_id(before) {
                return Err(unknown());
            }
            let record = state.store.execution(before).await?.filter(|r| r.session_id == session.id);
            Some(ExecutionCursor::from(&record.ok_or_else(unknown)?))
        }
    };
    // One more than asked tells whether there is a next page.
    let mut records = state.store.executions(&session.id, cursor.as_ref(), limit + 1).await?;
    let next = if records.len() as u64 > limit {
        records.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        records.last().map(|record| record.id.clone())
    } else {
        None
    };
    let executions = records.into_iter().map(|record| settle_abandoned(record, &state).into()).collect();
    Ok(Json(ExecutionPage { executions, next }))
}

/// Every language the server knows; `available` is whether a runner can run it now (its image
/// installed, Docker reachable), `version` as the runner reported it.
#[utoipa::path(get, path = "/api/execute/languages", tag = "execute",
    responses((status = 200, description = "Every language of the table", body = [LanguageView])))]
async fn execution_languages(State(state): State<Arc<AppState>>) -> Json<Vec<LanguageView>> {
    Json(state.executions.runners.languages().await.into_iter().map(Into::into).collect())
}

#[derive(Serialize, ToSchema)]
pub struct LanguageView {
    #[schema(example = "python")]
    id: String,
    #[schema(example = "Python")]
    name: String,
    #[schema(example = "3.11.2")]
    version: Option<String>,
    available: bool,
}

impl From<LanguageInfo> for LanguageView {
    fn from(info: LanguageInfo) -> Self {
        Self { id: info.id, name: info.name, version: info.version, available: info.available }
    }
}

/// Past this beyond its timeout, a run still marked running has lost its worker.
const ABANDONED_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

/// A run still `running` long past the wall-clock limit lost its worker (killed mid-run: its job
/// was taken off the queue when it started, so nobody else will finish it): shown as `cancelled`.
fn settle_abandoned(mut record: ExecutionRecord, state: &AppState) -> ExecutionRecord {
    let limit = state.config.exec.timeout().saturating_add(ABANDONED_AFTER);
    let now = storage::clock::now_millis();
    let started = record.started_at.unwrap_or(record.created_at);
    let limit_ms = i64::try_from(limit.as_millis()).unwrap_or(i64::MAX);
    if record.status == "running" && now.saturating_sub(started) > limit_ms {
        record.status = "cancelled".to_owned();
        record.error = Some("the worker running it stopped".to_owned());
    }
    record
}

/// The session `id` (any role), after checking the id's form: 400 for one that cannot be an id.
pub(super) async fn session_of(state: &AppState, claims: &Claims, id: &str) -> Result<Session, ApiError> {
    if !storage::model::is_id(id) {
        return Err(ApiError::invalid_path("sessionId: a session id (24 hex digits)"));
    }
    member_session(state, claims, id).await
}

/// A refused run as the API answers it: the refusal's status and code (the socket's codes too).
impl From<SubmitRefusal> for ApiError {
    fn from(refusal: SubmitRefusal) -> Self {
        if matches!(refusal, SubmitRefusal::Store(_) | SubmitRefusal::Queue(_)) {
            tracing::warn!(%refusal, "run refused");
        }
        let error = ApiError::with_status(refusal.status(), refusal.code(), refusal.to_string());
        match refusal.retry_after() {
            Some(after) => error.retry_after(after),
            None => error,
        }
    }
}
