//! `stn serve`: a small web server with one page where a person draws a digit and watches the
//! network (and its spatial transformer) at work, and a JSON API.
//!
//! - `GET /` the page (`web/index.html`, self-contained: inline CSS and JS, nothing external);
//! - `POST /api/predict` with a PNG or JPEG body: the prediction as JSON (see [`prediction_json`]);
//! - `GET /api/health`: `{"status": "ok", "model": ...}`.
//!
//! Bad requests get a 4xx status and `{"error": "..."}` (one line); nothing a client sends can
//! stop the server. Decoding and preprocessing run on tokio's blocking pool (one image per core
//! at a time, within a memory budget), classification on one inference thread that batches
//! concurrent requests ([`batch`]).
//!
//! Limits against misbehaving clients: a header-read timeout that is also the idle timeout, a
//! body timeout, a write-stall timeout and a connection cap ([`conn`]); a cap on requests in
//! flight (503 beyond it); the Host check and the optional token ([`guard`]).

pub mod batch;
pub mod conn;
pub mod guard;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use image::ImageFormat;
use serde_json::{Value, json};

use crate::predict::decode::{self, format_name};
use crate::predict::{self, DecodeError, Gray, ImageError, Prediction, Predictor};
use batch::Batcher;
use guard::Guard;

/// The page, compiled into the binary.
pub const INDEX_HTML: &str = include_str!("../../web/index.html");

/// Default largest request body, in bytes (5 MB).
pub const DEFAULT_MAX_BODY: usize = 5 * 1024 * 1024;
/// Default time to send a request head (also the idle timeout of a kept-alive connection).
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time to send a request body, and to read an answer without stalling.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Default most connections open at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 128;
/// Default most `/api/predict` requests in flight at once (beyond: 503).
pub const DEFAULT_MAX_INFLIGHT: usize = 32;
/// Memory that the images being decoded and preprocessed may take at once (by
/// [`decode::Header::memory_estimate`]): one worst-case image (64 MiB of pixels) at a time, or
/// many small ones.
pub const DECODE_BUDGET: u64 = 160 * 1024 * 1024;
/// The environment variable read for the token when `--token` is not given.
pub const TOKEN_ENV: &str = "STN_SERVE_TOKEN";

/// Where and how to serve.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Address to bind, e.g. "127.0.0.1" or "0.0.0.0".
    pub host: String,
    /// Port; 0 picks a free one (see the address passed to `on_bound`).
    pub port: u16,
    /// Largest accepted request body in bytes; larger ones get 413.
    pub max_body: usize,
    /// Shown by the page and `/api/health` (e.g. the model file's name).
    pub model_label: String,
    /// Time a client has to send a request's head, counted from when the server starts
    /// waiting for it (a new connection, or the end of the previous answer): also the idle
    /// timeout. The connection is closed when it runs out.
    pub header_timeout: Duration,
    /// Time a client has to send a request's body (408 after it), and longest a write may
    /// stay blocked by a client that does not read (the connection is closed).
    pub body_timeout: Duration,
    /// Most connections open at once; one more gets a 503 and is closed.
    pub max_connections: usize,
    /// Most `/api/predict` requests in flight at once; one more gets a 503 at once.
    pub max_inflight: usize,
    /// Host names answered besides localhost, 127.0.0.1, [::1] and `host` ("*": any).
    pub allowed_hosts: Vec<String>,
    /// When set, `/api/` requests need it (see [`guard`]).
    pub token: Option<String>,
}

impl ServeOptions {
    /// Options with the defaults for everything but the address and the label.
    pub fn new(host: &str, port: u16, model_label: &str) -> Self {
        Self {
            host: host.to_string(),
            port,
            max_body: DEFAULT_MAX_BODY,
            model_label: model_label.to_string(),
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_inflight: DEFAULT_MAX_INFLIGHT,
            allowed_hosts: Vec::new(),
            token: None,
        }
    }
}

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address could not be bound (in use, no permission, bad host).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// The error.
        source: std::io::Error,
    },
    /// The runtime or the inference thread could not start, or serving failed.
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
}

struct App {
    batcher: Batcher,
    /// One permit per core for decoding and preprocessing: more at once would only take the
    /// cores from the inference thread (and hold more decoded images in memory).
    decoders: tokio::sync::Semaphore,
    /// [`DECODE_BUDGET`] in KiB: each image takes its memory estimate while decoded.
    memory: tokio::sync::Semaphore,
    /// One permit per request in flight.
    inflight: tokio::sync::Semaphore,
    max_body: usize,
    body_timeout: Duration,
    health: Value,
    transform: Option<&'static str>,
}

