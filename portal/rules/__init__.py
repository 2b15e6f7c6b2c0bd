"""Pure domain rules: no Flask, no database; tested on their own."""
