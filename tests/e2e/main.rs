//! Root end-to-end tests: one test binary, one module per tool. Each test makes its own
//! temporary root and removes everything it made when it ends, pass or fail. The berth
//! binaries are the ones `cargo build --workspace` put beside this test binary.
//!
//! These tests need root and the Debian packages that `scripts/setup` installs. They fail
//! loudly when those are missing: a root test that cannot run must not pass quietly.
mod cgroup2;
mod engines;
mod lab;
mod mkbundle;
mod netns;
mod pull;
mod run;
mod run_cgroup_join;
mod run_checkpoint;
mod run_exec;
mod run_mounts;
mod run_specgaps;
mod run_systemd;
mod run_systemd_hybrid;
mod run_update;
mod run_verbs;
mod unpack;
