"""Database: models, engine and session, migrations, content-addressed file store."""
