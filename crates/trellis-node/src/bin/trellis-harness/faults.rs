//! The faults, drawn from a seeded generator: kill -9 and restart, pauses
//! (SIGSTOP) longer than the request timeouts, full and one-way
//! partitions, and bad weather (loss, duplication, delay) on the links;
//! plus one partition longer than the consistency window, during which
//! the cut-off site's `/health` must turn 503 naming a peer, and after
//! which it must recover.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::RngExt;

use crate::cluster::Site;
use crate::proxy::{LinkRules, Network};

/// What the faults did and what was seen.
#[derive(Debug)]
pub struct FaultLog {
    /// When the run started; events are timed from it.
    started: Instant,
    /// Faults injected, by kind.
    pub counts: BTreeMap<&'static str, u64>,
    /// One line per fault, in order.
    pub events: Vec<String>,
    /// Problems found while injecting (a site that would not restart, a
    /// health check that never turned).
    pub violations: Vec<String>,
}

impl FaultLog {
    /// An empty log for a run that started at `started`.
    pub fn new(started: Instant) -> Self {
        FaultLog {
            started,
            counts: BTreeMap::new(),
            events: Vec::new(),
            violations: Vec::new(),
        }
    }

    fn note(&mut self, kind: &'static str, what: String) {
        *self.counts.entry(kind).or_default() += 1;
        self.event(what);
    }

    fn event(&mut self, what: String) {
        self.events.push(format!(
            "{:>6.1}s {what}",
            self.started.elapsed().as_secs_f64()
        ));
    }
}

fn isolate(network: &Network, site: usize, sites: usize, blocked: bool) {
    for other in (0..sites).filter(|o| *o != site) {
        let rules = LinkRules {
            blocked,
            ..LinkRules::default()
        };
        network.set(site, other, rules);
        network.set(other, site, rules);
    }
}

/// Injects random faults until `until`, healing after each.
pub fn random_faults(
    sites: &mut [Site],
    network: &Network,
    rng: &mut SmallRng,
    until: Instant,
    log: &mut FaultLog,
) {
    let n = sites.len();
    while Instant::now() + Duration::from_secs(8) < until {
        let mut site = rng.random_range(0..n);
        let hold = Duration::from_millis(rng.random_range(2_000..6_000));
        match rng.random_range(0..5) {
            0 => {
                // Half the kills go to the counter group's leader.
                let leader = counter_leader(sites);
                if let (true, Some(leader)) = (rng.random_bool(0.5), leader) {
                    site = leader;
                }
                let role = if leader == Some(site) {
                    " (the counter leader)"
                } else {
                    ""
                };
                log.note(
                    "kill -9",
                    format!("kill -9 {}{role} for {hold:?}", sites[site].name),
                );
                sites[site].kill();
                std::thread::sleep(hold);
                if let Err(err) = sites[site].start() {
                    log.violations
                        .push(format!("{} did not restart: {err}", sites[site].name));
                }
            }
            1 => {
                let hold = hold + Duration::from_secs(2);
                log.note(
                    "pause",
                    format!("SIGSTOP {} for {hold:?}", sites[site].name),
                );
                sites[site].signal("STOP");
                std::thread::sleep(hold);
                sites[site].signal("CONT");
            }
            2 => {
                log.note(
                    "partition",
                    format!("isolate {} for {hold:?}", sites[site].name),
                );
                isolate(network, site, n, true);
                std::thread::sleep(hold);
                network.heal();
            }
            3 => {
                let to = (site + 1 + rng.random_range(0..n - 1)) % n;
                log.note(
                    "one-way partition",
                    format!(
                        "drop {} → {} for {hold:?}",
                        sites[site].name, sites[to].name
                    ),
                );
                network.set(
                    site,
                    to,
                    LinkRules {
                        blocked: true,
                        ..LinkRules::default()
                    },
                );
                std::thread::sleep(hold);
                network.heal();
            }
            _ => {
                let rules = LinkRules {
                    blocked: false,
                    loss: rng.random_range(0.0..0.2),
                    duplicate: rng.random_range(0.0..0.1),
                    delay_ms: rng.random_range(0..30),
                };
                log.note(
                    "weather",
                    format!(
                        "every link: {:.0}% loss, {:.0}% duplicates, up to {} ms delay, for {hold:?}",
                        rules.loss * 100.0,
                        rules.duplicate * 100.0,
                        rules.delay_ms
                    ),
                );
                for from in 0..n {
                    for to in (0..n).filter(|t| *t != from) {
                        network.set(from, to, rules);
                    }
                }
                std::thread::sleep(hold);
                network.heal();
            }
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(500..1_500)));
    }
}

/// The site leading the counter group, as the first site that answers
/// sees it.
fn counter_leader(sites: &[Site]) -> Option<usize> {
    sites.iter().find_map(|site| {
        let status = site
            .client(Duration::from_secs(1))
            .json("GET", "/v1/status", None)
            .ok()?;
        let leader = status["counters"]["leader"].as_str()?.to_owned();
        sites.iter().position(|s| s.id == leader)
    })
}

/// Cuts `site` off for longer than the consistency `window`: its
/// `/health` must turn 503 naming a peer while the partition lasts, and
/// 200 again within 30 s of healing.
pub fn window_partition(
    sites: &[Site],
    network: &Network,
    site: usize,
    window: Duration,
    log: &mut FaultLog,
) {
    let started = Instant::now();
    let client = sites[site].client(Duration::from_secs(2));
    let hold = window + Duration::from_secs(4);
    log.note(
        "window partition",
        format!("isolate {} for {hold:?}", sites[site].name),
    );
    isolate(network, site, sites.len(), true);
    let mut reported = false;
    while started.elapsed() < hold {
        if let Ok(answer) = client.send("GET", "/health", None) {
            reported |= answer.status == 503
                && answer.body.contains("site-")
                && answer.body.contains("window");
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    network.heal();
    if !reported {
        log.violations.push(format!(
            "{}'s /health never reported a peer beyond the window during a {hold:?} partition",
            sites[site].name
        ));
    }
    let healed = Instant::now();
    loop {
        if client
            .send("GET", "/health", None)
            .is_ok_and(|answer| answer.status == 200)
        {
            let recovered = format!(
                "{}'s /health recovered {:.1} s after the heal",
                sites[site].name,
                healed.elapsed().as_secs_f64()
            );
            log.event(recovered);
            return;
        }
        if healed.elapsed() > Duration::from_secs(30) {
            log.violations.push(format!(
                "{}'s /health did not recover within 30 s of the heal",
                sites[site].name
            ));
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
