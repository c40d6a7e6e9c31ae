//! One non-blocking websocket connection: mio TCP, an optional rustls client session, and
//! tungstenite framing on top, driven by [`Conn::poll_read`] from a feed thread's `mio::Poll`
//! loop.

use super::{CloseReason, ConnState, Connector, WsConfig, WsError};
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use rustls::ClientConfig;
use rustls::ClientConnection;
use rustls::pki_types::ServerName;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use tungstenite::client::IntoClientRequest;
use tungstenite::error::ProtocolError;
use tungstenite::handshake::HandshakeError;
use tungstenite::handshake::MidHandshake;
use tungstenite::handshake::client::ClientHandshake;
use tungstenite::{Message, WebSocket};

/// A rustls client session over a non-blocking mio socket, as a `Read + Write` byte stream that
/// returns `WouldBlock` instead of blocking (and drives the TLS handshake as it goes).
struct TlsStream {
    tls: ClientConnection,
    sock: TcpStream,
    eof: bool,
}

impl TlsStream {
    /// Write queued TLS records to the socket; `WouldBlock` if some are still queued.
    fn flush_tls(&mut self) -> io::Result<()> {
        while self.tls.wants_write() {
            if self.tls.write_tls(&mut self.sock)? == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
        }
        Ok(())
    }
}

impl Read for TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            // Plaintext already decrypted first; `Ok(0)` is a clean close_notify.
            match self.tls.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if self.eof {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            match self.tls.read_tls(&mut self.sock) {
                Ok(0) => self.eof = true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e), // WouldBlock: the socket is drained
            }
            // A bad certificate or a fatal alert ends here; the io::Error carries the
            // rustls::Error so the caller can name it.
            if let Err(e) = self.tls.process_new_packets() {
                let _ = self.flush_tls(); // best effort: tell the server why (alert)
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
            // Handshake messages (and plaintext queued before the handshake ended) go out now.
            match self.flush_tls() {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    }
}

impl Write for TlsStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Bound what rustls buffers: accept new plaintext only once earlier records left.
        self.flush_tls()?;
        let n = self.tls.writer().write(buf)?;
        match self.flush_tls() {
            Ok(()) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(n),
            Err(e) => Err(e),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tls.writer().flush()?;
        self.flush_tls()
    }
}

/// Plain TCP (loopback tests, `--plain`) or TLS.
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => &s.sock,
        }
    }
}

/// Where the connection is in its life.
enum Phase {
    /// The TCP connect is in flight.
    TcpConnecting(Stream),
    /// The TLS and websocket handshakes are in flight (resumed on readiness).
    Handshaking(MidHandshake<ClientHandshake<Stream>>),
    /// Frames flow.
    Open(Box<WebSocket<Stream>>),
    /// Gone (the socket is dropped, which also removes it from the `Poll`).
    Closed,
}

/// Bytes and frames seen by one connection.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ConnStats {
    /// Text and binary frames handed to the caller.
    pub frames: u64,
    /// Their payload bytes.
    pub bytes: u64,
    /// Control frames received (ping, pong, close).
    pub control_frames: u64,
    /// Pings this side sent.
    pub pings_sent: u64,
}

/// One websocket connection, non-blocking, registered with a `mio::Poll` under one token.
///
/// Drive it with [`Conn::poll_read`] whenever its token is ready and at least by
/// [`Conn::next_deadline_ns`] (the ping and dead-connection timers). It never reconnects by
/// itself; [`super::WsClient`] does.
pub struct Conn {
    url: String,
    phase: Phase,
    state: ConnState,
    cfg: WsConfig,
    started_ns: i64,
    last_rx_ns: i64,
    last_ping_ns: i64,
    peer_close: Option<Option<u16>>,
    opened: bool,
    stats: ConnStats,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").field("url", &self.url).field("state", &self.state).field("stats", &self.stats).finish()
    }
}

