"""The nightly run report page: data (jobs.report.data), SVG charts (jobs.report.charts), the page (jobs.report.page)."""
