"""Server plumbing shared by the hub and the node: embedded PostgreSQL, config,
database pool and migrations, the error middleware, structured logs and health
endpoints. Domain logic never lives here."""
