//! The routes, and the layers every request passes: counting, fault injection, ACL tokens.

use crate::reads::*;
use crate::state::{lock, St, MAX_WAIT};
use crate::writes::*;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde_json::json;

/// A fault to inject into `/v1/` reads.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer with this status and body.
    Status(u16, String),
    /// Answer 200 with a body that is not JSON.
    Garbage,
    /// Never answer.
    Hang,
}

pub(crate) fn router(st: St) -> Router {
    let v1 = Router::new()
        .route("/v1/health/service/{name}", get(health_service))
        .route("/v1/health/state/{state}", get(health_state))
        .route("/v1/catalog/service/{name}", get(catalog_service))
        .route("/v1/catalog/services", get(catalog_services))
        .route("/v1/catalog/nodes", get(catalog_nodes))
        .route("/v1/catalog/node/{name}", get(catalog_node))
        .route("/v1/catalog/datacenters", get(datacenters))
        .route("/v1/catalog/register", put(register))
        .route("/v1/catalog/deregister", put(deregister))
        .route(
            "/v1/kv/",
            get(kv_get_root).put(kv_put_root).delete(kv_delete_root),
        )
        .route("/v1/kv/{*key}", get(kv_get).put(kv_put).delete(kv_delete))
        .route(
            "/v1/status/leader",
            get(|| async { Json(json!("127.0.0.1:8300")) }),
        )
        .route("/v1/agent/self", get(agent_self))
        .route("/v1/session/create", put(crate::sessions::create))
        .route("/v1/session/destroy/{id}", put(crate::sessions::destroy))
        .route("/v1/session/renew/{id}", put(crate::sessions::renew))
        .route("/v1/session/info/{id}", get(crate::sessions::info))
        .route("/v1/session/list", get(crate::sessions::list))
        .route("/v1/session/node/{node}", get(crate::sessions::node))
        .layer(middleware::from_fn_with_state(st.clone(), faults_and_acl));
    Router::new()
        .merge(v1)
        .layer(middleware::from_fn_with_state(st.clone(), count))
        .with_state(st)
}

pub(crate) async fn count(State(st): State<St>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    {
        let mut c = lock(&st.counters);
        c.total += 1;
        if c.queries.len() >= 1000 {
            c.queries.pop_front();
        }
        c.queries
            .push_back(format!("{path}?{}", req.uri().query().unwrap_or_default()));
        *c.per_path.entry(path).or_default() += 1;
        c.in_flight += 1;
        c.in_flight_max = c.in_flight_max.max(c.in_flight);
    }
    struct Done(St);
    impl Drop for Done {
        fn drop(&mut self) {
            lock(&self.0.counters).in_flight -= 1;
        }
    }
    let _done = Done(st.clone());
    next.run(req).await
}

pub(crate) async fn faults_and_acl(State(st): State<St>, req: Request, next: Next) -> Response {
    if let Some(want) = &st.token {
        let header = req
            .headers()
            .get("X-Consul-Token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bearer = req
            .headers()
            .get("Authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_string);
        let query = req.uri().query().and_then(|q| {
            q.split('&')
                .find_map(|p| p.strip_prefix("token=").map(str::to_string))
        });
        if header.or(bearer).or(query).as_deref() != Some(want.as_str()) {
            return (StatusCode::FORBIDDEN, "ACL not found").into_response();
        }
    }
    let fault = {
        let writes = req.method() != axum::http::Method::GET;
        let path = req.uri().path();
        let mut faults = lock(&st.faults);
        let pos = faults.iter().position(|q| {
            q.count > 0
                && q.writes == writes
                && q.path.as_ref().is_none_or(|p| path.starts_with(p.as_str()))
        });
        pos.map(|i| {
            faults[i].count -= 1;
            let f = faults[i].fault.clone();
            faults.retain(|q| q.count > 0);
            f
        })
    };
    match fault {
        Some(Fault::Status(code, body)) => {
            let code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return (code, body).into_response();
        }
        Some(Fault::Garbage) => {
            let idx = lock(&st.data).index;
            let mut r = (
                StatusCode::OK,
                "<html><body>502 Bad Gateway from a proxy</body></html>",
            )
                .into_response();
            r.headers_mut()
                .insert("X-Consul-Index", HeaderValue::from(idx));
            return r;
        }
        Some(Fault::Hang) => {
            tokio::time::sleep(MAX_WAIT).await;
            return StatusCode::GATEWAY_TIMEOUT.into_response();
        }
        None => {}
    }
    next.run(req).await
}
