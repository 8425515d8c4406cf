"""Dollar budgets per key and per consumer, enforced on the state store before any upstream call."""