/// Serves until the process ends. `on_bound` gets the bound address once listening (with
/// `port: 0`, the port chosen).
pub fn serve(
    predictor: Predictor,
    opts: &ServeOptions,
    on_bound: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("stn-serve")
        .build()?;
    runtime.block_on(async {
        let addr = format!("{}:{}", opts.host, opts.port);
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|source| ServeError::Bind {
                addr: addr.clone(),
                source,
            })?;
        on_bound(listener.local_addr()?);
        let limits = conn::ConnLimits {
            header_timeout: opts.header_timeout,
            write_timeout: opts.body_timeout,
            max_connections: opts.max_connections,
        };
        conn::accept_loop(listener, router(predictor, opts)?, limits).await?;
        Ok(())
    })
}

/// Lines for stderr once the server listens on `addr`: a warning when the API can be reached
/// from other machines (a non-loopback address), and how to open the page with a token.
pub fn startup_notes(opts: &ServeOptions, addr: SocketAddr) -> Vec<String> {
    let mut notes = Vec::new();
    if !addr.ip().is_loopback() {
        let what = if addr.ip().is_unspecified() {
            "every network interface"
        } else {
            "a network interface"
        };
        notes.push(format!(
            "warning: listening on {addr}, {what}: anyone who can reach this machine can use \
             the page and the API{}",
            if opts.token.is_some() {
                " (with the token)"
            } else {
                ", without authentication (see --token)"
            }
        ));
    }
    if opts.token.is_some() {
        let page = if addr.ip().is_unspecified() {
            format!("localhost:{}", addr.port())
        } else {
            addr.to_string()
        };
        notes.push(format!(
            "token required: open http://{page}/?token=TOKEN once in the browser, or send \
             Authorization: Bearer TOKEN"
        ));
    }
    notes
}

/// The application's routes (for embedding the server in another one, or testing in-process).
pub fn router(predictor: Predictor, opts: &ServeOptions) -> std::io::Result<Router> {
    let health = json!({
        "status": "ok",
        "model": opts.model_label,
        "architecture": predictor.name(),
        "transform": predictor.transform().map(|t| t.name()),
        "input_size": predictor.net().config.input_size,
        "max_body_bytes": opts.max_body,
    });
    let guard = Arc::new(Guard::new(
        &opts.host,
        &opts.allowed_hosts,
        opts.token.clone(),
    ));
    let app = Arc::new(App {
        transform: predictor.transform().map(|t| t.name()),
        batcher: Batcher::start(predictor)?,
        decoders: tokio::sync::Semaphore::new(
            std::thread::available_parallelism().map_or(2, |n| n.get()),
        ),
        memory: tokio::sync::Semaphore::new((DECODE_BUDGET >> 10) as usize),
        inflight: tokio::sync::Semaphore::new(opts.max_inflight.max(1)),
        max_body: opts.max_body,
        body_timeout: opts.body_timeout,
        health,
    });
    Ok(Router::new()
        .route("/", get(index))
        .route("/api/health", get(health_handler))
        .route("/api/predict", post(predict_handler))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "not found") })
        .method_not_allowed_fallback(|| async {
            error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        })
        .with_state(app)
        .layer(axum::middleware::from_fn_with_state(guard, guard::check)))
}

async fn index() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        INDEX_HTML,
    )
        .into_response()
}

async fn health_handler(State(app): State<Arc<App>>) -> Response {
    json_response(StatusCode::OK, &app.health)
}

