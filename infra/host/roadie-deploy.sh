#!/bin/bash
# roadie-deploy.sh: run ONE phase of a Roadie deploy on this host.
#
# Run by SSM Run Command through the Roadie-Deploy document (infra/ssm_document.py puts one
# VAR='value' line per document parameter in front of this body), or directly with the same
# variables in the environment (tests, the local host agent, a human on a host).
#
# Variables: PHASE APP SHA, and optionally PREVIOUS_SHA SOURCE_KIND(git|s3) SOURCE_URL
#   DEPLOY_ROOT(/srv/roadie) BUILD_COMMAND MIGRATE_COMMAND POST_MIGRATE_COMMAND HEALTH_COMMAND
#   RESTART_COMMAND KEEP_RELEASES(5) EXECUTION_TIMEOUT(600).
#   ROADIE_HOST_ROOT (local sandboxes only) replaces DEPLOY_ROOT. (The local host agent, not this
#   script, honours the fault.<phase> switches.)
# Layout (Capistrano): <root>/<app>/releases/<sha>/ (with REVISION), current -> releases/<sha>,
#   shared/.env and shared/log/ (linked into each release as .env and log), revisions.log.
# Commands are split on spaces and run as argv (never through a shell), in the release dir, with
#   ROADIE_PHASE ROADIE_SHA ROADIE_APP ROADIE_RELEASE_DIR RELEASE_DIR and the release's .env.
# Every phase ends (success or failure, once parameters are valid) with one stdout line
#   CURRENT_REVISION=<sha> naming the release `current` points at (empty: none).
# Exit codes: 0 ok, 1 unexpected error, 2 bad or missing parameter, 3 fetch failed,
#   4 build failed, 5 release not staged, 6 migrate failed, 7 post_migrate failed or release
#   not current, 8 switch or restart failed, 9 current release is not SHA, 10 health check
#   failed, 11 rollback impossible or failed, 12 another phase holds the host lock.
set -Eeuo pipefail
umask 022

say() { printf 'roadie: %s\n' "$*"; }
warn() { printf 'roadie: warning: %s\n' "$*" >&2; }
die() {
  local code=$1
  shift
  printf 'roadie: error: %s\n' "$*" >&2
  exit "$code"
}
trap 'printf "roadie: error: unexpected failure (exit %s) at line %s: %s\n" "$?" "$LINENO" "$BASH_COMMAND" >&2; exit 1' ERR

TMP_RELEASE=""
TMP_LINK=""
CURRENT=""
cleanup() {
  if [[ -n $TMP_RELEASE ]]; then rm -rf -- "$TMP_RELEASE"; fi
  if [[ -n $TMP_LINK ]]; then rm -f -- "$TMP_LINK"; fi
  # Every phase, success or failure, ends by saying which release this host now runs (empty:
  # none): the one parseable line Roadie records per host (domain/fleet.py).
  if [[ -n $CURRENT ]] && declare -F current_sha > /dev/null; then
    printf 'CURRENT_REVISION=%s\n' "$(current_sha)"
  fi
}
trap cleanup EXIT

# --- parameters: the same rules as the document's allowedPatterns, checked again here -------
PHASE=${PHASE-}
APP=${APP-}
SHA=${SHA-}
PREVIOUS_SHA=${PREVIOUS_SHA-}
SOURCE_KIND=${SOURCE_KIND:-git}
SOURCE_URL=${SOURCE_URL-}
DEPLOY_ROOT=${DEPLOY_ROOT:-/srv/roadie}
BUILD_COMMAND=${BUILD_COMMAND-}
MIGRATE_COMMAND=${MIGRATE_COMMAND-}
POST_MIGRATE_COMMAND=${POST_MIGRATE_COMMAND-}
HEALTH_COMMAND=${HEALTH_COMMAND-}
RESTART_COMMAND=${RESTART_COMMAND-}
KEEP_RELEASES=${KEEP_RELEASES:-5}
EXECUTION_TIMEOUT=${EXECUTION_TIMEOUT:-600}

