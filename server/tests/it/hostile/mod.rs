//! The hostile-input suite: what an attacker (or a confused client) sends, and what the server
//! must answer. Each module takes one surface; every test fails if the defence it names is removed.
//!
//! - `ws_updates`: Yjs updates that would poison a room or make its clients diverge.
//! - `awareness`: awareness floods and impersonation.
//! - `http_slow`: connections that send nothing or half a request, connection caps.
//! - `errors`: every error the server writes is the documented JSON.
//! - `jwt`: tokens that are signed but must still be refused.
//! - `rate_limits`: budgets that stop guessing without locking out real users.
//! - `durability`: what a kill -9 loses after a quiet period (the real binary, restarted).

mod awareness;
mod durability;
mod errors;
mod http_slow;
mod jwt;
mod rate_limits;
mod ws_updates;
