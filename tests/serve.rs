//! `stn serve` as a client sees it: the real binary on an ephemeral port, spoken to with a
//! raw HTTP/1.1 client (no client library): good pictures, junk, empty, oversized and
//! wrong-type bodies, decompression bombs, concurrent requests — and the server still answers
//! a good request afterwards. Then the limits against misbehaving clients (issue 21): idle,
//! half-sent and trickling connections closed, the connection and in-flight caps, the Host
//! check, the warning on a non-loopback bind, the token, plain one-line errors, Content-Type
//! against the real format, and images too large to decode refused from their header.

mod ui_common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::time::{Duration, Instant};

use image::{DynamicImage, GrayImage, Luma};
use serde_json::Value;
use ui_common::*;

/// A running `stn serve`, killed when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(extra: &[&str]) -> Self {
        Self::launch(extra, &[], false).0
    }

    /// Starts `stn serve` with `extra` flags and environment variables `env` (the token's
    /// variable is otherwise removed), with its stderr piped back when `capture_stderr`.
    fn launch(
        extra: &[&str],
        env: &[(&str, &str)],
        capture_stderr: bool,
    ) -> (Self, Option<ChildStderr>) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_stn"));
        cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
            .env_remove("STN_SERVE_TOKEN")
            .envs(env.iter().copied())
            .args(["serve", "--port", "0", "--model"])
            .arg(torch_model())
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(if capture_stderr {
                Stdio::piped()
            } else {
                Stdio::inherit()
            });
        let mut child = cmd.spawn().expect("stn serve starts");
        let stderr = child.stderr.take();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        // "serving st-affine (tutorial_torch_2ep.pt) on http://127.0.0.1:PORT"
        let addr = line
            .trim()
            .rsplit("http://")
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        (Server { child, addr }, stderr)
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Answer {
    status: u16,
    headers: String,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {}: body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// Asserts the status and a JSON error body that says something.
    fn error(&self, status: u16) -> String {
        assert_eq!(
            self.status,
            status,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        assert!(
            self.headers
                .to_ascii_lowercase()
                .contains("content-type: application/json")
        );
        let msg = self.json()["error"]
            .as_str()
            .expect("an error field")
            .to_string();
        assert!(!msg.is_empty());
        // One readable line: no decoder internals or debug structures.
        assert!(!self.body.contains(&b'\n'), "{msg}");
        for debug in ["ChunkType", "Format error", "{ ", "critical:"] {
            assert!(!msg.contains(debug), "debug text in {msg:?}");
        }
        msg
    }
}

/// Sends raw request bytes and reads the whole answer (the request says Connection: close).
fn exchange(addr: SocketAddr, request: &[u8]) -> Answer {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    // The server may answer (413) and close before reading everything: a failed write is
    // fine, the answer is what counts.
    let _ = s.write_all(request);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer: {:?}", String::from_utf8_lossy(&raw)));
    let headers = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = headers
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    Answer {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

fn request(addr: SocketAddr, method: &str, path: &str, headers: &[&str], body: &[u8]) -> Answer {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    if !headers
        .iter()
        .any(|h| h.to_ascii_lowercase().starts_with("content-length"))
    {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    exchange(addr, &bytes)
}

fn post(addr: SocketAddr, content_type: &str, body: &[u8]) -> Answer {
    let ct = format!("Content-Type: {content_type}");
    request(addr, "POST", "/api/predict", &[&ct], body)
}

/// Test digit 0 (a 7), dark ink on white, 150x150.
fn seven() -> Vec<u8> {
    let test = mnist_test();
    let mut img = image::imageops::resize(
        &digit_image(&test, 0),
        150,
        150,
        image::imageops::FilterType::CatmullRom,
    );
    image::imageops::invert(&mut img);
    png(&DynamicImage::ImageLuma8(img))
}

fn assert_seven(a: &Answer) {
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let v = a.json();
    assert_eq!(v["class"], 7);
    let p: Vec<f64> = serde_json::from_value(v["probabilities"].clone()).unwrap();
    assert_eq!(p.len(), 10);
    assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-4);
    let theta: Vec<Vec<f64>> = serde_json::from_value(v["theta"].clone()).unwrap();
    assert_eq!((theta.len(), theta[1].len()), (2, 3));
    assert_eq!(v["transform"], "affine");
    for key in ["input", "transformed"] {
        assert_eq!(v[key]["width"], 28);
        let px: Vec<f64> = serde_json::from_value(v[key]["pixels"].clone()).unwrap();
        assert_eq!(px.len(), 784);
        assert!(px.iter().all(|p| (0.0..=1.0).contains(p)));
    }
    assert_eq!(v["grid"]["points"].as_array().unwrap().len(), 784);
}

#[test]
fn page_health_and_a_good_prediction() {
    let server = Server::start(&[]);
    let page = request(server.addr, "GET", "/", &[], b"");
    assert_eq!(page.status, 200);
    assert!(page.headers.to_ascii_lowercase().contains("text/html"));
    let html = String::from_utf8(page.body).unwrap();
    assert!(html.contains("<canvas") && html.contains("api/predict"));
    // Self-contained: nothing loaded from elsewhere.
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));
    let health = request(server.addr, "GET", "/api/health", &[], b"");
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["status"], "ok");
    assert_eq!(health.json()["model"], "tutorial_torch_2ep.pt");
    assert_seven(&post(server.addr, "image/png", &seven()));
    // JPEG, and a Content-Type with parameters.
    let test = mnist_test();
    let jpg = jpeg(&DynamicImage::ImageLuma8(digit_image(&test, 0)), 80);
    assert_seven(&post(server.addr, "image/jpeg; q=1", &jpg));
}

