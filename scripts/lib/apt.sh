# Shared helper for scripts/ensure/*.sh: install Debian packages, running `apt-get update` once.
apt_install() {
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if [ ! -f /tmp/.sse-gateway-apt-updated ]; then
    $sudo apt-get update -qq && touch /tmp/.sse-gateway-apt-updated
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
