//! The client against a real bus: a private dbus-daemon (Debian's), and busctl (systemd's
//! sd-bus) as an independent marshaller of StartTransientUnit.

use std::process::{Child, Command, Stdio};

use super::*;

/// A dbus-daemon of our own on a socket in a temporary directory; killed on drop.
struct Daemon {
    child: Child,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Daemon {
    fn start() -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("bus");
        let mut child = Command::new("dbus-daemon")
            .arg("--session")
            .arg("--nofork")
            .arg("--print-address")
            .arg(format!("--address=unix:path={}", socket.display()))
            .stdout(Stdio::piped())
            .spawn()
            .expect("dbus-daemon (Debian package dbus-daemon) must be installed");
        // It prints its address once it listens (the socket file exists a little earlier,
        // between bind and listen, when a connect is refused).
        let mut address = String::new();
        let stdout = child.stdout.take().unwrap();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut address).unwrap();
        assert!(
            address.starts_with("unix:"),
            "dbus-daemon did not start: {address:?}"
        );
        Daemon {
            child,
            socket,
            _dir: dir,
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn bus_call(c: &mut Connection, member: &str, args: Vec<Value>) -> Result<Vec<Value>> {
    c.call(
        "org.freedesktop.DBus",
        "/org/freedesktop/DBus",
        "org.freedesktop.DBus",
        member,
        args,
        "",
    )
}

#[test]
fn hello_and_list_names_through_a_real_dbus_daemon() {
    let d = Daemon::start();
    let mut c = Connection::open(&d.socket, true).unwrap();
    let me = c.unique_name.clone().expect("Hello gives a unique name");
    assert!(me.starts_with(":1."), "{me}");
    let names = bus_call(&mut c, "ListNames", vec![]).unwrap();
    let [Value::Array(elem, names)] = &names[..] else {
        panic!("ListNames returned {names:?}")
    };
    assert_eq!(elem, "s");
    let names: Vec<&str> = names.iter().filter_map(Value::as_str).collect();
    assert!(names.contains(&"org.freedesktop.DBus"), "{names:?}");
    assert!(names.contains(&me.as_str()), "{names:?}");
}

#[test]
fn error_replies_carry_their_name_and_message() {
    let d = Daemon::start();
    let mut c = Connection::open(&d.socket, true).unwrap();
    let e = c
        .call(
            "org.berth.NoSuchService",
            MANAGER_PATH,
            MANAGER,
            "StopUnit",
            vec![Value::str("x.scope"), Value::str("replace")],
            "x.scope",
        )
        .unwrap_err();
    let Error::Remote { name, .. } = &e else {
        panic!("{e}")
    };
    assert_eq!(name, "org.freedesktop.DBus.Error.ServiceUnknown");
    let line = e.to_string();
    assert!(line.starts_with("systemd: StopUnit x.scope: "), "{line}");
    assert!(line.contains("org.berth.NoSuchService"), "{line}");
}

#[test]
fn start_transient_unit_body_is_byte_identical_to_sd_bus() {
    let d = Daemon::start();
    // We play systemd: own its name, then let busctl call us.
    let mut fake = Connection::open(&d.socket, true).unwrap();
    let owned = bus_call(
        &mut fake,
        "RequestName",
        vec![Value::str("org.freedesktop.systemd1"), Value::U32(0)],
    )
    .unwrap();
    assert_eq!(owned, vec![Value::U32(1)], "primary owner");
    let mut busctl = Command::new("busctl")
        .arg(format!("--address=unix:path={}", d.socket.display()))
        .args(["call", "--expect-reply=no"])
        .args([SYSTEMD, MANAGER_PATH, MANAGER, "StartTransientUnit"])
        .args(["ssa(sv)a(sa(sv))", "runc-c1.scope", "replace", "5"])
        .args(["Description", "s", "libcontainer container c1"])
        .args(["PIDs", "au", "1", "4242"])
        .args(["Delegate", "b", "true"])
        .args(["MemoryMax", "t", "1073741824"])
        .args(["AllowedCPUs", "ay", "1", "5"])
        .arg("0")
        .spawn()
        .expect("busctl (Debian package systemd) must be installed");
    let deadline = Instant::now() + Duration::from_secs(10);
    let raw = loop {
        let raw = fake.receive_raw(deadline).unwrap().expect("busctl's call");
        let m = Message::decode(&raw).unwrap();
        if m.kind == wire::METHOD_CALL && m.member.as_deref() == Some("StartTransientUnit") {
            break raw;
        }
    };
    let _ = busctl.wait();
    let got = Message::decode(&raw).unwrap();
    let prop = |k: &str, v: Value| Value::Struct(vec![Value::str(k), Value::variant(v)]);
    let ours = vec![
        Value::str("runc-c1.scope"),
        Value::str("replace"),
        Value::Array(
            "(sv)".into(),
            vec![
                prop("Description", Value::str("libcontainer container c1")),
                prop("PIDs", Value::Array("u".into(), vec![Value::U32(4242)])),
                prop("Delegate", Value::Bool(true)),
                prop("MemoryMax", Value::U64(1 << 30)),
                prop(
                    "AllowedCPUs",
                    Value::Array("y".into(), vec![Value::Byte(5)]),
                ),
            ],
        ),
        Value::Array("(sa(sv))".into(), vec![]),
    ];
    assert_eq!(got.body, ours);
    // The body bytes: sd-bus's against ours.
    let mut w = wire::Writer::default();
    for v in &ours {
        w.value(v);
    }
    let body = &raw[raw.len() - w.buf.len()..];
    assert_eq!(wire::hex(body), wire::hex(&w.buf));
}

#[test]
fn without_systemd_connecting_names_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let e = Systemd::connect_at(&dir.path().join("private"), &dir.path().join("bus"))
        .err()
        .unwrap();
    assert!(e.to_string().contains("private"), "{e}");
    assert_eq!(e.kind(), Kind::Unavailable);
}

#[test]
fn cpu_lists_become_systemd_bitmasks() {
    assert_eq!(range_to_bits("0").unwrap(), vec![1]);
    assert_eq!(range_to_bits("0-3,7").unwrap(), vec![0x8f]);
    assert_eq!(range_to_bits("8").unwrap(), vec![0, 1]);
    assert_eq!(range_to_bits("1,9-10").unwrap(), vec![2, 6]);
    assert!(range_to_bits("3-1").is_err());
    assert!(range_to_bits("x").is_err());
}

/// A fake systemd on the bus: owns org.freedesktop.systemd1 and answers the manager's calls
/// as systemd does (a job path, then JobRemoved), with `exists` units already running.
fn fake_systemd(
    socket: &Path,
    exists: &'static [&'static str],
) -> std::thread::JoinHandle<Vec<String>> {
    let mut fake = Connection::open(socket, true).unwrap();
    let owned = bus_call(
        &mut fake,
        "RequestName",
        vec![Value::str("org.freedesktop.systemd1"), Value::U32(0)],
    )
    .unwrap();
    assert_eq!(owned, vec![Value::U32(1)]);
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut job = 0u32;
        let deadline = Instant::now() + Duration::from_secs(20);
        while let Some(m) = fake.receive(deadline).unwrap() {
            if m.kind != wire::METHOD_CALL || m.interface.as_deref() != Some(MANAGER) {
                continue;
            }
            let member = m.member.clone().unwrap_or_default();
            let unit = m
                .body
                .first()
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            seen.push(format!("{member} {unit}"));
            let mut reply = Message {
                kind: wire::METHOD_RETURN,
                reply_serial: Some(m.serial),
                destination: m.sender.clone(),
                ..Message::default()
            };
            let mut signal = None;
            if member == "Subscribe" {
                // Noise first: more JobRemoved signals than a connection keeps, and one
                // whose body has a type berth does not read (a double): dropped, not fatal.
                for i in 0..MAX_KEPT_SIGNALS + 10 {
                    let noise = job_removed(1000 + i as u32, "noise.scope", "done");
                    fake.send(noise).unwrap();
                }
                let mut odd = job_removed(0, "", "");
                odd.body = vec![Value::U64(0)];
                odd.serial = 99_999;
                let mut raw = odd.encode();
                let at = raw
                    .windows(7)
                    .position(|w| w == [8, 1, b'g', 0, 1, b't', 0])
                    .expect("the signature field");
                raw[at + 5] = b'd';
                fake.stream.write_all(&raw).unwrap();
            }
            match member.as_str() {
                "StartTransientUnit" | "StopUnit" if exists.contains(&unit.as_str()) => {
                    reply.kind = wire::ERROR;
                    reply.error_name = Some(if member == "StopUnit" {
                        "org.freedesktop.systemd1.NoSuchUnit".into()
                    } else {
                        "org.freedesktop.systemd1.UnitExists".into()
                    });
                    reply.body = vec![Value::str(format!("Unit {unit} already exists."))];
                }
                "StartTransientUnit" | "StopUnit" => {
                    job += 1;
                    let path = format!("/org/freedesktop/systemd1/job/{job}");
                    reply.body = vec![Value::Path(path.clone())];
                    let result = if unit.starts_with("fails") {
                        "failed"
                    } else {
                        "done"
                    };
                    signal = Some(job_removed(job, &unit, result));
                }
                _ => {}
            }
            fake.send(reply).unwrap();
            if let Some(s) = signal {
                fake.send(s).unwrap();
            }
            if member == "ResetFailedUnit" && unit == "last.scope" {
                break;
            }
        }
        seen
    })
}

