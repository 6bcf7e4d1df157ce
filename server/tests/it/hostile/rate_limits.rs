//! Budgets that stop guessing without locking out real users: each limit at its edge (N allowed,
//! N+1 refused with 429, `Retry-After` and the JSON error), failed logins apart from successes,
//! refresh and registration, a class behind one NAT on the default limits, and a client IP that a
//! spoofed `X-Forwarded-For` cannot change.

use std::net::SocketAddr;

use serde_json::json;
use server::Config;
use server::cidr::Cidr;

use crate::support::TestServer;
use crate::support::http::{PASSWORD, Reply, call, register, user_of};

const WINDOW_SECS: u64 = 60;

/// The test's requests come from 127.0.0.1: trusted as the proxy, so `X-Forwarded-For` names the
/// client.
fn behind_proxy(config: &mut Config) {
    config.trusted_proxies = vec!["127.0.0.1".parse::<Cidr>().unwrap()];
    config.rate_limit_window_secs = WINDOW_SECS;
}

fn from(ip: &str) -> [(&'static str, &str); 1] {
    [("X-Forwarded-For", ip)]
}

async fn login(addr: SocketAddr, who: &str, password: &str, ip: &str) -> Reply {
    let body = json!({ "login": who, "password": password });
    call(addr, "POST", "/api/auth/login", None, Some(&body), &from(ip)).await
}

async fn register_from(addr: SocketAddr, username: &str, ip: &str) -> Reply {
    let body =
        json!({ "username": username, "email": format!("{username}@example.com"), "password": PASSWORD });
    call(addr, "POST", "/api/auth/register", None, Some(&body), &from(ip)).await
}

/// `replies` are N allowed (each with `allowed` status) and then one refused with 429 `code`.
#[track_caller]
fn check_edge(what: &str, replies: &[Reply], allowed: u16, code: &str) {
    let (refused, within) = replies.split_last().unwrap();
    for (i, reply) in within.iter().enumerate() {
        assert_eq!(reply.status, allowed, "{what}: request {} of {}: {}", i + 1, within.len(), reply.body);
    }
    assert_eq!((refused.status, refused.error_code().as_str()), (429, code), "{what}: request N+1");
    let retry: u64 = refused.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=WINDOW_SECS).contains(&retry), "{what}: Retry-After {retry}");
}