impl Conn {
    /// Start connecting to `url` (`wss://` through the connector's TLS config, `ws://` only
    /// with a plain connector). Resolves the host (blocking DNS: call it on the feed thread,
    /// never on a hot-path thread), opens a non-blocking TCP connect and registers it with
    /// `registry` under `token` (readable and writable, edge-triggered).
    ///
    /// Returns `Err` only for a configuration mistake (bad URL, scheme not matching the
    /// connector); a resolve or connect failure gives a `Conn` already
    /// [`ConnState::Closed`] with [`CloseReason::ConnectFailed`].
    pub fn connect(
        url: &str,
        connector: &Connector,
        cfg: &WsConfig,
        registry: &Registry,
        token: Token,
        now_ns: i64,
    ) -> Result<Conn, WsError> {
        let Target { host, port, tls } = Target::parse(url, connector)?;
        let mut conn = Conn {
            url: url.to_owned(),
            phase: Phase::Closed,
            state: ConnState::Connecting,
            cfg: cfg.clone(),
            started_ns: now_ns,
            last_rx_ns: now_ns,
            last_ping_ns: now_ns,
            peer_close: None,
            opened: false,
            stats: ConnStats::default(),
        };
        let addr = match resolve(&host, port) {
            Ok(a) => a,
            Err(e) => {
                conn.state = ConnState::Closed(CloseReason::ConnectFailed(format!("resolve {host}:{port}: {e}")));
                return Ok(conn);
            }
        };
        let mut sock = match TcpStream::connect(addr) {
            Ok(s) => s,
            Err(e) => {
                conn.state = ConnState::Closed(CloseReason::ConnectFailed(format!("connect {addr}: {e}")));
                return Ok(conn);
            }
        };
        if let Err(e) = registry.register(&mut sock, token, Interest::READABLE | Interest::WRITABLE) {
            conn.state = ConnState::Closed(CloseReason::Io(format!("register with poll: {e}")));
            return Ok(conn);
        }
        let stream = match tls {
            Some((cfg, name)) => match ClientConnection::new(cfg, name) {
                Ok(tls) => Stream::Tls(Box::new(TlsStream { tls, sock, eof: false })),
                Err(e) => {
                    conn.state = ConnState::Closed(CloseReason::Tls(e.to_string()));
                    return Ok(conn);
                }
            },
            None => Stream::Plain(sock),
        };
        conn.phase = Phase::TcpConnecting(stream);
        Ok(conn)
    }

    /// The URL this connection was opened for.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `Connecting`, `Open` or `Closed(reason)`.
    pub fn state(&self) -> &ConnState {
        &self.state
    }

    /// Whether the handshakes ever completed (also true once an open connection closed).
    pub fn was_opened(&self) -> bool {
        self.opened
    }

    /// Frames, bytes and pings so far.
    pub fn stats(&self) -> ConnStats {
        self.stats
    }

    /// When [`Conn::poll_read`] must run next even without readiness (ping due, dead-connection
    /// or connect deadline); `None` once closed.
    pub fn next_deadline_ns(&self) -> Option<i64> {
        match self.state {
            ConnState::Closed(_) => None,
            ConnState::Connecting => Some(self.started_ns.saturating_add(self.cfg.connect_timeout_ns)),
            ConnState::Open => Some(
                (self.last_ping_ns.saturating_add(self.cfg.ping_interval_ns))
                    .min(self.last_rx_ns.saturating_add(self.cfg.dead_after_ns)),
            ),
        }
    }

    /// Make progress: finish the connect and handshakes, read every available frame (until the
    /// socket would block, as edge-triggered readiness requires), hand each text or binary
    /// payload to `out` with its receive time from `clock` (ns), answer pings (tungstenite
    /// queues the pong), send our ping when due, flush pending writes, and close the connection
    /// when no frame at all arrived for `dead_after_ns`. Cheap to call spuriously.
    ///
    /// `out` must be quick (copy or decode and push into a ring): the socket reader must never
    /// be the slow consumer.
    pub fn poll_read(&mut self, clock: &dyn Fn() -> i64, out: &mut impl FnMut(&[u8], i64)) {
        if let Phase::TcpConnecting(_) = self.phase {
            self.poll_tcp_connect(clock());
        }
        if let Phase::Handshaking(_) = self.phase {
            self.poll_handshake(clock());
        }
        if let Phase::Open(_) = self.phase {
            self.poll_open(clock, out);
        }
        if let ConnState::Connecting = self.state {
            let now = clock();
            if now.saturating_sub(self.started_ns) >= self.cfg.connect_timeout_ns {
                self.close_with(CloseReason::ConnectTimeout);
            }
        }
    }

