//! The listener, the per-connection threads, routing, and the control endpoints.

use super::clock::MarketClock;
use super::data::Tape;
use super::fault::{Fault, Faults, Scenario};
use super::net::{self, Conn, Request, Response};
use super::session::Hub;
use super::{Counters, ExchangeConfig, ExchangeHandle, Stats, load};
use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// State every thread shares.
pub(crate) struct Shared {
    pub addr: SocketAddr,
    pub origin: String,
    pub ca_pem: Option<String>,
    pub cert_path: Option<PathBuf>,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub tape: Arc<Tape>,
    pub clock: MarketClock,
    pub key: String,
    pub secret: String,
    pub auth_timeout: Duration,
    pub scenario: Scenario,
    pub faults: Faults,
    pub counters: Counters,
    pub hub: Hub,
    pub broker: super::broker::Broker,
    pub stopping: AtomicBool,
    conns: Mutex<HashMap<u64, TcpStream>>,
    next_conn: AtomicU64,
}

impl Shared {
    pub fn inject(&self, fault: Fault) {
        self.faults.record(fault, self.clock.now_ns());
        match fault {
            Fault::Disconnect => self.hub.disconnect_all(),
            Fault::Stall { ms } => self.hub.stall_all(ms),
            _ => self.broker.inject(fault),
        }
    }

    pub fn stats(&self) -> Stats {
        let c = &self.counters;
        Stats {
            connections: load(&c.connections),
            http_requests: load(&c.http_requests),
            ws_sessions: load(&c.ws_sessions),
            live_sessions: self.hub.len() as u64,
            auth_ok: load(&c.auth_ok),
            auth_failed: load(&c.auth_failed),
            rejected_406: load(&c.rejected_406),
            rejected_429: load(&c.rejected_429),
            bars_published: load(&c.bars_published),
            frames_sent: load(&c.frames_sent),
            messages_sent: load(&c.messages_sent),
            faults: self.faults.counts().into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            broker_orders: load(&self.broker.counters.orders),
            broker_fills: load(&self.broker.counters.fills),
            broker_cancels: load(&self.broker.counters.cancels),
            broker_rejects: load(&self.broker.counters.rejects),
            broker_rate_limited: load(&self.broker.counters.rate_limited),
            trade_update_sessions: load(&self.broker.counters.sessions),
            events_sent: load(&self.broker.counters.events_sent),
            events_lost: load(&self.broker.counters.events_lost),
        }
    }

    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    pub fn stop(&self) {
        if self.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        // Wake the accept loop.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        self.hub.disconnect_all();
        self.broker.streams.disconnect_all();
        let conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        for c in conns.values() {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
        // The certificate is only good for this run.
        if let Some(p) = &self.cert_path {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn cert_dir(cfg: &ExchangeConfig) -> PathBuf {
    cfg.state_dir.clone().or_else(|| cfg.data.clone()).unwrap_or_else(std::env::temp_dir)
}

pub(crate) fn start(cfg: ExchangeConfig) -> io::Result<ExchangeHandle> {
    let tape = match (&cfg.tape, &cfg.data) {
        (Some(t), _) => Arc::clone(t),
        (None, Some(dir)) => Arc::new(Tape::open_dir(dir)?),
        (None, None) => Arc::new(Tape::builtin()?),
    };
    let first = tape.first_ns().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "the data has no bars"))?;
    if !(cfg.speed > 0.0 && cfg.speed.is_finite()) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "speed must be a positive number"));
    }
    let listener = TcpListener::bind(("127.0.0.1", cfg.port))?;
    let addr = listener.local_addr()?;
    let (ca_pem, cert_path, tls) = if cfg.plain {
        (None, None, None)
    } else {
        let certs = net::generate_certs()?;
        let dir = cert_dir(&cfg);
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("ringtape-exchange-{}.ca.pem", addr.port()));
        let tmp = path.with_extension("pem.tmp");
        std::fs::write(&tmp, &certs.ca_pem)?;
        std::fs::rename(&tmp, &path)?;
        (Some(certs.ca_pem), Some(path), Some(certs.config))
    };
    let origin = format!("{}://{addr}", if cfg.plain { "http" } else { "https" });
    let start_ns = cfg.start_ns.unwrap_or(first + 3_600_000_000_000);
    let broker = super::broker::Broker::new(&cfg.broker, &tape, start_ns);
    let shared = Arc::new(Shared {
        addr,
        origin,
        ca_pem,
        cert_path,
        tls,
        tape,
        clock: MarketClock::starting_now(start_ns, cfg.speed),
        key: cfg.key.clone(),
        secret: cfg.secret.clone(),
        auth_timeout: Duration::from_secs_f64(cfg.auth_timeout_s.max(0.001)),
        scenario: cfg.scenario.clone(),
        faults: Faults::default(),
        counters: Counters::default(),
        hub: Hub::default(),
        broker,
        stopping: AtomicBool::new(false),
        conns: Mutex::new(HashMap::new()),
        next_conn: AtomicU64::new(0),
    });
    let s = Arc::clone(&shared);
    let accept =
        std::thread::Builder::new().name("exchange-accept".into()).spawn(move || accept_loop(&s, &listener))?;
    let s = Arc::clone(&shared);
    let publisher =
        std::thread::Builder::new().name("exchange-publish".into()).spawn(move || super::publish::run(&s))?;
    let s = Arc::clone(&shared);
    let broker = std::thread::Builder::new().name("exchange-broker".into()).spawn(move || super::broker::run(&s))?;
    Ok(ExchangeHandle { shared, threads: vec![accept, publisher, broker] })
}

