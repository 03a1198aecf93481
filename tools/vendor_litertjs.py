"""Vendor LiteRT.js (npm @litertjs/core and its one dependency) into the package.

    python tools/vendor_litertjs.py              # the pinned versions below
    python tools/vendor_litertjs.py --check      # only verify lenet_keras/webapp/litertjs/

`export --web` copies lenet_keras/webapp/litertjs/ into every web app, so a Python user
never needs npm or a network. This script is how those files get there: `npm pack` (the
registry's own client, never a CDN) fetches the pinned tarballs, their sha512 is checked
against the integrity pinned here (what `npm view <pkg>@<version> dist.integrity` says),
and only the files a page loads are kept:

    index.js                          @litertjs/core dist/index.js (its import of
                                      "@litertjs/wasm-utils" rewritten to ./wasm-utils.js:
                                      a browser cannot resolve a bare npm name)
    wasm-utils.js                     @litertjs/wasm-utils dist/index.js
    litert_wasm_internal.js/.wasm     XNNPACK with relaxed SIMD (Chrome, Edge, Firefox)
    litert_wasm_compat_internal.js/.wasm
                                      plain SIMD (Safari, older browsers)

Not kept: the threaded variant (needs cross-origin isolation, which a plain static host
cannot give, and a LeNet runs in a fraction of a millisecond on one thread) and the JSPI
one (only for WebNN / WebGPU partitioning). LICENSE beside them is the Apache-2.0 text
both packages are published under (their tarballs carry no licence file); VENDORED.json
records versions, integrity and each file's sha256, which the tests check.
"""

import argparse
import base64
import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

DEST = Path(__file__).resolve().parents[1] / "lenet_keras" / "webapp" / "litertjs"
PACKAGES = {
    "@litertjs/core": ("2.5.3", "sha512-PlGmbMOq9WitX7FO0jhbdJw9GthatsyuCQXjTt/wJZo0FLaw48q4"
                                "tz8IwqgqCIkviYGr9OFDL1kCnN4nzWoyJQ=="),
    "@litertjs/wasm-utils": ("2.5.3", "sha512-4fJiw6tBQnIs+0jH/OQ16nYOiSl8/+zZnn5h2ul8aTKHi05sV"
                                      "qZW580Tmk78pC2kT39A9OYBVdFawteZ/sI1kQ=="),
}
# (package, path in its tarball) -> vendored name
FILES = {
    ("@litertjs/core", "package/dist/index.js"): "index.js",
    ("@litertjs/wasm-utils", "package/dist/index.js"): "wasm-utils.js",
    **{("@litertjs/core", f"package/wasm/{name}"): name
       for stem in ("litert_wasm_internal", "litert_wasm_compat_internal")
       for name in (f"{stem}.js", f"{stem}.wasm")},
}
BARE_IMPORT = b'from "@litertjs/wasm-utils"'


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def npm_pack(package, version, integrity, folder):
    """The tarball's bytes, fetched by `npm pack` and checked against ``integrity``."""
    subprocess.run(["npm", "pack", f"{package}@{version}", "--pack-destination", str(folder),
                    "--silent"], check=True, stdout=subprocess.DEVNULL)
    name = package.lstrip("@").replace("/", "-") + f"-{version}.tgz"
    data = (Path(folder) / name).read_bytes()
    digest = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    if digest != integrity:
        sys.exit(f"{package}@{version}: integrity {digest} is not the pinned {integrity}")
    return data


def vendor():
    files = {}
    with tempfile.TemporaryDirectory() as folder:
        for package, (version, integrity) in PACKAGES.items():
            with tarfile.open(fileobj=io.BytesIO(npm_pack(package, version, integrity,
                                                          folder))) as archive:
                for (owner, member), name in FILES.items():
                    if owner == package:
                        files[name] = archive.extractfile(member).read()
    if files["index.js"].count(BARE_IMPORT) != 1:
        sys.exit("index.js no longer imports @litertjs/wasm-utils once; check the new version")
    files["index.js"] = files["index.js"].replace(BARE_IMPORT, b'from "./wasm-utils.js"')
    # The source map comment points at a file not shipped.
    files["index.js"] = files["index.js"].replace(b"//# sourceMappingURL=index.js.map", b"")
    files["wasm-utils.js"] = files["wasm-utils.js"].replace(b"//# sourceMappingURL=index.js.map",
                                                            b"")
    DEST.mkdir(parents=True, exist_ok=True)
    for old in DEST.iterdir():
        if old.name not in (*files, "LICENSE", "VENDORED.json"):
            old.unlink()
    for name, data in files.items():
        (DEST / name).write_bytes(data)
    if not (DEST / "LICENSE").exists():
        shutil.copyfile("/usr/share/common-licenses/Apache-2.0", DEST / "LICENSE")
    lock = {
        "packages": {p: {"version": v, "integrity": i} for p, (v, i) in PACKAGES.items()},
        "license": "Apache-2.0 (LICENSE)",
        "files": {name: sha256((DEST / name).read_bytes()) for name in sorted(files)},
    }
    (DEST / "VENDORED.json").write_text(json.dumps(lock, indent=2) + "\n")
    print(f"vendored {', '.join(f'{p}@{v}' for p, (v, _) in PACKAGES.items())} into {DEST}")


def check():
    lock = json.loads((DEST / "VENDORED.json").read_text())
    bad = [name for name, digest in lock["files"].items()
           if not (DEST / name).is_file() or sha256((DEST / name).read_bytes()) != digest]
    if bad:
        sys.exit(f"vendored LiteRT.js files differ from VENDORED.json: {', '.join(bad)}")
    print(f"{len(lock['files'])} vendored files match VENDORED.json")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="verify, fetch nothing")
    check() if parser.parse_args().check else vendor()