#[tokio::test]
async fn every_budget_allows_n_and_refuses_the_next() {
    const N: usize = 3;

    // Per signed-in user, whatever the address.
    let server = TestServer::start_secure(|c| {
        behind_proxy(c);
        c.rate_limit_requests = N as u64;
    })
    .await;
    let user = user_of(&register_from(server.addr, "ursula", "203.0.113.1").await.json());
    let mut replies = Vec::new();
    for i in 0..=N {
        let ip = format!("198.51.100.{i}");
        replies.push(call(server.addr, "GET", "/api/sessions", Some(&user.access), None, &from(&ip)).await);
    }
    check_edge("--rate-limit-requests (per user)", &replies, 200, "rate_limited");

    // Per IP without a token; refreshes are not in that budget.
    let server = TestServer::start_secure(|c| {
        behind_proxy(c);
        c.ip_rate_limit_requests = N as u64;
    })
    .await;
    for _ in 0..2 * N {
        let body = json!({ "refreshToken": "not-one" });
        let reply =
            call(server.addr, "POST", "/api/auth/refresh", None, Some(&body), &from("203.0.113.2")).await;
        assert_eq!(reply.status, 401, "refresh spends no anonymous budget: {}", reply.body);
    }
    let mut replies = Vec::new();
    for _ in 0..=N {
        replies.push(call(server.addr, "GET", "/api/sessions", None, None, &from("203.0.113.2")).await);
    }
    check_edge("--ip-rate-limit-requests (per IP, no token)", &replies, 401, "rate_limited");

    // Registrations per IP.
    let server = TestServer::start_secure(|c| {
        behind_proxy(c);
        c.register_rate_limit_requests = N as u64;
    })
    .await;
    let mut replies = Vec::new();
    for i in 0..=N {
        replies.push(register_from(server.addr, &format!("student{i}"), "203.0.113.3").await);
    }
    check_edge("--register-rate-limit-requests", &replies, 201, "rate_limited");

    // Refreshes per IP.
    let server = TestServer::start_secure(|c| {
        behind_proxy(c);
        c.refresh_rate_limit_requests = N as u64;
    })
    .await;
    let mut replies = Vec::new();
    for _ in 0..=N {
        let body = json!({ "refreshToken": "not-one" });
        replies.push(
            call(server.addr, "POST", "/api/auth/refresh", None, Some(&body), &from("203.0.113.4")).await,
        );
    }
    check_edge("--refresh-rate-limit-requests", &replies, 401, "rate_limited");

    // Failed logins per account, from many addresses; then even the right password waits.
    let server = TestServer::start_secure(|c| {
        behind_proxy(c);
        c.login_failures_per_account = N as u64;
    })
    .await;
    register(server.addr, "ada").await;
    let mut replies = Vec::new();
    for i in 0..N {
        // Every way of naming the account shares its budget.
        let spelling = ["ada", "ADA@example.com", " ada@example.com "][i % 3];
        replies.push(login(server.addr, spelling, "wrong password", &format!("198.51.100.{i}")).await);
    }
    replies.push(login(server.addr, "ada", PASSWORD, "198.51.100.99").await);
    check_edge("--login-failures-per-account", &replies, 401, "too_many_failed_logins");
    assert!(replies[N].error_message().contains("account"), "{}", replies[N].body);

    // Failed logins per IP, whatever the account (known or not).
    let server = TestServer::start_secure(|c| {
        behind_proxy(c);
        c.login_failures_per_ip = N as u64;
    })
    .await;
    register(server.addr, "bea").await;
    let mut replies = Vec::new();
    for i in 0..N {
        replies.push(login(server.addr, &format!("nobody{i}"), "guess", "203.0.113.5").await);
    }
    replies.push(login(server.addr, "bea", PASSWORD, "203.0.113.5").await);
    check_edge("--login-failures-per-ip", &replies, 401, "too_many_failed_logins");
    assert!(replies[N].error_message().contains("address"), "{}", replies[N].body);
    assert_eq!(login(server.addr, "bea", PASSWORD, "203.0.113.6").await.status, 200, "another address");
}

#[tokio::test]
async fn a_successful_login_spends_no_failure_budget_and_clears_its_account() {
    let server = TestServer::start_secure(|c| {
        behind_proxy(c);
        c.login_failures_per_account = 3;
        c.login_failures_per_ip = 3;
    })
    .await;
    register(server.addr, "ada").await;
    let (a, b) = ("203.0.113.10", "203.0.113.11");
    let mut statuses = Vec::new();
    for password in ["typo", "typo"] {
        statuses.push(login(server.addr, "ada", password, a).await.status);
    }
    // Successes give their attempt back: six of them leave the address two failures in.
    for _ in 0..6 {
        statuses.push(login(server.addr, "ada", PASSWORD, a).await.status);
    }
    statuses.push(login(server.addr, "ada", "typo", a).await.status);
    let refused = login(server.addr, "ada", "typo", a).await;
    statuses.push(refused.status);
    assert_eq!(statuses, [401, 401, 200, 200, 200, 200, 200, 200, 401, 429], "from one address");
    assert!(refused.error_message().contains("address"), "{}", refused.body);
    // The successes cleared the account's two early failures: it has had one since, so two more
    // from elsewhere are still answered, and only then is it locked (even with the password).
    let mut statuses = Vec::new();
    for password in ["typo", "typo", PASSWORD] {
        statuses.push(login(server.addr, "ada", password, b).await.status);
    }
    assert_eq!(statuses, [401, 401, 429], "the account, from another address");
}

