"""The admin plane: the admin API's handlers (pure), its resolver, and its client and CLI."""
