#!/usr/bin/env python3
"""Load test of `stn serve` (numbers in BENCHMARKS.md): starts the server with the vendored PyTorch-trained
model on a free port, and runs wrk against POST /api/predict with a 280x280 PNG of a test digit
(what the page sends while someone draws) at several connection counts.

    python3 bench/serve_load.py [--seconds 10] [--connections 1,4,16,64] [--bin target/release/stn]

Needs wrk (apt-get install wrk). Prints wrk's summary and one JSON line per run.
"""
import argparse, gzip, json, os, re, struct, subprocess, sys, tempfile, time, zlib

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
    a = ap.parse_args()
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
    server = subprocess.Popen([a.bin, "serve", "--model", model, "--port", "0"],
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
