"""The curated SQL model: table definitions, connections and the atomic publish."""
