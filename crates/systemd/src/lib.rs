//! A small D-Bus client for systemd's manager, enough for berth-run's `--systemd-cgroup`:
//! start a transient scope for a process, wait for its job, stop the scope.
//!
//! Hand-written on a std `UnixStream` (no zbus, no dbus-daemon needed): root talks to
//! systemd's private socket `/run/systemd/private` (what `systemctl` uses as root), and
//! falls back to the system bus `/run/dbus/system_bus_socket` (where it says `Hello` first
//! and asks for the `JobRemoved` signal with `AddMatch`). Authentication is `EXTERNAL` with
//! the caller's effective uid. The wire format is in [`wire`].
#![forbid(unsafe_code)]

pub mod wire;

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_kind::{HasKind, Kind};

pub use wire::{Message, Value};

/// systemd's private socket, root only, no bus daemon in between.
pub const PRIVATE_SOCKET: &str = "/run/systemd/private";
/// The system bus.
pub const SYSTEM_BUS: &str = "/run/dbus/system_bus_socket";

const SYSTEMD: &str = "org.freedesktop.systemd1";
const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("systemd: connecting to {path}")]
    Connect {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("systemd: authenticating on {path}: {why}")]
    Auth { path: PathBuf, why: String },
    #[error("systemd: {what}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("systemd: malformed D-Bus message: {0}")]
    Protocol(String),
    /// An error reply: `name` is the D-Bus error name, `message` systemd's text.
    #[error("systemd: {method}{}: {message}", on(unit))]
    Remote {
        method: String,
        unit: String,
        name: String,
        message: String,
    },
    #[error("systemd: {method}{}: the job ended with result {result:?}", on(unit))]
    Job {
        method: String,
        unit: String,
        result: String,
    },
    #[error("systemd: {method}{}: no answer within {secs}s", on(unit))]
    Timeout {
        method: String,
        unit: String,
        secs: u64,
    },
}

/// ` <unit>`, or nothing for calls that name no unit.
fn on(unit: &str) -> String {
    if unit.is_empty() {
        String::new()
    } else {
        format!(" {unit}")
    }
}

