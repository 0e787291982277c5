//! HAProxy (from Debian) as the sidecar between servicemocks in tests: one
//! frontend on a loopback port (HTTP/1.1 and h2c), one backend speaking h2
//! to its servers, with weights, retries, timeouts and `/ready` checks.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use servicemock::config::Settings;
use servicemock::mesh::Mesh;

/// A servicemock named `name` reporting `version`, with `/control` on.
pub async fn replica(name: &str, version: &str) -> Mesh {
    let mut options = super::options(Settings {
        control: true,
        ..Settings::default()
    });
    options.version = version.to_owned();
    Mesh::start(&[name.to_owned()], options)
        .await
        .expect("replica starts")
}

use super::free_port;

/// How HAProxy treats the upstream servers of its one backend.
#[derive(Default)]
pub struct Proxy<'a> {
    /// Upstream servers and their weights.
    pub servers: &'a [(SocketAddr, u32)],
    /// `retry-on 503` with this many retries (3 attempts: 2).
    pub retries: Option<u32>,
    /// `timeout server`, in milliseconds (default 10 s).
    pub server_timeout_ms: Option<u64>,
    /// Health-check `GET /ready` every 100 ms.
    pub check_ready: bool,
    /// `mode tcp`: balance connections, not requests (an Envoy TCP
    /// proxy's split); the servers are raw TCP ports.
    pub tcp: bool,
    /// A second frontend to the same backend that appends `-shadow` to
    /// the host of the `Host` header, as Envoy does to the copy a `mirror`
    /// route sends (HAProxy has no mirroring of its own).
    pub shadow: bool,
}

/// HAProxy on a loopback port, stopped when dropped.
pub struct HaProxy {
    child: Child,
    pub addr: SocketAddr,
    /// The shadow frontend, with [`Proxy::shadow`].
    pub shadow: Option<SocketAddr>,
    _dir: TempDir,
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A directory removed when dropped.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Proxy<'_> {
    /// The configuration: one frontend (HTTP/1.1 and h2c on one port, as
    /// HAProxy tells them apart), one backend speaking h2 to the servers.
    fn config(&self, port: u16, shadow_port: u16) -> String {
        if self.tcp {
            let mut backend = String::from("  mode tcp\n  balance roundrobin\n");
            for (i, (addr, weight)) in self.servers.iter().enumerate() {
                backend.push_str(&format!("  server s{i} {addr} weight {weight}\n"));
            }
            return format!(
                "global\n  maxconn 512\n\
                 defaults\n  mode tcp\n  timeout connect 1s\n  timeout client 30s\n  timeout server 30s\n\
                 frontend fe\n  bind 127.0.0.1:{port}\n  default_backend be\n\
                 backend be\n{backend}"
            );
        }
        let mut backend = String::from("  balance roundrobin\n");
        // As Envoy does: a request id for requests that come without one,
        // kept by every retry.
        backend.push_str(
            "  http-request set-header x-request-id %[uuid] unless { req.hdr(x-request-id) -m found }\n",
        );
        if let Some(retries) = self.retries {
            backend.push_str(&format!(
                "  retry-on 503\n  retries {retries}\n  option redispatch 0\n"
            ));
        }
        if self.check_ready {
            backend.push_str("  option httpchk GET /ready\n");
        }
        for (i, (addr, weight)) in self.servers.iter().enumerate() {
            let check = if self.check_ready {
                " check inter 100ms fall 1 rise 1"
            } else {
                ""
            };
            backend.push_str(&format!(
                "  server s{i} {addr} proto h2 weight {weight}{check}\n"
            ));
        }
        let shadow = if self.shadow {
            format!(
                "frontend shadow\n  bind 127.0.0.1:{shadow_port}\n\
                 \x20 http-request set-header host %[req.hdr(host),regsub(:,-shadow:)]\n\
                 \x20 default_backend be\n"
            )
        } else {
            String::new()
        };
        format!(
            "global\n  maxconn 512\n\
             defaults\n  mode http\n  timeout connect 1s\n  timeout client 30s\n  timeout server {}ms\n  timeout check 1s\n\
             frontend fe\n  bind 127.0.0.1:{port}\n  default_backend be\n\
             {shadow}\
             backend be\n{backend}",
            self.server_timeout_ms.unwrap_or(10_000)
        )
    }

    /// Starts HAProxy in the foreground and waits until it listens.
    pub async fn start(&self) -> HaProxy {
        // The port is free when chosen but could be taken before HAProxy
        // binds it: a HAProxy that exits at once is tried again elsewhere.
        for _ in 0..3 {
            if let Some(proxy) = self.try_start().await {
                return proxy;
            }
        }
        panic!("haproxy did not start (three ports tried)");
    }

    async fn try_start(&self) -> Option<HaProxy> {
        let haproxy = super::tool("haproxy");
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("servicemock-haproxy-{port}"));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("haproxy.cfg");
        let shadow_port = free_port();
        std::fs::write(&config, self.config(port, shadow_port)).unwrap();
        let child = Command::new(haproxy)
            .arg("-db")
            .arg("-f")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let shadow: Option<SocketAddr> = self
            .shadow
            .then(|| format!("127.0.0.1:{shadow_port}").parse().unwrap());
        let mut proxy = HaProxy {
            child,
            addr,
            shadow,
            _dir: TempDir(dir),
        };
        let child = std::cell::RefCell::new(&mut proxy.child);
        let listening = super::eventually("haproxy listens", Duration::from_secs(10), || async {
            if child.borrow_mut().try_wait().unwrap().is_some() {
                return Ok(false);
            }
            let shadow_up = tokio::net::TcpStream::connect(shadow.unwrap_or(addr))
                .await
                .is_ok();
            if shadow_up && tokio::net::TcpStream::connect(addr).await.is_ok() {
                Ok(true)
            } else {
                Err("not listening yet".to_owned())
            }
        })
        .await;
        listening.then_some(proxy)
    }
}
