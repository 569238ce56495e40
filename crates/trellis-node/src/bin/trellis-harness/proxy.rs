//! A userspace UDP proxy in front of each site, so that faults need no
//! root: every site advertises its proxy's address, and all QUIC traffic
//! to it passes through the proxy, which knows each datagram's link
//! (which site sent it, which receives it) and applies that link's rules:
//! blocked (a partition, possibly one-way), loss, delay and duplication.
//!
//! The proxy for site `j` listens on its public address. A datagram from
//! site `i`'s own UDP address is link `i → j`; it is forwarded to `j`
//! from an upstream socket kept for `i`, so `j` sees one stable peer
//! address per client. Datagrams `j` sends back on that socket are link
//! `j → i`, forwarded to `i` from the public address.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use tokio::net::UdpSocket;

/// The rules of one directed link.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LinkRules {
    /// Every datagram is dropped.
    pub blocked: bool,
    /// Fraction of datagrams dropped.
    pub loss: f64,
    /// Fraction of datagrams sent twice.
    pub duplicate: f64,
    /// Extra delay, up to this many milliseconds (random per datagram,
    /// which also reorders).
    pub delay_ms: u64,
}

/// The rules of every link, shared by all proxies; `links[i][j]` is
/// `i → j`.
#[derive(Debug)]
pub struct Network {
    links: Mutex<Vec<Vec<LinkRules>>>,
    /// Datagrams each proxy dropped, forwarded and duplicated.
    pub counts: Mutex<Counts>,
}

/// What the proxies did.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counts {
    /// Datagrams forwarded.
    pub forwarded: u64,
    /// Datagrams dropped by a partition or by loss.
    pub dropped: u64,
    /// Extra copies sent.
    pub duplicated: u64,
}

impl Network {
    /// `sites` sites, every link healthy.
    pub fn new(sites: usize) -> Arc<Network> {
        Arc::new(Network {
            links: Mutex::new(vec![vec![LinkRules::default(); sites]; sites]),
            counts: Mutex::new(Counts::default()),
        })
    }

    /// Changes the rules of `from → to`.
    pub fn set(&self, from: usize, to: usize, rules: LinkRules) {
        self.links.lock().unwrap_or_else(PoisonError::into_inner)[from][to] = rules;
    }

    /// Every link healthy again.
    pub fn heal(&self) {
        for row in self
            .links
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter_mut()
        {
            row.fill(LinkRules::default());
        }
    }

    fn rules(&self, from: usize, to: usize) -> LinkRules {
        self.links.lock().unwrap_or_else(PoisonError::into_inner)[from][to]
    }

    fn count(&self, update: impl FnOnce(&mut Counts)) {
        update(&mut self.counts.lock().unwrap_or_else(PoisonError::into_inner));
    }
}

/// Sends `datagram` from `socket` to `to` under `rules`: maybe not at all,
/// maybe late, maybe twice.
fn forward(
    network: &Arc<Network>,
    rules: LinkRules,
    rng: &mut SmallRng,
    socket: &Arc<UdpSocket>,
    to: SocketAddr,
    datagram: Vec<u8>,
) {
    if rules.blocked || rng.random_bool(rules.loss.clamp(0.0, 1.0)) {
        network.count(|c| c.dropped += 1);
        return;
    }
    let copies = if rng.random_bool(rules.duplicate.clamp(0.0, 1.0)) {
        2
    } else {
        1
    };
    network.count(|c| {
        c.forwarded += 1;
        c.duplicated += copies - 1;
    });
    let delay = if rules.delay_ms == 0 {
        0
    } else {
        rng.random_range(0..=rules.delay_ms)
    };
    if delay == 0 {
        for _ in 0..copies {
            // A full socket buffer is loss too; QUIC recovers.
            let _ = socket.try_send_to(&datagram, to);
        }
        return;
    }
    let socket = Arc::clone(socket);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(delay)).await;
        for _ in 0..copies {
            let _ = socket.send_to(&datagram, to).await;
        }
    });
}

/// Starts the proxy in front of site `me`: public address `public`
/// (already bound), the site's real address `site`, and every site's
/// real address (to tell links apart).
pub async fn run(
    me: usize,
    public: std::net::UdpSocket,
    site: SocketAddr,
    sites: Vec<SocketAddr>,
    network: Arc<Network>,
    seed: u64,
) -> std::io::Result<()> {
    public.set_nonblocking(true)?;
    let public = Arc::new(UdpSocket::from_std(public)?);
    let upstreams: Arc<Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>> = Arc::default();
    let mut rng = SmallRng::seed_from_u64(seed ^ me as u64);
    let mut buffer = vec![0u8; 65_536];
    loop {
        let (len, client) = public.recv_from(&mut buffer).await?;
        let Some(from) = sites.iter().position(|addr| *addr == client) else {
            // Not a site of the cluster: not our business.
            continue;
        };
        let upstream = {
            let existing = upstreams
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&client)
                .cloned();
            match existing {
                Some(socket) => socket,
                None => {
                    let socket = Arc::new(UdpSocket::bind(("127.0.0.1", 0)).await?);
                    upstreams
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(client, Arc::clone(&socket));
                    tokio::spawn(replies(
                        me,
                        from,
                        (Arc::clone(&socket), site),
                        Arc::clone(&public),
                        client,
                        Arc::clone(&network),
                        seed,
                    ));
                    socket
                }
            }
        };
        let rules = network.rules(from, me);
        forward(
            &network,
            rules,
            &mut rng,
            &upstream,
            site,
            buffer[..len].to_vec(),
        );
    }
}

/// Carries the site's answers to client `from` (link `me → from`).
async fn replies(
    me: usize,
    from: usize,
    (upstream, site): (Arc<UdpSocket>, SocketAddr),
    public: Arc<UdpSocket>,
    client: SocketAddr,
    network: Arc<Network>,
    seed: u64,
) {
    let mut rng = SmallRng::seed_from_u64(seed ^ ((me as u64) << 32) ^ from as u64);
    let mut buffer = vec![0u8; 65_536];
    while let Ok((len, sender)) = upstream.recv_from(&mut buffer).await {
        if sender != site {
            continue;
        }
        let rules = network.rules(me, from);
        forward(
            &network,
            rules,
            &mut rng,
            &public,
            client,
            buffer[..len].to_vec(),
        );
    }
}
