"""Personal data (issue 12): export one person's data, erase it, and sweep old text away.

- `export`: everything stored about one phone number, as JSON or a zip of CSV files.
- `erase`: removes the person everywhere (tables, work folders, the job queue, SQLite's free
  pages and WAL), keeping only an opt-out hash and anonymous survey counts.
- `retention`: blanks message bodies, survey answers and feedback text older than
  RETENTION_DAYS, keeping counts and delivery figures.
"""
