#!/usr/bin/env bash
# Smoke gate for every environment. gitopsd runs it from the repo root of the revision's
# checkout after an apply, with GITOPSD_ENVIRONMENT and GITOPSD_REVISION set; exit 0 = pass.
# FAKEINFRA_FAIL containing `gate:smoke` (or `<env>/gate:smoke`) makes it fail, for demos.
set -euo pipefail

environment="${GITOPSD_ENVIRONMENT:?GITOPSD_ENVIRONMENT is not set: gitopsd runs this gate}"
revision="${GITOPSD_REVISION:?GITOPSD_REVISION is not set: gitopsd runs this gate}"

failures="${FAKEINFRA_FAIL:-}"
case ",${failures//[[:space:]]/}," in
  *",gate:smoke,"* | *",$environment/gate:smoke,"*)
    echo "smoke: $environment at ${revision:0:12} fails on purpose (FAKEINFRA_FAIL)" >&2
    exit 1
    ;;
esac

echo "smoke: $environment at ${revision:0:12} ok"