    /// Queue a text message and try to flush it. `Err(NotOpen)` unless open; a write that
    /// would block stays queued and goes out on a later `poll_read`.
    pub fn send_text(&mut self, text: &str) -> Result<(), WsError> {
        let Phase::Open(ws) = &mut self.phase else { return Err(WsError::NotOpen) };
        let res = ws.write(Message::text(text)).and_then(|()| ws.flush());
        match res {
            Ok(()) => Ok(()),
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(tungstenite::Error::WriteBufferFull(_)) => Err(WsError::WriteBufferFull),
            Err(e) => {
                let reason = classify(e);
                self.close_with(reason.clone());
                Err(WsError::Closed(reason))
            }
        }
    }

    /// Close from this side (a close frame if open, best effort), state `Closed(Local)`.
    pub fn close(&mut self) {
        if let Phase::Open(ws) = &mut self.phase {
            let _ = ws.close(None);
            let _ = ws.flush();
        }
        self.close_with(CloseReason::Local);
    }

    fn close_with(&mut self, reason: CloseReason) {
        if !matches!(self.state, ConnState::Closed(_)) {
            self.state = ConnState::Closed(reason);
        }
        self.phase = Phase::Closed;
    }

    fn poll_tcp_connect(&mut self, now: i64) {
        let Phase::TcpConnecting(stream) = &self.phase else { return };
        let tcp = stream.tcp();
        // The mio recipe: an error, or a peer address once connected (NotConnected = pending).
        match tcp.take_error() {
            Ok(Some(e)) | Err(e) => return self.close_with(CloseReason::ConnectFailed(e.to_string())),
            Ok(None) => {}
        }
        match tcp.peer_addr() {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
            Err(e) => return self.close_with(CloseReason::ConnectFailed(e.to_string())),
        }
        let _ = tcp.set_nodelay(true);
        let Phase::TcpConnecting(stream) = std::mem::replace(&mut self.phase, Phase::Closed) else { return };
        let request = match self.url.as_str().into_client_request() {
            Ok(r) => r,
            Err(e) => return self.close_with(CloseReason::Handshake(e.to_string())),
        };
        let res = tungstenite::client::client_with_config(request, stream, None);
        self.on_handshake(res, now);
    }

    fn poll_handshake(&mut self, now: i64) {
        let Phase::Handshaking(mid) = std::mem::replace(&mut self.phase, Phase::Closed) else { return };
        let res = mid.handshake();
        self.on_handshake(res, now);
    }

    fn on_handshake(
        &mut self,
        res: Result<
            (WebSocket<Stream>, tungstenite::handshake::client::Response),
            HandshakeError<ClientHandshake<Stream>>,
        >,
        now: i64,
    ) {
        match res {
            Ok((ws, _response)) => {
                self.phase = Phase::Open(Box::new(ws));
                self.state = ConnState::Open;
                self.opened = true;
                self.last_rx_ns = now;
                self.last_ping_ns = now;
            }
            Err(HandshakeError::Interrupted(mid)) => self.phase = Phase::Handshaking(mid),
            Err(HandshakeError::Failure(e)) => self.close_with(classify(e)),
        }
    }