#[test]
fn bad_requests_get_json_errors_and_the_server_keeps_serving() {
    let mut server = Server::start(&["--max-body-mb", "1"]);
    let addr = server.addr;
    // Empty body.
    assert!(post(addr, "image/png", b"").error(400).contains("empty"));
    // Junk, text, a truncated PNG.
    assert!(
        post(addr, "image/png", b"hello world")
            .error(400)
            .contains("not an image")
    );
    let good = seven();
    post(addr, "image/png", &good[..good.len() / 2]).error(400);
    // A format we do not read, whatever the header says.
    post(addr, "image/png", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;").error(415);
    // Wrong or missing Content-Type.
    post(addr, "text/plain", &good).error(415);
    post(addr, "application/json", b"{}").error(415);
    request(addr, "POST", "/api/predict", &[], &good).error(415);
    // Over the size limit: declared, and sent in chunks without a declared length.
    let big = vec![0u8; 1024 * 1024 + 1];
    post(addr, "image/png", &big).error(413);
    let mut chunked = b"POST /api/predict HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: image/png\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..20 {
        chunked.extend_from_slice(format!("{:x}\r\n", 100_000).as_bytes());
        chunked.extend(std::iter::repeat_n(b'x', 100_000));
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    assert_eq!(
        exchange(addr, &chunked).error(413),
        "request body over the limit of 1048576 bytes"
    );
    // A decompression bomb: a tiny PNG whose header claims 100000 x 100000 pixels.
    let mut bomb = png(&DynamicImage::ImageLuma8(GrayImage::new(1, 1)));
    bomb[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    bomb[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&bomb[12..29]);
    bomb[29..33].copy_from_slice(&crc.finalize().to_be_bytes());
    assert!(
        post(addr, "image/png", &bomb)
            .error(413)
            .contains("100000x100000")
    );
    // Real but absurd dimensions.
    let wide = png(&DynamicImage::ImageLuma8(GrayImage::new(5000, 2)));
    post(addr, "image/png", &wide).error(413);
    // A blank picture: no digit.
    let blank = png(&DynamicImage::ImageLuma8(GrayImage::from_pixel(
        64,
        64,
        Luma([255]),
    )));
    assert!(
        post(addr, "image/png", &blank)
            .error(422)
            .contains("no digit")
    );
    // Unknown routes and methods.
    request(addr, "GET", "/nope", &[], b"").error(404);
    request(addr, "GET", "/api/predict", &[], b"").error(405);
    // Not HTTP at all.
    let a = exchange(addr, b"\x16\x03\x01 this is not http\r\n\r\n");
    assert!(a.status >= 400);
    // Still serving, correctly.
    assert!(server.running());
    assert_seven(&post(addr, "image/png", &good));
}

#[test]
fn concurrent_requests_are_all_answered() {
    let server = Server::start(&[]);
    let addr = server.addr;
    let good = seven();
    let blank = png(&DynamicImage::ImageLuma8(GrayImage::from_pixel(
        40,
        40,
        Luma([0]),
    )));
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..32)
            .map(|i| {
                let (good, blank) = (&good, &blank);
                s.spawn(move || {
                    // Every fourth request is bad: errors and good answers interleave.
                    if i % 4 == 3 {
                        post(addr, "image/png", blank).error(422);
                    } else {
                        assert_seven(&post(addr, "image/png", good));
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("request thread");
        }
    });
    assert_seven(&post(addr, "image/png", &good));
}

/// Reads from `s` until the server closes it (EOF or a reset), at most `limit`; returns how
/// long that took, or panics if it stayed open.
fn time_to_close(s: &mut TcpStream, limit: Duration) -> Duration {
    let t = Instant::now();
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return t.elapsed(),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                panic!("connection still open after {:?}", t.elapsed())
            }
            Err(_) => return t.elapsed(),
        }
    }
}

