"""Photo jobs on the web: the JSON API, the pages, the form fields, the upload check and the job store."""
