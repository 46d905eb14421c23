"""Service shell: settings, database, REST API, dashboard and command line."""
