//! A fault-injecting TCP proxy for tests, on loopback only: it listens on 127.0.0.1 and
//! forwards to 127.0.0.1:<upstream port>, and the test changes its behaviour while it runs.
//!
//! - [`Mode::PassThrough`]: forwards both ways.
//! - [`Mode::Refuse`]: new connections are reset as soon as they are accepted (the client sees
//!   a connection error before the first byte); open connections keep working.
//! - [`Mode::Blackhole`]: new connections are accepted and not answered; open connections
//!   stop forwarding (a network partition). Switching back to pass-through (or latency) heals
//!   the partition: open connections resume, and connections accepted meanwhile then reach the
//!   server with what their client had sent, as retransmitted packets would. Switching to
//!   refuse resets the held ones.
//! - [`Mode::Latency`]: forwards both ways, each chunk delayed.
//! - [`Proxy::cut_all`]: resets every open connection, both sides (a server crash or a
//!   firewall dropping state), whatever the mode.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

const LOOPBACK: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    PassThrough,
    Refuse,
    Blackhole,
    Latency(Duration),
}

struct Shared {
    mode: watch::Sender<Mode>,
    /// Bumped by `cut_all`: every connection opened before the bump is reset.
    cuts: watch::Sender<u64>,
    accepted: AtomicUsize,
    open: AtomicUsize,
}

/// The proxy; stops (and resets its connections) when dropped.
pub struct Proxy {
    port: u16,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Proxy {
    /// Starts a proxy in front of `127.0.0.1:upstream_port`, in pass-through mode.
    pub async fn start(upstream_port: u16) -> Proxy {
        let listener = TcpListener::bind((LOOPBACK, 0))
            .await
            .expect("bind the proxy on loopback");
        let port = listener.local_addr().expect("proxy address").port();
        let shared = Arc::new(Shared {
            mode: watch::channel(Mode::PassThrough).0,
            cuts: watch::channel(0).0,
            accepted: AtomicUsize::new(0),
            open: AtomicUsize::new(0),
        });
        let upstream = SocketAddr::from((LOOPBACK, upstream_port));
        let task = tokio::spawn(accept_loop(listener, upstream, shared.clone()));
        Proxy { port, shared, task }
    }

    /// The port to point a configuration at (host 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn set_mode(&self, mode: Mode) {
        self.shared.mode.send_replace(mode);
    }

    pub fn mode(&self) -> Mode {
        *self.shared.mode.borrow()
    }

    /// Resets every connection open now, on both sides.
    pub fn cut_all(&self) {
        self.shared.cuts.send_modify(|n| *n += 1);
    }

    /// Connections accepted since the start (refused ones included).
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Connections being forwarded (or held silent) now.
    pub fn open_connections(&self) -> usize {
        self.shared.open.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.cut_all();
    }
}

async fn accept_loop(listener: TcpListener, upstream: SocketAddr, shared: Arc<Shared>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        let mode = *shared.mode.borrow();
        if mode == Mode::Refuse {
            reset(client);
            continue;
        }
        tokio::spawn(serve(client, upstream, shared.clone()));
    }
}

/// Closes with a TCP reset rather than a polite FIN.
fn reset(sock: TcpStream) {
    let _ = sock.set_zero_linger();
    drop(sock);
}

/// Counts a connection as open for as long as it lives.
struct OpenGuard(Arc<Shared>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn serve(mut client: TcpStream, upstream: SocketAddr, shared: Arc<Shared>) {
    shared.open.fetch_add(1, Ordering::SeqCst);
    let _open = OpenGuard(shared.clone());
    let mut cuts = shared.cuts.subscribe();
    cuts.borrow_and_update();

    // Blackhole: accept and do not answer while the partition lasts, keeping what the client
    // sends; it is delivered if the partition heals before the client gives up.
    let mut held = Vec::new();
    let mut mode = shared.mode.subscribe();
    let mut chunk = [0u8; 4096];
    let mut partitioned = false;
    loop {
        match *mode.borrow_and_update() {
            Mode::Blackhole => partitioned = true,
            Mode::Refuse if partitioned => {
                reset(client);
                return;
            }
            _ => break,
        }
        tokio::select! {
            r = client.read(&mut chunk) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => held.extend_from_slice(&chunk[..n]),
            },
            changed = mode.changed() => if changed.is_err() { return },
            _ = cuts.changed() => { reset(client); return; }
        }
    }

    let server = tokio::select! {
        s = TcpStream::connect(upstream) => s,
        _ = cuts.changed() => { reset(client); return; }
    };
    let Ok(mut server) = server else {
        reset(client);
        return;
    };
    if server.write_all(&held).await.is_err() {
        reset(client);
        return;
    }
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let up = forward(&mut cr, &mut sw, &shared);
    let down = forward(&mut sr, &mut cw, &shared);
    let cut = tokio::select! {
        _ = up => false,
        _ = down => false,
        _ = cuts.changed() => true,
    };
    if cut {
        if let (Ok(c), Ok(s)) = (cr.reunite(cw), sr.reunite(sw)) {
            reset(c);
            reset(s);
        }
    }
}

/// Copies one direction, honouring the mode before each chunk: waits while in blackhole
/// mode, sleeps in latency mode.
async fn forward(
    from: &mut tokio::net::tcp::OwnedReadHalf,
    to: &mut tokio::net::tcp::OwnedWriteHalf,
    shared: &Shared,
) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut mode = shared.mode.subscribe();
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        loop {
            let current = *mode.borrow_and_update();
            match current {
                Mode::Blackhole => {
                    if mode.changed().await.is_err() {
                        return;
                    }
                }
                Mode::Latency(d) => {
                    tokio::time::sleep(d).await;
                    break;
                }
                Mode::PassThrough | Mode::Refuse => break,
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
