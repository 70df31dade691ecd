"""Dataset scans on the web: the JSON API, the pages and the scan store (upload, status, browse data)."""
