//! The server's tests that need real services, in one binary of their own: Redis and the
//! MongoDB-wire server that `scripts/services.sh` starts (`CODECRAFTER_TEST_REDIS_URL`,
//! `CODECRAFTER_TEST_MONGO_URL`), and `redis-server` processes the tests start themselves. Without
//! them these tests fail and say how to start them; everything else is in `tests/it/`.
//!
//! - `browser`: the browser client in a real Chromium (playwright-core) against a `codecrafter`
//!   process with Docker execution, restarted mid-test.
//! - `cache`: the cache suite on memory and a real Redis, Redis restarts, `rediss://`.
//! - `backends`: the server on MongoDB-wire + Redis.
//! - `durability`: the fault tests of the scaled-out stack (nodes, workers, RabbitMQ, MongoDB-wire
//!   server, Redis: each the test's own processes): nothing acknowledged is lost.
//! - `chat`: chat across two nodes on MongoDB-wire + Redis.
//! - `multi_node`: several `codecrafter` processes on a Redis of the test's own.
//! - `room_output`: a worker process on Redis reaching a room's app clients.
//! - `run`: runs in real containers (dockerd, `CODECRAFTER_TEST_DOCKER_HOST`), embedded and through a
//!   worker on RabbitMQ to clients on another node; hostile programs; 20 runs at once.

#[path = "../support/mod.rs"]
mod support;

mod backends;
mod browser;
mod cache;
mod chat;
mod durability;
mod multi_node;
mod room_output;
mod run;
