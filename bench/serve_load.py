#!/usr/bin/env python3
"""Load test of `stn serve` (numbers in BENCHMARKS.md): starts the server with the vendored PyTorch-trained
model on a free port, and runs wrk against POST /api/predict with a 280x280 PNG of a test digit
(what the page sends while someone draws) at several connection counts.

    python3 bench/serve_load.py [--seconds 10] [--connections 1,4,16,64] [--bin target/release/stn]

Needs wrk (apt-get install wrk). Prints wrk's summary and one JSON line per run.

    python3 bench/serve_load.py --memory [--concurrency 8] [--rounds 3]

measures instead the server's peak memory under concurrent worst-case uploads (no wrk needed):
rounds of `--concurrency` simultaneous uploads of each kind (a 4096x4096 8-bit RGBA PNG, the
largest picture accepted, 64 MiB decoded; a 4096x4096 16-bit RGBA PNG, refused from its header;
a mix of both and the 280x280 digit), all to 127.0.0.1, then prints the server's peak resident
memory (VmHWM in /proc/PID/status; Linux only) as one JSON line.
"""
import argparse, gzip, http.client, json, os, re, struct, subprocess, sys, tempfile, threading, time, zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def digit_png(index=0, scale=10):
    """MNIST test digit `index`, dark ink on white, enlarged `scale` times (nearest), as PNG."""
    with gzip.open(os.path.join(ROOT, "data/mnist/t10k-images-idx3-ubyte.gz")) as f:
        raw = f.read()
    px = raw[16 + 784 * index:16 + 784 * (index + 1)]
    side = 28 * scale
    rows = b"".join(
        b"\x00" + bytes(255 - px[(y // scale) * 28 + x // scale] for x in range(side))
        for y in range(side))
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b""))


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def big_png(side=4096, bit_depth=8):
    """A side x side RGBA PNG (8 or 16 bits a channel): white, with a black square in the middle
    (a "digit", so the whole path runs), compressed to a few hundred KB."""
    bpp = 4 * bit_depth // 8
    c = bit_depth // 8  # bytes a channel
    white, black = b"\xff" * bpp, b"\x00" * (3 * c) + b"\xff" * c  # both opaque
    lo, hi = side * 3 // 8, side * 5 // 8
    blank = white * side
    ink = white * lo + black * (hi - lo) + white * (side - hi)
    z = zlib.compressobj(6)
    parts = []
    for y in range(side):
        parts.append(z.compress(b"\x00" + (ink if lo <= y < hi else blank)))
    parts.append(z.flush())
    ihdr = struct.pack(">IIBBBBB", side, side, bit_depth, 6, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", b"".join(parts))
            + png_chunk(b"IEND", b""))


def post(port, body, results):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        c.request("POST", "/api/predict", body=body, headers={"Content-Type": "image/png"})
        r = c.getresponse()
        r.read()
        results.append(r.status)
        c.close()
    except Exception as e:  # counted, not fatal
        results.append(repr(e))


def vm(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024  # kB -> MiB
    return None


def memory(a, model):
    """Peak RSS of the server under rounds of concurrent worst-case uploads."""
    bodies = {"rgba8_4096": big_png(4096, 8), "rgba16_4096": big_png(4096, 16), "digit": digit_png()}
    print("# bodies: " + ", ".join(f"{k} {len(v)} bytes" for k, v in bodies.items()), flush=True)
    server = subprocess.Popen([a.bin, "serve", "--model", model, "--port", "0"],
                              stdout=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        port = int(line.strip().rsplit(":", 1)[1])
        print(f"# {line.strip()}", flush=True)
        post(port, bodies["digit"], [])  # warm up: first inference
        idle = vm(server.pid, "VmRSS")
        kinds = ["rgba8_4096", "rgba16_4096", "mixed"]
        statuses = {}
        started = time.time()
        for _ in range(a.rounds):
            for kind in kinds:
                results, threads = [], []
                for i in range(a.concurrency):
                    k = kind if kind != "mixed" else ["rgba8_4096", "rgba16_4096", "digit"][i % 3]
                    threads.append(threading.Thread(target=post, args=(port, bodies[k], results)))
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                for s in results:
                    statuses.setdefault(kind, {}).setdefault(str(s), 0)
                    statuses[kind][str(s)] += 1
        print(json.dumps({
            "concurrency": a.concurrency, "rounds": a.rounds,
            "seconds": round(time.time() - started, 1),
            "statuses": statuses,
            "rss_idle_mib": round(idle, 1),
            "peak_rss_mib": round(vm(server.pid, "VmHWM"), 1),
        }), flush=True)
    finally:
        server.kill()
        server.wait()


def ms(v):
    """wrk's latency ("1.23ms", "456.00us", "1.02s") in milliseconds."""
    m = re.match(r"([\d.]+)(us|ms|s)", v)
    return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", default="1,4,16,64")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/release/stn"))
    ap.add_argument("--memory", action="store_true", help="peak memory under worst-case uploads")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    if a.memory:
        return memory(a, os.path.join(ROOT, "tests/fixtures/trained/tutorial_torch_2ep.pt"))
    work = tempfile.mkdtemp()
    body = os.path.join(work, "digit.png")
    with open(body, "wb") as f:
        f.write(digit_png())
    script = os.path.join(work, "post.lua")
    with open(script, "w") as f:
        f.write('wrk.method = "POST"\n'
                'wrk.headers["Content-Type"] = "image/png"\n'
                f'local f = io.open("{body}", "rb")\nwrk.body = f:read("*all")\nf:close()\n')
    model = os.path.join(ROOT, "tests/fixtures/trained/tutorial_torch_2ep.pt")
    # Enough in-flight slots for every connection: the default cap (32) would answer 503s.
    inflight = max(int(x) for x in a.connections.split(","))
    server = subprocess.Popen([a.bin, "serve", "--model", model, "--port", "0",
                               "--max-inflight", str(max(inflight, 32))],
                              stdout=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        url = line.strip().rsplit(" on ", 1)[1]
        print(f"# {line.strip()}; body {os.path.getsize(body)} bytes (280x280 PNG)", flush=True)
        for c in [int(x) for x in a.connections.split(",")]:
            cmd = ["wrk", f"-t{min(a.threads, c)}", f"-c{c}", f"-d{a.seconds}s", "--latency",
                   "-s", script, f"{url}/api/predict"]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            print("$ " + " ".join(cmd).replace(work, "$TMP"))
            print(out, flush=True)
            lat = dict(re.findall(r"^\s+(50|90|99)%\s+(\S+)$", out, re.M))
            errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
            print(json.dumps({
                "connections": c,
                "requests_per_second": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
                "p50_ms": ms(lat["50"]), "p90_ms": ms(lat["90"]), "p99_ms": ms(lat["99"]),
                "non_2xx": int(errors.group(1)) if errors else 0,
            }), flush=True)
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    sys.exit(main())