check() { # check NAME VALUE REGEX
  local LC_ALL=C
  [[ $2 =~ $3 ]] || die 2 "invalid or missing $1: must match $3"
}
COMMAND_RE='^[A-Za-z0-9 _./=:,+-]{0,256}$'
check PHASE "$PHASE" '^(stage|migrate|post_migrate|switch|verify|rollback)$'
check APP "$APP" '^[a-z][a-z0-9-]{0,39}$'
check SHA "$SHA" '^[0-9a-f]{40}$'
check PREVIOUS_SHA "$PREVIOUS_SHA" '^([0-9a-f]{40})?$'
check SOURCE_KIND "$SOURCE_KIND" '^(git|s3)$'
check SOURCE_URL "$SOURCE_URL" '^([A-Za-z0-9/~.][A-Za-z0-9@:/._+~-]{0,511})?$'
check DEPLOY_ROOT "$DEPLOY_ROOT" '^/[A-Za-z0-9._/-]{0,255}$'
check BUILD_COMMAND "$BUILD_COMMAND" "$COMMAND_RE"
check MIGRATE_COMMAND "$MIGRATE_COMMAND" "$COMMAND_RE"
check POST_MIGRATE_COMMAND "$POST_MIGRATE_COMMAND" "$COMMAND_RE"
check HEALTH_COMMAND "$HEALTH_COMMAND" "$COMMAND_RE"
check RESTART_COMMAND "$RESTART_COMMAND" "$COMMAND_RE"
check KEEP_RELEASES "$KEEP_RELEASES" '^[0-9]{1,2}$'
check EXECUTION_TIMEOUT "$EXECUTION_TIMEOUT" '^[1-9][0-9]{0,4}$'