#[tokio::test]
async fn refresh_and_registration_never_lock_out_logins() {
    let server = TestServer::start_secure(|c| {
        behind_proxy(c);
        c.refresh_rate_limit_requests = 2;
        c.register_rate_limit_requests = 2;
        c.login_failures_per_ip = 2;
    })
    .await;
    let ada = user_of(&register_from(server.addr, "ada", "203.0.113.20").await.json());
    register_from(server.addr, "bob", "203.0.113.21").await;

    // Refresh budget spent: logins from that address still work.
    let ip = "203.0.113.22";
    for expected in [401, 401, 429] {
        let body = json!({ "refreshToken": "stale" });
        let reply = call(server.addr, "POST", "/api/auth/refresh", None, Some(&body), &from(ip)).await;
        assert_eq!(reply.status, expected, "{}", reply.body);
    }
    assert_eq!(login(server.addr, "ada", PASSWORD, ip).await.status, 200, "after the refresh budget");

    // Failed-login budget spent: refreshing from that address still works.
    let ip = "203.0.113.23";
    for expected in [401, 401, 429] {
        assert_eq!(login(server.addr, "bob", "typo", ip).await.status, expected);
    }
    let body = json!({ "refreshToken": ada.refresh });
    let reply = call(server.addr, "POST", "/api/auth/refresh", None, Some(&body), &from(ip)).await;
    assert_eq!(reply.status, 200, "after the failed-login budget: {}", reply.body);

    // Registration budget spent: logins from that address still work.
    let ip = "203.0.113.24";
    for (name, expected) in [("carl", 201), ("dina", 201), ("emil", 429)] {
        assert_eq!(register_from(server.addr, name, ip).await.status, expected);
    }
    assert_eq!(login(server.addr, "carl", PASSWORD, ip).await.status, 200, "after the registration budget");
}

/// The defaults, as shipped: a class of 40 behind one NAT address signs up, mistypes twice each,
/// signs in and refreshes; a tab polls every 2 s for a whole window; and a guesser on that same
/// address still gets only 10 tries at one account.
#[tokio::test]
async fn a_class_behind_one_nat_works_on_the_default_limits() {
    let defaults = <Config as clap::Parser>::parse_from(["codecrafter"]);
    let server = TestServer::start_secure(|c| {
        c.trusted_proxies = vec!["127.0.0.1".parse::<Cidr>().unwrap()];
        c.rate_limit_requests = defaults.rate_limit_requests;
        c.ip_rate_limit_requests = defaults.ip_rate_limit_requests;
        c.rate_limit_window_secs = defaults.rate_limit_window_secs;
        c.login_failures_per_account = defaults.login_failures_per_account;
        c.login_failures_per_ip = defaults.login_failures_per_ip;
        c.register_rate_limit_requests = defaults.register_rate_limit_requests;
        c.refresh_rate_limit_requests = defaults.refresh_rate_limit_requests;
    })
    .await;
    let addr = server.addr;
    const NAT: &str = "198.51.100.7";
    const STUDENTS: usize = 40;

    let students = (0..STUDENTS).map(|i| {
        tokio::spawn(async move {
            let name = format!("student{i:02}");
            let mut statuses = vec![register_from(addr, &name, NAT).await.status];
            for typo in ["correct horse batery", "Correct horse battery"] {
                statuses.push(login(addr, &name, typo, NAT).await.status);
            }
            let signed_in = login(addr, &name, PASSWORD, NAT).await;
            statuses.push(signed_in.status);
            let body = json!({ "refreshToken": user_of(&signed_in.json()).refresh });
            statuses
                .push(call(addr, "POST", "/api/auth/refresh", None, Some(&body), &from(NAT)).await.status);
            (statuses, user_of(&signed_in.json()))
        })
    });
    let mut users = Vec::new();
    for student in futures_util::future::join_all(students).await {
        let (statuses, user) = student.unwrap();
        assert_eq!(
            statuses,
            [201, 401, 401, 200, 200],
            "{}: sign up, two typos, sign in, refresh",
            user.username
        );
        users.push(user);
    }

    // One tab polling every 2 s for the whole 15-minute window, plus some real use.
    let tab = &users[0];
    let window_secs = defaults.rate_limit_window_secs;
    let polls = window_secs / 2;
    let mut last = None;
    for i in 0..polls + 100 {
        let path = if i % 5 == 4 { "/api/auth/profile" } else { "/api/sessions" };
        let reply = call(addr, "GET", path, Some(&tab.access), None, &from(NAT)).await;
        assert_eq!(reply.status, 200, "request {i} of a busy tab: {}", reply.body);
        last = Some(reply);
    }
    let remaining: u64 = last.unwrap().header("ratelimit-remaining").unwrap().parse().unwrap();
    assert!(remaining >= defaults.rate_limit_requests / 3, "a busy tab leaves room to spare: {remaining}");

    // A guesser behind the same NAT: 10 tries at one account, then nothing for the window.
    let target = &users[1].username;
    let mut statuses = Vec::new();
    for i in 0..=defaults.login_failures_per_account {
        statuses.push(login(addr, target, &format!("guess {i}"), NAT).await.status);
    }
    let expected: Vec<u16> =
        std::iter::repeat_n(401, defaults.login_failures_per_account as usize).chain([429]).collect();
    assert_eq!(statuses, expected, "guessing one account");
    // ...and the rest of the class still signs in.
    assert_eq!(login(addr, &users[2].username, PASSWORD, NAT).await.status, 200);
}

