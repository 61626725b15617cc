//! `stn serve`: a small web server with one page where a person draws a digit and watches the
//! network (and its spatial transformer) at work, and a JSON API.
//!
//! - `GET /` the page (`web/index.html`, self-contained: inline CSS and JS, nothing external);
//! - `POST /api/predict` with a PNG or JPEG body: the prediction as JSON (see [`prediction_json`]);
//! - `GET /api/health`: `{"status": "ok", "model": ...}`.
//!
//! Bad requests get a 4xx status and `{"error": "..."}`; nothing a client sends can stop the
//! server. Decoding and preprocessing run on tokio's blocking pool (one image per core at a
//! time), classification on one inference thread that batches concurrent requests ([`batch`]).

pub mod batch;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::{Value, json};

use crate::predict::{self, DecodeError, Gray, ImageError, Prediction, Predictor};
use batch::Batcher;

/// The page, compiled into the binary.
pub const INDEX_HTML: &str = include_str!("../../web/index.html");

/// Default largest request body, in bytes (5 MB).
pub const DEFAULT_MAX_BODY: usize = 5 * 1024 * 1024;

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
    max_body: usize,
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
        axum::serve(listener, router(predictor, opts)?).await?;
        Ok(())
    })
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
    let app = Arc::new(App {
        transform: predictor.transform().map(|t| t.name()),
        batcher: Batcher::start(predictor)?,
        decoders: tokio::sync::Semaphore::new(
            std::thread::available_parallelism().map_or(2, |n| n.get()),
        ),
        max_body: opts.max_body,
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
        .with_state(app))
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

/// The media type of a Content-Type header, lowercased, without parameters.
fn media_type(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(v.split(';').next()?.trim().to_ascii_lowercase())
}

async fn predict_handler(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    match media_type(&headers).as_deref() {
        Some("image/png" | "image/jpeg" | "image/jpg") => {}
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
    }
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
    let bytes = match Limited::new(body, app.max_body).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => return too_large(),
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("cannot read body: {e}")),
    };
    if bytes.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "empty body: send the image's bytes",
        );
    }
    // Decoding a large image takes a while: off the async threads, a few at a time.
    let Ok(_permit) = app.decoders.acquire().await else {
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
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
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
