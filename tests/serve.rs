//! `stn serve` as a client sees it: the real binary on an ephemeral port, spoken to with a
//! raw HTTP/1.1 client (no client library): good pictures, junk, empty, oversized and
//! wrong-type bodies, decompression bombs, concurrent requests — and the server still answers
//! a good request afterwards.

mod ui_common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

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
        let mut child = Command::new(env!("CARGO_BIN_EXE_stn"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["serve", "--port", "0", "--model"])
            .arg(torch_model())
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("stn serve starts");
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
        Server { child, addr }
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
    let mut chunked = b"POST /api/predict HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: image/png\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
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
