//! Measuring a server with auth on: `--token` puts an access token on every WebSocket URL;
//! `--sign-up` registers a fresh user and, because CodeCrafter refuses plain rooms (4404) without
//! its `--allow-anonymous`, creates one session per room, which clients then open by session id.

use std::collections::HashMap;
use std::sync::Mutex;

use anyhow::{Context as _, bail};
use futures_util::{StreamExt as _, TryStreamExt as _};
use serde_json::{Value, json};

use crate::cli::Common;
use crate::plain_http::{self, post_json};
use crate::target::{is_loopback, with_query};

/// Largest answer read from register or create-session (a user or session view, a few hundred bytes).
const MAX_RESPONSE_BYTES: u64 = 64 * 1024;
/// Sessions being created at once: enough to hide loopback latency, few enough not to crowd the
/// server's per-IP HTTP connection cap.
const CREATE_CONCURRENCY: usize = 16;

/// The token every connection carries and, after `--sign-up`, the session standing for each room.
pub struct Auth {
    token: String,
    sessions: Option<Sessions>,
}

/// Sessions created for rooms on the server at `authority`, keyed by the harness's room name.
struct Sessions {
    authority: String,
    ids: Mutex<HashMap<String, String>>,
}

/// The flag checks clap cannot make: `--sign-up` is plain `http://` and, unless `--allow-remote`,
/// loopback.
pub fn check(common: &Common) -> anyhow::Result<()> {
    if let Some(url) = &common.sign_up {
        let authority = sign_up_authority(url)?;
        let host = authority.rsplit_once(':').map_or(authority.as_str(), |(host, _)| host);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if !common.allow_remote && !is_loopback(host) {
            bail!("refusing non-loopback --sign-up {host:?} (pass --allow-remote if you really mean it)");
        }
    }
    Ok(())
}

fn sign_up_authority(url: &str) -> anyhow::Result<String> {
    anyhow::ensure!(url.starts_with("http://"), "--sign-up takes the server's http:// base, not {url}");
    plain_http::http_authority(url)
}

impl Auth {
    /// From the flags: none, the given `--token`, or a user registered through `--sign-up`.
    pub async fn from_flags(common: &Common) -> anyhow::Result<Option<Self>> {
        if let Some(token) = &common.token {
            return Ok(Some(Self { token: token.clone(), sessions: None }));
        }
        let Some(url) = &common.sign_up else { return Ok(None) };
        let authority = sign_up_authority(url)?;
        let token = register(&authority).await.with_context(|| format!("--sign-up {url}"))?;
        Ok(Some(Self { token, sessions: Some(Sessions { authority, ids: Mutex::default() }) }))
    }

    /// With `--sign-up`, creates a session for each room that has none yet; nothing otherwise.
    /// Call before connecting to the rooms.
    pub async fn open_rooms(&self, rooms: &[String]) -> anyhow::Result<()> {
        let Some(sessions) = &self.sessions else { return Ok(()) };
        let missing: Vec<&String> = {
            let ids = sessions.ids.lock().unwrap_or_else(|e| e.into_inner());
            rooms.iter().filter(|room| !ids.contains_key(*room)).collect()
        };
        let created: Vec<(String, String)> = futures_util::stream::iter(missing)
            .map(|room| async move {
                let id = create_session(&sessions.authority, &self.token, room).await?;
                anyhow::Ok((room.clone(), id))
            })
            .buffer_unordered(CREATE_CONCURRENCY)
            .try_collect()
            .await?;
        sessions.ids.lock().unwrap_or_else(|e| e.into_inner()).extend(created);
        Ok(())
    }

    /// The URL of `room` at `base_url`: the room's session when one was created, with the token.
    pub fn room_url(&self, base_url: &str, room: &str) -> String {
        let ids = self.sessions.as_ref().map(|s| s.ids.lock().unwrap_or_else(|e| e.into_inner()));
        let path = ids.as_ref().and_then(|ids| ids.get(room)).map_or(room, String::as_str);
        with_query(&format!("{base_url}/{path}"), &format!("token={}", percent_encode(&self.token)))
    }
}

/// Registers a fresh user (a random name, so runs never collide) and returns its access token.
async fn register(authority: &str) -> anyhow::Result<String> {
    let name = format!("loadtest_{:016x}", rand::random::<u64>());
    let body = json!({
        "username": name,
        "email": format!("{name}@loadtest.invalid"),
        "password": format!("{:032x}", rand::random::<u128>()),
    });
    let answer = call(authority, "/api/auth/register", None, &body).await?;
    let token = answer["accessToken"].as_str().context("no accessToken in the register answer")?;
    Ok(token.to_owned())
}