fn json_response(status: StatusCode, v: &Value) -> Response {
    let mut r = (status, v.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    json_response(status, &json!({ "error": msg.into() }))
}

/// The media type of a Content-Type header, lowercased, without parameters, cut to 80
/// characters (it is echoed in error messages).
fn media_type(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(
        v.split(';')
            .next()?
            .trim()
            .to_ascii_lowercase()
            .chars()
            .take(80)
            .collect(),
    )
}

async fn predict_handler(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let content_type = media_type(&headers);
    let claimed = match content_type.as_deref() {
        Some("image/png") => ImageFormat::Png,
        Some("image/jpeg" | "image/jpg") => ImageFormat::Jpeg,
        Some(other) => {
            return error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("unsupported Content-Type {other}: send image/png or image/jpeg"),
            );
        }
        None => {
            return error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "missing Content-Type: send image/png or image/jpeg",
            );
        }
    };
    // Before reading the body: what is held in memory is at most max_inflight bodies.
    let Ok(_inflight) = app.inflight.try_acquire() else {
        let mut r = error(
            StatusCode::SERVICE_UNAVAILABLE,
            "server busy: too many requests in flight, try again shortly",
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return r;
    };
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body over the limit of {} bytes", app.max_body),
        )
    };
    // Refuse early when the client says how much it will send.
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > app.max_body as u64) {
        return too_large();
    }
    let read = tokio::time::timeout(app.body_timeout, Limited::new(body, app.max_body).collect());
    let bytes = match read.await {
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => return too_large(),
        Ok(Err(_)) => {
            return error(
                StatusCode::BAD_REQUEST,
                "the request body could not be read",
            );
        }
        Err(_) => {
            return error(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {} s",
                    app.body_timeout.as_secs_f64()
                ),
            );
        }
    };
    if bytes.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "empty body: send the image's bytes",
        );
    }
    // The real format, from the first bytes, must be the one declared.
    let actual = match decode::sniff(&bytes) {
        Ok(f) => f,
        Err(e) => return image_error(&e.into()),
    };
    if actual != claimed {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "the body is a {} image but Content-Type says {}: send it as image/{}",
                format_name(actual),
                content_type.as_deref().unwrap_or_default(),
                format_name(actual).to_ascii_lowercase()
            ),
        );
    }
    // The header: sizes refused before any pixel memory is spent, and what decoding will take.
    let header = match decode::probe(&bytes) {
        Ok(h) => h,
        Err(e) => return image_error(&e.into()),
    };
    let kib = (header.memory_estimate().min(DECODE_BUDGET) >> 10).max(1) as u32;
    // Decoding a large image takes a while: off the async threads, a few at a time, within
    // the memory budget.
    let (Ok(_memory), Ok(_permit)) = (
        app.memory.acquire_many(kib).await,
        app.decoders.acquire().await,
    ) else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down",
        );
    };
    let digit = match tokio::task::spawn_blocking(move || predict::digit_from_bytes(&bytes)).await {
        Ok(Ok(d)) => d,
        Ok(Err(e)) => return image_error(&e),
        Err(_) => return error(StatusCode::INTERNAL_SERVER_ERROR, "preprocessing failed"),
    };
    let decoded = started.elapsed();
    match app.batcher.predict(digit).await {
        Ok(p) => {
            let mut v = prediction_json(&p, app.transform);
            v["ms"] = json!({
                "preprocess": round(decoded.as_secs_f64() * 1e3, 2),
                "total": round(started.elapsed().as_secs_f64() * 1e3, 2),
            });
            json_response(StatusCode::OK, &v)
        }
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "inference failed"),
    }
}

/// The status for a picture that cannot be classified: 413 too large, 415 a format we do not
/// read, 422 no digit in it, 400 not an image or corrupt.
fn image_error(e: &ImageError) -> Response {
    let status = match e {
        ImageError::Decode(d) if d.is_too_large() => StatusCode::PAYLOAD_TOO_LARGE,
        ImageError::Decode(DecodeError::Unsupported(_)) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ImageError::Decode(_) => StatusCode::BAD_REQUEST,
        ImageError::Preprocess(_) => StatusCode::UNPROCESSABLE_ENTITY,
    };
    error(status, e.to_string())
}

fn round(v: f64, digits: i32) -> f64 {
    let s = 10f64.powi(digits);
    (v * s).round() / s
}

fn gray_json(g: &Gray) -> Value {
    // Four decimals are plenty for drawing, and keep the answer small (~15 KB).
    let px: Vec<f64> = g.pixels.iter().map(|&p| round(p as f64, 4)).collect();
    json!({ "width": g.width, "height": g.height, "pixels": px })
}

/// A prediction as the API answers it: `class`, `probabilities` (10), `theta` (as
/// `stn predict --json`), plus `transform` (the family or null), `input` and `transformed`
/// (`{width, height, pixels}` with values in 0..1, row-major) and `grid` (`{width, height,
/// points}`: where each output pixel samples the input, in input pixels, or null).
pub fn prediction_json(p: &Prediction, transform: Option<&str>) -> Value {
    json!({
        "class": p.class,
        "probabilities": p.probabilities,
        "theta": p.theta,
        "transform": transform,
        "input": gray_json(&p.input),
        "transformed": gray_json(&p.transformed),
        "grid": p.grid.as_ref().map(|g| json!({
            "width": g.width,
            "height": g.height,
            "points": g.points.iter()
                .map(|[x, y]| [round(*x as f64, 3), round(*y as f64, 3)])
                .collect::<Vec<_>>(),
        })),
    })
}
