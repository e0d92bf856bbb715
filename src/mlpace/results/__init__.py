"""Results store: every run and every published MLPerf result in one database (SQLAlchemy)."""
