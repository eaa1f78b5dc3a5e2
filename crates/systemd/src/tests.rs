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
        let child = Command::new("dbus-daemon")
            .arg("--session")
            .arg("--nofork")
            .arg(format!("--address=unix:path={}", socket.display()))
            .stdout(Stdio::null())
            .spawn()
            .expect("dbus-daemon (Debian package dbus-daemon) must be installed");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "dbus-daemon did not listen");
            std::thread::sleep(Duration::from_millis(5));
        }
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
                    signal = Some(Message {
                        kind: wire::SIGNAL,
                        path: Some(MANAGER_PATH.into()),
                        interface: Some(MANAGER.into()),
                        member: Some("JobRemoved".into()),
                        body: vec![
                            Value::U32(job),
                            Value::Path(path),
                            Value::str(&unit),
                            Value::str(result),
                        ],
                        ..Message::default()
                    });
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

#[test]
fn scopes_start_and_stop_through_the_manager_and_its_job_signals() {
    let d = Daemon::start();
    let fake = fake_systemd(&d.socket, &["taken.scope"]);
    let absent = d.socket.with_file_name("no-private-socket");
    let mut sd = Systemd::connect_at(&absent, &d.socket).unwrap();
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
            "StopUnit taken.scope",
            "ResetFailedUnit taken.scope",
            "StopUnit last.scope",
            "ResetFailedUnit last.scope",
        ]
    );
}
