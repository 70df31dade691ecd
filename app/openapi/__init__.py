"""The OpenAPI 3.1 document of the API: one builder, the shared schemas, one module per resource."""
