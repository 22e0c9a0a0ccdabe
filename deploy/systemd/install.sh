#!/usr/bin/env bash
# Installs or upgrades Hearth as a systemd service. Idempotent: run it again to upgrade.
#
#   sudo deploy/systemd/install.sh [--src DIR] [--python PYTHON] [--no-start]
#
# What it does (each step is skipped when already done):
#   1. system user and group `hearth` (no login shell, home /var/lib/hearth)
#   2. /opt/hearth/.venv with Hearth and its `serve` extra; llama-cpp-python is compiled from
#      source with the library-only CMake options below (3-15 minutes the first time)
#   3. /etc/hearth with hearth.yaml and hearth.env (kept if present; examples refreshed)
#   4. /etc/systemd/system/hearth.service, enabled; restarted when it was running (upgrade)
#
# Needs: root, Python >= 3.10 with venv, a C/C++ compiler (Debian/Ubuntu:
#   apt-get install python3-venv build-essential cmake).

set -euo pipefail

readonly PREFIX=/opt/hearth
readonly VENV="${PREFIX}/.venv"
readonly CONF_DIR=/etc/hearth
readonly STATE_DIR=/var/lib/hearth
readonly UNIT_PATH=/etc/systemd/system/hearth.service
readonly SERVICE_USER=hearth
# Keep in sync with LLAMA_CMAKE_ARGS in the Makefile (the test checks). llama.cpp is tuned for
# this host's CPU (GGML_NATIVE); if /opt/hearth is copied to other machines, build portably:
#   sudo EXTRA_CMAKE_ARGS=-DGGML_NATIVE=OFF deploy/systemd/install.sh
# NVIDIA GPU offload (n_gpu_layers) needs a CUDA build; nvcc must be on root's PATH:
#   sudo env PATH="/usr/local/cuda/bin:$PATH" EXTRA_CMAKE_ARGS=-DGGML_CUDA=on deploy/systemd/install.sh
# EXTRA_CMAKE_ARGS rebuilds llama-cpp-python on every run that sets it; runs without it keep the
# build that is installed.
readonly LLAMA_CMAKE_ARGS="-DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_OPENSSL=OFF"
# x86: leave llama.cpp's AMX kernels out (as the Makefile does): on an AMX Xeon VM they crashed
# every multi-token decode; the AVX-512 kernels do the work instead.
LLAMA_CPU_ARGS=""
[[ "$(uname -m)" == x86_64 ]] && LLAMA_CPU_ARGS="-DCMAKE_C_FLAGS=-mno-amx-int8 -DCMAKE_CXX_FLAGS=-mno-amx-int8"
readonly LLAMA_CPU_ARGS

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src_dir="$(cd "${script_dir}/../.." && pwd)"
python_bin="${PYTHON:-python3}"
start_service=1

log() { printf '==> %s\n' "$*"; }
die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }

