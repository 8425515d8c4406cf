"""Virtual keys: API keys kept in the database, managed at run time through the admin API and the CLI."""
