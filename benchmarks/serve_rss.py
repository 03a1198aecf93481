"""Peak memory (RSS) of `lenet-keras serve` under 16 concurrent worst-case uploads.

    python benchmarks/serve_rss.py --model runs/my-run/model.keras [--uploads 16]

Worst case: a PNG just under the 50-Mpixel limit (7000x7000 RGBA, the mode that decodes
largest: 196 MB of pixels), which compresses to a few hundred KB, so it passes the 10 MB
upload limit. Also sent: the ICO bomb of issue 23 (a 13000x13000 PNG inside an ICO). The
serve process's RSS is sampled every 20 ms from /proc; printed: RSS at rest, peak, and
after the requests, as MB and as ratios to the resting RSS measured in the same run.
"""

import argparse
import http.client
import io
import os
import re
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def rss_mb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def worst_png():
    buffer = io.BytesIO()
    Image.new("RGBA", (7000, 7000), (10, 20, 30, 255)).save(buffer, "PNG", compress_level=9)
    return buffer.getvalue()


def ico_bomb():
    buffer = io.BytesIO()
    Image.new("L", (13000, 13000)).save(buffer, "PNG")
    data = buffer.getvalue()
    return struct.pack("<HHH", 0, 1, 1) + struct.pack("<BBBBHHII", 0, 0, 0, 0, 1, 32, len(data), 22) + data


def post(port, body, results):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        connection.request("POST", "/api/predict", body, {"Content-Type": "application/octet-stream"})
        results.append(connection.getresponse().status)
    finally:
        connection.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--uploads", type=int, default=16)
    args = parser.parse_args()
    server = subprocess.Popen([sys.executable, "-m", "lenet_keras", "serve", "--model", args.model,
                               "--port", "0"], env={**os.environ, "PYTHONPATH": str(ROOT)},
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        port = None
        while port is None:
            line = server.stdout.readline()
            if not line:
                raise SystemExit("serve did not start")
            match = re.search(r"http://[^:]+:(\d+)/", line)
            port = int(match.group(1)) if match else None
        time.sleep(1)
        rest = rss_mb(server.pid)
        for name, body in (("worst-case PNG 7000x7000 RGBA", worst_png()), ("ICO bomb", ico_bomb())):
            peak, results, done = rest, [], threading.Event()

            def sample():
                nonlocal peak
                while not done.is_set():
                    peak = max(peak, rss_mb(server.pid))
                    time.sleep(0.02)

            sampler = threading.Thread(target=sample)
            sampler.start()
            started = time.perf_counter()
            threads = [threading.Thread(target=post, args=(port, body, results)) for _ in range(args.uploads)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            seconds = time.perf_counter() - started
            done.set()
            sampler.join()
            time.sleep(1)
            after = rss_mb(server.pid)
            statuses = {s: results.count(s) for s in sorted(set(results))}
            print(f"{name} ({len(body) / 1024:.0f} KB) x{args.uploads} concurrent: statuses {statuses}, "
                  f"{seconds:.1f} s; RSS at rest {rest:.0f} MB, peak {peak:.0f} MB "
                  f"({peak / rest:.2f}x), after {after:.0f} MB ({after / rest:.2f}x)")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