#[test]
fn idle_half_sent_and_trickling_connections_are_closed() {
    let server = Server::start(&["--header-timeout", "1.5", "--body-timeout", "2"]);
    let addr = server.addr;
    let limit = Duration::from_secs(8);
    std::thread::scope(|s| {
        // Connected, nothing sent.
        let idle = s.spawn(|| time_to_close(&mut TcpStream::connect(addr).unwrap(), limit));
        // Half a header, then silence.
        let half = s.spawn(|| {
            let mut c = TcpStream::connect(addr).unwrap();
            c.write_all(b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty")
                .unwrap();
            time_to_close(&mut c, limit)
        });
        // A byte every 200 ms, never finishing the header.
        let trickle = s.spawn(|| {
            let mut c = TcpStream::connect(addr).unwrap();
            let mut w = c.try_clone().unwrap();
            let writer = std::thread::spawn(move || {
                for b in b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
                    if w.write_all(&[*b]).is_err() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            });
            let t = time_to_close(&mut c, limit);
            drop(c);
            let _ = writer.join();
            t
        });
        // Headers complete, the body never finishes: 408 after the body timeout.
        let body = s.spawn(|| {
            let t = Instant::now();
            let a = exchange(
                addr,
                b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\nContent-Length: 1000\r\n\r\n\x89PNG",
            );
            assert_eq!(a.status, 408, "{}", String::from_utf8_lossy(&a.body));
            t.elapsed()
        });
        for (what, h, max) in [
            ("idle", idle, 4.0),
            ("half-sent header", half, 4.0),
            ("trickling header", trickle, 4.0),
            ("unfinished body", body, 5.0),
        ] {
            let took = h.join().unwrap().as_secs_f64();
            assert!(took < max, "{what}: closed after {took:.1} s");
            assert!(
                took > 1.0,
                "{what}: closed after {took:.1} s, before the timeout"
            );
        }
    });
    // A kept-alive connection that goes idle after an answer is closed too.
    let mut c = TcpStream::connect(addr).unwrap();
    c.write_all(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let took = time_to_close(&mut c, limit).as_secs_f64();
    assert!(took < 4.0, "kept-alive idle: closed after {took:.1} s");
    assert_seven(&post(addr, "image/png", &seven()));
}

#[test]
fn connection_and_in_flight_caps_answer_503() {
    let server = Server::start(&["--max-connections", "3", "--max-inflight", "1"]);
    let addr = server.addr;
    // One prediction in flight, its body not finished: it holds the only in-flight slot.
    let mut held = TcpStream::connect(addr).unwrap();
    held.write_all(b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\nContent-Length: 1000\r\n\r\n\x89PNG")
        .unwrap();
    // (Until the held request has reached the server: a few hundred ms at most.)
    let deadline = Instant::now() + Duration::from_secs(10);
    let busy = loop {
        let a = post(addr, "image/png", &seven());
        if a.status == 503 || Instant::now() > deadline {
            break a;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(busy.error(503).contains("too many requests"));
    assert!(busy.headers.to_ascii_lowercase().contains("retry-after"));
    // Two more open connections reach the cap of 3: the next one gets 503 and is closed.
    let idle = TcpStream::connect(addr).unwrap();
    let _idle2 = TcpStream::connect(addr).unwrap();
    let full = loop {
        let a = request(addr, "GET", "/api/health", &[], b"");
        if a.status == 503 || Instant::now() > deadline {
            break a;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(full.error(503).contains("too many open connections"));
    // Freed: served again.
    drop((held, idle));
    let t = Instant::now();
    loop {
        let a = post(addr, "image/png", &seven());
        if a.status == 200 {
            assert_seven(&a);
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(5), "still {}", a.status);
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn foreign_host_headers_are_refused() {
    let server = Server::start(&["--allow-host", "digits.lan"]);
    let addr = server.addr;
    let port = addr.port();
    let get = |host: &str| {
        exchange(
            addr,
            format!("GET /api/health HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
    };
    for bad in [
        "evil.example".to_string(),
        format!("evil.example:{port}"),
        format!("localhost.evil.example:{port}"),
        "10.1.2.3".to_string(),
    ] {
        let msg = get(&bad).error(421);
        assert!(msg.contains("--allow-host"), "{msg}");
    }
    // The page too, not only the API.
    let page = exchange(
        addr,
        b"GET / HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
    );
    page.error(421);
    for good in [
        "localhost".to_string(),
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
        "digits.lan".to_string(),
        format!("DIGITS.LAN:{port}"),
    ] {
        assert_eq!(get(&good).status, 200, "{good}");
    }
}

#[test]
fn non_loopback_bind_prints_a_warning() {
    let (server, stderr) = Server::launch(&["--host", "0.0.0.0"], &[], true);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr.unwrap()).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let warning = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.starts_with("warning:") => break line,
            Ok(_) => {}
            Err(_) => panic!("no warning on stderr"),
        }
    };
    assert!(warning.contains("every network interface"), "{warning}");
    assert!(warning.contains("--token"), "{warning}");
    // Reached over loopback only.
    let local = SocketAddr::from(([127, 0, 0, 1], server.addr.port()));
    assert_eq!(request(local, "GET", "/api/health", &[], b"").status, 200);
}

#[test]
fn token_is_required_when_set() {
    // From the environment, so that it is not on the command line.
    let token = "test-token-0123";
    let (server, _) = Server::launch(&[], &[("STN_SERVE_TOKEN", token)], false);
    let addr = server.addr;
    let bearer = format!("Authorization: Bearer {token}");
    let msg = request(addr, "GET", "/api/health", &[], b"").error(401);
    assert!(msg.contains("Bearer"), "{msg}");
    request(
        addr,
        "GET",
        "/api/health",
        &["Authorization: Bearer wrong-token-0"],
        b"",
    )
    .error(401);
    post(addr, "image/png", &seven()).error(401);
    assert_eq!(
        request(addr, "GET", "/api/health", &[&bearer], b"").status,
        200
    );
    let ct = "Content-Type: image/png";
    assert_seven(&request(
        addr,
        "POST",
        "/api/predict",
        &[&bearer, ct],
        &seven(),
    ));
    // The page stays open; /?token= sets the cookie that the page's requests carry.
    assert_eq!(request(addr, "GET", "/", &[], b"").status, 200);
    request(addr, "GET", "/?token=wrong-token-0", &[], b"").error(401);
    let login = request(addr, "GET", &format!("/?token={token}"), &[], b"");
    assert_eq!(login.status, 303);
    let set_cookie = login
        .headers
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("set-cookie")
                .then(|| v.trim().to_string())
        })
        .expect("a cookie");
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"));
    let cookie = format!("Cookie: {}", set_cookie.split(';').next().unwrap());
    assert_seven(&request(
        addr,
        "POST",
        "/api/predict",
        &[&cookie, ct],
        &seven(),
    ));
}

#[test]
fn corrupt_png_errors_are_one_plain_line() {
    let server = Server::start(&[]);
    // A PNG signature, then junk where the IHDR chunk should be.
    let mut junk = b"\x89PNG\r\n\x1a\n".to_vec();
    junk.extend_from_slice(
        b"\x00\x00\x00\x0dL\x02\x85_\x00\x00\x10\x00\x00\x00\x10\x00\x08\x06junkjunkjunk",
    );
    let msg = post(server.addr, "image/png", &junk).error(400);
    assert_eq!(msg, "not a valid PNG image (corrupt or truncated data)");
    // Same for a JPEG start followed by junk.
    let msg = post(
        server.addr,
        "image/jpeg",
        b"\xff\xd8\xff\xe0junkjunkjunkjunk",
    )
    .error(400);
    assert!(msg.starts_with("not a valid JPEG image"), "{msg}");
}

#[test]
fn content_type_must_match_the_bytes() {
    let server = Server::start(&[]);
    let addr = server.addr;
    let msg = post(addr, "image/jpeg", &seven()).error(415);
    assert!(msg.contains("PNG") && msg.contains("image/jpeg"), "{msg}");
    let test = mnist_test();
    let jpg = jpeg(&DynamicImage::ImageLuma8(digit_image(&test, 0)), 80);
    let msg = post(addr, "image/png", &jpg).error(415);
    assert!(msg.contains("JPEG") && msg.contains("image/png"), "{msg}");
    // Declared right, still served.
    assert_seven(&post(addr, "image/jpeg", &jpg));
}

/// A PNG whose header says `side` x `side` pixels of 16-bit RGBA, with a few rows of data
/// (the rest missing: a server that decoded it would spend side² x 8 bytes first).
fn rgba16_png(side: u32) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let mut crc = crc32fast::Hasher::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(&crc.finalize().to_be_bytes());
    }
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&side.to_be_bytes());
    ihdr.extend_from_slice(&side.to_be_bytes());
    ihdr.extend_from_slice(&[16, 6, 0, 0, 0]);
    let rows = vec![0u8; 4 * (1 + side as usize * 8)];
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    z.write_all(&rows).unwrap();
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &z.finish().unwrap());
    chunk(&mut out, b"IEND", b"");
    out
}

#[test]
fn images_too_large_to_decode_are_refused_from_the_header() {
    let server = Server::start(&[]);
    let t = Instant::now();
    let msg = post(server.addr, "image/png", &rgba16_png(4096)).error(413);
    assert!(
        msg.contains("4096x4096") && msg.contains("128 MiB"),
        "{msg}"
    );
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_seven(&post(server.addr, "image/png", &seven()));
}
