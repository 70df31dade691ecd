"""Small builders shared by the OpenAPI documents of jobs (app.openapi.builder) and scans (app.openapi.scans)."""

NULLABLE_STRING = {"type": ["string", "null"]}


def ref(name):
    return {"$ref": f"#/components/schemas/{name}"}


def json_response(schema_name, description):
    return {"description": description, "content": {"application/json": {"schema": ref(schema_name)}}}


def error_response(description):
    return json_response("Error", description)