if [[ -n ${ROADIE_HOST_ROOT-} ]]; then
  HOST_ROOT=${ROADIE_HOST_ROOT%/}
  APP_DIR=$HOST_ROOT/$APP
  export ROADIE_HOST_ID=${ROADIE_HOST_ID:-${HOST_ROOT##*/}}
else
  APP_DIR=$DEPLOY_ROOT/$APP
fi
mkdir -p -- "$APP_DIR/releases" "$APP_DIR/shared/log"
APP_DIR=$(cd -- "$APP_DIR" && pwd -P)
RELEASES=$APP_DIR/releases
CURRENT=$APP_DIR/current

# One phase at a time per app on a host; the lock dies with the process (no stale locks).
if command -v flock > /dev/null 2>&1; then
  exec 9> "$APP_DIR/.roadie.lock"
  flock -w "$EXECUTION_TIMEOUT" 9 || die 12 "another roadie phase holds $APP_DIR/.roadie.lock"
fi

# --- helpers -------------------------------------------------------------------------------
revision_of() { # revision_of DIR: the REVISION in DIR, or nothing
  if [[ -f $1/REVISION ]]; then tr -d '[:space:]' < "$1/REVISION"; fi
}
is_staged() { # is_staged SHA: releases/SHA is a complete release of SHA
  [[ -d $RELEASES/$1 && ! -L $RELEASES/$1 && "$(revision_of "$RELEASES/$1")" == "$1" ]]
}
current_sha() { # the sha `current` points at, or nothing
  local target=""
  if [[ -L $CURRENT ]]; then target=$(readlink -- "$CURRENT" || true); fi
  target=${target%/}
  printf '%s' "${target##*/}"
}
record() { # append one line to revisions.log: who can tell afterwards what ran here
  printf '%s %s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$PHASE" "$*" >> "$APP_DIR/revisions.log"
}

DOTENV=()
read_dotenv() { # read_dotenv FILE: its KEY=VALUE lines into DOTENV, never evaluated
  local file=$1 line key value
  local comment_re='^[[:space:]]*(#.*)?$'
  local assign_re='^[[:space:]]*(export[[:space:]]+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$'
  local dquoted_re='^"(.*)"$' squoted_re="^'(.*)'\$"
  DOTENV=()
  [[ -f $file ]] || return 0
  while IFS= read -r line || [[ -n $line ]]; do
    line=${line%$'\r'}
    if [[ $line =~ $comment_re ]]; then continue; fi
    if [[ ! $line =~ $assign_re ]]; then
      warn "ignoring a malformed line in $file"
      continue
    fi
    key=${BASH_REMATCH[2]}
    value=${BASH_REMATCH[3]}
    if [[ $value =~ $dquoted_re || $value =~ $squoted_re ]]; then value=${BASH_REMATCH[1]}; fi
    DOTENV+=("$key=$value")
  done < "$file"
}

run_cmd() { # run_cmd LABEL DIR COMMAND: argv split on spaces, no shell; empty = skipped
  local label=$1 dir=$2 cmd=$3 pair
  local -a argv=() env_args=(-u SKIP_POST_DEPLOYMENT_MIGRATIONS --)
  read -ra argv <<< "$cmd" || true
  if ((${#argv[@]} == 0)); then
    say "no $label command, skipped"
    return 0
  fi
  [[ ${argv[0]} != *=* ]] || die 2 "$label command must start with a program, not an assignment"
  read_dotenv "$dir/.env"
  if ((${#DOTENV[@]} > 0)); then
    for pair in "${DOTENV[@]}"; do
      if [[ $pair != SKIP_POST_DEPLOYMENT_MIGRATIONS=* ]]; then env_args+=("$pair"); fi
    done
  fi
  env_args+=("ROADIE_PHASE=$PHASE" "ROADIE_SHA=$SHA" "ROADIE_APP=$APP")
  env_args+=("ROADIE_RELEASE_DIR=$dir" "RELEASE_DIR=$dir")
  if [[ $PHASE == migrate ]]; then env_args+=(SKIP_POST_DEPLOYMENT_MIGRATIONS=1); fi
  say "$label: $cmd"
  (cd -- "$dir" && exec env "${env_args[@]}" "${argv[@]}") 9>&-
}

link_shared() { # link_shared RELEASE_DIR
  local dir=$1
  rm -rf -- "$dir/log"
  ln -s ../../shared/log "$dir/log"
  if [[ -e $APP_DIR/shared/.env ]]; then
    rm -rf -- "$dir/.env"
    ln -s ../../shared/.env "$dir/.env"
  fi
}

fetch() { # fetch DIR: the source tree of SHA into the empty DIR
  local dir=$1
  case $SOURCE_KIND in
    git)
      GIT_TERMINAL_PROMPT=0 GIT_ALLOW_PROTOCOL=file:git:http:https:ssh \
        git clone --quiet --no-checkout -- "$SOURCE_URL" "$dir" 9>&- ||
        die 3 "git clone of $SOURCE_URL failed"
      git -C "$dir" cat-file -e "$SHA^{commit}" 2> /dev/null ||
        die 3 "commit $SHA not found in $SOURCE_URL"
      git -C "$dir" -c advice.detachedHead=false checkout --quiet --detach "$SHA" ||
        die 3 "git checkout of $SHA failed"
      rm -rf -- "$dir/.git"
      ;;
    s3)
      [[ $SOURCE_URL == s3://* ]] || die 2 "sourceUrl must be an s3:// URL for sourceKind s3"
      aws s3 cp "$SOURCE_URL/$APP/$SHA.tar.gz" - 9>&- | tar -xz --no-same-owner -C "$dir" ||
        die 3 "could not fetch and unpack $SOURCE_URL/$APP/$SHA.tar.gz"
      ;;
  esac
}

point_current_at() { # point_current_at SHA: atomic switch of the current symlink
  TMP_LINK=$APP_DIR/current.tmp-$$
  ln -sfn "releases/$1" "$TMP_LINK"
  mv -T -- "$TMP_LINK" "$CURRENT" || die 8 "could not replace $CURRENT (is it a directory?)"
  TMP_LINK=""
}

prune_releases() { # keep the KEEP_RELEASES newest releases, and always current and previous
  local keep=$KEEP_RELEASES current n=0 path name
  current=$(current_sha)
  shopt -s nullglob
  local -a revisions=("$RELEASES"/*/REVISION)
  shopt -u nullglob
  ((${#revisions[@]} > 0)) || return 0
  while IFS= read -r path; do
    name=${path%/REVISION}
    name=${name##*/}
    [[ $name =~ ^[0-9a-f]{40}$ ]] || continue
    n=$((n + 1))
    if ((n <= keep)) || [[ $name == "$current" || $name == "$PREVIOUS_SHA" || $name == "$SHA" ]]; then
      continue
    fi
    rm -rf -- "${RELEASES:?}/$name"
    say "pruned release $name"
  done < <(ls -1t -- "${revisions[@]}")
}

require_staged() {
  is_staged "$SHA" || die 5 "release $SHA is not staged on this host ($RELEASES/$SHA)"
}

# --- phases --------------------------------------------------------------------------------
phase_stage() {
  local release=$RELEASES/$SHA stale
  if is_staged "$SHA"; then
    say "staged $SHA in $release (already staged)"
    return 0
  fi
  if [[ -e $release || -L $release ]]; then
    [[ $(current_sha) != "$SHA" ]] || die 4 "$release is live but incomplete; refusing to replace it"
    warn "removing an incomplete $release"
    rm -rf -- "$release"
  fi
  [[ -n $SOURCE_URL ]] || die 2 "sourceUrl is required to stage"
  for stale in "$RELEASES"/.*.tmp-*; do # left behind by a killed run (we hold the lock)
    if [[ -e $stale ]]; then rm -rf -- "$stale"; fi
  done
  TMP_RELEASE=$RELEASES/.$SHA.tmp-$$
  mkdir -- "$TMP_RELEASE"
  fetch "$TMP_RELEASE"
  printf '%s\n' "$SHA" > "$TMP_RELEASE/REVISION"
  link_shared "$TMP_RELEASE"
  run_cmd build "$TMP_RELEASE" "$BUILD_COMMAND" || die 4 "build failed (exit $?): $BUILD_COMMAND"
  touch -- "$TMP_RELEASE/REVISION"
  mv -T -- "$TMP_RELEASE" "$release" || die 4 "could not move the build into $release"
  TMP_RELEASE=""
  say "staged $SHA in $release"
}

phase_migrate() {
  require_staged
  run_cmd migrate "$RELEASES/$SHA" "$MIGRATE_COMMAND" ||
    die 6 "migrate failed (exit $?): $MIGRATE_COMMAND"
  say "migrated $SHA in $RELEASES/$SHA (post-deployment migrations skipped)"
}

phase_post_migrate() {
  require_staged
  local current
  current=$(current_sha)
  [[ $current == "$SHA" ]] ||
    die 7 "post_migrate needs $SHA to be the current release (current is ${current:-none})"
  run_cmd post_migrate "$RELEASES/$SHA" "$POST_MIGRATE_COMMAND" ||
    die 7 "post_migrate failed (exit $?): $POST_MIGRATE_COMMAND"
  say "post-migrated $SHA in $RELEASES/$SHA"
}

phase_switch() {
  require_staged
  local old
  old=$(current_sha)
  point_current_at "$SHA"
  record "${old:-none} -> $SHA"
  run_cmd restart "$RELEASES/$SHA" "$RESTART_COMMAND" ||
    die 8 "restart failed (exit $?) after switching to $SHA: $RESTART_COMMAND"
  prune_releases
  say "switched ${old:-none} -> $SHA"
}

phase_verify() {
  local revision
  [[ -L $CURRENT && -d $CURRENT ]] || die 9 "no current release on this host ($CURRENT)"
  revision=$(revision_of "$CURRENT")
  printf 'REVISION=%s\n' "$revision"
  [[ $revision == "$SHA" ]] || die 9 "current release is ${revision:-unknown}, expected $SHA"
  run_cmd health "$RELEASES/$SHA" "$HEALTH_COMMAND" ||
    die 10 "health check failed (exit $?): $HEALTH_COMMAND"
  say "verified $SHA in $RELEASES/$SHA"
}

phase_rollback() {
  local current
  current=$(current_sha)
  if [[ -n $PREVIOUS_SHA ]]; then
    if is_staged "$PREVIOUS_SHA"; then
      if [[ $current == "$PREVIOUS_SHA" ]]; then
        say "already on $PREVIOUS_SHA, nothing to switch"
      else
        point_current_at "$PREVIOUS_SHA"
        record "${current:-none} -> $PREVIOUS_SHA (rollback of $SHA)"
      fi
      run_cmd restart "$RELEASES/$PREVIOUS_SHA" "$RESTART_COMMAND" ||
        die 11 "restart failed (exit $?) after rolling back to $PREVIOUS_SHA: $RESTART_COMMAND"
      say "rolled back ${current:-none} -> $PREVIOUS_SHA"
    elif [[ $current == "$SHA" ]]; then
      die 11 "cannot roll back: $SHA is live and release $PREVIOUS_SHA is not on this host"
    else
      say "rolled back nothing: current is ${current:-none}, never switched to $SHA"
    fi
  elif [[ $current == "$SHA" ]]; then
    rm -f -- "$CURRENT"
    record "$SHA -> none (rollback of a first deploy)"
    say "rolled back $SHA -> none (first deploy: removed current)"
  else
    say "rolled back nothing: current is ${current:-none}, never switched to $SHA"
  fi
}

"phase_$PHASE"
