"""The SOP engine: enrollments and an agenda of due steps in the database, run exactly once."""
