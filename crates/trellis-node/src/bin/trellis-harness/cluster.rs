//! The sites under test: real `trellis run` processes on loopback, set up
//! with `trellis init` and `trellis cert`, each behind its UDP proxy.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use trellis_node::client::Client;

/// The `trellis` binary: `TRELLIS_BIN`, or next to this harness.
pub fn trellis_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("TRELLIS_BIN") {
        return Ok(PathBuf::from(path));
    }
    let me = std::env::current_exe().context("cannot find the harness's own path")?;
    let sibling = me.with_file_name("trellis");
    if sibling.exists() {
        Ok(sibling)
    } else {
        bail!(
            "no trellis binary next to {}; build it (cargo build --bin trellis) or set TRELLIS_BIN",
            me.display()
        )
    }
}

/// Runs a setup subcommand to completion.
fn setup(binary: &Path, args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new(binary)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", binary.display()))?;
    if !output.status.success() {
        bail!(
            "trellis {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// One site.
pub struct Site {
    /// Its name (`site-0`, …).
    pub name: String,
    /// Its replica id, 16 hex digits.
    pub id: String,
    config: PathBuf,
    root: PathBuf,
    /// Where its QUIC endpoint really listens.
    pub real: SocketAddr,
    /// Its API port.
    pub api_port: u16,
    process: Option<Child>,
    starts: u32,
    binary: PathBuf,
}

impl Site {
    /// The API's base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.api_port)
    }

    /// A client for the API with `timeout` per request.
    pub fn client(&self, timeout: Duration) -> Client {
        Client::new(&self.url(), None, timeout)
    }

    /// Starts `trellis run` and waits until it answers `/health`.
    pub fn start(&mut self) -> anyhow::Result<()> {
        self.starts += 1;
        let log = std::fs::File::create(self.root.join(format!("run-{}.log", self.starts)))?;
        let child = Command::new(&self.binary)
            .args(["run", "--config"])
            .arg(&self.config)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", self.name))?;
        self.process = Some(child);
        let client = self.client(Duration::from_secs(2));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(process) = self.process.as_mut() {
                if let Some(status) = process.try_wait()? {
                    self.process = None;
                    bail!(
                        "{} exited with {status} while starting; see {}",
                        self.name,
                        self.root.display()
                    );
                }
            }
            // Any answer means the API is up (503 is fine: peers may be down).
            if client.send("GET", "/health", None).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{} did not answer within 60 s", self.name);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// kill -9, and reaps the process.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
    }

    /// Sends SIGSTOP or SIGCONT.
    pub fn signal(&self, signal: &str) {
        if let Some(process) = &self.process {
            let _ = Command::new("kill")
                .args([format!("-{signal}"), process.id().to_string()])
                .status();
        }
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        self.signal("CONT");
        self.kill();
    }
}

/// Free loopback ports: `n` TCP and `2n` UDP, held together so they
/// differ, then released.
fn free_ports(n: usize) -> anyhow::Result<(Vec<u16>, Vec<UdpSocket>)> {
    let tcp: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()?;
    // The proxies' public sockets stay bound: they are handed over.
    let udp: Vec<UdpSocket> = (0..2 * n)
        .map(|_| UdpSocket::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()?;
    let ports = tcp
        .iter()
        .map(|s| s.local_addr().map(|a| a.port()))
        .collect::<Result<_, _>>()?;
    Ok((ports, udp))
}

/// `n` sites set up in `dir`, not started, and the proxies' public
/// sockets (site `i`'s at index `i`).
pub fn create(dir: &Path, n: usize, window: &str) -> anyhow::Result<(Vec<Site>, Vec<UdpSocket>)> {
    let binary = trellis_binary()?;
    let ca = dir.join("ca");
    setup(
        &binary,
        &[
            "cert",
            "ca",
            "--out",
            &ca.display().to_string(),
            "--cluster",
            "harness",
        ],
    )?;
    let (api_ports, mut udp) = free_ports(n)?;
    let proxies: Vec<UdpSocket> = udp.drain(..n).collect();
    let reals: Vec<SocketAddr> = udp
        .iter()
        .map(UdpSocket::local_addr)
        .collect::<Result<_, _>>()?;
    // Release the sites' own ports for them to bind.
    drop(udp);
    let public: Vec<SocketAddr> = proxies
        .iter()
        .map(UdpSocket::local_addr)
        .collect::<Result<_, _>>()?;
    let mut ids = Vec::new();
    for i in 0..n {
        let data = dir.join(format!("site-{i}")).join("data");
        let data_text = data.display().to_string();
        let name = format!("site-{i}");
        let out = setup(&binary, &["init", "--data", &data_text, "--name", &name])?;
        let id = out
            .split("replica ")
            .nth(1)
            .and_then(|rest| rest.get(..16))
            .context("trellis init did not print the replica id")?
            .to_owned();
        setup(
            &binary,
            &[
                "cert",
                "node",
                "--ca-dir",
                &ca.display().to_string(),
                "--data",
                &data_text,
            ],
        )?;
        ids.push(id);
    }
    let voters: Vec<String> = ids
        .iter()
        .zip(&public)
        .map(|(id, addr)| format!("\"{id}@{addr}\""))
        .collect();
    let mut sites = Vec::new();
    for i in 0..n {
        let root = dir.join(format!("site-{i}"));
        let seeds: Vec<String> = (0..n)
            .filter(|j| *j != i)
            .map(|j| format!("\"{}\"", public[j]))
            .collect();
        let config = root.join("trellis.toml");
        std::fs::write(
            &config,
            format!(
                "data_dir = {data:?}\n\n[api]\nlisten = \"127.0.0.1:{api}\"\n\n[peer]\nlisten = \"{real}\"\n\
                 advertise = \"{public}\"\nseeds = [{seeds}]\nreconcile_interval = \"300ms\"\n\n\
                 [counter]\nvoters = [{voters}]\nrequest_timeout = \"3s\"\n\n[consistency]\nwindow = \"{window}\"\n",
                data = root.join("data").display().to_string(),
                api = api_ports[i],
                real = reals[i],
                public = public[i],
                seeds = seeds.join(", "),
                voters = voters.join(", "),
            ),
        )?;
        sites.push(Site {
            name: format!("site-{i}"),
            id: ids[i].clone(),
            config,
            root,
            real: reals[i],
            api_port: api_ports[i],
            process: None,
            starts: 0,
            binary: binary.clone(),
        });
    }
    Ok((sites, proxies))
}
