"""File parsers: plain Python and Arrow, no Spark. See `base` for the contract."""