usage() {
  sed -n '2,4p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

while (($# > 0)); do
  case "$1" in
    --src) [[ $# -ge 2 ]] || die "--src needs a directory"; src_dir="$(cd "$2" && pwd)"; shift 2 ;;
    --python) [[ $# -ge 2 ]] || die "--python needs an interpreter"; python_bin="$2"; shift 2 ;;
    --no-start) start_service=0; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done

[[ ${EUID} -eq 0 ]] || die "run as root (sudo $0)"
[[ -f "${src_dir}/pyproject.toml" ]] || die "${src_dir} is not the Hearth source tree (no pyproject.toml)"
command -v systemctl >/dev/null || die "systemctl not found: this installer targets systemd hosts"
command -v "${python_bin}" >/dev/null || die "${python_bin} not found"
"${python_bin}" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
  || die "${python_bin} is older than Python 3.10"
"${python_bin}" -c 'import venv, ensurepip' 2>/dev/null \
  || die "${python_bin} lacks venv/ensurepip (Debian/Ubuntu: apt-get install python3-venv)"
command -v c++ >/dev/null || die "no C++ compiler (Debian/Ubuntu: apt-get install build-essential cmake)"
# The venv links to its base interpreter, which the service must see: hearth.service runs as
# hearth and hides /home and /root (ProtectHome=), so pyenv or conda in a home directory fails.
venv_base="${python_bin}"
fix="rerun with --python and an interpreter outside home directories, e.g. /usr/bin/python3"
if [[ -x "${VENV}/bin/python" ]]; then
  venv_base="${VENV}/bin/python"
  fix="remove ${VENV}, then ${fix}"
fi
base_prefix="$("${venv_base}" -c 'import os, sys; print(os.path.realpath(sys.base_prefix))')"
case "${base_prefix}/" in
  /root/* | /home/* | /run/user/*)
    die "${venv_base} runs the Python in ${base_prefix}, which hearth.service cannot see (ProtectHome=): ${fix}" ;;
esac

# 1. User and group -------------------------------------------------------------------------
if ! getent group "${SERVICE_USER}" >/dev/null; then
  log "creating group ${SERVICE_USER}"
  groupadd --system "${SERVICE_USER}"
fi
if ! getent passwd "${SERVICE_USER}" >/dev/null; then
  log "creating user ${SERVICE_USER}"
  useradd --system --gid "${SERVICE_USER}" --home-dir "${STATE_DIR}" --no-create-home \
    --shell /usr/sbin/nologin --comment "Hearth LLM server" "${SERVICE_USER}"
fi

# 2. Directories and virtualenv (code is root-owned: the service cannot modify it) ------------
install -d -m 0755 -o root -g root "${PREFIX}" "${PREFIX}/share"
install -d -m 0750 -o root -g "${SERVICE_USER}" "${CONF_DIR}"
install -d -m 0750 -o "${SERVICE_USER}" -g "${SERVICE_USER}" "${STATE_DIR}"

if [[ ! -x "${VENV}/bin/python" ]]; then
  log "creating ${VENV}"
  "${python_bin}" -m venv "${VENV}"
fi
log "installing Hearth from ${src_dir} (compiles llama-cpp-python on first install)"
"${VENV}/bin/python" -m pip install --quiet --upgrade pip
no_cache=""
if [[ -n "${EXTRA_CMAKE_ARGS:-}" ]]; then
  # A different llama.cpp build (GPU, portable CPU): pip would keep the installed llama-cpp-python,
  # or reuse its cached wheel, whatever CMAKE_ARGS say. Remove it and build it again, uncached.
  log "rebuilding llama-cpp-python with EXTRA_CMAKE_ARGS=${EXTRA_CMAKE_ARGS}"
  "${VENV}/bin/python" -m pip uninstall --quiet --yes llama-cpp-python || true
  no_cache=1
fi
CMAKE_ARGS="${LLAMA_CMAKE_ARGS} ${LLAMA_CPU_ARGS} ${EXTRA_CMAKE_ARGS:-}" \
  "${VENV}/bin/python" -m pip install --quiet ${no_cache:+--no-cache-dir} "${src_dir}[serve]"
# Same version number, new code (an upgrade from a newer checkout): reinstall Hearth itself.
"${VENV}/bin/python" -m pip install --quiet --no-deps --force-reinstall "${src_dir}"
"${VENV}/bin/hearth" --help >/dev/null || die "the installed hearth command does not run"

# 3. Configuration: never overwrite the operator's files; refresh the examples ---------------
install -m 0644 -o root -g root "${script_dir}/hearth.yaml.example" "${CONF_DIR}/hearth.yaml.example"
install -m 0644 -o root -g root "${script_dir}/hearth.env.example" "${CONF_DIR}/hearth.env.example"
if [[ -f "${script_dir}/../README.md" ]]; then
  install -m 0644 -o root -g root "${script_dir}/../README.md" "${PREFIX}/share/README.md"
fi
if [[ ! -e "${CONF_DIR}/hearth.yaml" ]]; then
  log "writing ${CONF_DIR}/hearth.yaml (embedded model; edit it, see hearth.yaml.example)"
  # Validated by tests/deploy/test_manifests.py.
  cat >"${CONF_DIR}/hearth.yaml" <<'YAML'
# Hearth settings: every option is described in /etc/hearth/hearth.yaml.example.
# This starting point serves the small embedded model and the generated sample database on
# 127.0.0.1:8000. Add your GGUF under `models:` and your databases under `databases:`.
host: 127.0.0.1
port: 8000
models:
  - name: smollm2-135m-instruct
    path: embedded:smollm2
YAML
  chown root:"${SERVICE_USER}" "${CONF_DIR}/hearth.yaml"
  chmod 0640 "${CONF_DIR}/hearth.yaml"
fi
if [[ ! -e "${CONF_DIR}/hearth.env" ]]; then
  log "writing ${CONF_DIR}/hearth.env (all variables commented out)"
  install -m 0640 -o root -g "${SERVICE_USER}" "${script_dir}/hearth.env.example" "${CONF_DIR}/hearth.env"
fi

# 4. systemd unit ---------------------------------------------------------------------------
install -m 0644 -o root -g root "${script_dir}/hearth.service" "${UNIT_PATH}"
if command -v systemd-analyze >/dev/null; then
  systemd-analyze verify "${UNIT_PATH}" || log "warning: systemd-analyze verify reported problems (above)"
fi
systemctl daemon-reload
systemctl enable hearth.service
if systemctl is-active --quiet hearth.service; then
  log "restarting hearth.service (upgrade)"
  systemctl restart hearth.service
elif ((start_service)); then
  log "starting hearth.service"
  systemctl start hearth.service
fi

log "done. Status: systemctl status hearth; logs: journalctl -u hearth -f"
log "ready when: curl -fsS http://127.0.0.1:8000/ready"
