#!/usr/bin/env bash
# Removes the pihub service: the same as `deploy/install.sh --uninstall`. Keeps
# /etc/pihub and the spool in /var/lib/pihub unless --purge. Takes --root DIR too.
exec "$(dirname "${BASH_SOURCE[0]}")/install.sh" --uninstall "$@"
