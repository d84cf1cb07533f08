#!/bin/sh
# Install Debian's OpenSSH server binary for tests/test_dvc_ssh.py (root only, Debian/Ubuntu only).
# The test never uses the system service or /etc/ssh/sshd_config: it runs its own `sshd -D -f <tmp>`
# on 127.0.0.1 with a throwaway host key. This script only makes /usr/sbin/sshd exist, and keeps
# the package's service from being started (policy-rc.d) so nothing listens on port 22 afterwards.
#   sh tests/ssh/install_sshd.sh          # idempotent; exits 0 at once when sshd is already there
set -eu

if command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ]; then
    echo "sshd already installed: $(command -v sshd || echo /usr/sbin/sshd)"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "install_sshd.sh: must run as root (apt-get)" >&2
    exit 2
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_sshd.sh: apt-get not found (not Debian/Ubuntu)" >&2
    exit 2
fi

# Keep maintainer scripts from starting the system sshd (Docker images usually ship this already).
added_policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    added_policy=1
fi
cleanup() { [ -n "$added_policy" ] && rm -f /usr/sbin/policy-rc.d; return 0; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
# Lists are fetched only when the package is not already known to apt.
if ! apt-cache show openssh-server >/dev/null 2>&1; then
    apt-get update -q
fi
apt-get install -y -q --no-install-recommends openssh-server
test -x /usr/sbin/sshd
echo "installed $(/usr/sbin/sshd -V 2>&1 | head -n 1 || true)"