    fn poll_open(&mut self, clock: &dyn Fn() -> i64, out: &mut impl FnMut(&[u8], i64)) {
        let Phase::Open(ws) = &mut self.phase else { return };
        let mut closed: Option<CloseReason> = None;
        loop {
            match ws.read() {
                Ok(msg) => {
                    let now = clock();
                    self.last_rx_ns = now;
                    match msg {
                        Message::Text(t) => {
                            self.stats.frames += 1;
                            self.stats.bytes += t.len() as u64;
                            out(t.as_bytes(), now);
                        }
                        Message::Binary(b) => {
                            self.stats.frames += 1;
                            self.stats.bytes += b.len() as u64;
                            out(&b, now);
                        }
                        Message::Close(frame) => {
                            self.stats.control_frames += 1;
                            // tungstenite queues our close reply; keep reading until it ends.
                            self.peer_close = Some(frame.map(|f| u16::from(f.code)));
                        }
                        Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => self.stats.control_frames += 1,
                    }
                }
                Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    closed = Some(match (self.peer_close, e) {
                        (Some(code), _) => CloseReason::PeerClosed(code),
                        (None, e) => classify(e),
                    });
                    break;
                }
            }
        }
        if let Some(reason) = closed {
            return self.close_with(reason);
        }
        let now = clock();
        if now.saturating_sub(self.last_rx_ns) >= self.cfg.dead_after_ns {
            return self.close_with(CloseReason::Dead { silent_ns: now - self.last_rx_ns });
        }
        if now.saturating_sub(self.last_ping_ns) >= self.cfg.ping_interval_ns {
            self.last_ping_ns = now;
            match ws.write(Message::Ping(Default::default())) {
                Ok(()) => self.stats.pings_sent += 1,
                Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => self.stats.pings_sent += 1,
                Err(tungstenite::Error::WriteBufferFull(_)) => {}
                Err(e) => return self.close_with(classify(e)),
            }
        }
        match ws.flush() {
            Ok(()) => {}
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => self.close_with(classify(e)),
        }
    }
}

/// What a URL and a connector say to connect to.
pub(super) struct Target {
    host: String,
    port: u16,
    tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
}

impl Target {
    /// Check a URL against the connector: `wss://` needs TLS, `ws://` a plain connector.
    pub(super) fn parse(url: &str, connector: &Connector) -> Result<Target, WsError> {
        let bad = || WsError::BadUrl(url.to_owned());
        let scheme = |why| WsError::Scheme { url: url.to_owned(), why };
        let uri: tungstenite::http::Uri = url.parse().map_err(|_| bad())?;
        let host = uri.host().ok_or_else(bad)?.trim_start_matches('[').trim_end_matches(']').to_owned();
        let tls = match (uri.scheme_str(), connector.tls_config()) {
            (Some("wss"), Some(cfg)) => Some((cfg.clone(), ServerName::try_from(host.clone()).map_err(|_| bad())?)),
            (Some("ws"), None) => None,
            (Some("wss"), None) => return Err(scheme("wss:// with a plain connector")),
            (Some("ws"), Some(_)) => return Err(scheme("ws:// needs an explicitly plain connector")),
            _ => return Err(scheme("the scheme must be ws:// or wss://")),
        };
        let port = uri.port_u16().unwrap_or(if tls.is_some() { 443 } else { 80 });
        Ok(Target { host, port, tls })
    }
}

/// The first IPv4 address of `host` (then any): local exchanges listen on 127.0.0.1.
fn resolve(host: &str, port: u16) -> io::Result<SocketAddr> {
    let addrs: Vec<SocketAddr> = (host, port).to_socket_addrs()?.collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))
}

/// Name why a connection ended, from tungstenite's error (TLS errors arrive inside `Io`).
fn classify(e: tungstenite::Error) -> CloseReason {
    match e {
        tungstenite::Error::Io(io) => {
            if let Some(tls) = io.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
                return CloseReason::Tls(tls.to_string());
            }
            match io.kind() {
                io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => {
                    CloseReason::Eof
                }
                _ => CloseReason::Io(io.to_string()),
            }
        }
        tungstenite::Error::Http(resp) => CloseReason::HttpStatus(resp.status().as_u16()),
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => CloseReason::PeerClosed(None),
        tungstenite::Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => CloseReason::Eof,
        tungstenite::Error::Protocol(p) => CloseReason::Protocol(p.to_string()),
        other => CloseReason::Protocol(other.to_string()),
    }
}
