#!/usr/bin/env bash
# Make Debian's chromium available for the report's browser test; print why not on failure.
set -u
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != "0" ]; then
  echo "chromium is not installed and installing it needs root" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "chromium is not installed and there is no apt-get" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -qq chromium >/tmp/modelkin-chromium-install.log 2>&1; then
  apt-get update -qq >>/tmp/modelkin-chromium-install.log 2>&1
  if ! apt-get install -y -qq chromium >>/tmp/modelkin-chromium-install.log 2>&1; then
    echo "apt-get install chromium failed: $(tail -n 1 /tmp/modelkin-chromium-install.log)" >&2
    exit 1
  fi
fi
command -v chromium >/dev/null 2>&1 || { echo "chromium still not on PATH after install" >&2; exit 1; }
