# Sourced by the tests/outside scripts: their tools and their verdict lines.
#
# The PyPI tools live in one virtualenv under ~/.cache/route-ci (kept between CI runs on the
# same machine; made again from PyPI on a new one). Versions are pinned so that a new release
# of a scanner does not turn CI red on an unchanged repository.

SCANNERS_VENV=${SCANNERS_VENV:-$HOME/.cache/route-ci/venv-scanners}
SCANNERS_PACKAGES=(checkov==3.3.30 kubernetes-validate==1.37.0 sslyze==6.3.1 redbot==2.7.1)

# Makes the virtualenv and installs the pinned packages that are missing.
scanners_venv() {
  [ -x "$SCANNERS_VENV/bin/python" ] || python3 -m venv "$SCANNERS_VENV" || {
    # Debian's python3 ships venv in a package of its own.
    apt-get -o DPkg::Lock::Timeout=900 update -qq &&
      DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -qq python3-venv &&
      python3 -m venv "$SCANNERS_VENV"
  } || return 1
  local have
  have=$("$SCANNERS_VENV/bin/python" -m pip freeze 2>/dev/null | tr 'A-Z_' 'a-z-')
  local missing=()
  for p in "${SCANNERS_PACKAGES[@]}"; do
    grep -qx -- "$p" <<<"$have" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] ||
    "$SCANNERS_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${missing[@]}"
}

# The route binary the scanners talk to: the debug build the test command leaves (built here if
# it is missing; a no-op after `cargo test`).
route_bin() {
  cargo build --quiet --locked --bin route >&2 || return 1
  echo "${CARGO_TARGET_DIR:-target}/debug/route"
}

passed=0 failed=0
pass() { passed=$((passed + 1)); echo "ok   $*"; }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }
verdict() { echo "$passed passed, $failed failed"; [ "$failed" -eq 0 ]; }
