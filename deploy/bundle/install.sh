#!/usr/bin/env bash
# Installs Hearth from an offline bundle made by `hearth bundle`. Uses no network at all.
#
#   sudo ./install.sh [--prefix DIR] [--conf-dir DIR] [--models-dir DIR] [--state-dir DIR]
#                     [--python PYTHON] [--systemd] [--no-doctor]
#
# Steps (run it again to upgrade; your hearth.yaml is kept):
#   1. every file of the bundle is checked against SHA256SUMS: nothing is touched if one differs
#   2. PYTHON (default python3) must be the Python version the wheels were built for (bundle.json)
#   3. <prefix>/.venv (default /opt/hearth/.venv) gets requirements.lock from wheelhouse/ only:
#      pip --no-index --require-hashes, with this host's pip configuration ignored
#   4. models/ goes to --models-dir (default /srv/hearth/models) and serve.yaml, naming them, to
#      <conf-dir>/hearth.yaml (default /etc/hearth); an existing hearth.yaml is kept and the
#      bundle's is written beside it as hearth.yaml.bundle
#   5. --systemd: user hearth, deploy/systemd/hearth.service installed, enabled and (re)started
#   6. hearth doctor checks this machine against the installed settings (--no-doctor skips it)
#
# Needs: bash, coreutils (sha256sum), and the bundle's Python version with venv (Debian/Ubuntu:
# apt-get install python3-venv). No compiler: llama-cpp-python comes prebuilt in wheelhouse/.

set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
prefix=/opt/hearth
conf_dir=/etc/hearth
models_dir=/srv/hearth/models
state_dir=/var/lib/hearth
python_bin=python3
with_systemd=0
run_doctor=1
readonly SERVICE_USER=hearth
readonly UNIT_PATH=/etc/systemd/system/hearth.service

log() { printf '==> %s\n' "$*"; }
die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,6p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
need_arg() { [[ $# -ge 2 && -n "$2" ]] || die "$1 needs a value"; }

while (($# > 0)); do
  case "$1" in
    --prefix) need_arg "$@"; prefix="$2"; shift 2 ;;
    --conf-dir) need_arg "$@"; conf_dir="$2"; shift 2 ;;
    --models-dir) need_arg "$@"; models_dir="$2"; shift 2 ;;
    --state-dir) need_arg "$@"; state_dir="$2"; shift 2 ;;
    --python) need_arg "$@"; python_bin="$2"; shift 2 ;;
    --systemd) with_systemd=1; shift ;;
    --no-doctor) run_doctor=0; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done
# serve.yaml names the models by this directory, unquoted: keep it a plain absolute path.
for dir in "${prefix}" "${conf_dir}" "${models_dir}" "${state_dir}"; do
  [[ "${dir}" =~ ^/[A-Za-z0-9._/+-]+$ ]] || die "${dir}: use an absolute path of letters, digits and ._/+-"
done
venv="${prefix}/.venv"

# 1. Integrity, before anything is written -------------------------------------------------------
command -v sha256sum >/dev/null || die "sha256sum not found (coreutils)"
[[ -f "${here}/SHA256SUMS" ]] || die "${here}/SHA256SUMS is missing: this is not a whole Hearth bundle"
log "checking $(wc -l <"${here}/SHA256SUMS") files against SHA256SUMS"
(cd "${here}" && sha256sum --check --quiet --strict SHA256SUMS) \
  || die "the bundle is damaged or was changed (files listed above): copy it again, nothing was installed"

# 2. The Python the wheels were built for ---------------------------------------------------------
command -v "${python_bin}" >/dev/null || die "${python_bin} not found (pick one with --python)"
read -r want_python want_machine < <("${python_bin}" -c \
  'import json, sys; m = json.load(open(sys.argv[1])); print(m["python"], m["machine"])' "${here}/bundle.json")
read -r have_python have_machine < <("${python_bin}" -c \
  'import platform, sys; print("%d.%d" % sys.version_info[:2], platform.machine())')
[[ "${have_python} ${have_machine}" == "${want_python} ${want_machine}" ]] \
  || die "the wheels are for Python ${want_python} on ${want_machine}; ${python_bin} is Python ${have_python} on ${have_machine} (pick another with --python, or build the bundle with that Python)"
"${python_bin}" -c 'import venv, ensurepip' 2>/dev/null \
  || die "${python_bin} lacks venv/ensurepip (Debian/Ubuntu: apt-get install python3-venv)"