/// Creates a session owned by the token's user for `room`; returns its id (the room id).
async fn create_session(authority: &str, token: &str, room: &str) -> anyhow::Result<String> {
    let answer = call(authority, "/api/sessions", Some(token), &json!({ "title": room })).await?;
    let id = answer["id"].as_str().with_context(|| format!("no id in the session created for {room}"))?;
    Ok(id.to_owned())
}

/// One JSON call; a non-2xx status is an error quoting the server's answer.
async fn call(authority: &str, path: &str, bearer: Option<&str>, body: &Value) -> anyhow::Result<Value> {
    let response = post_json(authority, path, bearer, &body.to_string(), MAX_RESPONSE_BYTES).await?;
    if !(200..300).contains(&response.status) {
        let hint = if response.status == 429 {
            " (rate limited: see `loadtest fanout --help` for the server flags a measured server needs)"
        } else {
            ""
        };
        bail!("POST {path}: {} {}{hint}", response.status, response.body.trim());
    }
    serde_json::from_str(&response.body).with_context(|| format!("POST {path}: the answer is not JSON"))
}

/// A query value with everything but RFC 3986's unreserved characters escaped (a JWT needs
/// nothing escaped; a hand-made `--token` might).
fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    fn common(argv: &[&str]) -> anyhow::Result<Common> {
        let cli = crate::cli::Cli::try_parse_from(["loadtest", "fanout"].iter().chain(argv))?;
        Ok(cli.command.common().clone())
    }

    #[test]
    fn token_goes_on_every_url() {
        let auth = Auth { token: "a.b_c-d".to_owned(), sessions: None };
        assert_eq!(
            auth.room_url("ws://127.0.0.1:1/ws", "lt-1-0"),
            "ws://127.0.0.1:1/ws/lt-1-0?token=a.b_c-d"
        );
        let odd = Auth { token: "x y&z=é".to_owned(), sessions: None };
        assert_eq!(odd.room_url("ws://h/ws", "r"), "ws://h/ws/r?token=x%20y%26z%3D%C3%A9");
    }

    #[test]
    fn rooms_with_a_session_open_it() {
        let ids = HashMap::from([("lt-1-0".to_owned(), "0193abc".to_owned())]);
        let sessions = Sessions { authority: "127.0.0.1:1".to_owned(), ids: Mutex::new(ids) };
        let auth = Auth { token: "t".to_owned(), sessions: Some(sessions) };
        assert_eq!(auth.room_url("ws://h/ws", "lt-1-0"), "ws://h/ws/0193abc?token=t");
        assert_eq!(auth.room_url("ws://h/ws", "lt-1-1"), "ws://h/ws/lt-1-1?token=t", "no session: as named");
        assert_eq!(
            with_query(&auth.room_url("ws://h/ws", "lt-1-0"), "app=1"),
            "ws://h/ws/0193abc?token=t&app=1"
        );
    }

    #[test]
    fn sign_up_flag_checks() {
        let checked = |argv: &[&str]| check(&common(argv).expect("parses"));
        checked(&["--url", "ws://127.0.0.1:1/ws", "--sign-up", "http://127.0.0.1:1"]).expect("loopback");
        let err =
            checked(&["--url", "ws://127.0.0.1:1/ws", "--sign-up", "https://127.0.0.1:1"]).expect_err("tls");
        assert!(err.to_string().contains("http://"), "{err}");
        let err = checked(&["--url", "ws://127.0.0.1:1/ws", "--sign-up", "http://10.0.0.1:5000"])
            .expect_err("remote");
        assert!(err.to_string().contains("non-loopback"), "{err}");
        let argv = ["--url", "ws://10.0.0.1:1/ws", "--allow-remote", "--sign-up", "http://10.0.0.1:5000"];
        checked(&argv).expect("remote allowed");
        checked(&["--url", "ws://[::1]:1/ws", "--sign-up", "http://[::1]:5000/"]).expect("v6 loopback");
    }

    #[test]
    fn auth_flags_need_an_attached_server() {
        assert!(common(&["--spawn", "srv", "--token", "t"]).is_err(), "a spawned server allows anonymous");
        assert!(common(&["--spawn", "srv", "--sign-up", "http://127.0.0.1:1"]).is_err());
        assert!(
            common(&["--url", "ws://127.0.0.1:1/ws", "--token", "t", "--sign-up", "http://127.0.0.1:1"])
                .is_err()
        );
        let c = common(&["--url", "ws://127.0.0.1:1/ws", "--token", "secret"]).expect("parses");
        let json = serde_json::to_string(&c).expect("serializes");
        assert!(!json.contains("secret"), "the token stays out of reports: {json}");
    }
}
