# Shared helpers for scripts/run and scripts/test (sourced, not executed).
# Finds a Python >= 3.12, creates .venv, installs requirements only when they changed, and
# installs the MariaDB client headers that mysqlclient compiles against when they are missing.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
VPY="$VENV/bin/python"

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# True when "$1" runs and is Python >= 3.12.
_python_ok() {
  "$@" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1
}

# Prints the command (one path) of a Python >= 3.12, or fails with instructions.
find_python() {
  local candidate version root
  if [[ -n ${PYTHON:-} ]]; then
    _python_ok "$PYTHON" && { command -v "$PYTHON"; return 0; }
    die "PYTHON=$PYTHON is not a working Python >= 3.12."
  fi
  # 1. Plain executables on PATH (pyenv shims only work when a matching version is selected).
  for candidate in python3.12 python3.13 python3; do
    if command -v "$candidate" >/dev/null 2>&1 && _python_ok "$candidate"; then
      # Resolve pyenv shims to the real interpreter so that the venv does not depend on them.
      "$candidate" -c 'import sys; print(sys.executable)'
      return 0
    fi
  done
  # 2. pyenv-installed versions (shims need PYENV_VERSION; use the interpreter directly).
  if command -v pyenv >/dev/null 2>&1; then
    root="$(pyenv root 2>/dev/null || true)"
    for version in $(pyenv versions --bare 2>/dev/null | grep -E '^3\.(1[2-9])(\.[0-9]+)?$' | sort -V); do
      # Prefer 3.12 (the version the pins are tested on), then newer ones.
      candidate="$root/versions/$version/bin/python3"
      if [[ -x $candidate ]] && _python_ok "$candidate"; then echo "$candidate"; return 0; fi
      if PYENV_VERSION="$version" _python_ok pyenv exec python3; then
        PYENV_VERSION="$version" pyenv exec python3 -c 'import sys; print(sys.executable)'
        return 0
      fi
    done
  fi
  # 3. Well-known install folders.
  for candidate in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.1[2-9]*/bin/python3 \
                   /root/.pyenv/versions/3.1[2-9]*/bin/python3 \
                   /usr/local/bin/python3.1[2-9] /usr/bin/python3.1[2-9]; do
    if [[ -x $candidate ]] && _python_ok "$candidate"; then echo "$candidate"; return 0; fi
  done
  die "no Python >= 3.12 found (Django 6.1 needs it). Install one, e.g. 'pyenv install 3.12' or
       'apt-get install python3.12 python3.12-venv' where available, or point PYTHON=/path/to/python3.12."
}

# Creates .venv with a Python >= 3.12 unless a working one is there.
ensure_venv() {
  if [[ -x $VPY ]] && _python_ok "$VPY"; then
    return 0
  fi
  local py
  py="$(find_python)" || exit 1
  [[ -e $VENV ]] && { warn "$VENV is not a working Python >= 3.12 virtualenv; recreating it."; rm -rf "$VENV"; }
  say "Creating .venv with $py ($("$py" -V 2>&1))"
  "$py" -m venv "$VENV" || die "could not create $VENV with $py (is the venv module installed?)."
  "$VPY" -m pip install --disable-pip-version-check -q --upgrade pip >/dev/null 2>&1 || true
}

# True when pkg-config can find the MariaDB/MySQL client library mysqlclient builds against.
_mysql_headers_present() {
  command -v pkg-config >/dev/null 2>&1 || return 1
  pkg-config --exists mysqlclient 2>/dev/null || pkg-config --exists libmariadb 2>/dev/null \
    || pkg-config --exists mariadb 2>/dev/null
}

# mysqlclient compiles against libmariadb-dev and needs pkg-config: install them if missing.
ensure_mysql_build_deps() {
  "$VPY" -c 'import MySQLdb' >/dev/null 2>&1 && return 0   # already built and installed
  _mysql_headers_present && return 0
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    say "Installing libmariadb-dev and pkg-config (needed to build mysqlclient)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null || warn "apt-get update failed; trying the install anyway."
    apt-get install -y -qq libmariadb-dev pkg-config >/dev/null \
      || die "apt-get install libmariadb-dev pkg-config failed."
    _mysql_headers_present || die "libmariadb-dev installed but pkg-config still cannot find it."
  else
    die "mysqlclient needs the MariaDB client headers and pkg-config. Run as root:
       apt-get update && apt-get install -y libmariadb-dev pkg-config
       (or your system's equivalent), then run this script again."
  fi
}

# pip-installs a requirements file unless the same content was installed before.
install_requirements() {
  local file="$1" stamp sum
  stamp="$VENV/.installed-$(basename "$file").sha256"
  # The stamp covers the file and the files it includes with -r.
  sum="$(cd "$ROOT" && cat "$file" $(sed -n 's/^-r[[:space:]]*//p' "$file") 2>/dev/null | sha256sum | cut -d' ' -f1)"
  if [[ -f $stamp && $(cat "$stamp") == "$sum" ]]; then
    return 0
  fi
  say "Installing $(basename "$file") into .venv"
  # pip's notes about find-links folders of this machine's pip config that do not exist are
  # dropped; everything else it says is shown.
  local log
  log="$(mktemp)"
  if ! (cd "$ROOT" && "$VPY" -m pip install --disable-pip-version-check -q -r "$file") >"$log" 2>&1; then
    grep -v "is ignored: it is neither a file nor a directory" "$log" >&2
    rm -f "$log"
    die "pip install -r $file failed (see the messages above)."
  fi
  grep -v "is ignored: it is neither a file nor a directory" "$log" || true
  rm -f "$log"
  echo "$sum" >"$stamp"
}

is_mysql_url() { [[ ${1:-} == mysql://* || ${1:-} == mysql2://* || ${1:-} == mariadb://* ]]; }
