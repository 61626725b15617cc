//! Optional wall-clock accounting of the fused kernels (`STN_PROFILE=1`, or
//! `stn bench --profile`): where a training step's time goes, per op and shape.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

static ENABLED: AtomicBool = AtomicBool::new(false);

fn table() -> &'static Mutex<BTreeMap<String, (u64, f64)>> {
    static T: OnceLock<Mutex<BTreeMap<String, (u64, f64)>>> = OnceLock::new();
    T.get_or_init(|| {
        if std::env::var_os("STN_PROFILE").is_some() {
            ENABLED.store(true, Ordering::Relaxed);
        }
        Mutex::new(BTreeMap::new())
    })
}

/// Turns accounting on or off.
pub fn enable(on: bool) {
    let _ = table();
    ENABLED.store(on, Ordering::Relaxed);
}

/// Whether accounting is on.
pub fn enabled() -> bool {
    let _ = table();
    ENABLED.load(Ordering::Relaxed)
}

/// A label for [`time`], computed only when accounting is on.
#[inline]
pub fn label(name: impl FnOnce() -> String) -> Option<String> {
    enabled().then(name)
}

/// Times a closure under `label` (nothing when it is `None`).
#[inline]
pub fn time<R>(label: Option<String>, f: impl FnOnce() -> R) -> R {
    let Some(name) = label else {
        return f();
    };
    let t = Instant::now();
    let r = f();
    let dt = t.elapsed().as_secs_f64();
    let mut tab = table().lock().unwrap_or_else(|e| e.into_inner());
    let e = tab.entry(name).or_insert((0, 0.0));
    e.0 += 1;
    e.1 += dt;
    r
}

/// Clears the table.
pub fn reset() {
    table().lock().unwrap_or_else(|e| e.into_inner()).clear();
}

/// (name, calls, seconds), most expensive first.
pub fn report() -> Vec<(String, u64, f64)> {
    let tab = table().lock().unwrap_or_else(|e| e.into_inner());
    let mut v: Vec<_> = tab.iter().map(|(k, &(n, s))| (k.clone(), n, s)).collect();
    v.sort_by(|a, b| b.2.total_cmp(&a.2));
    v
}

/// The table as text: one line per op and shape, most expensive first.
pub fn summary() -> String {
    let rows = report();
    let total: f64 = rows.iter().map(|r| r.2).sum();
    let mut out = format!("fused kernel time (timed part and warm-up), {total:.3} s in all:\n");
    for (name, calls, secs) in rows {
        let per_call = 1e3 * secs / calls as f64;
        out += &format!("  {per_call:>8.3} ms/call {calls:>6} calls {secs:>7.3} s  {name}\n");
    }
    out
}
