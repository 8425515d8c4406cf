"""Usage records in the database, and the analytics read from them."""