impl HasKind for Error {
    fn kind(&self) -> Kind {
        match self {
            Error::Connect { source, .. } | Error::Io { source, .. } => match source.kind() {
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => Kind::Unavailable,
                _ => Kind::of_io(source),
            },
            Error::Auth { .. } => Kind::PermissionDenied,
            Error::Protocol(_) => Kind::Internal,
            Error::Remote { name, .. } => match name.as_str() {
                "org.freedesktop.systemd1.UnitExists" => Kind::AlreadyExists,
                "org.freedesktop.systemd1.NoSuchUnit" => Kind::NotFound,
                "org.freedesktop.DBus.Error.AccessDenied"
                | "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired" => {
                    Kind::PermissionDenied
                }
                "org.freedesktop.DBus.Error.InvalidArgs"
                | "org.freedesktop.DBus.Error.PropertyReadOnly" => Kind::InvalidArgument,
                _ => Kind::Internal,
            },
            Error::Job { .. } => Kind::Internal,
            Error::Timeout { .. } => Kind::Unavailable,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// The largest method reply berth reads (systemd's replies to berth are a job path).
pub const MAX_REPLY_BODY: usize = 1 << 20;
/// The largest JobRemoved body berth reads (four short values).
const MAX_SIGNAL_BODY: usize = 64 << 10;
/// How many JobRemoved signals are kept while waiting for a reply; the oldest go first.
pub const MAX_KEPT_SIGNALS: usize = 256;
/// The timeout of connecting, of each call, and of a message once it has begun.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// One connection to a D-Bus peer (systemd itself, or a bus daemon).
pub struct Connection {
    stream: UnixStream,
    serial: u32,
    /// JobRemoved signals from systemd that arrived while waiting for a reply, oldest first,
    /// at most [`MAX_KEPT_SIGNALS`].
    signals: Vec<Message>,
    /// Our unique name on a bus (after Hello); None on a direct connection.
    pub unique_name: Option<String>,
    /// Whose signals are systemd's: on a bus, the unique name that owns
    /// `org.freedesktop.systemd1` (None until it is known: no signal is trusted then); on a
    /// direct connection the peer is systemd itself.
    systemd: Sender,
}

/// Who may send the signals a [`Connection`] keeps.
#[derive(Debug, Clone, PartialEq)]
enum Sender {
    /// The peer at the other end of the socket (systemd's private socket).
    Peer,
    /// This unique name on a bus; None: nobody yet.
    Bus(Option<String>),
}

impl Connection {
    /// Connects and authenticates; on a bus (`hello`), says Hello and keeps the unique name.
    pub fn open(path: &Path, hello: bool) -> Result<Connection> {
        let stream = connect(path).map_err(|source| Error::Connect {
            path: path.to_path_buf(),
            source,
        })?;
        let mut conn = Connection {
            stream,
            serial: 0,
            signals: Vec::new(),
            unique_name: None,
            systemd: if hello {
                Sender::Bus(None)
            } else {
                Sender::Peer
            },
        };
        conn.set_timeout(IO_TIMEOUT)?;
        conn.authenticate(path)?;
        if hello {
            let reply = conn.call(
                "org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus",
                "Hello",
                vec![],
                "",
            )?;
            conn.unique_name = reply.first().and_then(Value::as_str).map(str::to_string);
        }
        Ok(conn)
    }

    fn set_timeout(&self, t: Duration) -> Result<()> {
        self.stream
            .set_read_timeout(Some(t))
            .and_then(|()| self.stream.set_write_timeout(Some(t)))
            .map_err(|source| Error::Io {
                what: "setting the socket timeout".into(),
                source,
            })
    }

    /// The SASL exchange: NUL, `AUTH EXTERNAL <uid in hex>` and `BEGIN` in one write, as
    /// sd-bus clients pipeline it, then the server's `OK <guid>`.
    ///
    /// Regression (seen in a systemd 252 guest): sending `BEGIN` after reading `OK`, then
    /// the first call at once, let systemd read both in one go and leave the call unread in
    /// its buffer until more bytes came, so `Subscribe` hung for most `run`s.
    fn authenticate(&mut self, path: &Path) -> Result<()> {
        // The kernel checks this against the socket's credentials: the effective uid.
        let uid = rustix::process::geteuid().as_raw();
        let hex_uid = wire::hex(uid.to_string().as_bytes());
        let auth_err = |why: String| Error::Auth {
            path: path.to_path_buf(),
            why,
        };
        self.stream
            .write_all(format!("\0AUTH EXTERNAL {hex_uid}\r\nBEGIN\r\n").as_bytes())
            .map_err(|e| auth_err(format!("writing: {e}")))?;
        let mut line = Vec::new();
        let mut b = [0u8; 1];
        while !line.ends_with(b"\r\n") {
            match self.stream.read(&mut b) {
                Ok(1) => line.push(b[0]),
                Ok(_) => return Err(auth_err("the peer closed the connection".into())),
                Err(e) => return Err(auth_err(format!("reading: {e}"))),
            }
            if line.len() > 512 {
                return Err(auth_err("an answer line over 512 bytes".into()));
            }
        }
        let answer = String::from_utf8_lossy(&line).trim_end().to_string();
        if !answer.starts_with("OK ") {
            return Err(auth_err(format!("the server answered {answer:?}")));
        }
        Ok(())
    }

    /// Sends a message with the next serial; returns the serial.
    pub fn send(&mut self, mut m: Message) -> Result<u32> {
        self.serial += 1;
        m.serial = self.serial;
        self.stream
            .write_all(&m.encode())
            .map_err(|source| Error::Io {
                what: format!("sending {}", m.member.as_deref().unwrap_or("a message")),
                source,
            })?;
        Ok(m.serial)
    }

    /// Reads the next whole message, waiting until `deadline`.
    pub fn receive(&mut self, deadline: Instant) -> Result<Option<Message>> {
        match self.receive_raw(deadline)? {
            Some(buf) => Message::decode(&buf)
                .map(Some)
                .map_err(|e| Error::Protocol(e.0)),
            None => Ok(None),
        }
    }

    /// The bytes of the next whole message, or None at the deadline.
    fn receive_raw(&mut self, deadline: Instant) -> Result<Option<Vec<u8>>> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        self.set_timeout(left)?;
        let mut fixed = [0u8; 16];
        // Only the first byte waits for the deadline: once a message has begun, a timeout in
        // its middle would lose our place in the stream, so the rest gets the full 30 s.
        match self.stream.read_exact(&mut fixed[..1]) {
            Ok(()) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(None)
            }
            Err(source) => {
                return Err(Error::Io {
                    what: "reading a message".into(),
                    source,
                })
            }
        }
        self.set_timeout(IO_TIMEOUT)?;
        self.stream
            .read_exact(&mut fixed[1..])
            .map_err(|source| Error::Io {
                what: "reading a message".into(),
                source,
            })?;
        let total = Message::total_len(&fixed).map_err(|e| Error::Protocol(e.0))?;
        let mut buf = vec![0u8; total];
        buf[..16].copy_from_slice(&fixed);
        self.stream
            .read_exact(&mut buf[16..])
            .map_err(|source| Error::Io {
                what: "reading a message".into(),
                source,
            })?;
        Ok(Some(buf))
    }

    /// Calls a method and waits for its reply; signals that arrive meanwhile are kept.
    /// `unit` only names the object of the call in errors.
    pub fn call(
        &mut self,
        destination: &str,
        path: &str,
        interface: &str,
        member: &str,
        args: Vec<Value>,
        unit: &str,
    ) -> Result<Vec<Value>> {
        let serial = self.send(Message::method_call(
            destination,
            path,
            interface,
            member,
            args,
        ))?;
        let secs = IO_TIMEOUT.as_secs();
        let deadline = Instant::now() + IO_TIMEOUT;
        loop {
            let Some(m) = self.receive_wanted(deadline, Some(serial))? else {
                return Err(Error::Timeout {
                    method: member.into(),
                    unit: unit.into(),
                    secs,
                });
            };
            match m.kind {
                wire::SIGNAL => {
                    if self.signals.len() >= MAX_KEPT_SIGNALS {
                        self.signals.remove(0);
                    }
                    self.signals.push(m);
                }
                wire::ERROR => {
                    return Err(Error::Remote {
                        method: member.into(),
                        unit: unit.into(),
                        name: m.error_name.unwrap_or_default(),
                        message: m
                            .body
                            .first()
                            .and_then(Value::as_str)
                            .unwrap_or("(no message)")
                            .to_string(),
                    })
                }
                _ => return Ok(m.body),
            }
        }
    }

    /// The next message berth waits for, or None at the deadline: the reply to `serial`, or
    /// a JobRemoved signal from systemd. Everything else is dropped after its header, its
    /// body never decoded: on the system bus any local user can send berth unicast signals.
    fn receive_wanted(
        &mut self,
        deadline: Instant,
        serial: Option<u32>,
    ) -> Result<Option<Message>> {
        loop {
            let Some(raw) = self.receive_raw(deadline)? else {
                return Ok(None);
            };
            let header = Message::decode_header(&raw).map_err(|e| Error::Protocol(e.0))?;
            let m = &header.message;
            let is_reply = matches!(m.kind, wire::METHOD_RETURN | wire::ERROR)
                && m.reply_serial.is_some()
                && m.reply_serial == serial;
            if is_reply {
                if header.body_len > MAX_REPLY_BODY {
                    return Err(Error::Protocol(format!(
                        "a reply of {} bytes (at most {MAX_REPLY_BODY})",
                        header.body_len
                    )));
                }
                return header
                    .decode_body(&raw)
                    .map(Some)
                    .map_err(|e| Error::Protocol(e.0));
            }
            if self.is_job_removed(m) && header.body_len <= MAX_SIGNAL_BODY {
                // A signal that does not parse is dropped, not an error of the call.
                if let Ok(m) = header.decode_body(&raw) {
                    return Ok(Some(m));
                }
            }
        }
    }

    /// Whether a message header is systemd's JobRemoved signal.
    fn is_job_removed(&self, m: &Message) -> bool {
        let from_systemd = match &self.systemd {
            Sender::Peer => true,
            Sender::Bus(owner) => owner.is_some() && m.sender == *owner,
        };
        m.kind == wire::SIGNAL
            && from_systemd
            && m.path.as_deref() == Some(MANAGER_PATH)
            && m.interface.as_deref() == Some(MANAGER)
            && m.member.as_deref() == Some("JobRemoved")
    }

    /// The next signal (kept or new) that `want` accepts, or None at the deadline.
    pub fn wait_signal(
        &mut self,
        deadline: Instant,
        want: impl Fn(&Message) -> bool,
    ) -> Result<Option<Message>> {
        if let Some(i) = self.signals.iter().position(&want) {
            return Ok(Some(self.signals.remove(i)));
        }
        loop {
            let Some(m) = self.receive_wanted(deadline, None)? else {
                return Ok(None);
            };
            if want(&m) {
                return Ok(Some(m));
            }
        }
    }
}

/// Connects a Unix stream socket with [`IO_TIMEOUT`] as its send timeout, which also bounds
/// the connect (a listener whose backlog is full makes connect wait).
fn connect(path: &Path) -> io::Result<UnixStream> {
    use rustix::net::{sockopt, AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let fd = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?;
    sockopt::set_socket_timeout(&fd, sockopt::Timeout::Send, Some(IO_TIMEOUT))?;
    rustix::net::connect(&fd, &SocketAddrUnix::new(path)?)?;
    Ok(UnixStream::from(fd))
}

/// A unit property: name and value, as StartTransientUnit takes them (`(sv)`).
pub type Property = (String, Value);

/// systemd's manager, over one connection.
pub struct Systemd {
    conn: Connection,
}

impl Systemd {
    /// Connects to the private socket, or else the system bus, and subscribes to job signals.
    pub fn connect() -> Result<Systemd> {
        Systemd::connect_at(Path::new(PRIVATE_SOCKET), Path::new(SYSTEM_BUS))
    }

    pub fn connect_at(private: &Path, bus: &Path) -> Result<Systemd> {
        let conn = match Connection::open(private, false) {
            Ok(c) => c,
            Err(first) => {
                let Ok(mut c) = Connection::open(bus, true) else {
                    return Err(first);
                };
                // On a bus, signals reach us only through a match rule.
                c.call(
                    "org.freedesktop.DBus",
                    "/org/freedesktop/DBus",
                    "org.freedesktop.DBus",
                    "AddMatch",
                    vec![Value::str(
                        "type='signal',sender='org.freedesktop.systemd1',\
                         interface='org.freedesktop.systemd1.Manager',member='JobRemoved'",
                    )],
                    "",
                )?;
                // Whose signals are systemd's: the unique name owning its well-known one.
                let owner = c.call(
                    "org.freedesktop.DBus",
                    "/org/freedesktop/DBus",
                    "org.freedesktop.DBus",
                    "GetNameOwner",
                    vec![Value::str(SYSTEMD)],
                    "",
                )?;
                let Some(owner) = owner.first().and_then(Value::as_str) else {
                    return Err(Error::Protocol(
                        "GetNameOwner: the reply has no name".into(),
                    ));
                };
                c.systemd = Sender::Bus(Some(owner.to_string()));
                c
            }
        };
        let mut sd = Systemd { conn };
        sd.manager("Subscribe", vec![], "")?;
        Ok(sd)
    }

    fn manager(&mut self, member: &str, args: Vec<Value>, unit: &str) -> Result<Vec<Value>> {
        self.conn
            .call(SYSTEMD, MANAGER_PATH, MANAGER, member, args, unit)
    }

    /// StartTransientUnit(name, "replace", properties, []) and waits for its job. On
    /// `UnitExists` the unit may be a failed leftover: it is reset and the start tried once
    /// more, as runc does.
    ///
    /// When the job fails or times out, the unit this call created (systemd returned a job
    /// for it) is stopped, so that nothing is left half made. A unit that was not created
    /// here (an error reply, or no reply) is never stopped: it may be another container's.
    pub fn start_transient_unit(
        &mut self,
        name: &str,
        properties: &[Property],
        timeout: Duration,
    ) -> Result<()> {
        let props: Vec<Value> = properties
            .iter()
            .map(|(k, v)| Value::Struct(vec![Value::str(k), Value::variant(v.clone())]))
            .collect();
        let args = vec![
            Value::str(name),
            Value::str("replace"),
            Value::Array("(sv)".into(), props),
            Value::Array("(sa(sv))".into(), vec![]),
        ];
        let job = match self.manager("StartTransientUnit", args.clone(), name) {
            Err(Error::Remote { name: err, .. })
                if err == "org.freedesktop.systemd1.UnitExists" =>
            {
                let _ = self.reset_failed_unit(name);
                self.manager("StartTransientUnit", args, name)?
            }
            other => other?,
        };
        let waited = self.wait_job("StartTransientUnit", name, &job, timeout);
        if waited.is_err() {
            let _ = self.stop_unit(name, timeout);
        }
        waited
    }

    /// StopUnit(name, "replace") and waits for its job; a unit that is not loaded is
    /// already stopped. Then resets a failed state, so that the name is free again.
    pub fn stop_unit(&mut self, name: &str, timeout: Duration) -> Result<()> {
        match self.manager(
            "StopUnit",
            vec![Value::str(name), Value::str("replace")],
            name,
        ) {
            Ok(job) => self.wait_job("StopUnit", name, &job, timeout)?,
            Err(Error::Remote { name: err, .. })
                if err == "org.freedesktop.systemd1.NoSuchUnit" => {}
            Err(e) => return Err(e),
        }
        let _ = self.reset_failed_unit(name);
        Ok(())
    }

    /// ResetFailedUnit(name).
    pub fn reset_failed_unit(&mut self, name: &str) -> Result<()> {
        self.manager("ResetFailedUnit", vec![Value::str(name)], name)
            .map(drop)
    }

    /// SetUnitProperties(name, runtime=true, properties).
    pub fn set_unit_properties(&mut self, name: &str, properties: &[Property]) -> Result<()> {
        let props: Vec<Value> = properties
            .iter()
            .map(|(k, v)| Value::Struct(vec![Value::str(k), Value::variant(v.clone())]))
            .collect();
        self.manager(
            "SetUnitProperties",
            vec![
                Value::str(name),
                Value::Bool(true),
                Value::Array("(sv)".into(), props),
            ],
            name,
        )
        .map(drop)
    }

    /// Waits for `JobRemoved(id, job, unit, result)` of the job a call returned.
    fn wait_job(
        &mut self,
        method: &str,
        unit: &str,
        reply: &[Value],
        timeout: Duration,
    ) -> Result<()> {
        let Some(job) = reply.first().and_then(Value::as_str).map(str::to_string) else {
            return Err(Error::Protocol(format!(
                "{method} {unit}: the reply has no job path"
            )));
        };
        let deadline = Instant::now() + timeout;
        let signal = self.conn.wait_signal(deadline, |m| {
            m.member.as_deref() == Some("JobRemoved")
                && m.body.get(1).and_then(Value::as_str) == Some(job.as_str())
        })?;
        let Some(signal) = signal else {
            return Err(Error::Timeout {
                method: method.into(),
                unit: unit.into(),
                secs: timeout.as_secs(),
            });
        };
        let result = signal.body.get(3).and_then(Value::as_str).unwrap_or("");
        if result != "done" {
            return Err(Error::Job {
                method: method.into(),
                unit: unit.into(),
                result: result.into(),
            });
        }
        Ok(())
    }
}

/// A cpuset list (`0-3,7`) as systemd's AllowedCPUs/AllowedMemoryNodes byte array: bit N of
/// byte N/8 is CPU N (the bitmask is little-endian by byte, as systemd reads it).
pub fn range_to_bits(list: &str) -> std::result::Result<Vec<u8>, String> {
    let mut bits: Vec<u8> = Vec::new();
    for part in list.trim().split(',').map(str::trim) {
        if part.is_empty() {
            continue;
        }
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let parse = |s: &str| {
            s.parse::<usize>()
                .map_err(|_| format!("{list:?}: {part:?} is not a number or a range"))
        };
        let (lo, hi) = (parse(lo)?, parse(hi)?);
        if lo > hi || hi >= 1 << 16 {
            return Err(format!("{list:?}: {part:?} is not a valid range"));
        }
        for n in lo..=hi {
            if bits.len() <= n / 8 {
                bits.resize(n / 8 + 1, 0);
            }
            bits[n / 8] |= 1 << (n % 8);
        }
    }
    Ok(bits)
}

#[cfg(test)]
mod tests;
