"""The CLI's client of the controller and how it presents what it hears: progress, tables, output files."""