if ((with_systemd)); then
  [[ ${EUID} -eq 0 ]] || die "--systemd needs root"
  command -v systemctl >/dev/null || die "--systemd: systemctl not found"
  [[ "${prefix}:${conf_dir}:${state_dir}" == "/opt/hearth:/etc/hearth:/var/lib/hearth" ]] \
    || die "--systemd installs deploy/systemd/hearth.service, which runs /opt/hearth/.venv/bin/hearth with /etc/hearth/hearth.yaml and /var/lib/hearth: keep the default --prefix, --conf-dir and --state-dir"
  # The unit hides home directories (ProtectHome=): the models and the venv's base Python must
  # live outside them.
  base_prefix="$("${python_bin}" -c 'import os, sys; print(os.path.realpath(sys.base_prefix))')"
  for dir in "${base_prefix}" "${models_dir}"; do
    case "${dir}/" in
      /root/* | /home/* | /run/user/*) die "${dir} is under a home directory, which hearth.service cannot see (ProtectHome=)" ;;
    esac
  done
fi

# 3. The virtualenv, from the wheelhouse only ------------------------------------------------------
# Nothing from this host's pip setup (pip.conf, PIP_* variables: extra indexes, find-links) may
# add a source: the wheelhouse alone must do, and pip never looks for a newer version of itself.
while read -r name; do unset "${name}"; done < <(compgen -e | grep '^PIP_' || true)
export PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
pip_offline=(--no-index --find-links "${here}/wheelhouse" --require-hashes --only-binary :all:)

install -d -m 0755 "${prefix}" "${prefix}/share"
if [[ -x "${venv}/bin/python" ]]; then
  log "upgrading ${venv}"
else
  log "creating ${venv} with ${python_bin}"
  "${python_bin}" -m venv "${venv}"
fi
log "installing $(grep -c '^[a-z]' "${here}/requirements.lock") locked wheels (no network)"
"${venv}/bin/python" -m pip install --quiet "${pip_offline[@]}" -r "${here}/requirements.lock"
# The same version number with new code (a bundle of a newer checkout): reinstall Hearth itself.
hearth_lock="$(mktemp)"
trap 'rm -f "${hearth_lock}"' EXIT
grep '^hearth==' "${here}/requirements.lock" >"${hearth_lock}"
"${venv}/bin/python" -m pip install --quiet --no-deps --force-reinstall "${pip_offline[@]}" -r "${hearth_lock}"
"${venv}/bin/hearth" --help >/dev/null || die "the installed hearth command does not run"
install -m 0644 "${here}/bundle.json" "${here}/sbom.cdx.json" "${here}/requirements.lock" "${prefix}/share/"
install -m 0644 "${here}/deploy/README.md" "${prefix}/share/README.md"

# 4. Models and settings ---------------------------------------------------------------------------
owner=(); conf_mode=0755
if ((with_systemd)); then
  getent group "${SERVICE_USER}" >/dev/null || { log "creating group ${SERVICE_USER}"; groupadd --system "${SERVICE_USER}"; }
  if ! getent passwd "${SERVICE_USER}" >/dev/null; then
    log "creating user ${SERVICE_USER}"
    useradd --system --gid "${SERVICE_USER}" --home-dir "${state_dir}" --no-create-home \
      --shell /usr/sbin/nologin --comment "Hearth LLM server" "${SERVICE_USER}"
  fi
  owner=(-o root -g "${SERVICE_USER}"); conf_mode=0750
fi
install -d -m 0755 "${models_dir}"
shopt -s nullglob
models=("${here}"/models/*)
if ((${#models[@]})); then
  log "copying ${#models[@]} model file(s) to ${models_dir}"
  install -m 0644 "${models[@]}" "${models_dir}/"
fi
install -d -m "${conf_mode}" "${owner[@]}" "${conf_dir}"
if ((with_systemd)); then
  install -d -m 0750 -o "${SERVICE_USER}" -g "${SERVICE_USER}" "${state_dir}"
else
  install -d -m 0750 "${state_dir}"
fi
install -m 0644 "${here}/deploy/systemd/hearth.yaml.example" "${here}/deploy/systemd/hearth.env.example" "${conf_dir}/"
escaped="$(printf '%s' "${models_dir}" | sed 's/[&|\\]/\\&/g')"
config="$(mktemp)"
trap 'rm -f "${hearth_lock}" "${config}"' EXIT
sed "s|@MODELS_DIR@|${escaped}|g" "${here}/serve.yaml" >"${config}"
if [[ ! -e "${conf_dir}/hearth.yaml" ]]; then
  log "writing ${conf_dir}/hearth.yaml"
  install -m 0640 "${owner[@]}" "${config}" "${conf_dir}/hearth.yaml"
elif ! cmp -s "${config}" "${conf_dir}/hearth.yaml"; then
  log "keeping your ${conf_dir}/hearth.yaml; the bundle's settings are in ${conf_dir}/hearth.yaml.bundle"
  install -m 0640 "${owner[@]}" "${config}" "${conf_dir}/hearth.yaml.bundle"
fi

# 5. systemd --------------------------------------------------------------------------------------
if ((with_systemd)); then
  [[ -e "${conf_dir}/hearth.env" ]] || install -m 0640 "${owner[@]}" "${here}/deploy/systemd/hearth.env.example" "${conf_dir}/hearth.env"
  install -m 0644 -o root -g root "${here}/deploy/systemd/hearth.service" "${UNIT_PATH}"
  if command -v systemd-analyze >/dev/null; then
    systemd-analyze verify "${UNIT_PATH}" || log "warning: systemd-analyze verify reported problems (above)"
  fi
  systemctl daemon-reload
  systemctl enable hearth.service
  if systemctl is-active --quiet hearth.service; then
    log "restarting hearth.service (upgrade)"
    systemctl restart hearth.service
  else
    log "starting hearth.service"
    systemctl start hearth.service
  fi
fi

# 6. hearth doctor, as the service will run -------------------------------------------------------
if ((run_doctor)); then
  log "hearth doctor --config ${conf_dir}/hearth.yaml"
  as_service=()
  ((with_systemd)) && as_service=(runuser -u "${SERVICE_USER}" --)
  (cd "${state_dir}" && "${as_service[@]}" env HEARTH_DATA_DIR="${state_dir}" \
    "${venv}/bin/hearth" doctor --config "${conf_dir}/hearth.yaml") \
    || die "Hearth is installed, but hearth doctor found a problem (above): fix it and run the doctor again"
fi
log "done: ${venv}/bin/hearth serve --config ${conf_dir}/hearth.yaml (HEARTH_DATA_DIR=${state_dir})"