/// A budget of 3 requests without a token per IP, counted behind `tweak`'s proxy setting:
/// requests whose `X-Forwarded-For` lines are `lines(i)` (one header per line) must all count as
/// one client. (Every per-IP budget takes its IP from the same function.)
async fn check_counted_as_one(
    what: &str,
    tweak: impl FnOnce(&mut Config),
    lines: impl Fn(usize) -> Vec<String>,
) {
    let server = TestServer::start_secure(|c| {
        c.rate_limit_window_secs = WINDOW_SECS;
        c.ip_rate_limit_requests = 3;
        tweak(c);
    })
    .await;
    let mut statuses = Vec::new();
    for i in 0..4 {
        let lines = lines(i);
        let headers: Vec<(&str, &str)> = lines.iter().map(|l| ("X-Forwarded-For", l.as_str())).collect();
        statuses.push(call(server.addr, "GET", "/api/sessions", None, None, &headers).await.status);
    }
    assert_eq!(statuses, [401, 401, 401, 429], "{what}: a spoofed entry must not buy a fresh budget");
}

#[tokio::test]
async fn a_spoofed_forwarded_for_does_not_change_the_counted_ip() {
    let trusted = |ranges: &str| {
        let ranges: Vec<Cidr> = ranges.split(',').map(|r| r.parse().unwrap()).collect();
        move |c: &mut Config| c.trusted_proxies = ranges
    };
    // The proxy appends the real client (203.0.113.7) after whatever the client sent.
    check_counted_as_one("--trusted-proxies", trusted("127.0.0.1"), |i| {
        vec![format!("10.{i}.0.1, 203.0.113.7")]
    })
    .await;
    check_counted_as_one(
        "--trust-proxy (one hop)",
        |c| c.trust_proxy = true,
        |i| vec![format!("198.51.100.{i}, 198.51.100.{}, 203.0.113.7", i + 50)],
    )
    .await;
    check_counted_as_one(
        "--proxy-hops 2",
        |c| c.proxy_hops = 2,
        |i| vec![format!("198.51.100.{i}, 203.0.113.7, 10.0.0.2")],
    )
    .await;
    check_counted_as_one("several X-Forwarded-For headers are one list", trusted("127.0.0.1"), |i| {
        vec![format!("198.51.100.{i}"), "203.0.113.7".into()]
    })
    .await;
    check_counted_as_one("an inner proxy's own entry is skipped", trusted("127.0.0.1,10.0.0.0/8"), |i| {
        vec![format!("198.51.100.{i}, 203.0.113.7, 10.0.0.{}", i + 1)]
    })
    .await;
    // Malformed right-most entries: counted as the proxy itself, never as something new.
    check_counted_as_one("malformed entries", trusted("127.0.0.1"), |i| {
        vec![format!("203.0.113.{i}, not-an-ip-{i}")]
    })
    .await;
    // From a peer that is not a trusted proxy the header is ignored altogether.
    check_counted_as_one("an untrusted peer", trusted("10.0.0.0/8"), |i| vec![format!("198.51.100.{i}")])
        .await;

    // And a different real client behind the same proxy is its own client.
    let server = TestServer::start_secure(|c| {
        behind_proxy(c);
        c.ip_rate_limit_requests = 1;
    })
    .await;
    let addr = server.addr;
    let anonymous = |forwarded: &'static str| async move {
        call(addr, "GET", "/api/sessions", None, None, &[("X-Forwarded-For", forwarded)]).await
    };
    assert_eq!(anonymous("198.51.100.1, 203.0.113.7").await.status, 401);
    assert_eq!(anonymous("198.51.100.2, 203.0.113.7").await.status, 429);
    assert_eq!(anonymous("203.0.113.8").await.status, 401, "another client");
}