/// systemd's JobRemoved(id, job, unit, result), broadcast.
fn job_removed(job: u32, unit: &str, result: &str) -> Message {
    Message {
        kind: wire::SIGNAL,
        path: Some(MANAGER_PATH.into()),
        interface: Some(MANAGER.into()),
        member: Some("JobRemoved".into()),
        body: vec![
            Value::U32(job),
            Value::Path(format!("/org/freedesktop/systemd1/job/{job}")),
            Value::str(unit),
            Value::str(result),
        ],
        ..Message::default()
    }
}

#[test]
fn scopes_start_and_stop_through_the_manager_and_its_job_signals() {
    let d = Daemon::start();
    let fake = fake_systemd(&d.socket, &["taken.scope"]);
    let absent = d.socket.with_file_name("no-private-socket");
    let mut sd = Systemd::connect_at(&absent, &d.socket).unwrap();
    // The noise before Subscribe's reply: only the newest are kept.
    assert_eq!(sd.conn.signals.len(), MAX_KEPT_SIGNALS);
    let props = [("Delegate".to_string(), Value::Bool(true))];
    sd.start_transient_unit("c1.scope", &props, Duration::from_secs(5))
        .unwrap();
    // Taken: reset once and retried, then one line naming the unit, kind AlreadyExists.
    let e = sd
        .start_transient_unit("taken.scope", &props, Duration::from_secs(5))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "systemd: StartTransientUnit taken.scope: Unit taken.scope already exists."
    );
    assert_eq!(e.kind(), Kind::AlreadyExists);
    // A job that ends other than "done".
    let e = sd
        .start_transient_unit("fails.scope", &props, Duration::from_secs(5))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "systemd: StartTransientUnit fails.scope: the job ended with result \"failed\""
    );
    // Stopping a unit that is gone is fine.
    sd.stop_unit("taken.scope", Duration::from_secs(5)).unwrap();
    sd.stop_unit("last.scope", Duration::from_secs(5)).unwrap();
    let seen = fake.join().unwrap();
    assert_eq!(
        seen,
        [
            "Subscribe ",
            "StartTransientUnit c1.scope",
            "StartTransientUnit taken.scope",
            "ResetFailedUnit taken.scope",
            "StartTransientUnit taken.scope",
            "StartTransientUnit fails.scope",
            // The failed job's unit was made by that call: stopped (the fake fails that job
            // too, so no reset follows). taken.scope was not made here: not stopped.
            "StopUnit fails.scope",
            "StopUnit taken.scope",
            "ResetFailedUnit taken.scope",
            "StopUnit last.scope",
            "ResetFailedUnit last.scope",
        ]
    );
}

