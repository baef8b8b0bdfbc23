raise RuntimeError("the database is not configured")
