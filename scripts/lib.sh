# Shared by scripts/run and scripts/test: install what is missing, then build.
# Sourced, not run; expects to be in the repository's top folder.

# Debian packages the product needs at build and run time.
RUN_PACKAGES="build-essential cmake pkg-config mosquitto mosquitto-dev libmosquitto-dev libssl-dev
  libcjson-dev uthash-dev libicu-dev libsqlite3-dev mosquitto-clients"
# ... and the test suite on top.
TEST_PACKAGES="chromium valgrind clang libclang-rt-14-dev iproute2 clang-format sqlite3"

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

# Installs the Debian packages among "$@" that are not installed yet (one apt run at most).
install_packages() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("$pkg")
  done
  # Node.js: Debian's nodejs and npm, unless a node and npm are already on the PATH.
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    missing+=(nodejs npm)
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    if [ "$(id -u)" -ne 0 ]; then
      echo "missing packages: ${missing[*]}; run as root or install them first" >&2
      exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# Installs the npm packages from the committed lockfile when node_modules is missing or stale.
install_npm() {
  if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    say "installing npm packages (package-lock.json)"
    npm ci --no-audit --no-fund --loglevel=error
  fi
}

# Configures and builds into the folder $1 with the extra CMake arguments that follow.
build() {
  local dir=$1
  shift
  say "building into $dir"
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
  cmake --build "$dir" -j"$(nproc)"
}