#[tokio::test]
async fn the_socket_throttle_and_hsts_trust_the_same_proxies() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let server = TestServer::start_secure(|c| {
        c.trusted_proxies = vec!["127.0.0.1".parse::<Cidr>().unwrap()];
        c.ws_connects_per_min = 2;
    })
    .await;
    let connect = |forwarded: String| {
        let mut request = server.ws_url("room").into_client_request().unwrap();
        request.headers_mut().insert("x-forwarded-for", forwarded.parse().unwrap());
        tokio_tungstenite::connect_async(request)
    };
    for i in 0..2 {
        connect(format!("198.51.100.{i}, 203.0.113.7")).await.expect("within the budget");
    }
    match connect("198.51.100.9, 203.0.113.7".into()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 429),
        other => panic!("a spoofed left-most entry must not escape the throttle: {:?}", other.map(|_| ())),
    }
    connect("203.0.113.8".into()).await.expect("another client behind the proxy");

    // HSTS only when a trusted proxy says the client used HTTPS.
    let hsts = |server: &TestServer| {
        let addr = server.addr;
        async move {
            let reply = call(addr, "GET", "/health", None, None, &[("X-Forwarded-Proto", "https")]).await;
            reply.header("strict-transport-security").is_some()
        }
    };
    assert!(hsts(&server).await, "from a trusted proxy");
    let untrusted =
        TestServer::start_secure(|c| c.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap()]).await;
    assert!(!hsts(&untrusted).await, "from a peer that is not a trusted proxy");
}

#[tokio::test]
async fn proxy_settings_that_contradict_each_other_are_refused_at_startup() {
    for args in [
        ["--trusted-proxies", "10.0.0.0/8", "--trust-proxy"].as_slice(),
        &["--trusted-proxies", "10.0.0.0/8", "--proxy-hops", "1"],
        &["--proxy-hops", "2", "--trust-proxy"],
        &["--trusted-proxies", "10.0.0.0/33"],
        &["--trusted-proxies", "proxy.internal"],
    ] {
        let parsed = <Config as clap::Parser>::try_parse_from(
            std::iter::once("codecrafter").chain(args.iter().copied()),
        );
        assert!(parsed.is_err(), "{args:?} should be refused");
    }
    let ok =
        <Config as clap::Parser>::try_parse_from(["codecrafter", "--trusted-proxies", "10.0.0.0/8,fd00::/8"]);
    assert_eq!(ok.unwrap().trusted_proxies.len(), 2);
}
