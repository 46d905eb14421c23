"""What the API, the dashboard and the workers share: settings (DG_*), the database and the stored files."""
