//! Calls `on_call_at` 10,000 times on the benchmark schedule, for instruction counts that do
//! not depend on how busy the machine is:
//!
//! ```sh
//! cargo build --release --example profile
//! valgrind --tool=callgrind target/release/examples/profile top   # a New York (top layer) instant
//! valgrind --tool=callgrind target/release/examples/profile sec   # all regions closed
//! ```

#[path = "../benches/fixture/mod.rs"]
mod fixture;

use std::hint::black_box;

fn main() {
    let schedule = fixture::schedule();
    let which = std::env::args().nth(1).unwrap_or_default();
    let t = fixture::u(if which == "sec" {
        "2026-06-19T21:00:00Z"
    } else {
        "2026-06-19T20:45:00Z"
    });
    for _ in 0..10_000 {
        black_box(schedule.on_call_at(black_box(t)));
    }
}
