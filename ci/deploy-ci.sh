#!/bin/sh
# The CI entry point around `deploy ci` (SPEC §6), called by the GitHub
# Actions workflow and the .travis.yml in templates/:
#
#   sh ci/deploy-ci.sh [deploy ci options, e.g. --branch main]
#
# Checks that the deploy binary is there and that the three settings are
# present (by name: a value is never printed), then runs `deploy ci`, which
# decides on its own whether this build publishes (the deploy branch) or not
# (other branches, pull requests).
#
#   DEPLOY_SSH_KEY       the pipeline's private key, as text; or
#   DEPLOY_SSH_KEY_B64   the same, base64-encoded on one line (for CI
#                        settings that cannot hold several lines, e.g.
#                        Travis CI's); decoded here, into memory only
#   DEPLOY_KNOWN_HOSTS   known_hosts lines for the hosts and the repository
#                        (or DEPLOY_KNOWN_HOSTS_B64, base64 of them)
#   DEPLOY_REPO          the deployment repository (ssh://...)
#   DEPLOY_BIN           the deploy binary (default: `deploy` in PATH)
set -eu
# Never trace this script: the key is in its variables.
set +x

deploy=${DEPLOY_BIN:-deploy}

fail() {
	if [ "${GITHUB_ACTIONS:-}" = true ]; then
		echo "::error::deploy-ci: $*"
	fi
	echo "deploy-ci: $*" >&2
	exit 1
}

if ! command -v "$deploy" >/dev/null 2>&1; then
	fail "'$deploy' not found: install unideploy (make install) or set DEPLOY_BIN"
fi

# A pull request gets no secrets from GitHub or Travis (forks), and
# publishes nothing anyway: `deploy ci` says it skipped it.
pull_request=
case ${GITHUB_EVENT_NAME:-} in pull_request*) pull_request=1 ;; esac
case ${TRAVIS_PULL_REQUEST:-false} in false) ;; *) pull_request=1 ;; esac

if [ -z "${DEPLOY_SSH_KEY:-}" ] && [ -n "${DEPLOY_SSH_KEY_B64:-}" ]; then
	DEPLOY_SSH_KEY=$(printf '%s' "$DEPLOY_SSH_KEY_B64" | base64 -d 2>/dev/null) ||
		fail "DEPLOY_SSH_KEY_B64 is not base64"
	export DEPLOY_SSH_KEY
fi
unset DEPLOY_SSH_KEY_B64
if [ -z "${DEPLOY_KNOWN_HOSTS:-}" ] && [ -n "${DEPLOY_KNOWN_HOSTS_B64:-}" ]; then
	DEPLOY_KNOWN_HOSTS=$(printf '%s' "$DEPLOY_KNOWN_HOSTS_B64" | base64 -d 2>/dev/null) ||
		fail "DEPLOY_KNOWN_HOSTS_B64 is not base64"
	export DEPLOY_KNOWN_HOSTS
fi

if [ -z "$pull_request" ]; then
	missing=
	[ -n "${DEPLOY_SSH_KEY:-}" ] || missing="$missing DEPLOY_SSH_KEY"
	[ -n "${DEPLOY_KNOWN_HOSTS:-}" ] || missing="$missing DEPLOY_KNOWN_HOSTS"
	[ -n "${DEPLOY_REPO:-}" ] || missing="$missing DEPLOY_REPO"
	if [ -n "$missing" ]; then
		fail "not set:$missing (CI secrets or variables: see docs/ssh-and-ci.md)"
	fi
fi

exec "$deploy" ci "$@"
