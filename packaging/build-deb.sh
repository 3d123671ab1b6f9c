#!/usr/bin/env bash
# npm run package: builds dist/rarecon_<version>_<arch>.deb with dpkg-deb.
#
#   /usr/bin/rarecon                       runs /usr/lib/rarecon/dist/src/cli/main.js with /usr/bin/node
#   /usr/lib/rarecon/                      the built JavaScript, production node_modules, package.json,
#                                          native-events/build/ (the eBPF helper, its CO-RE object, the line scanner),
#                                          service/ (the unit template `rarecon service install` reads)
#   /lib/systemd/system/rarecon.service    the hardened unit (ExecStart=/usr/bin/rarecon run)
#   /etc/rarecon/config.yaml               the embedded default, every line commented out (a conffile)
#   /usr/share/rarecon/config.schema.json  the JSON Schema the config's first line names
#
# The helper and its CO-RE eBPF object are built once here and run on any kernel
# with BTF. No network is needed: node_modules is this checkout's, pruned of
# development packages. Prints each step, the package's size and where it is.
#
#   --no-build   package what dist/ and native-events/build/ hold (the tests: no rebuild under running tests)
#   --out FILE   write the package there instead of dist/rarecon_<version>_<arch>.deb
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "package: $*"; }

version=$(node -p 'require("./package.json").version')
arch=$(dpkg --print-architecture)
out="dist/rarecon_${version}_${arch}.deb"
build=1
while [ $# -gt 0 ]; do
  case "$1" in
    --no-build) build=0 ;;
    --out) out="$2"; shift ;;
    *) echo "package: unknown option $1 (--no-build, --out FILE)" >&2; exit 1 ;;
  esac
  shift
done

if [ "$build" = 1 ]; then
  say "building the TypeScript and native-events (npm run build)"
  npm run --silent build
fi
[ -f dist/src/cli/main.js ] || { echo "package: dist/ is not built (npm run build)" >&2; exit 1; }
for f in native-events/build/rarecon-events native-events/build/rarecon_events.bpf.o native-events/build/line_scan.node; do
  [ -f "$f" ] || { echo "package: $f was not built (see native-events/README.md; service/install-deps.sh installs the toolchain)" >&2; exit 1; }
done
[ -d node_modules/better-sqlite3 ] || { echo "package: node_modules is missing: run npm ci first" >&2; exit 1; }

stage=$(mktemp -d /tmp/rarecon-deb-XXXXXX)
trap 'rm -rf "$stage"' EXIT
root="$stage/root"
lib="$root/usr/lib/rarecon"
mkdir -p "$lib/dist" "$lib/native-events/build" "$root/usr/bin" "$root/lib/systemd/system" "$root/etc/rarecon" \
  "$root/usr/share/rarecon" "$root/usr/share/doc/rarecon" "$root/DEBIAN"

say "copying the built JavaScript, the helper, its CO-RE object and the line scanner"
cp -a dist/src "$lib/dist/"
find "$lib/dist" -name '*.map' -delete
cp package.json package-lock.json "$lib/"
cp native-events/build/rarecon-events native-events/build/rarecon_events.bpf.o native-events/build/line_scan.node "$lib/native-events/build/"
mkdir -p "$lib/service" && cp service/rarecon.service "$lib/service/"

say "production node_modules (this checkout's, development packages pruned, build leftovers removed)"
cp -a node_modules "$lib/"
(cd "$lib" && npm prune --omit=dev --offline --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
rm -rf "$lib/node_modules/.package-lock.json" "$lib/node_modules/better-sqlite3/deps" "$lib/node_modules/better-sqlite3/src" \
  "$lib/node_modules/better-sqlite3/build/Release/obj" "$lib/node_modules/better-sqlite3/build/Release/obj.target" \
  "$lib/node_modules/better-sqlite3/build/Release/.deps" "$lib/node_modules/better-sqlite3/build/deps" \
  "$lib/node_modules/better-sqlite3/build/Release/test_extension.node"
find "$lib/node_modules" -depth \( -name '*.md' -o -name '*.ts' -o -name '*.map' -o -name 'test' -o -name 'tests' -o -name '.github' \) \
  -not -path '*/better-sqlite3/lib/*' -exec rm -rf {} +
rm -rf "$lib/node_modules/.vite" "$lib/node_modules/.vite-temp" "$lib/node_modules/.bin" "$lib/package-lock.json"
find "$lib/node_modules" -type d -empty -delete

cat > "$root/usr/bin/rarecon" <<'SH'
#!/bin/sh
exec /usr/bin/node /usr/lib/rarecon/dist/src/cli/main.js "$@"
SH
chmod 0755 "$root/usr/bin/rarecon"
cp service/rarecon.service "$root/lib/systemd/system/rarecon.service"
node dist/src/cli/main.js config example --schema-url /usr/share/rarecon/config.schema.json > "$root/etc/rarecon/config.yaml"
chmod 0640 "$root/etc/rarecon/config.yaml"
node dist/src/cli/main.js config schema > "$root/usr/share/rarecon/config.schema.json"
cat > "$root/usr/share/doc/rarecon/copyright" <<'TXT'
rarecon: MIT licence (see the project's package.json).
Bundled under /usr/lib/rarecon/node_modules: better-sqlite3 (MIT, includes SQLite, public domain),
node-cron (ISC), systeminformation (MIT), tldts (MIT, includes the Public Suffix List, MPL-2.0),
winston (MIT), yaml (ISC), and their dependencies (each package's own licence file is kept).
The eBPF programs in /usr/lib/rarecon/native-events/build are GPL-2.0 (as the kernel requires).
TXT

for s in postinst prerm postrm; do install -m 0755 "packaging/deb/$s" "$root/DEBIAN/$s"; done
echo /etc/rarecon/config.yaml > "$root/DEBIAN/conffiles"
size_kb=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size_kb/" packaging/deb/control > "$root/DEBIAN/control"

say "dpkg-deb --build"
mkdir -p "$(dirname "$out")"
dpkg-deb --root-owner-group -Zxz --build "$root" "$out" >/dev/null
bytes=$(stat -c %s "$out")
say "wrote $out: $(( (bytes + 524287) / 1048576 )) MiB ($bytes bytes), installed size $(( (size_kb + 512) / 1024 )) MiB"
