#!/bin/bash
# Cluster init script: install the Microsoft ODBC Driver 18 for SQL Server, which pyodbc
# needs to run the publish transaction against Azure SQL. Databricks Runtime is Ubuntu;
# the package comes from Microsoft's apt repository for the node's Ubuntu release.
set -euo pipefail

if odbcinst -q -d -n "ODBC Driver 18 for SQL Server" >/dev/null 2>&1; then
  exit 0
fi

. /etc/os-release
curl -fsSL "https://packages.microsoft.com/config/ubuntu/${VERSION_ID}/packages-microsoft-prod.deb" \
  -o /tmp/packages-microsoft-prod.deb
dpkg -i /tmp/packages-microsoft-prod.deb
rm -f /tmp/packages-microsoft-prod.deb
apt-get update
ACCEPT_EULA=Y apt-get install -y msodbcsql18 unixodbc