fn accept_loop(shared: &Arc<Shared>, listener: &TcpListener) {
    for tcp in listener.incoming() {
        if shared.stopping() {
            break;
        }
        let Ok(tcp) = tcp else { continue };
        shared.counters.connections.fetch_add(1, Ordering::Relaxed);
        let id = shared.next_conn.fetch_add(1, Ordering::Relaxed);
        if let Ok(c) = tcp.try_clone() {
            shared.conns.lock().unwrap_or_else(|e| e.into_inner()).insert(id, c);
        }
        let s = Arc::clone(shared);
        let spawned = std::thread::Builder::new().name(format!("exchange-conn-{id}")).spawn(move || {
            serve(&s, tcp);
            s.conns.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
        });
        if spawned.is_err() {
            shared.conns.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
        }
    }
}

fn serve(shared: &Arc<Shared>, tcp: TcpStream) {
    let _ = tcp.set_nodelay(true);
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(120)));
    let mut conn = match &shared.tls {
        Some(cfg) => match rustls::ServerConnection::new(Arc::clone(cfg)) {
            Ok(tls) => Conn::Tls(Box::new(rustls::StreamOwned::new(tls, tcp))),
            Err(_) => return,
        },
        None => Conn::Plain(tcp),
    };
    let mut buf = Vec::new();
    loop {
        let req = match net::read_request(&mut conn, &mut buf) {
            Ok(Some(r)) => r,
            _ => return,
        };
        if req.is_upgrade() && req.path == "/stream" {
            super::broker::stream::upgrade(shared, conn, &req, std::mem::take(&mut buf));
            return;
        }
        if req.is_upgrade() {
            super::session::upgrade(shared, conn, &req, std::mem::take(&mut buf));
            return;
        }
        shared.counters.http_requests.fetch_add(1, Ordering::Relaxed);
        if super::broker::rest::owns(&req.path) {
            let resp = super::broker::rest::handle(shared, &req);
            if super::broker::rest::write(&mut conn, &resp, req.wants_close()).is_err() || req.wants_close() {
                return;
            }
            continue;
        }
        let resp = route(shared, &req);
        if net::write_response(&mut conn, &resp, req.wants_close()).is_err() || req.wants_close() {
            return;
        }
    }
}

fn route(shared: &Shared, req: &Request) -> Response {
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/control/clock") => {
            let c = shared.clock;
            Response::json(
                200,
                format!(
                    "{{\"wall_start_ns\":{},\"market_start_ns\":{},\"speed\":{},\"market_now_ns\":{}}}",
                    c.wall_start_ns,
                    c.market_start_ns,
                    serde_json::to_string(&c.speed).unwrap_or_else(|_| "1".into()),
                    c.now_ns()
                ),
            )
        }
        ("GET", "/control/broker") => Response::json(
            200,
            serde_json::to_string(&shared.broker.snapshot(shared.clock.now_ns())).unwrap_or_default(),
        ),
        ("GET", "/control/stats") => Response::json(200, serde_json::to_string(&shared.stats()).unwrap_or_default()),
        ("POST", "/control/fault") => match serde_json::from_slice::<Fault>(&req.body) {
            Ok(f) => {
                shared.inject(f);
                Response::json(200, format!("{{\"ok\":true,\"kind\":\"{}\"}}", f.name()))
            }
            Err(e) => {
                Response::json(400, format!("{{\"ok\":false,\"error\":{}}}", super::wire::string(&e.to_string())))
            }
        },
        (_, p) if p.starts_with("/control/") => Response::json(404, "{\"message\":\"not found\"}".into()),
        _ => {
            if let Some(ms) = shared.faults.take_slow_rest() {
                std::thread::sleep(Duration::from_millis(ms));
            }
            if req.path == super::databento::PATH {
                return super::databento::handle(shared, req);
            }
            super::rest::handle(shared, req)
        }
    }
}