#[test]
fn signals_from_other_bus_peers_are_dropped_unread() {
    let d = Daemon::start();
    let fake = fake_systemd(&d.socket, &[]);
    let absent = d.socket.with_file_name("no-private-socket");
    let mut sd = Systemd::connect_at(&absent, &d.socket).unwrap();
    let me = sd.conn.unique_name.clone().unwrap();
    // Any local user on the system bus: unicast signals to berth's unique name.
    let mut hostile = Connection::open(&d.socket, true).unwrap();
    // A JobRemoved "done" for the job the fake systemd will return (job/1), as systemd's.
    let mut forged = job_removed(1, "fails.scope", "done");
    forged.destination = Some(me.clone());
    hostile.send(forged).unwrap();
    // A 4 MiB body: dropped after its header, never decoded.
    let mut big = job_removed(1, "fails.scope", "done");
    big.destination = Some(me.clone());
    big.body = vec![Value::Array("y".into(), vec![Value::Byte(0); 4 << 20])];
    hostile.send(big).unwrap();
    // A round trip, so that the daemon has queued both for us before our call.
    bus_call(&mut hostile, "GetId", vec![]).unwrap();
    let props = [("Delegate".to_string(), Value::Bool(true))];
    let e = sd
        .start_transient_unit("fails.scope", &props, Duration::from_secs(5))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "systemd: StartTransientUnit fails.scope: the job ended with result \"failed\""
    );
    // None of the forged signals was kept.
    assert!(
        sd.conn
            .signals
            .iter()
            .all(|m| m.sender != hostile.unique_name),
        "{:?}",
        sd.conn
            .signals
            .iter()
            .map(|m| &m.sender)
            .collect::<Vec<_>>()
    );
    sd.stop_unit("last.scope", Duration::from_secs(5)).unwrap();
    fake.join().unwrap();
}

#[test]
fn replies_over_the_size_cap_are_refused() {
    let d = Daemon::start();
    let mut peer = Connection::open(&d.socket, true).unwrap();
    let peer_name = peer.unique_name.clone().unwrap();
    let answer = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let raw = peer.receive_raw(deadline).unwrap().expect("the call");
            let m = Message::decode(&raw).unwrap();
            if m.kind != wire::METHOD_CALL || m.member.as_deref() != Some("Big") {
                continue;
            }
            let reply = Message {
                kind: wire::METHOD_RETURN,
                reply_serial: Some(m.serial),
                destination: m.sender.clone(),
                body: vec![Value::Array(
                    "y".into(),
                    vec![Value::Byte(0); MAX_REPLY_BODY + 1],
                )],
                ..Message::default()
            };
            peer.send(reply).unwrap();
            return;
        }
    });
    let mut c = Connection::open(&d.socket, true).unwrap();
    let e = c
        .call(&peer_name, "/big", "org.berth.Test", "Big", vec![], "")
        .unwrap_err();
    answer.join().unwrap();
    assert_eq!(
        e.to_string(),
        format!(
            "systemd: malformed D-Bus message: a reply of {} bytes (at most {MAX_REPLY_BODY})",
            MAX_REPLY_BODY + 5
        )
    );
}
